/** Wording shared by the CLI and the browser page when they show what was verified. */
import type { VerifiedEnclave } from "../attestation/document.ts";

/**
 * On Azure the hardware report is the paravisor's (HCL): its measurement is Microsoft's firmware,
 * not the guest OS, which the vTPM PCRs in the policy's `azure.pcrs` cover instead.
 */
export function measurementNote(enclave: VerifiedEnclave): string {
  return enclave.tee === "azure-snp" || enclave.tee === "azure-tdx"
    ? "  (Azure paravisor's; the guest OS is covered by the pinned vTPM PCRs)"
    : "";
}
