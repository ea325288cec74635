/**
 * attestation/sim/default-milan.ts: the enclave's sim-snp evidence source signs with the default
 * hierarchy's VCEK, and the simulator's anchors hold its ARK, ASK and ASVK, without generating the
 * hierarchy's RSA keys (about 3 s of blocked event loop in each process): the same report and
 * certificates, byte for byte, as the derived hierarchy's. The evidence goes through the production
 * parser and verifier, which accept it under the simulator's anchors only; a policy that does not
 * trust the simulator refuses it.
 */

import { base64url } from "jose";
import { describe, expect, it, vi } from "vitest";
import { appraise } from "../../attestation/appraise.ts";
import { AMD_ROOTS } from "../../attestation/roots/amd.ts";
import {
  insecureSimulatedAmdHierarchy,
  insecureSimulatorAnchors,
  simulateSnpReport,
} from "../../attestation/sim/index.ts";
import { generateInsecureRsaKey } from "../../attestation/sim/rsa.ts";
import { parseSnpReport } from "../../attestation/snp/parse.ts";
import { verifySnpReport } from "../../attestation/snp/verify.ts";
import { parseCertificate } from "../../attestation/x509.ts";
import { createEvidenceSource, simulatedMeasurement } from "../../enclave/tee.ts";
import { codeOf } from "../helpers/attestation.ts";
import { AT, policy, REPORT_DATA, snpPolicyJson } from "./sim-helpers.ts";

// Counts RSA key generations: the enclave's source must make none.
vi.mock("../../attestation/sim/rsa.ts", async (importOriginal) => {
  const original = await importOriginal<typeof import("../../attestation/sim/rsa.ts")>();
  return { ...original, generateInsecureRsaKey: vi.fn(original.generateInsecureRsaKey) };
});

describe("the default Milan hierarchy kept as bytes", () => {
  it("gives the enclave's evidence and the simulator's anchors without RSA key generation, byte for byte as derived", async () => {
    const source = await createEvidenceSource("sim-snp");
    const evidence = await source.collect(REPORT_DATA);
    const [anchor] = insecureSimulatorAnchors().snp;
    expect(generateInsecureRsaKey).not.toHaveBeenCalled();

    const hierarchy = insecureSimulatedAmdHierarchy();
    expect(generateInsecureRsaKey).toHaveBeenCalledTimes(3);
    const measurement = await simulatedMeasurement("sim-snp");
    expect(evidence).toEqual({
      type: "sev-snp",
      report: base64url.encode(simulateSnpReport(hierarchy, { reportData: REPORT_DATA, measurement })),
      endorsementKey: base64url.encode(hierarchy.vcek.certificate),
    });
    expect({ product: anchor?.product, simulated: anchor?.simulated }).toEqual({ product: "Milan", simulated: true });
    expect([anchor?.ark.der, anchor?.ask.der, anchor?.asvk?.der]).toEqual([
      hierarchy.ark,
      hierarchy.ask,
      hierarchy.asvk,
    ]);
  });

  it("verifies under the simulator's anchors only, and a policy that does not trust the simulator refuses it", async () => {
    const evidence = await (await createEvidenceSource("sim-snp")).collect(REPORT_DATA);
    if (evidence.type !== "sev-snp") throw new Error(`expected sev-snp evidence, found ${evidence.type}`);
    const measurement = await simulatedMeasurement("sim-snp");
    const verify = (anchors: typeof AMD_ROOTS) =>
      verifySnpReport({
        report: parseSnpReport(base64url.decode(evidence.report)),
        endorsementKey: parseCertificate(base64url.decode(evidence.endorsementKey)),
        anchors,
        at: AT,
      });
    expect(await codeOf(verify(AMD_ROOTS))).toBe("ROOT_NOT_TRUSTED");
    const verified = await verify(insecureSimulatorAnchors().snp);
    expect(verified.simulated).toBe(true);
    const snp = snpPolicyJson({ measurements: [Buffer.from(measurement).toString("hex")] });
    const options = { now: AT, expectedReportData: REPORT_DATA };
    expect(appraise(verified, policy({ snp }), options).ok).toBe(true);
    const refused = appraise(verified, policy({ snp, trustSimulator: false }), options);
    expect(refused.ok).toBe(false);
    expect(refused.violations.map((v) => v.code)).toEqual(["SIMULATED_EVIDENCE_NOT_TRUSTED"]);
  });
});
