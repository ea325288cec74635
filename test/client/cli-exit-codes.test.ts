/**
 * Exit codes of the command tree, in process: a usage error at any depth of sub-command is one
 * `cloister: USAGE: …` line and exit 2, and --help exits 0, on every command the program has (so a
 * sub-command added later, however deep, is covered without being listed here).
 */
import { statSync } from "node:fs";
import { tmpdir } from "node:os";
import { describe, expect, it } from "vitest";
import { ConfigurationError } from "../../attestation/errors.ts";
import { buildProgram, commandTree, isBadInput } from "../../client/cli/program.ts";
import { EngineError, ModelNotAFileError, modelNotFound } from "../../enclave/engine/errors.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";

const run = inProcessCli();

/** The command-line words that name each command of the program ([] for the program itself). */
function commandPaths(): string[][] {
  const paths: string[][] = [];
  for (const command of commandTree(buildProgram())) {
    const path: string[] = [];
    for (let c: typeof command | null = command; c?.parent; c = c.parent) path.unshift(c.name());
    paths.push(path);
  }
  return paths;
}

describe("exit codes at every depth of the command tree", () => {
  it("walks nested commands (the walk itself reaches grandchildren)", () => {
    const names = commandPaths().map((p) => p.join(" "));
    for (const nested of ["audit verify", "policy init", "receipt verify", "model make tiny", "kbs serve"]) {
      expect(names).toContain(nested);
    }
  });

  it("exits 2 with one USAGE line naming an unknown option on every command, before any required option it leaves out", async () => {
    for (const path of commandPaths()) {
      const args = [...path, "--no-such-option-anywhere"];
      const { code, stderr } = await run(args);
      expect(code, args.join(" ")).toBe(2);
      expect(stderr, args.join(" ")).toMatch(
        /^cloister: USAGE: unknown option '--no-such-option-anywhere'[^\n]* \(run with --help for usage\)\n$/,
      );
    }
  });

  it("exits 0 for --help on every command", async () => {
    for (const path of commandPaths()) {
      const args = [...path, "--help"];
      const { code, stdout } = await run(args);
      expect(code, args.join(" ")).toBe(0);
      expect(stdout, args.join(" ")).toMatch(/^Usage: cloister/);
    }
  });

  // `help` takes the whole command path, at the top or under a group, as git's and npm's do: commander's
  // own help command read one word (`help audit verify` showed audit's help) and printed the whole
  // program help on stderr for a name it did not know.
  it.each([
    [
      ["help", "audit", "verify"],
      ["audit", "verify"],
    ],
    [
      ["audit", "help", "verify"],
      ["audit", "verify"],
    ],
    [
      ["help", "model", "make", "tiny"],
      ["model", "make", "tiny"],
    ],
    [["help"], []],
    // Never runs the command: words after a leaf command, or options, are not a prompt or a flag to act on.
    [["help", "chat", "hello"], ["chat"]],
    [
      ["help", "audit", "verify", "--json"],
      ["audit", "verify"],
    ],
  ])("%j prints the help of %j, exit 0", async (args, path) => {
    const asked = await run(args);
    const expected = await run([...path, "--help"]);
    expect(asked.code).toBe(0);
    expect(asked.stderr).toBe("");
    expect(asked.stdout).toBe(expected.stdout);
  });

  it("lists help with the path it takes, on every group", async () => {
    for (const path of [[], ["audit"], ["model", "make"]]) {
      const { stdout } = await run([...path, "--help"]);
      expect(stdout, path.join(" ")).toMatch(/\n {2}help \[command\.\.\.\] +display help for a command\n/);
    }
  });

  it.each([
    [["help", "frob"], "frob"],
    [["help", "audit", "frob"], "frob"],
    [["audit", "help", "frob"], "frob"],
    // --help after a name that is no command: refused as `help frob` is, not the whole help, exit 0.
    [["frob", "--help"], "frob"],
    [["frob", "-h"], "frob"],
    [["audit", "frob", "--help"], "frob"],
    [["frob", "verify", "--help"], "frob"],
  ])("%j refuses the unknown command %s in one USAGE line, exit 2", async (args, name) => {
    const { code, stdout, stderr } = await run(args);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toMatch(new RegExp(`^cloister: USAGE: unknown command '${name}'[^\n]*\n$`));
  });

  it.each([
    [["audit", "verify", "--log", "x", "--key", "y", "--count", "abc"], /--count expects an integer, found "abc"/],
    [["policy", "init", "--url", "http://127.0.0.1:1"], /required option '--operator-key <file>' not specified/],
    [["receipt", "verify", "--answer-file"], /option '--answer-file <file>' argument missing/],
  ])("exits 2 for the usage error of %j", async (args, message) => {
    const { code, stderr } = await run(args);
    expect(code).toBe(2);
    expect(stderr).toMatch(/^cloister: USAGE: [^\n]+\n$/);
    expect(stderr).toMatch(message);
  });
});

describe("policy init's refusals: bad input when an option lifts them, a failure when only the deployment can change", () => {
  it.each([
    ["POLICY_INIT_SIMULATED", true],
    ["POLICY_INIT_MIGRATION_AGENT", true],
    ["POLICY_INIT_NO_COLLATERAL", true],
    ["POLICY_INIT_AZURE_SECURE_BOOT", true],
    ["POLICY_INIT_AZURE_CONSOLE", true],
    ["POLICY_INIT_DEBUG", false],
    ["POLICY_INIT_CXL", false],
    ["POLICY_INIT_AZURE_PCRS", false],
    ["POLICY_INIT_TCB_REJECTED", false],
  ])("%s: bad input %s", (code, badInput) => {
    expect(isBadInput(new ConfigurationError(code, "refused"))).toBe(badInput);
  });
});

describe("MODEL_NOT_FOUND: bad input for a --model path not usable as given, a failure otherwise", () => {
  it("a path that is not a regular file is bad input by its class (ModelNotAFileError), not by a missing cause", () => {
    const notAFile = new ModelNotAFileError("/models/dir", statSync(tmpdir()));
    expect(notAFile.code).toBe("MODEL_NOT_FOUND");
    expect(notAFile.message).toBe(
      "--model file /models/dir: expected a regular file, found a directory; give the model file's path",
    );
    expect(notAFile.cause).toBeUndefined();
    expect(isBadInput(notAFile)).toBe(true);
    // A MODEL_NOT_FOUND without a cause from anywhere else is a failure (exit 1).
    const causeless = new EngineError("MODEL_NOT_FOUND", "--model file /models/x.gguf: gone");
    expect(causeless.cause).toBeUndefined();
    expect(isBadInput(causeless)).toBe(false);
  });

  it.each([
    ["ENOENT", true],
    ["EACCES", true],
    ["EIO", false],
  ])("the operating system's %s: bad input %s", (errno, badInput) => {
    const cause = Object.assign(new Error(errno), { code: errno });
    expect(isBadInput(modelNotFound("/models/x.gguf", cause))).toBe(badInput);
  });
});
