/**
 * The host's enclave pool (host/pool.ts) on its own: key ids from documents, which member a new
 * session is offered, and what a refresh learns from members that answer, restart or go away.
 */
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { base64url } from "jose";
import { describe, expect, it, vi } from "vitest";
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import { createEnclavePool, createHostApp } from "../../host/app.ts";
import { HostError } from "../../host/errors.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { documentKeyId, documentReadReason, EnclavePool, memberReasonText, type PoolMember } from "../../host/pool.ts";
import { DEFAULT_HOST_LIMITS, startHost } from "../../host/server.ts";
import { held } from "../helpers/held.ts";
import { listenOnTestPort } from "../helpers/test-ports.ts";

function documentFor(key: Uint8Array): string {
  const payload = base64url.encode(
    JSON.stringify({ cnf: { jwk: { kty: "OKP", crv: "X25519", x: base64url.encode(key) } } }),
  );
  return `e30.${payload}.c2ln`;
}
const keyIdFor = (key: Uint8Array) => createHash("sha256").update(key).digest().subarray(0, 16).toString("hex");
/** The reason host/app.ts marks a member with when its failed-over document read found it gone. */
const UNREACHABLE_READ = documentReadReason(
  new HostError("ENCLAVE_UNREACHABLE", 502, "enclave is unreachable from the host"),
);

/**
 * An enclave on a port of the tests' range that answers every document read with `key`'s document,
 * each held until the test settles `answer` (entered once a read has come).
 */
async function heldDocumentEnclave(key: Uint8Array) {
  const answer = held();
  const enclave = createServer((_req, res) => {
    answer.enter();
    void answer.promise.then(() => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ document: documentFor(key) }));
    });
  });
  const port = await listenOnTestPort(enclave);
  const close = async () => {
    enclave.closeAllConnections();
    await new Promise((resolve) => enclave.close(resolve));
  };
  return { url: `http://127.0.0.1:${port}`, answer, close };
}

describe("enclave pool", () => {
  it("computes the envelope's key id from a document's cnf.jwk, and null for anything else", () => {
    const key = new Uint8Array(32).fill(7);
    expect(documentKeyId(documentFor(key))).toBe(keyIdFor(key));
    expect(documentKeyId("not a jws")).toBeNull();
    expect(documentKeyId(documentFor(new Uint8Array(16)))).toBeNull();
  });

  it("offers ready members by fewest in flight, rotating between equals, never unreachable ones", () => {
    const pool = new EnclavePool(["http://a", "http://b", "http://c"], {
      fetchText: async () => ({ status: 500, text: "" }),
    });
    const [a, b, c] = pool.members as [PoolMember, PoolMember, PoolMember];
    for (const m of [a, b, c]) pool.mark(m, "ready", null);
    const firsts = new Set([0, 1, 2].map(() => pool.candidates()[0]?.url));
    expect(firsts).toEqual(new Set(["http://a", "http://b", "http://c"]));
    a.inFlight = 2;
    b.inFlight = 1;
    expect(pool.candidates().map((m) => m.url)).toEqual(["http://c", "http://b", "http://a"]);
    pool.mark(c, "unreachable", { words: "gone" });
    expect(pool.candidates().map((m) => m.url)).toEqual(["http://b", "http://a"]);
    // Not yet checked members come after ready ones.
    pool.mark(b, "unknown", null);
    expect(pool.candidates().map((m) => m.url)).toEqual(["http://a", "http://b"]);
  });

  it("refresh learns key ids, notices restarts and members that stop answering", async () => {
    let keyA = new Uint8Array(32).fill(1);
    let aUp = true;
    const changes: string[] = [];
    const pool = new EnclavePool(["http://a/", "http://b"], {
      fetchText: async (url) => {
        if (url === "http://a/attestation") {
          // As the host's fetchText (fetchBounded) fails for a member that refuses connections.
          if (!aUp) throw new HostError("ENCLAVE_UNREACHABLE", 502, "enclave is unreachable from the host");
          return { status: 200, text: JSON.stringify({ document: documentFor(keyA) }) };
        }
        return { status: 503, text: "{}" };
      },
      onChange: (m) => changes.push(`${m.index}:${m.state}`),
    });
    await pool.refresh();
    expect(pool.status()).toEqual([
      { index: 0, keyId: keyIdFor(keyA), state: "ready", reason: null, inFlight: 0 },
      { index: 1, keyId: null, state: "unreachable", reason: "document: HTTP 503", inFlight: 0 },
    ]);
    expect(pool.byKeyId(keyIdFor(keyA))?.url).toBe("http://a");
    keyA = new Uint8Array(32).fill(2);
    await pool.refresh();
    expect(pool.byKeyId(keyIdFor(keyA))?.index).toBe(0);
    aUp = false;
    await pool.refresh();
    expect(pool.status()[0]).toMatchObject({
      state: "unreachable",
      reason: "document: ENCLAVE_UNREACHABLE (enclave is unreachable from the host)",
    });
    expect(changes).toContain("1:unreachable");
    expect(changes.at(-1)).toBe("0:unreachable");
  });

  it("writes a reason out from its parts, without a code the text is told inside of", () => {
    const cut = documentReadReason(new HostError("ENCLAVE_UNREACHABLE", 502, "enclave response was cut"));
    const late = documentReadReason(new HostError("ENCLAVE_TIMEOUT", 504, "enclave did not answer within 300 ms"));
    const shown = [
      cut,
      late,
      documentReadReason(new Error("HTTP 503")),
      { step: "sealed" as const, words: "connection refused" },
      { words: "draining" },
    ];
    expect(shown.map((reason) => memberReasonText(reason))).toEqual([
      "document: ENCLAVE_UNREACHABLE (enclave response was cut)",
      "document: ENCLAVE_TIMEOUT (enclave did not answer within 300 ms)",
      "document: HTTP 503",
      "sealed: connection refused",
      "draining",
    ]);
    // Told inside an ENCLAVE_UNREACHABLE refusal: that code is dropped, any other kept.
    expect(shown.map((reason) => memberReasonText(reason, "ENCLAVE_UNREACHABLE"))).toEqual([
      "document: enclave response was cut",
      "document: ENCLAVE_TIMEOUT (enclave did not answer within 300 ms)",
      "document: HTTP 503",
      "sealed: connection refused",
      "draining",
    ]);
  });

  it("tells onChange of a reason changed in any one part (step, code or words), not of an equal one", () => {
    const changes: string[] = [];
    const pool = new EnclavePool(["http://a"], {
      fetchText: async () => ({ status: 500, text: "" }),
      onChange: (m) => changes.push(m.reason === null ? "none" : JSON.stringify(m.reason)),
    });
    const a = pool.members[0] as PoolMember;
    // Each reason differs from the one before in one part only; the second is the first, a new object.
    for (const reason of [
      { step: "document", code: "ENCLAVE_UNREACHABLE", words: "w" },
      { step: "document", code: "ENCLAVE_UNREACHABLE", words: "w" },
      { step: "document", code: "ENCLAVE_TIMEOUT", words: "w" },
      { step: "document", words: "w" },
      { step: "sealed", words: "w" },
      { words: "w" },
      { words: "v" },
    ] as const) {
      pool.mark(a, "unreachable", reason);
    }
    expect(changes).toEqual([
      '{"step":"document","code":"ENCLAVE_UNREACHABLE","words":"w"}',
      '{"step":"document","code":"ENCLAVE_TIMEOUT","words":"w"}',
      '{"step":"document","words":"w"}',
      '{"step":"sealed","words":"w"}',
      '{"words":"w"}',
      '{"words":"v"}',
    ]);
  });

  it("names a booting, draining or failed member's own 503 code in its reason, and no other answer's", async () => {
    let answer = { status: 503, text: "{}" };
    const pool = new EnclavePool(["http://a"], { fetchText: async () => answer });
    const reasonFor = async (status: number, body: unknown) => {
      answer = { status, text: JSON.stringify(body) };
      await pool.refresh();
      return pool.status()[0]?.reason;
    };
    const refusal = (code: string) => ({ error: { code, message: "m" } });
    // A restarted member listens before it boots: the host's read finds it booting, not draining.
    expect(await reasonFor(503, refusal("ENCLAVE_BOOTING"))).toBe("document: HTTP 503 ENCLAVE_BOOTING");
    expect(await reasonFor(503, refusal("ENCLAVE_DRAINING"))).toBe("document: HTTP 503 ENCLAVE_DRAINING");
    expect(await reasonFor(503, refusal("AUDIT_FAILED"))).toBe("document: HTTP 503 AUDIT_FAILED");
    // Any other code, or a body that is not the enclave's, is not quoted (a host-chosen text).
    expect(await reasonFor(503, refusal("\u001b[2JSOMETHING"))).toBe("document: HTTP 503");
    expect(await reasonFor(503, "ENCLAVE_BOOTING")).toBe("document: HTTP 503");
    expect(await reasonFor(500, refusal("ENCLAVE_BOOTING"))).toBe("document: HTTP 500");
  });

  it("tells onChange what changed, once: a refresh that finds a member as it was says nothing", async () => {
    let answer = { status: 200, text: JSON.stringify({ document: documentFor(new Uint8Array(32).fill(1)) }) };
    const changes: string[] = [];
    const pool = new EnclavePool(["http://a"], {
      fetchText: async () => answer,
      onChange: (m) =>
        changes.push(
          `${m.keyId === null ? "no key id" : "key id"}, ${m.state}, ${m.reason === null ? null : memberReasonText(m.reason)}`,
        ),
    });
    await pool.refresh();
    await pool.refresh();
    answer = { status: 503, text: "{}" };
    await pool.refresh();
    answer = { status: 500, text: "{}" };
    await pool.refresh();
    await pool.refresh();
    // A 200 answer without a document is no document: the member is not offered sessions.
    answer = { status: 200, text: "{}" };
    await pool.refresh();
    // An answer that is not JSON is named in fixed words: JSON.parse's message would quote the answer.
    answer = { status: 200, text: "\u001b[2Jnot json" };
    await pool.refresh();
    answer = { status: 200, text: "null" };
    await pool.refresh();
    // Back after a restart (a new key id): one change, ready with the new key id, never a line with
    // the new key id and the state it had while it was away.
    answer = { status: 200, text: JSON.stringify({ document: documentFor(new Uint8Array(32).fill(2)) }) };
    await pool.refresh();
    expect(changes).toEqual([
      "key id, ready, null",
      "key id, unreachable, document: HTTP 503",
      "key id, unreachable, document: HTTP 500",
      "key id, unreachable, document: no document in its answer",
      "key id, unreachable, document: its answer is not JSON",
      "key id, unreachable, document: no document in its answer",
      "key id, ready, null",
    ]);
  });

  it("shares new sessions evenly among the members that answer, whichever member is down", () => {
    const pool = new EnclavePool(["http://a", "http://b", "http://c"], {
      fetchText: async () => ({ status: 500, text: "" }),
    });
    const [a, b, c] = pool.members as [PoolMember, PoolMember, PoolMember];
    pool.mark(a, "unreachable", { words: "gone" });
    pool.mark(b, "ready", null);
    pool.mark(c, "ready", null);
    const counts = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const first = pool.candidates()[0]?.url as string;
      counts.set(first, (counts.get(first) ?? 0) + 1);
    }
    expect(counts).toEqual(
      new Map([
        ["http://b", 500],
        ["http://c", 500],
      ]),
    );
  });

  it("looks a key id up again after one refresh when some member is unread or down", async () => {
    const key = new Uint8Array(32).fill(9);
    let served = false;
    let reads = 0;
    const pool = new EnclavePool(["http://a", "http://b"], {
      fetchText: async (url) => {
        reads++;
        if (url === "http://a/attestation" && served)
          return { status: 200, text: JSON.stringify({ document: documentFor(key) }) };
        throw new Error("refused");
      },
    });
    await pool.refresh();
    expect(pool.byKeyId(keyIdFor(key))).toBeUndefined();
    served = true; // member a came back (or the host had not read it yet)
    expect((await pool.findKeyId(keyIdFor(key)))?.url).toBe("http://a");
    const before = reads;
    pool.mark(pool.members[1] as PoolMember, "ready", null);
    // Every member ready: an unknown key id is answered at once, without reading anyone.
    expect(await pool.findKeyId("00".repeat(16))).toBeUndefined();
    expect(reads).toBe(before);
  });

  it("looks a key id whose member was marked unreachable up again after a refresh: a member back from a blip keeps its sessions", async () => {
    const key = new Uint8Array(32).fill(4);
    let up = true;
    const pool = new EnclavePool(["http://a", "http://b"], {
      fetchText: async (url) => {
        if (!up) throw new Error("refused");
        const served = url === "http://a/attestation" ? key : new Uint8Array(32).fill(5);
        return { status: 200, text: JSON.stringify({ document: documentFor(served) }) };
      },
    });
    await pool.refresh();
    up = false;
    await pool.refresh();
    expect(pool.byKeyId(keyIdFor(key))?.state).toBe("unreachable");
    up = true;
    expect(await pool.findKeyId(keyIdFor(key))).toMatchObject({ url: "http://a", state: "ready" });
  });

  it("shares a refresh under way with every caller, and stop() waits for it", async () => {
    const pending: (() => void)[] = [];
    const pool = new EnclavePool(["http://a"], {
      fetchText: () => new Promise((resolve) => pending.push(() => resolve({ status: 503, text: "" }))),
    });
    const refreshes = [pool.refresh(), pool.refresh()];
    let stopped = false;
    const stopping = pool.stop().then(() => {
      stopped = true;
    });
    // The read is sent as refresh() is called; a stop() that did not wait would have ended before
    // the next turn of the event loop (it has nothing else to wait for).
    await new Promise((r) => setImmediate(r));
    expect({ reads: pending.length, stopped }).toEqual({ reads: 1, stopped: false });
    for (const answer of pending) answer();
    await Promise.all([...refreshes, stopping]);
    expect(pool.status()[0]?.state).toBe("unreachable");
  });

  it("once started, re-reads its members every 5 s unless told otherwise", async () => {
    vi.useFakeTimers();
    try {
      let reads = 0;
      const pool = new EnclavePool(["http://a"], {
        fetchText: async () => {
          reads++;
          return { status: 503, text: "" };
        },
      });
      pool.start();
      await vi.advanceTimersByTimeAsync(4999);
      expect(reads).toBe(0);
      await vi.advanceTimersByTimeAsync(1);
      expect(reads).toBe(1);
      await pool.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it("takes no document from a read that ends after one started later was taken: the old key id does not come back", async () => {
    const [oldKey, newKey] = [new Uint8Array(32).fill(8), new Uint8Array(32).fill(9)];
    const answers: ((key: Uint8Array) => void)[] = [];
    const told: (string | null)[] = [];
    const pool = new EnclavePool(["http://a", "http://b"], {
      fetchText: (url) =>
        new Promise((resolve) => {
          const answer = (key: Uint8Array) =>
            resolve({ status: 200, text: JSON.stringify({ document: documentFor(key) }) });
          if (url === "http://a/attestation") answers.push(answer);
          else answer(new Uint8Array(32).fill(1));
        }),
      onChange: (m) => {
        if (m.index === 0) told.push(m.keyId);
      },
    });
    const a = pool.members[0] as PoolMember;
    // A refresh reads a before the enclave restarts, and is slow to end; the host's own read of a,
    // started after it, hands out the new boot's document first.
    const refreshing = pool.refresh();
    pool.noteDocument(a, documentFor(newKey), pool.readStarted(a));
    answers[0]?.(oldKey);
    await refreshing;
    expect({ keyId: a.keyId, told }).toEqual({ keyId: keyIdFor(newKey), told: [keyIdFor(newKey)] });
    // The other way round: the host's read started first and ends last.
    const hostRead = pool.readStarted(a);
    const again = pool.refresh();
    answers[1]?.(newKey);
    await again;
    pool.noteDocument(a, documentFor(oldKey), hostRead);
    expect(a.keyId).toBe(keyIdFor(newKey));
  });

  it("marks no member unreachable for a failed read that ends after one started later found it ready", async () => {
    const answers: ((ok: boolean) => void)[] = [];
    const pool = new EnclavePool(["http://a", "http://b"], {
      fetchText: () =>
        new Promise((resolve) => {
          answers.push((ok) =>
            resolve(
              ok
                ? { status: 200, text: JSON.stringify({ document: documentFor(new Uint8Array(32).fill(2)) }) }
                : { status: 502, text: "" },
            ),
          );
        }),
    });
    const a = pool.members[0] as PoolMember;
    // The host's document read (failed over: host/app.ts) started first, then a refresh found a ready.
    const hostRead = pool.readStarted(a);
    const refreshing = pool.refresh();
    for (const answer of answers) answer(true);
    await refreshing;
    pool.mark(a, "unreachable", UNREACHABLE_READ, hostRead);
    expect(a.state).toBe("ready");
    // A refresh's failed read of a ends after the host took a document from a read started later.
    const again = pool.refresh();
    pool.noteDocument(a, documentFor(new Uint8Array(32).fill(3)), pool.readStarted(a));
    for (const answer of answers.slice(2)) answer(false);
    await again;
    expect(pool.status()).toMatchObject([
      { state: "ready", keyId: keyIdFor(new Uint8Array(32).fill(3)) },
      { state: "unreachable", reason: "document: HTTP 502" },
    ]);
    // A read with no later one taken is taken, failures included.
    pool.mark(a, "unreachable", UNREACHABLE_READ, pool.readStarted(a));
    expect(a.state).toBe("unreachable");
  });

  it("marks ready a member that served its document: an older refresh read that found it ready is dropped", async () => {
    const key = new Uint8Array(32).fill(5);
    const answers: (() => void)[] = [];
    const told: { state: string; keyId: string | null }[] = [];
    const pool = new EnclavePool(["http://a", "http://b"], {
      fetchText: () =>
        new Promise((resolve) => {
          answers.push(() => resolve({ status: 200, text: JSON.stringify({ document: documentFor(key) }) }));
        }),
      onChange: (m) => {
        if (m.index === 0) told.push({ state: m.state, keyId: m.keyId });
      },
    });
    const a = pool.members[0] as PoolMember;
    // Read K (the host's) starts, then a refresh's read M, then the host's read N: K < M < N.
    const k = pool.readStarted(a);
    const refreshing = pool.refresh();
    const n = pool.readStarted(a);
    // K fails (a's enclave restarting), N hands out a's document, then M ends fine: it is dropped.
    pool.mark(a, "unreachable", UNREACHABLE_READ, k);
    pool.noteDocument(a, documentFor(key), n);
    for (const answer of answers) answer();
    await refreshing;
    expect(pool.status()[0]).toMatchObject({ state: "ready", reason: null, keyId: keyIdFor(key) });
    // One change for the document: ready with its key id, never the key id while still unreachable.
    expect(told).toEqual([
      { state: "unreachable", keyId: null },
      { state: "ready", keyId: keyIdFor(key) },
    ]);
    // Served again, with the same key id: nothing changed, nothing told.
    pool.noteDocument(a, documentFor(key), pool.readStarted(a));
    expect(told).toHaveLength(2);
  });

  it("keeps a member a sealed request found down unreachable: a refresh read started before cannot undo it", async () => {
    const answers: (() => void)[] = [];
    const pool = new EnclavePool(["http://a", "http://b"], {
      fetchText: () =>
        new Promise((resolve) => {
          answers.push(() =>
            resolve({ status: 200, text: JSON.stringify({ document: documentFor(new Uint8Array(32).fill(4)) }) }),
          );
        }),
    });
    const a = pool.members[0] as PoolMember;
    // The refresh reads a (sent before a went away); a sealed request then finds a's connection
    // refused (host/app.ts marks it, with no read number); the refresh's answer ends after that.
    const refreshing = pool.refresh();
    pool.mark(a, "unreachable", { step: "sealed", words: "connection refused" });
    for (const answer of answers) answer();
    await refreshing;
    expect(pool.status()).toMatchObject([
      { state: "unreachable", reason: "sealed: connection refused" },
      { state: "ready", reason: null },
    ]);
    // A read started after the mark is taken.
    const again = pool.refresh();
    for (const answer of answers.slice(2)) answer();
    await again;
    expect(a.state).toBe("ready");
  });

  it("lets unknown key ids start at most one pool refresh a second, however many a caller sends", async () => {
    let reads = 0;
    const pool = new EnclavePool(["http://a", "http://b"], {
      fetchText: async () => {
        reads++;
        throw new Error("refused");
      },
    });
    await pool.refresh();
    for (let i = 0; i < 20; i++) expect(await pool.findKeyId(`${i}`.padStart(32, "0"))).toBeUndefined();
    expect(reads).toBe(2 + 2); // the first refresh, then one on demand for all twenty
  });

  it("a member that stalls mid-document cannot hold up the refresh or the host's shutdown", async () => {
    const stalled = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"document":"');
    });
    await new Promise<void>((resolve) => stalled.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(stalled.address() as AddressInfo).port}`;
    const pool = createEnclavePool([url, "http://127.0.0.1:9"], {
      limits: { ...DEFAULT_HOST_LIMITS, upstreamHeadersTimeoutMs: 300 },
    });
    try {
      // The member never finishes its document: only the read deadline, which cuts it, ends the refresh.
      await pool.refresh();
      expect(pool.status()[0]).toMatchObject({
        state: "unreachable",
        reason: "document: ENCLAVE_UNREACHABLE (enclave response was cut)",
      });
      await pool.stop();
    } finally {
      stalled.closeAllConnections();
      await new Promise((resolve) => stalled.close(resolve));
    }
  });

  it("needs at least one member", () => {
    expect(() => new EnclavePool([], { fetchText: async () => ({ status: 200, text: "" }) })).toThrow(/at least one/);
  });

  it("refuses, as it is made, a member URL the host cannot take (every host's pool is made here)", () => {
    // Checked once here, not again by createHostApp and createEnclavePool; nothing is asked of it.
    const fetchText = vi.fn(async () => ({ status: 200, text: "" }));
    expect(() => new EnclavePool(["http://127.0.0.1:1", "https://127.0.0.1:2"], { fetchText })).toThrow(
      'enclaveUrl: expected an http: URL (the enclave\'s internal server), found "https://127.0.0.1:2"',
    );
    expect(() => new EnclavePool(["http://user:s3cret@127.0.0.1:1"], { fetchText })).toThrow(RangeError);
    expect(fetchText).not.toHaveBeenCalled();
  });

  it("keeps each member's checked URL: plain JavaScript cannot change, redefine or delete it, nor swap or add a member", async () => {
    // `readonly` is TypeScript's only: the refresh would read documents from a URL never checked.
    const asked: string[] = [];
    const pool = new EnclavePool(["http://127.0.0.1:1/"], {
      fetchText: async (url) => {
        asked.push(url);
        return { status: 503, text: "{}" };
      },
    });
    const member = pool.members[0] as { url: string };
    const attempts: Record<string, () => unknown> = {
      assigned: () => {
        member.url = "http://op:hunter2@127.0.0.1:2";
      },
      redefined: () => Object.defineProperty(member, "url", { value: "http://op:hunter2@127.0.0.1:2" }),
      deleted: () => delete (member as { url?: string }).url,
      "member swapped": () => {
        (pool.members as PoolMember[])[0] = {
          ...(pool.members[0] as PoolMember),
          url: "http://op:hunter2@127.0.0.1:2",
        };
      },
      "member added": () => (pool.members as PoolMember[]).push({ ...(pool.members[0] as PoolMember), index: 1 }),
      "list swapped": () => {
        (pool as { members: readonly PoolMember[] }).members = [];
      },
    };
    for (const [name, attempt] of Object.entries(attempts)) {
      expect(attempt, name).toThrow(TypeError);
      expect(member.url, name).toBe("http://127.0.0.1:1");
    }
    expect(pool.members).toHaveLength(1);
    await pool.refresh();
    expect(asked).toEqual(["http://127.0.0.1:1/attestation"]);
  });
});

/** An API key allowed to attest, and a host app over `pool` that takes it. */
const HOST_KEY = "ck_healthz_test_key_0123456789abcdef";
function hostOver(pool: EnclavePool) {
  const apiKeys = new ApiKeyStore({
    version: 1,
    keys: [{ id: "k", project: "p", sha256: hashApiKey(HOST_KEY), permissions: ["attest"], requestsPerMinute: 60 }],
  });
  return createHostApp({ pool, apiKeys, limits: DEFAULT_HOST_LIMITS, accessLog: () => {} });
}

describe("host /healthz over a pool", () => {
  it("gives a stopped member one reason whoever read its document: the pool's refresh or a client's session", async () => {
    const reasons: string[] = [];
    for (const reader of ["refresh", "client"] as const) {
      const servers: Server[] = [];
      for (const n of [1, 2]) {
        const server = createServer((_req, res) => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ document: documentFor(new Uint8Array(32).fill(n)) }));
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        servers.push(server);
      }
      const urls = servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`);
      const pool = createEnclavePool(urls, { limits: DEFAULT_HOST_LIMITS });
      const app = hostOver(pool);
      try {
        await pool.refresh();
        const stopped = servers[0] as Server;
        stopped.closeAllConnections();
        await new Promise((resolve) => stopped.close(resolve));
        if (reader === "refresh") await pool.refresh();
        else {
          // Member 0 is the least busy and first: the session's read finds it gone, member 1 answers.
          const answer = await app.request("/v1/attestation", { headers: { authorization: `Bearer ${HOST_KEY}` } });
          expect(answer.status).toBe(200);
        }
        const health = await app.request("/healthz", { headers: { authorization: `Bearer ${HOST_KEY}` } });
        const [member] = ((await health.json()) as { enclaves: { state: string; reason: string }[] }).enclaves;
        expect(member?.state, reader).toBe("unreachable");
        reasons.push(member?.reason as string);
      } finally {
        await pool.stop();
        for (const server of servers.slice(1)) {
          server.closeAllConnections();
          await new Promise((resolve) => server.close(resolve));
        }
      }
    }
    expect(reasons).toEqual([
      "document: ENCLAVE_UNREACHABLE (enclave is unreachable from the host)",
      "document: ENCLAVE_UNREACHABLE (enclave is unreachable from the host)",
    ]);
  });

  it("startHost reads every member before it listens, and reads none once closed", async () => {
    const reads: number[] = [];
    const servers: Server[] = [];
    for (const n of [1, 2]) {
      const server = createServer((_req, res) => {
        reads.push(n);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ document: documentFor(new Uint8Array(32).fill(n)) }));
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      servers.push(server);
    }
    const key = "ck_healthz_test_key_0123456789abcdef";
    const start = (poolRefreshMs: number) =>
      startHost({
        enclaveUrls: servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`),
        poolRefreshMs,
        apiKeys: new ApiKeyStore({
          version: 1,
          keys: [{ id: "k", project: "p", sha256: hashApiKey(key), permissions: ["attest"], requestsPerMinute: 60 }],
        }),
        hostname: "127.0.0.1",
        port: 0,
        accessLog: () => {},
        auditDir: null,
      });
    try {
      // Its first timed refresh is a minute away: what /healthz shows was read before listening.
      const host = await start(60_000);
      const health = await fetch(`${host.url}/healthz`, { headers: { authorization: `Bearer ${key}` } });
      expect(((await health.json()) as { enclaves: { state: string; keyId: string }[] }).enclaves).toEqual([
        expect.objectContaining({ state: "ready", keyId: keyIdFor(new Uint8Array(32).fill(1)) }),
        expect.objectContaining({ state: "ready", keyId: keyIdFor(new Uint8Array(32).fill(2)) }),
      ]);
      await host.close();
      // Refreshing every 20 ms (the interval held: only the test moves it), then closed: the timer
      // is gone, and however far time goes on, no member is read again.
      vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
      const often = await start(20);
      const readsBefore = reads.length;
      const timedReads = new Promise<void>((resolve) => {
        for (const server of servers) server.on("request", () => reads.length === readsBefore + 2 && resolve());
      });
      vi.advanceTimersByTime(20);
      await timedReads;
      expect(vi.getTimerCount()).toBe(1);
      await often.close();
      expect(vi.getTimerCount()).toBe(0);
      const readsAtClose = reads.length;
      vi.advanceTimersByTime(60_000);
      await new Promise((r) => setImmediate(r));
      expect(reads.length).toBe(readsAtClose);
    } finally {
      vi.useRealTimers();
      for (const server of servers) {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    }
  });

  it("numbers its own document read before sending it: a refresh started meanwhile is not undone by its old document", async () => {
    const [oldKey, newKey] = [new Uint8Array(32).fill(6), new Uint8Array(32).fill(7)];
    const { url, answer, close } = await heldDocumentEnclave(oldKey);
    try {
      // The refresh reads the same member (fetchText) and finds its next boot; b is another member.
      const pool = new EnclavePool([url, "http://b"], {
        fetchText: async (url) => ({
          status: 200,
          text: JSON.stringify({
            document: documentFor(url.startsWith("http://b") ? new Uint8Array(32).fill(1) : newKey),
          }),
        }),
      });
      const key = HOST_KEY;
      const app = hostOver(pool);
      const a = pool.members[0] as PoolMember;
      pool.mark(pool.members[1] as PoolMember, "unreachable", { words: "gone" });
      const handedOut = app.request("/v1/attestation", { headers: { authorization: `Bearer ${key}` } });
      await answer.entered;
      await pool.refresh();
      expect(a.keyId).toBe(keyIdFor(newKey));
      answer.settle();
      expect((await handedOut).status).toBe(200);
      expect(a.keyId).toBe(keyIdFor(newKey));
    } finally {
      await close();
    }
  });

  it("refuses a named document of another key id that a read started later kept from being taken", async () => {
    const [named, restarted] = [new Uint8Array(32).fill(6), new Uint8Array(32).fill(7)];
    const { url, answer, close } = await heldDocumentEnclave(restarted);
    try {
      // The refresh reads the same member (fetchText): first the boot the operator names, then 503 (booting).
      let booting = false;
      const pool = new EnclavePool([url, "http://b"], {
        fetchText: async (url) =>
          url.startsWith("http://b")
            ? { status: 200, text: JSON.stringify({ document: documentFor(new Uint8Array(32).fill(1)) }) }
            : booting
              ? { status: 503, text: JSON.stringify({ error: { code: "ENCLAVE_BOOTING" } }) }
              : { status: 200, text: JSON.stringify({ document: documentFor(named) }) },
      });
      await pool.refresh();
      const a = pool.members[0] as PoolMember;
      expect(a.keyId).toBe(keyIdFor(named));
      const app = hostOver(pool);
      const handedOut = app.request(`/v1/attestation?enclave=${keyIdFor(named)}`, {
        headers: { authorization: `Bearer ${HOST_KEY}` },
      });
      // The host's read is sent; a refresh started after it finds the member booting, and is taken.
      await answer.entered;
      booting = true;
      await pool.refresh();
      expect({ state: a.state, keyId: a.keyId }).toEqual({ state: "unreachable", keyId: keyIdFor(named) });
      // The host's read then ends with the next boot's document: not the one named, so not handed on.
      answer.settle();
      const refused = await handedOut;
      expect(refused.status).toBe(409);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("WRONG_ENCLAVE_KEY");
      expect(a.keyId).toBe(keyIdFor(named));
    } finally {
      await close();
    }
  });

  it("answers 503 unavailable once no member answers, to anyone; ok while one does", async () => {
    let bUp = true;
    const pool = new EnclavePool(["http://a", "http://b"], {
      fetchText: async (url) => {
        if (url.startsWith("http://b") && bUp) {
          return { status: 200, text: JSON.stringify({ document: documentFor(new Uint8Array(32).fill(3)) }) };
        }
        throw new Error("connection refused");
      },
    });
    const key = HOST_KEY;
    const app = hostOver(pool);
    await pool.refresh();
    const health = (auth: boolean) =>
      app.request("/healthz", auth ? { headers: { authorization: `Bearer ${key}` } } : {});
    expect((await health(false)).status).toBe(200);
    bUp = false;
    await pool.refresh();
    const anonymous = await health(false);
    expect(anonymous.status).toBe(503);
    expect(await anonymous.json()).toEqual({ status: "unavailable" });
    const detailed = await health(true);
    expect(detailed.status).toBe(503);
    expect(await detailed.json()).toMatchObject({
      status: "unavailable",
      enclaves: [{ state: "unreachable" }, { state: "unreachable" }],
    });
  });
});
