/**
 * `--tee auto` on a machine where detectTee finds nothing: the refusal names each place it looked
 * (the configfs-tsm directory, the legacy devices, what marks an Azure confidential VM) and the way
 * to learn which one is missing, the explicit --tee, whose evidence source says so; never the simulator.
 */
import { describe, expect, it } from "vitest";
import { AttestationError } from "../../attestation/errors.ts";
import { detectTeeMode } from "../../enclave/tee.ts";
import { rejectionOf } from "../helpers/rejections.ts";

describe("detectTeeMode", () => {
  it("refuses a machine with no TEE (TEE_NOT_DETECTED), naming where it looked and the --tee that says why", async () => {
    const logged: string[] = [];
    const error = await rejectionOf(
      detectTeeMode(
        (line) => logged.push(line),
        async () => null,
      ),
      AttestationError,
    );
    expect(error.code).toBe("TEE_NOT_DETECTED");
    expect(error.message).toBe(
      "--tee auto: expected an SEV-SNP or TDX guest, found none (no configfs-tsm provider under /sys/kernel/config/tsm/report, no /dev/sev-guest or /dev/tdx_guest, no Azure confidential VM: DMI vendor Microsoft Corporation, /dev/tpmrm0 or /dev/tpm0, and the HCL report's NV index 0x01400001 read with tpm2-tools); pass this VM's --tee (snp, tdx, azure-snp, azure-tdx) to have its evidence source name what is missing, or --tee sim-snp or sim-tdx to run the insecure simulator",
    );
    expect(logged).toEqual([]);
  });

  it("returns and logs what detectTee found", async () => {
    const logged: string[] = [];
    await expect(
      detectTeeMode(
        (line) => logged.push(line),
        async () => "azure-tdx",
      ),
    ).resolves.toBe("azure-tdx");
    expect(logged).toEqual(["--tee auto: detected azure-tdx"]);
  });
});
