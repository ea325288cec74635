/**
 * Simulated evidence's facts for the manifest's tee check (attestation/manifest-tee.ts), parsed
 * from real-format simulated reports and quotes: a default that passes the dev manifest, and options
 * to set a measurement, a TCB or a flag the manifest may refuse.
 */

import { base64url } from "jose";
import { type ManifestTeeEvidence, manifestTeeEvidenceOfDocument } from "../../attestation/manifest-tee.ts";
import {
  insecureSimulatedAmdHierarchy,
  insecureSimulatedIntelHierarchy,
  type SimulatedSnpReportOptions,
  type SimulatedTdxQuoteOptions,
  simulateSnpReport,
  simulateTdxQuote,
} from "../../attestation/sim/index.ts";

export const SIM_MEASUREMENT = Uint8Array.from({ length: 48 }, (_, i) => (0xa0 + i) & 0xff);

export function simulatedSnpTeeEvidence(options: Partial<SimulatedSnpReportOptions> = {}): ManifestTeeEvidence {
  const hierarchy = insecureSimulatedAmdHierarchy();
  const report = simulateSnpReport(hierarchy, {
    reportData: new Uint8Array(64),
    measurement: SIM_MEASUREMENT,
    ...options,
  });
  return manifestTeeEvidenceOfDocument({
    type: "sev-snp",
    report: base64url.encode(report),
    endorsementKey: base64url.encode(hierarchy.vcek.certificate),
  });
}

export function simulatedTdxTeeEvidence(options: Partial<SimulatedTdxQuoteOptions> = {}): ManifestTeeEvidence {
  const rtmrs = [0, 1, 2, 3].map(() => new Uint8Array(48)) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  const quote = simulateTdxQuote(insecureSimulatedIntelHierarchy(), {
    reportData: new Uint8Array(64),
    mrtd: SIM_MEASUREMENT,
    rtmrs,
    ...options,
  });
  return manifestTeeEvidenceOfDocument({ type: "tdx", quote: base64url.encode(quote) });
}
