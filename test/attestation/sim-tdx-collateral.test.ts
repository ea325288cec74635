/**
 * Simulated Intel TDX collateral (TCB info, QE identity, CRLs) in the real PCS formats: with it the
 * PRODUCTION verifier fully checks a simulated quote (TCB level, QE identity, revocation), under the
 * simulator anchors only, and each single defect is refused with its own code.
 */
import { describe, expect, it } from "vitest";
import { appraise } from "../../attestation/appraise.ts";
import { fromHex, toHex } from "../../attestation/bytes.ts";
import type { AttestationError } from "../../attestation/errors.ts";
import { INTEL_ROOTS } from "../../attestation/roots/intel.ts";
import {
  type InsecureSimulatedTdxCollateral,
  insecureSimulatedIntelHierarchy,
  insecureSimulatedTdxCollateral,
  insecureSimulatorAnchors,
  issueInsecureSimulatedPckLeaf,
  SIMULATED_PCK_DEFAULT_TCB,
  SIMULATED_TEE_TCB_SVN,
  type SimulatedTdxQuoteOptions,
  simulateTdxQuote,
} from "../../attestation/sim/index.ts";
import {
  intelName,
  SIMULATED_INTEL_NOT_BEFORE,
  SIMULATED_INTEL_ROOT_NOT_AFTER,
  SIMULATED_PCK_NOT_AFTER,
} from "../../attestation/sim/intel.ts";
import { der, toPem, X509_OID } from "../../attestation/sim/x509-writer.ts";
import {
  parseIssuerChain,
  parseTdQeIdentity,
  parseTdxTcbInfo,
  verifyTdxCollateralSignature,
} from "../../attestation/tdx/collateral.ts";
import { parseTdxQuote } from "../../attestation/tdx/parse.ts";
import { convergeTcbStatus, evaluateQeIdentity, evaluateTdxTcb, type TdxTcbStatus } from "../../attestation/tdx/tcb.ts";
import { type TdxCollateral, verifyTdxQuote } from "../../attestation/tdx/verify.ts";
import { checkNotRevoked, parseCertificate, parseCrl } from "../../attestation/x509.ts";
import { codeOf, rejection } from "../helpers/attestation.ts";
import { AT, MRTD, policy, REPORT_DATA, RTMRS, reissueCertificate, tdxPolicyJson } from "./sim-helpers.ts";

const h = insecureSimulatedIntelHierarchy();
const anchors = insecureSimulatorAnchors().tdx;
const ISSUED = new Date("2025-12-20T08:30:00Z");
const baseOptions = (): SimulatedTdxQuoteOptions => ({ reportData: REPORT_DATA, mrtd: MRTD, rtmrs: RTMRS });
const quote = simulateTdxQuote(h, baseOptions());
const collateral = insecureSimulatedTdxCollateral(h, { issueDate: ISSUED });

function asCollateral(c: InsecureSimulatedTdxCollateral): TdxCollateral {
  return { tcbInfo: c.tcbInfo, qeIdentity: c.qeIdentity };
}

function verify(
  c: InsecureSimulatedTdxCollateral,
  options: { quote?: Uint8Array; at?: Date; crls?: boolean; acceptStaleCollateral?: boolean } = {},
) {
  return verifyTdxQuote({
    quote: options.quote ?? quote,
    anchors,
    at: options.at ?? AT,
    collateral: asCollateral(c),
    crls: options.crls === false ? undefined : c.crls,
    acceptStaleCollateral: options.acceptStaleCollateral,
  });
}

/** Changes one byte of `json` (the first occurrence of `from` becomes `to`, same length). */
function oneByte(json: string, from: string, to: string): string {
  expect(from.length).toBe(to.length);
  const at = json.indexOf(from);
  expect(at).toBeGreaterThan(0);
  const out = json.slice(0, at) + to + json.slice(at + from.length);
  let diff = 0;
  for (let i = 0; i < json.length; i++) if (json[i] !== out[i]) diff++;
  expect(diff).toBe(1);
  return out;
}

describe("simulated TDX collateral: shape", () => {
  it("writes TCB info v3 / TD_QE identity v2 bodies, a 2-certificate issuer chain and Intel-shaped CRLs", () => {
    const tcbInfo = parseTdxTcbInfo(collateral.tcbInfo.json);
    expect(tcbInfo.id).toBe("TDX");
    expect(tcbInfo.version).toBe(3);
    expect(toHex(tcbInfo.fmspc)).toBe(toHex(SIMULATED_PCK_DEFAULT_TCB.fmspc));
    expect(toHex(tcbInfo.pceId)).toBe("0000");
    expect(tcbInfo.issueDate.toISOString()).toBe(ISSUED.toISOString());
    expect(tcbInfo.nextUpdate.toISOString()).toBe("2026-01-19T08:30:00.000Z");
    expect(tcbInfo.tcbLevels.map((l) => l.tcbStatus)).toEqual(["UpToDate", "OutOfDate"]);
    expect(tcbInfo.tcbLevels[0]?.sgxTcbComponents).toEqual([...SIMULATED_PCK_DEFAULT_TCB.tcbComponents]);
    expect(tcbInfo.tcbLevels[0]?.tdxTcbComponents).toEqual([...SIMULATED_TEE_TCB_SVN]);
    // The raw body keeps Intel's layout: {"tcbInfo":{...},"signature":"<128 hex>"}.
    expect(collateral.tcbInfo.json).toMatch(
      /^\{"tcbInfo":\{"id":"TDX","version":3,.*\},"signature":"[0-9a-f]{128}"\}$/,
    );

    const qe = parseTdQeIdentity(collateral.qeIdentity.json);
    expect(qe.id).toBe("TD_QE");
    expect(qe.version).toBe(2);
    expect(qe.isvProdId).toBe(2);
    expect(qe.tcbLevels.map((l) => [l.isvSvn, l.tcbStatus])).toEqual([[4, "UpToDate"]]);

    const [signer, root] = parseIssuerChain(collateral.tcbInfo.issuerChain, "test");
    expect(signer.subject).toContain("CN=Intel SGX TCB Signing");
    expect(signer.subject).toContain("OU=SIMULATED - NOT SECURE");
    expect(signer.isCA).toBe(false);
    expect(toHex(root.der)).toBe(toHex(h.root));
    expect(toHex(signer.der)).toBe(toHex(collateral.tcbSigningCertificate));
    expect(collateral.qeIdentity.issuerChain).toBe(collateral.tcbInfo.issuerChain);

    const [pckCrl, rootCrl] = collateral.crls.map((c) => parseCrl(c));
    expect(collateral.crls).toHaveLength(2);
    expect(toHex(pckCrl?.issuerDer ?? new Uint8Array())).toBe(toHex(parseCertificate(h.pckCa).subjectDer));
    expect(toHex(rootCrl?.issuerDer ?? new Uint8Array())).toBe(toHex(parseCertificate(h.root).subjectDer));
    expect(pckCrl?.thisUpdate.toISOString()).toBe(ISSUED.toISOString());
    expect(pckCrl?.nextUpdate?.toISOString()).toBe("2026-01-19T08:30:00.000Z");
    expect(pckCrl?.revokedSerials.size).toBe(0);
    expect(rootCrl?.revokedSerials.size).toBe(0);
    // v2 CRL: version INTEGER 1 first in the TBSCertList, as Intel's.
    expect(toHex(pckCrl?.tbs.subarray(3, 6) ?? new Uint8Array())).toBe("020101"); // after 30 81 xx
  });

  it("is deterministic", () => {
    const again = insecureSimulatedTdxCollateral(h, { issueDate: ISSUED });
    expect(again.tcbInfo.json).toBe(collateral.tcbInfo.json);
    expect(again.qeIdentity.json).toBe(collateral.qeIdentity.json);
    expect(again.crls.map(toHex)).toEqual(collateral.crls.map(toHex));
  });

  it("refuses a nextUpdate before issueDate", () => {
    expect(() =>
      insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, nextUpdate: new Date(ISSUED.getTime() - 1000) }),
    ).toThrow(/nextUpdate/);
  });
});

describe("simulated quote + simulated collateral through the production verifier", () => {
  it("verifies fully: UpToDate, revocation checked, TCB info and QE identity evaluated", async () => {
    const v = await verify(collateral);
    expect(v.simulated).toBe(true);
    expect(v.tcbStatus).toBe("UpToDate");
    expect(v.revocationChecked).toBe(true);
    expect(v.tcbInfo).not.toBeNull();
    expect(v.tcbInfo?.signer).toContain("Intel SGX TCB Signing");
    expect(v.tcbInfo?.stale).toBe(false);
    expect(v.tcbInfo?.signerExpired).toBe(false);
    expect(v.qeIdentity).not.toBeNull();
    expect(v.qeIdentity?.status).toBe("UpToDate");
    expect(v.qeIdentity?.isvSvn).toBe(4);
    expect(v.tcb?.platform.status).toBe("UpToDate");
    expect(v.tcb?.platform.tcbDate).toBe("2024-11-13T00:00:00Z");
    expect(v.tcb?.tdxModule).toBeNull(); // TEE_TCB_SVN[1] = 0: judged by tdxModule, not identities
    expect(v.tcb?.fmspc).toBe(toHex(SIMULATED_PCK_DEFAULT_TCB.fmspc));
    expect(v.warnings).toEqual([]);
  });

  it("reports the requested status of the matching level", async () => {
    const outOfDate = insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, tcbStatus: "OutOfDate" });
    const v = await verify(outOfDate);
    expect(v.tcbStatus).toBe("OutOfDate");
    expect(v.tcb?.advisoryIds).toEqual(["SIMULATED-SA-00002"]);
    const sw = await verify(insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, tcbStatus: "SWHardeningNeeded" }));
    expect(sw.tcbStatus).toBe("SWHardeningNeeded");
  });

  it("an older TEE_TCB_SVN or PCK TCB falls to the older OutOfDate level, and below it to NotSupported", async () => {
    const olderTee = simulateTdxQuote(h, {
      ...baseOptions(),
      teeTcbSvn: Uint8Array.of(2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    });
    const v = await verify(collateral, { quote: olderTee });
    expect(v.tcbStatus).toBe("OutOfDate");
    expect(v.tcb?.platform.tcbDate).toBe("2024-03-13T00:00:00Z");
    expect(v.tcb?.advisoryIds).toEqual(["SIMULATED-SA-00001"]);

    const tooOld = simulateTdxQuote(h, {
      ...baseOptions(),
      teeTcbSvn: Uint8Array.of(1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    });
    expect((await verify(collateral, { quote: tooOld })).tcbStatus).toBe("NotSupported");

    const olderPck = issueInsecureSimulatedPckLeaf(h, {
      tcb: { tcbComponents: [4, 5, 13, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0] },
      keyLabel: "PCK-older",
    });
    const q = simulateTdxQuote(h, { ...baseOptions(), pck: olderPck });
    expect((await verify(collateral, { quote: q })).tcbStatus).toBe("OutOfDate");
  });

  it("judges a TDX module with major version > 0 by its TDX_nn identity", async () => {
    const teeTcbSvn = Uint8Array.of(6, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const q = simulateTdxQuote(h, { ...baseOptions(), teeTcbSvn });
    const c = insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, teeTcbSvn });
    const v = await verify(c, { quote: q });
    expect(v.tcbStatus).toBe("UpToDate");
    expect(v.tcb?.tdxModule?.id).toBe("TDX_01");
    expect(v.tcb?.tdxModule?.status).toBe("UpToDate");
    // A module SVN one below: its identity's older level is OutOfDate.
    const older = simulateTdxQuote(h, {
      ...baseOptions(),
      teeTcbSvn: Uint8Array.of(5, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    });
    const w = await verify(c, { quote: older });
    expect(w.tcb?.tdxModule?.status).toBe("OutOfDate");
    expect(w.tcbStatus).toBe("OutOfDate");
  });

  it("refuses a revoked PCK leaf with CERT_REVOKED", async () => {
    const revoked = insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, revokePck: true });
    const pckCrl = parseCrl(revoked.crls[0] as Uint8Array);
    expect([...pckCrl.revokedSerials]).toEqual([toHex(parseCertificate(h.pck.certificate).serialNumber)]);
    expect(await codeOf(verify(revoked))).toBe("CERT_REVOKED");
    // The same revoked CRL does not affect another PCK leaf of the platform.
    const other = issueInsecureSimulatedPckLeaf(h, { keyLabel: "PCK-other" });
    const q = simulateTdxQuote(h, { ...baseOptions(), pck: other });
    expect((await verify(revoked, { quote: q })).tcbStatus).toBe("UpToDate");
  });

  it("with several CRLs of one issuer, refuses a serial any of them lists, in either order", async () => {
    const revoked = insecureSimulatedTdxCollateral(h, { issueDate: new Date("2025-12-25T08:30:00Z"), revokePck: true });
    const [clean, rootCrl] = collateral.crls as [Uint8Array, Uint8Array];
    const listing = revoked.crls[0] as Uint8Array;
    // The newer one lists it, or (a host serving a newer CRL from which the entry was dropped) only the older one.
    const newerClean = insecureSimulatedTdxCollateral(h, { issueDate: new Date("2025-12-28T08:30:00Z") })
      .crls[0] as Uint8Array;
    for (const crls of [
      [clean, listing, rootCrl],
      [listing, clean, rootCrl],
      [listing, newerClean, rootCrl],
      [newerClean, listing, rootCrl],
    ]) {
      expect(await codeOf(verifyTdxQuote({ quote, anchors, at: AT, collateral: asCollateral(collateral), crls }))).toBe(
        "CERT_REVOKED",
      );
    }
  });

  it("with several CRLs of one issuer, takes the newest issued by the verification time as current", async () => {
    const expired = insecureSimulatedTdxCollateral(h, { issueDate: new Date("2025-11-01T00:00:00Z") });
    const future = insecureSimulatedTdxCollateral(h, { issueDate: new Date("2026-02-01T00:00:00Z") });
    const [oldPck, oldRoot] = expired.crls as [Uint8Array, Uint8Array];
    const [futurePck] = future.crls as [Uint8Array];
    const crls = [oldPck, futurePck, ...collateral.crls, oldRoot];
    const v = await verifyTdxQuote({ quote, anchors, at: AT, collateral: asCollateral(collateral), crls });
    expect(v.revocationChecked).toBe(true);
    expect(v.warnings).toEqual([]);
    expect(await codeOf(verifyTdxQuote({ quote, anchors, at: AT, crls: [oldPck, oldRoot] }))).toBe("CRL_EXPIRED");
  });

  it("passes over a CRL of the issuer that may not be used (here: its signature), and refuses when none may", async () => {
    const [clean, rootCrl] = collateral.crls as [Uint8Array, Uint8Array];
    const forged = Uint8Array.from(clean);
    forged.set([(forged.at(-1) as number) ^ 1], forged.length - 1); // the signature's last byte
    for (const crls of [
      [forged, clean, rootCrl],
      [clean, forged, rootCrl],
    ]) {
      const v = await verifyTdxQuote({ quote, anchors, at: AT, collateral: asCollateral(collateral), crls });
      expect(v.revocationChecked).toBe(true);
    }
    expect(await codeOf(verifyTdxQuote({ quote, anchors, at: AT, crls: [forged, rootCrl] }))).toBe(
      "CRL_SIGNATURE_INVALID",
    );
  });

  it("reads a parsed CRL from its DER: emptying its revokedSerials does not unrevoke", async () => {
    const revoked = insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, revokePck: true });
    const parsed = parseCrl(revoked.crls[0] as Uint8Array);
    expect(parsed.revokedSerials.size).toBe(1);
    const emptied = { ...parsed, revokedSerials: new Set<string>(), entries: [] };
    const crls = [emptied, revoked.crls[1] as Uint8Array];
    expect(await codeOf(verifyTdxQuote({ quote, anchors, at: AT, crls }))).toBe("CERT_REVOKED");
    const issuer = parseCertificate(h.pckCa);
    expect(await codeOf(checkNotRevoked(parseCertificate(h.pck.certificate), emptied, issuer, AT, "PCK leaf"))).toBe(
      "CERT_REVOKED",
    );
  });

  it("refuses collateral whose TCB signing certificate the root CA CRL revokes", async () => {
    const revoked = insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, revokeTcbSigner: true });
    const rootCrl = parseCrl(revoked.crls[1] as Uint8Array);
    expect([...rootCrl.revokedSerials]).toEqual([toHex(parseCertificate(revoked.tcbSigningCertificate).serialNumber)]);
    const failed = await verify(revoked).then(
      () => null,
      (error: unknown) => error as AttestationError,
    );
    expect(failed?.code).toBe("CERT_REVOKED");
    expect(failed?.message).toContain("TCB info signer certificate");
    // QE identity alone (no TCB info) is signed by the same certificate: refused too.
    const qeOnly = await verifyTdxQuote({
      quote,
      anchors,
      at: AT,
      collateral: { qeIdentity: revoked.qeIdentity },
      crls: revoked.crls,
    }).then(
      () => null,
      (error: unknown) => error as AttestationError,
    );
    expect(qeOnly?.message).toMatch(/QE identity signer certificate .* is revoked/);
    // Without CRLs, the revocation cannot be seen: the same collateral verifies (not revocation-checked).
    const unchecked = await verify(revoked, { crls: false });
    expect(unchecked.revocationChecked).toBe(false);
  });

  it("refuses missing CRLs for a chain certificate", async () => {
    const onlyPck = { ...collateral, crls: [collateral.crls[0] as Uint8Array] };
    expect(await codeOf(verify(onlyPck))).toBe("TDX_CRL_MISSING");
  });

  it("names the Intel PCS CRL to fetch when the PCK CA's CRL is missing", async () => {
    const onlyRoot = { ...collateral, crls: [collateral.crls[1] as Uint8Array] };
    const error = await rejection(verify(onlyRoot));
    expect(error.code).toBe("TDX_CRL_MISSING");
    expect(error.message).toContain('none is issued by "CN=Intel SGX PCK Platform CA');
    expect(error.message).toMatch(/fetch pckcrl\?ca=platform from Intel PCS$/);
    // The root CRL is not a PCK CA's: no pckcrl hint.
    const onlyPck = { ...collateral, crls: [collateral.crls[0] as Uint8Array] };
    expect((await rejection(verify(onlyPck))).message).not.toContain("pckcrl");
  });

  it("refuses collateral past nextUpdate, and accepts it as stale only with acceptStaleCollateral", async () => {
    const late = new Date("2026-02-01T00:00:00Z"); // after 2026-01-19T08:30:00Z
    expect(await codeOf(verify(collateral, { at: late, crls: false }))).toBe("COLLATERAL_EXPIRED");
    expect(await codeOf(verify(collateral, { at: late }))).toBe("CRL_EXPIRED");
    const stale = await verify(collateral, { at: late, acceptStaleCollateral: true });
    expect(stale.tcbStatus).toBe("UpToDate");
    expect(stale.tcbInfo?.stale).toBe(true);
    expect(stale.qeIdentity?.stale).toBe(true);
    // Once each: the two CRLs (the root's serves the PCK CA and both collateral signers), TCB info, QE identity.
    expect(stale.warnings).toHaveLength(4);
    expect(new Set(stale.warnings).size).toBe(4);
    expect(stale.warnings.filter((w) => w.startsWith("CRL from")).length).toBe(2);
    // An explicit short nextUpdate is honoured.
    const short = insecureSimulatedTdxCollateral(h, {
      issueDate: ISSUED,
      nextUpdate: new Date("2025-12-21T00:00:00Z"),
    });
    expect(await codeOf(verify(short, { crls: false }))).toBe("COLLATERAL_EXPIRED");
    // Collateral issued after the verification time is never accepted.
    const future = insecureSimulatedTdxCollateral(h, { issueDate: new Date("2026-01-02T00:00:00Z") });
    expect(await codeOf(verify(future, { crls: false, acceptStaleCollateral: true }))).toBe("COLLATERAL_NOT_YET_VALID");
  });

  it("does not verify against the real Intel root", async () => {
    expect(
      await codeOf(
        verifyTdxQuote({
          quote,
          anchors: INTEL_ROOTS,
          at: AT,
          collateral: asCollateral(collateral),
          crls: collateral.crls,
        }),
      ),
    ).toBe("ROOT_NOT_TRUSTED");
    // The collateral signature itself, checked against Intel's pinned root.
    const doc = parseTdxTcbInfo(collateral.tcbInfo.json);
    const chain = parseIssuerChain(collateral.tcbInfo.issuerChain, "TDX TCB info");
    const root = INTEL_ROOTS[0]?.root;
    if (root === undefined) throw new Error("no Intel root");
    const options = { at: AT, root, signerValidity: "strict" as const, acceptStaleCollateral: false };
    expect(await codeOf(verifyTdxCollateralSignature(doc, chain, options))).toBe("ROOT_NOT_TRUSTED");
    // ...while under the simulated root it does.
    const simRoot = anchors[0]?.root;
    if (simRoot === undefined) throw new Error("no simulator root");
    expect(await codeOf(verifyTdxCollateralSignature(doc, chain, { ...options, root: simRoot }))).toBe("ACCEPTED");
  });

  it("refuses a collateral signer the root issued that is not its TCB signing certificate: another CN, or a CA", async () => {
    // The same key, re-certified by the simulated root under another subject or as a CA: the chain and
    // the collateral signatures verify, only the signer's identity is wrong.
    const signer = parseCertificate(collateral.tcbSigningCertificate);
    const reissue = (subject: Uint8Array, extensions: (oid: string, value: Uint8Array) => Uint8Array | undefined) =>
      toPem([reissueCertificate(collateral.tcbSigningCertificate, h.rootKey, { subject, extensions }), h.root]);
    const same = (_oid: string, value: Uint8Array) => value;
    const renamed = reissue(intelName("Intel SGX PCK Certificate"), same);
    const asCa = reissue(signer.subjectDer, (oid, value) =>
      oid === X509_OID.basicConstraints
        ? der.seq(der.boolean(true))
        : oid === X509_OID.keyUsage
          ? der.bits(Uint8Array.of(0xc4)) // digitalSignature, nonRepudiation, keyCertSign
          : value,
    );
    // The unchanged re-issue verifies: what the cases below change is all that is refused.
    const withChain = (issuerChain: string) => ({
      ...collateral,
      tcbInfo: { ...collateral.tcbInfo, issuerChain },
      qeIdentity: { ...collateral.qeIdentity, issuerChain },
    });
    expect((await verify(withChain(reissue(signer.subjectDer, same)))).tcbStatus).toBe("UpToDate");

    const other = await rejection(verify(withChain(renamed)));
    expect(other.code).toBe("COLLATERAL_SIGNER_NOT_TCB_SIGNING");
    expect(other.message).toMatch(
      /^TDX TCB info signer certificate "CN=Intel SGX PCK Certificate,OU=SIMULATED - NOT SECURE,.*": subject CN expected "Intel SGX TCB Signing", found "Intel SGX PCK Certificate"$/,
    );
    const ca = await rejection(verify(withChain(asCa)));
    expect(ca.code).toBe("COLLATERAL_SIGNER_NOT_TCB_SIGNING");
    expect(ca.message).toMatch(
      /^TDX TCB info signer certificate ".*": basicConstraints expected cA false, found cA true$/,
    );
    const unconstrained = reissue(signer.subjectDer, (oid, value) =>
      oid === X509_OID.basicConstraints ? undefined : value,
    );
    expect((await rejection(verify(withChain(unconstrained)))).message).toMatch(
      /: basicConstraints expected cA false, found no basicConstraints$/,
    );
    // The QE identity's chain is checked the same way.
    const qeOnly = { quote, anchors, at: AT, crls: collateral.crls };
    const qe = await rejection(
      verifyTdxQuote({ ...qeOnly, collateral: { qeIdentity: { ...collateral.qeIdentity, issuerChain: renamed } } }),
    );
    expect(qe.code).toBe("COLLATERAL_SIGNER_NOT_TCB_SIGNING");
    expect(qe.message).toMatch(/^TD QE identity signer certificate /);
  });

  it("refuses an issuer chain of other than two certificates, and options it cannot honour", async () => {
    const signerOnly = toPem([collateral.tcbSigningCertificate]);
    expect(() => parseIssuerChain(signerOnly, "TDX TCB info")).toThrow(
      expect.objectContaining({
        code: "TDX_COLLATERAL_CHAIN_LENGTH",
        message: "TDX TCB info issuer chain: expected 2 certificates (signer, root), found 1",
      }),
    );
    expect(await codeOf(verify({ ...collateral, tcbInfo: { ...collateral.tcbInfo, issuerChain: signerOnly } }))).toBe(
      "TDX_COLLATERAL_CHAIN_LENGTH",
    );
    const bad = (options: Partial<Parameters<typeof verifyTdxQuote>[0]>) =>
      codeOf(verifyTdxQuote({ quote, anchors, at: AT, collateral: asCollateral(collateral), ...options }));
    expect(await bad({ at: new Date(Number.NaN) })).toBe("TDX_BAD_OPTION");
    expect(await bad({ collateralSignerValidity: "lenient" as "strict" })).toBe("TDX_BAD_OPTION");
  });

  it("refuses collateral and CRLs of another simulator seed (not the quote's anchor)", async () => {
    const other = insecureSimulatedTdxCollateral(insecureSimulatedIntelHierarchy("another seed"), {
      issueDate: ISSUED,
    });
    expect(await codeOf(verify({ ...other, crls: collateral.crls }))).toBe("ROOT_NOT_TRUSTED");
    // Same names, other keys: the CRL is found by issuer name but its signature fails.
    expect(await codeOf(verify({ ...collateral, crls: other.crls }))).toBe("CRL_SIGNATURE_INVALID");
  });

  it("refuses a TCB info or QE identity body with one byte changed", async () => {
    const tcbChanged = {
      ...collateral,
      tcbInfo: {
        ...collateral.tcbInfo,
        json: oneByte(collateral.tcbInfo.json, '"tcbEvaluationDataNumber":17', '"tcbEvaluationDataNumber":18'),
      },
    };
    expect(await codeOf(verify(tcbChanged))).toBe("TDX_COLLATERAL_SIGNATURE_INVALID");
    const statusChanged = {
      ...collateral,
      tcbInfo: { ...collateral.tcbInfo, json: oneByte(collateral.tcbInfo.json, '"pcesvn":11', '"pcesvn":10') },
    };
    expect(await codeOf(verify(statusChanged))).toBe("TDX_COLLATERAL_SIGNATURE_INVALID");
    const qeChanged = {
      ...collateral,
      qeIdentity: { ...collateral.qeIdentity, json: oneByte(collateral.qeIdentity.json, '"isvsvn":4', '"isvsvn":3') },
    };
    expect(await codeOf(verify(qeChanged))).toBe("TDX_COLLATERAL_SIGNATURE_INVALID");
    // A changed CRL byte (the nextUpdate seconds) breaks the CRL signature.
    const crl = new Uint8Array(collateral.crls[1] as Uint8Array);
    const parsed = parseCrl(crl);
    const tbsText = new TextDecoder("latin1").decode(crl);
    const nextIdx = tbsText.indexOf("260119083000Z");
    expect(nextIdx).toBeGreaterThan(0);
    crl[nextIdx + 11] = 0x31; // ...083001Z
    expect(parseCrl(crl).nextUpdate?.getTime()).toBe((parsed.nextUpdate?.getTime() ?? 0) + 1000);
    expect(await codeOf(verify({ ...collateral, crls: [collateral.crls[0] as Uint8Array, crl] }))).toBe(
      "CRL_SIGNATURE_INVALID",
    );
  });

  it("refuses collateral for another FMSPC or another PCE", async () => {
    const c = insecureSimulatedTdxCollateral(h, {
      issueDate: ISSUED,
      pckTcb: { ...SIMULATED_PCK_DEFAULT_TCB, fmspc: Uint8Array.of(0, 0, 0x51, 0x4d, 0, 1) },
    });
    expect(await codeOf(verify(c))).toBe("TDX_FMSPC_MISMATCH");
    const otherPce = insecureSimulatedTdxCollateral(h, {
      issueDate: ISSUED,
      pckTcb: { ...SIMULATED_PCK_DEFAULT_TCB, pceId: Uint8Array.of(1, 0) },
    });
    const error = await rejection(verify(otherPce));
    expect([error.code, error.message]).toEqual([
      "TDX_PCEID_MISMATCH",
      "TDX TCB info: pceId expected 0000 (from the PCK certificate), found 0100",
    ]);
  });

  it("refuses a TDX module that is not the TCB info's (MRSIGNERSEAM, SEAMATTRIBUTES), by tdxModule or by its TDX_nn identity", async () => {
    const otherSigner = { insecureMrSignerSeam: new Uint8Array(48).fill(6) };
    const debugModule = { insecureSeamAttributes: fromHex("0000000000000080") };
    // TEE_TCB_SVN[1] = 0: judged by tdxModule.
    for (const module of [otherSigner, debugModule]) {
      const error = await rejection(
        verify(collateral, { quote: simulateTdxQuote(h, { ...baseOptions(), ...module }) }),
      );
      expect(error.code).toBe("TDX_MODULE_IDENTITY_MISMATCH");
      expect(error.message).toMatch(/^TDX TCB info tdxModule: MRSIGNERSEAM\/SEAMATTRIBUTES expected 0{96}\/0{16}/);
    }
    // TEE_TCB_SVN[1] = 1: judged by the TDX_01 entry of tdxModuleIdentities.
    const teeTcbSvn = Uint8Array.of(6, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const major1 = insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, teeTcbSvn });
    expect((await verify(major1, { quote: simulateTdxQuote(h, { ...baseOptions(), teeTcbSvn }) })).tcbStatus).toBe(
      "UpToDate",
    );
    for (const module of [otherSigner, debugModule]) {
      const q = simulateTdxQuote(h, { ...baseOptions(), teeTcbSvn, ...module });
      const error = await rejection(verify(major1, { quote: q }));
      expect(error.code).toBe("TDX_MODULE_IDENTITY_MISMATCH");
      expect(error.message).toMatch(/^TDX TCB info TDX_01: MRSIGNERSEAM\/SEAMATTRIBUTES expected/);
    }
    // A module major version the TCB info lists no identity for.
    const major2 = simulateTdxQuote(h, {
      ...baseOptions(),
      teeTcbSvn: Uint8Array.of(6, 2, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    });
    const missing = await rejection(verify(major1, { quote: major2 }));
    expect([missing.code, missing.message]).toEqual([
      "TDX_MODULE_IDENTITY_MISMATCH",
      "TDX TCB info tdxModuleIdentities: expected an entry TDX_02 (TEE_TCB_SVN[1] = 2), found TDX_01",
    ]);
  });

  it("names a TDX module major version in hex as Intel's QVL and go-tdx-guest do: 10 is TDX_0A (any case), not TDX_10", () => {
    const teeTcbSvn = Uint8Array.of(6, 10, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const major10 = parseTdxQuote(simulateTdxQuote(h, { ...baseOptions(), teeTcbSvn }));
    const json = insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, teeTcbSvn }).tcbInfo.json;
    expect(json).toContain('"id":"TDX_0A"');
    const withId = (id: string) => parseTdxTcbInfo(json.replace('"id":"TDX_0A"', `"id":"${id}"`));
    expect(evaluateTdxTcb(major10, withId("TDX_0A"))).toMatchObject({
      status: "UpToDate",
      tdxModule: { id: "TDX_0A", status: "UpToDate" },
    });
    expect(evaluateTdxTcb(major10, withId("tdx_0a")).tdxModule).toMatchObject({ id: "TDX_0A", status: "UpToDate" });
    expect(() => evaluateTdxTcb(major10, withId("TDX_10"))).toThrow(
      "TDX TCB info tdxModuleIdentities: expected an entry TDX_0A (TEE_TCB_SVN[1] = 10), found TDX_10",
    );
  });

  it("refuses a debug-mode quoting enclave with or without collateral, and another MISCSELECT or ATTRIBUTES bit against the QE identity", async () => {
    const qe = (o: Partial<SimulatedTdxQuoteOptions>) => simulateTdxQuote(h, { ...baseOptions(), ...o });
    // ATTRIBUTES 17..: the simulated QE's 15.. (INIT, MODE64BIT, PROVISIONKEY) with DEBUG (bit 1).
    const debugQe = qe({ insecureQeAttributes: fromHex("1700000000000000e700000000000000") });
    expect(toHex(parseTdxQuote(debugQe).qeReport.attributes)).toBe("1700000000000000e700000000000000");
    expect(await codeOf(verify(collateral, { quote: debugQe }))).toBe("TDX_QE_DEBUG");
    expect(await codeOf(verifyTdxQuote({ quote: debugQe, anchors, at: AT }))).toBe("TDX_QE_DEBUG");
    // The QE identity's mask alone refuses it as well (what protected only quotes checked with collateral).
    expect(() =>
      evaluateQeIdentity(parseTdxQuote(debugQe).qeReport, parseTdQeIdentity(collateral.qeIdentity.json)),
    ).toThrow(/ATTRIBUTES expected 11000000000000000000000000000000 under mask fbffffffffffffff0000000000000000/);

    // MISCSELECT and other ATTRIBUTES bits are Intel's QE identity's to judge: refused with collateral only.
    for (const o of [
      { insecureQeMiscSelect: 1 },
      { insecureQeAttributes: fromHex("3500000000000000e700000000000000") },
    ]) {
      const q = qe(o);
      expect(await codeOf(verify(collateral, { quote: q }))).toBe("TDX_QE_IDENTITY_MISMATCH");
      expect(await codeOf(verifyTdxQuote({ quote: q, anchors, at: AT }))).toBe("ACCEPTED");
    }
    const misc = await rejection(verify(collateral, { quote: qe({ insecureQeMiscSelect: 1 }) }));
    expect(misc.message).toContain("MISCSELECT expected 0x00000000 under mask 0xffffffff, found 0x00000001");
  });

  it("reads the QE identity's miscselect and miscselectMask little-endian and compares report & mask with miscselect, as Intel's QVL does", () => {
    const report = parseTdxQuote(simulateTdxQuote(h, { ...baseOptions(), insecureQeMiscSelect: 1 })).qeReport;
    expect(report.miscSelect).toBe(1);
    const json = collateral.qeIdentity.json;
    expect(json).toContain('"miscselect":"00000000","miscselectMask":"FFFFFFFF"');
    const identity = (miscselect: string, mask: string) =>
      parseTdQeIdentity(
        json.replace(
          '"miscselect":"00000000","miscselectMask":"FFFFFFFF"',
          `"miscselect":"${miscselect}","miscselectMask":"${mask}"`,
        ),
      );
    expect(identity("01000000", "FFFFFFFF")).toMatchObject({ miscSelect: 1, miscSelectMask: 0xffffffff });
    expect(evaluateQeIdentity(report, identity("01000000", "FFFFFFFF"))).toMatchObject({ status: "UpToDate" });
    expect(evaluateQeIdentity(report, identity("01000000", "01000000"))).toMatchObject({ status: "UpToDate" });
    expect(() => evaluateQeIdentity(report, identity("00000001", "FFFFFFFF"))).toThrow(
      "MISCSELECT expected 0x01000000 under mask 0xffffffff, found 0x00000001",
    );
    // A miscselect bit outside the mask matches no report (Intel does not mask the expected value).
    expect(() => evaluateQeIdentity(report, identity("01000000", "00000000"))).toThrow(
      "MISCSELECT expected 0x00000001 under mask 0x00000000, found 0x00000001",
    );
  });

  it("matches the QE identity to the simulated QE report (a foreign QE is refused before collateral)", async () => {
    const parsed = parseTdxQuote(quote);
    const qe = parseTdQeIdentity(collateral.qeIdentity.json);
    expect(toHex(parsed.qeReport.mrSigner)).toBe(toHex(qe.mrSigner));
    expect(parsed.qeReport.isvProdId).toBe(qe.isvProdId);
    expect(parsed.qeReport.isvSvn).toBe(4);
    // SIMULATED_TEE_TCB_SVN restates simulateTdxQuote's default: they must not drift apart.
    expect(toHex(parsed.body.teeTcbSvn)).toBe(toHex(SIMULATED_TEE_TCB_SVN));
  });
});

describe("the QE identity's and the TDX module's status converge into tcbStatus (Intel QVL TcbLevelCheck)", () => {
  /** The TCB statuses only a platform level may have (not a TDX module's or the QE identity's). */
  const PLATFORM_ONLY_STATUSES = [
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDateConfigurationNeeded",
  ] as const;
  const MRSEAM = toHex(parseTdxQuote(quote).body.mrSeam);
  const upToDateOnly = policy({ tdx: tdxPolicyJson(MRSEAM, { acceptedTcbStatuses: ["UpToDate"] }) });
  const appraised = (v: Awaited<ReturnType<typeof verify>>, p = upToDateOnly) => {
    const result = appraise(v, p, { now: AT, expectedReportData: REPORT_DATA });
    return result.ok ? [] : result.violations.map((x) => [x.code, x.found]);
  };

  it("a QE whose ISVSVN falls on an OutOfDate or Revoked level of the QE identity lowers an UpToDate platform", async () => {
    expect(appraised(await verify(collateral))).toEqual([]);
    // The simulated QE has ISVSVN 4; Intel has since published ISVSVN 5.
    for (const qeStatus of ["OutOfDate", "Revoked"] as const) {
      const c = insecureSimulatedTdxCollateral(h, {
        issueDate: ISSUED,
        qeTcbLevels: [
          { isvSvn: 5, tcbStatus: "UpToDate" },
          { isvSvn: 4, tcbStatus: qeStatus },
        ],
      });
      const v = await verify(c);
      expect(v.tcb?.status).toBe("UpToDate");
      expect(v.qeIdentity?.status).toBe(qeStatus);
      expect(v.tcbStatus).toBe(qeStatus);
      expect(appraised(v)).toEqual([["TDX_TCB_STATUS_NOT_ACCEPTED", qeStatus]]);
    }
  });

  it("an UpToDate TCB info is not accepted without the QE identity, nor without the CRLs (each alone)", async () => {
    const tcbInfoOnly = { tcbInfo: collateral.tcbInfo };
    const noQe = await verifyTdxQuote({ quote, anchors, at: AT, collateral: tcbInfoOnly, crls: collateral.crls });
    expect([noQe.tcbStatus, noQe.revocationChecked]).toEqual(["UpToDate", true]);
    expect(appraised(noQe)).toEqual([["TDX_TCB_STATUS_NOT_ACCEPTED", "UpToDate (QE identity not checked)"]]);
    const noCrls = await verify(collateral, { crls: false });
    expect([noCrls.tcbStatus, noCrls.qeIdentity?.status]).toEqual(["UpToDate", "UpToDate"]);
    expect(appraised(noCrls)).toEqual([["TDX_TCB_STATUS_NOT_ACCEPTED", "UpToDate (revocation not checked)"]]);
  });

  it("an OutOfDate QE turns a ConfigurationNeeded platform into OutOfDateConfigurationNeeded", async () => {
    const c = insecureSimulatedTdxCollateral(h, {
      issueDate: ISSUED,
      tcbStatus: "ConfigurationNeeded",
      qeTcbLevels: [
        { isvSvn: 5, tcbStatus: "UpToDate" },
        { isvSvn: 4, tcbStatus: "OutOfDate" },
      ],
    });
    expect((await verify(c)).tcbStatus).toBe("OutOfDateConfigurationNeeded");
  });

  it("a Revoked TDX module level (TEE_TCB_SVN[1] > 0) makes an UpToDate platform Revoked", async () => {
    const teeTcbSvn = Uint8Array.of(6, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const q = simulateTdxQuote(h, { ...baseOptions(), teeTcbSvn });
    const c = insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, teeTcbSvn, tdxModuleTcbStatus: "Revoked" });
    const v = await verify(c, { quote: q });
    expect(v.tcb?.platform.status).toBe("UpToDate");
    expect(v.tcb?.tdxModule).toMatchObject({ id: "TDX_01", status: "Revoked" });
    expect(v.tcb?.status).toBe("Revoked");
    expect(v.tcbStatus).toBe("Revoked");
    expect(appraised(v)).toEqual([["TDX_TCB_STATUS_NOT_ACCEPTED", "Revoked"]]);
  });

  it("refuses a TDX module level of a status other than UpToDate, OutOfDate or Revoked as malformed (Intel's QVL accepts only those)", async () => {
    const teeTcbSvn = Uint8Array.of(6, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const q = simulateTdxQuote(h, { ...baseOptions(), teeTcbSvn });
    for (const status of PLATFORM_ONLY_STATUSES) {
      const c = insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, teeTcbSvn, tdxModuleTcbStatus: status });
      const error = await rejection(verify(c, { quote: q }));
      expect(error.code).toBe("TDX_COLLATERAL_MALFORMED");
      expect(error.message).toBe(
        `TDX TCB info: tdxModuleIdentities[0].tcbLevels[0].tcbStatus: expected one of UpToDate, OutOfDate, Revoked, found "${status}"`,
      );
    }
    // A platform level's status is the platform's own: by default the simulator gives the module the
    // nearest module status (ConfigurationNeeded → UpToDate), and the platform status stands.
    const c = insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, teeTcbSvn, tcbStatus: "ConfigurationNeeded" });
    const v = await verify(c, { quote: q });
    expect([v.tcb?.platform.status, v.tcb?.tdxModule?.status, v.tcbStatus]).toEqual([
      "ConfigurationNeeded",
      "UpToDate",
      "ConfigurationNeeded",
    ]);
  });

  it("refuses a QE identity level of a status other than UpToDate, OutOfDate or Revoked as malformed (Intel's PCS schema allows only those)", async () => {
    // Before, such a level was read and matched the QE; the convergence then ignored it (all but
    // OutOfDateConfigurationNeeded) and the platform status stood, where Intel's QVL says OutOfDate.
    for (const status of PLATFORM_ONLY_STATUSES) {
      const c = insecureSimulatedTdxCollateral(h, {
        issueDate: ISSUED,
        qeTcbLevels: [{ isvSvn: 4, tcbStatus: status }],
      });
      const error = await rejection(verify(c));
      expect(error.code).toBe("TDX_COLLATERAL_MALFORMED");
      expect(error.message).toBe(
        `TD QE identity: tcbLevels[0].tcbStatus: expected one of UpToDate, OutOfDate, Revoked, found "${status}"`,
      );
    }
  });

  it("Revoked outranks NotSupported, so a policy that accepts NotSupported does not accept a revoked TCB", async () => {
    const lenient = policy({ tdx: tdxPolicyJson(MRSEAM, { acceptedTcbStatuses: ["UpToDate", "NotSupported"] }) });
    // Revoked platform, a QE below every QE identity level (NotSupported).
    const c = insecureSimulatedTdxCollateral(h, {
      issueDate: ISSUED,
      tcbStatus: "Revoked",
      qeTcbLevels: [{ isvSvn: 5, tcbStatus: "UpToDate" }],
    });
    const v = await verify(c);
    expect([v.tcb?.status, v.qeIdentity?.status]).toEqual(["Revoked", "NotSupported"]);
    expect(v.tcbStatus).toBe("Revoked");
    expect(appraised(v, lenient)).toEqual([["TDX_TCB_STATUS_NOT_ACCEPTED", "Revoked"]]);
    // The other way round: a revoked QE on a platform no TCB level matches.
    const older = issueInsecureSimulatedPckLeaf(h, { tcb: { pceSvn: 1 }, keyLabel: "PCK-pcesvn-1" });
    const revokedQe = insecureSimulatedTdxCollateral(h, {
      issueDate: ISSUED,
      qeTcbLevels: [{ isvSvn: 4, tcbStatus: "Revoked" }],
    });
    const w = await verify(revokedQe, { quote: simulateTdxQuote(h, { ...baseOptions(), pck: older }) });
    expect([w.tcb?.status, w.qeIdentity?.status, w.tcbStatus]).toEqual(["NotSupported", "Revoked", "Revoked"]);
  });
});

describe("rejectedAdvisoryIds: advisories of the matched platform, TDX module and QE levels (Intel's rejected_advisory_ids)", () => {
  const MRSEAM = toHex(parseTdxQuote(quote).body.mrSeam);
  const rejecting = (rejectedAdvisoryIds: readonly string[]) =>
    policy({
      tdx: tdxPolicyJson(MRSEAM, { acceptedTcbStatuses: ["UpToDate", "OutOfDate"], rejectedAdvisoryIds }),
    });
  const violations = (v: Awaited<ReturnType<typeof verify>>, ids: readonly string[]) =>
    appraise(v, rejecting(ids), { now: AT, expectedReportData: REPORT_DATA }).violations;
  const expected = "none of [INTEL-SA-00999, SIMULATED-SA-00002] (rejectedAdvisoryIds)";

  it("refuses an accepted status whose platform level lists a rejected advisory (any case), and only then", async () => {
    const v = await verify(insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, tcbStatus: "OutOfDate" }));
    expect(v.tcb?.advisoryIds).toEqual(["SIMULATED-SA-00002"]);
    expect(violations(v, ["INTEL-SA-00999"])).toEqual([]);
    expect(violations(v, ["simulated-sa-00002", "INTEL-SA-00999"])).toEqual([
      { field: "advisoryIDs", code: "TDX_ADVISORY_REJECTED", expected, found: "SIMULATED-SA-00002" },
    ]);
  });

  it("a skip is not checked: a rejected advisory the platform lists, or advisories unknown, pass it", async () => {
    const v = await verify(insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, tcbStatus: "OutOfDate" }));
    const bare = await verifyTdxQuote({ quote, anchors, at: AT });
    const skipped = policy({
      tdx: tdxPolicyJson(MRSEAM, {
        acceptedTcbStatuses: ["UpToDate", "OutOfDate"],
        rejectedAdvisoryIds: { skip: { reason: "acceptedTcbStatuses judges the platform" } },
      }),
    });
    const codes = (w: typeof v) =>
      appraise(w, skipped, { now: AT, expectedReportData: REPORT_DATA }).violations.map((x) => x.code);
    expect(violations(v, ["SIMULATED-SA-00002"]).map((x) => x.code)).toEqual(["TDX_ADVISORY_REJECTED"]);
    expect(codes(v)).toEqual([]);
    expect(codes(bare)).not.toContain("TDX_ADVISORY_REJECTED");
  });

  it("counts the TDX module's level (TEE_TCB_SVN[1] > 0) and the QE's level too", async () => {
    const teeTcbSvn = Uint8Array.of(6, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const olderModule = simulateTdxQuote(h, {
      ...baseOptions(),
      teeTcbSvn: Uint8Array.of(5, ...teeTcbSvn.subarray(1)),
    });
    const m = await verify(insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, teeTcbSvn }), { quote: olderModule });
    expect([m.tcb?.platform.status, m.tcb?.tdxModule?.advisoryIds]).toEqual(["UpToDate", ["SIMULATED-SA-00001"]]);
    expect(violations(m, ["SIMULATED-SA-00001"]).map((x) => x.found)).toEqual(["SIMULATED-SA-00001"]);

    const q = await verify(
      insecureSimulatedTdxCollateral(h, {
        issueDate: ISSUED,
        qeTcbLevels: [
          { isvSvn: 5, tcbStatus: "UpToDate" },
          { isvSvn: 4, tcbStatus: "OutOfDate", advisoryIds: ["SIMULATED-SA-00003"] },
        ],
      }),
    );
    expect([q.tcb?.advisoryIds, q.qeIdentity?.advisoryIds]).toEqual([[], ["SIMULATED-SA-00003"]]);
    expect(violations(q, ["SIMULATED-SA-00003"]).map((x) => x.found)).toEqual(["SIMULATED-SA-00003"]);
  });

  it("refuses when the advisories are unknown: no TCB info, no matching platform, TDX module or QE level, or no QE identity", async () => {
    const unknown = async (v: Awaited<ReturnType<typeof verify>>) =>
      violations(v, ["SIMULATED-SA-00002"])
        .filter((x) => x.code === "TDX_ADVISORY_REJECTED")
        .map((x) => x.found);
    const bare = await verifyTdxQuote({ quote, anchors, at: AT });
    expect(await unknown(bare)).toEqual(["unknown (no TCB info collateral was verified)"]);
    const older = issueInsecureSimulatedPckLeaf(h, { tcb: { pceSvn: 1 }, keyLabel: "PCK-pcesvn-1" });
    const noLevel = await verify(collateral, { quote: simulateTdxQuote(h, { ...baseOptions(), pck: older }) });
    expect(noLevel.tcbStatus).toBe("NotSupported");
    expect(await unknown(noLevel)).toEqual(["unknown (no TCB level of the TCB info matches the platform)"]);
    const noQe = await verifyTdxQuote({ quote, anchors, at: AT, collateral: { tcbInfo: collateral.tcbInfo } });
    expect(await unknown(noQe)).toEqual(["unknown (QE identity not checked)"]);

    // The platform matches a level but the TDX module (TEE_TCB_SVN[0] 4, levels 6 and 5) does not.
    const teeTcbSvn = Uint8Array.of(6, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const noModuleLevel = await verify(insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, teeTcbSvn }), {
      quote: simulateTdxQuote(h, { ...baseOptions(), teeTcbSvn: Uint8Array.of(4, ...teeTcbSvn.subarray(1)) }),
    });
    expect([noModuleLevel.tcb?.platform.status, noModuleLevel.tcb?.tdxModule?.tcbDate]).toEqual(["UpToDate", null]);
    expect(await unknown(noModuleLevel)).toEqual([
      "unknown (no level of the TCB info's TDX_01 matches the TDX module)",
    ]);
    // The QE identity verifies, but none of its levels holds the QE's ISVSVN 4.
    const noQeLevel = await verify(
      insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, qeTcbLevels: [{ isvSvn: 5, tcbStatus: "UpToDate" }] }),
    );
    expect(noQeLevel.qeIdentity?.tcbDate).toBeNull();
    expect(await unknown(noQeLevel)).toEqual(["unknown (no level of the QE identity matches the QE)"]);
  });

  it("compares the collateral's advisory IDs in any case too", async () => {
    const q = await verify(
      insecureSimulatedTdxCollateral(h, {
        issueDate: ISSUED,
        qeTcbLevels: [{ isvSvn: 4, tcbStatus: "OutOfDate", advisoryIds: ["simulated-sa-00003"] }],
      }),
    );
    expect(violations(q, ["SIMULATED-SA-00003"]).map((x) => x.found)).toEqual(["SIMULATED-SA-00003"]);
  });
});

describe("convergeTcbStatus: Intel QVL's convergeTcbStatusWithTdxModuleStatus / convergeTcbStatusWithQeTcbStatus", () => {
  // Rows: the platform (TCB level) status; columns: the TDX module's or QE's status. From Intel's
  // TcbLevelCheck.cpp and TdxModuleCheck.cpp: an OutOfDate module/QE makes UpToDate and
  // SWHardeningNeeded OutOfDate and the two Configuration* statuses OutOfDateConfigurationNeeded;
  // Revoked gives Revoked; NotSupported gives NotSupported; otherwise the platform status stands.
  // One deviation, on purpose: Revoked outranks NotSupported either way (Intel returns whichever it
  // meets first; both end verification there, while a policy here may accept NotSupported).
  const columns = ["UpToDate", "OutOfDate", "Revoked", "NotSupported"] as const;
  const table: Record<TdxTcbStatus, readonly TdxTcbStatus[]> = {
    UpToDate: ["UpToDate", "OutOfDate", "Revoked", "NotSupported"],
    SWHardeningNeeded: ["SWHardeningNeeded", "OutOfDate", "Revoked", "NotSupported"],
    ConfigurationNeeded: ["ConfigurationNeeded", "OutOfDateConfigurationNeeded", "Revoked", "NotSupported"],
    ConfigurationAndSWHardeningNeeded: [
      "ConfigurationAndSWHardeningNeeded",
      "OutOfDateConfigurationNeeded",
      "Revoked",
      "NotSupported",
    ],
    OutOfDate: ["OutOfDate", "OutOfDate", "Revoked", "NotSupported"],
    OutOfDateConfigurationNeeded: [
      "OutOfDateConfigurationNeeded",
      "OutOfDateConfigurationNeeded",
      "Revoked",
      "NotSupported",
    ],
    Revoked: ["Revoked", "Revoked", "Revoked", "Revoked"],
    NotSupported: ["NotSupported", "NotSupported", "Revoked", "NotSupported"],
  };
  const rows = Object.entries(table).flatMap(([platform, results]) =>
    columns.map((other, i) => [platform as TdxTcbStatus, other, results[i] as TdxTcbStatus] as const),
  );
  it.each(rows)("%s with %s → %s", (platform, other, expected) => {
    expect(convergeTcbStatus(platform, other)).toBe(expected);
  });
});

describe("TEE_TCB_SVN against the TCB levels when TEE_TCB_SVN[1] > 0 (bytes 2..15 compared)", () => {
  it("a TEE_TCB_SVN below the newest level in byte 2 alone, or in byte 15 alone, falls to the older level", async () => {
    const teeTcbSvn = Uint8Array.of(6, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2);
    const c = insecureSimulatedTdxCollateral(h, { issueDate: ISSUED, teeTcbSvn });
    const at = async (svn: Uint8Array) =>
      (await verify(c, { quote: simulateTdxQuote(h, { ...baseOptions(), teeTcbSvn: svn }) })).tcb;
    expect((await at(teeTcbSvn))?.platform.status).toBe("UpToDate");
    for (const byte of [2, 15]) {
      const lower = Uint8Array.from(teeTcbSvn);
      lower[byte] = (lower[byte] as number) - 1;
      const tcb = await at(lower);
      expect(tcb?.platform).toMatchObject({ status: "OutOfDate", tcbDate: "2024-03-13T00:00:00Z" });
      expect(tcb?.tdxModule?.status).toBe("UpToDate"); // bytes 0 and 1 are the module's, unchanged
    }
  });
});

describe("collateral dates against its signer and the verification time", () => {
  const root = anchors[0]?.root;
  if (root === undefined) throw new Error("no simulator root");
  const check = (
    c: InsecureSimulatedTdxCollateral,
    at: Date,
    signerValidity: "strict" | "at-issue-date" | "accept-expired-signer" = "strict",
    acceptStaleCollateral = false,
  ) =>
    codeOf(
      verifyTdxCollateralSignature(
        parseTdxTcbInfo(c.tcbInfo.json),
        parseIssuerChain(c.tcbInfo.issuerChain, "TDX TCB info"),
        { at, root, signerValidity, acceptStaleCollateral },
      ),
    );
  const ms = (d: Date, delta: number) => new Date(d.getTime() + delta);

  // Its own code, not CERT_NOT_YET_VALID: no verification time (--at) makes it valid.
  it("refuses collateral issued before its signer certificate's notBefore (backdated), under every signer mode, with COLLATERAL_SIGNER_NOT_YET_VALID", async () => {
    const nextUpdate = new Date("2026-06-01T00:00:00Z");
    const backdated = insecureSimulatedTdxCollateral(h, {
      issueDate: ms(SIMULATED_INTEL_NOT_BEFORE, -1000),
      nextUpdate,
    });
    const error = await rejection(verify(backdated, { crls: false }));
    expect(error.code).toBe("COLLATERAL_SIGNER_NOT_YET_VALID");
    expect(error.message).toMatch(
      /^TDX TCB info signer certificate .*: not valid before 2024-01-01T00:00:00.000Z, collateral issueDate 2023-12-31T23:59:59.000Z$/,
    );
    for (const mode of ["strict", "at-issue-date", "accept-expired-signer"] as const) {
      expect(await check(backdated, AT, mode)).toBe("COLLATERAL_SIGNER_NOT_YET_VALID");
    }
    // Issued exactly at the signer's notBefore: accepted.
    const onTime = insecureSimulatedTdxCollateral(h, { issueDate: SIMULATED_INTEL_NOT_BEFORE, nextUpdate });
    expect(await check(onTime, AT)).toBe("ACCEPTED");
  });

  // Both ends inclusive, as Intel's QVL (TCB info expired when the time is > nextUpdate; signing chain
  // expired when > the signer's notAfter) and RFC 5280 4.1.2.5 ("notBefore through notAfter, inclusive").
  it("is current from issueDate through nextUpdate inclusive, to the millisecond", async () => {
    const c = insecureSimulatedTdxCollateral(h, { issueDate: ISSUED });
    const next = new Date("2026-01-19T08:30:00Z");
    expect(await check(c, ISSUED)).toBe("ACCEPTED");
    expect(await check(c, ms(ISSUED, -1))).toBe("COLLATERAL_NOT_YET_VALID");
    expect(await check(c, ms(ISSUED, -1000))).toBe("COLLATERAL_NOT_YET_VALID");
    expect(await check(c, next)).toBe("ACCEPTED");
    expect(await check(c, ms(next, 1))).toBe("COLLATERAL_EXPIRED");
    expect(await check(c, ms(next, 1000))).toBe("COLLATERAL_EXPIRED");
  });

  it("takes the signer certificate as valid through its notAfter inclusive, and the root's validity at the verification time in every mode", async () => {
    const late = insecureSimulatedTdxCollateral(h, { issueDate: new Date("2048-12-01T00:00:00Z") });
    expect(await check(late, SIMULATED_PCK_NOT_AFTER)).toBe("ACCEPTED");
    expect(await check(late, ms(SIMULATED_PCK_NOT_AFTER, 1), "strict", true)).toBe("COLLATERAL_SIGNER_EXPIRED");
    expect(await check(late, ms(SIMULATED_PCK_NOT_AFTER, 1000), "strict", true)).toBe("COLLATERAL_SIGNER_EXPIRED");
    // at-issue-date evaluates the signer at issueDate, but the root is still checked at `at`.
    const afterRoot = ms(SIMULATED_INTEL_ROOT_NOT_AFTER, 1000);
    expect(await check(late, ms(SIMULATED_PCK_NOT_AFTER, 1000), "at-issue-date", true)).toBe("ACCEPTED");
    expect(await check(late, afterRoot, "at-issue-date", true)).toBe("CERT_EXPIRED");
    expect(await check(late, afterRoot, "accept-expired-signer", true)).toBe("CERT_EXPIRED");
  });
});
