/**
 * Exit codes of the command tree, in process: a usage error at any depth of sub-command is one
 * `cloister: USAGE: …` line and exit 2, and --help exits 0, on every command the program has (so a
 * sub-command added later, however deep, is covered without being listed here).
 */
import { describe, expect, it } from "vitest";
import { ConfigurationError } from "../../attestation/errors.ts";
import { buildProgram, commandTree, isBadInput } from "../../client/cli/program.ts";
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
