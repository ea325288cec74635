/**
 * bin/cloister.js's first lines, for a child whose supervisor (CLOISTER_SUPERVISED names it) is not
 * its parent: it does not start when that supervisor has gone, and runs as an ordinary command when
 * the named process runs. Whether it runs is read from /proc/PID/stat (a zombie has gone) only when
 * /proc is this process's pid namespace's: a host's /proc bind-mounted into a container shows another
 * process as /proc/PID (models/process-owner.ts procIsThisNamespaces). And a /proc that hides the
 * process (hidepid=2: another user's) does not make one that signal 0 finds running (EPERM) gone.
 * The /proc files are stood in for by a preloaded hook (test/helpers/fake-proc-files.mjs).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCloister } from "../helpers/cli.ts";

const HOOK = join(import.meta.dirname, "..", "helpers", "fake-proc-files.mjs");
/** A /proc/PID/stat line of a zombie (state Z) named `pid`. */
const zombieStat = (pid: number) => `${pid} (node) Z 1 1 1 0 -1 4194560 ${"0 ".repeat(12)}20 0 1 0 424242 0 0\n`;
/** /proc/self/stat as another pid namespace's /proc shows this process: by another pid. */
const foreignSelf = `${process.pid + 1_000_000} (node) R 1 1 1 0 -1 4194560 ${"0 ".repeat(12)}20 0 1 0 4242 0 0\n`;

describe("bin/cloister.js: is the supervisor CLOISTER_SUPERVISED names (not its parent) running?", () => {
  let other: ChildProcess;
  beforeAll(() => {
    // A running process that is not the command's parent: the one CLOISTER_SUPERVISED names.
    other = spawn(process.execPath, ["-e", "setTimeout(() => {}, 120_000)"], { stdio: "ignore" });
  });
  afterAll(() => {
    other.kill("SIGKILL");
  });

  const run = (files: Record<string, string | null>, env: NodeJS.ProcessEnv = {}) =>
    runCloister(["--version"], {
      env: {
        ...process.env,
        ...env,
        CLOISTER_SUPERVISED: `supervisor-pid:${other.pid}`,
        CLOISTER_TEST_PROC_FILES: JSON.stringify(files),
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${HOOK}`,
      },
      timeoutMs: 30_000,
    });

  it("this namespace's /proc showing it a zombie: gone, and the command does not start", async () => {
    const pid = other.pid as number;
    expect(await run({ [`/proc/${pid}/stat`]: zombieStat(pid) })).toEqual({
      code: 0,
      stdout: "",
      stderr: `cloister: its supervisor (cloister up, pid ${pid}) has gone; not starting\n`,
    });
  }, 60_000);

  it("another namespace's /proc, whose /proc/PID is another process (a zombie): signal 0 alone, so it runs", async () => {
    const pid = other.pid as number;
    expect(await run({ "/proc/self/stat": foreignSelf, [`/proc/${pid}/stat`]: zombieStat(pid) })).toEqual({
      code: 0,
      stdout: "0.1.0\n",
      stderr: "",
    });
  }, 60_000);

  it("this namespace's /proc without it while signal 0 found it (ours: no EPERM): gone just now, so it does not start", async () => {
    const pid = other.pid as number;
    expect((await run({ [`/proc/${pid}/stat`]: null })).stderr).toBe(
      `cloister: its supervisor (cloister up, pid ${pid}) has gone; not starting\n`,
    );
  }, 60_000);

  it("a /proc that hides it (hidepid=2) while signal 0 finds it another user's (EPERM): running, so it runs", async () => {
    const pid = other.pid as number;
    expect(await run({ [`/proc/${pid}/stat`]: null }, { CLOISTER_TEST_KILL_EPERM: String(pid) })).toEqual({
      code: 0,
      stdout: "0.1.0\n",
      stderr: "",
    });
  }, 60_000);
});
