/**
 * The atomic output writer on a file system without hard links (FAT, exFAT, some network mounts):
 * `link` fails with EPERM there, and the writer copies instead, with the same guarantee that an
 * existing file is never replaced (COPYFILE_EXCL). `link` is made to fail as it does on such a file
 * system; everything else is the real file system.
 */
import { link, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...real,
    link: vi.fn(async () => {
      throw Object.assign(new Error("EPERM: operation not permitted, link"), { code: "EPERM" });
    }),
  };
});

const { writeFileAtomically } = await import("../../client/cli/output.ts");

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-copy-fallback-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const errors = {
  exists: () => new Error("exists"),
  noDirectory: () => new Error("no directory"),
  failed: (code: string) => new Error(`failed ${code}`),
};

describe("writeFileAtomically without hard links", () => {
  it("copies the file into place, with its mode, and still never replaces an existing one", async () => {
    const file = join(dir, "key.jwk");
    await writeFileAtomically(file, "first\n", { mode: 0o600, replace: false }, errors);
    expect(await readFile(file, "utf8")).toBe("first\n");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    await expect(writeFileAtomically(file, "second\n", { mode: 0o600, replace: false }, errors)).rejects.toThrow(
      "exists",
    );
    expect(await readFile(file, "utf8")).toBe("first\n");
    // No temporary file is left beside it; and the link was tried (and failed) each time.
    expect(await readdir(dir)).toEqual(["key.jwk"]);
    expect(vi.mocked(link)).toHaveBeenCalledTimes(2);
  });

  it("replaces only when asked (rename needs no link)", async () => {
    const file = join(dir, "policy.json");
    await writeFile(file, "old\n");
    await writeFileAtomically(file, "new\n", { mode: 0o644, replace: true }, errors);
    expect(await readFile(file, "utf8")).toBe("new\n");
  });
});
