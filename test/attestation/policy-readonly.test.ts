/**
 * A parsed attestation policy is deep-frozen (registeredParser), and its type says so: changing one
 * in place is a type error (checked by `npx tsc`, through the @ts-expect-error lines) and, in
 * JavaScript, a TypeError.
 */
import { describe, expect, it } from "vitest";
import { parseAttestationPolicy } from "../../attestation/policy.ts";
import { simulatorAttestationPolicy } from "../../client/dev-policy.ts";

describe("parsed attestation policy", () => {
  it("is readonly in its type and frozen at every depth", () => {
    const policy = parseAttestationPolicy(simulatorAttestationPolicy("sim-snp", "5a".repeat(48)));
    const snp = policy.snp;
    if (snp === null) throw new Error("expected an SNP section");
    expect(() => {
      // @ts-expect-error a parsed policy's members are readonly
      policy.maximumVerificationSkewSeconds = 86_400;
    }).toThrow(TypeError);
    expect(() => {
      // @ts-expect-error nested sections too
      snp.debugAllowed = true;
    }).toThrow(TypeError);
    expect(() => {
      // @ts-expect-error and their lists
      snp.allowedVmpls.push(3);
    }).toThrow(TypeError);
    expect(snp.allowedVmpls).not.toContain(3);
  });
});
