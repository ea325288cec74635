/**
 * The already-verified document cache of attestation/document.ts and the TDX collateral: the
 * collateral is part of what a remembered verification was verified with, so the same document
 * with other collateral (another TCB status, none at all, or the same object changed in place) is
 * verified again, never given the earlier result.
 */
import nacl from "tweetnacl";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { type AttestationCollateral, tdxCollateralWire } from "../../attestation/collateral.ts";
import { clearVerifiedDocumentCache, createNonceAnswer, type EnclaveKeys } from "../../attestation/document.ts";
import {
  type InsecureSimulatedTdxCollateralOptions,
  insecureSimulatedIntelHierarchy,
  insecureSimulatedTdxCollateral,
} from "../../attestation/sim/index.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { type ClientPolicy, verifyWithClientPolicy } from "../../client/policy.ts";
import { devManifest } from "../../manifests/dev.ts";
import { generateManifestSigningKey, signManifest } from "../../manifests/sign.ts";
import { simulatedTdxDocument } from "../helpers/simulated-document.ts";

const NOW = new Date();
const MEASUREMENT = new Uint8Array(48).fill(0x5a);

let keys: EnclaveKeys;
let document: string;
let policy: ClientPolicy;

beforeAll(async () => {
  const operator = await generateManifestSigningKey("EdDSA");
  const manifest = devManifest();
  const manifestJws = await signManifest(manifest, operator.privateJwk);
  keys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
  document = await simulatedTdxDocument({ keys, manifestJws, mrtd: MEASUREMENT, now: NOW });
  policy = simulatorClientPolicy({
    tee: "sim-tdx",
    measurement: toHex(MEASUREMENT),
    operatorKey: operator.publicJwk,
    modelSha256: manifest.model.sha256,
    serviceName: manifest.service.name,
  });
}, 120_000);

beforeEach(() => clearVerifiedDocumentCache());

/** The collateral the simulated TD's enclave serves (issued an hour back), with `options`. */
function collateral(options: Partial<InsecureSimulatedTdxCollateralOptions> = {}) {
  const issueDate = new Date(NOW.getTime() - 3600_000);
  return {
    tdx: tdxCollateralWire(
      insecureSimulatedTdxCollateral(insecureSimulatedIntelHierarchy(), { issueDate, ...options }),
    ),
  };
}

async function verify(given: AttestationCollateral | null) {
  const nonce = nacl.randomBytes(32);
  const answer = await createNonceAnswer({ keys, document, nonce, now: NOW });
  return verifyWithClientPolicy(document, policy, { value: nonce, answer }, NOW, given);
}

describe("already verified TDX document and its collateral", () => {
  it("verifies the same document again with other collateral, or none, instead of reusing the result", async () => {
    expect((await verify(collateral())).details.tcbStatus).toBe("UpToDate");
    await expect(verify(collateral({ tcbStatus: "OutOfDate" }))).rejects.toMatchObject({
      code: "TDX_TCB_STATUS_NOT_ACCEPTED",
    });
    await expect(verify(null)).rejects.toMatchObject({ code: "TDX_TCB_STATUS_NOT_ACCEPTED" });
    // Still accepted with collateral of the same content (a fresh object, as each attest parses).
    expect((await verify(collateral())).details.tcbStatus).toBe("UpToDate");
  });

  it("verifies again when the same collateral object was changed in place", async () => {
    const served = collateral();
    expect((await verify(served)).details.tcbStatus).toBe("UpToDate");
    (served as { tdx: unknown }).tdx = collateral({ tcbStatus: "OutOfDate" }).tdx;
    await expect(verify(served)).rejects.toMatchObject({ code: "TDX_TCB_STATUS_NOT_ACCEPTED" });
  });
});
