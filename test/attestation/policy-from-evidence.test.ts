/**
 * `cloister policy init`'s core (attestation/policy-from-evidence.ts) on real captured evidence: a
 * policy made from one machine's verified report accepts that report, refuses another deployment's
 * (another measurement) and a host reporting older firmware, and refuses to pin debuggable guests,
 * simulated evidence unless asked, and Azure evidence.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { appraise } from "../../attestation/appraise.ts";
import { parseAzureEvidence } from "../../attestation/azure/evidence.ts";
import { type VerifiedAzureEvidence, verifyAzureEvidence } from "../../attestation/azure/verify.ts";
import { toHex } from "../../attestation/bytes.ts";
import type { VerifiedDocumentEvidence } from "../../attestation/evidence.ts";
import { type AzurePolicy, parseAttestationPolicy } from "../../attestation/policy.ts";
import { attestationPolicyFromEvidence, TCB_CHECK_NOTE } from "../../attestation/policy-from-evidence.ts";
import { AMD_ROOTS } from "../../attestation/roots/amd.ts";
import { INTEL_ROOTS } from "../../attestation/roots/intel.ts";
import {
  INSECURE_SIMULATOR_DEFAULT_SEED,
  insecureSimulatedAmdHierarchy,
  insecureSimulatedIntelHierarchy,
  insecureSimulatedTdxCollateral,
  insecureSimulatorAnchors,
  signSnpReportInPlace,
  simulateSnpReport,
  simulateTdxQuote,
} from "../../attestation/sim/index.ts";
import { parseSnpReport, SNP_OFFSETS } from "../../attestation/snp/parse.ts";
import { type VerifiedSnpReport, verifySnpReport } from "../../attestation/snp/verify.ts";
import { parseTdxQuote } from "../../attestation/tdx/parse.ts";
import { type VerifiedTdxQuote, verifyTdxQuote } from "../../attestation/tdx/verify.ts";
import { parseCertificateBytes } from "../../attestation/x509.ts";

const F = new URL("../fixtures/attestation/", import.meta.url);
const read = (p: string) => new Uint8Array(readFileSync(new URL(p, F)));

async function snp(report: string, cert: string, at: string): Promise<VerifiedSnpReport> {
  return verifySnpReport({
    report: parseSnpReport(read(`snp/${report}`)),
    endorsementKey: parseCertificateBytes(read(`snp/${cert}`)),
    anchors: AMD_ROOTS,
    at: new Date(at),
  });
}

async function tdx(quote: string, at: string): Promise<VerifiedTdxQuote> {
  return verifyTdxQuote({ quote: parseTdxQuote(read(`tdx/${quote}`)), anchors: INTEL_ROOTS, at: new Date(at) });
}

function asDocumentEvidence(
  type: "sev-snp" | "tdx",
  evidence: VerifiedSnpReport | VerifiedTdxQuote,
  simulated = false,
): VerifiedDocumentEvidence {
  return {
    type,
    evidence,
    bound: { carrier: "report-data", value: new Uint8Array(64) },
    simulated,
    measurement: "",
    details: {},
    certificatesNotAfter: Number.MAX_SAFE_INTEGER,
  } as VerifiedDocumentEvidence;
}

const noReportData = (at: string) => ({ now: new Date(at), expectedReportData: null });

describe("a policy from one deployment's verified evidence", () => {
  it("SNP (GCP Milan, VCEK): accepts that report, refuses another measurement and older firmware", async () => {
    const at = "2026-01-01T00:00:00Z";
    const gcp = await snp("milan-gcp-v5-report.bin", "milan-gcp-v5-vcek.pem", at);
    const { policy, notes } = attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", gcp), {
      allowSimulator: false,
    });
    // The result is a valid policy file (every field present, skips with reasons).
    expect(parseAttestationPolicy(JSON.parse(JSON.stringify(policy)))).toEqual(policy);
    expect(policy.trustSimulator).toBe(false);
    expect(policy.snp).toMatchObject({
      measurements: [
        "b747d55452e0b9e9079770a49e397c5e6d9573581e246da7baac4f28b5cdc5b1b6d19251b8ee600fd16a3708f58406f3",
      ],
      minimumTcb: { bootloader: 4, tee: 0, snp: 27, microcode: 222 },
      allowedVmpls: [0],
      allowedProducts: ["Milan"],
      signingKeys: ["vcek"],
      debugAllowed: false,
      hostData: "00".repeat(32),
    });
    expect(notes.join("\n")).toMatch(/MEASUREMENT b747d554.* check it against your build/);
    expect(appraise(gcp, policy, noReportData(at)).ok).toBe(true);

    const other = await snp("milan-trustee-v2-report.bin", "milan-trustee-v2-vcek.der", "2024-01-01T00:00:00Z");
    const refused = appraise(other, policy, noReportData("2024-01-01T00:00:00Z"));
    expect(refused.ok).toBe(false);
    const codes = refused.ok ? [] : refused.violations.map((v) => v.code);
    expect(codes).toContain("SNP_MEASUREMENT_NOT_ALLOWED");
    expect(codes).toContain("SNP_TCB_TOO_LOW");
  });

  it("writes every hardening field explicitly: CXL refused, TIO accepted, the rest skipped with a reason and noted as not checked", async () => {
    const at = "2026-01-01T00:00:00Z";
    const gcp = await snp("milan-gcp-v5-report.bin", "milan-gcp-v5-vcek.pem", at);
    const { policy, notes } = attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", gcp), {
      allowSimulator: false,
    });
    const skipped = { skip: { reason: expect.stringMatching(/\S/) } };
    expect(policy.snp).toMatchObject({
      cxlAllowed: false,
      tioAllowed: true,
      minimumAbi: skipped,
      minimumFirmware: skipped,
      requireGuestPolicy: skipped,
      requirePlatformInfo: skipped,
      requireMitigations: skipped,
    });
    expect(notes).toContain(
      "not checked (skipped in the policy, each with its reason): snp.minimumAbi, snp.minimumFirmware, snp.requireGuestPolicy, snp.requirePlatformInfo, snp.requireMitigations; snp.tioAllowed is true (PLATFORM_INFO.TIO_EN not refused): set them from your fleet's firmware and launch configuration to check them",
    );
    // As before: the policy accepts the evidence it was written from.
    expect(appraise(gcp, policy, noReportData(at)).ok).toBe(true);

    const q = await tdx("quote-v4-gcp-2025.bin", "2025-09-12T00:00:00Z");
    const t = attestationPolicyFromEvidence(asDocumentEvidence("tdx", q), {
      allowSimulator: false,
      allowNoCollateral: true,
    });
    expect(t.policy.tdx).toMatchObject({ minimumQeSvn: skipped, minimumPceSvn: skipped, rejectedAdvisoryIds: skipped });
    expect(t.notes).toContain(
      "not checked (skipped in the policy, each with its reason): tdx.minimumQeSvn, tdx.minimumPceSvn, tdx.rejectedAdvisoryIds: set them from your fleet's quoting enclave, PCE and Intel's advisories to check them",
    );
  });

  it("SNP mitigation vectors (GCP v5: 0xb verified at launch and now): noted, not pinned; requireMitigations judges both vectors", async () => {
    const at = "2026-01-01T00:00:00Z";
    const gcp = await snp("milan-gcp-v5-report.bin", "milan-gcp-v5-vcek.pem", at);
    expect([gcp.report.launchMitVector, gcp.report.currentMitVector]).toEqual([0xbn, 0xbn]);
    const { policy, notes } = attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", gcp), {
      allowSimulator: false,
    });
    expect(policy.snp?.requireMitigations).toMatchObject({ skip: { reason: expect.stringContaining("run time") } });
    expect(notes.join("\n")).toContain(
      'mitigation bits 0, 1, 3 are verified in this report (LAUNCH_MIT_VECTOR 0xb, CURRENT_MIT_VECTOR 0xb): set "requireMitigations": [0, 1, 3] in place of its skip',
    );
    const requiring = (bits: number[]) =>
      parseAttestationPolicy({ ...policy, snp: { ...policy.snp, requireMitigations: bits } });
    expect(appraise(gcp, requiring([0, 1, 3]), noReportData(at)).violations).toEqual([]);
    expect(appraise(gcp, requiring([3, 2]), noReportData(at)).violations).toEqual([
      {
        field: "LAUNCH_MIT_VECTOR",
        code: "SNP_MITIGATION_MISSING",
        expected: "bits 2, 3 set (requireMitigations)",
        found: "0xb (bit 2 clear)",
      },
      {
        field: "CURRENT_MIT_VECTOR",
        code: "SNP_MITIGATION_MISSING",
        expected: "bits 2, 3 set (requireMitigations)",
        found: "0xb (bit 2 clear)",
      },
    ]);

    // A report before version 5 carries no mitigation vector: it meets no requirement.
    const awsAt = "2025-06-01T00:00:00Z";
    const aws = await snp("milan-aws-vlek-v3-report.bin", "milan-aws-vlek.der", awsAt);
    const awsPolicy = attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", aws), { allowSimulator: false });
    expect(awsPolicy.notes.join("\n")).not.toContain("are verified in this report");
    const awsRequiring = parseAttestationPolicy({
      ...awsPolicy.policy,
      snp: { ...awsPolicy.policy.snp, requireMitigations: [0] },
    });
    const absent = "absent (a version 3 report; the mitigation vectors came with version 5)";
    expect(appraise(aws, awsRequiring, noReportData(awsAt)).violations).toEqual([
      {
        field: "LAUNCH_MIT_VECTOR",
        code: "SNP_MITIGATION_MISSING",
        expected: "bit 0 set (requireMitigations)",
        found: absent,
      },
      {
        field: "CURRENT_MIT_VECTOR",
        code: "SNP_MITIGATION_MISSING",
        expected: "bit 0 set (requireMitigations)",
        found: absent,
      },
    ]);
  });

  it("SNP (AWS Milan, VLEK): pins the signing-key kind the evidence used", async () => {
    const aws = await snp("milan-aws-vlek-v3-report.bin", "milan-aws-vlek.der", "2025-06-01T00:00:00Z");
    const { policy } = attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", aws), { allowSimulator: false });
    expect(policy.snp?.signingKeys).toEqual(["vlek"]);
    // This host reports an older TCB than the machine runs: pinned as reported, and said so.
    expect(policy.snp?.minimumTcb.microcode).toBe(aws.reportedTcb.microcode);
    const { notes } = attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", aws), { allowSimulator: false });
    expect(aws.report.currentTcb.microcode).toBeGreaterThan(aws.reportedTcb.microcode);
    expect(notes.join("\n")).toContain("REPORTED_TCB is below the TCB this machine runs");
    expect(appraise(aws, policy, noReportData("2025-06-01T00:00:00Z")).ok).toBe(true);
  });

  it("SNP (simulated Turin, a CPUID model no table names): reads the TCBs with the VCEK's Turin layout", async () => {
    const turin = insecureSimulatedAmdHierarchy(INSECURE_SIMULATOR_DEFAULT_SEED, "Turin");
    const bytes = simulateSnpReport(turin, { reportData: new Uint8Array(64), measurement: new Uint8Array(48).fill(1) });
    bytes[SNP_OFFSETS.CPUID_MOD_ID] = 0x12;
    signSnpReportInPlace(bytes, turin.vcek);
    const at = new Date("2026-06-01T00:00:00Z");
    const verified = await verifySnpReport({
      report: parseSnpReport(bytes),
      endorsementKey: parseCertificateBytes(turin.vcek.certificate),
      anchors: insecureSimulatorAnchors(INSECURE_SIMULATOR_DEFAULT_SEED, ["Turin"]).snp,
      at,
    });
    expect(verified.report.product).toBeNull();
    // Read with the Milan layout, LAUNCH_TCB would look older than REPORTED_TCB (POLICY_INIT_LAUNCH_TCB).
    const { policy } = attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", verified, true), {
      allowSimulator: true,
    });
    expect(policy.snp?.minimumTcb).toEqual({ fmc: 1, bootloader: 1, tee: 1, snp: 3, microcode: 9 });
    expect(appraise(verified, policy, { now: at, expectedReportData: null }).violations).toEqual([]);
  });

  it("TDX (GCP): pins MRTD, RTMRs, MRSEAM, XFAM and the TCB SVN; refuses another TD", async () => {
    const at = "2025-09-12T00:00:00Z";
    const gcp = await tdx("quote-v4-gcp-2025.bin", at);
    // Without collateral the TCB status cannot be pinned: only when the operator says so.
    expect(() => attestationPolicyFromEvidence(asDocumentEvidence("tdx", gcp), { allowSimulator: false })).toThrow(
      expect.objectContaining({ code: "POLICY_INIT_NO_COLLATERAL" }),
    );
    const { policy, notes } = attestationPolicyFromEvidence(asDocumentEvidence("tdx", gcp), {
      allowSimulator: false,
      allowNoCollateral: true,
    });
    expect(parseAttestationPolicy(JSON.parse(JSON.stringify(policy)))).toEqual(policy);
    expect(policy.snp).toBeNull();
    expect(((policy.tdx?.rtmrs ?? []) as unknown[]).every((r) => typeof r === "string")).toBe(true);
    expect(policy.tdx?.acceptedTcbStatuses).toMatchObject({ skip: { reason: expect.stringContaining("collateral") } });
    // The note names the commands that check the TCB status the policy skips (test/attestation/tcb-check-note.test.ts).
    expect(notes).toContain(
      `acceptedTcbStatuses is skipped: the deployment serves no TCB collateral (start its enclave with --tdx-collateral DIR); ${TCB_CHECK_NOTE.guest}`,
    );
    // MRSEAM changes with the cloud's TDX module updates: not pinned (the TCB SVN minimum is).
    expect(policy.tdx?.mrseam).toMatchObject({ skip: { reason: expect.stringContaining("module") } });
    expect(policy.tdx?.minimumTeeTcbSvn).toMatch(/^[0-9a-f]{32}$/);
    // A v4 quote (TDX 1.0 body layout, no MRSERVICETD) of a TD that is not MIGRATABLE: no migration
    // TD can be bound, pinned as zero (the same TD made migratable is refused, appraise.ts).
    expect(policy.tdx?.mrservicetd).toBe("00".repeat(48));
    expect(policy.tdx?.mrownerconfig).toBe("00".repeat(48));
    expect(notes.join("\n")).toContain("RTMR0-3");
    expect(appraise(gcp, policy, noReportData(at)).ok).toBe(true);

    const other = await tdx("quote-v4-trustee.bin", "2023-07-01T00:00:00Z");
    const refused = appraise(other, policy, noReportData("2023-07-01T00:00:00Z"));
    expect(refused.ok).toBe(false);
    expect(refused.ok ? [] : refused.violations.map((v) => v.code)).toContain("TDX_MRTD_NOT_ALLOWED");
  });

  it("TDX: refuses to pin a TD on a TDX module that is not Intel's production module", async () => {
    const at = new Date("2026-06-01T00:00:00Z");
    const verified = async (module: { insecureMrSignerSeam?: Uint8Array; insecureSeamAttributes?: Uint8Array }) => {
      const quote = simulateTdxQuote(insecureSimulatedIntelHierarchy(), {
        reportData: new Uint8Array(64),
        mrtd: new Uint8Array(48).fill(7),
        rtmrs: [new Uint8Array(48), new Uint8Array(48), new Uint8Array(48), new Uint8Array(48)],
        ...module,
      });
      const evidence = await verifyTdxQuote({
        quote: parseTdxQuote(quote),
        anchors: insecureSimulatorAnchors().tdx,
        at,
      });
      return asDocumentEvidence("tdx", evidence, true);
    };
    const init = async (module: Parameters<typeof verified>[0]) =>
      attestationPolicyFromEvidence(await verified(module), { allowSimulator: true, allowNoCollateral: true });
    // Intel's module (both zero): a policy that accepts its own evidence.
    const intel = await verified({});
    const { policy } = attestationPolicyFromEvidence(intel, { allowSimulator: true, allowNoCollateral: true });
    expect(appraise(intel.evidence as VerifiedTdxQuote, policy, { now: at, expectedReportData: null }).ok).toBe(true);
    await expect(init({ insecureMrSignerSeam: new Uint8Array(48).fill(6) })).rejects.toThrow(
      expect.objectContaining({
        code: "POLICY_INIT_TDX_MODULE",
        message: expect.stringContaining(`MRSIGNERSEAM is ${"06".repeat(48)}, expected all zero`),
      }),
    );
    await expect(init({ insecureSeamAttributes: Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0x80) })).rejects.toThrow(
      expect.objectContaining({
        code: "POLICY_INIT_TDX_MODULE",
        message: expect.stringContaining("SEAMATTRIBUTES is 0000000000000080, expected all zero"),
      }),
    );
  });

  it("TDX: a MIGRATABLE TD whose quote does not carry MRSERVICETD leaves it unpinned, and says so", async () => {
    const at = new Date("2026-06-01T00:00:00Z");
    const quote = simulateTdxQuote(insecureSimulatedIntelHierarchy(), {
      reportData: new Uint8Array(64),
      mrtd: new Uint8Array(48).fill(7),
      rtmrs: [new Uint8Array(48), new Uint8Array(48), new Uint8Array(48), new Uint8Array(48)],
      tdAttributes: Uint8Array.of(0, 0, 0, 0x30, 0, 0, 0, 0), // SEPT_VE_DISABLE | MIGRATABLE
    });
    const verified = await verifyTdxQuote({ quote: parseTdxQuote(quote), anchors: insecureSimulatorAnchors().tdx, at });
    const { policy, notes } = attestationPolicyFromEvidence(asDocumentEvidence("tdx", verified, true), {
      allowSimulator: true,
      allowNoCollateral: true,
    });
    expect(policy.tdx?.mrservicetd).toMatchObject({ skip: { reason: expect.stringContaining("MIGRATABLE") } });
    expect(notes.join("\n")).toContain("MRSERVICETD not pinned");
    expect(appraise(verified, policy, { now: at, expectedReportData: null }).ok).toBe(true);
  });

  it("TDX with the collateral the enclave serves: requires its TCB status; refuses to pin Revoked", async () => {
    const at = new Date("2026-06-01T00:00:00Z");
    const hierarchy = insecureSimulatedIntelHierarchy();
    const quote = simulateTdxQuote(hierarchy, {
      reportData: new Uint8Array(64),
      mrtd: new Uint8Array(48).fill(7),
      rtmrs: [new Uint8Array(48), new Uint8Array(48), new Uint8Array(48), new Uint8Array(48)],
    });
    const withStatus = async (tcbStatus: "UpToDate" | "OutOfDate" | "Revoked", tcbEvaluationDataNumber = 17) => {
      const collateral = insecureSimulatedTdxCollateral(hierarchy, {
        issueDate: at,
        tcbStatus,
        tcbEvaluationDataNumber,
      });
      const verified = await verifyTdxQuote({
        quote: parseTdxQuote(quote),
        anchors: insecureSimulatorAnchors().tdx,
        at,
        collateral,
        crls: collateral.crls,
      });
      return asDocumentEvidence("tdx", verified, true);
    };
    const current = attestationPolicyFromEvidence(await withStatus("UpToDate"), { allowSimulator: true });
    // The collateral's evaluation (17, the simulator's) is the oldest accepted from now on.
    expect(current.policy.tdx?.acceptedTcbStatuses).toEqual({
      statuses: ["UpToDate"],
      minimumTcbEvaluationDataNumber: 17,
    });
    expect(parseAttestationPolicy(JSON.parse(JSON.stringify(current.policy)))).toEqual(current.policy);
    expect(current.notes.join("\n")).toContain(
      "TCB status UpToDate by Intel's collateral (TCB evaluation 17) is required, and that evaluation is the oldest accepted",
    );
    const outOfDate = attestationPolicyFromEvidence(await withStatus("OutOfDate"), { allowSimulator: true });
    expect(outOfDate.policy.tdx?.acceptedTcbStatuses).toMatchObject({ statuses: ["UpToDate", "OutOfDate"] });
    expect(outOfDate.notes.join("\n")).toContain("the platform's TCB status is OutOfDate");
    // Appraisal: collateral of an older evaluation (a host replaying it) fails the minimum; the same or newer passes.
    const older = (await withStatus("UpToDate", 16)).evidence as VerifiedTdxQuote;
    const same = (await withStatus("UpToDate", 17)).evidence as VerifiedTdxQuote;
    const newer = (await withStatus("UpToDate", 18)).evidence as VerifiedTdxQuote;
    const appraisalAt = { now: at, expectedReportData: null };
    const refused = appraise(older, current.policy, appraisalAt);
    expect(refused.ok ? [] : refused.violations.map((v) => `${v.code} ${v.found}`)).toEqual([
      "TDX_TCB_EVALUATION_TOO_OLD 16",
    ]);
    expect(appraise(same, current.policy, appraisalAt).ok).toBe(true);
    expect(appraise(newer, current.policy, appraisalAt).ok).toBe(true);
    const revoked = await withStatus("Revoked");
    expect(() => attestationPolicyFromEvidence(revoked, { allowSimulator: true })).toThrow(
      expect.objectContaining({ code: "POLICY_INIT_TCB_REJECTED" }),
    );
  });

  it("refuses simulated evidence unless asked, debuggable guests, and launches under older firmware", async () => {
    const gcp = await snp("milan-gcp-v5-report.bin", "milan-gcp-v5-vcek.pem", "2026-01-01T00:00:00Z");
    expect(() =>
      attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", gcp, true), { allowSimulator: false }),
    ).toThrow(
      expect.objectContaining({
        code: "POLICY_INIT_SIMULATED",
        // Worded as the SDK's SIMULATED_EVIDENCE_NOT_TRUSTED (client/policy.ts) begins, then what to do here.
        message:
          "evidence: expected hardware evidence, found evidence of the INSECURE Cloister simulator (anyone can forge it); " +
          "this deployment runs on the simulator: pass --allow-simulator to write a policy that trusts it for local " +
          "development, or run policy init against a deployment on SEV-SNP or TDX hardware",
      }),
    );
    // Evidence of a type it has no policy for (a plain-JavaScript caller's): refused, not written empty.
    const other = { ...asDocumentEvidence("sev-snp", gcp), type: "sgx" } as unknown as VerifiedDocumentEvidence;
    expect(() => attestationPolicyFromEvidence(other, { allowSimulator: false })).toThrow(
      expect.objectContaining({
        code: "POLICY_INIT_UNSUPPORTED",
        message: "sgx evidence: no policy can be made from it",
      }),
    );
    const dev = attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", gcp, true), { allowSimulator: true });
    expect(dev.policy.trustSimulator).toBe(true);
    expect(dev.notes[0]).toContain("INSECURE");

    /** The same report with guest POLICY bits changed (what the appraisal reads). */
    const withPolicy = (bits: Partial<typeof gcp.report.policy>) =>
      ({
        ...gcp,
        report: { ...gcp.report, policy: { ...gcp.report.policy, ...bits } },
      }) as unknown as VerifiedSnpReport;
    const debuggable = withPolicy({ debugAllowed: true });
    expect(() =>
      attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", debuggable), { allowSimulator: false }),
    ).toThrow(expect.objectContaining({ code: "POLICY_INIT_DEBUG" }));

    // MIGRATE_MA is the host's launch-time choice: refused unless the operator says the deployment uses one.
    const migratable = withPolicy({ migrateMA: true });
    expect(() =>
      attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", migratable), { allowSimulator: false }),
    ).toThrow(expect.objectContaining({ code: "POLICY_INIT_MIGRATION_AGENT" }));
    expect(
      attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", migratable), {
        allowSimulator: false,
        allowMigrationAgent: true,
      }).policy.snp?.migrationAgentAllowed,
    ).toBe(true);

    // CXL_ALLOW: the policy written (cxlAllowed: false) would refuse it.
    expect(() =>
      attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", withPolicy({ cxlAllowed: true })), {
        allowSimulator: false,
      }),
    ).toThrow(expect.objectContaining({ code: "POLICY_INIT_CXL" }));

    // Launched under older firmware than it reports: the policy written from it would refuse it.
    // (Its TCBs as the verifier decoded them with the VCEK's product layout.)
    const relaunched = {
      ...gcp,
      launchTcb: { ...gcp.launchTcb, microcode: gcp.reportedTcb.microcode - 1 },
    } as unknown as VerifiedSnpReport;
    expect(() =>
      attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", relaunched), { allowSimulator: false }),
    ).toThrow(
      expect.objectContaining({ code: "POLICY_INIT_LAUNCH_TCB", message: expect.stringContaining("microcode 221") }),
    );

    // Provisional firmware committed below what it reports: the policy (its minimum applies to
    // COMMITTED_TCB) would refuse it.
    const provisional = {
      ...gcp,
      committedTcb: { ...gcp.committedTcb, snp: gcp.reportedTcb.snp - 1 },
    } as unknown as VerifiedSnpReport;
    expect(() =>
      attestationPolicyFromEvidence(asDocumentEvidence("sev-snp", provisional), { allowSimulator: false }),
    ).toThrow(
      expect.objectContaining({
        code: "POLICY_INIT_COMMITTED_TCB",
        message: expect.stringContaining("COMMITTED_TCB (bootloader 4, tee 0, snp 26, microcode 222)"),
      }),
    );
  });
});

describe("a policy from Azure CVM evidence (captured on Azure)", () => {
  async function azure(fixture: string): Promise<VerifiedAzureEvidence> {
    const evidence = parseAzureEvidence(readFileSync(new URL(fixture, F), "utf8"));
    return verifyAzureEvidence({
      evidence,
      at: new Date(evidence.kind === "azure-tdx" ? "2024-01-01T00:00:00Z" : "2026-01-01T00:00:00Z"),
      expectedNonce: null,
      snpAnchors: AMD_ROOTS,
      tdxAnchors: INTEL_ROOTS,
    });
  }
  const asAzureDocument = (v: VerifiedAzureEvidence) =>
    ({
      ...asDocumentEvidence("sev-snp", v.snp ?? (v.tdx as VerifiedTdxQuote)),
      type: v.kind,
      evidence: v,
    }) as VerifiedDocumentEvidence;

  /** The captured VMs have a serial console (and so need --allow-console). */
  const AZURE_OPTIONS = { allowSimulator: false, allowConsole: true, allowNoSecureBoot: true };

  it.each([
    "azure/snp-vtpm/genoa-evidence.trustee.json",
    "azure/snp-vtpm/milan-evidence-v2.trustee.json",
    "azure/tdx-vtpm/tdx-evidence-v1.trustee.json",
  ])(
    "%s: pins the paravisor's report, the image's PCRs and the VM configuration; accepts that evidence",
    async (fixture) => {
      const v = await azure(fixture);
      const options = { allowSimulator: false, allowNoCollateral: true, allowConsole: true, allowNoSecureBoot: true };
      const { policy, notes } = attestationPolicyFromEvidence(asAzureDocument(v), options);
      expect(parseAttestationPolicy(JSON.parse(JSON.stringify(policy)))).toEqual(policy);
      expect(policy).toMatchObject({ snp: null, tdx: null, trustSimulator: false });
      const section = policy.azure as AzurePolicy;
      expect(Object.keys(section.pcrs).sort()).toEqual(["11", "12", "13", "4", "7", "8", "9"]);
      expect(section.pcrs["4"]).toEqual([toHex(v.tpm.pcrs.get(4) as Uint8Array)]);
      if (v.snp !== null) expect(section.snp?.measurements).toEqual([toHex(v.snp.report.measurement)]);
      else {
        expect(section.tdx?.mrtd).toEqual([toHex(v.tdx?.quote.body.mrTd as Uint8Array)]);
        // No advice to start an enclave with --tdx-collateral, which Azure's paravisor cannot take.
        expect(notes.join("\n")).toContain("Azure TDX evidence comes without TCB collateral");
        expect(notes.join("\n")).not.toContain("--tdx-collateral DIR");
        expect(notes).toContain(
          `acceptedTcbStatuses is skipped: Azure TDX evidence comes without TCB collateral; ${TCB_CHECK_NOTE.azure}`,
        );
      }
      expect(section.secureBootRequired).toBe(v.runtimeData.vmConfiguration["secure-boot"] === true);
      // The captured VMs have a serial console: accepted only because --allow-console said so.
      expect(section.consoleAllowed).toBe(true);
      expect(notes.join("\n")).toContain("accepts a VM with a serial console (--allow-console)");
      expect(notes.join("\n")).toContain("not the root file system");
      expect(() => attestationPolicyFromEvidence(asAzureDocument(v), { ...options, allowConsole: false })).toThrow(
        expect.objectContaining({
          code: "POLICY_INIT_AZURE_CONSOLE",
          // Azure documents no way to set console-enabled yet: the message points at the doc that says what there is.
          message: expect.stringMatching(/docs\/platforms\.md, "Creating the VM".*--allow-console/),
        }),
      );
      expect(notes.join("\n")).toMatch(/pins? Microsoft's paravisor/);
      expect(appraise(v, policy, { now: v.verifiedAt, expectedReportData: null }).ok).toBe(true);
      // The same VM with another kernel (PCR 4) is refused.
      const otherImage = { ...section, pcrs: { ...section.pcrs, "4": ["ab".repeat(32)] } };
      const refused = appraise(v, parseAttestationPolicy({ ...policy, azure: otherImage }), {
        now: v.verifiedAt,
        expectedReportData: null,
      });
      expect(refused.ok ? [] : refused.violations.map((x) => x.code)).toEqual(["AZURE_PCR_NOT_ALLOWED"]);
    },
  );

  it("Azure TDX: no TCB collateral comes with it, so only with --allow-no-collateral", async () => {
    const v = await azure("azure/tdx-vtpm/tdx-evidence-v1.trustee.json");
    expect(() => attestationPolicyFromEvidence(asAzureDocument(v), AZURE_OPTIONS)).toThrow(
      expect.objectContaining({ code: "POLICY_INIT_NO_COLLATERAL", message: expect.stringContaining("Azure TDX") }),
    );
  });

  it("refuses a vTPM quote that covers none of the PCRs the OS is measured into", async () => {
    const v = await azure("azure/snp-vtpm/genoa-evidence.trustee.json");
    const firmwareOnly = new Map([...v.tpm.pcrs].filter(([index]) => index < 4 || index === 7));
    const narrowed = { ...v, snp: v.snp, tpm: { ...v.tpm, pcrs: firmwareOnly } } as unknown as VerifiedAzureEvidence;
    expect(() => attestationPolicyFromEvidence(asAzureDocument(narrowed), AZURE_OPTIONS)).toThrow(
      expect.objectContaining({ code: "POLICY_INIT_AZURE_PCRS", message: expect.stringContaining("PCR 4, 8, 9, 11") }),
    );
    // Quoted, but nothing measured into them (PCR 11 is zero in this evidence; 4, 8 and 9 made so).
    expect(v.tpm.pcrs.get(11)?.every((b) => b === 0)).toBe(true);
    const unused = new Map(
      [...v.tpm.pcrs].map(([index, value]) => [index, [4, 8, 9].includes(index) ? new Uint8Array(32) : value]),
    );
    const empty = { ...v, tpm: { ...v.tpm, pcrs: unused } } as unknown as VerifiedAzureEvidence;
    expect(() => attestationPolicyFromEvidence(asAzureDocument(empty), AZURE_OPTIONS)).toThrow(
      expect.objectContaining({ code: "POLICY_INIT_AZURE_PCRS" }),
    );
  });

  it("refuses a VM without Secure Boot unless --allow-no-secure-boot", async () => {
    const v = await azure("azure/snp-vtpm/genoa-evidence.trustee.json");
    const runtimeData = {
      ...v.runtimeData,
      vmConfiguration: { ...v.runtimeData.vmConfiguration, "secure-boot": false },
    };
    const noSecureBoot = { ...v, runtimeData } as unknown as VerifiedAzureEvidence;
    const options = { ...AZURE_OPTIONS, allowNoSecureBoot: false };
    expect(() => attestationPolicyFromEvidence(asAzureDocument(noSecureBoot), options)).toThrow(
      expect.objectContaining({
        code: "POLICY_INIT_AZURE_SECURE_BOOT",
        message: expect.stringContaining("secure-boot: false"),
      }),
    );
    const allowed = attestationPolicyFromEvidence(asAzureDocument(noSecureBoot), AZURE_OPTIONS);
    expect(allowed.policy.azure?.secureBootRequired).toBe(false);
    expect(allowed.notes.join("\n")).toContain("--allow-no-secure-boot");
  });

  it("a policy from one Azure VM refuses another platform's paravisor", async () => {
    const genoa = await azure("azure/snp-vtpm/genoa-evidence.trustee.json");
    const milan = await azure("azure/snp-vtpm/milan-evidence-v2.trustee.json");
    const { policy } = attestationPolicyFromEvidence(asAzureDocument(genoa), AZURE_OPTIONS);
    const result = appraise(milan, policy, { now: milan.verifiedAt, expectedReportData: null });
    expect(result.ok).toBe(false);
    expect(result.ok ? [] : result.violations.map((x) => x.field)).toEqual(
      expect.arrayContaining(["hcl.MEASUREMENT", "hcl.product"]),
    );
  });
});
