/**
 * `cloister enclave` whose boot fails after it made its private model copy, and cannot remove that
 * copy (fail-model-copy-removal.mjs: EBUSY, as a removal may fail for real): it names the copy left
 * with the same words as a stop does, fails (exit 1) with the boot's own error, not the removal's,
 * so the user learns both why the boot failed and which decrypted weights to remove by hand.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DeploymentFiles, prepareDeployment } from "../../client/cli/deploy.ts";
import { CLI } from "../helpers/cli.ts";

let dir: string;
let files: DeploymentFiles;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-boot-failure-copy-"));
  files = await prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {}, sealedModel: false });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `cloister ARGS` to its end with `env`, collecting what it prints. */
function run(args: readonly string[], env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("cloister enclave: a failed boot that cannot remove its model copy", () => {
  it("names the copy left, as a stop does, and fails with the boot's own error", async () => {
    // A model file of the manifest's size whose bytes are not the manifest's: copied into the
    // private copy (hashed as it is written), then refused before anything is loaded.
    const model = await readFile(files.modelPath);
    model[model.length - 1] = (model[model.length - 1] as number) ^ 0xff;
    const altered = join(dir, "altered.gguf");
    await writeFile(altered, model);
    const failRemoval = join(import.meta.dirname, "..", "helpers", "fail-model-copy-removal.mjs");
    const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${failRemoval}` };
    const args = ["enclave", "--manifest", files.manifestPath, "--operator-key", files.operatorPublicKeyPath];
    const { code, stdout, stderr } = await run(
      [...args, "--model", altered, "--tee", "sim-snp", "--port", "0", "--listen", "127.0.0.1"],
      env,
    );
    const lines = stderr.trimEnd().split("\n");
    const copy = /could not remove the model copy (\S+) \(EBUSY\)/.exec(stderr)?.[1];
    if (copy !== undefined) await rm(copy, { recursive: true, force: true });
    expect(stdout).toBe("");
    expect(code).toBe(1);
    expect(copy ?? stderr).toMatch(/cloister-model-/);
    expect(lines.at(-2)).toBe(
      `cloister enclave: boot failed; could not remove the model copy ${copy} (EBUSY): remove it by hand`,
    );
    // The boot's own error, not the removal's.
    expect(lines.at(-1)).toMatch(/^cloister: [A-Z_]*DIGEST_MISMATCH: /);
  });
});
