/**
 * docs/deploy.md's systemd units against the command line: every `ini` block of the page is a unit,
 * and each one's ExecStart must run `cloister.js` with a sub-command the program of
 * client/cli/program.ts has, options that sub-command takes (each value-taking option followed by a
 * value its parser accepts), and no operand the command does not take. So the units cannot drift
 * from the CLI. Checked here: names and values only; the units' systemd settings are checked
 * offline with systemd-analyze (docs/deploy.md says with which results), not by this test.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.ts";
import { checkCommand } from "../helpers/command-line.ts";

const DEPLOY = join(REPO_ROOT, "docs", "deploy.md");

/** The `ini` code blocks of a Markdown text, in order. */
function iniBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```ini\n([\s\S]*?)^```$/gm)].map((m) => m[1] as string);
}

/** A unit's ExecStart= command line, its continuation lines joined, split into words. */
function execStart(unit: string): string[] {
  const joined = unit.replace(/\\\n/g, " ");
  const lines = joined.split("\n").filter((line) => line.startsWith("ExecStart="));
  if (lines.length !== 1) throw new Error(`expected one ExecStart= line, found ${lines.length}`);
  return (lines[0] as string).slice("ExecStart=".length).trim().split(/\s+/);
}

function checkUnits(markdown: string): { commands: string[]; problems: string[] } {
  const results = iniBlocks(markdown).map((unit) => checkCommand(execStart(unit)));
  return { commands: results.map((r) => r.command), problems: results.flatMap((r) => r.problems) };
}

describe("docs/deploy.md systemd units", () => {
  const markdown = readFileSync(DEPLOY, "utf8");

  it("has a unit for the enclave, the host and the key broker", () => {
    expect(checkUnits(markdown).commands.sort()).toEqual(["enclave", "host", "kbs serve"]);
  });

  it("runs only sub-commands and options the cloister command line has, with values it accepts", () => {
    expect(checkUnits(markdown).problems).toEqual([]);
  });

  it("reports an option, a sub-command or a value the command line does not have", () => {
    const units = iniBlocks(markdown);
    const host = units.find((unit) => execStart(unit).includes("host"));
    expect(host).toBeDefined();
    const wrongOption = (host as string).replace("--audit-dir", "--audit-directory");
    expect(checkCommand(execStart(wrongOption)).problems).toEqual([
      "host: no option --audit-directory",
      "host: required option '--audit-dir <dir>' not specified",
      "host: 1 operands, the command takes 0",
    ]);
    const wrongValue = (host as string).replace("--port 8080", "--port 80800");
    expect(checkCommand(execStart(wrongValue)).problems).toHaveLength(1);
    expect(checkCommand(execStart(wrongValue)).problems[0]).toMatch(/^host --port 80800: /);
    const wrongCommand = (host as string).replace("cloister.js host", "cloister.js hosts");
    expect(checkCommand(execStart(wrongCommand)).problems[0]).toBe('"hosts": not a cloister sub-command that runs');
  });
});
