/**
 * writeOutputFiles (attest's --document-out and --evidence-out writer, client/cli/run-client.ts)
 * removes the outputs it made when a later one fails; a removal that fails too leaves a file or
 * folder the user must be told of: the error, the first failure's (its cause), names each one left,
 * with its option, path and why, worded as writeFileAtomically's leftFileNote words its own file; a
 * first failure that is not a UsageError keeps its class and code. The removals (node:fs/promises'
 * rm and rmdir) fail in a mock, for the paths asked, as does a write (output.ts writeOutputFile).
 */
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { writeOutputFiles } from "../../client/cli/run-client.ts";
import { ClientError } from "../../client/errors.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

/** The paths whose removal (rm for a file, rmdir for a folder) is to fail, and with which errno code. */
const removing = vi.hoisted(() => ({ fails: new Map<string, string>() }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith } = await import("../helpers/foreign-link.ts");
  const refused = (path: unknown) => {
    const code = removing.fails.get(String(path));
    if (code !== undefined) throw Object.assign(new Error(`${code}: failed, remove`), { code });
  };
  const rm = (async (...args: Parameters<typeof real.rm>) => {
    refused(args[0]);
    return real.rm(...args);
  }) as typeof real.rm;
  const rmdir = (async (...args: Parameters<typeof real.rmdir>) => {
    refused(args[0]);
    return real.rmdir(...args);
  }) as typeof real.rmdir;
  return fsWith(real, { rm, rmdir });
});

/** A file whose write (output.ts writeOutputFile) is to throw this error, not a UsageError; null: none. */
const writing = vi.hoisted(() => ({ file: null as string | null, fails: null as Error | null }));

vi.mock("../../client/cli/output.ts", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../client/cli/output.ts")>();
  const writeOutputFile = (async (...args: Parameters<typeof real.writeOutputFile>) => {
    if (writing.fails !== null && args[0] === writing.file) throw writing.fails;
    return real.writeOutputFile(...args);
  }) as typeof real.writeOutputFile;
  return { ...real, writeOutputFile };
});

let dir = "";
testDirectoryEach("cloister-output-files-left-", (made) => {
  dir = made;
});
afterEach(() => {
  removing.fails.clear();
  writing.file = null;
  writing.fails = null;
});

/** A run's outputs: the document, a folder with one file in it, then cert.der, whose name is taken (EEXIST). */
async function runOutputs() {
  await writeFile(join(dir, "cert.der"), "someone else's");
  return [
    { file: join(dir, "document.jws"), content: "a.b.c\n", option: "--document-out" },
    { directory: join(dir, "collateral"), option: "--evidence-out" },
    { file: join(dir, "collateral", "crl.der"), content: new Uint8Array([1]), option: "--evidence-out" },
    { file: join(dir, "cert.der"), content: new Uint8Array([4, 5, 6]), option: "--evidence-out" },
  ];
}

describe("writeOutputFiles: an earlier output that cannot be removed again", () => {
  it("is named in the error (option, path, why), the first failure's, its cause", async () => {
    const outputs = await runOutputs();
    removing.fails.set(join(dir, "document.jws"), "EACCES");
    removing.fails.set(join(dir, "collateral"), "EBUSY");
    const error = await writeOutputFiles(outputs, "refuse").then(
      () => null,
      (thrown: unknown) => thrown as Error & { code: string; cause: Error },
    );
    const first = `--evidence-out ${join(dir, "cert.der")}: already exists (EEXIST); pass --force to replace it`;
    expect(error?.code).toBe("USAGE");
    expect(error?.message).toBe(
      `${first}; the earlier outputs of this run were left there, and could not be removed: ` +
        `--evidence-out ${join(dir, "collateral")} (EBUSY), ` +
        `--document-out ${join(dir, "document.jws")} (EACCES: this user may not write there; check the directory's ` +
        "owner and mode): remove them",
    );
    expect(error?.cause.message).toBe(first);
    // The folder's file was removed; the two named are there, and the other's cert.der untouched.
    expect((await readdir(dir)).sort()).toEqual(["cert.der", "collateral", "document.jws"]);
    expect(await readdir(join(dir, "collateral"))).toEqual([]);
  });

  it("is added to a first failure that is not a UsageError, whose class and code are kept", async () => {
    const outputs = await runOutputs();
    removing.fails.set(join(dir, "document.jws"), "EACCES");
    const failure = new ClientError("transport", "ENCLAVE_UNREACHABLE", "the enclave went away");
    writing.file = join(dir, "collateral", "crl.der");
    writing.fails = failure;
    const error = await writeOutputFiles(outputs, "refuse").then(
      () => null,
      (thrown: unknown) => thrown,
    );
    expect(error).toBe(failure);
    expect(failure.code).toBe("ENCLAVE_UNREACHABLE");
    expect(failure.message).toBe(
      "the enclave went away; the earlier outputs of this run were left there, and could not be removed: " +
        `--document-out ${join(dir, "document.jws")} (EACCES: this user may not write there; check the directory's ` +
        "owner and mode): remove them",
    );
  });

  it("is no part of the error when every removal succeeds: the first failure is thrown as it is", async () => {
    const outputs = await runOutputs();
    await expect(writeOutputFiles(outputs, "refuse")).rejects.toMatchObject({
      code: "USAGE",
      message: `--evidence-out ${join(dir, "cert.der")}: already exists (EEXIST); pass --force to replace it`,
    });
    expect(await readdir(dir)).toEqual(["cert.der"]);
  });

  it("is not said of a folder already gone (ENOENT), as of a file: the first failure is thrown as it is", async () => {
    const outputs = await runOutputs();
    removing.fails.set(join(dir, "collateral"), "ENOENT");
    await expect(writeOutputFiles(outputs, "refuse")).rejects.toMatchObject({
      code: "USAGE",
      message: `--evidence-out ${join(dir, "cert.der")}: already exists (EEXIST); pass --force to replace it`,
    });
  });
});
