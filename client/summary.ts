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

/**
 * A sealed-at-rest model (the attested manifest's model.sealedAtRest and keyId): the weights on
 * the host's disk are ciphertext, and the operator's key broker releases the key only to an
 * enclave whose attestation passes its policy. The client sees what the manifest promises.
 */
export function modelNote(enclave: VerifiedEnclave): string {
  const model = (enclave.manifest.manifest as { model?: { sealedAtRest?: unknown; keyId?: unknown } } | null)?.model;
  return model?.sealedAtRest === true && typeof model.keyId === "string"
    ? `  (sealed at rest under key "${model.keyId}": the key broker releases it only to an attested enclave)`
    : "";
}
