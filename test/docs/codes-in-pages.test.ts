/**
 * The error codes the other pages name (README.md, SECURITY.md, docs/protocol.md, deploy.md,
 * platforms.md) against docs/errors.md: a reader who meets `POLICY_INIT_CXL` in the README must find
 * it there. (test/docs/error-codes.test.ts ties docs/errors.md to the source.) A code is a code
 * span's word in the codes' shape — upper-case words joined by `_`, or one upper-case word that is
 * the whole span (`USAGE`) —; the few such words that are not error codes are named below.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.ts";
import { DOC_PAGES } from "../helpers/doc-pages.ts";

/** Code-span words of the pages that are not error codes: variables, fields, flags, placeholders. */
const NOT_CODES = new Set([
  // environment variables and placeholders
  "CLOISTER_CHROME",
  "CREDENTIALS_DIRECTORY",
  "TMPDIR",
  "IMAGE_FAMILY",
  "IMAGE_PROJECT",
  "ZONE",
  "UPPER_CASE_ID",
  // Node's and the TPM's own codes, Linux capabilities
  "ERR_UNKNOWN_FILE_EXTENSION",
  "TPM_RC_SIZE",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  // evidence fields and Google's image feature tags
  "REPORT_DATA",
  "MEASUREMENT",
  "MRTD",
  "SEV_CAPABLE",
  "SEV_SNP_CAPABLE",
  "TDX_CAPABLE",
  // the CLI's warning lines
  "WARNING",
]);

const read = (page: string) => readFileSync(join(REPO_ROOT, page), "utf8");

/** Code-shaped words of a page's code spans. */
function spanCodes(markdown: string): Set<string> {
  const codes = new Set<string>();
  for (const [, span] of markdown.matchAll(/`([^`\n]+)`/g)) {
    const text = span as string;
    if (/^[A-Z][A-Z0-9]{3,}$/.test(text)) codes.add(text);
    for (const [word] of text.matchAll(/(?<![\w<>])[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?![\w<>])/g)) codes.add(word);
  }
  return codes;
}

describe("error codes named by the docs' pages", () => {
  const listed = spanCodes(read(join("docs", "errors.md")));
  const pages = DOC_PAGES.filter((page) => page !== join("docs", "errors.md"));

  it("are found (README names several)", () => {
    const readme = spanCodes(read("README.md"));
    for (const code of ["USAGE", "POLICY_INIT_CXL", "KBS_HOST_NOT_LOOPBACK", "WRONG_ENCLAVE_KEY"]) {
      expect(readme.has(code), code).toBe(true);
    }
  });

  it("are each listed in docs/errors.md", () => {
    const missing = pages.flatMap((page) =>
      [...spanCodes(read(page))]
        .filter((code) => !listed.has(code) && !NOT_CODES.has(code))
        .map((c) => `${page}: ${c}`),
    );
    expect(missing).toEqual([]);
  });

  it("name no word as not-a-code that docs/errors.md lists, or that no page uses", () => {
    const used = new Set(pages.flatMap((page) => [...spanCodes(read(page))]));
    expect([...NOT_CODES].filter((word) => listed.has(word) || !used.has(word))).toEqual([]);
  });
});
