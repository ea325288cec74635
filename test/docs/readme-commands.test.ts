/**
 * README.md's "Commands" table against the command line of client/cli/program.ts: every command that
 * runs (`audit verify`, `model make tiny`, … every leaf of the program) has a row, and each row names
 * only commands there are (`cloister manifest keygen\|sign\|verify\|check` is four; `kbs keygen`
 * after `cloister kbs serve` one more) and only options they take, in its command cell and in its description.
 * A new sub-command, or an option renamed, cannot leave the table a reader checks first behind.
 * (test/docs/command-lines.test.ts does the same for the pages' shell blocks.)
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram, commandTree } from "../../client/cli/program.ts";
import { REPO_ROOT } from "../helpers/cli.ts";

/** A command's path below the program, as typed: `audit verify`. */
function pathOf(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** The body rows of the table under `## Commands`, each as its two cells. */
function commandRows(markdown: string): [string, string][] {
  const section = markdown.slice(markdown.indexOf("\n## Commands\n"));
  const table = section.slice(section.indexOf("\n|")).split("\n\n")[0] as string;
  return table
    .trim()
    .split("\n")
    .slice(2)
    .map((row) => {
      const cells = row.split(/(?<!\\)\|/).map((cell) => cell.trim());
      return [cells[1] ?? "", cells[2] ?? ""];
    });
}

/**
 * The commands and the options a row names: each code span of its command cell is a command line
 * (`cloister ` optional: `kbs keygen` after `cloister kbs serve …`); a word `a\|b` names
 * alternatives at that level. Problems: a span naming no
 * command that runs (a group, or a word the group has no command for), an option none of the row's
 * commands takes.
 */
function readRow(program: Command, [commandCell, description]: [string, string]) {
  const named = new Set<Command>();
  const problems: string[] = [];
  for (const [, span] of commandCell.matchAll(/`([^`]+)`/g)) {
    const words = (span as string).split(/\s+/);
    let level: Command[] = [program];
    if (words[0] === "cloister") words.shift();
    for (const word of words) {
      if (word.startsWith("-") || word.startsWith("[")) break;
      const subs = level.flatMap((c) =>
        word.split("\\|").flatMap((name) => c.commands.filter((sub) => sub.name() === name)),
      );
      if (subs.length === 0) break;
      level = subs;
    }
    // A group named alone (`cloister model`, `kbs`) or followed by a word it has no command for is no command.
    if (level.some((c) => c.commands.length > 0)) problems.push(`\`${span}\`: names no command that runs`);
    for (const command of level) if (command.commands.length === 0) named.add(command);
  }
  const options = [...`${commandCell} ${description}`.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)].map((m) => m[0]);
  for (const option of new Set(options)) {
    if (option === "--help") continue;
    if (![...named].some((c) => c.options.some((o) => o.long === option))) {
      problems.push(`${option}: not an option of ${[...named].map(pathOf).join(", ") || "any command of the row"}`);
    }
  }
  return { named, problems };
}

const README = readFileSync(join(REPO_ROOT, "README.md"), "utf8");

describe("README.md's Commands table", () => {
  const program = buildProgram();
  const rows = commandRows(README).map((row) => ({ row, ...readRow(program, row) }));

  it("has a row for every command that runs", () => {
    const named = new Set(rows.flatMap((r) => [...r.named]));
    const leaves = commandTree(program).filter((c) => c.commands.length === 0 && c.name() !== "help");
    expect(leaves.length).toBeGreaterThan(20);
    expect(leaves.filter((c) => !named.has(c)).map(pathOf)).toEqual([]);
  });

  it("names only commands and options there are", () => {
    expect(rows.length).toBeGreaterThan(15);
    for (const { row, problems } of rows) expect(problems, row[0]).toEqual([]);
  });

  it("reports a row whose command or option is not there", () => {
    const problems = (commandCell: string, description = "") => readRow(program, [commandCell, description]).problems;
    expect(problems("`cloister model make tiny\\|bench --out F [--force]`, `model inspect`", "`--preset`")).toEqual([]);
    expect(problems("`cloister model make huge --out F`")).toEqual([
      "`cloister model make huge --out F`: names no command that runs",
      "--out: not an option of any command of the row",
    ]);
    expect(problems("`cloister attest --url URL --policy FILE --jsn`")).toEqual(["--jsn: not an option of attest"]);
    expect(
      problems("`cloister kbs serve --config F`, `kbs keygen`", "(`--allow-simulator-on-network`, `--listen-all`)"),
    ).toEqual(["--listen-all: not an option of kbs serve, kbs keygen"]);
    const table = README.replace(/^\| `cloister bundle .*\n/m, "");
    const named = new Set(commandRows(table).flatMap((row) => [...readRow(program, row).named]));
    expect(commandTree(program).filter((c) => c.name() === "bundle" && !named.has(c))).toHaveLength(1);
  });
});

describe("README.md on --api-key-file, below the Commands table", () => {
  it("names every command that takes it, and no other (the rows mostly leave it out)", () => {
    const from = README.indexOf("`--api-key-file F` (or `CLOISTER_API_KEY`), taken by ");
    expect(from).toBeGreaterThan(README.indexOf("\n## Commands\n"));
    const sentence = README.slice(from, README.indexOf("(most rows above leave it out)", from));
    const named = [...sentence.matchAll(/`([a-z][a-z ]*)`/g)].map((m) => m[1]).sort();
    const taking = commandTree(buildProgram())
      .filter((c) => c.options.some((o) => o.long === "--api-key-file"))
      .map(pathOf)
      .sort();
    expect(taking).toContain("proxy");
    expect(named).toEqual(taking);
  });
});
