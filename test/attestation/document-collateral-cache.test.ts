/**
 * The already-verified document cache of attestation/document.ts and the TDX collateral: the
 * collateral is part of what a remembered verification was verified with, so the same document
 * with other collateral (another TCB status, none at all, or the same object changed in place) is
 * verified again, never given the earlier result; the collateral is read once per call. And each
 * result's keys are its caller's own, the rest frozen.
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

async function verify(given: AttestationCollateral | null, at = NOW) {
  const nonce = nacl.randomBytes(32);
  const answer = await createNonceAnswer({ keys, document, nonce, now: at });
  return verifyWithClientPolicy(document, policy, { value: nonce, answer }, at, given);
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

  it("remembers the verification by the collateral it verified, read once, not read again after", async () => {
    // A collateral whose tdx reads as current first, then as out of date: a verification
    // remembered by a second read would be given to the out-of-date collateral below.
    const current = collateral().tdx;
    const outOfDate = collateral({ tcbStatus: "OutOfDate" }).tdx;
    let reads = 0;
    const changing = {
      get tdx() {
        reads++;
        return reads === 1 ? current : outOfDate;
      },
    };
    expect((await verify(changing)).details.tcbStatus).toBe("UpToDate");
    await expect(verify(collateral({ tcbStatus: "OutOfDate" }))).rejects.toMatchObject({
      code: "TDX_TCB_STATUS_NOT_ACCEPTED",
    });
  });

  it("verifies again when a CRL of the same collateral object was changed in place", async () => {
    const served = collateral();
    expect((await verify(served)).details.tcbStatus).toBe("UpToDate");
    const crls = served.tdx.crls as string[];
    const revoking = collateral({ revokePck: true }).tdx.crls;
    crls.splice(0, crls.length, ...revoking);
    await expect(verify(served)).rejects.toMatchObject({ code: expect.stringMatching(/REVOKED/) });
  });
});

describe("collateral that cannot be read", () => {
  it("refuses collateral a member of which throws when read, as COLLATERAL_MALFORMED, not a bare error", async () => {
    const thrown = new Error("thrown by the getter");
    /** `value` with its member `name` a getter that throws. */
    const throwingAt = <T extends object>(value: T, name: string): T =>
      Object.defineProperty(value, name, {
        get() {
          throw thrown;
        },
      });
    const cases: [string, AttestationCollateral][] = [
      ["tdx", throwingAt({}, "tdx")],
      ["tdx.qeIdentity", { tdx: throwingAt({ ...collateral().tdx }, "qeIdentity") }],
      ["tdx.crls", { tdx: throwingAt({ ...collateral().tdx }, "crls") }],
    ];
    for (const [name, given] of cases) {
      await expect(verify(given), name).rejects.toMatchObject({
        stage: "parse",
        code: "COLLATERAL_MALFORMED",
        message: "collateral: expected data, found a member that throws when read",
        cause: thrown,
      });
    }
  });
});

describe("already verified TDX document and time", () => {
  it("verifies again past a CRL's nextUpdate, even within the remembered window", async () => {
    // The CRLs end 10 s after NOW, the TCB info and QE identity 30 days after the hour back.
    const crlsEnd = new Date(Math.floor(NOW.getTime() / 1000) * 1000 + 10_000);
    const served = { tdx: { ...collateral().tdx, crls: collateral({ nextUpdate: crlsEnd }).tdx.crls } };
    expect((await verify(served)).details.tcbStatus).toBe("UpToDate");
    await expect(verify(served, new Date(crlsEnd.getTime() + 5_000))).rejects.toMatchObject({
      code: "CRL_EXPIRED",
    });
  });
});

describe("results of an already verified document", () => {
  it("give each caller its own keys, and the rest frozen", async () => {
    const first = await verify(collateral());
    const second = await verify(collateral());
    first.sealingPublicKey.fill(0);
    first.signingPublicKey.fill(0);
    const third = await verify(collateral());
    for (const enclave of [second, third]) {
      expect(enclave.sealingPublicKey).toEqual(keys.sealing.publicKey);
      expect(enclave.signingPublicKey).toEqual(keys.signing.publicKey);
    }
    for (const enclave of [first, third]) {
      expect(Object.isFrozen(enclave.details)).toBe(true);
      expect(Object.isFrozen(enclave.manifest.service)).toBe(true);
      expect(Object.isFrozen(enclave.manifest.manifest)).toBe(true);
    }
  });
});
