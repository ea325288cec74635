/**
 * The host's enclave pool (host/pool.ts) on its own: key ids from documents, which member a new
 * session is offered, and what a refresh learns from members that answer, restart or go away.
 */
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { base64url } from "jose";
import { describe, expect, it } from "vitest";
import { createEnclavePool } from "../../host/app.ts";
import { documentKeyId, EnclavePool, type PoolMember } from "../../host/pool.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";

function documentFor(key: Uint8Array): string {
  const payload = base64url.encode(
    JSON.stringify({ cnf: { jwk: { kty: "OKP", crv: "X25519", x: base64url.encode(key) } } }),
  );
  return `e30.${payload}.c2ln`;
}
const keyIdFor = (key: Uint8Array) => createHash("sha256").update(key).digest().subarray(0, 16).toString("hex");

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
    pool.mark(c, "unreachable", "gone");
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
          if (!aUp) throw new Error("connection refused");
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
    expect(pool.status()[0]).toMatchObject({ state: "unreachable", reason: "document: connection refused" });
    expect(changes).toContain("1:unreachable");
    expect(changes.at(-1)).toBe("0:unreachable");
  });

  it("shares new sessions evenly among the members that answer, whichever member is down", () => {
    const pool = new EnclavePool(["http://a", "http://b", "http://c"], {
      fetchText: async () => ({ status: 500, text: "" }),
    });
    const [a, b, c] = pool.members as [PoolMember, PoolMember, PoolMember];
    pool.mark(a, "unreachable", "gone");
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
      const started = performance.now();
      await pool.refresh();
      expect(performance.now() - started).toBeLessThan(5000);
      expect(pool.status()[0]).toMatchObject({ state: "unreachable" });
      await pool.stop();
    } finally {
      stalled.closeAllConnections();
      await new Promise((resolve) => stalled.close(resolve));
    }
  });

  it("needs at least one member", () => {
    expect(() => new EnclavePool([], { fetchText: async () => ({ status: 200, text: "" }) })).toThrow(/at least one/);
  });
});

describe("host /healthz over a pool", () => {
  it("answers 503 unavailable once no member answers, to anyone; ok while one does", async () => {
    const { createHostApp } = await import("../../host/app.ts");
    const { ApiKeyStore, hashApiKey } = await import("../../host/identity.ts");
    let bUp = true;
    const pool = new EnclavePool(["http://a", "http://b"], {
      fetchText: async (url) => {
        if (url.startsWith("http://b") && bUp) {
          return { status: 200, text: JSON.stringify({ document: documentFor(new Uint8Array(32).fill(3)) }) };
        }
        throw new Error("connection refused");
      },
    });
    const key = "ck_healthz_test_key_0123456789abcdef";
    const app = createHostApp({
      pool,
      apiKeys: new ApiKeyStore({
        version: 1,
        keys: [{ id: "k", project: "p", sha256: hashApiKey(key), permissions: ["attest"], requestsPerMinute: 60 }],
      }),
      limits: DEFAULT_HOST_LIMITS,
      accessLog: () => {},
    });
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
