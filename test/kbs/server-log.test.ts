/**
 * The key broker's log of requests refused before any of its routes saw them, as `kbs serve`
 * listens (listenBroker): one the server cannot read (a malformed request, headers over node's
 * limit, a Host it cannot make a URL of) and one past the bound on requests under way on one
 * connection. Each is one line with status, code and sizes: never what the client sent.
 */
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { CLIENT_LIMITS, KeyBroker } from "../../attestation/kbs/broker.ts";
import {
  type BrokerAppOptions,
  type BrokerLogEntry,
  createBrokerApp,
  listenBroker,
  NOT_SERVING_YET,
} from "../../attestation/kbs/server.ts";
import type { RunningServer } from "../../enclave/http.ts";

/** Stands for anything secret a client may put in what it sends (a nonce, a token). */
const SECRET = "nonce-0f1e2d3c4b5a69788796a5b4c3d2e1f0";

const servers: RunningServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function serve(options: BrokerAppOptions = {}): Promise<{ server: RunningServer; logs: BrokerLogEntry[] }> {
  const logs: BrokerLogEntry[] = [];
  const log = (entry: BrokerLogEntry) => logs.push(entry);
  const broker = new KeyBroker([], { clientLimits: CLIENT_LIMITS });
  const server = await listenBroker(() => createBrokerApp(broker, log, options), log, "127.0.0.1", 0);
  servers.push(server);
  return { server, logs };
}

/**
 * Sends `bytes` on a new connection and resolves with all that comes back once the broker closes it;
 * the connection's local port goes to `ports`, when given.
 */
function exchange(server: RunningServer, bytes: string, ports?: number[]): Promise<string> {
  return new Promise((resolve) => {
    const client = connect(server.port, "127.0.0.1", () => ports?.push(client.localPort as number));
    let answer = "";
    client.on("data", (chunk: Buffer) => void (answer += chunk.toString("latin1")));
    client.on("error", () => {}); // reset: the broker closes it with requests unread
    client.once("close", () => resolve(answer));
    client.end(bytes);
  });
}

async function until(predicate: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The body of an answer written on a raw connection (its JSON error). */
const bodyOf = (answer: string) => answer.slice(answer.indexOf("\r\n\r\n") + 4);

describe("key broker log: requests refused before any route", () => {
  it("logs a request the server cannot read with its status, code, reason and answer size, and nothing it sent", async () => {
    const { server, logs } = await serve();
    const malformed = await exchange(server, `POST /v1/kbs/release HTTP/1.1\r\nhost: 127.0.0.1\r\n${SECRET}\r\n\r\n`);
    const tooLarge = await exchange(
      server,
      `POST /v1/kbs/release HTTP/1.1\r\nhost: 127.0.0.1\r\nx-nonce: ${SECRET.repeat(600)}\r\n\r\n`,
    );
    const badHost = await exchange(server, `GET /healthz HTTP/1.1\r\nhost: ${SECRET}@x\r\nconnection: close\r\n\r\n`);
    await until(() => logs.length === 3);
    // Each line says what its answer was: its status, code, message and body size.
    const expected = [malformed, tooLarge, badHost].map((answer) => {
      const { code, message } = (JSON.parse(bodyOf(answer)) as { error: { code: string; message: string } }).error;
      const status = Number(answer.slice(9, 12));
      return { status, code, reason: message, responseBytes: Buffer.byteLength(bodyOf(answer)) };
    });
    expect(expected.map((e) => `${e.status} ${e.code}`)).toEqual([
      "400 REQUEST_UNREADABLE",
      "431 HEADERS_TOO_LARGE",
      "400 REQUEST_UNREADABLE",
    ]);
    // No peer: the server's refusal (enclave/http.ts's Refusal) names no socket.
    expect(logs).toEqual(
      expected.map((e, i) => ({ event: "request-refused", ...e, method: i === 2 ? "GET" : null, peer: null })),
    );
    expect(JSON.stringify(logs)).not.toContain(SECRET);
  });

  it("logs a release attempt whose body the server could not read as the server's answer to it, once", async () => {
    const { server, logs } = await serve();
    // A chunked body with a bad chunk size after its first chunk: node's 400 reaches the client.
    const chunk = `{"n":"${SECRET}"`;
    const answer = await exchange(
      server,
      "POST /v1/kbs/release HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n" +
        `transfer-encoding: chunked\r\n\r\n${chunk.length.toString(16)}\r\n${chunk}\r\nzz\r\n`,
    );
    const answered = (JSON.parse(bodyOf(answer)) as { error: { code: string; message: string } }).error;
    expect(answered.code).toBe("REQUEST_UNREADABLE");
    await until(() => logs.length === 1);
    await new Promise((r) => setTimeout(r, 100)); // no second line
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ event: "release", outcome: "refused", keyId: null, code: "REQUEST_UNREADABLE" });
    expect((logs[0] as { reason: string }).reason).toMatch(
      /^request: expected HTTP\/1\.1 this server can read, found a parse error \(HPE_INVALID_CHUNK_SIZE\), answered by the server \(the body's stream: Error: aborted\)$/,
    );
    expect(JSON.stringify(logs)).not.toContain(SECRET);
  });

  it("logs each request refused past the bound on requests under way on one connection (429, unanswered)", async () => {
    const { server, logs } = await serve({ maxRequestsPerConnection: 4 });
    const ports: number[] = [];
    const answers = await exchange(
      server,
      `GET /healthz?n=${SECRET} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`.repeat(200),
      ports,
    );
    expect(ports).toHaveLength(1);
    const answered = answers.split("HTTP/1.1 200").length - 1;
    await until(() => logs.length > 0);
    await new Promise((r) => setTimeout(r, 100)); // every request read with the one past the bound
    expect(answered).toBeLessThanOrEqual(4);
    expect(logs.length).toBeGreaterThan(0);
    expect(logs.length).toBeLessThanOrEqual(200 - answered);
    for (const entry of logs) {
      expect(entry).toEqual({
        event: "request-refused",
        status: 429,
        code: null,
        reason: "connection: more than 4 requests under way on it at once (pipelined); closed, this one unanswered",
        method: "GET",
        responseBytes: 0,
        peer: `127.0.0.1:${ports[0]}`,
      });
    }
    expect(JSON.stringify(logs)).not.toContain(SECRET);
  });

  it("refuses every request until its app is built from the address bound (kbs serve's loopback check): 503 KBS_BUSY, logged", async () => {
    const logs: BrokerLogEntry[] = [];
    const log = (entry: BrokerLogEntry) => logs.push(entry);
    const broker = new KeyBroker([], { clientLimits: CLIENT_LIMITS });
    const early: {
      bound: string;
      status: number;
      retryAfter: string | null;
      contentType: string | null;
      body: unknown;
    }[] = [];
    // A request that comes after listening and before the check passed: awaited inside the check,
    // so it is certain to arrive in that window.
    const server = await listenBroker(
      async (bound) => {
        const answer = await fetch(`${bound.url}/v1/kbs/challenge`, { method: "POST" });
        early.push({
          bound: bound.address,
          status: answer.status,
          retryAfter: answer.headers.get("retry-after"),
          contentType: answer.headers.get("content-type"),
          body: await answer.json(),
        });
        return createBrokerApp(broker, log);
      },
      log,
      "127.0.0.1",
      0,
    );
    servers.push(server);
    expect(early).toEqual([
      {
        bound: "127.0.0.1",
        status: 503,
        retryAfter: "1",
        contentType: "application/json",
        body: { error: { code: "KBS_BUSY", message: NOT_SERVING_YET } },
      },
    ]);
    expect(logs).toEqual([
      {
        event: "request-refused",
        status: 503,
        code: "KBS_BUSY",
        reason: NOT_SERVING_YET,
        method: "POST",
        responseBytes: JSON.stringify({ error: { code: "KBS_BUSY", message: NOT_SERVING_YET } }).length,
        peer: expect.stringMatching(/^127\.0\.0\.1:[0-9]+$/),
      },
    ]);
    // Served once the app is built.
    expect((await fetch(`${server.url}/v1/kbs/challenge`, { method: "POST" })).status).toBe(200);
  });

  it("stops listening when building its app throws (the address bound refused), and rejects with that error", async () => {
    let port = 0;
    const refused = new Error("bound off loopback");
    const listening = listenBroker(
      (bound) => {
        port = bound.port;
        throw refused;
      },
      () => {},
      "127.0.0.1",
      0,
    );
    await expect(listening).rejects.toBe(refused);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });
});
