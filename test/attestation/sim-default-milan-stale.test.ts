/**
 * attestation/sim/default-milan.ts refuses to sign with a kept VCEK certificate that does not certify
 * the derived key: here the simulated platform's TCB changed (so did the key derived for it) and the
 * kept bytes were not updated.
 */
import { describe, expect, it, vi } from "vitest";
import { insecureSimulatedDefaultSigner } from "../../attestation/sim/default-milan.ts";

vi.mock("../../attestation/sim/amd.ts", async (importOriginal) => {
  const original = await importOriginal<typeof import("../../attestation/sim/amd.ts")>();
  return {
    ...original,
    simulatedPlatform: (...args: Parameters<typeof original.simulatedPlatform>) => ({
      ...original.simulatedPlatform(...args),
      defaultTcb: original.simulatedPlatform(...args).defaultTcb + 1n,
    }),
  };
});

describe("insecureSimulatedDefaultSigner", () => {
  it("refuses a kept VCEK certificate that does not certify the derived key", () => {
    expect(() => insecureSimulatedDefaultSigner()).toThrow(
      "simulated VCEK: expected the kept certificate (INSECURE_SIMULATOR_MILAN_VCEK_BASE64) to certify the key derived for the default seed's Milan platform, found another key: update the bytes",
    );
  });
});
