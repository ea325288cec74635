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
import { ModelNotRegularFileError } from "../../models/errors.ts";
import { generateModelKey, sealModelFile } from "../../models/sealed.ts";
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

  it("docs/errors.md's paragraph on output files names each one --force replaces, and says --force does not lift it", async () => {
    // model make, bundle, policy init and audit checkpoint write --out; attest --document-out and
    // --evidence-out DIR's files: each is refused through refuseExistingOutput, as USAGE (exit 2).
    const directory = await testDirectory("cloister-docs-output-directory-");
    const refusal = await rejectionOf(refuseExistingOutput(directory, "--document-out", "replace"), UsageError);
    expect([refusal.code, refusal.message.replace(directory, "FILE")]).toEqual([
      "USAGE",
      "--document-out FILE: expected a regular file, found a directory",
    ]);
    const text = page("errors.md");
    expect(text).toContain(
      "An output file (`--out`, `--document-out`, `--token-file`, a file or the `collateral` folder `--evidence-out DIR` writes) that exists, whose directory does not exist, or that cannot be written is `USAGE`",
    );
    expect(text).toContain(
      "A directory, FIFO, socket or device at the file's name is refused with `--force` or without, before any work",
    );
  });

  it("docs/errors.md's MODEL_IO and MODEL_OUTPUT_EXISTS rows say model seal --force does not lift it (MODEL_IO)", async () => {
    const out = join(await testDirectory("cloister-docs-seal-fifo-"), "out.sealed");
    execFileSync("mkfifo", [out]);
    // The output is looked at before the input: no model is needed to reach the refusal.
    const refusal = await rejectionOf(
      sealModelFile(join(REPO_ROOT, "no-such.gguf"), out, generateModelKey("docs-v1"), { overwrite: true }),
      ModelNotRegularFileError,
    );
    expect([refusal.code, refusal.message.replace(out, "OUT")]).toEqual([
      "MODEL_IO",
      "sealed model output OUT: expected a regular file, found a FIFO",
    ]);
    const rows = readFileSync(join(REPO_ROOT, "docs", "errors.md"), "utf8").split("\n");
    const row = (code: string) => rows.find((line) => line.startsWith(`| \`${code}\` `)) ?? "";
    expect(row("MODEL_IO")).toContain(
      "a directory, FIFO, socket or device at `model seal`'s OUT (even with `--force`)",
    );
    expect(row("MODEL_OUTPUT_EXISTS")).toContain(
      "a directory, FIFO, socket or device at OUT is `MODEL_IO` instead, with or without it",
    );
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
