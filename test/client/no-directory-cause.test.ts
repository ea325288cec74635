/**
 * An output file whose directory does not exist is a UsageError naming the option, the file and the
 * directory (client/cli/output.ts noDirectoryError) whose cause is the file system's error that
 * found it, for every writer: manifest keygen's and sign's (manifests/cli-impl.ts) and kbs keygen's
 * (attestation/kbs/cli-impl.ts), as for writeOutputFile's.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { runKbsKeygen } from "../../attestation/kbs/cli-impl.ts";
import { UsageError } from "../../client/cli/output.ts";
import { keygenCommand } from "../../manifests/cli-impl.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-no-directory-");

describe("an output file whose directory does not exist", () => {
  it("manifest keygen: the refusal's cause is the ENOENT that found it", async () => {
    const missing = join(dir, "keys");
    const error = await rejectionOf(
      keygenCommand({ outPrivate: join(missing, "op.private.jwk"), outPublic: join(dir, "op.pub.jwk"), alg: "EdDSA" }),
      UsageError,
    );
    expect(error.message).toContain(
      `--out-private ${join(missing, "op.private.jwk")}: its directory does not exist (ENOENT); create it first (mkdir -p ${missing})`,
    );
    expect(error.cause).toMatchObject({ code: "ENOENT" });
  });

  it("kbs keygen: the refusal's cause is the ENOENT that found it", async () => {
    const missing = join(dir, "model-keys");
    const error = await rejectionOf(runKbsKeygen({ keyId: "model-a", out: join(missing, "model-a.jwk") }), UsageError);
    expect(error.message).toContain(
      `--out ${join(missing, "model-a.jwk")}: its directory does not exist (ENOENT); create it first (mkdir -p ${missing})`,
    );
    expect(error.cause).toMatchObject({ code: "ENOENT" });
  });

  it("kbs keygen: a key file that exists is refused before any key is made (its lstat found it: no cause)", async () => {
    const out = join(dir, "model-b.jwk");
    const stdout = vi.spyOn(process.stdout, "write").mockReturnValue(true);
    try {
      await runKbsKeygen({ keyId: "model-b", out });
    } finally {
      stdout.mockRestore();
    }
    const error = await rejectionOf(runKbsKeygen({ keyId: "model-b", out }), UsageError);
    expect(error.message).toContain("already exists (EEXIST); a model key is never overwritten");
    expect(error.cause).toBeUndefined();
  });

  it("kbs keygen: a key file that cannot be created is named as every output file is (`--out FILE: …`), its code and what to do", async () => {
    const file = join(dir, "a-file");
    await writeFile(file, "");
    const out = join(file, "model-c.jwk");
    const error = await rejectionOf(runKbsKeygen({ keyId: "model-c", out }), UsageError);
    expect(error.message).toBe(
      `--out ${out}: cannot create (ENOTDIR: a part of the path is a file, not a directory; check the path)`,
    );
    expect(error.cause).toMatchObject({ code: "ENOTDIR" });
  });
});
