import { describe, expect, it, vi } from "vitest";
import type { AccessLogEntry } from "../../host/access-log.ts";
import { createHostApp, TENANT_HEADER } from "../../host/app.ts";
import { ApiKeyStore, hashApiKey } from "../../host/identity.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";
import { ENVELOPE_PREFIX_LENGTH, encodeEnvelopePrefix } from "../../sealed/envelope.ts";

const KEY = "ck_test_0123456789abcdef";
const SECRET_MARKER = "TOP-SECRET-PROMPT-BYTES";

function store(requestsPerMinute = 1000, now?: () => number) {
  return new ApiKeyStore(
    {
      version: 1,
      keys: [
        {
          id: "team-a",
          project: "demo",
          sha256: hashApiKey(KEY),
          permissions: ["attest", "chat", "complete"],
          requestsPerMinute,
        },
      ],
    },
    now,
  );
}

function envelope(extraCiphertext = 64): Uint8Array {
  const ciphertext = new TextEncoder().encode(SECRET_MARKER.padEnd(extraCiphertext, "."));
  const prefix = encodeEnvelopePrefix(
    "chat",
    new Uint8Array(16).fill(7),
    ciphertext.length,
    new Uint8Array(32).fill(1),
    new Uint8Array(24).fill(2),
  );
  const out = new Uint8Array(ENVELOPE_PREFIX_LENGTH + ciphertext.length);
  out.set(prefix);
  out.set(ciphertext, ENVELOPE_PREFIX_LENGTH);
  return out;
}

function setup(
  overrides: { fetch?: typeof fetch; limits?: Partial<typeof DEFAULT_HOST_LIMITS>; keys?: ApiKeyStore } = {},
) {
  const log: AccessLogEntry[] = [];
  const upstream = vi.fn<typeof fetch>(
    overrides.fetch ??
      (async () =>
        new Response(new Uint8Array([1, 2, 3]), {
          status: 200,
          headers: { "content-type": "application/octet-stream" },
        })),
  );
  const app = createHostApp({
    enclaveUrl: "http://enclave.invalid",
    apiKeys: overrides.keys ?? store(),
    limits: { ...DEFAULT_HOST_LIMITS, ...overrides.limits },
    accessLog: (e) => log.push(e),
    fetch: upstream,
  });
  const sealed = (body: Uint8Array, key: string | null = KEY) =>
    app.request("/v1/sealed", {
      method: "POST",
      body: body as Uint8Array<ArrayBuffer>,
      headers: key === null ? {} : { authorization: `Bearer ${key}` },
    });
  return { app, upstream, log, sealed };
}

describe("host app", () => {
  it("refuses anonymous and unknown callers before doing anything else", async () => {
    const { sealed, upstream, app } = setup();
    const anonymous = await sealed(envelope(), null);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe("UNAUTHENTICATED");
    expect((await sealed(envelope(), "ck_wrong_key_0123456789")).status).toBe(401);
    expect((await app.request("/v1/attestation")).status).toBe(401);
    expect(upstream).not.toHaveBeenCalled();
  });

  it("forwards a sealed request with the tenant id and streams the answer back", async () => {
    const { sealed, upstream } = setup();
    const response = await sealed(envelope());
    expect(response.status).toBe(200);
    expect(new Uint8Array(await response.arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]));
    const [url, init] = upstream.mock.calls[0]!;
    expect(url).toBe("http://enclave.invalid/sealed");
    expect((init!.headers as Record<string, string>)[TENANT_HEADER]).toBe("team-a");
  });

  it("rejects malformed envelopes with a stable code and never forwards them", async () => {
    const { sealed, upstream } = setup();
    const bad = envelope();
    bad[0] = 9;
    const response = await sealed(bad);
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("UNSUPPORTED_VERSION");
    const short = await sealed(new Uint8Array(10));
    expect(short.status).toBe(400);
    expect(upstream).not.toHaveBeenCalled();
  });

  it("rejects oversize bodies with 413", async () => {
    const { sealed } = setup({ limits: { maxRequestBytes: 2048 } });
    const response = await sealed(envelope(4096));
    expect(response.status).toBe(413);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("BODY_TOO_LARGE");
  });

  it("answers 503 with Retry-After when the forwarding queue is full", async () => {
    let releaseUpstream!: () => void;
    const gate = new Promise<void>((r) => (releaseUpstream = r));
    const { sealed } = setup({
      limits: { maxInFlight: 1, maxQueued: 0, retryAfterSeconds: 3 },
      fetch: async () => {
        await gate;
        return new Response("ok");
      },
    });
    const first = sealed(envelope());
    await new Promise((r) => setTimeout(r, 10));
    const second = await sealed(envelope());
    expect(second.status).toBe(503);
    expect(second.headers.get("retry-after")).toBe("3");
    releaseUpstream();
    expect((await first).status).toBe(200);
  });

  it("rate-limits per API key with 429 and Retry-After", async () => {
    let now = 0;
    const { sealed } = setup({ keys: store(2, () => now) });
    expect((await sealed(envelope())).status).toBe(200);
    expect((await sealed(envelope())).status).toBe(200);
    const limited = await sealed(envelope());
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    now += 60_000;
    expect((await sealed(envelope())).status).toBe(200);
  });

  it("says the enclave is unreachable with 502", async () => {
    const { sealed } = setup({
      fetch: async () => {
        throw new TypeError("fetch failed");
      },
    });
    const response = await sealed(envelope());
    expect(response.status).toBe(502);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("ENCLAVE_UNREACHABLE");
  });

  it("says the enclave timed out with 504", async () => {
    const { sealed } = setup({
      limits: { upstreamHeadersTimeoutMs: 20 },
      fetch: (_url, init) =>
        new Promise((_resolve, reject) => init?.signal?.addEventListener("abort", () => reject(new Error("aborted")))),
    });
    const response = await sealed(envelope());
    expect(response.status).toBe(504);
  });

  it("logs sizes and timings only", async () => {
    const { sealed, log } = setup();
    await (await sealed(envelope())).arrayBuffer();
    expect(log).toHaveLength(1);
    const entry = log[0]!;
    expect(entry).toMatchObject({ method: "POST", path: "/v1/sealed", status: 200, keyId: "team-a", responseBytes: 3 });
    expect(entry.requestBytes).toBe(ENVELOPE_PREFIX_LENGTH + 64);
    expect(JSON.stringify(log)).not.toContain(SECRET_MARKER);
    expect(JSON.stringify(log)).not.toContain(KEY);
  });

  it("logs a streamed answer cut by the enclave as aborted, with the bytes forwarded before the cut", async () => {
    const { sealed, log } = setup({
      fetch: async () =>
        new Response(
          new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(new Uint8Array([1, 2]));
              controller.enqueue(new Uint8Array([3, 4, 5]));
            },
            pull(controller) {
              controller.error(new Error("enclave connection reset"));
            },
          }),
          { status: 200, headers: { "content-type": "application/octet-stream" } },
        ),
    });
    const response = await sealed(envelope());
    await expect(response.arrayBuffer()).rejects.toThrow();
    expect(log).toHaveLength(1);
    expect(log[0]).toMatchObject({ path: "/v1/sealed", status: 200, responseBytes: 5, outcome: "aborted" });
  });
});
