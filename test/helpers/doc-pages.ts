/**
 * The pages a reader copies commands from (README.md, SECURITY.md, docs/*.md) and their shell
 * blocks, for the docs tests (test/docs/) that check those commands against the command line.
 */

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./cli.ts";

/** The pages, as paths relative to the repository root. */
export const DOC_PAGES: readonly string[] = [
  "README.md",
  "SECURITY.md",
  ...readdirSync(join(REPO_ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => join("docs", name)),
];

/** The contents of a Markdown text's `sh` code blocks, in order. */
export function shellBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^ *```sh\n([\s\S]*?)^ *```$/gm)].map((m) => m[1] as string);
}

/**
 * The text of `page` (relative to the repository root) from `start` to the next `end` after it, each
 * run of white space (a line break among them) as one space, for a phrase the page may wrap; throws
 * when the page lacks `start`, or `end` after it.
 */
export function pageSection(page: string, start: string, end: string): string {
  const markdown = readFileSync(join(REPO_ROOT, page), "utf8");
  const from = markdown.indexOf(start);
  const to = markdown.indexOf(end, from);
  if (from < 0 || to < from) {
    throw new Error(`${page}: expected ${JSON.stringify(start)} before ${JSON.stringify(end)}`);
  }
  return markdown.slice(from, to).replace(/\s+/g, " ");
}
