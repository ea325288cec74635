/**
 * The one definition of what a TEE's REPORT_DATA must hold for a Cloister enclave:
 *
 *   REPORT_DATA = SHA-512( "cloister/report-data/v1" ‖ 0x00 ‖ Ed25519 pub (32) ‖ X25519 pub (32) ‖ manifest digest (32) )
 *
 * The domain tag keeps this hash from being confused with any other SHA-512 in the system; every
 * input has a fixed length, so the encoding is unambiguous. The 64-byte result fills SNP
 * REPORT_DATA and TDX REPORTDATA exactly; on Azure CVMs it is the vTPM quote's qualifying data.
 * Nothing else in the code base may compute report data.
 */
import { concatBytes, toHex, utf8 } from "./bytes.ts";
import { constantTimeEqual, sha512 } from "./crypto.ts";
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

/** Throws BINDING_MISMATCH unless `found` equals the REPORT_DATA computed from `inputs`. */
export async function checkReportDataBinding(found: Uint8Array, inputs: BindingInputs): Promise<void> {
  const expected = await computeReportData(inputs);
  if (!constantTimeEqual(found, expected)) {
    throw new AttestationError(
      "binding",
      "BINDING_MISMATCH",
      `REPORT_DATA: expected ${toHex(expected)} (hash of the document's keys and manifest), found ${toHex(found)}`,
    );
  }
}
