/**
 * What a TEE evidence provider hands back: the raw bytes of the hardware's answer to one request
 * with a given 64-byte REPORT_DATA, before anything has been parsed or verified. Providers run
 * inside the enclave; verification happens elsewhere (attestation/<tee>/verify.ts and
 * attestation/azure/verify.ts) on the bytes these types carry.
 */
import type { SnpCertificateTable } from "./snp-cert-table.ts";

/** The TEE families a provider can produce evidence for. */
export type TeeKind = "snp" | "tdx" | "azure-snp" | "azure-tdx";

export const TEE_KINDS: readonly TeeKind[] = ["snp", "tdx", "azure-snp", "azure-tdx"];

/** REPORT_DATA is always 64 bytes (SNP REPORT_DATA, TDX REPORTDATA, vTPM qualifying data). */
export const REPORT_DATA_SIZE = 64;

/** An SEV-SNP attestation report (1184 bytes) and the host-provided certificate table, if any. */
export interface RawSnpEvidence {
  readonly kind: "snp";
  readonly report: Uint8Array;
  /** Parsed from configfs-tsm `auxblob`; empty when the host provided no certificates. */
  readonly certificates: SnpCertificateTable;
  readonly source: "configfs-tsm";
}

/** An Intel TDX quote (v4 or v5) as produced by the quoting enclave / quote generation service. */
export interface RawTdxEvidence {
  readonly kind: "tdx";
  readonly quote: Uint8Array;
  readonly source: "configfs-tsm";
}

/**
 * Azure confidential VM evidence: the HCL report read from the vTPM NV index and a vTPM quote
 * over the 24 SHA-256 PCRs whose qualifying data is the caller's REPORT_DATA. `json` is the
 * Cloister Azure evidence JSON (docs/platforms.md), exactly as a verifier reads it.
 */
export interface RawAzureEvidence {
  readonly kind: "azure-snp" | "azure-tdx";
  readonly json: string;
  readonly source: "azure-vtpm";
}

export type RawEvidence = RawSnpEvidence | RawTdxEvidence | RawAzureEvidence;

/** One way of asking the hardware for evidence bound to `reportData` (exactly 64 bytes). */
export interface TeeEvidenceProvider {
  readonly kind: TeeKind;
  getEvidence(reportData: Uint8Array): Promise<RawEvidence>;
}
