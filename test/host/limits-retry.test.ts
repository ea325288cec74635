/**
 * What a caller the host turns away for a reason of its own is told to do next, and what it costs:
 * NO_ENCLAVE_AVAILABLE's `Retry-After` is the host's `limits.retryAfterSeconds` (as every HOST_BUSY's
 * is), and a sealed request that waited its whole queue time (10 s, held) and got HOST_BUSY gives its
 * rate token back (docs/deploy.md, "Host limits"): the caller's next request is forwarded, not 429.
 * limiter.test.ts checks the queue's timeout alone; this checks the token the app gives back.
 */
import { createServer, type ServerResponse } from "node:http";
import { afterEach, describe, expect, it, vi } from "vitest";
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import { createHostApp } from "../../host/app.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { EnclavePool, type PoolMember } from "../../host/pool.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";
import { ENVELOPE_PREFIX_LENGTH, encodeEnvelopePrefix } from "../../sealed/envelope.ts";
import { holdTimeouts } from "../helpers/held-timers.ts";
import { closeNow, listenInRange } from "../helpers/listen-in-range.ts";
import { listenOnTestPort } from "../helpers/test-ports.ts";

const KEY = "ck_retry_0123456789abcdef";
const OTHER = "ck_retry_other_0123456789ab";
/** A Retry-After no default has. */
const RETRY_AFTER_S = 7;
const limits = { ...DEFAULT_HOST_LIMITS, retryAfterSeconds: RETRY_AFTER_S };

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** KEY may send one request a minute, OTHER many; the clock is frozen, so no token comes back with time. */
function apiKeys(): ApiKeyStore {
  return new ApiKeyStore(
    {
      version: 1,
      keys: [
        { id: "a", project: "p", sha256: hashApiKey(KEY), permissions: ["chat"], requestsPerMinute: 1 },
        { id: "b", project: "p", sha256: hashApiKey(OTHER), permissions: ["chat", "attest"], requestsPerMinute: 1000 },
      ],
    },
    () => 0,
  );
}

async function answerOf(response: Response): Promise<string> {
  const { error } = (await response.json()) as { error?: { code: string } };
  return `${response.status} ${error?.code ?? "-"} ${response.headers.get("retry-after")}`;
}

describe("host: NO_ENCLAVE_AVAILABLE", () => {
  it("says the host's Retry-After, for a new session and for a nonce question", async () => {
    // Both members already found down: no candidate is offered, and no URL is asked.
    const pool = new EnclavePool(["http://127.0.0.1:9", "http://127.0.0.1:10"], {
      fetchText: async () => {
        throw new Error("not asked");
      },
    });
    for (const member of pool.members as PoolMember[]) member.state = "unreachable";
    const app = createHostApp({ pool, apiKeys: apiKeys(), limits, accessLog: () => {} });
    const authorization = `Bearer ${OTHER}`;
    const session = await app.request("/v1/attestation", { headers: { authorization } });
    expect(await answerOf(session)).toBe(`503 NO_ENCLAVE_AVAILABLE ${RETRY_AFTER_S}`);
    const challenge = await app.request("/v1/attestation/challenge", {
      method: "POST",
      headers: { authorization, "content-type": "application/json" },
      body: "{}",
    });
    expect(await answerOf(challenge)).toBe(`503 NO_ENCLAVE_AVAILABLE ${RETRY_AFTER_S}`);
  });
});

/** A chat envelope the host can route (its ciphertext is never opened here). */
function envelope(): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(ENVELOPE_PREFIX_LENGTH + 64).fill(0x2e);
  out.set(encodeEnvelopePrefix("chat", new Uint8Array(16), 64, new Uint8Array(32).fill(1), new Uint8Array(24).fill(2)));
  return out;
}

/** Resolves when `done()` holds, checked each turn of the event loop; fails after `turns` of them. */
async function untilTrue(done: () => boolean, turns = 100_000): Promise<void> {
  for (let i = 0; i < turns && !done(); i++) await new Promise((r) => setImmediate(r));
  expect(done()).toBe(true);
}

describe("host: a sealed request timed out in the queue", () => {
  it("answers HOST_BUSY with the host's Retry-After and gives the caller's rate token back", async () => {
    const queueTimers = holdTimeouts(DEFAULT_HOST_LIMITS.queueTimeoutMs);
    // The enclave holds the first request it gets (the host's one forwarding slot) until told; it
    // answers the others at once.
    const held: ServerResponse[] = [];
    let received = 0;
    const enclave = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        if (++received === 1) held.push(res);
        else res.writeHead(200).end("ok");
      });
    });
    const enclavePort = await listenOnTestPort(enclave);
    cleanup.push(() => closeNow(enclave));
    const app = createHostApp({
      enclaveUrl: `http://127.0.0.1:${enclavePort}`,
      apiKeys: apiKeys(),
      limits: { ...limits, maxInFlight: 1, maxQueued: 1 },
      accessLog: () => {},
    });
    const server = await listenInRange(app);
    cleanup.push(() => server.close());
    const sealed = (key: string) =>
      fetch(`${server.url}/v1/sealed`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/octet-stream" },
        body: envelope(),
      });

    // OTHER's request holds the one slot; KEY's (its one token taken) waits in the queue.
    const holding = sealed(OTHER);
    await untilTrue(() => held.length === 1);
    const queued = sealed(KEY);
    await untilTrue(() => queueTimers.held.length === 1);
    expect(queueTimers.held[0]?.fire()).toBe(true);
    expect(await answerOf(await queued)).toBe(`503 HOST_BUSY ${RETRY_AFTER_S}`);
    queueTimers.restore();

    // The slot freed: KEY's next request is forwarded on the token it was given back.
    held[0]?.writeHead(200).end("ok");
    expect((await holding).status).toBe(200);
    const next = await sealed(KEY);
    expect(`${next.status} ${await next.text()}`).toBe("200 ok");
    expect(received).toBe(2);
  });
});
