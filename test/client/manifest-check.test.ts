/**
 * The client's manifest check (client/policy.ts manifestCheckForPolicy): a manifest that the policy's
 * trusted signers do not accept is refused in stage "manifest" with verifyManifest's code, and its
 * message names the field once (verifyManifest's messages already say "manifest …").
 */
import { describe, expect, it } from "vitest";
import { AttestationError } from "../../attestation/errors.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { manifestCheckForPolicy } from "../../client/policy.ts";
import { DEV_MANIFEST } from "../../manifests/dev.ts";
import { generateManifestSigningKey, signManifest } from "../../manifests/sign.ts";
import { simulatedSnpTeeEvidence } from "../helpers/manifest-tee-evidence.ts";
import { rejectionOf } from "../helpers/rejections.ts";

const CONTEXT = { tee: "snp", simulated: true, evidence: simulatedSnpTeeEvidence() };

async function refusal(operatorKey: object, jws: string): Promise<AttestationError> {
  const policy = simulatorClientPolicy({
    tee: "sim-snp",
    measurement: "a".repeat(96),
    operatorKey,
    modelSha256: DEV_MANIFEST.model.sha256,
    serviceName: DEV_MANIFEST.service.name,
  });
  const error = await rejectionOf(manifestCheckForPolicy(policy).verify(jws, CONTEXT), AttestationError);
  expect(error.stage).toBe("manifest");
  return error;
}

describe("the client's manifest check names the manifest once", () => {
  it("a manifest signed by a key the policy does not trust (a policy from another `cloister up`)", async () => {
    const [signer, trusted] = [await generateManifestSigningKey("EdDSA"), await generateManifestSigningKey("EdDSA")];
    const error = await refusal(trusted.publicJwk, await signManifest(DEV_MANIFEST, signer.privateJwk));
    expect([error.code, error.message]).toEqual([
      "MANIFEST_SIGNATURE_INVALID",
      `manifest signature: expected a valid signature by a trusted key (${trusted.thumbprint}), found none that verifies; ` +
        `the manifest's header names signer kid ${signer.thumbprint} (unverified), not a trusted key`,
    ]);
  });

  it("a manifest that is not a compact JWS", async () => {
    const trusted = await generateManifestSigningKey("EdDSA");
    const error = await refusal(trusted.publicJwk, "not.a-jws");
    expect([error.code, error.message]).toEqual([
      "MANIFEST_JWS_MALFORMED",
      "manifest: expected a compact JWS (three base64url parts, the first non-empty, no white space), found a string of 9 characters",
    ]);
  });

  it("a trusted key that cannot be imported is named as the client policy's manifest.trustedSigners", async () => {
    const signer = await generateManifestSigningKey("EdDSA");
    const error = await refusal(
      { kty: "OKP", crv: "Ed25519", x: "AAAA" },
      await signManifest(DEV_MANIFEST, signer.privateJwk),
    );
    expect([error.code, error.message]).toEqual([
      "MANIFEST_KEY_INVALID",
      "client policy manifest.trustedSigners: trusted key 0: could not be imported as a JWK",
    ]);
  });
});
