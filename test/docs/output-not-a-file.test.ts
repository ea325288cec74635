/**
 * An output file's name holding a directory, FIFO, socket or device is refused with --force or without
 * (client/cli/output.ts refuseExistingFile): the pages that say what --force does must say so too.
 * docs/errors.md's paragraph on output files quotes the refusal `refuseExistingOutput` gives (FILE
 * in place of the path), its MANIFEST_FILE row and docs/deploy.md's `policy init --force` name it:
 * each once said only that --force replaces what is there.
 */

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { refuseExistingOutput, UsageError } from "../../client/cli/output.ts";
import { REPO_ROOT } from "../helpers/cli.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";

/** A page's text with each run of white space (a line break among them) as one space. */
const page = (name: string) => readFileSync(join(REPO_ROOT, "docs", name), "utf8").replace(/\s+/g, " ");

describe("the pages on --force outputs name the FIFO, socket or device refusal", () => {
  it("docs/errors.md quotes the refusal of a FIFO at an output's name", async () => {
    const fifo = join(await testDirectory("cloister-docs-output-fifo-"), "out");
    execFileSync("mkfifo", [fifo]);
    const refusal = await rejectionOf(refuseExistingOutput(fifo, "--out", "replace"), UsageError);
    const quoted = refusal.message.replace(fifo, "FILE");
    expect(quoted).toBe("--out FILE: expected a regular file, found a FIFO");
    expect(page("errors.md")).toContain(`\`${quoted}\``);
  });

  it("docs/errors.md's MANIFEST_FILE row says --force does not lift it", () => {
    const rows = readFileSync(join(REPO_ROOT, "docs", "errors.md"), "utf8").split("\n");
    const row = rows.find((line) => line.startsWith("| `MANIFEST_FILE` ")) ?? "";
    expect(row).toContain("a directory, FIFO, socket or device at an output's name is refused even with `--force`");
  });

  it("docs/errors.md's MODEL_IO row says which of up's model names is refused (a sealing run removes the plain one)", () => {
    // test/client/deploy.test.ts: a FIFO at models/tiny.gguf is removed by a sealing run, not refused.
    const rows = readFileSync(join(REPO_ROOT, "docs", "errors.md"), "utf8").split("\n");
    const row = rows.find((line) => line.startsWith("| `MODEL_IO` ")) ?? "";
    expect(row).toContain(
      "`cloister up`'s `models/tiny.gguf.sealed` and, with `--no-sealed-model`, `models/tiny.gguf` (a sealing run removes that name",
    );
  });

  it("docs/deploy.md's policy init --force says so", () => {
    expect(page("deploy.md")).toContain(
      "`--force` replaces it (written to a temporary file in the same directory, then renamed over it: it holds the old policy or the new one, never a part). A directory, FIFO, socket or device at that name is refused even with `--force`",
    );
  });
});
