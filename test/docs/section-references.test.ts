/**
 * The references the docs' pages make to a section, against the sections there are: `docs/x.md`,
 * "Title" or (SECURITY.md, "Title") names a section of that page, `see "Title"` and `"Title" above`
 * (or below) one of the same page, and `docs/deploy.md`, step N one of its numbered steps. A section
 * is a heading (`## Receipts`, compared without its code marks) or a paragraph's or list item's bold
 * lead (`**Raising the limits.**`, `- **Audit**`); a title names it when the section's text starts
 * with it (`"Routing to a pool"` names `### Routing to a pool of enclaves`). Markdown links to a
 * file of the repository must find it, and a `#anchor` a heading there. So a section renamed or
 * removed does not leave a reader searching a page for a title it no longer has.
 */

import { existsSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.ts";
import { DOC_PAGES } from "../helpers/doc-pages.ts";

/** A page's text with its fenced code blocks blanked, lines kept (a `#` in a shell block is no heading). */
function prose(markdown: string): string {
  return markdown.replace(/^ *```[\s\S]*?^ *```$/gm, (block) => block.replace(/[^\n]/g, ""));
}

/** The section titles of a page: its headings and its bold leads, code marks removed. */
function sections(markdown: string): string[] {
  const text = prose(markdown);
  const headings = [...text.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => m[1] as string);
  const leads = [...text.matchAll(/^(?:\s*[-*]\s+|\s*\d+\.\s+)?\*\*([^*\n]+)\*\*/gm)].map((m) => m[1] as string);
  return [...headings, ...leads].map((title) => title.replaceAll("`", "").trim());
}

/** GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces as `-`. */
function anchor(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/ /g, "-");
}

const PAGE_NAME = /`?(README(?:\.md)?|SECURITY\.md|(?:docs\/)?(?:deploy|platforms|protocol|errors)\.md)`?/;

/** The page a name in the text stands for, as a path from the repository root. */
function pagePath(name: string): string {
  if (name.startsWith("README")) return "README.md";
  if (name === "SECURITY.md") return name;
  return name.startsWith("docs/") ? name : join("docs", name);
}

/** Every reference of a page that names no section there is, as a line `"Title" in PAGE (line N)`. */
function danglingReferences(page: string, markdown: string, read: (page: string) => string): string[] {
  const text = prose(markdown);
  const problems: string[] = [];
  const lineOf = (index: number) => text.slice(0, index).split("\n").length;
  const names = (title: string, target: string) => {
    const wanted = title.replace(/\s+/g, " ").replaceAll("`", "").trim();
    return sections(read(target)).some((section) => section.startsWith(wanted));
  };
  const other = new RegExp(`${PAGE_NAME.source},?\\s+"([^"]+)"`, "g");
  for (const m of text.matchAll(other)) {
    const target = pagePath(m[1] as string);
    if (!names(m[2] as string, target)) problems.push(`"${m[2]}" in ${target} (line ${lineOf(m.index)})`);
  }
  for (const m of text.matchAll(/(?:\bsee\s+"([^"]+)"|"([^"\n]+)"\s+(?:above|below)\b)/g)) {
    const title = (m[1] ?? m[2]) as string;
    if (!names(title, page)) problems.push(`"${title}" in ${page} (line ${lineOf(m.index)})`);
  }
  for (const m of text.matchAll(/`?docs\/deploy\.md`?,?\s+step\s+(\d+)/g)) {
    if (!names(`${m[1]}.`, join("docs", "deploy.md"))) problems.push(`step ${m[1]} in docs/deploy.md`);
  }
  for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    const link = m[1] as string;
    if (/^[a-z]+:/.test(link)) continue;
    const [file = "", hash] = link.split("#");
    const target = file === "" ? page : normalize(join(dirname(page), file));
    if (!existsSync(join(REPO_ROOT, target))) problems.push(`link ${link}: no file ${target}`);
    else if (hash !== undefined && !sections(read(target)).map(anchor).includes(hash))
      problems.push(`link ${link}: no heading #${hash} in ${target}`);
  }
  return problems;
}

const read = (page: string) => readFileSync(join(REPO_ROOT, page), "utf8");

describe("section references in the docs' pages", () => {
  it("each name a section of the page they refer to", () => {
    for (const page of DOC_PAGES) expect(danglingReferences(page, read(page), read), page).toEqual([]);
  });

  it("are found (a page renamed or a pattern broken would pass vacuously)", () => {
    const readme = read("README.md");
    expect(readme).toMatch(new RegExp(`${PAGE_NAME.source},?\\s+"`));
    expect(sections(read("SECURITY.md"))).toEqual(expect.arrayContaining(["Guarantees (when verification passed)"]));
    expect(sections(read(join("docs", "deploy.md")))).toEqual(
      expect.arrayContaining(["Raising the limits.", "4. The enclave and the host"]),
    );
  });

  it("report a title, a step, a file or an anchor that is not there", () => {
    const page = "README.md";
    const text = [
      '(`docs/protocol.md`, "Receipts") (`docs/protocol.md`, "Receipt list") (SECURITY.md, "Guarantees")',
      '(SECURITY.md, "Audit trail") (`docs/deploy.md`, step 4) (`docs/deploy.md`, step 9)',
      "[ok](docs/protocol.md#receipts) [gone](docs/gone.md) [bad](docs/protocol.md#no-such-heading)",
      'see "Quick start"; see "Quick stop"; "Layout" above; "Nowhere" below',
    ].join("\n");
    expect(danglingReferences(page, text, read)).toEqual([
      '"Receipt list" in docs/protocol.md (line 1)',
      '"Audit trail" in SECURITY.md (line 2)',
      '"Quick stop" in README.md (line 4)',
      '"Nowhere" in README.md (line 4)',
      "step 9 in docs/deploy.md",
      "link docs/gone.md: no file docs/gone.md",
      "link docs/protocol.md#no-such-heading: no heading #no-such-heading in docs/protocol.md",
    ]);
  });
});
