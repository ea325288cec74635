/**
 * `cloister --help` lists its commands in the order README.md's "Commands" table gives them, so a
 * newcomer finds first what the quick start runs (demo, up, attest, chat) rather than the order the
 * parties' cli.ts files happen to be registered in (model, verify-evidence, manifest, …).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT, runCloister } from "../helpers/cli.ts";

/** The top-level command each row of README's Commands table starts with, first appearance only. */
function readmeOrder(markdown: string): string[] {
  const section = markdown.slice(markdown.indexOf("\n## Commands\n"));
  const table = section.slice(section.indexOf("\n|")).split("\n\n")[0] as string;
  const names: string[] = [];
  for (const row of table.trim().split("\n").slice(2)) {
    const name = /^\| `cloister ([a-z-]+)/.exec(row)?.[1];
    if (name !== undefined && !names.includes(name)) names.push(name);
  }
  return names;
}

/** The command names of a --help text's "Commands:" section, in order. */
function helpOrder(help: string): string[] {
  const body = help.slice(help.indexOf("\nCommands:\n") + "\nCommands:\n".length).split("\n\n")[0] as string;
  return body
    .split("\n")
    .map((line) => /^ {2}([a-z-]+)/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined);
}

describe("cloister --help", () => {
  it("lists the commands in README's Commands table order, help last", async () => {
    const order = readmeOrder(readFileSync(join(REPO_ROOT, "README.md"), "utf8"));
    expect(order.slice(0, 4)).toEqual(["demo", "up", "attest", "chat"]);
    const { code, stdout } = await runCloister(["--help"]);
    expect(code).toBe(0);
    expect(helpOrder(stdout)).toEqual([...order, "help"]);
  });
});
