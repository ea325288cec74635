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
 * can test guesses of the prompt. So it is a getter over a private field: code that asks for
 * `audit.opening` gets it, but JSON.stringify, util.inspect, object spread and Object.keys see only
 * `requestIdHash` (an answer or error logged whole does not print it). A caller that means to write
 * the opening down (`chat --json`) names it explicitly.
 */
export class AuditReference {
  readonly requestIdHash: string;
  readonly #opening: string;

  constructor(requestIdHash: string, opening: string) {
    this.requestIdHash = requestIdHash;
    this.#opening = opening;
  }

  get opening(): string {
    return this.#opening;
  }
}

/**
 * Who said what a ClientError reports. "enclave": an error frame sealed by the attested enclave and
 * authenticated by this client, so its code is the enclave's word; "host": an HTTP error answer of
 * the untrusted host (its code is only the host's claim); "client": this SDK's own finding (a bad
 * argument, a failed verification, a broken stream, an unreachable host).
 */
export type ClientErrorOrigin = "enclave" | "host" | "client";

export class ClientError extends Error {
  readonly kind: ClientErrorKind;
  readonly code: string;
  /** For attestation errors: the failed stage (verify, appraise, binding, document, nonce, manifest). */
  readonly stage: string | undefined;
  readonly origin: ClientErrorOrigin;
  /**
   * For an argument the SDK refused before sending (BAD_OPTION, BAD_MESSAGES, BAD_PROMPT): which
   * one, as the SDK names it (`maxTokens`, `stop[1]`, `messages[0].content`, `prompt`).
   */
  readonly field: string | undefined;
  /**
   * For a host's refusal that said when to try again (RATE_LIMITED, HOST_BUSY…): its `Retry-After`
   * in seconds, when it was a whole number of seconds (an HTTP date or anything else is dropped).
   */
  readonly retryAfterSeconds: number | undefined;
  /** For an HTTP error answer of the host (origin "host", HOST_REDIRECT): its status (0: a browser's redirect). */
  readonly status: number | undefined;
  readonly #audit: AuditReference | null;

  constructor(
    kind: ClientErrorKind,
    code: string,
    message: string,
    options?: {
      cause?: unknown;
      stage?: string;
      origin?: ClientErrorOrigin;
      field?: string;
      audit?: AuditReference | null;
      retryAfterSeconds?: number;
      status?: number;
    },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ClientError";
    this.kind = kind;
    this.code = code;
    this.stage = options?.stage;
    this.origin = options?.origin ?? "client";
    this.field = options?.field;
    this.retryAfterSeconds = options?.retryAfterSeconds;
    this.status = options?.status;
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
