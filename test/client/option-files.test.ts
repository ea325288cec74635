/**
 * The small files options name (--policy, --operator-key, --api-key-file and cloister up's default key
 * file, the host's --api-keys, the enclave's --manifest) are read to a bound and as strict UTF-8
 * (client/cli/bounded-file.ts readOptionFile): a larger file, or a device that never ends, is USAGE
 * naming the option, the file and the bound, never held in memory whole; a byte that is not UTF-8 is
 * USAGE naming the byte, never decoded loosely into U+FFFD. A file that cannot be read keeps each
 * command's own message.
 */
import { mkdir, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UsageError } from "../../client/cli/output.ts";
import { readApiKey, readPolicyFile } from "../../client/cli/run-client.ts";
import { loadApiKeys } from "../../host/run.ts";
import { readOperatorKeyFile } from "../../manifests/cli-impl.ts";
import { runCloister } from "../helpers/cli.ts";
import { devPolicy } from "./helpers.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-option-files-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A sparse file one byte past `bound`: all zero bytes, none of them written out. */
async function past(name: string, bound: number): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, "");
  await truncate(path, bound + 1);
  return path;
}

/** A file whose 5th byte is 0xff, which no UTF-8 text holds (decoded loosely: U+FFFD). */
async function notUtf8(name: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, Buffer.concat([Buffer.from('{"ab'), Buffer.of(0xff), Buffer.from('"}')]));
  return path;
}

const refusal = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => new Error("expected a refusal"),
    (error: unknown) => error,
  );

const utf8Refusal = (what: string, file: string) =>
  new UsageError(`${what} ${file}: expected UTF-8 text, found a byte that is not UTF-8 (byte 5 of the file)`);

const cases: {
  readonly option: string;
  readonly bound: number;
  readonly expected: string;
  readonly read: (file: string) => Promise<unknown>;
}[] = [
  {
    option: "--policy",
    bound: MiB,
    expected: "a client policy, a few KiB: 1 MiB holds some 10,000 allow-list entries",
    read: (file) => readPolicyFile(file),
  },
  {
    option: "--operator-key",
    bound: 64 * KiB,
    expected: "one Ed25519 or P-256 JWK, a few hundred bytes",
    read: (file) => readOperatorKeyFile(file),
  },
  {
    option: "--api-keys",
    bound: 16 * MiB,
    expected: "the host's API keys, some 40,000 at their largest",
    read: (file) => loadApiKeys(file),
  },
  {
    option: "--api-key-file",
    bound: 16 * KiB,
    expected: "one API key, sent in an HTTP header: Node's servers take 16 KiB of headers",
    read: (file) => readApiKey(file, "http://127.0.0.1:9"),
  },
];

describe("option files are read to a bound and as strict UTF-8", () => {
  for (const { option, bound, expected, read } of cases) {
    it(`${option}: a file past ${bound} bytes, and one that is not UTF-8`, async () => {
      const name = option.replace(/^--/, "");
      const huge = await past(`huge-${name}`, bound);
      expect(await refusal(read(huge))).toEqual(
        new UsageError(`${option} ${huge}: expected at most ${bound} bytes (${expected}), found more`),
      );
      const latin1 = await notUtf8(`latin1-${name}`);
      expect(await refusal(read(latin1))).toEqual(utf8Refusal(option, latin1));
      // A file that cannot be read: the command's own message, as before.
      const missing = join(dir, `missing-${name}`);
      expect(((await refusal(read(missing))) as Error).message).toContain(
        `cannot read "${missing}" (ENOENT: no such file; check the path)`,
      );
    });
  }

  it("cloister up's default key file (no --api-key-file, a loopback URL): to the same bound", async () => {
    const work = await mkdtemp(join(dir, "up-"));
    await mkdir(join(work, ".cloister"));
    const keyFile = join(work, ".cloister", "api-key");
    await writeFile(keyFile, "");
    await truncate(keyFile, 16 * KiB + 1);
    const policy = join(work, "policy.json");
    await writeFile(policy, JSON.stringify(await devPolicy()));
    // Spawned in that directory: the default key file is relative to the working directory.
    const run = await runCloister(["attest", "--url", "http://127.0.0.1:9", "--policy", policy], { cwd: work });
    expect(run.stderr).toContain(
      `the default key file .cloister/api-key: expected at most ${16 * KiB} bytes (one API key, sent in an HTTP header: Node's servers take 16 KiB of headers), found more`,
    );
  });

  it("cloister enclave --manifest: a signed manifest past 4 MiB, as cloister manifest verify reads one", async () => {
    const manifest = await past("huge-manifest.jws", 4 * MiB);
    // The model and the operator key are never read: the manifest is refused first.
    const args = ["enclave", "--manifest", manifest, "--operator-key", join(dir, "never-read.jwk")];
    args.push("--model", join(dir, "missing.gguf"), "--tee", "sim-snp", "--port", "0");
    const run = await runCloister(args);
    expect({ code: run.code, stderr: run.stderr }).toEqual({
      code: 2,
      stderr: `cloister: USAGE: --manifest ${manifest}: expected at most ${4 * MiB} bytes (a manifest travels whole in the attestation document, read to 4 MiB), found more\n`,
    });
  });
});
