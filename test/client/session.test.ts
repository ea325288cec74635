/**
 * The SDK's Session against an enclave booted in this process (scripted engine) on a loopback
 * server, attested for real (the host's /v1 paths mapped straight to the enclave's):
 * - `auditCheckpoint()` accepts only a checkpoint signed by the attested key for its own nonce
 *   (an earlier one replayed is refused), and refuses without asking when the manifest disables
 *   auditing (through a real host and a tampering proxy: test/e2e/adversarial-host.test.ts);
 * - an answer that stalls past the transport's idle timeout is a transport HOST_TIMEOUT;
 * - a receipt is checked against the enclave the request was sealed to, even when the session
 *   verified another enclave while the answer streamed.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { ClientError } from "../../client/errors.ts";
import { nodeTransport } from "../../client/node-transport.ts";
import { type ConnectOptions, connect, verifyReceipt } from "../../client/sdk.ts";
import { fetchTransport, type Transport } from "../../client/transport.ts";
import type { AuditEntry } from "../../enclave/pipeline/audit.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import { enclaveKeyId } from "../../sealed/keys.ts";
import { bootWith, ScriptedEngine } from "../enclave/helpers.ts";
import { held as heldStep } from "../helpers/held.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { closeServers, connectTo, devPolicy, OK, type Script, serve } from "./helpers.ts";

/** Enclaves booted by a test, closed after it. */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await closeServers();
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe("Session.auditCheckpoint", () => {
  it("returns the verified head of the enclave's log, signed by the attested key, fresh on every call", async () => {
    const { enclave, session, paths } = await connectTo();
    const empty = await session.auditCheckpoint();
    expect(empty).toMatchObject({ count: 0, signingPublicKey: toHex(enclave.publicKeys.signing) });
    // The enclave writes the answer's record after its final frame: the test waits for that write
    // (an event), not for a count polled until a deadline.
    const recorded = heldStep();
    const writer = enclave as unknown as { writeAudit(entry: AuditEntry): boolean };
    const writeAudit = writer.writeAudit.bind(enclave);
    writer.writeAudit = (entry) => {
      const written = writeAudit(entry);
      recorded.enter();
      return written;
    };
    expect((await session.complete("hello")).text).toBe("ok");
    await recorded.entered;
    const after = await session.auditCheckpoint();
    expect(after.count).toBe(1);
    expect(after.lastRecordHash).not.toBe(empty.lastRecordHash);
    // Each call asked with its own nonce, and the signed line carries it.
    const nonces = [empty, after].map((c) => JSON.parse(c.line).checkpoint.nonce as string);
    expect(nonces[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(nonces[0]).not.toBe(nonces[1]);
    expect(paths.filter((p) => p === "/audit/checkpoint").length).toBeGreaterThanOrEqual(2);
  });

  it("refuses a checkpoint the host replays from an earlier call (signed, but for another nonce)", async () => {
    // The stand-in host answers every checkpoint request after the first with the first one's answer.
    let first: { status: number; text: string; contentType: string | null } | undefined;
    const inner = fetchTransport(fetch);
    const transport: Transport = async (url, request) => {
      if (!new URL(url).pathname.endsWith("/audit/checkpoint")) return inner(url, request);
      if (first === undefined) {
        const response = await inner(url, request);
        first = {
          status: response.status,
          text: await response.text(1 << 20),
          contentType: response.header("content-type"),
        };
      }
      const { status, text, contentType } = first;
      return {
        status,
        header: (name) => (name.toLowerCase() === "content-type" ? contentType : null),
        body: [new TextEncoder().encode(text)],
        text: async () => text,
      };
    };
    const { session } = await connectTo({ transport });
    await expect(session.auditCheckpoint()).resolves.toMatchObject({ count: 0 });
    await expect(session.auditCheckpoint()).rejects.toMatchObject({
      name: "ClientError",
      kind: "integrity",
      code: "AUDIT_CHECKPOINT_INVALID",
    });
  });

  it("refuses without asking when the attested manifest disables auditing", async () => {
    const { session, paths } = await connectTo({ overrides: { audit: { enabled: false, reason: "test: no audit" } } });
    await expect(session.auditCheckpoint()).rejects.toMatchObject({
      name: "ClientError",
      kind: "configuration",
      code: "AUDIT_DISABLED",
    });
    expect(paths).not.toContain("/audit/checkpoint");
  });
});

describe("Session over a host that goes silent mid-answer", () => {
  it("gives up after the transport's idle timeout with a transport HOST_TIMEOUT, never a done event", async () => {
    // The engine stays silent after its first text until the client has given up, so no stall of
    // this process can let the rest of the answer in first. The idle timeout also covers the time
    // to that first text, which the enclave (in this process) takes: at 300 ms, a 500 ms stall of
    // the process there timed the request out before any text (seen in a scratch copy).
    let release = () => {};
    const silence = new Promise<void>((resolve) => (release = resolve));
    const script: Script = [{ type: "text", text: "first" }, { until: silence }, ...OK];
    const { session } = await connectTo({ script, transport: nodeTransport({ idleTimeoutMs: 3000 }) });
    const seen: string[] = [];
    const error = await (async () => {
      for await (const event of session.completeStream("hello")) seen.push(event.type);
    })()
      .catch((e: unknown) => e)
      .finally(release);
    expect(error).toMatchObject({ name: "ClientError", kind: "transport", code: "HOST_TIMEOUT" });
    expect(seen).toEqual(["text"]);
  });
});

describe("Session: verifies the enclave again once its verification is old", () => {
  it("re-attests before the first request past reattestAfterMs, once for concurrent requests", async () => {
    let clock = Date.now();
    const { session, paths } = await connectTo({ connect: { now: () => new Date(clock), reattestAfterMs: 60_000 } });
    const attestations = () => paths.filter((p) => p === "/attestation").length;
    expect(attestations()).toBe(1);
    await session.complete("hello");
    clock += 30_000;
    await session.complete("hello");
    expect(attestations()).toBe(1); // still fresh
    clock += 31_000;
    await Promise.all([session.complete("a"), session.complete("b")]);
    expect(attestations()).toBe(2); // verified again, once for both
    expect(paths.filter((p) => p === "/sealed").length).toBe(4);
  });

  it("is fresh until one millisecond before reattestAfterMs and stale exactly at it (or 1 ms in the past)", async () => {
    let clock = Date.now();
    const { session, paths } = await connectTo({ connect: { now: () => new Date(clock), reattestAfterMs: 60_000 } });
    const attestations = () => paths.filter((p) => p === "/attestation").length;
    const verifiedAt = clock;
    clock = verifiedAt + 59_999;
    await session.complete("hello");
    expect(attestations()).toBe(1);
    clock = verifiedAt + 60_000;
    await session.complete("hello");
    expect(attestations()).toBe(2);
    clock -= 1; // one millisecond before the last verification
    await session.complete("hello");
    expect(attestations()).toBe(3);
  });

  it("sends nothing when the new verification fails", async () => {
    let clock = Date.now();
    const { session, paths } = await connectTo({ connect: { now: () => new Date(clock), reattestAfterMs: 60_000 } });
    // Ten minutes on, the enclave's signed answers are far outside the policy's allowed clock skew.
    clock += 10 * 60_000;
    await expect(session.complete("secret prompt")).rejects.toMatchObject({ name: "ClientError", kind: "attestation" });
    expect(paths.filter((p) => p === "/sealed")).toEqual([]);
    // The failed verification replaced the old one: the session shows no enclave as verified.
    expect(session.attested).toBe(false);
    expect(() => session.enclave).toThrow(expect.objectContaining({ code: "NOT_ATTESTED" }));
    expect(() => session.document).toThrow(expect.objectContaining({ code: "NOT_ATTESTED" }));
    // Back in skew, the next request verifies again first, then is sent.
    clock -= 10 * 60_000;
    const before = paths.filter((p) => p === "/attestation").length;
    expect((await session.complete("hello")).text).toBe("ok");
    expect(paths.filter((p) => p === "/attestation").length).toBe(before + 1);
    expect(session.attested).toBe(true);
  });

  it("counts a clock that went back as stale, and checks freshness before an audit checkpoint too", async () => {
    let clock = Date.now();
    const { session, paths } = await connectTo({ connect: { now: () => new Date(clock), reattestAfterMs: 60_000 } });
    const attestations = () => paths.filter((p) => p === "/attestation").length;
    clock -= 30_000; // back: the last verification is "in the future"
    await session.complete("hello");
    expect(attestations()).toBe(2);
    clock += 10 * 60_000; // far on: a new verification fails (the enclave's answers are out of skew)
    await expect(session.auditCheckpoint()).rejects.toMatchObject({ kind: "attestation" });
    expect(paths.filter((p) => p === "/audit/checkpoint")).toEqual([]);
  });

  it("keeps its verification when a re-verification cannot take place (the host is unreachable)", async () => {
    const state = { down: false };
    const inner = fetchTransport(fetch);
    const transport: Transport = (url, request) =>
      state.down ? Promise.reject(new Error("host down")) : inner(url, request);
    const { session } = await connectTo({ transport });
    const enclave = session.enclave;
    state.down = true;
    await expect(session.attest()).rejects.toMatchObject({ kind: "transport", code: "HOST_UNREACHABLE" });
    expect(session.attested).toBe(true);
    expect(session.enclave).toBe(enclave);
    state.down = false;
    expect((await session.complete("hello")).text).toBe("ok");
  });

  it("ignores what onVerified throws: the verification stands", async () => {
    const seen: string[] = [];
    const onVerified = (enclave: { documentDigest: string }) => {
      seen.push(enclave.documentDigest);
      throw new Error("the caller's hook failed");
    };
    const { session } = await connectTo({ connect: { onVerified } as never });
    await session.attest();
    expect(seen).toEqual([session.enclave.documentDigest, session.enclave.documentDigest]);
    expect((await session.complete("hello")).text).toBe("ok");
  });

  it("turns a verifier fault that is not an attestation error into ATTESTATION_FAILED, with its cause, and forgets the enclave", async () => {
    const fault = new Error("the clock is broken");
    const clock = { broken: false };
    const now = () => {
      if (clock.broken) throw fault;
      return new Date();
    };
    const { session, paths } = await connectTo({ connect: { now } });
    clock.broken = true;
    const error = await rejectionOf(session.attest(), ClientError);
    expect(error).toMatchObject({ kind: "attestation", code: "ATTESTATION_FAILED", message: "attestation failed" });
    expect((error as Error).cause).toBe(fault);
    expect(session.attested).toBe(false);
    expect(paths.filter((p) => p === "/sealed")).toEqual([]);
  });

  it("refuses a reattestAfterMs that is not a positive number", async () => {
    await expect(connectTo({ connect: { reattestAfterMs: 0 } })).rejects.toMatchObject({
      code: "BAD_REATTEST_INTERVAL",
    });
  });
});

/**
 * Two enclaves the dev policy accepts alike (same measurement, manifest and model), each with its
 * own keys, behind a stand-in host that sends every path to `host.target` (A's URL at first) and
 * lists the paths asked for; `host.sealed`, when set, forwards POST /v1/sealed in its stead (to hold
 * or reroute it). A session is connected to A through it, on the clock `host.clock`.
 */
async function twoEnclavesBehindHost(onVerified?: ConnectOptions["onVerified"]) {
  const enclaves = await Promise.all([0, 1].map(() => bootWith(new ScriptedEngine(() => OK))));
  cleanups.push(...enclaves.map((enclave) => () => enclave.close()));
  const [a, b] = enclaves as [(typeof enclaves)[0], (typeof enclaves)[0]];
  const urls = { a: await serve(createEnclaveApp(a).fetch), b: await serve(createEnclaveApp(b).fetch) };
  const forward = fetchTransport(fetch);
  const host = {
    target: urls.a,
    clock: Date.now(),
    paths: [] as string[],
    /** The query of each nonce question (`?enclave=<key id>`). */
    challenges: [] as string[],
    /** The query of each audit checkpoint question. */
    checkpoints: [] as string[],
    sealed: undefined as Transport | undefined,
    /** Where the host sends a path, when not to `target`. */
    route: undefined as ((path: string) => string | undefined) | undefined,
  };
  const session = await connect({
    url: "http://enclave.test",
    policy: await devPolicy(),
    apiKey: "unused",
    now: () => new Date(host.clock),
    transport: (url, request) => {
      const path = new URL(url).pathname.replace(/^\/v1\//, "/");
      host.paths.push(path);
      if (path === "/attestation/challenge") host.challenges.push(new URL(url).search);
      if (path === "/audit/checkpoint") host.checkpoints.push(new URL(url).search);
      const send = path === "/sealed" && host.sealed !== undefined ? host.sealed : forward;
      return send(`${host.route?.(path) ?? host.target}${path}`, request);
    },
    ...(onVerified === undefined ? {} : { onVerified }),
  });
  expect(toHex(session.enclave.signingPublicKey)).toBe(toHex(a.publicKeys.signing));
  return { session, host, urls, forward, enclaves: { a, b } };
}

describe("Session: the nonce question goes to the enclave whose document was fetched", () => {
  it("names each document's own key id, again after another enclave's document", async () => {
    const { session, host, urls, enclaves } = await twoEnclavesBehindHost();
    host.challenges.length = 0;
    for (const target of [urls.a, urls.a, urls.b, urls.b, urls.a]) {
      host.target = target;
      await session.attest();
    }
    const [a, b] = await Promise.all(
      [enclaves.a, enclaves.b].map(async (e) => `?enclave=${toHex(await enclaveKeyId(e.publicKeys.sealing))}`),
    );
    expect(host.challenges).toEqual([a, a, b, b, a]);
  });

  it("asks for the audit checkpoint by the verified enclave's key id, after another enclave's document too", async () => {
    const { session, host, urls, enclaves } = await twoEnclavesBehindHost();
    const [a, b] = await Promise.all(
      [enclaves.a, enclaves.b].map(async (e) => `?enclave=${toHex(await enclaveKeyId(e.publicKeys.sealing))}`),
    );
    await session.auditCheckpoint();
    host.target = urls.b;
    await session.attest();
    await session.auditCheckpoint();
    expect(host.checkpoints).toEqual([a, b]);
  });
});

describe("Session: a receipt is checked against the enclave its request was sealed to", () => {
  it("accepts the answer of enclave A after the session re-attested to enclave B while it streamed", async () => {
    const { session, host, urls, enclaves } = await twoEnclavesBehindHost();
    const { a, b } = enclaves;
    const stream = session.completeStream("hello");
    const first = await stream.next();
    expect(first.value).toEqual({ type: "text", text: "ok" });
    // Sealed to A and answered by A; meanwhile the session verifies again and finds B.
    host.target = urls.b;
    await session.attest();
    expect(toHex(session.enclave.signingPublicKey)).toBe(toHex(b.publicKeys.signing));
    const rest: unknown[] = [];
    for (let next = await stream.next(); next.done !== true; next = await stream.next()) rest.push(next.value);
    expect(rest).toEqual([expect.objectContaining({ type: "done", finishReason: "stop" })]);
    const { receipt } = rest[0] as { receipt: string };
    expect((await verifyReceipt(receipt, a.publicKeys.signing)).line).toBe(receipt);
    await expect(verifyReceipt(receipt, b.publicKeys.signing)).rejects.toMatchObject({ code: "RECEIPT_INVALID" });
    // The next request is sealed to B and its receipt is B's.
    expect((await session.complete("hello")).text).toBe("ok");
  });
});

describe("Session: request keys made ahead across a change of enclave key", () => {
  it("a key still being made for the key a verification replaced is wiped, and one made for the new key", async () => {
    const { session, host, urls, forward } = await twoEnclavesBehindHost();
    await new Promise((resolve) => setTimeout(resolve, 20)); // connect's key (for A) is ready
    const subtle = globalThis.crypto.subtle;
    const generateKey = subtle.generateKey.bind(subtle);
    let made = 0;
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    vi.spyOn(subtle, "generateKey").mockImplementation(((...args: Parameters<typeof generateKey>) => {
      const algorithm = args[0];
      if (typeof algorithm === "object" && algorithm.name === "X25519" && ++made === 1) {
        return held.then(() => generateKey(...args));
      }
      return generateKey(...args);
    }) as typeof subtle.generateKey);
    try {
      host.target = urls.b;
      await session.attest(); // A's key wiped, one for B started (held)
      host.target = urls.a;
      await session.attest(); // back to A while B's is being made
      release();
      await new Promise((resolve) => setTimeout(resolve, 20));
      // B's key, then one for A made in its place: the next request does not make its own.
      expect(made).toBe(2);
      let atSealed = -1;
      host.sealed = (url, request) => {
        atSealed = made;
        return forward(url, request);
      };
      expect((await session.complete("hello")).text).toBe("ok");
      expect(atSealed).toBe(2);
    } finally {
      vi.restoreAllMocks();
    }
  });
});

describe("Session: the host reports WRONG_ENCLAVE_KEY (the enclave's keys changed)", () => {
  const count = (paths: string[], path: string) => paths.filter((p) => p === path).length;

  it("re-attests once for one request, never twice in a row, even when the key changed again", async () => {
    const { session, host, urls, forward } = await twoEnclavesBehindHost();
    // A pool's host that sends each sealed request to the other enclave: every send is refused.
    host.sealed = (url, request) => {
      host.target = host.target === urls.a ? urls.b : urls.a;
      return forward(url.replace(/^http:\/\/[^/]+/, host.target), request);
    };
    const error = await session.complete("hello").catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "ClientError", code: "WRONG_ENCLAVE_KEY", origin: "host" });
    // Sealed to A (refused by B), one verification (finds B), resealed to B (refused by A): no more.
    expect(count(host.paths, "/attestation")).toBe(2);
    expect(count(host.paths, "/sealed")).toBe(2);
  });

  it("a request refused after another one re-attested reseals to the new key without attesting again", async () => {
    const { session, host, urls, forward } = await twoEnclavesBehindHost();
    // Both requests are sealed to A; B refuses both. The second refusal is held until the first
    // request has re-attested (to B) and been answered.
    host.target = urls.b;
    let calls = 0;
    let releaseFirst = () => {};
    let releaseSecond = () => {};
    host.sealed = (url, request) => {
      calls++;
      if (calls > 2) return forward(url, request);
      return new Promise((resolve) => {
        const send = () => resolve(forward(url, request));
        if (calls === 1) releaseFirst = send;
        else {
          releaseSecond = send;
          releaseFirst();
        }
      });
    };
    // Whichever request reaches the host first is the one released first (under load "two" can
    // overtake "one"); it re-attests and is answered while the other is still held.
    const answers = [session.complete("one"), session.complete("two")];
    const done = await Promise.race(answers.map((answer, i) => answer.then(({ text }) => ({ i, text }))));
    expect(done.text).toBe("ok");
    expect(count(host.paths, "/attestation")).toBe(2);
    releaseSecond();
    expect((await answers[1 - done.i]!).text).toBe("ok");
    expect(count(host.paths, "/attestation")).toBe(2);
    expect(count(host.paths, "/sealed")).toBe(4);
  });

  it("a request refused after the session's verification failed meanwhile verifies again, then reseals", async () => {
    const { session, host, urls, forward } = await twoEnclavesBehindHost();
    const held: (() => void)[] = [];
    const reachedHost = heldStep();
    host.sealed = (url, request) =>
      new Promise((resolve) => {
        held.push(() => resolve(forward(url.replace(urls.a, host.target), request)));
        reachedHost.enter();
      });
    const answer = session.complete("hello");
    await reachedHost.entered;
    expect(held).toHaveLength(1);
    // While the request (sealed to A) is on its way, a verification fails: out of the clock skew.
    host.clock += 10 * 60_000;
    await expect(session.attest()).rejects.toMatchObject({ kind: "attestation" });
    expect(session.attested).toBe(false);
    host.clock -= 10 * 60_000;
    host.target = urls.b;
    host.sealed = undefined;
    held.shift()?.();
    expect((await answer).text).toBe("ok");
    expect(count(host.paths, "/attestation")).toBe(3);
    expect(session.attested).toBe(true);
  });

  it("a host that had A answer, then failed a verification, reaches B: onVerified gets B with no previous", async () => {
    const verified: [string, string | null][] = [];
    const { session, host, urls, forward, enclaves } = await twoEnclavesBehindHost((enclave, previous) => {
      verified.push([toHex(enclave.signingPublicKey), previous === null ? null : toHex(previous.signingPublicKey)]);
    });
    const [a, b] = [enclaves.a, enclaves.b].map((e) => toHex(e.publicKeys.signing));
    let arrived = () => {};
    const reached = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    let release = () => {};
    let statusFromA: number | undefined;
    // The request (sealed to A) is held; then A opens and answers it, and the client gets B's refusal (409).
    host.sealed = (_url, request) =>
      new Promise((resolve, reject) => {
        release = () => {
          const deliver = async () => {
            const byA = await forward(`${urls.a}/sealed`, request);
            statusFromA = byA.status;
            await byA.text(1 << 20);
            return forward(`${urls.b}/sealed`, request);
          };
          deliver().then(resolve, reject);
        };
        arrived();
      });
    const answer = session.complete("hello");
    await reached;
    // Meanwhile the host fails a verification: A's document, B's nonce answer.
    host.route = (path) => (path === "/attestation/challenge" ? urls.b : undefined);
    await expect(session.attest()).rejects.toMatchObject({ kind: "attestation" });
    expect(session.attested).toBe(false);
    host.route = undefined;
    host.target = urls.b;
    host.sealed = undefined;
    release();
    expect((await answer).text).toBe("ok");
    expect(statusFromA).toBe(200);
    // Two verified boots read the prompt; onVerified was not told B replaced A (SECURITY.md).
    expect(verified).toEqual([
      [a, null],
      [b, null],
    ]);
  });
});
