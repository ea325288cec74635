/**
 * A reader that closes early (`cloister … | head -1`): the command stops quietly, as a command
 * killed by SIGPIPE does (exit 141, nothing on standard error), instead of an unhandled EPIPE stack
 * trace; a server stops through its own clean shutdown. Each command runs as a separate process
 * whose standard output is a pipe this test closes before the command writes to it.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, runCloister } from "../helpers/cli.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-epipe-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Runs `cloister ARGS` with its standard output read by nobody: the pipe is closed at once. */
function runWithClosedOutput(
  args: readonly string[],
): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.destroy();
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

describe("standard output closed by its reader (| head -1)", () => {
  it("--help and model inspect stop quietly with 141, with no stack trace", async () => {
    const model = join(dir, "tiny.gguf");
    expect((await runCloister(["model", "make", "tiny", "--out", model])).code).toBe(0);
    for (const args of [["--help"], ["attest", "--help"], ["model", "inspect", model]]) {
      const run = await runWithClosedOutput(args);
      expect(run, args.join(" ")).toEqual({ code: 141, signal: null, stderr: "" });
    }
  }, 60_000);

  it("a server (the host) stops through its own shutdown, not with a stack trace", async () => {
    const key = { id: "a", project: "p", sha256: "ab".repeat(32), permissions: ["attest"], requestsPerMinute: 60 };
    await writeFile(join(dir, "api-keys.json"), JSON.stringify({ version: 1, keys: [key] }));
    const run = await runWithClosedOutput([
      "host",
      "--enclave-url",
      "http://127.0.0.1:9",
      "--api-keys",
      join(dir, "api-keys.json"),
      "--audit-dir",
      dir,
      "--port",
      "0",
    ]);
    expect(run.stderr).not.toMatch(/EPIPE|\n\s+at /);
    // Its SIGTERM shutdown ran (a kill by the signal itself would leave a signal and no code).
    expect({ code: run.code, signal: run.signal }).toEqual({ code: 0, signal: null });
  }, 60_000);
});
