/**
 * The enclave's refusals of a body it does not read, on the wire: 413 BODY_TOO_LARGE (a declared
 * length past MAX_SEALED_REQUEST_BYTES) and 415 CONTENT_TYPE_UNSUPPORTED each say `Connection: close`
 * and the connection closes, so the host never sends another request on a connection the enclave
 * drops. Two layers say so: enclave/server.ts's header, and enclave/http.ts's ClosingWhenUnreadResponse
 * (node had not marked the request complete when the enclave answered, even with its whole body
 * come): each case fails with both gone, not with one (checked). server.test.ts checks the header
 * through node's client; these check the bytes and the close.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { RunningServer } from "../../enclave/http.ts";
import { MAX_SEALED_REQUEST_BYTES } from "../../enclave/http.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import { listenInRange } from "../helpers/listen-in-range.ts";
import { rawExchange } from "../helpers/raw-http.ts";
import { bootWith, ScriptedEngine } from "./helpers.ts";

const servers: RunningServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

/** A booted enclave's server whose engine is never asked (nothing here is opened): its port. */
async function enclavePort(): Promise<number> {
  const server = await listenInRange(createEnclaveApp(await bootWith(new ScriptedEngine(() => []))));
  servers.push(server);
  return server.port;
}

/** `bytes` sent on a new connection, closed by the enclave: the answer's status line, lower-cased headers and JSON. */
async function closingAnswer(port: number, bytes: string) {
  const [head = "", json = ""] = (await rawExchange(port, bytes)).split("\r\n\r\n");
  const [status, ...headers] = head.split("\r\n");
  return { status, headers: headers.map((h) => h.toLowerCase()), body: JSON.parse(json) as unknown };
}

describe("enclave: refusals that leave the body unread close the connection", () => {
  it("413 BODY_TOO_LARGE, a declared length past the limit (part of the body sent)", async () => {
    const port = await enclavePort();
    const answer = await closingAnswer(
      port,
      "POST /sealed HTTP/1.1\r\nHost: enclave\r\nContent-Type: application/octet-stream\r\n" +
        `Content-Length: ${MAX_SEALED_REQUEST_BYTES + 1}\r\n\r\n${"x".repeat(1024)}`,
    );
    expect(answer.status).toBe("HTTP/1.1 413 Payload Too Large");
    expect(answer.headers).toContain("connection: close");
    expect(answer.body).toEqual({
      error: {
        code: "BODY_TOO_LARGE",
        message: `sealed request: expected at most ${MAX_SEALED_REQUEST_BYTES} bytes`,
      },
    });
  });

  it.each([
    { name: "the whole body sent with the headers", sent: "x".repeat(64) },
    { name: "no byte of the body sent", sent: "" },
  ])("415 CONTENT_TYPE_UNSUPPORTED, $name", async ({ sent }) => {
    const port = await enclavePort();
    const answer = await closingAnswer(
      port,
      `POST /sealed HTTP/1.1\r\nHost: enclave\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n${sent}`,
    );
    expect(answer.status).toBe("HTTP/1.1 415 Unsupported Media Type");
    expect(answer.headers).toContain("connection: close");
    expect(answer.body).toEqual({
      error: {
        code: "CONTENT_TYPE_UNSUPPORTED",
        message: '/sealed: expected content-type application/octet-stream, found "text/plain"',
      },
    });
  });
});
