/**
 * ROOT_NOT_TRUSTED says "this is Cloister simulator evidence" exactly when the chain really ends at
 * the INSECURE simulator's (default-seed) root, and never for real evidence under a wrong root nor
 * for a look-alike chain (other seed: same simulator names, other keys).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { AttestationError } from "../../attestation/errors.ts";
import { AMD_ROOTS, amdRoot } from "../../attestation/roots/amd.ts";
import { INTEL_ROOTS } from "../../attestation/roots/intel.ts";
import { snpSimulatorHint, tdxSimulatorHint } from "../../attestation/sim/hint.ts";
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
import { parseCertificateBytes, parsePemCertificates } from "../../attestation/x509.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { AT, MEASUREMENT, MRTD, REPORT_DATA, RTMRS } from "./sim-helpers.ts";

const F = new URL("../fixtures/attestation/", import.meta.url);
const read = (p: string) => new Uint8Array(readFileSync(new URL(p, F)));
const HINT = "this is INSECURE Cloister simulator evidence";

async function rootNotTrusted(promise: Promise<unknown>): Promise<string> {
  const error = await rejectionOf(promise, AttestationError);
  expect(error.code).toBe("ROOT_NOT_TRUSTED");
  return error.message;
}

function snp(hierarchy: ReturnType<typeof insecureSimulatedAmdHierarchy>, anchors = AMD_ROOTS) {
  return verifySnpReport({
    report: parseSnpReport(simulateSnpReport(hierarchy, { reportData: REPORT_DATA, measurement: MEASUREMENT })),
    endorsementKey: parseCertificateBytes(hierarchy.vcek.certificate),
    anchors,
    at: AT,
    explainUntrustedRoot: snpSimulatorHint,
  });
}

function tdx(hierarchy: ReturnType<typeof insecureSimulatedIntelHierarchy>) {
  return verifyTdxQuote({
    quote: parseTdxQuote(simulateTdxQuote(hierarchy, { reportData: REPORT_DATA, mrtd: MRTD, rtmrs: RTMRS })),
    anchors: INTEL_ROOTS,
    at: AT,
    explainUntrustedRoot: tdxSimulatorHint,
  });
}

describe("ROOT_NOT_TRUSTED simulator hint: SEV-SNP", () => {
  it("names simulated evidence under the pinned AMD roots, and how to trust it", async () => {
    const message = await rootNotTrusted(snp(insecureSimulatedAmdHierarchy()));
    expect(message).toContain("no trust anchor for it among the 3 given (Milan, Genoa, Turin)");
    expect(message).toContain(`${HINT}, which these trust anchors exclude`);
    expect(message).toContain("trustSimulator: true");
  });

  it("gives no hint for a look-alike chain (simulator names, keys of another seed)", async () => {
    const message = await rootNotTrusted(snp(insecureSimulatedAmdHierarchy("cloister-test-other-seed")));
    expect(message).not.toContain(HINT);
  });

  it("gives no hint for a real Milan VCEK under the wrong roots", async () => {
    const report = parseSnpReport(read("snp/milan-gcp-v5-report.bin"));
    const endorsementKey = parseCertificateBytes(read("snp/milan-gcp-v5-vcek.pem"));
    const at = new Date("2026-01-01T00:00:00Z");
    for (const anchors of [[amdRoot("Genoa"), amdRoot("Turin")], insecureSimulatorAnchors().snp]) {
      const message = await rootNotTrusted(verifySnpReport({ report, endorsementKey, anchors, at }));
      expect(message).toContain("no trust anchor for it");
      expect(message).not.toContain(HINT);
    }
  });
});

describe("ROOT_NOT_TRUSTED simulator hint: TDX", () => {
  it("names a simulated quote under the pinned Intel root", async () => {
    const message = await rootNotTrusted(tdx(insecureSimulatedIntelHierarchy()));
    expect(message).toContain(`${HINT}, which these trust anchors exclude`);
  });

  it("gives no hint for a look-alike root (simulator names, another seed)", async () => {
    expect(await rootNotTrusted(tdx(insecureSimulatedIntelHierarchy("cloister-test-other-seed")))).not.toContain(HINT);
  });

  it("gives no hint for a real quote under the wrong root", async () => {
    const quote = parseTdxQuote(read("tdx/quote-v4-trustee.bin"));
    const at = new Date("2023-07-01T00:00:00Z");
    const platformCa = parsePemCertificates(
      new TextDecoder().decode(read("intel-roots/intel-sgx-pck-platform-ca.pem")),
    )[0];
    if (platformCa === undefined) throw new Error("fixture intel-sgx-pck-platform-ca.pem has no certificate");
    for (const anchors of [[{ root: platformCa, simulated: false }], insecureSimulatorAnchors().tdx]) {
      const message = await rootNotTrusted(verifyTdxQuote({ quote, anchors, at }));
      expect(message).toContain("is not one of the 1 trust anchors");
      expect(message).not.toContain(HINT);
    }
  });
});
