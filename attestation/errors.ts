/**
 * Errors of the attestation code. Every failure carries a stable `code` and the `stage` that
 * failed (parse → verify → appraise → binding → document → nonce → manifest), so a client can say
 * exactly why it refused an enclave. Messages name the field, the expected and the found value;
 * they never contain keys, nonces or secrets (public measurements and digests are fine).
 */

export type AttestationStage =
  | "configuration"
  | "evidence"
  | "parse"
  | "verify"
  | "appraise"
  | "binding"
  | "document"
  | "nonce"
  | "manifest";

/** What verified evidence says an enclave is: public values, fit for a log. */
export interface VerifiedEvidenceIdentity {
  readonly tee: string;
  readonly simulated: boolean;
  readonly measurement: string;
}

export class AttestationError extends Error {
  readonly code: string;
  readonly stage: AttestationStage;
  /**
   * On a failure after the evidence verified (appraisal and later stages): what the enclave is, set
   * by the verifier that verified it, so a caller can log it without verifying the evidence again
   * (the key broker does: how an operator learns the measurement of an image its policy refused).
   */
  evidence: VerifiedEvidenceIdentity | undefined;

  constructor(stage: AttestationStage, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AttestationError";
    this.code = code;
    this.stage = stage;
  }
}

/** Bytes that do not have the structure of the format (sizes, reserved fields, enums, DER). */
export class ParseError extends AttestationError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super("parse", code, message, options);
    this.name = "ParseError";
  }
}

/** A signature, certificate chain, validity window or collateral that does not verify. */
export class VerifyError extends AttestationError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super("verify", code, message, options);
    this.name = "VerifyError";
  }
}

/** Bad input from the caller: unusable policy, missing trust anchors, wrong option. */
export class ConfigurationError extends AttestationError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super("configuration", code, message, options);
    this.name = "ConfigurationError";
  }
}

/**
 * Obtaining evidence from the TEE failed (inside the enclave): missing kernel interface, no
 * provider driver, permission denied, a concurrent writer, a failing TPM command.
 */
export class EvidenceError extends AttestationError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super("evidence", code, message, options);
    this.name = "EvidenceError";
  }
}
