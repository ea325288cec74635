/**
 * Naming simulated SEV-SNP evidence costs no simulated key generation: the VCEK is checked against
 * the simulator's ASK bytes (attestation/sim/names.ts), so a look-alike chain sent to the key
 * broker or a client never makes it derive the simulated AMD hierarchy (about a second of blocked
 * event loop).
 */
import { base64url } from "jose";
import { describe, expect, it, vi } from "vitest";
import { parseDocumentEvidence } from "../../attestation/evidence.ts";
import { insecureSimulatedAmdHierarchy } from "../../attestation/sim/amd.ts";
import { insecureSimulatorAnchors } from "../../attestation/sim/anchors.ts";
import { simulateSnpReport } from "../../attestation/sim/snp-report.ts";
import { isInsecureSimulatorEvidence } from "../../client/policy.ts";
import { MEASUREMENT, REPORT_DATA } from "../attestation/sim-helpers.ts";

vi.mock("../../attestation/sim/anchors.ts", async (importOriginal) => {
  const original = await importOriginal<typeof import("../../attestation/sim/anchors.ts")>();
  return { ...original, insecureSimulatorAnchors: vi.fn(original.insecureSimulatorAnchors) };
});

describe("isInsecureSimulatorEvidence on SEV-SNP evidence", () => {
  it("tells the simulator's VCEK from a look-alike's without deriving the simulator's anchors", async () => {
    const evidenceOf = (hierarchy: ReturnType<typeof insecureSimulatedAmdHierarchy>) =>
      parseDocumentEvidence({
        type: "sev-snp",
        report: base64url.encode(simulateSnpReport(hierarchy, { reportData: REPORT_DATA, measurement: MEASUREMENT })),
        endorsementKey: base64url.encode(hierarchy.vcek.certificate),
      });
    expect(await isInsecureSimulatorEvidence(evidenceOf(insecureSimulatedAmdHierarchy()))).toBe(true);
    expect(
      await isInsecureSimulatorEvidence(evidenceOf(insecureSimulatedAmdHierarchy("cloister-test-other-seed"))),
    ).toBe(false);
    expect(vi.mocked(insecureSimulatorAnchors)).not.toHaveBeenCalled();
  });
});
