/**
 * Files the product reads on a user's or an operator's behalf are read to a bound
 * (client/cli/bounded-file.ts), never whole: a call that reads a file whole (readFile, a handle's
 * readFile) in client/, host/ or attestation/ is refused here unless listed below with why it is
 * left. A new whole read is one this test names.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/**
 * The `readFile(` calls left, each as its file and the text of its line (trimmed), with the reason:
 * a file is never exempt as a whole, so a new whole read beside a listed one is still named.
 */
const LEFT: readonly { readonly file: string; readonly line: string; readonly why: string }[] = [
  {
    file: "attestation/providers/azure-vtpm.ts",
    line: "return new Uint8Array(await readFile(path));",
    why: "tpm2-tools output in its own private temporary directory",
  },
  {
    file: "attestation/providers/configfs-tsm.ts",
    line: "readFile(path: string, maxBytes: number): Promise<Uint8Array>;",
    why: "TsmFileSystem's declaration: every read takes its bound",
  },
  {
    file: "attestation/providers/configfs-tsm.ts",
    line: "const bytes = await fs.readFile(path, TSM_TEXT_MAX_BYTES);",
    why: "TsmFileSystem.readFile to its bound: a text attribute",
  },
  {
    file: "attestation/providers/configfs-tsm.ts",
    line: "bytes = new Uint8Array(await fs.readFile(path, TSM_BLOB_MAX_BYTES));",
    why: "TsmFileSystem.readFile to its bound: outblob or auxblob, twice the kernel's TSM_OUTBLOB_MAX",
  },
  {
    file: "attestation/providers/detect.ts",
    line: "return await nodeTsmFileSystem.readFile(path, bytes);",
    why: "TsmFileSystem.readFile to its bound: a page, or cpuinfo's start",
  },
  {
    file: "attestation/providers/detect.ts",
    line: 'const provider = attributeText(await fs.readFile(join(entry, "provider"), KERNEL_ATTRIBUTE_BYTES));',
    why: "TsmFileSystem.readFile to its bound: a page (KERNEL_ATTRIBUTE_BYTES)",
  },
];

const WHOLE_READ = /\breadFile(?:Sync)?\s*\(/;

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** Each line of `files` (relative to ROOT) with a `readFile(` call, as `file: trimmed line`, in order. */
function wholeReads(files: readonly string[]): string[] {
  return files.flatMap((file) =>
    readFileSync(join(ROOT, file), "utf8")
      .split("\n")
      .filter((line) => WHOLE_READ.test(line))
      .map((line) => `${file}: ${line.trim()}`),
  );
}

describe("no whole-file reads", () => {
  it("client/, host/ and attestation/ read no file whole but by the calls listed", () => {
    const files = ["client", "host", "attestation"].flatMap((dir) => tsFiles(join(ROOT, dir)));
    expect(files.length).toBeGreaterThan(50);
    // Every call found is listed, and every one listed is still there (a fixed one leaves the list);
    // a second call on a line like a listed one is counted, not taken as the same.
    expect(wholeReads(files.map((file) => relative(ROOT, file))).sort()).toEqual(
      LEFT.map(({ file, line }) => `${file}: ${line}`).sort(),
    );
  });
});
