/**
 * The pages a reader copies commands from (README.md, SECURITY.md, docs/*.md) and their shell
 * blocks, for the docs tests (test/docs/) that check those commands against the command line.
 */

import { readdirSync } from "node:fs";
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
