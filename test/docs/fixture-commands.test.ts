/**
 * The `cloister verify-evidence` commands of the docs' shell blocks that name the captured fixtures
 * (test/fixtures/attestation/) are run, as a reader who copies them would, and must end as their
 * comment says: `# snp: VALID` is the verdict line printed, `exit 1` the exit code (0 otherwise).
 * A shell variable set in the same block (`F=test/fixtures/attestation`) is expanded. So a fixture
 * renamed, a verification time that no longer fits or a verdict that changed shows here.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { DOC_PAGES, shellBlocks } from "../helpers/doc-pages.ts";

const run = inProcessCli();

interface FixtureCommand {
  readonly page: string;
  /** The arguments after `cloister`, variables expanded (fixture paths made absolute). */
  readonly args: string[];
  /** The command as the page shows it, variables expanded. */
  readonly shown: string;
  readonly verdict: string | undefined;
  readonly exitCode: number;
}

/** The verify-evidence commands of a page's `sh` blocks that read files under test/fixtures/. */
function fixtureCommands(page: string): FixtureCommand[] {
  const markdown = readFileSync(join(REPO_ROOT, page), "utf8");
  const commands: FixtureCommand[] = [];
  for (const block of shellBlocks(markdown)) {
    const variables = new Map<string, string>();
    for (const line of block.replace(/\\\n/g, " ").split("\n")) {
      const assignment = /^\s*([A-Z_]+)=(\S+)\s*$/.exec(line);
      if (assignment) variables.set(assignment[1] as string, assignment[2] as string);
      const [code = "", comment = ""] = line.split(/\s#\s/, 2);
      const words = code.trim().split(/\s+/);
      const at = words.indexOf("cloister");
      if (at < 0 || words[at + 1] !== "verify-evidence") continue;
      const args = words
        .slice(at + 1)
        .map((word) => word.replace(/\$([A-Z_]+)/g, (_, name: string) => variables.get(name) ?? `$${name}`));
      if (!args.some((word) => word.startsWith("test/fixtures/"))) continue;
      commands.push({
        page,
        shown: args.join(" "),
        args: args.map((word) => (word.startsWith("test/fixtures/") ? join(REPO_ROOT, word) : word)),
        verdict: /^([a-z-]+: (?:VALID|INVALID))\b/.exec(comment.trim())?.[1],
        exitCode: Number(/\bexit (\d+)/.exec(comment)?.[1] ?? 0),
      });
    }
  }
  return commands;
}

describe("the docs' verify-evidence commands on the captured fixtures", () => {
  const commands = DOC_PAGES.flatMap(fixtureCommands);

  it("are found (README's, at least one per kind of evidence shown there)", () => {
    const tees = commands.filter((c) => c.page === "README.md").map((c) => c.args[c.args.indexOf("--tee") + 1]);
    expect(tees).toEqual(expect.arrayContaining(["snp", "tdx", "azure-snp"]));
  });

  it.each(commands.map((c) => [`${c.page}: ${c.shown}`, c] as const))(
    "%s ends as its comment says",
    async (_name, command) => {
      const { code, stdout, stderr } = await run(command.args);
      expect(code, stderr).toBe(command.exitCode);
      if (command.verdict !== undefined) expect(stdout.split("\n")[0]).toBe(command.verdict);
    },
  );
});
