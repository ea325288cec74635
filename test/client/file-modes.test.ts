/**
 * The modes of the files Cloister's commands write, whatever the umask (002, many Linux users'
 * default, leaves a file group-writable; 077 takes every bit from group and others): keys 0600, the
 * rest 0644, also when --force replaces a file of a wider mode. The key broker refuses a
 * configuration or policy that group or others can write and a key file they can read
 * (attestation/kbs/key-file.ts); `cloister up`'s own files are checked in deploy.test.ts.
 */
import { chmod, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { runKbsKeygen } from "../../attestation/kbs/cli-impl.ts";
import { readPrivateKeyFile } from "../../attestation/kbs/key-file.ts";
import { writeOutputFile } from "../../client/cli/output.ts";
import { keygenCommand, signCommand } from "../../manifests/cli-impl.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const DEV_MANIFEST = join(import.meta.dirname, "..", "..", "manifests", "examples", "dev.json");

const dir = await testDirectory("cloister-file-modes-");
let previous: number;
beforeAll(async () => {});
afterEach(() => {
  process.umask(previous);
  vi.restoreAllMocks();
});

const modeOf = async (file: string) => `0${((await stat(file)).mode & 0o777).toString(8)}`;

describe.each([0o002, 0o077])("files written under umask 0%o", (umask) => {
  const path = (name: string) => join(dir, `${umask.toString(8)}-${name}`);
  const quietly = () => vi.spyOn(process.stdout, "write").mockReturnValue(true);

  it("policy init --out, audit checkpoint --out, attest --document-out, bundle --out (writeOutputFile): 0644, new or replaced", async () => {
    previous = process.umask(umask);
    await writeOutputFile(path("policy.json"), "{}\n", "--out", "never");
    expect(await modeOf(path("policy.json"))).toBe("0644");
    // --force over a file an older tool left group-writable.
    await writeFile(path("replaced.json"), "old\n");
    await chmod(path("replaced.json"), 0o666);
    await writeOutputFile(path("replaced.json"), "{}\n", "--out", "replace");
    expect(await modeOf(path("replaced.json"))).toBe("0644");
  });

  it("manifest keygen and manifest sign: private key 0600, public key and signed manifest 0644, new or replaced", async () => {
    previous = process.umask(umask);
    quietly();
    const keys = { outPrivate: path("operator.jwk"), outPublic: path("operator.pub.jwk"), alg: "EdDSA" as const };
    await keygenCommand(keys);
    expect([await modeOf(keys.outPrivate), await modeOf(keys.outPublic)]).toEqual(["0600", "0644"]);
    await chmod(keys.outPrivate, 0o666);
    await chmod(keys.outPublic, 0o666);
    await keygenCommand({ ...keys, force: true });
    expect([await modeOf(keys.outPrivate), await modeOf(keys.outPublic)]).toEqual(["0600", "0644"]);
    await signCommand(DEV_MANIFEST, path("manifest.jws"), { key: keys.outPrivate });
    expect(await modeOf(path("manifest.jws"))).toBe("0644");
    await chmod(path("manifest.jws"), 0o666);
    await signCommand(DEV_MANIFEST, path("manifest.jws"), { key: keys.outPrivate, force: true });
    expect(await modeOf(path("manifest.jws"))).toBe("0644");
  });

  it("kbs keygen: 0600, which the broker's key-file check accepts", async () => {
    previous = process.umask(umask);
    quietly();
    await runKbsKeygen({ keyId: "model-a", out: path("model-a.jwk") });
    expect(await modeOf(path("model-a.jwk"))).toBe("0600");
    expect(JSON.parse(await readPrivateKeyFile(path("model-a.jwk"), "--key"))).toMatchObject({ kid: "model-a" });
  });
});
