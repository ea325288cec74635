/**
 * readFileToBound (attestation/bounded-read.ts) reads at most its bound and one byte more of a
 * file, whatever the file's size: a larger file (or a pipe that never ends) is refused with the
 * bound, never read, nor held in memory, whole. Refusing it only after reading it all would pass a
 * test that looks at the refusal alone; this one counts the bytes the open file gave.
 */
import type { FileHandle } from "node:fs/promises";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readFileToBound } from "../../attestation/bounded-read.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-bounded-bytes-");

describe("a file larger than its bound", () => {
  it("is refused after reading at most the bound and one byte more", async () => {
    const file = join(dir, "large.json");
    // 4 MiB, far past the bound and past the reader's 64 KiB chunk.
    await writeFile(file, Buffer.alloc(4 * 1024 * 1024, 0x20));
    const limit = { bytes: 1000, expected: "a small test file" };
    let given = 0;
    const count = async (handle: FileHandle): Promise<void> => {
      const read = handle.read.bind(handle) as (...args: unknown[]) => Promise<{ bytesRead: number }>;
      (handle as { read: unknown }).read = async (...args: unknown[]) => {
        const result = await read(...args);
        given += result.bytesRead;
        return result;
      };
    };
    const error = await readFileToBound(
      file,
      limit,
      (cause) => new Error("cannot read", { cause }),
      ({ reason }) => new Error(reason),
      count,
    ).then(
      () => null,
      (refusal: unknown) => refusal,
    );
    expect((error as Error).message).toBe("expected at most 1000 bytes (a small test file), found more");
    expect(given).toBeGreaterThan(0);
    expect(given).toBeLessThanOrEqual(limit.bytes + 1);
  });
});
