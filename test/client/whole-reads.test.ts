/**
 * Files the product reads on a user's or an operator's behalf are read to a bound
 * (client/cli/bounded-file.ts), never whole: a call that reads a file whole (readFile, readFileSync,
 * a handle's readFile) in any product folder is refused here unless listed below with why it is
 * left, and readFile imported under another name is refused outright. A new whole read is one this
 * test names.
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
  {
    file: "enclave/measure.ts",
    line: "bytes = new Uint8Array(await readFile(join(root, path)));",
    why: "the enclave's own .ts and .json sources, hashed for the measurement: not a user's file",
  },
  {
    file: "enclave/model-staging.ts",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the source line as written, not a template
    line: 'text = await readFile(`/proc/${pid}/stat`, "utf8");',
    why: "/proc/PID/stat, which the kernel writes and caps at a page",
  },
];

/** Every folder of the product (scripts/ and test/ are not the product). */
const PRODUCT = ["client", "host", "attestation", "enclave", "manifests", "models", "sealed", "bin"];

/** `readFile(`, `readFileSync(`, and a handle's or a module's `.readFile(`. */
const WHOLE_READ = /\breadFile(?:Sync)?\s*\(/;

/** `readFile as` or `readFileSync as` in an import: a renamed whole read this test could not see. */
const RENAMED_READ = /\breadFile(?:Sync)?\s+as\b/;

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return /\.(?:ts|js)$/.test(entry.name) ? [path] : [];
  });
}

/** Each line of `files` (relative to ROOT) that `pattern` matches, as `file: trimmed line`, in order. */
function linesMatching(files: readonly string[], pattern: RegExp): string[] {
  return files.flatMap((file) =>
    readFileSync(join(ROOT, file), "utf8")
      .split("\n")
      .filter((line) => pattern.test(line))
      .map((line) => `${file}: ${line.trim()}`),
  );
}

describe("no whole-file reads", () => {
  const files = PRODUCT.flatMap((dir) => tsFiles(join(ROOT, dir))).map((file) => relative(ROOT, file));

  it("the pattern names each form of a whole read", () => {
    for (const line of [
      "await readFile(path)",
      "readFileSync(path)",
      "await handle.readFile()",
      'await fs.readFile(path, "utf8")',
    ]) {
      expect(WHOLE_READ.test(line), line).toBe(true);
    }
    expect(RENAMED_READ.test('import { readFile as slurp } from "node:fs/promises";')).toBe(true);
    expect(RENAMED_READ.test("import { readFileSync as slurp } from 'node:fs';")).toBe(true);
  });

  it("no product file imports readFile under another name", () => {
    expect(linesMatching(files, RENAMED_READ)).toEqual([]);
  });

  it("the product's folders read no file whole but by the calls listed", () => {
    expect(files.length).toBeGreaterThan(50);
    // Every call found is listed, and every one listed is still there (a fixed one leaves the list);
    // a second call on a line like a listed one is counted, not taken as the same.
    expect(linesMatching(files, WHOLE_READ).sort()).toEqual(LEFT.map(({ file, line }) => `${file}: ${line}`).sort());
  });
});
