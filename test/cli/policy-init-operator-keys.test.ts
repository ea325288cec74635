/**
 * `cloister policy init --operator-key A --operator-key B`: while the operator's signing key is rotated
 * (docs/deploy.md step 6), a client policy must trust the old and the new key before the first enclave
 * presents the new signature. The option once took one key (the doc had operators add the second with
 * jq); it is repeatable now, as cloister enclave's: the policy trusts every key given, in that order,
 * the deployment's manifest must verify under one of them (a refusal names each kid given and the one
 * found), the notes say which one signs it now, and the same key given twice is refused.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { JWK } from "jose";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { generateManifestSigningKey } from "../../manifests/sign.ts";
import { closeServers, serveDeployment } from "../client/helpers.ts";
import { operatorPublicKey } from "../enclave/helpers.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const run = inProcessCli();
const dir = await testDirectory("cloister-policy-init-keys-");
let apiKeyFile: string;
/** The key the deployment's manifest is signed with (test/enclave/helpers.ts bootWith's). */
const signing = { file: "", jwk: {} as JWK, kid: "" };
/** Keys that signed nothing the deployment presents. */
const other = { file: "", jwk: {} as JWK, kid: "" };
const third = { file: "", jwk: {} as JWK, kid: "" };

beforeAll(async () => {
  apiKeyFile = join(dir, "api-key");
  await writeFile(apiKeyFile, "ck_policy_init_keys_0123456789\n", { mode: 0o600 });
  signing.jwk = await operatorPublicKey();
  signing.kid = signing.jwk.kid!;
  signing.file = join(dir, "operator.public.jwk");
  await writeFile(signing.file, JSON.stringify(signing.jwk));
  for (const [key, name] of [
    [other, "operator-old.public.jwk"],
    [third, "operator-third.public.jwk"],
  ] as const) {
    const pair = await generateManifestSigningKey("EdDSA");
    Object.assign(key, { jwk: pair.publicJwk, kid: pair.thumbprint, file: join(dir, name) });
    await writeFile(key.file, JSON.stringify(pair.publicJwk));
  }
});
afterEach(closeServers);

function policyInit(url: string, keys: readonly string[], ...more: string[]): string[] {
  return [
    "policy",
    "init",
    "--url",
    url,
    ...keys.flatMap((file) => ["--operator-key", file]),
    "--api-key-file",
    apiKeyFile,
    "--allow-simulator",
    ...more,
  ];
}

describe("policy init with several --operator-key", () => {
  it("two keys, the manifest signed by the second: the policy trusts both, in the order given, and says which signs", async () => {
    const { url } = await serveDeployment();
    const out = join(dir, "two-keys.json");
    const result = await run(policyInit(url, [other.file, signing.file], "--out", out));
    expect(result.code, result.stderr).toBe(0);
    const policy = JSON.parse(await readFile(out, "utf8"));
    expect(policy.manifest.trustedSigners).toEqual([other.jwk, signing.jwk]);
    const note = `note: the deployment's manifest is signed now by --operator-key ${signing.file} (kid ${signing.kid}); the policy also trusts kid ${other.kid} (${other.file})\n`;
    expect(result.stderr).toContain(note);
    // The self-check ran with the policy written (it trusts both): unchanged.
    expect(result.stderr).toContain("checked: the policy accepts this deployment now");

    // The policy verifies what the deployment presents: a client using it connects.
    const attested = await run(["attest", "--url", url, "--policy", out, "--api-key-file", apiKeyFile, "--json"]);
    expect(attested.code, attested.stderr).toBe(0);
  });

  it("--json: its notes say which key signs the deployment's manifest now", async () => {
    const { url } = await serveDeployment();
    const result = await run(policyInit(url, [signing.file, other.file, third.file], "--json"));
    expect(result.code, result.stderr).toBe(0);
    const printed = JSON.parse(result.stdout) as { policy: { manifest: { trustedSigners: JWK[] } }; notes: string[] };
    expect(printed.policy.manifest.trustedSigners).toEqual([signing.jwk, other.jwk, third.jwk]);
    expect(printed.notes).toContain(
      `the deployment's manifest is signed now by --operator-key ${signing.file} (kid ${signing.kid}); the policy also trusts kid ${other.kid} (${other.file}), kid ${third.kid} (${third.file})`,
    );
  });

  it("a manifest signed by neither: refused (exit 1), naming both kids given and the signer kid found", async () => {
    const { url } = await serveDeployment();
    const out = join(dir, "neither.json");
    const result = await run(policyInit(url, [other.file, third.file], "--out", out));
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `cloister: MANIFEST_SIGNATURE_INVALID: the deployment's manifest: manifest signature: expected a valid signature by a trusted key (${other.kid}, ${third.kid}), found none that verifies; the manifest's header names signer kid ${signing.kid} (unverified), not a trusted key\n`,
    );
    await expect(readFile(out)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("the same key twice (another file, the same thumbprint): refused before anything is fetched, naming both files", async () => {
    const { url, authorizations } = await serveDeployment();
    const copy = join(dir, "operator-copy.public.jwk");
    // The same public key, written otherwise (no kid, alg or use): the same key all the same.
    const { kty, crv, x } = signing.jwk;
    await writeFile(copy, JSON.stringify({ kty, crv, x }));
    const result = await run(policyInit(url, [signing.file, other.file, copy]));
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `cloister: USAGE: --operator-key ${copy}: expected another key than --operator-key ${signing.file}, found the same (kid ${signing.kid}); give each key once (run with --help for usage)\n`,
    );
    expect(authorizations).toEqual([]);
    const again = await run(policyInit(url, [other.file, other.file]));
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`found the same (kid ${other.kid})`);
  });

  it("a key file without its public coordinates (x, y for P-256): refused as the option's key (exit 2), before anything is fetched", async () => {
    const { url, authorizations } = await serveDeployment();
    const { kty, crv } = signing.jwk;
    const noX = join(dir, "no-x.public.jwk");
    await writeFile(noX, JSON.stringify({ kty, crv }));
    const result = await run(policyInit(url, [signing.file, noX]));
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `cloister: MANIFEST_KEY_INVALID: --operator-key ${noX}: x: expected the public key (a base64url string), found nothing\n`,
    );
    const noY = join(dir, "no-y.public.jwk");
    await writeFile(noY, JSON.stringify({ kty: "EC", crv: "P-256", x: signing.jwk.x }));
    const ec = await run(policyInit(url, [noY, signing.file]));
    expect(ec.code).toBe(2);
    expect(ec.stderr).toBe(
      `cloister: MANIFEST_KEY_INVALID: --operator-key ${noY}: y: expected the public key (a base64url string), found nothing\n`,
    );
    expect(authorizations).toEqual([]);
  });

  it("one key, as before: the policy trusts it alone and the output says nothing of signers", async () => {
    const { url } = await serveDeployment();
    const result = await run(policyInit(url, [signing.file]));
    expect(result.code, result.stderr).toBe(0);
    const policy = JSON.parse(result.stdout);
    expect(policy.manifest.trustedSigners).toEqual([signing.jwk]);
    expect(result.stderr).not.toContain("signed now by");
    expect(result.stderr).toMatch(
      /^policy for sev-snp \(SIMULATED\), service [^\n]+, model [0-9a-f]{64}\n(note: [^\n]+\n)+checked: the policy accepts this deployment now \(evidence, binding, document, fresh nonce, manifest\)\n$/,
    );
  });
});
