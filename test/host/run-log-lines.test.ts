/**
 * `cloister host`'s own lines on stderr (`cloister host: …`, host/run.ts onError): a pool member's
 * change names the enclave's reason in fixed words, never the enclave's text (the answer it gave for
 * its document, which JSON.parse's message would quote, with ESC, U+202E or a line break in it).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { CLI, REPO_ROOT } from "../helpers/cli.ts";

const KEYS = {
  version: 1,
  keys: [{ id: "k", project: "p", sha256: "ab".repeat(32), permissions: ["attest"], requestsPerMinute: 10 }],
} as const;

/**
 * What the first member answers for its document: not JSON, with U+202E, ESC[2J and a line break
 * in its first ten characters (what JSON.parse's message quotes of it).
 */
const ANSWER = "<\u202e\u001b[2J\nok> and more";

let dir: string;
let enclave: Server;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-host-log-lines-"));
  await writeFile(join(dir, "api-keys.json"), JSON.stringify(KEYS));
  enclave = createServer((_request, response) => {
    response.writeHead(200, { "content-type": "text/plain" }).end(ANSWER);
  });
  enclave.listen(0, "127.0.0.1");
  await once(enclave, "listening");
});

afterAll(async () => {
  enclave.close();
  await rm(dir, { recursive: true, force: true });
});

describe("cloister host's own lines on stderr", () => {
  it("name a pool member's reason in fixed words, nothing of the enclave's answer (ESC, U+202E, line breaks)", {
    timeout: 30_000,
  }, async () => {
    const { port } = enclave.address() as AddressInfo;
    const child: ChildProcess = spawn(
      process.execPath,
      [
        CLI,
        "host",
        // A pool of two (a single enclave's changes are not logged): the one answering ANSWER, and
        // one that refuses connections.
        "--enclave-url",
        `http://127.0.0.1:${port}`,
        "--enclave-url",
        "http://127.0.0.1:9",
        "--api-keys",
        join(dir, "api-keys.json"),
        "--audit-dir",
        join(dir, "audit"),
        "--port",
        "0",
      ],
      { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    let stdout = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    try {
      // The pool reads its members before the host listens: the line is written before the ready
      // line, so once ready it is there or on its way.
      await vi.waitFor(() => expect(stdout).toContain('"event":"ready"'), { timeout: 25_000, interval: 20 });
      await vi.waitFor(() => expect(stderr).toMatch(/cloister host: pool: enclave 0 [^\n]*\n/), {
        timeout: 5_000,
        interval: 5,
      });
    } finally {
      child.kill("SIGTERM");
      if (child.exitCode === null) await once(child, "exit");
    }
    const line = stderr.split("\n").find((l) => l.startsWith("cloister host: pool: enclave 0 ")) as string;
    expect(line).toBe(
      `cloister host: pool: enclave 0 is unreachable at "http://127.0.0.1:${port}": document: its answer is not JSON`,
    );
    // Nothing of the enclave's text, escaped or not, and nothing of it on a line of its own.
    expect(stderr).not.toContain("ok>");
    expect(stderr).not.toContain("\\u202e");
    expect(line).not.toContain("\u001b");
    expect(line).not.toContain("\u202e");
    expect(stderr.split("\n").filter((l) => l.startsWith("ok>"))).toEqual([]);
  });
});
