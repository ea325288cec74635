/**
 * The client enforces the signed manifest's tee section (client/policy.ts, stage "manifest"), on top
 * of its own policy: a simulated SNP enclave whose evidence passes the client policy is still refused
 * when it breaks the manifest's allowedMeasurements, minimumTcb or policyFlags, the message naming
 * the manifest field, the evidence field, the expected and the found value.
 */
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { createNonceAnswer, type EnclaveKeys } from "../../attestation/document.ts";
import { AttestationError } from "../../attestation/errors.ts";
import { verifyWithClientPolicy } from "../../client/policy.ts";
import { DEV_MANIFEST, devManifest, type ManifestOverrides } from "../../manifests/dev.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { simulatedSnpEnclave } from "../helpers/simulated-document.ts";

const NOW = new Date("2026-01-01T00:00:00Z");
const MEASUREMENT = Uint8Array.from({ length: 48 }, (_, i) => (0xa0 + i) & 0xff);
const OTHER = "b".repeat(96);
type TeeOverrides = NonNullable<ManifestOverrides["tee"]>;

/** Verifies a simulated SNP enclave serving a manifest with `tee` overrides, under the simulator policy. */
async function verifyUnder(tee: TeeOverrides) {
  const keys: EnclaveKeys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
  const manifest = devManifest({ tee });
  const { document, policy } = await simulatedSnpEnclave({ keys, now: NOW, measurement: MEASUREMENT, manifest });
  const nonce = nacl.randomBytes(32);
  const answer = await createNonceAnswer({ keys, document, nonce, now: NOW });
  return verifyWithClientPolicy(document, policy, { value: nonce, answer }, NOW);
}

const refusal = async (tee: TeeOverrides) => rejectionOf(verifyUnder(tee), AttestationError);

describe("the client checks the manifest's tee section against the verified evidence", () => {
  it("the dev manifest's section (any measurement, TCB zeros, debug off, SMT allowed) passes the simulator", async () => {
    const enclave = await verifyUnder({});
    expect([enclave.simulated, enclave.measurement]).toEqual([true, toHex(MEASUREMENT)]);
  });

  it("a manifest listing a measurement other than the enclave's is refused, though the client policy pins it", async () => {
    const error = await refusal({ allowedMeasurements: [OTHER] });
    expect([error.stage, error.code, error.message]).toEqual([
      "manifest",
      "MANIFEST_MEASUREMENT_NOT_ALLOWED",
      `manifest tee.allowedMeasurements: MEASUREMENT expected ${OTHER}, found ${toHex(MEASUREMENT)}`,
    ]);
    await expect(verifyUnder({ allowedMeasurements: [OTHER, toHex(MEASUREMENT)] })).resolves.toBeDefined();
  });

  it("a manifest minimum TCB above the evidence's is refused, though the client policy's minimum is met", async () => {
    const snp = { ...(DEV_MANIFEST.tee.minimumTcb.snp as object), microcode: 255 };
    const error = await refusal({ minimumTcb: { snp } });
    expect([error.stage, error.code]).toEqual(["manifest", "MANIFEST_TCB_TOO_LOW"]);
    expect(error.message).toMatch(
      /^manifest tee\.minimumTcb\.snp: REPORTED_TCB\.microcode expected >= 255, found \d+$/,
    );
  });

  it("a policy flag the evidence breaks (SMT, which the client policy allows) is refused", async () => {
    // SNP only: a manifest listing a TDX platform cannot say smtAllowed false (manifests/schema.ts).
    const error = await refusal({
      platforms: ["sim-snp"],
      minimumTcb: { tdx: null },
      policyFlags: { smtAllowed: false },
    });
    expect([error.stage, error.code, error.message]).toEqual([
      "manifest",
      "MANIFEST_POLICY_FLAG",
      "manifest tee.policyFlags: POLICY.SMT expected clear (smtAllowed: false), found set; " +
        "manifest tee.policyFlags: PLATFORM_INFO.SMT_EN expected clear (smtAllowed: false), found set",
    ]);
  });
});
