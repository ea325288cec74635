/**
 * An answer given before its request's body has come (a refusal before reading it: no API key, a
 * wrong route, an oversize declared length) says `Connection: close`, on every server the shared
 * listener serves (enclave/http.ts). Left `keep-alive`, the client may send its next request on the
 * connection while @hono/node-server drains the unread body for at most 500 ms and then drops it:
 * that next request is lost ("other side closed"). An answer to a request read whole keeps the
 * connection.
 */
import { connect } from "node:net";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { listen, type RunningServer } from "../../enclave/http.ts";

let server: RunningServer;

beforeAll(async () => {
  const app = new Hono();
  // Answers without reading the body (as a refusal before the body does).
  app.post("/refuse", (c) => c.json({ error: { code: "UNAUTHENTICATED" } }, 401));
  // Reads the body whole first.
  app.post("/read", async (c) => c.json({ bytes: (await c.req.arrayBuffer()).byteLength }));
  server = await listen(app.fetch, "127.0.0.1", 0);
});

afterAll(() => server.close());

/** Sends `head` (and `body`) on a fresh connection; resolves with the answer's head once it has come. */
function answerHead(head: string, body: Buffer = Buffer.alloc(0)): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(server.port, "127.0.0.1");
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within 10 s; received ${JSON.stringify(text)}`));
    }, 10_000);
    socket.once("connect", () => {
      socket.write(head);
      if (body.length > 0) socket.write(body);
    });
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        clearTimeout(timer);
        socket.destroy();
        resolve(text.slice(0, end).toLowerCase());
      }
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

const post = (path: string, length: number) =>
  `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;

describe("an answer before the body", () => {
  it.each([
    {
      name: "says Connection: close when the body has not all come (4 MiB declared, 64 KiB sent)",
      head: post("/refuse", 4 * 1024 * 1024),
      body: Buffer.alloc(64 * 1024, 0x61),
      status: 401,
      connection: "close",
    },
    {
      name: "says Connection: close when no byte of the body has come",
      head: post("/refuse", 1024),
      status: 401,
      connection: "close",
    },
    {
      name: "keeps the connection for an answer to a body read whole",
      head: post("/read", 64 * 1024),
      body: Buffer.alloc(64 * 1024, 0x61),
      status: 200,
      connection: "keep-alive",
    },
    {
      name: "keeps the connection for a request with no body",
      head: post("/refuse", 0),
      status: 401,
      connection: "keep-alive",
    },
    {
      name: "keeps the connection for a request whose Content-Length is zero spelled with more digits (00, as node reads it: no body)",
      head: post("/refuse", 0).replace("Content-Length: 0", "Content-Length: 00"),
      status: 401,
      connection: "keep-alive",
    },
  ])("$name", async ({ head: request, body, status, connection }) => {
    const head = await answerHead(request, body);
    expect(head).toMatch(new RegExp(`^http/1\\.1 ${status} `));
    expect(head).toContain(`\r\nconnection: ${connection}`);
  });
});
