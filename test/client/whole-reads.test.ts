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

/** Whole reads left, by file, with the reason. */
const LEFT: Record<string, string> = {
  // Reads back the files tpm2-tools wrote into a private temporary directory of its own.
  "attestation/providers/azure-vtpm.ts": "tpm2-tools output in its own temporary directory",
  // TsmFileSystem.readFile, each call given its bound (outblob and auxblob 64 KiB, twice the
  // kernel's TSM_OUTBLOB_MAX; the text attributes 32 bytes).
  "attestation/providers/configfs-tsm.ts": "TsmFileSystem.readFile with maxBytes",
  // TsmFileSystem.readFile, each call given its bound (a page: KERNEL_ATTRIBUTE_BYTES).
  "attestation/providers/detect.ts": "TsmFileSystem.readFile with maxBytes",
};

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

describe("no whole-file reads", () => {
  it("client/, host/ and attestation/ read no file whole but those listed", () => {
    const files = ["client", "host", "attestation"].flatMap((dir) => tsFiles(join(ROOT, dir)));
    expect(files.length).toBeGreaterThan(50);
    const found = files
      .map((file) => relative(ROOT, file))
      .filter((file) => /\breadFile(?:Sync)?\s*\(/.test(readFileSync(join(ROOT, file), "utf8")));
    expect(found.filter((file) => !(file in LEFT))).toEqual([]);
    // Each listed file still has one (a fixed one leaves the list).
    expect(found.filter((file) => file in LEFT).sort()).toEqual(Object.keys(LEFT).sort());
  });
});
