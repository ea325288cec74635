/**
 * prepareDeployment (client/cli/deploy.ts, `cloister up --dir`) writes through the directory it
 * holds open (/proc/self/fd/N on Linux), but a write that fails is named by the path the user gave,
 * as before: /proc/self/fd/N means nothing once the process is gone.
 */
import { chmod, mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { shellWord } from "../../attestation/bounded-read.ts";
import { prepareDeployment } from "../../client/cli/deploy.ts";

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe("prepareDeployment: a write through the directory held that fails", () => {
  it("names the file by the --dir path, never /proc/self/fd", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-deploy-names-"));
    dirs.push(dir);
    await chmod(dir, 0o700);
    await mkdir(join(dir, "api-keys.json"));
    const error = await prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {} }).then(
      () => null,
      (failed: Error) => failed,
    );
    expect(error?.message).toContain(join(dir, "api-keys.json"));
    expect(error?.message).not.toContain("/proc/self/fd");
    // Refused as not a regular file (UsageError), found by the lstat before the write: in its stack too.
    expect(error?.stack).toContain(join(dir, "api-keys.json"));
    expect(error?.stack).not.toContain("/proc/self/fd");
  });

  it("names an earlier run's file refused by the --dir path, in its cause and stack too", async () => {
    // A space in it: the fix is a shell command on the path as named, one shell word.
    const dir = await mkdtemp(join(tmpdir(), "cloister deploy-names-"));
    dirs.push(dir);
    await chmod(dir, 0o700);
    await prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {} });
    await chmod(join(dir, "operator.private.jwk"), 0o644);
    const error = await prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {} }).then(
      () => null,
      (failed: Error) => failed,
    );
    const cause = error?.cause as Error | undefined;
    expect(error?.message).toContain(`chmod 600 ${shellWord(join(dir, "operator.private.jwk"))}`);
    expect(cause?.message).toContain(join(dir, "operator.private.jwk"));
    for (const text of [error?.message, error?.stack, cause?.message, cause?.stack]) {
      expect(text).not.toContain("/proc/self/fd");
    }
  });
});

describe("prepareDeployment: the directory held", () => {
  it("is closed once it returns or fails (no descriptor left open)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-deploy-fds-"));
    dirs.push(dir);
    await chmod(dir, 0o700);
    const open = async () => (await readdir("/proc/self/fd")).length;
    const before = await open();
    await prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {} });
    expect(await open()).toBe(before);
    await rm(join(dir, "api-keys.json"));
    await mkdir(join(dir, "api-keys.json"));
    await expect(prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {} })).rejects.toThrow();
    expect(await open()).toBe(before);
  });
});
