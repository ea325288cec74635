/**
 * A trusted manifest key without its public coordinates (`x`, and `y` for P-256) is refused by
 * checkTrustedJwk itself, as MANIFEST_KEY_INVALID naming the source and the member, for every reader
 * of trusted keys (cloister enclave's and policy init's --operator-key, manifest verify's --key, a
 * client policy's trustedSigners), not by jose's ERR_JWK_INVALID (naming neither) when it is hashed or
 * imported.
 */
import { describe, expect, it } from "vitest";
import { devManifest } from "../../manifests/dev.ts";
import { ManifestError } from "../../manifests/errors.ts";
import { checkTrustedJwk, generateManifestSigningKey, signManifest, verifyManifest } from "../../manifests/sign.ts";
import { rejectionOf } from "../helpers/rejections.ts";

describe("checkTrustedJwk: a key's public coordinates", () => {
  it.each([
    ["EdDSA", "x"],
    ["ES256", "x"],
    ["ES256", "y"],
  ] as const)("refuses a %s key without %s, naming the source and the member", async (alg, member) => {
    const { publicJwk } = await generateManifestSigningKey(alg);
    const { [member]: _dropped, ...lacking } = publicJwk;
    expect(() => checkTrustedJwk(lacking, "--key k.jwk")).toThrow(
      expect.objectContaining({
        code: "MANIFEST_KEY_INVALID",
        message: `--key k.jwk: ${member}: expected the public key (a base64url string), found nothing`,
      }),
    );
  });

  it("refuses a coordinate that is not a string", async () => {
    const { publicJwk } = await generateManifestSigningKey("EdDSA");
    expect(() => checkTrustedJwk({ ...publicJwk, x: 7 }, "trusted key 0")).toThrow(
      "trusted key 0: x: expected the public key (a base64url string), found 7",
    );
  });

  it("takes a whole public key, and a policy's trusted signer lacking x, met before the signer, is refused by name at verification", async () => {
    const { publicJwk, privateJwk } = await generateManifestSigningKey("ES256");
    expect(checkTrustedJwk(publicJwk, "--key k.jwk")).toBe(publicJwk);
    const signed = await signManifest(devManifest(), privateJwk);
    const { x: _x, ...lacking } = publicJwk;
    const error = await rejectionOf(verifyManifest(signed, [lacking, publicJwk]), ManifestError);
    expect(error.code).toBe("MANIFEST_KEY_INVALID");
    expect(error.message).toContain("trusted key 0: x: expected the public key");
  });
});
