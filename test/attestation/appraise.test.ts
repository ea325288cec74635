/** Appraisal: every violation at once, verified evidence only, REPORT_DATA as an explicit choice. */
import { describe, expect, it } from "vitest";
import { type AppraisableEvidence, appraise, describeViolation } from "../../attestation/appraise.ts";
import { toHex } from "../../attestation/bytes.ts";
import {
  insecureSimulatedAmdHierarchy,
  insecureSimulatedIntelHierarchy,
  insecureSimulatorAnchors,
  simulateSnpReport,
  simulateTdxQuote,
} from "../../attestation/sim/index.ts";
import { parseSnpReport } from "../../attestation/snp/parse.ts";
import { verifySnpReport } from "../../attestation/snp/verify.ts";
import { parseTdxQuote } from "../../attestation/tdx/parse.ts";
import { verifyTdxQuote } from "../../attestation/tdx/verify.ts";
import { parseCertificate } from "../../attestation/x509.ts";
import { simulatorAttestationPolicy } from "../../client/dev-policy.ts";
import { AT, MEASUREMENT, MRTD, policy, REPORT_DATA, RTMRS, snpPolicyJson, tdxPolicyJson } from "./sim-helpers.ts";

async function verifiedSnp(options: Partial<Parameters<typeof simulateSnpReport>[1]> = {}) {
  const h = insecureSimulatedAmdHierarchy();
  const report = simulateSnpReport(h, { reportData: REPORT_DATA, measurement: MEASUREMENT, ...options });
  return verifySnpReport({
    report: parseSnpReport(report),
    endorsementKey: parseCertificate(h.vcek.certificate),
    anchors: insecureSimulatorAnchors().snp,
    at: AT,
  });
}

describe("appraise", () => {
  it("reports every SNP violation at once", async () => {
    const verified = await verifiedSnp({
      policy: 0x30000n | (1n << 19n), // DEBUG
      measurement: new Uint8Array(48).fill(0xee),
      reportData: new Uint8Array(64).fill(1),
      vmpl: 3,
    });
    const result = appraise(verified, policy({ snp: snpPolicyJson(), trustSimulator: false }), {
      now: AT,
      expectedReportData: REPORT_DATA,
    });
    expect(result.ok).toBe(false);
    expect(result.simulated).toBe(true);
    expect(result.violations.map((v) => v.code).sort()).toEqual(
      [
        "SIMULATED_EVIDENCE_NOT_TRUSTED",
        "REPORT_DATA_MISMATCH",
        "SNP_DEBUG_NOT_ALLOWED",
        "SNP_VMPL_NOT_ALLOWED",
        "SNP_MEASUREMENT_NOT_ALLOWED",
      ].sort(),
    );
    const vmpl = result.violations.find((v) => v.code === "SNP_VMPL_NOT_ALLOWED");
    expect(vmpl).toEqual({ field: "VMPL", expected: "one of [0]", found: "3", code: "SNP_VMPL_NOT_ALLOWED" });
    // The verdict cannot be edited by whoever holds it.
    expect(Object.isFrozen(result)).toBe(true);
    expect(Object.isFrozen(result.violations)).toBe(true);
  });

  it("reports three simultaneous TDX violations", async () => {
    const h = insecureSimulatedIntelHierarchy();
    const quote = simulateTdxQuote(h, {
      reportData: REPORT_DATA,
      mrtd: new Uint8Array(48),
      rtmrs: [RTMRS[0], RTMRS[1], RTMRS[2], new Uint8Array(48)],
      tdAttributes: Uint8Array.of(1, 0, 0, 0x10, 0, 0, 0, 0),
    });
    const verified = await verifyTdxQuote({
      quote: parseTdxQuote(quote),
      anchors: insecureSimulatorAnchors().tdx,
      at: AT,
    });
    const mrseam = toHex(verified.quote.body.mrSeam);
    const result = appraise(verified, policy({ tdx: tdxPolicyJson(mrseam) }), {
      now: AT,
      expectedReportData: REPORT_DATA,
    });
    expect(result.violations.map((v) => [v.code, v.field])).toEqual([
      ["TDX_DEBUG_NOT_ALLOWED", "TDATTRIBUTES.DEBUG"],
      ["TDX_MRTD_NOT_ALLOWED", "MRTD"],
      ["TDX_RTMR_MISMATCH", "RTMR3"],
    ]);
  });

  it("leaves REPORT_DATA to the binding stage only when the caller passes null", async () => {
    const verified = await verifiedSnp({ reportData: new Uint8Array(64).fill(9) });
    const p = policy({ snp: snpPolicyJson() });
    expect(appraise(verified, p, { now: AT, expectedReportData: null }).ok).toBe(true);
    expect(appraise(verified, p, { now: AT, expectedReportData: REPORT_DATA }).violations[0]?.code).toBe(
      "REPORT_DATA_MISMATCH",
    );
  });

  it("accepts evidence verified up to maximumVerificationSkewSeconds before or after now, and no further", async () => {
    const verified = await verifiedSnp(); // verified at AT
    const p = policy({ snp: snpPolicyJson() }); // maximumVerificationSkewSeconds: 300
    const codesAt = (offsetMs: number) =>
      appraise(verified, p, { now: new Date(AT.getTime() + offsetMs), expectedReportData: REPORT_DATA }).violations.map(
        (v) => v.code,
      );
    expect(codesAt(300_000)).toEqual([]);
    expect(codesAt(-300_000)).toEqual([]);
    expect(codesAt(300_001)).toEqual(["VERIFICATION_TIME_SKEW"]);
    // Verified after the appraisal time (a clock set forward to pass a certificate not yet valid).
    expect(codesAt(-300_001)).toEqual(["VERIFICATION_TIME_SKEW"]);
  });

  it("skipped checks produce no violation", async () => {
    const verified = await verifiedSnp({
      measurement: new Uint8Array(48).fill(0xee),
      hostData: new Uint8Array(32).fill(1),
    });
    const skip = { skip: { reason: "test: measurement pinned elsewhere" } };
    const result = appraise(verified, policy({ snp: snpPolicyJson({ measurements: skip, hostData: skip }) }), {
      now: AT,
      expectedReportData: REPORT_DATA,
    });
    expect(result.ok).toBe(true);
  });

  it("refuses anything that verify did not produce, at the type level and at run time", async () => {
    const verified = await verifiedSnp();
    const p = policy({ snp: snpPolicyJson() });
    const options = { now: AT, expectedReportData: REPORT_DATA };
    const parsedQuote = parseTdxQuote(
      simulateTdxQuote(insecureSimulatedIntelHierarchy(), { reportData: REPORT_DATA, mrtd: MRTD, rtmrs: RTMRS }),
    );
    // Parsed (unverified) evidence does not type-check as appraisable evidence...
    // @ts-expect-error SnpReport is not verified evidence
    const parsedSnp: AppraisableEvidence = verified.report;
    // @ts-expect-error a parsed TDX quote is not verified evidence
    const parsedTdx: AppraisableEvidence = parsedQuote;
    // ...and is refused at run time too.
    for (const unverified of [parsedSnp, parsedTdx]) {
      expect(() => appraise(unverified, p, options)).toThrow(
        expect.objectContaining({ code: "APPRAISAL_UNVERIFIED_EVIDENCE", stage: "configuration" }),
      );
    }
    // A field-by-field copy of verified evidence is not verified evidence either.
    const copy = { ...verified } as AppraisableEvidence;
    expect(() => appraise(copy, p, options)).toThrow(/verifySnpReport, verifyTdxQuote or verifyAzureEvidence/);
    // Nor is an object on the class's prototype, which `instanceof` would accept.
    const forged = Object.assign(Object.create(Object.getPrototypeOf(verified)), verified) as AppraisableEvidence;
    expect(() => appraise(forged, p, options)).toThrow(/verifySnpReport, verifyTdxQuote or verifyAzureEvidence/);
    expect(appraise(verified, p, options).ok).toBe(true);
  });

  it("rejects a malformed expectedReportData or time as a configuration error", async () => {
    const verified = await verifiedSnp();
    const p = policy({ snp: snpPolicyJson() });
    expect(() => appraise(verified, p, { now: AT, expectedReportData: new Uint8Array(32) })).toThrow(
      expect.objectContaining({
        code: "APPRAISAL_BAD_OPTION",
        message: expect.stringMatching(/expectedReportData must be 64 bytes/),
      }),
    );
    expect(() => appraise(verified, p, { now: new Date(Number.NaN), expectedReportData: null })).toThrow(
      expect.objectContaining({ code: "APPRAISAL_BAD_OPTION", message: "appraise: now must be a valid Date" }),
    );
  });
});

describe("describeViolation", () => {
  const v = (field: string, code: string, simulated = true) =>
    describeViolation({ field, code, expected: "aa", found: "bb" }, simulated);

  it("names the policy field of each launch measurement, and says where a new one comes from", () => {
    expect({
      snp: v("MEASUREMENT", "SNP_MEASUREMENT_NOT_ALLOWED"),
      tdx: v("MRTD", "TDX_MRTD_NOT_ALLOWED"),
      azureSnp: v("hcl.MEASUREMENT", "SNP_MEASUREMENT_NOT_ALLOWED"),
      azureTdx: v("hcl.MRTD", "TDX_MRTD_NOT_ALLOWED"),
    }).toEqual({
      snp:
        "MEASUREMENT: expected aa, found bb (not in the policy's snp.measurements, attestation.snp.measurements " +
        "in a client policy; simulated: a policy `cloister up` wrote is written again when the enclave code " +
        "changes, so restart what holds the old one (a proxy, web page or key broker); a policy written by hand " +
        "(a key broker's release policy, a client's): add this measurement if this enclave is yours)",
      tdx: expect.stringMatching(
        /^MRTD: expected aa, found bb \(not in the policy's tdx\.mrtd, attestation\.tdx\.mrtd in a client policy; simulated: /,
      ),
      azureSnp:
        "hcl.MEASUREMENT: expected aa, found bb (not in the policy's azure.snp.measurements, " +
        "attestation.azure.snp.measurements in a client policy: the paravisor's launch measurement)",
      azureTdx:
        "hcl.MRTD: expected aa, found bb (not in the policy's azure.tdx.mrtd, " +
        "attestation.azure.tdx.mrtd in a client policy: the paravisor's launch measurement)",
    });
  });

  it("names an MAA token's launch measurement field, maa.snp.measurements (a client policy has no maa section)", () => {
    expect(v("x-ms-sevsnpvm-launchmeasurement", "SNP_MEASUREMENT_NOT_ALLOWED", false)).toBe(
      "x-ms-sevsnpvm-launchmeasurement: expected aa, found bb (not in the policy's maa.snp.measurements; " +
        "compare it with your build's launch measurement)",
    );
  });

  it("speaks of the simulator's `cloister up` only for simulated evidence (it did for hardware evidence too)", () => {
    expect({
      snp: v("MEASUREMENT", "SNP_MEASUREMENT_NOT_ALLOWED", false),
      tdx: v("MRTD", "TDX_MRTD_NOT_ALLOWED", false),
    }).toEqual({
      snp:
        "MEASUREMENT: expected aa, found bb (not in the policy's snp.measurements, attestation.snp.measurements " +
        "in a client policy; compare it with your build's launch measurement)",
      tdx:
        "MRTD: expected aa, found bb (not in the policy's tdx.mrtd, attestation.tdx.mrtd in a client policy; " +
        "compare it with your build's launch measurement)",
    });
  });

  it("names the minimumTcb field of each SNP TCB violation of hardware evidence and what must happen to that TCB", () => {
    const named = (section: string, component: string) =>
      `below the policy's ${section}.minimumTcb.${component}, attestation.${section}.minimumTcb.${component} in a client policy`;
    const accepted = "or lower that minimum if this TCB is accepted on purpose)";
    // Said without naming who acts: a client refused live (the SDK, the web page) reads it too.
    expect({
      reported: v("REPORTED_TCB.microcode", "SNP_TCB_TOO_LOW", false),
      launch: v("LAUNCH_TCB.snp", "SNP_LAUNCH_TCB_TOO_LOW", false),
      committed: v("COMMITTED_TCB.microcode", "SNP_COMMITTED_TCB_TOO_LOW", false),
      azureLaunch: v("hcl.LAUNCH_TCB.tee", "SNP_LAUNCH_TCB_TOO_LOW", false),
    }).toEqual({
      reported: `REPORTED_TCB.microcode: expected aa, found bb (${named("snp", "microcode")}; the platform's firmware/microcode must be updated, ${accepted}`,
      launch:
        `LAUNCH_TCB.snp: expected aa, found bb (${named("snp", "snp")}; the guest was launched under older firmware ` +
        `and keeps that LAUNCH_TCB until it is relaunched: it must be relaunched, ${accepted}`,
      committed:
        `COMMITTED_TCB.microcode: expected aa, found bb (${named("snp", "microcode")}; the platform runs provisional ` +
        "firmware that can be rolled back to this COMMITTED_TCB: the firmware must be committed on the host (SNP_COMMIT), " +
        accepted,
      azureLaunch:
        `hcl.LAUNCH_TCB.tee: expected aa, found bb (${named("azure.snp", "tee")}; the guest was launched under older ` +
        `firmware and keeps that LAUNCH_TCB until it is relaunched: it must be relaunched, ${accepted}`,
    });
  });

  it("says the simulator's TCB is fixed for an SNP TCB violation of simulated evidence (no firmware to update)", () => {
    const step =
      "simulated: the simulator's TCB is fixed, no firmware update changes it: lower that minimum in a policy for the " +
      "simulator (the .cloister/policy.json `cloister up` writes sets it to 0))";
    for (const [field, code] of [
      ["REPORTED_TCB.microcode", "SNP_TCB_TOO_LOW"],
      ["LAUNCH_TCB.snp", "SNP_LAUNCH_TCB_TOO_LOW"],
      ["COMMITTED_TCB.tee", "SNP_COMMITTED_TCB_TOO_LOW"],
    ] as const) {
      const component = field.slice(field.indexOf(".") + 1);
      expect(v(field, code)).toBe(
        `${field}: expected aa, found bb (below the policy's snp.minimumTcb.${component}, ` +
          `attestation.snp.minimumTcb.${component} in a client policy; ${step}`,
      );
    }
    // As the step says: the policy `cloister up` writes asks no minimum of the simulator's TCB.
    expect(simulatorAttestationPolicy("sim-snp", toHex(MEASUREMENT)).snp?.minimumTcb).toEqual({
      bootloader: 0,
      tee: 0,
      snp: 0,
      microcode: 0,
      fmc: 0,
    });
  });

  it("says any other violation as it was: field, expected, found", () => {
    expect(v("GUEST_SVN", "SNP_GUEST_SVN_TOO_LOW")).toBe("GUEST_SVN: expected aa, found bb");
    // The manifest's own measurement check (manifest-tee.ts) is not the policy's.
    expect(v("MEASUREMENT", "MANIFEST_MEASUREMENT_NOT_ALLOWED")).toBe("MEASUREMENT: expected aa, found bb");
  });
});
