/**
 * The SDK's two HTTP transports (node:http, the default on Node.js, and fetch) against a real
 * loopback server: the same answers, streaming, errors and aborts from both.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, createServer as createNetServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from "vitest";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { nodeTransport } from "../../client/node-transport.ts";
import { connect } from "../../client/sdk.ts";
import { defaultTransport, fetchTransport, readBoundedText, type Transport } from "../../client/transport.ts";
import { generateManifestSigningKey } from "../../manifests/sign.ts";
import type { ByteSource } from "../../sealed/index.ts";
import { refusedPort } from "../helpers/refused-port.ts";

/** Node's ReadableStream (fetch's body) is async-iterable too. */
const iterate = (body: ByteSource) => body as AsyncIterable<Uint8Array>;

let server: Server;
let base: string;
/** Called by /stream when the client has read chunk i, so the server can send chunk i+1. */
let nextChunk: (() => void) | null = null;

function handler(req: IncomingMessage, res: ServerResponse) {
  const parts: Buffer[] = [];
  req.on("data", (c: Buffer) => parts.push(c));
  req.on("end", () => {
    const body = Buffer.concat(parts).toString();
    if (req.url === "/echo") {
      res.writeHead(201, { "content-type": "application/json", "x-seen-auth": req.headers.authorization ?? "" });
      res.end(
        JSON.stringify({
          method: req.method,
          body,
          type: req.headers["content-type"] ?? null,
          length: req.headers["content-length"] ?? null,
        }),
      );
    } else if (req.url === "/stream") {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      let i = 0;
      const send = () => {
        if (i === 3) {
          res.end();
          return;
        }
        res.write(Buffer.from([i++]));
        nextChunk = send;
      };
      send();
    } else if (req.url === "/cut") {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": "100" });
      res.write(Buffer.alloc(10), () => res.destroy());
    } else if (req.url === "/big") {
      // 64 KiB chunks for as long as the client reads, up to 8 MiB.
      res.writeHead(200, { "content-type": "application/octet-stream" });
      let sent = 0;
      const more = () => {
        while (sent < 8 << 20 && !res.destroyed) {
          sent += 64 << 10;
          if (!res.write(Buffer.alloc(64 << 10, 0x61))) return;
        }
        if (!res.destroyed) res.end();
      };
      res.on("drain", more);
      more();
    } else if (req.url === "/whole") {
      // The whole answer at once: the client has all of it before it reads the first chunk.
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.write(Buffer.alloc(60, 1));
      res.end(Buffer.alloc(60, 2));
    } else if (req.url?.startsWith("/where/")) {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(req.url);
    } else if (req.url === "/silent") {
      // never answers
    } else if (req.url === "/hang") {
      res.writeHead(200);
      res.write("x");
    } else {
      res.writeHead(404, { "retry-after": "7" });
      res.end("nope");
    }
  });
}

beforeAll(async () => {
  server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
});

const transports: [string, () => Transport][] = [
  ["node:http", nodeTransport],
  ["fetch", () => fetchTransport(fetch)],
];

describe.each(transports)("%s transport", (_name, make) => {
  it("sends method, headers and body (its content-length in bytes); returns status, headers and the whole text", async () => {
    const transport = make();
    const response = await transport(`${base}/echo`, {
      method: "POST",
      headers: { authorization: "Bearer k", "content-type": "application/json" },
      body: '{"a":1}',
    });
    expect(response.status).toBe(201);
    expect(response.header("X-Seen-Auth")).toBe("Bearer k");
    expect(response.header("absent")).toBeNull();
    expect(JSON.parse(await response.text(1 << 20))).toEqual({
      method: "POST",
      body: '{"a":1}',
      type: "application/json",
      length: "7",
    });
    const bytes = await transport(`${base}/echo`, { method: "POST", headers: {}, body: new Uint8Array([104, 105]) });
    expect(JSON.parse(await bytes.text(1 << 20))).toMatchObject({ body: "hi", length: "2" });
    // A body's length in bytes, not characters.
    const utf8 = await transport(`${base}/echo`, { method: "POST", headers: {}, body: "é" });
    expect(JSON.parse(await utf8.text(1 << 20))).toMatchObject({ body: "é", length: "2" });
  });

  it("sends each request to its own URL's path and query, however many URLs one transport is asked", async () => {
    const transport = make();
    const paths = Array.from({ length: 20 }, (_, i) => `/where/${i}?q=${i}`);
    for (const path of [...paths, paths[0]!, paths[19]!]) {
      const response = await transport(`${base}${path}`, { method: "GET", headers: {} });
      expect(await response.text(1 << 10)).toBe(path);
    }
  });

  it("reads a body as text only up to the caller's limit, then closes it", async () => {
    const response = await make()(`${base}/big`, { method: "GET", headers: {} });
    await expect(response.text(100_000)).rejects.toMatchObject({ code: "RESPONSE_TOO_LARGE", maxBytes: 100_000 });
    const small = await make()(`${base}/missing`, { method: "GET", headers: {} });
    await expect(small.text(3)).rejects.toMatchObject({ code: "RESPONSE_TOO_LARGE" }); // "nope" is 4 bytes
  });

  it("resolves any HTTP status (errors are the caller's to read)", async () => {
    const response = await make()(`${base}/missing`, { method: "GET", headers: {} });
    expect(response.status).toBe(404);
    expect(response.header("retry-after")).toBe("7");
    expect(await response.text(1 << 20)).toBe("nope");
  });

  it("yields each chunk as it arrives", async () => {
    const response = await make()(`${base}/stream`, { method: "GET", headers: {} });
    const seen: number[] = [];
    for await (const chunk of iterate(response.body)) {
      // The server sends the next chunk only after this one was read: nothing waits for the end.
      seen.push(...chunk);
      const step = nextChunk;
      nextChunk = null;
      step?.();
    }
    expect(seen).toEqual([0, 1, 2]);
  });

  it("throws from the body when the connection is cut before the end", async () => {
    const response = await make()(`${base}/cut`, { method: "GET", headers: {} });
    await expect(
      (async () => {
        for await (const _ of iterate(response.body)) {
          // read on
        }
      })(),
    ).rejects.toThrow();
  });

  it("rejects when nothing listens, and when aborted before the request, before the headers or during the body", async () => {
    // A port held refused for the test (not a port-0 pick freed, which another process could take).
    const { port, close } = await refusedPort();
    onTestFinished(close);
    await expect(make()(`http://127.0.0.1:${port}/`, { method: "GET", headers: {} })).rejects.toBeDefined();

    const early = new AbortController();
    early.abort();
    await expect(make()(`${base}/echo`, { method: "GET", headers: {}, signal: early.signal })).rejects.toBeDefined();

    // Aborted while waiting for the headers of a host that does not answer.
    const waiting = new AbortController();
    const asking = make()(`${base}/silent`, { method: "GET", headers: {}, signal: waiting.signal });
    setTimeout(() => waiting.abort(), 20);
    await expect(asking).rejects.toBeDefined();

    const late = new AbortController();
    const response = await make()(`${base}/hang`, { method: "GET", headers: {}, signal: late.signal });
    const reading = (async () => {
      for await (const _ of iterate(response.body)) late.abort();
    })();
    await expect(reading).rejects.toBeDefined();
  });
});

describe("readBoundedText over a stream without async iteration (older browsers)", () => {
  it("cancels the stream it stops reading", async () => {
    let cancelled = false;
    let pulled = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(1000));
      },
      cancel() {
        cancelled = true;
      },
    });
    // Only getReader, as a browser stream without Symbol.asyncIterator offers.
    const bare = { getReader: () => stream.getReader() } as unknown as ReadableStream<Uint8Array>;
    await expect(readBoundedText(bare, 2500)).rejects.toMatchObject({ code: "RESPONSE_TOO_LARGE" });
    expect(cancelled).toBe(true);
    expect(pulled).toBeLessThan(10);
  });
});

describe("node:http transport timeouts", () => {
  it("gives up on a host that sends nothing for the idle timeout, before the headers and mid-body", async () => {
    const transport = nodeTransport({ idleTimeoutMs: 100 });
    const before = await transport(`${base}/silent`, { method: "GET", headers: {} }).catch((e: unknown) => e);
    expect(before).toMatchObject({ code: "HOST_TIMEOUT" });
    // /hang sends its first chunk and then nothing, never ending: only the idle timeout ends the read.
    const response = await transport(`${base}/hang`, { method: "GET", headers: {} });
    await expect(
      (async () => {
        for await (const _ of iterate(response.body)) {
          // the first chunk comes, then nothing
        }
      })(),
    ).rejects.toMatchObject({ name: "HostTimeoutError", code: "HOST_TIMEOUT" });
  });
});

describe("node:http transport over https:", () => {
  it("opens a TLS connection for an https: URL (the host sees a TLS handshake record first)", async () => {
    const first: number[] = [];
    const tcp = createNetServer((socket) => {
      socket.once("data", (bytes: Buffer) => {
        first.push(bytes[0] as number);
        socket.destroy();
      });
    });
    await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
    try {
      const url = `https://127.0.0.1:${(tcp.address() as AddressInfo).port}/`;
      await expect(nodeTransport()(url, { method: "GET", headers: {} })).rejects.toBeDefined();
      expect(first).toEqual([0x16]); // a TLS handshake record; plain HTTP would start with "G"
    } finally {
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    }
  });
});

/** A policy for these hosts, which never get as far as being verified. */
async function anyPolicy() {
  const operator = await generateManifestSigningKey("EdDSA");
  return simulatorClientPolicy({
    tee: "sim-snp",
    measurement: "ab".repeat(48),
    operatorKey: operator.publicJwk,
    modelSha256: "cd".repeat(32),
    serviceName: "cloister-dev",
  });
}

describe("node:http transport aborts", () => {
  it("ends a body that has fully arrived when the caller aborts while reading it, and nothing else throws", async () => {
    // Destroying the request here destroyed its socket, by then handed back to the keep-alive
    // agent, with the abort's reason: an 'error' event no one listened for, which crashed the
    // caller's process (an SDK chat aborted after its answer had arrived).
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on("uncaughtException", onUncaught);
    try {
      const transport = nodeTransport();
      for (let i = 0; i < 5; i++) {
        const controller = new AbortController();
        const response = await transport(`${base}/whole`, {
          method: "POST",
          headers: {},
          body: new Uint8Array(10),
          signal: controller.signal,
        });
        const reading = (async () => {
          for await (const _ of iterate(response.body)) controller.abort();
        })();
        await expect(reading).rejects.toThrow("aborted");
        // The socket's error events, had there been any, come on later ticks.
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(uncaught).toEqual([]);
    } finally {
      process.off("uncaughtException", onUncaught);
    }
  });
});

describe("SDK over a silent host", () => {
  it("connect() fails with a transport HOST_TIMEOUT instead of hanging", async () => {
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const policy = await anyPolicy();
      const error = await connect({
        url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
        policy,
        apiKey: "ck_test_0123456789abcdef",
        transport: nodeTransport({ idleTimeoutMs: 100 }),
      }).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: "ClientError", kind: "transport", code: "HOST_TIMEOUT" });
    } finally {
      await new Promise<void>((resolve) => {
        silent.close(() => resolve());
        silent.closeAllConnections();
      });
    }
  });
});

describe("SDK over a host that will not stop or will not finish", () => {
  async function fakeHost(answer: (res: ServerResponse) => void) {
    const host = createServer((req, res) => {
      req.resume();
      answer(res);
    });
    await new Promise<void>((resolve) => host.listen(0, "127.0.0.1", resolve));
    return host;
  }
  async function connectTo(host: Server, attestationTimeoutMs?: number) {
    const policy = await anyPolicy();
    return connect({
      url: `http://127.0.0.1:${(host.address() as AddressInfo).port}`,
      policy,
      apiKey: "ck_test_0123456789abcdef",
      ...(attestationTimeoutMs === undefined ? {} : { attestationTimeoutMs }),
    }).catch((e: unknown) => e);
  }
  const close = (host: Server) =>
    new Promise<void>((resolve) => {
      host.close(() => resolve());
      host.closeAllConnections();
    });

  it("stops reading an attestation answer or an error body past its limit", async () => {
    let written = 0;
    const endless = (status: number) => (res: ServerResponse) => {
      res.writeHead(status, { "content-type": "application/json" });
      const more = () => {
        while (written < 64 << 20 && !res.destroyed) {
          written += 64 << 10;
          if (!res.write(Buffer.alloc(64 << 10, 0x20))) return;
        }
      };
      res.on("drain", more);
      more();
    };
    const ok = await fakeHost(endless(200));
    try {
      expect(await connectTo(ok)).toMatchObject({
        kind: "transport",
        code: "BAD_RESPONSE",
        message: expect.stringContaining("larger than 4194304 bytes"),
      });
      // The host could not push much more than the limit before the client closed the connection.
      expect(written).toBeLessThan(16 << 20);
    } finally {
      await close(ok);
    }
    written = 0;
    const failing = await fakeHost(endless(500));
    try {
      expect(await connectTo(failing)).toMatchObject({ kind: "transport", code: "HTTP_500" });
      expect(written).toBeLessThan(16 << 20);
    } finally {
      await close(failing);
    }
  });

  it("gives up on an attestation answer that drips in slower than its deadline", async () => {
    const timers: ReturnType<typeof setInterval>[] = [];
    const drip = await fakeHost((res) => {
      res.writeHead(200, { "content-type": "application/json" });
      const timer = setInterval(() => res.write(" "), 20);
      timers.push(timer);
      res.on("close", () => clearInterval(timer));
    });
    try {
      // The drip never ends and never falls silent: only the attestation deadline ends the read.
      expect(await connectTo(drip, 300)).toMatchObject({ kind: "transport", code: "HOST_TIMEOUT" });
      expect(await connectTo(drip, 0)).toMatchObject({ kind: "configuration", code: "BAD_OPTION" });
    } finally {
      for (const timer of timers) clearInterval(timer);
      await close(drip);
    }
  });
});

describe("SDK policy check", () => {
  it("connect() refuses a policy object that would not parse, before sending anything", async () => {
    const operator = await generateManifestSigningKey("EdDSA");
    const policy = simulatorClientPolicy({
      tee: "sim-snp",
      measurement: "ab".repeat(48),
      operatorKey: operator.publicJwk,
      modelSha256: "cd".repeat(32),
      serviceName: "cloister-dev",
    });
    const broken = structuredClone(policy) as unknown as { freshness?: unknown };
    delete broken.freshness;
    const sent: string[] = [];
    const error = await connect({
      url: "http://127.0.0.1:9",
      policy: broken as unknown as typeof policy,
      apiKey: "ck_test_0123456789abcdef",
      transport: async (url) => {
        sent.push(url);
        throw new Error("must not be called");
      },
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "configuration", code: "POLICY_INVALID" });
    expect(sent).toEqual([]);
  });
});

describe("default transport", () => {
  it("is one per process, so connections are reused across sessions", async () => {
    expect(await defaultTransport()).toBe(await defaultTransport());
  });

  it("is node:http on Node.js (no fetch involved)", async () => {
    const original = globalThis.fetch;
    globalThis.fetch = (() => Promise.reject(new Error("fetch must not be used"))) as typeof fetch;
    try {
      const transport = await defaultTransport();
      const response = await transport(`${base}/echo`, { method: "GET", headers: {} });
      expect(response.status).toBe(201);
      await response.text(1 << 20);
    } finally {
      globalThis.fetch = original;
    }
  });

  it("is not kept when it fails to load: the next call loads it again", async () => {
    // A fresh copy of transport.ts (its own shared transport) over a node-transport.ts that fails once.
    const load = { fails: true };
    vi.resetModules();
    vi.doMock("../../client/node-transport.ts", async (importOriginal) => {
      if (load.fails) throw new Error("load failed");
      return importOriginal();
    });
    try {
      const fresh = await import("../../client/transport.ts");
      await expect(fresh.defaultTransport()).rejects.toBeInstanceOf(Error);
      load.fails = false;
      const transport = await fresh.defaultTransport();
      expect(await fresh.defaultTransport()).toBe(transport);
      const response = await transport(`${base}/echo`, { method: "GET", headers: {} });
      expect(response.status).toBe(201);
      await response.text(1 << 20);
    } finally {
      vi.doUnmock("../../client/node-transport.ts");
      vi.resetModules();
    }
  });
});
