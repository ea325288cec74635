/**
 * The Markdown files' prose lines are at most 120 characters (code points), the code's width: a
 * reader's editor and `git diff` show them whole. Not counted: table rows (one row per line, as
 * test/docs/table-widths.test.ts aligns them) and headings (one line by Markdown's syntax), fenced
 * code blocks (commands and output as printed, the README's demo sample among them), a line that is
 * one word wider than the width on its own (a message quoted whole in a code span, which the docs
 * tests read on one line), and the Markdown under test/fixtures/, whose provenance notes quote
 * captured values (96-digit hex fields, certificate subjects) whole. A heading is `#` to `######`
 * followed by a space or the line's end (`#word` is prose); a fence left open is reported, since
 * it would hide the rest of its file from this check.
 */

import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.ts";

const WIDTH = 120;

/** Folders not walked: dependencies, git's, build output, and the fixtures' provenance notes. */
const SKIPPED = new Set(["node_modules", "dist", join("test", "fixtures")]);

/** The repository's Markdown files, as paths relative to its root. */
function markdownFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      return entry.name.startsWith(".") || SKIPPED.has(relative(REPO_ROOT, path)) ? [] : markdownFiles(path);
    }
    return entry.isFile() && entry.name.endsWith(".md") ? [relative(REPO_ROOT, path)] : [];
  });
}

/** Whether `text` has a space to break at: outside its code spans, after its indent and list or quote marker. */
function breakable(text: string): boolean {
  const words = text.replace(/(`+)[^`]*?\1/g, "x").replace(/^\s*(?:[-*+]|\d+[.)]|>)?\s*/, "");
  return /\s/.test(words.trim());
}

/**
 * Each prose line over WIDTH characters, as `line N: M characters` (lines counted from 1), and a
 * code fence never closed, as `line N: fence never closed`.
 */
function longProseLines(markdown: string): string[] {
  const long: string[] = [];
  let fence: string | null = null;
  let fenceLine = 0;
  markdown.split("\n").forEach((text, index) => {
    const opening = /^ *(`{3,}|~{3,})/.exec(text)?.[1];
    if (fence === null && opening !== undefined) {
      fence = opening;
      fenceLine = index + 1;
      return;
    }
    if (fence !== null) {
      if (text.trim().startsWith(fence) && text.trim().replace(/[`~]/g, "") === "") fence = null;
      return;
    }
    if (text.trimStart().startsWith("|") || /^#{1,6}(?:\s|$)/.test(text)) return;
    const width = Array.from(text).length;
    if (width > WIDTH && breakable(text)) long.push(`line ${index + 1}: ${width} characters`);
  });
  if (fence !== null) long.push(`line ${fenceLine}: fence never closed`);
  return long;
}

describe("Markdown prose lines", () => {
  it("are found over the width outside tables, headings and code blocks, counted in characters", () => {
    const fenced = ["```sh", "x".repeat(130), "```", "~~~", "y".repeat(130), "~~~"].join("\n");
    const table = `| ${"z".repeat(130)} |`;
    const heading = `### ${"h ".repeat(65)}`;
    // 120 characters of which some take two or three bytes: within the width.
    const wide = `${"§".repeat(60)} ${"–".repeat(59)}`;
    // One word on its own line, wider than the width: a code span (with spaces inside) or a URL.
    const words = [`- \`${"c ".repeat(65)}\`;`, `  https://example.org/${"u".repeat(120)}`];
    const markdown = [fenced, table, heading, wide, ...words, "w ".repeat(61), `- ${"v ".repeat(60)}`, "a `b c`"].join(
      "\n",
    );
    expect(longProseLines(`${markdown}${" d".repeat(57)}`)).toEqual([
      "line 12: 122 characters",
      "line 13: 122 characters",
      "line 14: 121 characters",
    ]);
  });

  it("counts a line starting with # but no heading, and reports a fence left open", () => {
    const notHeading = `#${"t ".repeat(61)}`;
    const sevenHashes = `####### ${"s ".repeat(60)}`;
    const markdown = [notHeading, sevenHashes, "~~~~", "x", "~~~", "r ".repeat(70)].join("\n");
    expect(longProseLines(markdown)).toEqual([
      "line 1: 123 characters",
      "line 2: 128 characters",
      "line 3: fence never closed",
    ]);
  });

  it("are at most 120 characters in every Markdown file (but test/fixtures' provenance notes)", () => {
    const files = markdownFiles(REPO_ROOT);
    expect(files).toEqual(expect.arrayContaining(["README.md", "SECURITY.md", join("docs", "errors.md")]));
    const long = files.flatMap((file) =>
      longProseLines(readFileSync(join(REPO_ROOT, file), "utf8")).map((line) => `${file}: ${line}`),
    );
    expect(long).toEqual([]);
  });
});
