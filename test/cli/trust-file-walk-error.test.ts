/**
 * readAfterPathCheck (attestation/path-safety.ts): a walk of a trust file's path that fails (an
 * errno other than a missing part) while the read itself succeeds. The path was not checked, so the
 * file is refused all the same, `cannot check its path (…)`, the walk's error its cause: read as if
 * checked, a file below a directory anyone may write to would pass. `lstat` of the file's own name
 * is made to fail with EIO, as a failing disk's does; the read (stat, open) is the real one.
 */
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { testDirectory } from "../helpers/test-directory.ts";

/** The path whose lstat fails with EIO; null: none does. */
let failingLstat: string | null = null;

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...real,
    lstat: vi.fn(async (...args: Parameters<typeof real.lstat>) => {
      if (String(args[0]) === failingLstat) {
        throw Object.assign(new Error("EIO: i/o error, lstat"), { code: "EIO" });
      }
      return real.lstat(...args);
    }),
  };
});

const { readTrustFile } = await import("../../client/cli/bounded-file.ts");
const { UsageError } = await import("../../client/cli/output.ts");

const dir = await testDirectory("cloister-walk-error-");
const LIMIT = { bytes: 1024, expected: "a small test file" };

describe("a trust file whose path check fails while its read succeeds", () => {
  it("is refused, naming the option, the file and the errno, the walk's error its cause", async () => {
    const file = join(dir, "policy.json");
    await writeFile(file, "{}\n");
    await chmod(file, 0o644);
    // The file passes its own rule: read as it is once the walk works again.
    expect(await readTrustFile(file, "--policy", LIMIT, "which enclaves this client trusts")).toBe("{}\n");
    failingLstat = file;
    try {
      const error = await readTrustFile(file, "--policy", LIMIT, "which enclaves this client trusts").then(
        () => null,
        (refusal: unknown) => refusal,
      );
      expect(error).toBeInstanceOf(UsageError);
      expect((error as Error).message).toMatch(new RegExp(`^--policy ${file}: cannot check its path \\(EIO`));
      expect((error as Error).cause).toMatchObject({ code: "EIO" });
    } finally {
      failingLstat = null;
    }
  });
});
