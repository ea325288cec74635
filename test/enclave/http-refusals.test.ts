/**
 * What every server (enclave/http.ts listen) answers to a request it cannot read, before any
 * handler sees it: node's own parse errors and timeouts (its `clientError`) and @hono/node-server's
 * refusals (a Host header or target it cannot make a URL of) each get the JSON error body with a
 * stable code, `Connection: close`, and nothing of what the client sent; `onRefused` hears of each.
 */
import { connect, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { type ListenOptions, listen, type Refusal, UNREADABLE_LINGER_MS } from "../../enclave/http.ts";
import { holdTimeouts } from "../helpers/held-timers.ts";
import { rawExchange } from "../helpers/raw-http.ts";

/** Text a malformed request carries, which no answer may echo. */
const MARKER = "CLIENT-BYTES-MARKER";

/** An HTTP/1.1 answer's status, lower-cased headers and body. */
function parseAnswer(text: string): { status: number; headers: Record<string, string>; body: unknown } {
  const end = text.indexOf("\r\n\r\n");
  expect(end).toBeGreaterThan(0);
  const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine?.split(" ")[1]), headers, body: JSON.parse(text.slice(end + 4)) };
}

/**
 * A connection to `port` that has sent `bytes` (left open by the client after the server's end when
 * `allowHalfOpen`): everything the server wrote so far, and when it closed.
 */
function rawConnection(
  port: number,
  bytes: string,
  allowHalfOpen = false,
): { socket: Socket; text: () => string; closed: Promise<unknown> } {
  const socket = connect({ port, host: "127.0.0.1", allowHalfOpen });
  let text = "";
  socket.on("data", (chunk: Buffer) => {
    text += chunk.toString("latin1");
  });
  socket.once("error", () => {});
  const closed = new Promise((r) => socket.once("close", r));
  socket.write(bytes);
  return { socket, text: () => text, closed };
}

/** Waits until `done` holds, 3 s at most. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 300 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
}

async function withServer(
  options: ListenOptions,
  run: (port: number, refusals: Refusal[], handled: () => number) => Promise<void>,
): Promise<void> {
  const refusals: Refusal[] = [];
  let handled = 0;
  const server = await listen(
    () => {
      handled++;
      return new Response("ok");
    },
    "127.0.0.1",
    0,
    { ...options, onRefused: (refusal) => refusals.push(refusal) },
  );
  try {
    await run(server.port, refusals, () => handled);
  } finally {
    await server.close();
  }
}

const cases: readonly {
  readonly name: string;
  readonly request: string;
  readonly status: number;
  readonly code: string;
  readonly message: RegExp;
  readonly method: string | null;
}[] = [
  {
    name: "a malformed request line",
    request: `GET /${MARKER} HTTP/1.1 ${MARKER}\r\nHost: 127.0.0.1\r\n\r\n`,
    status: 400,
    code: "REQUEST_UNREADABLE",
    message: /^request: expected HTTP\/1\.1 this server can read, found a parse error \(HPE_[A-Z_]+\)$/,
    method: null,
  },
  {
    name: "a header over node's 16 KiB",
    request: `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${MARKER.repeat(2000)}\r\n\r\n`,
    status: 431,
    code: "HEADERS_TOO_LARGE",
    message: /^request headers: expected at most 16384 bytes, found more$/,
    method: null,
  },
  {
    name: "a Host header that is no host name",
    request: `GET / HTTP/1.1\r\nHost: ${MARKER} ${MARKER}\r\n\r\n`,
    status: 400,
    code: "REQUEST_UNREADABLE",
    message:
      /^request target or Host header: expected a path starting with \/ and a host name, found one this server cannot read$/,
    method: "GET",
  },
  {
    name: "OPTIONS * (the asterisk form)",
    request: "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    status: 400,
    code: "REQUEST_UNREADABLE",
    message: /^request target or Host header: /,
    method: "OPTIONS",
  },
];

describe("listen: requests no handler can read", () => {
  for (const c of cases) {
    it(`answers ${c.name} with ${c.status} ${c.code} as JSON, echoing nothing, and tells onRefused`, async () => {
      await withServer({}, async (port, refusals, handled) => {
        const text = await rawExchange(port, c.request);
        expect(text).not.toContain(MARKER);
        const answer = parseAnswer(text);
        expect(answer.status).toBe(c.status);
        expect(answer.headers["content-type"]).toBe("application/json");
        expect(answer.headers.connection).toBe("close");
        const body = answer.body as { error: { code: string; message: string } };
        expect(Object.keys(body)).toEqual(["error"]);
        expect(body.error.code).toBe(c.code);
        expect(body.error.message).toMatch(c.message);
        expect(handled()).toBe(0);
        expect(refusals).toEqual([
          {
            status: c.status,
            code: c.code,
            message: body.error.message,
            method: c.method,
            responseBytes: Buffer.byteLength(JSON.stringify(body)),
          },
        ]);
      });
    });
  }

  it("answers headers not complete within the headers timeout with 408 REQUEST_TIMEOUT as JSON", async () => {
    await withServer({ firstRequestTimeoutMs: 60_000, headersTimeoutMs: 300 }, async (port, refusals) => {
      const text = await rawExchange(port, `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${MARKER}`);
      expect(text).not.toContain(MARKER);
      const answer = parseAnswer(text);
      expect(answer.status).toBe(408);
      expect(answer.body).toEqual({
        error: {
          code: "REQUEST_TIMEOUT",
          message: "request: expected its headers within 300 ms and all of it within 120000 ms, found it incomplete",
        },
      });
      expect(refusals.map((r) => [r.status, r.code])).toEqual([[408, "REQUEST_TIMEOUT"]]);
    });
  });

  it("still serves a well-formed request on the same server", async () => {
    await withServer({}, async (port, refusals, handled) => {
      await rawExchange(port, "BAD\r\n\r\n");
      const text = await rawExchange(port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
      expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/);
      expect(handled()).toBe(1);
      expect(refusals).toHaveLength(1);
    });
  });

  it("lets a client that resets its connection go, answering and reporting nothing", async () => {
    await withServer({}, async (port, refusals) => {
      const socket = connect(port, "127.0.0.1");
      await new Promise((r) => socket.once("connect", r));
      socket.write("GET / HTTP/1.1\r\nHost: 127");
      await new Promise((r) => setTimeout(r, 50));
      socket.resetAndDestroy();
      await new Promise((r) => setTimeout(r, 100));
      expect(refusals).toEqual([]);
    });
  });
});

/**
 * Sends `head` on a fresh connection, reading nothing for `readAfterMs`. Resolves with all the
 * server wrote and the error the connection ended with (null for a clean close).
 */
function sendThenReadLate(
  port: number,
  head: string,
  readAfterMs: number,
): Promise<{ text: string; error: string | null }> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    let text = "";
    let error: string | null = null;
    socket.pause();
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
    });
    socket.once("error", (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    socket.once("close", () => resolve({ text, error }));
    socket.once("connect", () => {
      socket.write(head);
      setTimeout(() => socket.resume(), readAfterMs);
    });
  });
}

describe("listen: closing a connection after its refusal", () => {
  it("does not lose the answer to a reset when the client is still sending: it is read late, after all the client sent", async () => {
    await withServer({}, async (port, refusals) => {
      // Headers over node's 16 KiB, and megabytes more: the server answers after the first 16 KiB.
      const head = `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${"a".repeat(4_000_000)}`;
      const { text, error } = await sendThenReadLate(port, head, 300);
      expect(error).toBeNull();
      expect(parseAnswer(text).status).toBe(431);
      expect(refusals.map((r) => r.code)).toEqual(["HEADERS_TOO_LARGE"]);
    });
  });

  it("keeps the connection of a client that goes on sending after its answer open until the linger ends it", async () => {
    // The linger's timer is held: the connection is shown open while the client sends, and closed
    // by that timer's firing, not by the time a loaded machine takes.
    const lingers = holdTimeouts(UNREADABLE_LINGER_MS);
    try {
      await withServer({}, async (port) => {
        const { socket, text, closed } = rawConnection(port, "BAD\r\n\r\n", true);
        let isClosed = false;
        void closed.then(() => (isClosed = true));
        let sentAfterAnswer = 0;
        const sending = setInterval(() => {
          if (socket.destroyed) return;
          socket.write("x".repeat(16_384));
          if (text().includes("\r\n\r\n{")) sentAfterAnswer++;
        }, 20);
        try {
          for (let i = 0; i < 1000 && sentAfterAnswer < 10 && !isClosed; i++)
            await new Promise((r) => setTimeout(r, 10));
          expect(parseAnswer(text()).status).toBe(400);
          // Ten writes after its answer, the connection is still open, and its linger is set.
          expect({ sentAfterAnswer, isClosed }).toEqual({ sentAfterAnswer: 10, isClosed: false });
          expect(lingers.held.map((t) => t.cleared)).toEqual([false]);
          // The linger's end closes it.
          expect(lingers.held[0]?.fire()).toBe(true);
          await closed;
        } finally {
          clearInterval(sending);
        }
      });
    } finally {
      lingers.restore();
    }
  });

  it("hands no request read after a 408 to the handler: the connection is closed instead", async () => {
    await withServer({ firstRequestTimeoutMs: 60_000, headersTimeoutMs: 300 }, async (port, refusals, handled) => {
      const { socket, text, closed } = rawConnection(port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a", true);
      await until(() => text().includes("\r\n\r\n{"));
      expect(parseAnswer(text()).status).toBe(408);
      // The request timed out, and another after it: neither may reach the handler.
      socket.end("\r\n\r\nGET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      await closed;
      expect(handled()).toBe(0);
      expect(refusals.map((r) => r.status)).toEqual([408]);
    });
  });
});

describe("a request node cannot read, sent while an answer is under way", () => {
  // The server's own answer would land inside the answer begun (node's internal `_httpMessage` tells
  // it has begun): the connection is closed instead, nothing written, nothing told to onRefused.
  it("closes the connection without writing its 400 into the answer begun", async () => {
    const refusals: Refusal[] = [];
    const server = await listen(
      () =>
        new Response(
          new ReadableStream({
            start: (controller) => controller.enqueue(new TextEncoder().encode("part-one")),
          }),
        ),
      "127.0.0.1",
      0,
      { onRefused: (refusal) => refusals.push(refusal) },
    );
    try {
      const { socket, text, closed } = rawConnection(server.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
      await until(() => text().includes("part-one"));
      expect(text()).toContain("part-one");
      socket.write(`BAD ${MARKER}\r\n\r\n`);
      await closed;
      expect(text()).not.toContain("REQUEST_UNREADABLE");
      expect(text().match(/HTTP\/1\.1 /g)).toHaveLength(1);
      expect(refusals).toEqual([]);
    } finally {
      await server.close();
    }
  });
});

describe("a body node cannot read, after its request was answered", () => {
  // The handler's answer was whole before the bad chunk came (node reads on what it left unread):
  // that request's own line is written already, so the server's 400 is told to onRefused.
  it("closes a connection whose request was answered before its body came: what follows is never read as its body", async () => {
    await withServer({}, async (port, refusals) => {
      const { socket, text, closed } = rawConnection(
        port,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
      );
      await until(() => text().includes("\r\n\r\nok"));
      // The answer said the connection ends with it (http-unread-body.test.ts), and it does.
      expect(text().toLowerCase()).toContain("\r\nconnection: close\r\n");
      socket.write(`ZZZ${MARKER}\r\n`);
      await closed;
      expect(text().endsWith("ok")).toBe(true);
      expect(refusals).toEqual([]);
    });
  });
});

describe("a body node cannot read, after its answer kept the connection", () => {
  // Only an answer that says keep-alive itself keeps a connection whose body has not all come (no
  // route of ours does): the route had the request and answered it, so the server's 400 is no
  // refusal "before any route". It goes to onBodyRefused, with node's method; a server without it
  // (whose line for that request is written already) has it told to onRefused.
  const keepAlive = () => new Response("ok", { headers: { connection: "keep-alive" } });
  const head = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";

  async function badChunkAfterAnswer(options: ListenOptions): Promise<string> {
    const server = await listen(keepAlive, "127.0.0.1", 0, options);
    try {
      const { socket, text, closed } = rawConnection(server.port, head);
      await until(() => text().includes("\r\n\r\nok"));
      expect(text().toLowerCase()).toContain("\r\nconnection: keep-alive\r\n");
      socket.write(`zz${MARKER}\r\n`);
      await closed;
      return text();
    } finally {
      await server.close();
    }
  }

  it("tells onBodyRefused of the server's 400, with node's method, and not onRefused", async () => {
    const told = { refused: [] as Refusal[], bodyRefused: [] as Refusal[] };
    const text = await badChunkAfterAnswer({
      onRefused: (refusal) => told.refused.push(refusal),
      onBodyRefused: (refusal) => told.bodyRefused.push(refusal),
    });
    expect(text).toContain("HTTP/1.1 400 ");
    expect(told.bodyRefused.map((r) => [r.status, r.code, r.method])).toEqual([[400, "REQUEST_UNREADABLE", "POST"]]);
    expect(told.refused).toEqual([]);
  });

  it("tells onRefused, with node's method, when the server has no onBodyRefused", async () => {
    const refused: Refusal[] = [];
    await badChunkAfterAnswer({ onRefused: (refusal) => refused.push(refusal) });
    expect(refused.map((r) => [r.status, r.code, r.method])).toEqual([[400, "REQUEST_UNREADABLE", "POST"]]);
  });
});

describe("a body node cannot read once its handler has the request", () => {
  /**
   * A server whose handler reads each body whole (holding its answer until then), and holds its
   * answer to a GET until the run ends, and what it was told: onRefused, onBodyRefused, and the
   * requests its handler took.
   */
  async function withReadingServer(
    run: (port: number, told: { refused: Refusal[]; bodyRefused: Refusal[]; handled: () => number }) => Promise<void>,
  ): Promise<void> {
    const told = { refused: [] as Refusal[], bodyRefused: [] as Refusal[] };
    let handled = 0;
    let release = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    const server = await listen(
      async (request) => {
        handled++;
        if (request.method === "GET") await held;
        else await request.arrayBuffer();
        return new Response("ok");
      },
      "127.0.0.1",
      0,
      {
        onRefused: (refusal) => told.refused.push(refusal),
        onBodyRefused: (refusal) => told.bodyRefused.push(refusal),
      },
    );
    try {
      await run(server.port, { ...told, handled: () => handled });
    } finally {
      release();
      await server.close();
    }
  }

  /** A chunked POST whose second chunk size is no hex number. */
  const badChunk = `POST /${MARKER} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz${MARKER}\r\n`;

  /** What onBodyRefused is told of badChunk, once its answer `text` is read. */
  function expectedRefusal(text: string): Refusal {
    const body = text.slice(text.indexOf("\r\n\r\n") + 4);
    const { code, message } = (JSON.parse(body) as { error: { code: string; message: string } }).error;
    return { status: 400, code, message, method: "POST", responseBytes: Buffer.byteLength(body) };
  }

  it("tells onBodyRefused of the server's 400, once, with node's method, and not onRefused", async () => {
    await withReadingServer(async (port, told) => {
      const { text, closed } = rawConnection(port, badChunk);
      await closed;
      await new Promise((r) => setTimeout(r, 50)); // no second call
      expect(told.handled()).toBe(1);
      expect(text()).not.toContain(MARKER);
      expect(parseAnswer(text()).status).toBe(400);
      expect(told.bodyRefused).toEqual([expectedRefusal(text())]);
      expect(told.bodyRefused[0]?.message).toContain("HPE_INVALID_CHUNK_SIZE");
      expect(told.refused).toEqual([]);
    });
  });

  it("tells onBodyRefused of a pipelined request's, whose answer waits for the one before it", async () => {
    // The GET's answer is under way when the POST with the bad chunk is read: the POST's answer has
    // no connection yet (node emits no close for it), and the server's 400 is the connection's.
    await withReadingServer(async (port, told) => {
      const { text, closed } = rawConnection(port, `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n${badChunk}`);
      await closed;
      await new Promise((r) => setTimeout(r, 50));
      expect(told.handled()).toBe(2);
      expect(parseAnswer(text()).status).toBe(400);
      expect(told.bodyRefused).toEqual([expectedRefusal(text())]);
      expect(told.refused).toEqual([]);
    });
  });
});
