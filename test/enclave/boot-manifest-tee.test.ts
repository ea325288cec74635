/**
 * The enclave refuses at boot a manifest whose tee section its own launch does not meet
 * (BOOT_TEE_NOT_ALLOWED, enclave/service.ts): the simulator's evidence against a manifest listing
 * another measurement, a TCB minimum above its own, a flag it breaks. The message names the manifest
 * field, the evidence field, the expected and the found value; the dev manifest still boots.
 */
import { describe, expect, it } from "vitest";
import { EnclaveError } from "../../enclave/errors.ts";
import { createEvidenceSource } from "../../enclave/tee.ts";
import { DEV_MANIFEST, type ManifestOverrides } from "../../manifests/dev.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { bootWith, ScriptedEngine } from "./helpers.ts";

const OTHER = "b".repeat(96);

const boot = (tee: NonNullable<ManifestOverrides["tee"]>, mode: "sim-snp" | "sim-tdx" = "sim-snp") =>
  bootWith(new ScriptedEngine(() => []), 0, { tee }, mode);

const refusal = async (tee: NonNullable<ManifestOverrides["tee"]>, mode: "sim-snp" | "sim-tdx" = "sim-snp") =>
  rejectionOf(boot(tee, mode), EnclaveError);

describe("the enclave checks its own evidence against the manifest's tee section at boot", () => {
  it("boots under the dev manifest's section on both simulators", async () => {
    for (const mode of ["sim-snp", "sim-tdx"] as const) {
      const enclave = await boot({}, mode);
      await enclave.close();
    }
  });

  it("refuses a manifest listing a measurement other than its own, naming field, expected and found", async () => {
    for (const [mode, field] of [
      ["sim-snp", "MEASUREMENT"],
      ["sim-tdx", "MRTD"],
    ] as const) {
      const own = (await createEvidenceSource(mode)).measurement;
      const error = await refusal({ allowedMeasurements: [OTHER] }, mode);
      expect([error.code, error.message]).toEqual([
        "BOOT_TEE_NOT_ALLOWED",
        `boot: this launch's evidence does not meet the manifest: manifest tee.allowedMeasurements: ${field} expected ${OTHER}, found ${own}`,
      ]);
    }
  });

  it("refuses a manifest whose minimum TCB is above its own", async () => {
    const snp = { ...(DEV_MANIFEST.tee.minimumTcb.snp as object), bootloader: 255 };
    const error = await refusal({ minimumTcb: { snp } });
    expect(error.code).toBe("BOOT_TEE_NOT_ALLOWED");
    expect(error.message).toMatch(
      /manifest tee\.minimumTcb\.snp: REPORTED_TCB\.bootloader expected >= 255, found \d+$/,
    );
    const tdx = { ...(DEV_MANIFEST.tee.minimumTcb.tdx as object), teeTcbSvn: "ff".repeat(16) };
    const tdxError = await refusal({ minimumTcb: { tdx } }, "sim-tdx");
    expect(tdxError.message).toContain("manifest tee.minimumTcb.tdx: TEE_TCB_SVN[0] expected >= 255, found ");
  });

  it("refuses a manifest whose policy flags its launch breaks (SMT, set on the simulated SNP guest)", async () => {
    // SNP only: a manifest listing a TDX platform cannot say smtAllowed false (manifests/schema.ts).
    const snpOnly = { platforms: ["sim-snp" as const], minimumTcb: { tdx: null } };
    const error = await refusal({ ...snpOnly, policyFlags: { smtAllowed: false } });
    expect([error.code, error.message]).toEqual([
      "BOOT_TEE_NOT_ALLOWED",
      "boot: this launch's evidence does not meet the manifest: manifest tee.policyFlags: POLICY.SMT expected clear (smtAllowed: false), found set; " +
        "manifest tee.policyFlags: PLATFORM_INFO.SMT_EN expected clear (smtAllowed: false), found set",
    ]);
  });
});
