/**
 * The one definition of what a TEE's REPORT_DATA must hold for a Cloister enclave:
 *
 *   REPORT_DATA = SHA-512( "cloister/report-data/v1" ‖ 0x00 ‖ Ed25519 pub (32) ‖ X25519 pub (32) ‖ manifest digest (32) )
 *
 * The domain tag keeps this hash from being confused with any other SHA-512 in the system; every
 * input has a fixed length, so the encoding is unambiguous. The 64-byte result fills SNP
 * REPORT_DATA and TDX REPORTDATA exactly. On Azure CVMs, where the paravisor owns the hardware
 * REPORT_DATA, the binding is the vTPM quote's qualifying data instead, and that holds
 *
 *   extraData = SHA-256(REPORT_DATA)   (32 bytes)
 *
 * since a TPM takes at most 2 + its largest digest (50 bytes on a SHA-384 TPM) as qualifying data
 * (TPM2B_DATA) and refuses 64; 32 bytes fit every TPM 2.0. (The full 64 bytes also go into the HCL
 * report's user-data, which the provider writes; the verifier does not rely on them.)
 * Nothing else in the code base may compute report data.
 */
import { concatBytes, toHex, utf8 } from "./bytes.ts";
import { constantTimeEqual, sha256Sync, sha512 } from "./crypto.ts";
import { AttestationError } from "./errors.ts";

export const REPORT_DATA_DOMAIN_TAG = "cloister/report-data/v1";

export interface BindingInputs {
  /** The enclave's per-boot Ed25519 public key (signs documents, nonce answers, audit records). */
  readonly signingPublicKey: Uint8Array;
  /** The enclave's per-boot X25519 public key (clients seal requests to it). */
  readonly sealingPublicKey: Uint8Array;
  /** SHA-256 of the signed deployment manifest (see manifests/sign.ts `manifestDigest`). */
  readonly manifestDigest: Uint8Array;
}

function checkLength(field: string, value: Uint8Array, expected: number): void {
  if (value.length !== expected) {
    throw new AttestationError(
      "binding",
      "BINDING_BAD_INPUT",
      `${field}: expected ${expected} bytes, found ${value.length}`,
    );
  }
}

/** Computes the 64-byte REPORT_DATA that binds the keys and the manifest to the evidence. */
export async function computeReportData(inputs: BindingInputs): Promise<Uint8Array> {
  checkLength("signingPublicKey", inputs.signingPublicKey, 32);
  checkLength("sealingPublicKey", inputs.sealingPublicKey, 32);
  checkLength("manifestDigest", inputs.manifestDigest, 32);
  return sha512(
    concatBytes(
      utf8(REPORT_DATA_DOMAIN_TAG),
      Uint8Array.of(0),
      inputs.signingPublicKey,
      inputs.sealingPublicKey,
      inputs.manifestDigest,
    ),
  );
}

/**
 * The vTPM quote qualifying data (TPMS_ATTEST extraData) that binds `reportData` on an Azure CVM:
 * SHA-256 of the 64-byte REPORT_DATA.
 */
export function azureQuoteQualifyingData(reportData: Uint8Array): Uint8Array {
  checkLength("REPORT_DATA", reportData, 64);
  return sha256Sync(reportData);
}

/**
 * Where verified evidence carries the binding, and the bytes found there: `report-data` is the
 * hardware REPORT_DATA itself (SNP REPORT_DATA, TDX REPORTDATA); `azure-vtpm-quote` is the Azure
 * vTPM quote's extraData, which holds azureQuoteQualifyingData(REPORT_DATA).
 */
export interface BoundValue {
  readonly carrier: "report-data" | "azure-vtpm-quote";
  readonly value: Uint8Array;
}

/**
 * Throws BINDING_MISMATCH unless `found` holds the REPORT_DATA computed from `inputs` (for Azure:
 * its SHA-256); returns that REPORT_DATA.
 */
export async function checkReportDataBinding(found: BoundValue, inputs: BindingInputs): Promise<Uint8Array> {
  const expected = await computeReportData(inputs);
  if (found.carrier === "azure-vtpm-quote") {
    const qualifying = azureQuoteQualifyingData(expected);
    if (!constantTimeEqual(found.value, qualifying)) {
      throw new AttestationError(
        "binding",
        "BINDING_MISMATCH",
        `vTPM quote extraData: expected SHA-256(REPORT_DATA) ${toHex(qualifying)} (REPORT_DATA ${toHex(expected)}, the hash of the document's keys and manifest), found ${toHex(found.value)} (${found.value.length} bytes)`,
      );
    }
  } else if (!constantTimeEqual(found.value, expected)) {
    throw new AttestationError(
      "binding",
      "BINDING_MISMATCH",
      `REPORT_DATA: expected ${toHex(expected)} (hash of the document's keys and manifest), found ${toHex(found.value)}`,
    );
  }
  return expected;
}
