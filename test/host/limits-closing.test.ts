/**
 * The host's 415 CONTENT_TYPE_UNSUPPORTED on the wire: it says `Connection: close` and the connection
 * closes, whether the refused body came whole with its headers or not at all (it is never read, so
 * the connection cannot carry another request). Two layers say so: host/errors.ts's header, and
 * enclave/http.ts's ClosingWhenUnreadResponse (node had not marked the request complete when the
 * host answered, even with its whole body come): each case fails with both gone, not with one (checked).
 * app.test.ts checks the status and code in process; this checks what a client is told to do next.
 */
import { afterEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import { createHostApp } from "../../host/app.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";
import { listenInRange } from "../helpers/listen-in-range.ts";
import { rawExchange } from "../helpers/raw-http.ts";

const KEY = "ck_closing_0123456789abcdef";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** A host whose enclave is never asked (a 415 is answered before forwarding): its port. */
async function hostPort(): Promise<number> {
  const apiKeys = new ApiKeyStore({
    version: 1,
    keys: [{ id: "a", project: "p", sha256: hashApiKey(KEY), permissions: ["chat"], requestsPerMinute: 1000 }],
  });
  const app = createHostApp({
    enclaveUrl: "http://127.0.0.1:9",
    apiKeys,
    limits: DEFAULT_HOST_LIMITS,
    accessLog: () => {},
  });
  const server = await listenInRange(app);
  cleanup.push(() => server.close());
  return server.port;
}

describe("host: 415 CONTENT_TYPE_UNSUPPORTED", () => {
  it.each([
    { name: "the whole body sent with the headers", sent: "x".repeat(64) },
    { name: "no byte of the body sent", sent: "" },
  ])("says Connection: close and closes the connection, $name", async ({ sent }) => {
    const port = await hostPort();
    // Headers (and body) in one write: with the whole body, node has all of the request's bytes
    // before the host refuses it.
    const answer = await rawExchange(
      port,
      `POST /v1/sealed HTTP/1.1\r\nHost: cloister\r\nAuthorization: Bearer ${KEY}\r\n` +
        `Content-Type: text/plain\r\nContent-Length: 64\r\n\r\n${sent}`,
    );
    const [head = "", json = ""] = answer.split("\r\n\r\n");
    expect(head.split("\r\n")[0]).toBe("HTTP/1.1 415 Unsupported Media Type");
    expect(head.toLowerCase().split("\r\n")).toContain("connection: close");
    expect(JSON.parse(json)).toEqual({
      error: {
        code: "CONTENT_TYPE_UNSUPPORTED",
        message: '/v1/sealed: expected content-type application/octet-stream, found "text/plain"',
      },
    });
  });
});
