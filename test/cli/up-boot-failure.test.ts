/**
 * `cloister up` and `cloister demo` when an enclave fails while they boot, and when a stop is asked
 * for while they stop what they started. A boot failure of a child's own (it exits 1) fails the
 * command (exit 1) and is said, with the child's lines, even when a Ctrl-C follows while the other
 * children stop; a child killed by the terminal's Ctrl-C is a clean stop, however late the
 * supervisor's own SIGINT is handled. A stop asked for again while they stop exits at once, saying so.
 *
 * Each runs two enclaves held by test/helpers/enclave-boot-failure.mjs: the first crashes or waits
 * to be killed, the second stops only when the test releases it, so each step happens in the order
 * the test gives, never by timing.
 */
import { spawn } from "node:child_process";
import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI } from "../helpers/cli.ts";

const HOOK = join(import.meta.dirname, "..", "helpers", "enclave-boot-failure.mjs");

const dirs: string[] = [];
const stops: (() => void)[] = [];
afterAll(async () => {
  for (const stop of stops) stop();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Resolves once `done` holds, or 60 s passed (callers also stop waiting once the process has exited). */
async function until(done: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await done()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * Starts `cloister COMMAND` with two enclaves, the first of which (CLOISTER_TEST_BOOT) crashes
 * (`exit`) or waits (`hold`), collecting what it prints; `release()` lets the second stop.
 */
async function start(command: "up" | "demo", boot: "exit" | "hold") {
  const dir = await mkdtemp(join(tmpdir(), `cloister-${command}-boot-failure-`));
  dirs.push(dir);
  const release = join(dir, "release");
  const env = {
    ...process.env,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${HOOK}`,
    CLOISTER_TEST_BOOT: boot,
    CLOISTER_TEST_RELEASE: release,
  };
  const args = ["--dir", dir, "--threads", "1", "--no-sealed-model", "--enclaves", "2"];
  const ports = ["--enclave-port", "0", "--host-port", "0"];
  const child = spawn(process.execPath, [CLI, command, ...args, ...ports], { cwd: dir, env });
  stops.push(() => void writeFile(release, "").catch(() => {}));
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once("close", (code, signal) => resolve({ code, signal })),
  );
  /** Resolves once the second enclave is being stopped (it waits for `release()` to exit). */
  const stopping = () => until(async () => child.exitCode !== null || (await exists(`${release}.stopping`)));
  return {
    child,
    exited,
    stderr: () => stderr,
    stopping,
    /** Resolves once the second enclave ignores SIGINT and would stop slowly on SIGTERM. */
    waiting: () => until(async () => child.exitCode !== null || (await exists(`${release}.waiting`))),
    release: () => writeFile(release, ""),
    /** Ctrl-C (SIGINT to it alone) as it stops the second enclave, which then may stop; resolves with its exit. */
    interruptWhileStopping: async () => {
      await stopping();
      child.kill("SIGINT");
      await until(() => child.exitCode !== null || stderr.includes("shutting down (SIGINT during boot) …"));
      await writeFile(release, "");
      return exited;
    },
  };
}

/** That a run whose first enclave crashed (`exit`) failed (1), with the enclave's lines and, last, the error naming it. */
function expectCrashSaid(code: number | null, stderr: string): void {
  expect(code, stderr).toBe(1);
  const enclave = /^\[(enclave \d)\] Error: enclave boot failed on purpose \(test\)$/m.exec(stderr)?.[1];
  expect(enclave, stderr).toBeDefined();
  expect(stderr.split("\n").at(-2)).toBe(`cloister: ${enclave} exited before it was ready (exit code 1)`);
}

describe("cloister up and demo: an enclave fails during boot", () => {
  it.each(["up", "demo"] as const)(
    "%s: an enclave that exits 1 fails it (exit 1, said with the enclave's lines) though Ctrl-C comes as the others stop",
    async (command) => {
      const run = await start(command, "exit");
      const { code } = await run.interruptWhileStopping();
      expect(run.stderr()).toContain("shutting down (SIGINT during boot) …");
      expectCrashSaid(code, run.stderr());
      expect(run.stderr()).not.toContain("stopped: every process it started has exited");
    },
  );

  it("up: an enclave the terminal's Ctrl-C killed is a clean stop, though up's own SIGINT comes late (exit 0)", async () => {
    // The Ctrl-C reaches the enclave, which has no handler yet, first; up's own SIGINT is handled
    // only once the enclave's death has been taken for a boot failure (past CTRL_C_SETTLE_MS) and up
    // is stopping the other enclave.
    const run = await start("up", "hold");
    await run.waiting();
    await until(() => run.child.exitCode !== null || /^\[enclave \d\] held, pid \d+$/m.test(run.stderr()));
    const pid = Number(/^\[enclave \d\] held, pid (\d+)$/m.exec(run.stderr())?.[1]);
    process.kill(pid, "SIGINT");
    const { code } = await run.interruptWhileStopping();
    const lines = run.stderr().split("\n");
    expect(code, run.stderr()).toBe(0);
    expect(lines.at(-2)).toBe("stopped: every process it started has exited");
    expect(run.stderr()).not.toMatch(/^cloister: /m);
  });

  it("demo: a boot failure without any Ctrl-C shows the failing enclave's lines, not only a summary", async () => {
    const run = await start("demo", "exit");
    await run.release();
    const { code } = await run.exited;
    expectCrashSaid(code, run.stderr());
  });
});

describe("cloister up and demo: a stop asked for again while they stop", () => {
  it.each(["up", "demo"] as const)("%s: a second Ctrl-C exits at once (130), saying so", async (command) => {
    const run = await start(command, "hold");
    await run.waiting();
    run.child.kill("SIGINT");
    await run.stopping();
    run.child.kill("SIGINT");
    const exited = await run.exited;
    await run.release();
    const lines = run.stderr().split("\n");
    expect(exited, run.stderr()).toEqual({ code: 130, signal: null });
    expect(lines.at(-2)).toBe(
      "SIGINT while stopping: exiting at once; the processes it started stop on their own once it has gone",
    );
  });
});
