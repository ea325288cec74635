/**
 * An output file that cannot be checked (its `lstat` fails before anything is written): the refusal
 * says what failed, the lookup, not that the directory may not be written to. EACCES from a lookup
 * means a directory of the path may not be looked into (no search permission); as root (these tests
 * may run as root) it cannot be made with modes, so the lookup is made to fail here.
 */
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";

const denied = "/denied-lookup";

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...real,
    lstat: (async (path: Parameters<typeof real.lstat>[0], ...rest: unknown[]) => {
      if (String(path).startsWith(denied)) {
        throw Object.assign(new Error(`EACCES: permission denied, lstat '${String(path)}'`), {
          code: "EACCES",
          syscall: "lstat",
        });
      }
      return (real.lstat as (...args: unknown[]) => Promise<unknown>)(path, ...rest);
    }) as typeof real.lstat,
  };
});

const { refuseExistingOutput, UsageError } = await import("../../client/cli/output.ts");
const { fileErrorCause } = await import("../../attestation/bounded-read.ts");
const { keygenCommand } = await import("../../manifests/cli-impl.ts");

describe("refuseExistingOutput when the file cannot be looked up", () => {
  it("says the lookup failed (a directory of the path may not be looked into), keeping the error as cause", async () => {
    const file = join(denied, "out.json");
    const refusal = await refuseExistingOutput(file, "--out", "refuse").then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(refusal).toBeInstanceOf(UsageError);
    expect(refusal?.message).toBe(
      `--out ${file}: cannot create (EACCES: this user may not look into a directory of the path, so whether the file exists is unknown; check the directories' owner and mode)`,
    );
    expect((refusal?.cause as NodeJS.ErrnoException | undefined)?.code).toBe("EACCES");
  });

  it("cloister manifest says it too: a lookup that failed, not a write (MANIFEST_FILE)", async () => {
    const file = join(denied, "key.jwk");
    const refusal = await keygenCommand({
      outPrivate: file,
      outPublic: join(denied, "key.pub.jwk"),
      alg: "EdDSA",
    }).then(
      () => null,
      (e: unknown) => e as Error & { code?: string },
    );
    expect([refusal?.code, refusal?.message]).toEqual([
      "MANIFEST_FILE",
      `--out-private ${file}: could not be looked up (EACCES: this user may not look into a directory of the path, so whether the file exists is unknown; check the directories' owner and mode)`,
    ]);
    expect((refusal?.cause as NodeJS.ErrnoException | undefined)?.code).toBe("EACCES");
  });

  it("fileErrorCause's check wording differs from read's and write's only for a permission refused", () => {
    const error = (code: string) => Object.assign(new Error(code), { code });
    for (const code of ["EACCES", "EPERM"]) {
      expect(fileErrorCause(error(code), "check"), code).toMatch(new RegExp(`^${code}: this user may not look into`));
    }
    for (const code of ["ENOTDIR", "ELOOP", "EIO"]) {
      expect(fileErrorCause(error(code), "check"), code).toBe(fileErrorCause(error(code), "read"));
    }
  });
});
