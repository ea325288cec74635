/**
 * The attestation policy `cloister up` writes for its simulated enclave (client/dev-policy.ts): the
 * hardening checks it skips say why in words true of it, as the policy `cloister policy init` writes
 * does; a reader of .cloister/policy.json is not told that a command it never ran wrote them.
 */
import { describe, expect, it } from "vitest";
import { isSkip } from "../../attestation/policy.ts";
import { simulatorAttestationPolicy } from "../../client/dev-policy.ts";

describe("cloister up's simulated policy", () => {
  for (const tee of ["sim-snp", "sim-tdx"] as const) {
    it(`${tee}: each skipped check has a reason that does not name policy init`, () => {
      const policy = simulatorAttestationPolicy(tee, "ab".repeat(48));
      const section = tee === "sim-snp" ? policy.snp : policy.tdx;
      const reasons = Object.entries(section ?? {}).flatMap(([field, value]) =>
        isSkip(value) ? [`${field}: ${value.skip.reason}`] : [],
      );
      expect(reasons.length).toBeGreaterThanOrEqual(3);
      expect(reasons.filter((reason) => reason.includes("policy init"))).toEqual([]);
    });
  }
});
