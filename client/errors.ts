/**
 * Client errors, grouped by what the caller must do (tinfoil-js style):
 *   configuration → fix the code or the policy file;   transport → retry later;
 *   attestation   → stop: the enclave is not the one the policy accepts;
 *   integrity     → stop: the host or network altered, dropped or replayed data;
 *   policy        → the enclave refused the request under its attested policy.
 * Messages never contain prompts, answers, keys or nonces.
 */
export type ClientErrorKind = "configuration" | "transport" | "attestation" | "integrity" | "policy";

/**
 * How to find and open one request's audit record: `requestIdHash` names the record in the log the
 * host stores, `opening` (hex, from the enclave, sealed to this client) recomputes its promptHmac
 * and responseHmac (`cloister audit find`). Keep the opening private: with it and the log, anyone
 * can test guesses of the prompt.
 */
export interface AuditReference {
  readonly requestIdHash: string;
  readonly opening: string;
}

export class ClientError extends Error {
  readonly kind: ClientErrorKind;
  readonly code: string;
  /** For attestation errors: the failed stage (verify, appraise, binding, document, nonce, manifest). */
  readonly stage: string | undefined;
  readonly #audit: AuditReference | null;

  constructor(
    kind: ClientErrorKind,
    code: string,
    message: string,
    options?: { cause?: unknown; stage?: string; audit?: AuditReference | null },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ClientError";
    this.kind = kind;
    this.code = code;
    this.stage = options?.stage;
    this.#audit = options?.audit ?? null;
  }

  /**
   * For a request the enclave refused or failed after recording it (POLICY_BLOCKED, PII_BLOCKED, an
   * inference error): how to find and open its audit record, when the record commits to the prompt.
   * A getter over a private field, so logging or serialising the error does not print the opening.
   */
  get audit(): AuditReference | null {
    return this.#audit;
  }
}
