/**
 * `cloister manifest keygen` (manifests/cli-impl.ts keygenCommand) whose --out-public directory is
 * removed after the check and before the public key is written: the refusal is the missing
 * directory's (client/cli/output.ts noDirectoryError: bad input, the ENOENT its cause), ending with
 * what this run left behind (the private key it wrote), as its other refusals of --out-public do.
 */
import { type FileHandle, mkdir, open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { UsageError } from "../../client/cli/output.ts";
import { keygenCommand } from "../../manifests/cli-impl.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-manifest-keygen-no-directory-");

/** FileHandle's prototype (node:fs/promises does not export the class): that of a handle opened. */
const handleProto: FileHandle = await (async () => {
  const handle = await open(join(dir, "probe"), "w");
  await handle.close();
  return Object.getPrototypeOf(handle) as FileHandle;
})();

afterEach(() => {
  vi.restoreAllMocks();
});

describe("manifest keygen: --out-public's directory gone before its write", () => {
  it("is refused as a missing directory, naming the private key this run wrote", async () => {
    const outPrivate = join(dir, "op.private.jwk");
    const publicDir = join(dir, "public");
    const outPublic = join(publicDir, "op.public.jwk");
    await mkdir(publicDir);
    const realWriteFile = handleProto.writeFile;
    // While the private key is written: after both files were checked, before the public one.
    vi.spyOn(handleProto, "writeFile").mockImplementationOnce(async function (this: FileHandle, ...args) {
      await rm(publicDir, { recursive: true });
      return realWriteFile.apply(this, args);
    });
    const error = await rejectionOf(keygenCommand({ outPrivate, outPublic, alg: "EdDSA" }), UsageError);
    expect(error.message).toBe(
      `--out-public ${outPublic}: its directory does not exist (ENOENT); create it first (mkdir -p ${publicDir})` +
        `; the private key was written to ${outPrivate}: remove it or pass --force`,
    );
    expect(error.cause).toMatchObject({ code: "ENOENT" });
    expect(JSON.parse(await readFile(outPrivate, "utf8"))).toHaveProperty("d");
  });
});
