/**
 * The host's limit refusals as docs/deploy.md ("Host limits") and docs/errors.md promise them, on the
 * wire: the body-reading cap's 503 HOST_BUSY carries `Retry-After` like every other HOST_BUSY (in all
 * and for one key), and a 413 BODY_TOO_LARGE says `Connection: close` and closes the connection, the
 * whole oversize body sent with its headers. Two layers keep the latter (host/errors.ts's header and
 * enclave/http.ts's ClosingWhenUnreadResponse): it fails with both gone (checked), not with one.
 * app.test.ts checks the statuses and codes; these check what a client is told to do next.
 */
import { createServer, request as httpRequest, type Server } from "node:http";
import { afterEach, describe, expect, it, vi } from "vitest";
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import { createHostApp } from "../../host/app.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";
import { holdTimeouts } from "../helpers/held-timers.ts";
import { closeNow, listenInRange } from "../helpers/listen-in-range.ts";
import { rawExchange } from "../helpers/raw-http.ts";
import { listenOnTestPort } from "../helpers/test-ports.ts";

const KEY = "ck_limits_0123456789abcdef";
const OTHER = "ck_limits_other_0123456789ab";
const THIRD = "ck_limits_third_0123456789ab";
/** The body timeout, held: a time no other timer here is set for. Set once a body is being read. */
const BODY_MS = 4_567;
/** A Retry-After no default has. */
const RETRY_AFTER_S = 7;

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** A host in front of an enclave that answers every sealed request 200 at once; nothing reaches it here. */
async function host(limits: Partial<typeof DEFAULT_HOST_LIMITS>): Promise<{ url: string; port: number }> {
  const enclave: Server = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200).end("ok"));
  });
  const enclavePort = await listenOnTestPort(enclave);
  cleanup.push(() => closeNow(enclave));
  const keys = new ApiKeyStore({
    version: 1,
    keys: [
      { id: "a", project: "p", sha256: hashApiKey(KEY), permissions: ["chat"], requestsPerMinute: 1000 },
      { id: "b", project: "p", sha256: hashApiKey(OTHER), permissions: ["chat"], requestsPerMinute: 1000 },
      { id: "c", project: "p", sha256: hashApiKey(THIRD), permissions: ["chat"], requestsPerMinute: 1000 },
    ],
  });
  const app = createHostApp({
    enclaveUrl: `http://127.0.0.1:${enclavePort}`,
    apiKeys: keys,
    limits: { ...DEFAULT_HOST_LIMITS, ...limits },
    accessLog: () => {},
  });
  const server = await listenInRange(app);
  cleanup.push(() => server.close());
  return { url: server.url, port: server.port };
}

/** A sealed request whose body never ends: it holds a body-reading slot until its connection closes. */
function unfinishedBody(url: string, key: string): { close(): void } {
  const req = httpRequest(`${url}/v1/sealed`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/octet-stream", "content-length": "1000" },
  });
  req.on("error", () => {});
  req.write(Buffer.alloc(10));
  return { close: () => req.destroy() };
}

async function refusal(response: Response) {
  return {
    status: response.status,
    retryAfter: response.headers.get("retry-after"),
    code: ((await response.json()) as { error: { code: string } }).error.code,
  };
}

/** Resolves when `done()` holds, checked each turn of the event loop; fails after `turns` of them. */
async function untilTrue(done: () => boolean, turns = 100_000): Promise<void> {
  for (let i = 0; i < turns && !done(); i++) await new Promise((r) => setImmediate(r));
  expect(done()).toBe(true);
}

describe("host limits: the body-reading cap", () => {
  it("answers 503 HOST_BUSY with the host's Retry-After, in all and for one key", async () => {
    const bodyTimers = holdTimeouts(BODY_MS);
    const reading = () => bodyTimers.held.filter((t) => !t.cleared && !t.fired).length;
    const { url } = await host({
      maxBodiesReading: 2,
      maxBodiesReadingPerKey: 1,
      requestBodyTimeoutMs: BODY_MS,
      retryAfterSeconds: RETRY_AFTER_S,
    });
    const sealed = (key: string) =>
      fetch(`${url}/v1/sealed`, {
        method: "POST",
        body: new Uint8Array(8),
        headers: { authorization: `Bearer ${key}`, "content-type": "application/octet-stream" },
      });
    // Key a's one slot taken (one of the host's two): a's next request is refused for its key's share alone.
    const first = unfinishedBody(url, KEY);
    cleanup.push(async () => first.close());
    await untilTrue(() => reading() === 1);
    expect(await refusal(await sealed(KEY))).toEqual({
      status: 503,
      retryAfter: String(RETRY_AFTER_S),
      code: "HOST_BUSY",
    });
    // Key b's one slot taken too: every reading slot is, and c, which reads none (within its share),
    // is refused for the host's cap alone.
    const second = unfinishedBody(url, OTHER);
    cleanup.push(async () => second.close());
    await untilTrue(() => reading() === 2);
    expect(await refusal(await sealed(THIRD))).toEqual({
      status: 503,
      retryAfter: String(RETRY_AFTER_S),
      code: "HOST_BUSY",
    });
    bodyTimers.restore();
  });
});

describe("host limits: 413 BODY_TOO_LARGE", () => {
  it("says Connection: close and closes the connection, the whole body sent with the headers", async () => {
    const { port } = await host({ maxRequestBytes: 1024 });
    const body = "x".repeat(2048);
    // Headers and body in one write: node has the whole request before the host refuses it.
    const answer = await rawExchange(
      port,
      `POST /v1/sealed HTTP/1.1\r\nHost: cloister\r\nAuthorization: Bearer ${KEY}\r\n` +
        `Content-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    const [head = "", json = ""] = answer.split("\r\n\r\n");
    expect(head.split("\r\n")[0]).toBe("HTTP/1.1 413 Payload Too Large");
    expect(head.toLowerCase().split("\r\n")).toContain("connection: close");
    expect(JSON.parse(json)).toEqual({
      error: { code: "BODY_TOO_LARGE", message: "request body: expected at most 1024 bytes, found 2048" },
    });
  });
});
