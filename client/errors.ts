/**
 * Client errors, grouped by what the caller must do (tinfoil-js style):
 *   configuration → fix the code or the policy file;   transport → retry later;
 *   attestation   → stop: the enclave is not the one the policy accepts;
 *   integrity     → stop: the host or network altered, dropped or replayed data;
 *   policy        → the enclave refused the request under its attested policy.
 * Messages never contain prompts, answers, keys or nonces.
 */
export type ClientErrorKind = "configuration" | "transport" | "attestation" | "integrity" | "policy";

export class ClientError extends Error {
  readonly kind: ClientErrorKind;
  readonly code: string;
  /** For attestation errors: the failed stage (verify, appraise, binding, document, nonce, manifest). */
  readonly stage: string | undefined;

  constructor(kind: ClientErrorKind, code: string, message: string, options?: { cause?: unknown; stage?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ClientError";
    this.kind = kind;
    this.code = code;
    this.stage = options?.stage;
  }
}
