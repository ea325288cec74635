/**
 * Every command's --help ends with an "Examples:" section, on every command the program has
 * (walked from the program, so a command added later is covered without being listed here), and
 * each example is a command line of that command (or, for a group, of one under it) that uses only
 * options the command has: an example cannot name a command or an option that does not exist.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command, Option } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram, commandTree } from "../../client/cli/program.ts";
import { EVIDENCE_OUT_COLLATERAL, EVIDENCE_OUT_FILES } from "../../client/cli/run-client.ts";
import { REPO_ROOT } from "../helpers/cli.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { examplesOf } from "../helpers/help-examples.ts";

const run = inProcessCli();

/** The command-line words that name a command ([] for the program itself). */
function wordsOf(command: Command): string[] {
  const words: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) words.unshift(c.name());
  return words;
}

/** Shell words of one example line (single and double quotes; no escapes or expansions needed). */
function shellWords(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3] ?? "");
}

/** The command an example runs (following its sub-command words from the program) and its words after that. */
function resolve(program: Command, line: string): { command: Command; rest: string[] } {
  // The part that runs cloister: `cmd | cloister …` pipes into it; ` # …` is a comment.
  const words = shellWords(line.replace(/\s+#\s.*$/, ""));
  const at = words.indexOf("cloister");
  expect(at, `example does not run cloister: ${line}`).toBeGreaterThanOrEqual(0);
  let command = program;
  let i = at + 1;
  for (; i < words.length; i++) {
    const next = command.commands.find((c) => c.name() === words[i]);
    if (!next) break;
    command = next;
  }
  return { command, rest: words.slice(i) };
}

function isUnder(command: Command, ancestor: Command): boolean {
  for (let c: Command | null = command; c; c = c.parent) if (c === ancestor) return true;
  return false;
}

describe("--help examples", () => {
  const program = buildProgram();
  const commands = commandTree(program);

  it("walks the whole tree (nested commands included)", () => {
    const names = commands.map((c) => wordsOf(c).join(" "));
    for (const nested of ["", "audit verify", "model make tiny", "kbs serve", "policy init", "chat"]) {
      expect(names).toContain(nested);
    }
  });

  it.each(commands.map((c) => [wordsOf(c).join(" ") || "(the program)", c] as const))(
    "%s --help has examples of itself with options it has",
    async (_name, command) => {
      const { code, stdout } = await run([...wordsOf(command), "--help"]);
      expect(code).toBe(0);
      const examples = examplesOf(stdout);
      expect(examples.length, `no "Examples:" section in:\n${stdout}`).toBeGreaterThan(0);
      for (const example of examples) {
        const { command: target, rest } = resolve(program, example);
        expect(isUnder(target, command), `${example}: runs "${wordsOf(target).join(" ")}"`).toBe(true);
        if (command.commands.length === 0) expect(target, example).toBe(command);
        for (const word of rest) {
          if (!word.startsWith("--")) continue;
          const flag = word.split("=")[0];
          const known = flag === "--help" || target.options.some((o) => o.long === flag);
          expect(known, `${example}: ${flag} is not an option of "${wordsOf(target).join(" ")}"`).toBe(true);
        }
      }
    },
  );
});

describe("--help option defaults", () => {
  const program = buildProgram();
  const commands = commandTree(program);

  // A flag is off unless given: every command says so by saying nothing, none with "(default: false)".
  it.each(commands.map((c) => [wordsOf(c).join(" ") || "(the program)", c] as const))(
    "%s --help shows no (default: false)",
    async (_name, command) => {
      const { code, stdout } = await run([...wordsOf(command), "--help"]);
      expect(code).toBe(0);
      expect(stdout).not.toContain("(default: false)");
    },
  );

  // A server's port 0 is any free port, which tests and `up` rely on: each port option that takes 0 says so.
  it("every port option that takes 0 says (0 = any free port)", () => {
    const takesZero = (option: Option) => {
      try {
        return option.parseArg?.("0", undefined) === 0;
      } catch {
        return false;
      }
    };
    const ports = commands.flatMap((c) =>
      c.options.filter((o) => /^--(?:[a-z]+-)?port$/.test(o.long ?? "") && takesZero(o)).map((o) => ({ c, o })),
    );
    expect(ports.map(({ c, o }) => `${wordsOf(c).join(" ")} ${o.long}`)).toContain("host --port");
    const unsaid = ports.filter(({ o }) => !o.description.includes("(0 = any free port)"));
    expect(unsaid.map(({ c, o }) => `${wordsOf(c).join(" ")} ${o.long}: ${o.description}`)).toEqual([]);
  });
});

describe("attest --help's --evidence-out example", () => {
  // Pasted after `cloister up` (sev-snp unless --tee sim-tdx), its follow-up must name the files that
  // deployment's evidence is saved as, and the policy its simulated evidence verifies under only.
  it("follows with a verify-evidence line for the files attest writes, with the policy that trusts the simulator", async () => {
    const { stdout } = await run(["attest", "--help"]);
    const example = examplesOf(stdout).find((line) => line.includes("--evidence-out"));
    expect(example, stdout).toBeDefined();
    const then = /#\s+then:\s+(cloister verify-evidence [^(]*)/.exec(example as string)?.[1]?.trim();
    expect(then, example).toBeDefined();
    const { command, rest } = resolve(buildProgram(), then as string);
    expect(wordsOf(command)).toEqual(["verify-evidence"]);
    const [report, cert] = EVIDENCE_OUT_FILES["sev-snp"];
    expect(rest).toEqual([
      "--tee",
      "snp",
      "--report",
      `evidence/${report}`,
      "--cert",
      `evidence/${cert}`,
      "--policy",
      ".cloister/policy.json",
    ]);
    // A TDX quote's TCB status is judged from Intel's collateral, which --evidence-out saves in
    // evidence/collateral when the deployment served it (the simulator does): under
    // .cloister/policy.json, which accepts UpToDate only, `--tee tdx --quote evidence/quote.bin` alone is
    // refused (TDX_TCB_STATUS_NOT_ACCEPTED). That it verifies runs in test/e2e/evidence-out.test.ts.
    expect(example).toContain(
      `--tee tdx --quote evidence/${EVIDENCE_OUT_FILES.tdx[0]} --collateral evidence/${EVIDENCE_OUT_COLLATERAL},`,
    );
  });
});

describe("bundle --help examples", () => {
  // The npm scripts name the browser builds (README: build:browser, build:browser:dev); an example
  // writing to a look-alike name (cloister-browser.dev.js beside cloister-browser-dev.js) leaves a
  // reader with two files of one build.
  it("write to the files the build:browser scripts of package.json write", async () => {
    const scripts = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")).scripts as Record<string, string>;
    const built = Object.entries(scripts)
      .filter(([name]) => name.startsWith("build:browser"))
      .map(([, script]) => /--out (\S+)/.exec(script)?.[1]);
    expect(built).toEqual(["dist/cloister-browser.js", "dist/cloister-browser-dev.js"]);
    const { code, stdout } = await run(["bundle", "--help"]);
    expect(code).toBe(0);
    const outs = examplesOf(stdout).map((line) => /--out (\S+)/.exec(line)?.[1]);
    expect(outs.length).toBeGreaterThan(0);
    for (const out of outs) expect(built, `bundle --help example --out ${out}`).toContain(out);
  });
});

describe("audit find --help examples", () => {
  // cloister chat --json's answer holds no field named for the boot: its log, BOOT.jsonl, is named by
  // the first 16 digits of the answer's `enclave` field, the attestation document's digest.
  it("say which field of chat --json's answer names the log (BOOT)", async () => {
    const { code, stdout } = await run(["audit", "find", "--help"]);
    expect(code).toBe(0);
    const example = examplesOf(stdout).find((line) => line.includes("BOOT.jsonl --chat-json"));
    expect(example).toContain("BOOT: the first 16 digits of its enclave field (the attestation document's digest)");
  });
});
