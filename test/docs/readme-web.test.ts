/**
 * README.md's "Verifying and sealing in a web page" and `cloister web --help` against the program's
 * defaults: the page a reader is told to open is where `cloister web` serves it and an origin `cloister up`'s
 * host lets call it, and each `up` / `web` pair shown (in a shell block, or an example with the `up` it
 * follows in its comment) gives the page's port to `up --cors-origin` and the host's port to `web --url`.
 * A pair that does not match serves a page whose verification fails (HOST_UNREACHABLE: the browser refuses
 * the host's answers), which a new user meets first.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../../client/cli/program.ts";
import { REPO_ROOT, runCloister } from "../helpers/cli.ts";
import { shellBlocks } from "../helpers/doc-pages.ts";
import { examplesOf } from "../helpers/help-examples.ts";

const program = buildProgram();
const command = (name: string): Command => program.commands.find((c) => c.name() === name) as Command;
const defaultOf = (name: string, option: string): unknown =>
  command(name).options.find((o) => o.long === option)?.defaultValue;

/** The values of each `--option value` of a command line's words, by option. */
function optionsOf(words: readonly string[]): Map<string, string[]> {
  const options = new Map<string, string[]>();
  words.forEach((word, i) => {
    if (word.startsWith("--")) options.set(word, [...(options.get(word) ?? []), words[i + 1] ?? ""]);
  });
  return options;
}

/** The words of a `cloister NAME …` command line (`npx` first, a trailing `&` and `# …` left out). */
function cloisterWords(line: string, name: string): string[] | null {
  const words = line
    .replace(/(^|\s)#.*$/, "")
    .replace(/&\s*$/, "")
    .trim()
    .split(/\s+/);
  if (words[0] === "npx") words.shift();
  return words[0] === "cloister" && words[1] === name ? words.slice(2) : null;
}

/** What does not match between an `up` and the `web` that follows it: [] when the page will verify. */
function mismatches(up: readonly string[], web: readonly string[]): string[] {
  const upOptions = optionsOf(up);
  const webOptions = optionsOf(web);
  const corsOrigins = upOptions.get("--cors-origin") ?? (defaultOf("up", "--cors-origin") as string[]);
  const hostPort = Number(upOptions.get("--host-port")?.[0] ?? defaultOf("up", "--host-port"));
  const pagePort = Number(webOptions.get("--port")?.[0] ?? defaultOf("web", "--port"));
  const problems: string[] = [];
  const origin = `http://127.0.0.1:${pagePort}`;
  if (!corsOrigins.includes(origin)) problems.push(`up lists ${corsOrigins.join(", ")}, not the page's ${origin}`);
  const url = webOptions.get("--url")?.[0];
  if (url !== `http://127.0.0.1:${hostPort}`)
    problems.push(`web --url ${url}, not up's host http://127.0.0.1:${hostPort}`);
  return problems;
}

const README = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
const start = README.indexOf("\n## Verifying and sealing in a web page\n");
const SECTION = README.slice(start, README.indexOf("\n## ", start + 1));

describe("README.md's web page section", () => {
  const blocks = shellBlocks(SECTION);

  it("pairs each `cloister up` with a `cloister web` whose page the host lets call it", () => {
    const pairs = blocks.flatMap((block) => {
      const lines = block.split("\n");
      const ups = lines.map((line) => cloisterWords(line, "up"));
      const webs = lines.map((line) => cloisterWords(line, "web"));
      return ups.flatMap((up, i) => (up === null ? [] : [{ up, web: webs.slice(i + 1).find((w) => w !== null) }]));
    });
    // The quick one on the defaults, and the one on other ports.
    expect(pairs.length).toBeGreaterThanOrEqual(2);
    expect(pairs.some(({ up }) => optionsOf(up).has("--cors-origin"))).toBe(true);
    for (const { up, web } of pairs) {
      expect(web, `no cloister web after cloister up ${up.join(" ")}`).toBeDefined();
      expect(mismatches(up, web ?? []), `cloister up ${up.join(" ")} / cloister web ${web?.join(" ")}`).toEqual([]);
    }
  });

  it("tells the reader to open the address cloister web serves, which cloister up lets call its host", () => {
    const opened = /open (http:\/\/127\.0\.0\.1:(\d+))\//.exec(blocks.join("\n"));
    expect(opened?.[2]).toBe(String(defaultOf("web", "--port")));
    expect(defaultOf("up", "--cors-origin")).toContain(opened?.[1]);
  });
});

describe("cloister web --help's examples", () => {
  it("each name the cloister up they follow, whose host lets the page call it", async () => {
    const { code, stdout } = await runCloister(["web", "--help"]);
    expect(code).toBe(0);
    const examples = examplesOf(stdout);
    expect(examples.length).toBeGreaterThanOrEqual(2);
    for (const example of examples) {
      const web = cloisterWords(example, "web");
      const after = /#\s*after (cloister up\b.*?)(?:;|$)/.exec(example)?.[1];
      expect(after, `${example}: says which cloister up it follows`).toBeDefined();
      const up = cloisterWords(after ?? "", "up");
      expect(mismatches(up ?? [], web ?? []), example).toEqual([]);
    }
  });
});
