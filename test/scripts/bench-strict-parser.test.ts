/**
 * bench-e2e.ts's own servers (the fake enclave, the floor enclave, the floor proxy) parse requests
 * with node's strict HTTP parser whatever node's options say, as every server the project starts
 * does (enclave/http.ts listenWith): the benchmark measures the parser production runs. Each is
 * started under `--insecure-http-parser` (the only way to have the lenient one) and sent a request
 * with both Content-Length and Transfer-Encoding, which the strict parser refuses with 400 before
 * any handler runs; the lenient one passed it to the handler (the fake enclave answered 200 to it,
 * the others closed the connection with no answer). The floor proxy, in the host's place, also reads the
 * enclave's answers strictly, as the host's upstreamRequest does; and an enclave's answer cut
 * midway cuts its own (below).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, expect, it } from "vitest";
import { writeTinyModel } from "../../models/tiny.ts";

const SCRIPT = new URL("../../scripts/bench-e2e.ts", import.meta.url).pathname;
const BOTH =
  "POST /sealed HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n";
/** The test's own deadlines, under its timeout: a vitest timeout would not run the finally below. */
const READY_MS = 80_000;
const ANSWER_MS = 10_000;

/** The child's URL from its ready line, or a rejection when it exits first or takes too long. */
function ready(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within ${READY_MS} ms`)), READY_MS);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      if (!line.includes('"event":"ready"')) return;
      clearTimeout(timer);
      resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`exited (${signal ?? code}) before ready`));
    });
  });
}

/** The status line `request` gets back on a fresh connection ("" when it closed with none). */
function statusLine(url: string, request: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let text = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => (text += chunk));
    socket.on("error", () => {});
    socket.on("close", () => resolve(text.split("\r\n")[0] ?? ""));
    socket.write(request);
    setTimeout(() => socket.destroy(), ANSWER_MS).unref();
  });
}

/** Ends `child` (SIGTERM) unless it has exited, once it has. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

describe("bench-e2e.ts's servers' request parser", () => {
  /** Each server's arguments after its flag; the floor enclave's model is written to `dir`. */
  const SERVERS: { server: string; args: (dir: string) => Promise<string[]> }[] = [
    { server: "--fake-enclave", args: async () => ["1", "0"] },
    { server: "--floor-proxy", args: async () => ["http://127.0.0.1:9"] },
    {
      server: "--floor-enclave",
      args: async (dir) => {
        await writeTinyModel(join(dir, "tiny.gguf"));
        return [join(dir, "tiny.gguf")];
      },
    },
  ];
  it.each(SERVERS)(
    "$server refuses a request with both Content-Length and Transfer-Encoding, under --insecure-http-parser",
    async ({ server, args }) => {
      const dir = await mkdtemp(join(tmpdir(), "cloister-bench-parser-"));
      const flags = ["--insecure-http-parser", "--no-warnings", "--import", "tsx"];
      const child = spawn(process.execPath, [...flags, SCRIPT, server, ...(await args(dir))], {
        stdio: ["ignore", "pipe", "ignore"],
      });
      try {
        expect(await statusLine(await ready(child), BOTH)).toBe("HTTP/1.1 400 Bad Request");
      } finally {
        await stop(child);
        await rm(dir, { recursive: true, force: true });
      }
    },
    120_000,
  );

  it("--floor-proxy reads the enclave's answers strictly too, under --insecure-http-parser: one framed two ways is a 502", async () => {
    // In the host's place, as the host's upstreamRequest: the lenient parser took this answer (200).
    const enclave: Server = createServer((socket) => {
      socket.on("error", () => {});
      socket.once("data", () =>
        socket.end("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
      );
    });
    await new Promise<void>((resolve) => enclave.listen(0, "127.0.0.1", resolve));
    const enclaveUrl = `http://127.0.0.1:${(enclave.address() as { port: number }).port}`;
    const flags = ["--insecure-http-parser", "--no-warnings", "--import", "tsx"];
    const child = spawn(process.execPath, [...flags, SCRIPT, "--floor-proxy", enclaveUrl], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    try {
      const post = "POST /generate HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
      expect(await statusLine(await ready(child), post)).toBe("HTTP/1.1 502 Bad Gateway");
    } finally {
      await stop(child);
      await new Promise((resolve) => enclave.close(resolve));
    }
  }, 120_000);
});

describe("bench-e2e.ts's floor proxy", () => {
  it("cuts its answer when the enclave's is cut midway, so the bench fails on it, not waits for ever", async () => {
    // The enclave's answer stream had no 'error' listener: node then says nothing of the cut (an
    // IncomingMessage emits 'error' only to a listener), so the proxy's answer was never ended and
    // the bench's floor stream waited for it with no bound.
    const enclave: Server = createServer((socket) => {
      socket.on("error", () => {});
      // The first chunk, then the connection ends with no last chunk.
      socket.once("data", () => socket.end("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"));
    });
    await new Promise<void>((resolve) => enclave.listen(0, "127.0.0.1", resolve));
    const enclaveUrl = `http://127.0.0.1:${(enclave.address() as { port: number }).port}`;
    const child = spawn(process.execPath, ["--no-warnings", "--import", "tsx", SCRIPT, "--floor-proxy", enclaveUrl], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    try {
      const { hostname, port } = new URL(await ready(child));
      const post = "POST /generate HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
      const answer = await new Promise<{ text: string; closedByProxy: boolean }>((resolve) => {
        const socket = connect(Number(port), hostname);
        let text = "";
        let closedByProxy = true;
        socket.setEncoding("latin1");
        socket.on("data", (chunk: string) => (text += chunk));
        socket.on("error", () => {});
        socket.on("close", () => resolve({ text, closedByProxy }));
        socket.write(post);
        setTimeout(() => {
          closedByProxy = false;
          socket.destroy();
        }, ANSWER_MS).unref();
      });
      expect(answer.text).toMatch(/^HTTP\/1\.1 200 OK\r\n.*hello/s);
      expect(answer.closedByProxy).toBe(true);
      expect(answer.text).not.toMatch(/\r\n0\r\n\r\n$/); // cut: no last chunk
      expect(child.exitCode).toBeNull(); // and the proxy still serves
    } finally {
      await stop(child);
      await new Promise((resolve) => enclave.close(resolve));
    }
  }, 120_000);
});
