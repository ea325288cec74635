/**
 * The Markdown tables of the docs (docs/*.md, README.md) keep their columns aligned: every row of a
 * table is as long as its header row, in characters (code points: `§` or `–` is one column, though
 * two or three bytes), and has its cell borders (`|` not escaped as `\|`) where the header has them.
 * A row added wider than its columns would otherwise go unnoticed until a reader's editor showed the
 * table ragged. No formatter here rewrites Markdown.
 */

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.ts";

/** Where a table row's cell borders are, in characters: each `|` not escaped as `\|`. */
function borders(row: readonly string[]): number[] {
  return row.flatMap((char, i) => (char === "|" && row[i - 1] !== "\\" ? [i] : []));
}

/**
 * Each row of a table (consecutive lines starting with `|`) whose width in characters or cell borders
 * are not its header's, as `line N: …` (lines counted from 1).
 */
function misalignedRows(markdown: string): string[] {
  const problems: string[] = [];
  let header: { line: number; width: number; borders: string } | null = null;
  markdown.split("\n").forEach((text, index) => {
    if (!text.startsWith("|")) {
      header = null;
      return;
    }
    const row = Array.from(text);
    const found = { width: row.length, borders: borders(row).join(",") };
    if (header === null) {
      header = { line: index + 1, ...found };
      return;
    }
    if (found.width !== header.width || found.borders !== header.borders) {
      problems.push(
        `line ${index + 1}: expected ${header.width} characters with borders at ${header.borders} (the header, line ${header.line}), found ${found.width} with borders at ${found.borders}`,
      );
    }
  });
  return problems;
}

const DOCS = [
  "README.md",
  ...readdirSync(join(REPO_ROOT, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => join("docs", name)),
];

describe("Markdown tables keep their column widths", () => {
  it("finds a row wider or narrower than its header, or with a border moved, and none in a table that is aligned", () => {
    // An escaped \| inside a cell is no border; § and – are one character each.
    const aligned = ["| a   | b § |", "| --- | --- |", "| x\\| | – y |"].join("\n");
    expect(misalignedRows(aligned)).toEqual([]);
    const table = ["| code | meaning |", "| ---- | ------- |", "| `A`  | wider   |x", "| `B` | shifted |"].join("\n");
    expect(misalignedRows(`text\n${table}\n\n${aligned}`)).toEqual([
      "line 4: expected 18 characters with borders at 0,7,17 (the header, line 2), found 19 with borders at 0,7,17",
      "line 5: expected 18 characters with borders at 0,7,17 (the header, line 2), found 17 with borders at 0,6,16",
    ]);
  });

  for (const file of DOCS) {
    it(file, () => {
      expect(misalignedRows(readFileSync(join(REPO_ROOT, file), "utf8"))).toEqual([]);
    });
  }
});
