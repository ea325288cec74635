/**
 * bin/cloister.js's first lines read CLOISTER_SUPERVISED (`supervisor-pid:<up's pid>`, client/cli/deploy.ts
 * childEnvironment). A pid no Linux process can have (pid_max is at most 4194304, so pids are below it)
 * is refused as bad input (exit 2), not taken for a supervisor that has gone (exit 0, the command silently
 * not run); the largest pid there can be is read as a pid. Any other value of up's form (0, 0123, +1, a space)
 * is refused alike; a value not of up's form (`1`) is dropped, the command run. Help is still shown
 * (a user debugging their environment needs it), the value named as a warning, and nothing else run.
 */
import { describe, expect, it } from "vitest";
import { runCloister } from "../helpers/cli.ts";

const run = (value: string, args: readonly string[] = ["--version"]) =>
  runCloister(args, { env: { ...process.env, CLOISTER_SUPERVISED: value }, timeoutMs: 30_000 });

const EXPECTED = "expected supervisor-pid:<a pid from 1 to 4194303>";

describe("bin/cloister.js: a CLOISTER_SUPERVISED pid out of Linux's range", () => {
  it("one past the largest pid: refused, naming the variable, the range and the value", async () => {
    expect(await run("supervisor-pid:4194304")).toEqual({
      code: 2,
      stdout: "",
      stderr: `cloister: USAGE: CLOISTER_SUPERVISED: ${EXPECTED}, found "supervisor-pid:4194304"\n`,
    });
  }, 60_000);

  it("a pid of 40 digits: refused, said by its number of digits", async () => {
    expect(await run(`supervisor-pid:${"9".repeat(40)}`)).toEqual({
      code: 2,
      stdout: "",
      stderr: `cloister: USAGE: CLOISTER_SUPERVISED: ${EXPECTED}, found a pid of 40 digits\n`,
    });
  }, 60_000);

  it("the largest pid there can be: read as a pid (not the parent: gone, or another process's), not refused", async () => {
    // No process has it here (else "has gone" would not be the answer): ESRCH.
    expect(() => process.kill(4194303, 0)).toThrow(expect.objectContaining({ code: "ESRCH" }));
    // Read as the pid of a supervisor that has gone (exit 0, the command not run), neither refused nor
    // ignored (which would run the command: --version's line).
    expect(await run("supervisor-pid:4194303")).toEqual({
      code: 0,
      stdout: "",
      stderr: "cloister: its supervisor (cloister up, pid 4194303) has gone; not starting\n",
    });
  }, 60_000);

  // Before, each of these did not match the pattern and the variable was dropped: the command ran,
  // unsupervised, while 4194304 was refused. One rule for a value of up's form: a pid, or refused.
  it.each([
    ["supervisor-pid:0", '"supervisor-pid:0"'],
    ["supervisor-pid:0123", '"supervisor-pid:0123"'],
    ["supervisor-pid:+1", '"supervisor-pid:+1"'],
    ["supervisor-pid:-1", '"supervisor-pid:-1"'],
    ["supervisor-pid: 123", '"supervisor-pid: 123"'],
    ["supervisor-pid:123 ", '"supervisor-pid:123 "'],
    ["supervisor-pid:123\n", '"supervisor-pid:123\\n"'],
    ["supervisor-pid:", '"supervisor-pid:"'],
    ["supervisor-pid:1e3", '"supervisor-pid:1e3"'],
    [`supervisor-pid:${"x".repeat(40)}`, "supervisor-pid: and 40 characters that are no pid"],
    ["supervisor-pid:\u202e1", "supervisor-pid: and 2 characters that are no pid"],
  ])(
    "%j (not a pid in up's form): refused as the out-of-range pid is, not ignored",
    async (value, found) => {
      expect(await run(value)).toEqual({
        code: 2,
        stdout: "",
        stderr: `cloister: USAGE: CLOISTER_SUPERVISED: ${EXPECTED}, found ${found}\n`,
      });
    },
    60_000,
  );

  it.each(["1", "", "yes"])(
    "%j (not up's form: exported by accident in a shell): ignored, the command runs",
    async (value) => {
      const { code, stdout, stderr } = await run(value);
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
      expect(stdout).toMatch(/^\d+\.\d+\.\d+/);
    },
    60_000,
  );
});

describe("bin/cloister.js: help with a malformed CLOISTER_SUPERVISED", () => {
  const found = '"supervisor-pid:0"';
  const warning = `cloister: warning: CLOISTER_SUPERVISED: ${EXPECTED}, found ${found}; help only is shown, any other command is refused\n`;

  it.each([
    [["--help"], "Usage: cloister [options] [command]"],
    [["enclave", "--help"], "Usage: cloister enclave [options]"],
    [["-h"], "Usage: cloister [options] [command]"],
    [["help", "enclave"], "Usage: cloister enclave [options]"],
    // help under a group, as the CLI reads it anywhere else (program.ts helpAsOption).
    [["audit", "help", "verify"], "Usage: cloister audit verify [options]"],
    // A PROMPT that reads "help": chat's help, the command not run (unsupervised).
    [["chat", "help"], "Usage: cloister chat [options]"],
    // An option's value that reads as --help: help, and the command not run (unsupervised).
    [["chat", "hello", "--prompt-file", "--help"], "Usage: cloister chat [options]"],
  ])(
    "%j: the help, exit 0, the value named as a warning",
    async (args, usage) => {
      const { code, stdout, stderr } = await run("supervisor-pid:0", args);
      expect({ code, stderr }).toEqual({ code: 0, stderr: warning });
      expect(stdout.startsWith(usage), stdout).toBe(true);
    },
    60_000,
  );

  it("--help after --, an argument, not help: refused as any command is", async () => {
    expect(await run("supervisor-pid:0", ["chat", "--", "--help"])).toEqual({
      code: 2,
      stdout: "",
      stderr: `cloister: USAGE: CLOISTER_SUPERVISED: ${EXPECTED}, found ${found}\n`,
    });
  }, 60_000);
});
