/**
 * Files that decide trust (client and attestation policies, the broker's configuration and key
 * files, the host's API keys, manifests) with a member named twice in one object: refused, naming
 * the member's path. JSON.parse keeps the last, while a reader of the file takes the first.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CompactSign, importJWK } from "jose";
import { describe, expect, it } from "vitest";
import { describeMemberPath, findDuplicateMember } from "../../attestation/json-duplicates.ts";
import { DuplicateMemberError, parseJsonText } from "../../attestation/json-text.ts";
import { loadBrokerConfig } from "../../attestation/kbs/config.ts";
import { parseAttestationPolicy } from "../../attestation/policy.ts";
import { readPolicyFile } from "../../client/cli/run-client.ts";
import { runPolicyInit } from "../../client/cli/run-policy.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { parseClientPolicy } from "../../client/policy.ts";
import { runEnclaveCommand } from "../../enclave/run.ts";
import { loadApiKeys } from "../../host/run.ts";
import { checkCommand } from "../../manifests/cli-impl.ts";
import { DEV_MANIFEST } from "../../manifests/dev.ts";
import { generateManifestSigningKey, MANIFEST_JWS_TYP, verifyManifest } from "../../manifests/sign.ts";
import { thrownBy } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const policy = simulatorClientPolicy({
  tee: "sim-snp",
  measurement: "a".repeat(96),
  operatorKey: { kty: "OKP", crv: "Ed25519", x: "abc" },
  modelSha256: "b".repeat(64),
  serviceName: "svc",
});
const text = JSON.stringify({ ...policy, attestation: { ...policy.attestation, trustSimulator: false } }, null, 2);

const dir = await testDirectory("cloister-dup-");

function caught(run: () => unknown): Error & { code?: string } {
  return thrownBy(run, Error);
}

describe("a client policy with a member named twice", () => {
  it("trustSimulator false, then true: refused, naming attestation.trustSimulator (not read as true)", () => {
    const twice = text.replace('"trustSimulator": false,', '"trustSimulator": false,\n    "trustSimulator": true,');
    expect(twice).not.toBe(text);
    const error = caught(() => parseClientPolicy(twice));
    expect(error.code).toBe("POLICY_INVALID");
    expect(error.message).toMatch(
      /^client policy: attestation\.trustSimulator appears twice in one object \(the second at position \d+\): expected each member once .*; remove one$/,
    );
  });

  it("a second acceptedEvidence at the top, a second member inside an array's object: each named by its path", () => {
    const top = text.replace('"version": 1,', '"version": 1,\n  "acceptedEvidence": ["tdx"],');
    expect(caught(() => parseClientPolicy(top)).message).toMatch(/^client policy: acceptedEvidence appears twice/);
    const inArray = text.replace('"kty": "OKP",', '"kty": "OKP",\n "x": "other",');
    expect(inArray).not.toBe(text);
    expect(caught(() => parseClientPolicy(inArray)).message).toMatch(
      /^client policy: manifest\.trustedSigners\.0\.x appears twice/,
    );
  });

  it("cloister's --policy file (and so the page's /config.json) is refused, without the wrong-file hint", async () => {
    const path = join(dir, "policy.json");
    await writeFile(path, text.replace('"version": 1,', '"version": 1,\n  "version": 1,'));
    const error = (await readPolicyFile(path).catch((e: unknown) => e)) as Error & { code?: string };
    expect(error.message).toMatch(new RegExp(`^--policy ${path}: client policy: version appears twice`));
    expect(error.message).not.toContain("cloister policy init makes one");
  });
});

describe("the other files that decide trust", () => {
  it("an attestation policy", () => {
    const attestation = JSON.stringify(policy.attestation).replace(
      '"trustSimulator":true',
      '"trustSimulator":false,"trustSimulator":true',
    );
    const error = caught(() => parseAttestationPolicy(attestation));
    expect([error.code, error.message.split(" (")[0]]).toEqual([
      "POLICY_INVALID",
      "attestation policy: trustSimulator appears twice in one object",
    ]);
  });

  it("the key broker's configuration, and a key file it names", async () => {
    const config = join(dir, "kbs.json");
    await writeFile(config, '{"version":1,"keys":[],"keys":[{"keyFile":"k.jwk","policy":"p.json"}]}', { mode: 0o600 });
    await expect(loadBrokerConfig(config)).rejects.toMatchObject({
      code: "KBS_CONFIG_INVALID",
      message: expect.stringMatching(new RegExp(`^--config ${config}: keys appears twice in one object`)),
    });
    const keyed = join(dir, "kbs-keyed.json");
    await writeFile(keyed, JSON.stringify({ version: 1, keys: [{ keyFile: "twice.jwk", policy: "p.json" }] }), {
      mode: 0o600,
    });
    await writeFile(join(dir, "twice.jwk"), '{"kty":"oct","k":"AAAA","k":"BBBB"}', { mode: 0o600 });
    await expect(loadBrokerConfig(keyed)).rejects.toMatchObject({
      message: expect.stringMatching(/^keys\.0\.keyFile \S+twice\.jwk: k appears twice in one object/),
    });
  });

  it("the host's API-keys file (a second keys list would replace the first)", async () => {
    const path = join(dir, "keys.json");
    const key = { id: "a", sha256: "c".repeat(64), project: "p" };
    await writeFile(path, `{"version":1,"keys":${JSON.stringify([key])},"keys":[]}`);
    await expect(loadApiKeys(path)).rejects.toThrow(
      new RegExp(`^--api-keys ${path}: keys appears twice in one object`),
    );
  });

  it("a manifest file, and a signed manifest's payload", async () => {
    const body = JSON.stringify(DEV_MANIFEST);
    const twice = body.replace('"service":{', '"service":{"name":"shown-to-a-reviewer",');
    expect(twice).not.toBe(body);
    const path = join(dir, "manifest.json");
    await writeFile(path, twice);
    await expect(checkCommand(path, { json: true })).rejects.toThrow(
      new RegExp(`^manifest ${path}: service\\.name appears twice in one object`),
    );
    const { privateJwk, publicJwk } = await generateManifestSigningKey("EdDSA");
    const jws = await new CompactSign(new TextEncoder().encode(twice))
      .setProtectedHeader({ alg: "EdDSA", typ: MANIFEST_JWS_TYP })
      .sign(await importJWK(privateJwk, "EdDSA"));
    await expect(verifyManifest(jws, [publicJwk])).rejects.toThrow(
      /^manifest payload: service\.name appears twice in one object/,
    );
  });

  it("an operator's public key file (cloister enclave and cloister policy init): a second x would replace the key", async () => {
    const key = join(dir, "operator.jwk");
    await writeFile(key, '{"kty":"OKP","crv":"Ed25519","x":"shown","x":"used"}');
    const manifest = join(dir, "m.jws");
    await writeFile(manifest, "a.b.c\n");
    const enclave = runEnclaveCommand({
      manifest,
      operatorKey: [key],
      model: "x",
      tee: "sim-snp",
      listen: "127.0.0.1",
      port: 47650,
      frameIntervalMs: 100,
      shutdownGraceMs: 100,
    });
    await expect(enclave).rejects.toThrow(new RegExp(`^--operator-key ${key}: x appears twice in one object`));
    await expect(runPolicyInit({ url: "http://127.0.0.1:47651", operatorKey: [key] })).rejects.toThrow(
      new RegExp(`^--operator-key ${key}: x appears twice in one object`),
    );
  });

  it("parseJsonText, the one reader of them, refuses with a DuplicateMemberError and shows no odd name", () => {
    const error = caught(() => parseJsonText('{"a":[{"b":1},{"sk-live-SECRET":1,"sk-live-SECRET":2}]}'));
    expect(error).toBeInstanceOf(DuplicateMemberError);
    expect(error.message).toMatch(/^a\.1\.\(a name of 14 characters\) appears twice/);
    expect(error.message).not.toContain("SECRET");
    expect(findDuplicateMember('{"a":[0,{"k":1},[{"x":{"y":1,"y":2}}]]}')?.path).toEqual(["a", 2, 0, "x", "y"]);
    expect(describeMemberPath(["keys", 0, "id"])).toBe("keys.0.id");
  });
});
