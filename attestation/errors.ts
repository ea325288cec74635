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

export class AttestationError extends Error {
  readonly code: string;
  readonly stage: AttestationStage;

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
