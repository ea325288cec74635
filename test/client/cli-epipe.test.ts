/**
 * A reader that closes early (`cloister … | head -1`): the command stops quietly, as a command
 * killed by SIGPIPE does (exit 141, nothing on standard error), instead of an unhandled EPIPE stack
 * trace; a server stops through its own clean shutdown, and `model run` closes its engine (which
 * removes its private copy of the model). Each command runs as a separate process whose standard
 * output is a pipe this test closes before the command writes to it.
 */
import { spawn } from "node:child_process";
import { readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { writeTinyModel } from "../../models/tiny.ts";
import { CLI, runCloister } from "../helpers/cli.ts";
import { childrenOf, isRunning } from "../helpers/processes.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-epipe-");

/**
 * Runs `cloister ARGS` with its standard output read by nobody: the pipe is closed at once.
 * `children`, when given, collects every `cloister` process it starts (pid → command) while it runs.
 */
function runWithClosedOutput(
  args: readonly string[],
  children?: Map<number, string>,
): Promise<{ code: number | null; signal: string | null; stderr: string; pid: number | undefined }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    const pid = child.pid;
    child.stdout.destroy();
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    let polling = Promise.resolve();
    if (children !== undefined && pid !== undefined) {
      polling = (async () => {
        while (child.exitCode === null && child.signalCode === null) {
          for (const { pid: started, command } of await childrenOf(pid)) children.set(started, command);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
    }
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      void polling.then(() => resolve({ code, signal, stderr, pid }));
    });
  });
}

describe("standard output closed by its reader (| head -1)", () => {
  it("--help and model inspect stop quietly with 141, with no stack trace", async () => {
    const model = join(dir, "tiny.gguf");
    expect((await runCloister(["model", "make", "tiny", "--out", model])).code).toBe(0);
    for (const args of [["--help"], ["attest", "--help"], ["model", "inspect", model]]) {
      const run = await runWithClosedOutput(args);
      expect({ ...run, pid: undefined }, args.join(" ")).toEqual({
        code: 141,
        signal: null,
        stderr: "",
        pid: undefined,
      });
    }
  });

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
  });

  it("model run stops with 141 and removes its private copy of the model", async () => {
    // Loading node-llama-cpp adds a SIGTERM listener (signal-exit) that re-raises the signal: the
    // command must not be taken for a server and stopped by SIGTERM, which left the copy behind.
    const model = join(dir, "tiny-run.gguf");
    const { sha256 } = await writeTinyModel(model);
    const run = await runWithClosedOutput([
      ...["model", "run", "--model", model, "--sha256", sha256, "--prompt", "The enclave", "--max-tokens", "20"],
    ]);
    const left = await copiesOf(run.pid);
    expect({ code: run.code, signal: run.signal, stderr: run.stderr, left }).toEqual({
      code: 141,
      signal: null,
      stderr: "",
      left: [],
    });
  });

  it("demo stops the deployment it started (key broker, enclave, host) before it exits with 141", async () => {
    // Its output is first written after its boot, when the children are running.
    const started = new Map<number, string>();
    const run = await runWithClosedOutput(["demo", "--threads", "1"], started);
    const running = [...started].filter(([pid]) => isRunning(pid));
    for (const [pid] of running) process.kill(pid, "SIGKILL");
    expect([...started.values()].sort()).toEqual(["enclave", "host", "kbs"]);
    expect({ code: run.code, signal: run.signal, stderr: run.stderr.match(/EPIPE|\n\s+at /g), running }).toEqual({
      code: 141,
      signal: null,
      stderr: null,
      running: [],
    });
  }, 120_000);
});

/** The private model copies (model-staging.ts) process `pid` left in /dev/shm or the temp directory; removed here. */
async function copiesOf(pid: number | undefined): Promise<string[]> {
  const left: string[] = [];
  for (const root of ["/dev/shm", tmpdir()]) {
    const names = await readdir(root).catch(() => [] as string[]);
    for (const name of names.filter((n) => n.startsWith(`cloister-model-${pid}-`))) {
      left.push(name);
      await rm(join(root, name), { recursive: true, force: true });
    }
  }
  return left;
}
