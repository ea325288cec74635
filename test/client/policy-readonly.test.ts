/**
 * A parsed client policy is deep-frozen (registeredParser), and its type says so down to the
 * trusted signers' keys: changing one in place is a type error (checked by `npx tsc`, through the
 * @ts-expect-error lines) and, in JavaScript, a TypeError. The readonly keys are what the manifest
 * verifier takes.
 */
import { describe, expect, it } from "vitest";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { parseClientPolicy } from "../../client/policy.ts";
import { DEV_MANIFEST } from "../../manifests/dev.ts";
import { generateManifestSigningKey, signManifest, verifyManifest } from "../../manifests/sign.ts";

describe("parsed client policy: trusted signers", () => {
  it("are readonly in their type, frozen, and verify a manifest as they are", async () => {
    const keys = await generateManifestSigningKey();
    const policy = parseClientPolicy(
      simulatorClientPolicy({
        tee: "sim-snp",
        measurement: "a".repeat(96),
        operatorKey: { ...keys.publicJwk, key_ops: ["verify"] },
        modelSha256: "b".repeat(64),
        serviceName: "svc",
      }),
    );
    const signer = policy.manifest.trustedSigners[0];
    if (signer === undefined) throw new Error("expected a trusted signer");
    expect(() => {
      // @ts-expect-error a trusted signer's members are readonly
      signer.x = "AAAA";
    }).toThrow(TypeError);
    expect(() => {
      // @ts-expect-error and its lists
      signer.key_ops?.push("sign");
    }).toThrow(TypeError);
    const jws = await signManifest(DEV_MANIFEST, keys.privateJwk);
    const verified = await verifyManifest(jws, policy.manifest.trustedSigners);
    expect(verified.signerKeyThumbprint).toBe(keys.thumbprint);
  });
});
