/**
 * The Cloister client SDK. `connect` fetches the enclave's attestation document through the host,
 * challenges it with a fresh nonce, and verifies everything (attestation/document.ts) before it
 * returns a Session; no prompt can be sent any other way. A Session seals every request to the
 * attested X25519 key and checks every response frame (sealed/). When the enclave restarts (its
 * keys change) the first request is refused with WRONG_ENCLAVE_KEY; the session then re-attests
 * once, fully, and resends. Arguments are checked before anything is sent: the URL (no user name or
 * password), the API key, and messages, prompt and options against the enclave's own limits
 * (sealed/request-limits.ts).
 *
 * Platform-neutral: fetch, WebCrypto, jose, tweetnacl (the browser client reuses it).
 */
import { base64url } from "jose";
import { bytesEqual, toHex, utf8 } from "../attestation/bytes.ts";
import { type AttestationCollateral, parseAttestationCollateral } from "../attestation/collateral.ts";
import { randomBytes, sha256 } from "../attestation/crypto.ts";
import type { VerifiedEnclave } from "../attestation/document.ts";
import { DOCUMENT_MAX_LENGTH, unverifiedDocumentSealingKey } from "../attestation/document-key.ts";
import { AttestationError } from "../attestation/errors.ts";
import { describeUrlText } from "../attestation/url-text.ts";
import { type AuditCheckpointProblem, auditRequestIdHash, checkAuditCheckpoint } from "../enclave/pipeline/audit.ts";
import { ENCLAVE_KEY_ID_HEX } from "../sealed/envelope.ts";
import {
  enclaveKeyId,
  FRAME_ERROR_KINDS,
  openResponseFrames,
  type PreparedRequestKey,
  prepareRequestKey,
  type Redactions,
  type RequestKind,
  type ResponseUsage,
  SealedError,
  sealRequest,
  textHash,
  verifyReceipt,
} from "../sealed/index.ts";
import { DEFAULT_REPLAY_WINDOW_MS } from "../sealed/replay.ts";
import { CHAT_ROLES, REQUEST_LIMITS } from "../sealed/request-limits.ts";
import { AuditReference, ClientError, type ClientErrorKind } from "./errors.ts";
import { anchorsForPolicy, type ClientPolicy, parsedClientPolicy, verifyWithClientPolicy } from "./policy.ts";
import { attestedPii } from "./summary.ts";
import {
  defaultTransport,
  fetchTransport,
  ResponseTooLargeError,
  type Transport,
  type TransportResponse,
} from "./transport.ts";

export { FRAME_ERROR_KINDS, type Redactions, textHash, verifyReceipt } from "../sealed/index.ts";
/** What every SDK call throws (kind, code, origin, stage, field, audit…), as client/browser.ts exports it too. */
export { AuditReference, ClientError, type ClientErrorKind, type ClientErrorOrigin } from "./errors.ts";

export interface ConnectOptions {
  /** The host's base URL, e.g. http://127.0.0.1:8080 (no user name or password: the API key is the credential). */
  readonly url: string;
  readonly policy: ClientPolicy;
  /** The host's API key (sent as `Authorization: Bearer`): required, printable ASCII. */
  readonly apiKey: string;
  /**
   * Where the API key came from, as messages should name it (a CLI's `--api-key-file key.txt` or
   * `CLOISTER_API_KEY`): a malformed key is then named by it instead of by `apiKey`, and every
   * refusal of the key by the host (at connect, on a request, on a re-verification) says that the
   * key sent came from there. Never the key itself.
   */
  readonly apiKeySource?: string;
  /** Send requests through this fetch (tests, other runtimes). Default: node:http on Node.js, fetch elsewhere. */
  readonly fetch?: typeof fetch;
  /** Send requests through this transport (takes precedence over `fetch`). */
  readonly transport?: Transport;
  readonly now?: () => Date;
  /**
   * A secret (at least 16 characters) shared by this caller's own sessions that may share the
   * enclave's KV cache; never send it anywhere else. Default: a random scope per session.
   */
  readonly cacheScope?: string;
  /**
   * Verify the enclave again, fully (fresh nonce, whole policy), before the first request sent this
   * long after the last verification: a long-lived session (the proxy) then notices within this
   * time an enclave, certificate or document that no longer passes. Default one hour; Infinity: only
   * when the enclave's keys change.
   */
  readonly reattestAfterMs?: number;
  /**
   * Longest one attestation request (document, challenge, audit checkpoint) may take, headers and
   * body: the host is not trusted to answer at all. Default 60 s.
   */
  readonly attestationTimeoutMs?: number;
  /**
   * Called after each successful verification (connect, and every re-verification) with the
   * enclave just verified and the one verified before it (null the first time, or after a failed
   * verification): e.g. to log, without content, that the session now seals to another enclave.
   * What it throws is ignored.
   */
  readonly onVerified?: (enclave: VerifiedEnclave, previous: VerifiedEnclave | null) => void;
  /**
   * Aborting it ends connect at once with ABORTED (a transport error): the attestation request under
   * way is cut, nothing is sent after the abort, and nothing of the verification is kept (no
   * session, document or request key; `onVerified` is not called), also when the abort comes while
   * the evidence is being verified. Already aborted: nothing is sent. It ends with connect: the
   * session's later requests and re-verifications take their own (GenerationOptions.signal).
   */
  readonly signal?: AbortSignal;
  /**
   * The enclave key id (32 lower-case hex digits: `SHA-256(X25519 key)[0..16]`, the sealed
   * envelope's routing id; `cloister attest` prints it, a pool host logs each member's) of the one
   * enclave boot to verify: an operator checking a given member of a pool (its audit checkpoint).
   * The document is asked for that member (`GET /v1/attestation?enclave=`), and a document of
   * another key id is refused (ENCLAVE_KEY_ID_MISMATCH, attestation, stage document) before the
   * nonce question is sent; so at every re-verification, which then fails once that boot is gone.
   * Default: the enclave the host chooses.
   */
  readonly enclaveKeyId?: string;
}

/** How long a session uses one verification before it verifies the enclave again (ConnectOptions). */
export const DEFAULT_REATTEST_AFTER_MS = 60 * 60 * 1000;

export type ChatMessage = { readonly role: (typeof CHAT_ROLES)[number]; readonly content: string };

/**
 * How to generate. Checked before anything is sealed, against the limits the enclave applies
 * (sealed/request-limits.ts): a value out of range is a configuration error (BAD_OPTION), not a
 * round trip ending in REQUEST_INVALID.
 */
export interface GenerationOptions {
  readonly maxTokens?: number;
  readonly temperature?: number;
  readonly topP?: number;
  readonly seed?: number;
  readonly stop?: readonly string[];
  /**
   * The request's signal: aborting it ends the request at once with ABORTED, also while it waits
   * for a re-verification of the enclave (which goes on for the other requests waiting on it).
   */
  readonly signal?: AbortSignal;
  /**
   * The model the caller means to ask (the proxy: the `model` the app named). Checked against the
   * enclave the request is about to be sealed to, after any re-verification (stale, or the
   * enclave's key changed), so an answer never comes from another model than the caller named:
   * another one is MODEL_MISMATCH, and nothing is sealed or sent. `service` is the manifest's
   * service name, `file` its model file.
   */
  readonly expectModel?: { readonly service: string; readonly file: string };
}

export type ChatEvent =
  | { readonly type: "text"; readonly text: string }
  | {
      readonly type: "done";
      readonly usage: ResponseUsage;
      readonly finishReason: "stop" | "length";
      /**
       * The enclave's signed receipt for this answer (sealed/receipt.ts), already checked: signed by
       * the attested key, naming this request, this answer, the attested model, manifest and
       * document. Keep it to prove later what the enclave answered; `verifyReceipt` checks it offline.
       */
      readonly receipt: string;
      /**
       * How to find and open this request's audit record (null when the manifest's audit keeps no
       * prompt or answer commitments); see AuditReference. A refused request's ClientError has it too.
       */
      readonly audit: AuditReference | null;
      /**
       * The PII kinds the enclave replaced in the prompt before the model saw it (manifest PII mode
       * "redact"), with how many of each, e.g. `{ email: 1 }`; null when it replaced nothing;
       * undefined when the enclave did not say (a build from before the final frame's `redacted`):
       * never read that as nothing. The answer is to the redacted prompt. Sealed to this client only;
       * kinds and counts, never the text; each kind one the attested manifest redacts (else
       * REDACTIONS_NOT_ATTESTED).
       */
      readonly redacted: Redactions | undefined;
    };

/** A signed head of the enclave's audit log, fresh (it carries this session's nonce) and verified. */
export interface VerifiedAuditCheckpoint {
  /** Records the enclave has written this boot: a complete stored log has at least this many. */
  readonly count: number;
  /** SHA-256 of record `count - 1` (the genesis value when count is 0), hex. */
  readonly lastRecordHash: string;
  /** The enclave's clock when it signed. */
  readonly time: string;
  /** The signed line, as `cloister audit verify --checkpoint` reads it. */
  readonly line: string;
  /** The attested Ed25519 key that signed it and every record of this boot (hex). */
  readonly signingPublicKey: string;
}

/** A whole answer (`complete`): its text and what the stream's final `done` event carries. */
export interface Completion {
  readonly text: string;
  readonly usage: ResponseUsage;
  readonly finishReason: "stop" | "length";
  /** The enclave's signed receipt for this answer, already checked; see ChatEvent `done`. */
  readonly receipt: string;
  /**
   * How to find and open this request's audit record (null when the manifest's audit keeps no
   * prompt or answer commitments); see AuditReference. Keep it as private as the answer: its
   * opening lets whoever has the log test guesses of the prompt.
   */
  readonly audit: AuditReference | null;
  /** PII the enclave redacted from the prompt before the model saw it (undefined: not said); see ChatEvent `done`. */
  readonly redacted: Redactions | undefined;
}

/**
 * A frame code of a newer enclave than this SDK (authenticated, so the enclave's own word, but not
 * in FRAME_ERROR_KINDS): the enclave failed the request for a reason this SDK does not know; said
 * to be transient rather than the request's fault, as its unclassified failures above are.
 */
const UNKNOWN_FRAME_ERROR_KIND: ClientErrorKind = "transport";

/**
 * Enclave refusals of a sealed request that a correct client cannot cause: the envelope was
 * altered on the way (the host or network) or replayed. They are integrity failures, not
 * transport errors to retry; they come as plain HTTP errors (the enclave has no sealed channel for
 * them), so the client knows them only as the host's report.
 */
const REQUEST_INTEGRITY_CODES = new Set(["DECRYPTION_FAILED", "HEADER_MISMATCH", "REQUEST_REPLAYED"]);

function notAttested(): ClientError {
  return new ClientError(
    "configuration",
    "NOT_ATTESTED",
    "session has no verified enclave (not attested yet, or its last verification failed; the next request verifies again)",
  );
}

/**
 * Collateral as parseAttestationCollateral made it (its own new objects), frozen: what
 * `Session.collateral` hands out is what was verified, and no caller can change it for another.
 */
function frozenCollateral(collateral: AttestationCollateral | null): AttestationCollateral | null {
  if (collateral?.tdx !== undefined) Object.freeze(Object.freeze(collateral.tdx).crls);
  return collateral === null ? null : Object.freeze(collateral);
}

function transportError(code: string, message: string, cause?: unknown): ClientError {
  return new ClientError("transport", code, message, cause === undefined ? undefined : { cause });
}

/** What a 404 on the attestation route most often means: `url` is not the host's base URL. */
const BASE_URL_HINT =
  "; is url (--url) the host's base URL, as cloister up prints it (not the enclave's or the key broker's address, no path)?";

/**
 * What to do when the host reports that its enclave cannot be reached (the host's claim: nothing
 * was sent to an enclave): retry, and, for whoever runs the host, where to look.
 */
const ENCLAVE_DOWN_HINT = {
  ENCLAVE_UNREACHABLE:
    "; retry once the enclave is back (running the host yourself: is the enclave running, and does the host's --enclave-url name it? The host's log says what it tried)",
  ENCLAVE_TIMEOUT: "; retry later (the enclave sent no answer in time: it may be overloaded)",
} as const;

/**
 * Why the host could not be reached, as a message may show it: the error's code (its own or, for
 * fetch, its cause's), never its text; with what to do for a refused connection and for https to a
 * plain-HTTP host. Nothing when there is no code (a browser's fetch gives none).
 */
function unreachableCause(error: unknown): string {
  const codes = [error, (error as { cause?: unknown } | null)?.cause]
    .map((e) => (e as { code?: unknown } | null)?.code)
    .filter((c): c is string => typeof c === "string" && /^[A-Z][A-Z0-9_]{1,63}$/.test(c));
  const code = codes[0];
  if (code === undefined) return "";
  const texts = [error, (error as { cause?: unknown } | null)?.cause].map((e) => String((e as Error | null)?.message));
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER" || texts.some((t) => t.includes("wrong version number"))) {
    return ` (${code}: the TLS handshake failed: the server answered in plain HTTP; use an http:// URL for it, or put TLS in front of it)`;
  }
  if (code === "ECONNREFUSED") return ` (${code}: nothing listens there; is the host running, and is this its port?)`;
  return ` (${code})`;
}

/** Most characters of a host's error message the SDK passes on. */
const HOST_MESSAGE_MAX_CHARS = 200;
const HOST_ERROR_CODE = /^[A-Z0-9_]{1,64}$/;

/** Whom a message names for an error response: the host, or a server not yet known to be one. */
type Speaker = "host" | "the server at that URL";

/**
 * The code and message of a host's error response, made safe to show: the host is untrusted, so
 * its code is kept only if it looks like one (else HOST_ERROR; HTTP_<status> when it sent none) and
 * its message is cut to HOST_MESSAGE_MAX_CHARS, stripped of control and format characters (line
 * breaks, terminal escapes, bidirectional overrides) and quoted after "host said: ", so neither the
 * page nor the CLI shows host text as if it were the client's own. `who` names the speaker: the
 * host, or, until a Cloister host answered at the URL (HostClient), the server at that URL.
 * Exported for its tests.
 */
export function errorBody(status: number, text: string, who: Speaker = "host"): { code: string; message: string } {
  let error: { code?: unknown; message?: unknown } | undefined;
  try {
    error = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  } catch {
    error = undefined;
  }
  const rawCode = error?.code;
  const code =
    rawCode === undefined || rawCode === null
      ? `HTTP_${status}`
      : typeof rawCode === "string" && HOST_ERROR_CODE.test(rawCode)
        ? rawCode
        : "HOST_ERROR";
  const cleaned = (typeof error?.message === "string" ? error.message : "")
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+/gu, " ")
    .replace(/ {2,}/g, " ")
    .trim();
  const chars = Array.from(cleaned);
  const cut = chars.length > HOST_MESSAGE_MAX_CHARS ? `${chars.slice(0, HOST_MESSAGE_MAX_CHARS).join("")}…` : cleaned;
  const none = who === "host" ? "the host gave no message" : `${who} gave no message`;
  return { code, message: cut === "" ? none : `${who} said: ${JSON.stringify(cut)}` };
}

/**
 * The final frame's receipt must be signed by the enclave the request was sealed to and name
 * exactly this request, this answer, its usage and the attested model, manifest and document.
 * Messages name the field only (hashes of prompts and answers stay out of errors).
 */
export async function checkReceipt(
  final: { usage: ResponseUsage; finishReason: "stop" | "length"; receipt: string },
  enclave: VerifiedEnclave,
  requestHash: string,
  answer: string,
): Promise<void> {
  let receipt: Awaited<ReturnType<typeof verifyReceipt>>;
  try {
    receipt = await verifyReceipt(final.receipt, enclave.signingPublicKey);
  } catch (error) {
    throw new ClientError("integrity", "RECEIPT_INVALID", `response receipt: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const expected: Record<string, unknown> = {
    requestHash,
    answerHash: textHash(answer),
    finishReason: final.finishReason,
    promptTokens: final.usage.promptTokens,
    completionTokens: final.usage.completionTokens,
    modelSha256: enclave.manifest.model.sha256,
    manifestDigest: enclave.manifestDigest,
    documentDigest: enclave.documentDigest,
  };
  for (const [field, value] of Object.entries(expected)) {
    if ((receipt as unknown as Record<string, unknown>)[field] !== value) {
      throw new ClientError(
        "integrity",
        "RECEIPT_MISMATCH",
        `response receipt ${field}: does not match this request, its answer or the attested enclave`,
      );
    }
  }
}

/** What REDACTIONS_NOT_ATTESTED says of the answer (checkRedactions): the text shown before it is not to be relied on. */
const REDACTIONS_UNTRUSTED =
  "; any text of this answer already shown came from an enclave whose PII redaction did not match its attested manifest: do not rely on it";

/**
 * The final frame's `redacted` against the verified manifest: the enclave may say it redacted only
 * kinds its attested manifest redacts (PII mode "redact", kinds among its `entities`). Another kind,
 * or any under another mode (or a manifest that shows none), is an enclave not doing what it
 * attested: REDACTIONS_NOT_ATTESTED (integrity), and its answer is not shown as whole. The frame is
 * sealed and authenticated, so only the enclave can cause it, never the host. The message names
 * kinds from the fixed list (sealed/frames.ts REDACTION_KINDS, as the parser checked) and the mode
 * only as "redact", not "redact" or not shown: nothing of the prompt.
 *
 * The count comes in the final frame, after the text: a streaming caller (chat, the CLI, the
 * proxy's stream) has shown the answer by then, so the message itself says what that text is
 * (REDACTIONS_UNTRUSTED), whichever surface shows it; complete() shows no text.
 */
export function checkRedactions(redacted: Redactions | undefined, enclave: VerifiedEnclave): void {
  if (redacted === undefined || redacted === null) return;
  const untrusted = (message: string) =>
    new ClientError("integrity", "REDACTIONS_NOT_ATTESTED", `${message}${REDACTIONS_UNTRUSTED}`);
  const pii = attestedPii(enclave);
  const kinds = Object.keys(redacted);
  if (pii?.mode !== "redact") {
    const why =
      pii === null ? "the verified manifest shows no PII settings" : `the attested manifest's PII mode is not "redact"`;
    throw untrusted(`response redacted: expected null, as ${why}, found ${kinds.join(", ")}`);
  }
  const unattested = kinds.filter((kind) => !pii.entities.includes(kind));
  if (unattested.length > 0) {
    throw untrusted(
      `response redacted: expected PII kinds among the attested manifest's entities, found ${unattested.join(", ")}`,
    );
  }
}

/**
 * Most bytes the SDK reads of a host's answer that is not a stream: the host is not trusted to send
 * a bounded body, and a long-lived process (the proxy) must not be made to buffer gigabytes.
 * The attestation answer (document and collateral) as the host's own limit for what it passes on
 * (DOCUMENT_MAX_LENGTH); a signed nonce answer or checkpoint is a few kilobytes; an error body is
 * shown only in part anyway.
 */
const NONCE_ANSWER_MAX_BYTES = 256 * 1024;
const ERROR_BODY_MAX_BYTES = 64 * 1024;
/**
 * Longest a whole attestation request (document, challenge, checkpoint) may take, headers and body,
 * by default (ConnectOptions.attestationTimeoutMs): the transport's idle timeout alone lets a host
 * drip one byte every few minutes.
 */
export const DEFAULT_ATTESTATION_TIMEOUT_MS = 60_000;

/**
 * The SDK's own attestation deadlines, each by the signal an attestation request is given (a
 * caller's AbortSignal.timeout stays ABORTED).
 */
const DEADLINES = new WeakMap<AbortSignal, AbortSignal>();

/** One attestation request's signal: its deadline (`ms`), and the caller's `signal` (connect's), if any. */
function deadline(ms: number, caller?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  const signal = caller === undefined ? timeout : AbortSignal.any([timeout, caller]);
  DEADLINES.set(signal, timeout);
  return signal;
}

/** Whether `signal`, aborted, was aborted by its deadline (not by the caller's signal). */
function isDeadline(signal: AbortSignal): boolean {
  const timeout = DEADLINES.get(signal);
  return timeout?.aborted === true && signal.reason === timeout.reason;
}

/** The body of a non-streamed answer, bounded in size and by the request's deadline. */
async function readAnswer(
  response: TransportResponse,
  maxBytes: number,
  signal: AbortSignal,
  what: string,
): Promise<string> {
  try {
    return await response.text(maxBytes);
  } catch (error) {
    if (error instanceof ResponseTooLargeError) {
      throw transportError("BAD_RESPONSE", `${what}: the host's answer is larger than ${maxBytes} bytes`, error);
    }
    if (signal.aborted) {
      throw abortedError(signal, `${what}: the host's answer did not arrive in time`, `${what}: request`, error);
    }
    throw transportError("HOST_UNREACHABLE", `${what}: the host's answer was cut off`, error);
  }
}

/**
 * Why an aborted request ended: HOST_TIMEOUT when its own deadline aborted it, else ABORTED (the
 * caller's signal, callerAborted: `what` is what it ended).
 */
function abortedError(signal: AbortSignal, timedOut: string, what: string, cause: unknown): ClientError {
  return isDeadline(signal) ? transportError("HOST_TIMEOUT", timedOut, cause) : callerAborted(signal, what, cause);
}

/**
 * ABORTED, for `what` (a request, connect) that the caller's `signal` ended, then `after` (what was
 * under way, what is kept). A signal whose reason is a TimeoutError (AbortSignal.timeout's) is said
 * to have timed out, not to have been aborted: the caller's own deadline passed. The code is the
 * same either way. (By name, not instanceof DOMException: a signal of another realm has its own.)
 */
function callerAborted(signal: AbortSignal, what: string, cause: unknown, after = ""): ClientError {
  const timedOut = (signal.reason as { name?: unknown } | null | undefined)?.name === "TimeoutError";
  return transportError(
    "ABORTED",
    timedOut
      ? `${what} timed out: the caller's signal (AbortSignal.timeout) fired${after}`
      : `${what} aborted by the caller${after}`,
    cause,
  );
}

class HttpClient {
  constructor(
    /** The host's base URL, without a final slash: errors name it. */
    readonly base: string,
    private readonly apiKey: string,
    private readonly transport: Transport,
    /** Deadline of one attestation request (ConnectOptions.attestationTimeoutMs). */
    readonly attestationTimeoutMs: number = DEFAULT_ATTESTATION_TIMEOUT_MS,
    /** ConnectOptions.apiKeySource: named by every refusal of the key. */
    private readonly apiKeySource?: string,
  ) {}

  /**
   * Whether a Cloister host answered at `base`: an enclave verified through it (hostAnswered). A
   * 2xx alone shows nothing (any web server answers one); until then whatever answers may not be
   * the host (a wrong --url), so neither a refusal of the key nor a 404 on the attestation route
   * is said to be the host's.
   */
  #answered = false;

  /** A verification through this client succeeded: what answers at `base` is a Cloister host. */
  hostAnswered(): void {
    this.#answered = true;
  }

  /**
   * Who answered at `base`, as every message about an error response names it: the host once a
   * Cloister host answered (#answered), else the server at that URL, whose words (a body's code
   * and text, a redirect, a claim about the enclave) are not said to be a host's.
   */
  #speaker(): Speaker {
    return this.#answered ? "host" : "the server at that URL";
  }

  /** HOST_TIMEOUT's message, made only when a request fails (not on every request's way out). */
  #late(): string {
    return `the host at ${this.base} did not answer in time`;
  }

  async request(
    path: string,
    init: { method: "GET" | "POST"; body?: Uint8Array | string; contentType?: string; signal?: AbortSignal },
  ): Promise<TransportResponse> {
    // Nothing is handed to the transport once its signal is aborted, whatever the transport does with one.
    if (init.signal?.aborted) {
      throw abortedError(init.signal, this.#late(), "request", init.signal.reason);
    }
    let response: TransportResponse;
    try {
      response = await this.transport(`${this.base}${path}`, {
        method: init.method,
        headers: {
          authorization: `Bearer ${this.apiKey}`,
          ...(init.contentType === undefined ? {} : { "content-type": init.contentType }),
        },
        ...(init.body === undefined ? {} : { body: init.body }),
        ...(init.signal === undefined ? {} : { signal: init.signal }),
      });
    } catch (error) {
      if (init.signal?.aborted) throw abortedError(init.signal, this.#late(), "request", error);
      if ((error as { code?: unknown } | null)?.code === "HOST_TIMEOUT") {
        throw transportError("HOST_TIMEOUT", this.#late(), error);
      }
      throw transportError(
        "HOST_UNREACHABLE",
        `cannot reach the host at ${this.base}${unreachableCause(error)}`,
        error,
      );
    }
    if (response.status >= 200 && response.status < 300) return response;
    const speaker = this.#speaker();
    if (response.status === 0 || (response.status >= 300 && response.status < 400)) {
      // Redirects are not followed (fetchTransport asks fetch for "manual"; node:http never follows;
      // a browser shows a redirect as status 0): following one would send the API key, and the
      // request, wherever the untrusted host points. Its target is not shown: it is the host's text.
      await response.text(ERROR_BODY_MAX_BYTES).catch(() => "");
      throw new ClientError(
        "transport",
        "HOST_REDIRECT",
        `${this.base}${path}: ${speaker} answered with a redirect${response.status === 0 ? "" : ` (HTTP ${response.status})`}, which the SDK does not follow: give the address it redirects to`,
        { status: response.status },
      );
    }
    // A 404 on the attestation route before a host answered: whatever answered may not be the host
    // (the enclave's port answers just so): BASE_URL_HINT.
    const wrongBase = response.status === 404 && path.startsWith("/v1/attestation") && !this.#answered;
    const keyRefused = response.status === 401 || response.status === 403;
    const { code, message } = errorBody(
      response.status,
      await response.text(ERROR_BODY_MAX_BYTES).catch(() => ""),
      speaker,
    );
    // Every code below is the untrusted host's claim (origin "host"), even one that names an
    // enclave refusal: only a sealed error frame carries the enclave's word.
    const host = { origin: "host", status: response.status } as const;
    if (keyRefused) {
      // Which key was refused, by where it came from (never the key): here, the one place every
      // request's refusal is made, so a refusal on a request or a re-verification names it too.
      // Without a source, where a key comes from at all: the host's operator (up writes its own).
      // A 403 is a key the host knows that lacks the permission (FORBIDDEN): another key is not the
      // remedy, the permission is.
      const which = speaker === "host" ? "this" : "the";
      const from = this.apiKeySource === undefined ? "" : `; the key sent came from ${this.apiKeySource}`;
      const source =
        response.status === 403
          ? `${from}; it lacks a permission this request needs: ask ${which} host's operator to grant it`
          : this.apiKeySource === undefined
            ? `; give the key ${which} host's operator issued (cloister up writes its key to .cloister/api-key)`
            : `${from}: give the key ${which} host issued`;
      // The full URL when the speaker is not known, as for a 404: a wrong base URL is seen in it.
      const refused =
        speaker === "host"
          ? "host refused the API key"
          : `${this.base}${path}: HTTP ${response.status}: the API key was refused`;
      throw new ClientError("configuration", code, `${refused}: ${message}${source}`, host);
    }
    if (code === "ENCLAVE_UNREACHABLE" || code === "ENCLAVE_TIMEOUT") {
      throw new ClientError(
        "transport",
        code,
        `${this.base}${path}: HTTP ${response.status}: ${speaker} reports that it cannot reach the enclave: ${message}${ENCLAVE_DOWN_HINT[code]}`,
        host,
      );
    }
    if (REQUEST_INTEGRITY_CODES.has(code)) {
      // The enclave refuses an envelope it cannot open (or a replay) before it has a sealed channel
      // to answer in: a plain HTTP error, which the host forwards, or could make up. Said as the
      // speaker's report, not as the enclave's word.
      throw new ClientError(
        "integrity",
        code,
        `${this.base}${path}: HTTP ${response.status}: ${speaker} reports that the enclave refused the sealed request: ${code}: ${message}`,
        host,
      );
    }
    if (code === "REQUEST_STALE") {
      // The enclave found the sealed timestamp outside its window: this machine's clock is off, or
      // the host held the request that long. The client cannot tell which, so it stays transport
      // (retry once the clock is right) and says both. Its own words, not the host's text: the host
      // could put any time of the enclave's in it. The window named is the enclave's default (the
      // enclave keeps it: enclave/service.ts's ReplayGuard).
      throw new ClientError(
        "transport",
        code,
        `${this.base}${path}: HTTP ${response.status}: ${speaker} reports that the enclave refused the sealed request as stale (REQUEST_STALE: its timestamp outside the enclave's window of ±${DEFAULT_REPLAY_WINDOW_MS / 60_000} min): check this machine's clock against the enclave's; or the request was held on the way longer than that`,
        host,
      );
    }
    // Kept only as delta-seconds (1 to 6 digits): an HTTP date or anything else the host sends is
    // dropped rather than guessed at.
    const retryAfter = response.header("retry-after")?.trim() ?? "";
    const retryAfterSeconds = /^\d{1,6}$/.test(retryAfter) ? Number(retryAfter) : undefined;
    const suffix = retryAfterSeconds === undefined ? "" : ` (retry after ${retryAfterSeconds}s)`;
    // The full URL: a wrong base URL (the enclave's port, a path) is seen in it.
    const hint = wrongBase ? BASE_URL_HINT : "";
    throw new ClientError(
      "transport",
      code,
      `${this.base}${path}: HTTP ${response.status} ${code}: ${message}${suffix}${hint}`,
      {
        ...host,
        ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
      },
    );
  }
}

/**
 * The host's base URL, checked: http: or https:, with no user name or password, and no query or
 * fragment (below). The API key is the credential; a password in the URL would be sent nowhere
 * useful and would be repeated wherever the URL is (error messages, logs), so it is refused, and no
 * message here repeats it. Exported for the
 * CLI, which checks the URL before it works out which API key goes to that host, and passes `names`
 * so that its messages name the options its user typed (`--url`), not connect()'s.
 */
export function parseHostUrl(value: string, names: HostUrlNames = SDK_NAMES): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // "127.0.0.1:8080" or "[::1]:8080" (no scheme: the URL parser refuses a scheme starting with a
    // digit or a bracket): a host and port whose scheme was left out, said so with the URL meant.
    // (Only that exact shape, and only when the URL meant parses: nothing else of the input is shown.)
    if (/^(?:[0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/.test(value) && parses(`http://${value}`)) {
      throw new ClientError(
        "configuration",
        "BAD_URL",
        `${names.url}: expected an http(s) URL, found "${value}", a host and port without http: or https: (write http://${value})`,
      );
    }
    // No cause: the URL parser's error carries the input verbatim, user name and password included.
    throw new ClientError(
      "configuration",
      "BAD_URL",
      `${names.url}: expected an http(s) URL, found ${describeUrlInput(value)}`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    // "localhost:8080" parses with the scheme "localhost:": a host and port whose scheme was left
    // out, said so with the URL meant. (Only that exact shape: nothing else of the input is shown.)
    if (/^[A-Za-z][A-Za-z0-9.-]*:\d{1,5}$/.test(value)) {
      throw new ClientError(
        "configuration",
        "BAD_URL",
        `${names.url}: expected http: or https:, found "${value}", a host and port without one (write http://${value})`,
      );
    }
    // "alice:pw@host" parses with the scheme "alice:": a user name, not to be repeated either.
    const found = value.includes("@") ? describeUrlInput(value) : url.protocol;
    throw new ClientError("configuration", "BAD_URL", `${names.url}: expected http: or https:, found ${found}`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new ClientError(
      "configuration",
      "URL_CREDENTIALS",
      `${names.url}: expected no user name or password, found ${url.password === "" ? "a user name" : "a user name and password"} (user:password@ before the host); they are not supported: the API key (${names.apiKey}) is the credential`,
    );
  }
  // Each route is added after the base URL: behind a query or fragment it would never reach the
  // host, and the messages that name the URL asked would repeat the query (a token may be there).
  // (In href, `?` and `#` are only ever those delimiters: an empty one, `http://h/?`, included.)
  if (/[?#]/.test(url.href)) {
    throw new ClientError(
      "configuration",
      "BAD_URL",
      `${names.url}: expected the host's base URL without a query or fragment (each route is added after it), found ${describeUrlInput(value)}`,
    );
  }
  return url;
}

/** Whether text parses as a URL (URL.canParse, which older browsers the bundle serves lack). */
function parses(text: string): boolean {
  try {
    new URL(text);
    return true;
  } catch {
    return false;
  }
}

/** What parseHostUrl's messages call the URL and the API key: connect()'s options, or the CLI's. */
export interface HostUrlNames {
  readonly url: string;
  readonly apiKey: string;
}

const SDK_NAMES: HostUrlNames = { url: "url", apiKey: "apiKey" };

/** A URL that failed a check, as a message may show it (attestation/url-text.ts). */
function describeUrlInput(input: unknown): string {
  return typeof input !== "string" || input === "" ? describeFound(input) : describeUrlText(input);
}

/**
 * `cloister up`'s local API key file, in the directory it runs in: named here, where the SDK's
 * messages say where a local deployment's key is, and read by the CLI's default (client/cli/run-client.ts).
 */
export const LOCAL_API_KEY_FILE = ".cloister/api-key";

/**
 * The API key, checked before it is sent: present, and printable ASCII without white space (it
 * goes in an HTTP header; a key read with its file's line break would otherwise fail as an
 * unreachable host). Messages say what is wrong with it, never what it is, and name it by `source`
 * (ConnectOptions.apiKeySource) when given.
 */
function checkApiKey(apiKey: unknown, source: string = "apiKey"): string {
  if (typeof apiKey !== "string" || apiKey === "") {
    // Undefined, as often as not, is an environment variable left unset (process.env.X!): say
    // where a local deployment's key is.
    const unset =
      apiKey === undefined
        ? ` (an environment variable not set? cloister up writes its deployment's key to ${LOCAL_API_KEY_FILE})`
        : "";
    throw new ClientError(
      "configuration",
      "BAD_API_KEY",
      `${source}: expected the host's API key (a non-empty string of printable ASCII without white space), found ${describeSecret(apiKey)}${unset}`,
    );
  }
  if (!/^[\x21-\x7e]+$/.test(apiKey)) {
    throw new ClientError(
      "configuration",
      "BAD_API_KEY",
      `${source}: expected printable ASCII without white space (it is sent in an HTTP header), found ${describeFound(apiKey)} with ${apiKeyFaults(apiKey)}`,
    );
  }
  return apiKey;
}

/**
 * What an API key holds that a header cannot carry, by kind and count (never which characters or
 * where), each with its likely cause: "2 spaces", "1 line break (a key file read with its line
 * break, or of several lines?)".
 */
function apiKeyFaults(apiKey: string): string {
  const kinds = {
    lineBreak: { n: 0, one: "line break", hint: " (a key file read with its line break, or of several lines?)" },
    space: { n: 0, one: "space", hint: " (a key copied with the text around it?)" },
    tab: { n: 0, one: "tab", hint: "" },
    control: { n: 0, one: "control character", hint: "" },
    nonAscii: { n: 0, one: "non-ASCII character", hint: " (a typographic quote or dash pasted with it?)" },
  };
  for (const ch of apiKey) {
    const c = ch.codePointAt(0) as number;
    if (c === 0x0a || c === 0x0d) kinds.lineBreak.n++;
    else if (c === 0x20) kinds.space.n++;
    else if (c === 0x09) kinds.tab.n++;
    else if (c < 0x20 || c === 0x7f) kinds.control.n++;
    else if (c > 0x7f) kinds.nonAscii.n++;
  }
  return Object.values(kinds)
    .filter((kind) => kind.n > 0)
    .map((kind) => `${kind.n} ${kind.one}${kind.n === 1 ? "" : "s"}${kind.hint}`)
    .join(", ");
}

/**
 * How a value that failed a check is named in a message: numbers and other scalars as they are
 * (NaN says NaN), strings and arrays by their length only (a string may be a secret or a prompt).
 */
export function describeFound(value: unknown): string {
  if (typeof value === "string")
    return value === "" ? "an empty string" : `a string of ${value.length} character${value.length === 1 ? "" : "s"}`;
  if (Array.isArray(value))
    return value.length === 0 ? "an empty array" : `an array of ${value.length} item${value.length === 1 ? "" : "s"}`;
  if (value === null || typeof value === "object" || typeof value === "function" || typeof value === "symbol") {
    return value === null ? "null" : `a value of type ${typeof value}`;
  }
  return String(value);
}

/**
 * How a secret option that failed a check is named (an API key, a cache scope): a value that is not
 * a string by its type only (describeFound shows a number or a bigint whole), a string by its length.
 */
function describeSecret(value: unknown): string {
  return typeof value === "number" || typeof value === "bigint" || typeof value === "boolean"
    ? `a value of type ${typeof value}`
    : describeFound(value);
}

/** A name the caller chose (a role, a field), shown only when it looks like one: else its description. */
export function describeName(value: unknown): string {
  return typeof value === "string" && /^[A-Za-z_][\w-]{0,31}$/.test(value)
    ? JSON.stringify(value)
    : describeFound(value);
}

/** What an audit checkpoint that does not check out is, by AuditCheckpointProblem. */
const CHECKPOINT_PROBLEMS: Readonly<Record<AuditCheckpointProblem, string>> = {
  malformed: "expected the enclave's signed checkpoint line, found something else (altered on the way)",
  version: "expected a checkpoint of version 2, found another version",
  signature:
    "expected a signature by the attested enclave key, found one that does not verify (altered on the way, or the enclave restarted: connect again)",
  nonce:
    "expected a checkpoint for this request's nonce, found one the enclave signed for another (an old checkpoint replayed)",
};

/** A refused argument: `field` names it in the message and on the error (the proxy's OpenAI `param`). */
function badArgument(code: string, field: string, message: string): ClientError {
  return new ClientError("configuration", code, `${field}: ${message}`, { field });
}

/**
 * Whether `value` is an AbortSignal, by its shape: one of another realm (a jsdom window, an iframe,
 * a vm context) is no instance of this realm's AbortSignal, yet is used alike (its `aborted`,
 * `reason` and abort listeners are all the SDK and its transports use of it).
 */
function isAbortSignal(value: unknown): value is AbortSignal {
  if (value instanceof AbortSignal) return true;
  if (typeof value !== "object" || value === null) return false;
  const s = value as { aborted?: unknown; addEventListener?: unknown; removeEventListener?: unknown };
  return (
    typeof s.aborted === "boolean" &&
    typeof s.addEventListener === "function" &&
    typeof s.removeEventListener === "function"
  );
}

/** A `signal` option as given: undefined, or an AbortSignal (by its shape); anything else is BAD_OPTION. */
function checkSignal(value: unknown): AbortSignal | undefined {
  if (value !== undefined && !isAbortSignal(value)) throw badOption("signal", "an AbortSignal", value);
  return value;
}

/**
 * connect's signal as one of this realm, and how to stop following it (once connect ends): its
 * requests' deadlines are AbortSignal.any of it, which follows no other realm's signal's abort.
 */
function ownRealmSignal(signal: AbortSignal): { readonly signal: AbortSignal; stop(): void } {
  // (As an object: the type cannot tell this realm's AbortSignal from another's.)
  if ((signal as object) instanceof AbortSignal) return { signal, stop: () => {} };
  const controller = new AbortController();
  const follow = (): void => controller.abort(signal.reason);
  if (signal.aborted) follow();
  else signal.addEventListener("abort", follow, { once: true });
  return { signal: controller.signal, stop: () => signal.removeEventListener("abort", follow) };
}

function badOption(name: string, expected: string, value: unknown): ClientError {
  return badArgument("BAD_OPTION", name, `expected ${expected}, found ${describeFound(value)}`);
}

function checkInteger(name: string, value: unknown, limits: { readonly min: number; readonly max: number }): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isInteger(value) || value < limits.min || value > limits.max) {
    throw badOption(name, `an integer from ${limits.min} to ${limits.max}`, value);
  }
}

/**
 * Generation options, checked against the limits the enclave applies (sealed/request-limits.ts)
 * before anything is sealed.
 */
function checkGenerationOptions(options: GenerationOptions): void {
  const { maxTokens, temperature, topP, seed, stop } = REQUEST_LIMITS;
  checkInteger("maxTokens", options.maxTokens, maxTokens);
  const t = options.temperature;
  if (t !== undefined && (typeof t !== "number" || !(t >= temperature.min && t <= temperature.max))) {
    throw badOption("temperature", `a number from ${temperature.min} to ${temperature.max}`, t);
  }
  const p = options.topP;
  if (p !== undefined && (typeof p !== "number" || !(p > topP.above && p <= topP.max))) {
    throw badOption("topP", `a number above ${topP.above} and at most ${topP.max}`, p);
  }
  checkInteger("seed", options.seed, seed);
  // Listened to by the transport only after sealing: anything else would fail there, sent or not.
  checkSignal(options.signal);
  const expected: unknown = options.expectModel;
  if (expected !== undefined) {
    const { service, file } = (expected ?? {}) as { service?: unknown; file?: unknown };
    if (typeof service !== "string" || typeof file !== "string") {
      throw badOption("expectModel", "an object {service, file} of two strings", expected);
    }
  }
  const s: unknown = options.stop;
  if (s === undefined) return;
  if (!Array.isArray(s) || s.length > stop.maxCount) {
    throw badOption("stop", `an array of at most ${stop.maxCount} strings`, s);
  }
  // By index, not forEach: a hole in a sparse array ([, "a"]) is checked too (it is sent as null).
  for (let i = 0; i < s.length; i++) {
    const item: unknown = s[i];
    if (typeof item !== "string" || item.length < stop.minChars || item.length > stop.maxChars) {
      throw badOption(`stop[${i}]`, `a string of ${stop.minChars} to ${stop.maxChars} characters`, item);
    }
  }
}

function checkText(name: string, code: string, value: unknown): void {
  if (typeof value !== "string" || value.length > REQUEST_LIMITS.maxTextChars) {
    throw badArgument(
      code,
      name,
      `expected a string of at most ${REQUEST_LIMITS.maxTextChars} characters, found ${describeFound(value)}`,
    );
  }
}

/** A chat request's messages, checked as the enclave checks them, before anything is sealed. */
function checkMessages(messages: readonly ChatMessage[]): void {
  const list: unknown = messages;
  if (!Array.isArray(list) || list.length === 0 || list.length > REQUEST_LIMITS.maxMessages) {
    throw badArgument(
      "BAD_MESSAGES",
      "messages",
      `expected an array of 1 to ${REQUEST_LIMITS.maxMessages} messages, found ${describeFound(list)}`,
    );
  }
  // By index, not forEach: a hole in a sparse array ([, {…}]) is checked too (it is sent as null).
  for (let i = 0; i < list.length; i++) {
    const message: unknown = list[i];
    if (message === null || typeof message !== "object" || Array.isArray(message)) {
      throw badArgument(
        "BAD_MESSAGES",
        `messages[${i}]`,
        `expected an object {role, content}, found ${describeFound(message)}`,
      );
    }
    const fields = message as Record<string, unknown>;
    // As sent: JSON leaves out a field whose value is undefined.
    const extra = Object.keys(fields).find((k) => k !== "role" && k !== "content" && fields[k] !== undefined);
    if (extra !== undefined) {
      throw badArgument(
        "BAD_MESSAGES",
        `messages[${i}]`,
        `expected only role and content, found also ${describeName(extra)}`,
      );
    }
    if (!(CHAT_ROLES as readonly unknown[]).includes(fields.role)) {
      throw badArgument(
        "BAD_MESSAGES",
        `messages[${i}].role`,
        `expected ${CHAT_ROLES.join(", ")}, found ${describeName(fields.role)}`,
      );
    }
    checkText(`messages[${i}].content`, "BAD_MESSAGES", fields.content);
  }
}

/** What a request asks: a chat's messages, or a completion's prompt. */
export type RequestContent = { readonly messages: readonly ChatMessage[] } | { readonly prompt: string };

/**
 * A request's messages or prompt and its options, checked against the enclave's own limits
 * (sealed/request-limits.ts): a bad argument is the caller's to fix (a configuration error naming
 * it), not a round trip ending in REQUEST_INVALID. Session's `chat` and `completeStream` check with
 * it before any network step; exported for a caller that takes one of its own first (the proxy
 * verifies the session again before it calls `chat`), so that a bad request is refused as one
 * during an outage too.
 */
export function checkRequestArguments(content: RequestContent, options: GenerationOptions): void {
  if ("messages" in content) checkMessages(content.messages);
  else checkText("prompt", "BAD_PROMPT", content.prompt);
  checkGenerationOptions(options);
}

/**
 * The host's `GET /v1/attestation` answer, as received: nothing in it is verified yet. `caller`:
 * connect's signal, which cuts it (ABORTED).
 */
async function attestationAnswer(
  http: HttpClient,
  caller?: AbortSignal,
  named: string | null = null,
): Promise<{ document: string; collateral: unknown }> {
  const signal = deadline(http.attestationTimeoutMs, caller);
  const path = named === null ? "/v1/attestation" : `/v1/attestation?enclave=${named}`;
  const response = await http.request(path, { method: "GET", signal });
  const text = await readAnswer(response, DOCUMENT_MAX_LENGTH, signal, "attestation");
  // An answer of another shape most often comes from something else at the URL (a web server, an
  // API of another kind): the message names the URL asked and asks whether it is the host's.
  const malformed = (problem: string, cause?: unknown) =>
    transportError("BAD_RESPONSE", `attestation: ${http.base}/v1/attestation: ${problem}${BASE_URL_HINT}`, cause);
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch (error) {
    throw malformed("expected a JSON object, found text that is not JSON", error);
  }
  if (answer === null || typeof answer !== "object") {
    throw malformed(`expected a JSON object, found ${answer === null ? "null" : `a ${typeof answer}`}`);
  }
  const { document, collateral } = answer as { document?: unknown; collateral?: unknown };
  if (typeof document !== "string") {
    throw malformed(
      `response field document: expected a string, found ${document === null ? "null" : typeof document}`,
    );
  }
  return { document, collateral };
}

/** The client for the host `options` name: URL, API key, transport and attestation deadline checked. */
async function hostClient(
  options: Pick<ConnectOptions, "url" | "apiKey" | "apiKeySource" | "transport" | "fetch" | "attestationTimeoutMs">,
): Promise<HttpClient> {
  const url = parseHostUrl(options.url);
  const apiKeySource: unknown = options.apiKeySource;
  if (apiKeySource !== undefined && (typeof apiKeySource !== "string" || apiKeySource === "")) {
    throw badOption("apiKeySource", "a non-empty string naming where the API key came from", apiKeySource);
  }
  const apiKey = checkApiKey(options.apiKey, apiKeySource);
  const transport =
    options.transport ?? (options.fetch === undefined ? await defaultTransport() : fetchTransport(options.fetch));
  return new HttpClient(
    url.href.replace(/\/+$/, ""),
    apiKey,
    transport,
    checkAttestationTimeout(options.attestationTimeoutMs ?? DEFAULT_ATTESTATION_TIMEOUT_MS),
    apiKeySource,
  );
}

/**
 * The attestation document and collateral the host at `url` serves, fetched as `connect` fetches
 * them (same API-key check, size bound, deadline, no redirect, same errors) but NOT verified: for
 * tools that verify them their own way (`cloister policy init`). Anything else uses `connect`.
 * With `enclaveKeyId`, that pool member's document only (`?enclave=`), as `connect` asks for it.
 */
export async function fetchAttestationAnswer(
  options: Pick<
    ConnectOptions,
    "url" | "apiKey" | "apiKeySource" | "transport" | "fetch" | "attestationTimeoutMs" | "enclaveKeyId"
  >,
): Promise<{ document: string; collateral: unknown }> {
  const http = await hostClient(options);
  return attestationAnswer(http, undefined, namedEnclave(options.enclaveKeyId));
}

/** `enclaveKeyId` checked before it is put in a URL (`?enclave=`): the key id, or null when none is named. */
function namedEnclave(named: unknown): string | null {
  if (named === undefined) return null;
  if (typeof named !== "string" || !ENCLAVE_KEY_ID_HEX.test(named)) {
    throw badOption("enclaveKeyId", "an enclave key id of 32 lower-case hex digits", named);
  }
  return named;
}

function checkAttestationTimeout(attestationTimeoutMs: unknown): number {
  if (
    typeof attestationTimeoutMs !== "number" ||
    !Number.isFinite(attestationTimeoutMs) ||
    attestationTimeoutMs <= 0 ||
    attestationTimeoutMs > 2 ** 31 - 1
  ) {
    throw new ClientError(
      "configuration",
      "BAD_OPTION",
      `attestationTimeoutMs: expected a positive number of milliseconds up to ${2 ** 31 - 1}, found ${String(attestationTimeoutMs)}`,
    );
  }
  return attestationTimeoutMs;
}

/**
 * Verifies the enclave behind `url` against `policy` and returns a session bound to it; aborting
 * `signal` ends it at once (ABORTED), with nothing sent after the abort and nothing kept.
 */
export async function connect(options: ConnectOptions): Promise<Session> {
  const callerSignal = checkSignal(options.signal);
  const http = await hostClient(options);
  const cacheScope: unknown = options.cacheScope;
  if (cacheScope !== undefined && typeof cacheScope !== "string") {
    throw badArgument(
      "BAD_OPTION",
      "cacheScope",
      `expected a string (a secret of at least 16 characters), found ${describeSecret(cacheScope)}`,
    );
  }
  if (cacheScope !== undefined && cacheScope.length < 16) {
    throw new ClientError(
      "configuration",
      "CACHE_SCOPE_TOO_SHORT",
      // Its length only: the value is a secret.
      `cacheScope: expected a secret of at least 16 characters, found ${describeFound(cacheScope)}`,
    );
  }
  const now = options.now ?? (() => new Date());
  // Checked here too: a policy built in code skips the file parser's rules (every field present,
  // every skip with a reason), and verification must not run on a policy that would not parse.
  const policy = parsedClientPolicy(options.policy);
  // The trust anchors, resolved before any request: a browser build without the simulator refuses
  // a policy that trusts it here (SIMULATOR_NOT_IN_BUILD), not after talking to the host.
  await anchorsForPolicy(policy);
  // The KV-cache scope, sealed inside every request: the enclave reuses cached prompt state only
  // between requests that carry the same value. It must be unguessable by the host (which sees the
  // API key), so it is random per session unless the caller shares a secret `cacheScope` between
  // its own sessions; it is never derived from the API key.
  const tenant =
    options.cacheScope === undefined
      ? randomBytes(16)
      : (await sha256(utf8(`cloister/cache-scope/v1\u0000${options.cacheScope}`))).subarray(0, 16);
  const named = namedEnclave(options.enclaveKeyId);
  const reattestAfterMs = options.reattestAfterMs ?? DEFAULT_REATTEST_AFTER_MS;
  if (typeof reattestAfterMs !== "number" || Number.isNaN(reattestAfterMs) || reattestAfterMs <= 0) {
    throw new ClientError(
      "configuration",
      "BAD_REATTEST_INTERVAL",
      `reattestAfterMs: expected a positive number of milliseconds (or Infinity), found ${String(reattestAfterMs)}`,
    );
  }
  const session = new Session(
    http,
    policy,
    now,
    Array.from(tenant, (b) => b.toString(16).padStart(2, "0")).join(""),
    reattestAfterMs,
    options.onVerified,
    named,
  );
  const followed = callerSignal === undefined ? undefined : ownRealmSignal(callerSignal);
  const signal = followed?.signal;
  try {
    if (signal?.aborted) {
      throw callerAborted(signal, "connect", signal.reason, ": nothing was sent");
    }
    await verifyNewSession(session, signal);
  } finally {
    followed?.stop();
  }
  return session;
}

/**
 * connect()'s first verification of the session it made (Session's own, which no one else can
 * share yet), which `signal` ends: the shared one (attest()) goes on for every caller waiting on it.
 */
let verifyNewSession: (session: Session, signal: AbortSignal | undefined) => Promise<VerifiedEnclave>;

/**
 * The enclave key id (`SHA-256(X25519 key)[0..16]`, hex: the sealed envelope's routing id) of an
 * unverified document's `cnf.jwk`, or null when it has none: only where to send the nonce.
 */
async function routingKeyId(document: string): Promise<string | null> {
  const key = unverifiedDocumentSealingKey(document);
  return key === null ? null : toHex(await enclaveKeyId(key));
}

/**
 * A document that is not of the enclave `connect({enclaveKeyId})` named: the host answered with
 * another member's (or the named boot's key is no longer the one it serves). Key ids are public.
 */
function otherEnclaveDocument(expected: string, found: string | null): ClientError {
  return new ClientError(
    "attestation",
    "ENCLAVE_KEY_ID_MISMATCH",
    `attestation failed at stage document: document's enclave key id (cnf.jwk): expected ${expected} ` +
      `(enclaveKeyId), found ${found ?? "none (no sealing key)"}: the host answered with another enclave's document`,
    { stage: "document" },
  );
}

/** The host's refusal of an enclave key id the client named (HttpClient: origin "host", transport). */
function isWrongEnclaveKey(error: unknown): error is ClientError {
  return error instanceof ClientError && error.code === "WRONG_ENCLAVE_KEY" && error.origin === "host";
}

/**
 * Whether a failed verification empties what the session shows as verified (Session.attest): an
 * attestation error (the enclave did not verify), or the host's WRONG_ENCLAVE_KEY on the way (the
 * enclave key id the client named, from the document the host served or connect's enclaveKeyId,
 * is not one the host serves). The latter is only the host's claim, but emptying gives the host no
 * power it lacks (a forged document empties it too), while keeping it would go on showing a boot
 * the host no longer presents as verified, its questions sealed to a key nothing serves. A host or
 * enclave that cannot be reached says nothing about which enclave is there: kept.
 */
function forgetsVerification(error: unknown): boolean {
  return error instanceof ClientError && (error.kind === "attestation" || isWrongEnclaveKey(error));
}

/** Most request keys a session keeps made ahead of time (its recent concurrency, up to this). */
const MAX_PREPARED_KEYS = 8;

/** A request key being made ahead of time for `enclave` (Session's #replenish). */
interface KeyInMaking {
  readonly enclave: VerifiedEnclave;
  readonly key: Promise<PreparedRequestKey>;
  /** A request waits for it (#takeMaking): it is that request's, not kept for another. */
  taken: boolean;
}

export class Session {
  #enclave: VerifiedEnclave | null = null;
  #document: string | null = null;
  /** The collateral #document was verified with (as served, parsed; frozen), or null: none was served. */
  #collateral: AttestationCollateral | null = null;
  /**
   * routingKeyId(#document): a re-attestation mostly finds the same document, whose payload (12 KB
   * for TDX) is then not decoded again. Kept beside the document the session holds anyway, never
   * with one of its own: a document is up to 4 MiB of host text.
   */
  #documentRoute: string | null = null;
  /** Request keys made ahead for the attested enclave key (single use each); see #replenish. */
  #prepared: PreparedRequestKey[] = [];
  /** Request keys being made, oldest first (see #replenish, #takeMaking). */
  #making: KeyInMaking[] = [];
  #inFlight = 0;
  /** Most requests this session had in flight at once: how many keys to keep ready. */
  #peakInFlight = 1;

  /** When (this.now(), ms) the current enclave was last verified. */
  #attestedAt = Number.NEGATIVE_INFINITY;
  /** A verification under way, shared by everyone who waits for it. */
  #attesting: Promise<VerifiedEnclave> | null = null;

  static {
    verifyNewSession = (session, signal) => session.#attest(signal);
  }

  /** @internal use connect() */
  constructor(
    private readonly http: HttpClient,
    private readonly policy: ClientPolicy,
    private readonly now: () => Date,
    private readonly tenant: string,
    private readonly reattestAfterMs: number = DEFAULT_REATTEST_AFTER_MS,
    private readonly onVerified?: ConnectOptions["onVerified"],
    /** connect's `enclaveKeyId`: the one enclave boot this session verifies, or null (the host's choice). */
    private readonly enclaveKeyId: string | null = null,
  ) {}

  /** What was verified about the enclave this session talks to. */
  /**
   * The attestation document (compact JWS) the current enclave was verified from: keep it with
   * receipts (`cloister receipt verify --document`) to tie their signing key to it.
   */
  get document(): string {
    if (this.#document === null) throw notAttested();
    return this.#document;
  }

  /**
   * The vendor collateral the current enclave's evidence was verified with, as the host served it
   * with `document` (TDX: Intel's TCB info, QE identity, their issuer chains and the PCK chain's
   * CRLs), or null when none was served (`cloister attest --evidence-out` saves it).
   */
  get collateral(): AttestationCollateral | null {
    if (this.#document === null) throw notAttested();
    return this.#collateral;
  }

  /** Whether the session has a verified enclave now (false after a failed re-verification). */
  get attested(): boolean {
    return this.#enclave !== null;
  }

  get enclave(): VerifiedEnclave {
    if (this.#enclave === null) throw notAttested();
    return this.#enclave;
  }

  /**
   * Fetches, challenges and verifies the enclave's attestation document. When the verification
   * fails (an attestation error), the session forgets its earlier one (enclave, document, prepared
   * keys): `enclave` and `document` do not go on showing an enclave that no longer verifies, and the
   * next request verifies again before sealing anything. So does the host's WRONG_ENCLAVE_KEY on the
   * way (transport, origin "host", HTTP 409; see forgetsVerification): the host's word that the
   * enclave key id the client named is not one it serves, the one refusal that speaks of which
   * enclave is there rather than of reaching it. Any other transport failure (host or enclave
   * unreachable, busy, timed out) changes nothing.
   * Aborting `signal` ends this caller's wait at once (ABORTED); the verification itself goes on
   * for the others waiting on it, within its own deadlines.
   */
  attest(options: { readonly signal?: AbortSignal } = {}): Promise<VerifiedEnclave> {
    // What is no signal starts nothing either (BAD_OPTION), as connect's and a request's.
    try {
      checkSignal(options.signal);
    } catch (error) {
      return Promise.reject(error);
    }
    // A caller that has already given up starts nothing.
    if (options.signal?.aborted) return Promise.reject(abortedWait(options.signal));
    // One verification at a time, shared by every caller meanwhile (requests finding it stale or
    // the enclave key changed, the proxy finding the session unverified).
    this.#attesting ??= this.#attest()
      .catch((error: unknown) => {
        // Only a verification that failed, or the host's word that the enclave named is not there,
        // says something about the enclave; one that could not take place (host or enclave
        // unreachable) leaves the last verification as it was.
        if (forgetsVerification(error)) this.#forget();
        throw error;
      })
      .finally(() => {
        this.#attesting = null;
      });
    return untilAborted(this.#attesting, options.signal);
  }

  #forget(): void {
    this.#enclave = null;
    this.#document = null;
    this.#collateral = null;
    this.#documentRoute = null;
    this.#attestedAt = Number.NEGATIVE_INFINITY;
    for (const key of this.#prepared) key.discard();
    this.#prepared = [];
  }

  /**
   * `signal` (connect's, only for its new session's first verification): aborted, it cuts the
   * request under way, and nothing more is sent or kept.
   */
  async #attest(signal?: AbortSignal): Promise<VerifiedEnclave> {
    const answer = await attestationAnswer(this.http, signal, this.enclaveKeyId);
    const document = answer.document;
    // The nonce goes to the enclave whose document this is: a host with a pool of enclaves routes
    // by its key id (a routing hint only; the answer is verified against this document below).
    const named = document === this.#document ? this.#documentRoute : await routingKeyId(document);
    // Another enclave's document than the one named: refused before the nonce question (which would
    // go to the named enclave, and fail only as a nonce answer under another key). The key id is of
    // the key the verifier takes from this same document (document-key.ts reads cnf.jwk as it does:
    // test/attestation/document-key.test.ts), so a document that verifies below is the named boot's.
    if (this.enclaveKeyId !== null && named !== this.enclaveKeyId) {
      throw otherEnclaveDocument(this.enclaveKeyId, named);
    }
    let asked: { nonce: Uint8Array; value: string };
    try {
      asked = await this.#askWithNonce(
        `/v1/attestation/challenge${named === null ? "" : `?enclave=${named}`}`,
        "answer",
        signal,
      );
    } catch (error) {
      if (isWrongEnclaveKey(error)) throw this.#challengeRefused(named, error);
      throw error;
    }
    const { nonce, value: nonceAnswer } = asked;
    let enclave: VerifiedEnclave;
    let collateral: AttestationCollateral | null;
    try {
      collateral = frozenCollateral(parseAttestationCollateral(answer.collateral));
      // Every stage, and the policy's accepted evidence types: the same check as the key broker's.
      // The collateral (the vendor's signed TCB data) is checked with the evidence it belongs to.
      enclave = await verifyWithClientPolicy(
        document,
        this.policy,
        { value: nonce, answer: nonceAnswer },
        this.now(),
        collateral,
      );
    } catch (error) {
      // Aborted meanwhile: ABORTED, as connect promises, not an outcome its caller no longer waits for.
      if (signal?.aborted) throw abortedVerification(signal);
      if (error instanceof AttestationError) {
        throw new ClientError(
          "attestation",
          error.code,
          `attestation failed at stage ${error.stage}: ${error.message}`,
          {
            cause: error,
            stage: error.stage,
          },
        );
      }
      throw new ClientError("attestation", "ATTESTATION_FAILED", "attestation failed", { cause: error });
    }
    // Aborted while the evidence was being verified: nothing of it is kept, no request key made for it.
    if (signal?.aborted) throw abortedVerification(signal);
    this.http.hostAnswered();
    const previous = this.#enclave;
    this.#enclave = enclave;
    this.#document = document;
    this.#collateral = collateral;
    this.#documentRoute = named;
    this.#attestedAt = this.now().getTime();
    try {
      this.onVerified?.(enclave, previous);
    } catch {
      // The caller's hook (a log line): its failure changes nothing about the verification.
    }
    // Keys made for an earlier enclave key are useless now: wipe them, make new ones. The same key
    // found again (every reattestAfterMs) keeps them.
    if (previous === null || !bytesEqual(previous.sealingPublicKey, enclave.sealingPublicKey)) {
      for (const key of this.#prepared) key.discard();
      this.#prepared = [];
    }
    this.#replenish();
    return enclave;
  }

  /**
   * The host's WRONG_ENCLAVE_KEY for the nonce question about the document it served (`named`, that
   * document's unverified cnf.jwk key id): a restart between the two requests, or a host that served
   * a document whose key is not its enclave's (a swapped sealing key, another enclave's document).
   * The client cannot tell which, and verified nothing: transport (retry later), the host's claim,
   * as HttpClient made it. The session forgets its earlier verification (attest): the host no longer
   * presents that boot. Key ids are public; the host's own text is kept as its claim.
   */
  #challengeRefused(named: string | null, error: ClientError): ClientError {
    const earlier =
      this.#enclave === null
        ? ""
        : `; the session's earlier verification (enclave key id ${this.#documentRoute ?? "unknown"}) is forgotten: nothing is sealed until a verification passes`;
    return new ClientError(
      "transport",
      error.code,
      `attestation could not complete at stage nonce: the nonce question for enclave key id ${named ?? "none (the document has no sealing key)"} ` +
        `(the served document's cnf.jwk): expected the host to pass it to that enclave, found the host's refusal ` +
        `(${error.message})${earlier}`,
      { cause: error, origin: "host", ...(error.status === undefined ? {} : { status: error.status }) },
    );
  }

  /**
   * Sends a fresh 32-byte nonce to one of the enclave's signed-answer routes and returns it with
   * the string field `field` of the JSON answer (verified by the caller). `caller`: connect's signal.
   */
  async #askWithNonce(
    path: string,
    field: string,
    caller?: AbortSignal,
  ): Promise<{ nonce: Uint8Array; value: string }> {
    const nonce = randomBytes(32);
    const signal = deadline(this.http.attestationTimeoutMs, caller);
    const response = await this.http.request(path, {
      method: "POST",
      body: JSON.stringify({ nonce: base64url.encode(nonce) }),
      contentType: "application/json",
      signal,
    });
    const text = await readAnswer(response, NONCE_ANSWER_MAX_BYTES, signal, path);
    let value: unknown;
    try {
      value = (JSON.parse(text) as Record<string, unknown>)[field];
    } catch (error) {
      throw transportError("BAD_RESPONSE", `${path}: response is not JSON`, error);
    }
    if (typeof value !== "string") {
      throw transportError(
        "BAD_RESPONSE",
        `${path}: response field ${field}: expected a string, found ${typeof value}`,
      );
    }
    return { nonce, value };
  }

  /**
   * Makes request keys ahead of time (a fresh X25519 key and its shared key with the enclave's
   * key each; sealed/request.ts) so sealing a request costs a box and a hash, not a key exchange,
   * on its way to the first token. Runs after attestation and once an answer has started
   * streaming; a request that finds no key ready waits for one still being made (#takeMaking).
   */
  #replenish(): void {
    const enclave = this.#enclave;
    if (enclave === null) return;
    const target = Math.min(this.#peakInFlight, MAX_PREPARED_KEYS);
    // A key a request waits for (taken) is that request's: not one made ahead for the next.
    const ahead = () => this.#prepared.length + this.#making.filter((m) => !m.taken).length;
    while (ahead() < target) {
      const making: KeyInMaking = { enclave, key: prepareRequestKey(enclave.sealingPublicKey), taken: false };
      this.#making.push(making);
      const done = () => {
        this.#making = this.#making.filter((m) => m !== making);
      };
      making.key.then(
        (key) => {
          done();
          // A request waiting for it has it (#takeMaking).
          if (making.taken) return;
          // Kept while the enclave key is the one it was made for: a re-verification finding the
          // same key (every reattestAfterMs) makes no key useless; a changed or failed one does.
          const current = this.#enclave;
          if (current !== null && bytesEqual(current.sealingPublicKey, enclave.sealingPublicKey)) {
            this.#prepared.push(key);
          } else {
            key.discard();
            // Counted while it was made (the verification's own #replenish started none): one in its place.
            this.#replenish();
          }
        },
        // Made again at the next request's start (sealRequest reports any real problem).
        done,
      );
    }
  }

  /** A prepared request key for `enclavePublicKey`, if one is ready. */
  #takePrepared(enclavePublicKey: Uint8Array): PreparedRequestKey | undefined {
    const key = this.#prepared.shift();
    if (key === undefined) return undefined;
    if (bytesEqual(key.enclavePublicKey, enclavePublicKey)) return key;
    key.discard();
    return undefined;
  }

  /**
   * When no key is ready: the oldest one still being made for `enclavePublicKey`, once made. It
   * was started before this request, so it is ready no later than a key the request would start
   * now, and two made side by side slow each other (the first request after connect, or after a
   * re-verification, found one being made). Undefined when none is, or its making failed.
   */
  async #takeMaking(enclavePublicKey: Uint8Array): Promise<PreparedRequestKey | undefined> {
    const making = this.#making.find((m) => !m.taken && bytesEqual(m.enclave.sealingPublicKey, enclavePublicKey));
    if (making === undefined) return undefined;
    making.taken = true;
    return making.key.catch(() => undefined);
  }

  /**
   * Asks the enclave, through the host, for the signed head of its audit log, bound to a fresh
   * nonce, and verifies it under the attested signing key. A stored log that verifies against it
   * (`verifyAuditLog(lines, key, {expect})`, `cloister audit verify --checkpoint`) is complete up
   * to the moment of asking: the host cannot cut records from its end, nor answer with an old head.
   */
  async auditCheckpoint(): Promise<VerifiedAuditCheckpoint> {
    // Its signing key comes from the verification: not from one too old that would not pass again.
    await this.#reattestIfStale();
    const enclave = this.enclave;
    const audit = (enclave.manifest.manifest as { audit?: { enabled?: unknown } } | null)?.audit;
    if (audit?.enabled !== true) {
      throw new ClientError(
        "configuration",
        "AUDIT_DISABLED",
        "audit checkpoint: the attested manifest disables auditing (audit.enabled is false)",
      );
    }
    // The key id of its verified document's sealing key (cnf.jwk), found when that document was
    // fetched: the routing id its verification was asked with (#attest), set and forgotten with it.
    const named = this.#documentRoute;
    const { nonce, value: line } = await this.#askWithNonce(
      `/v1/audit/checkpoint${named === null ? "" : `?enclave=${named}`}`,
      "checkpoint",
    );
    const checked = checkAuditCheckpoint(line, enclave.signingPublicKey, { nonce });
    if (!checked.ok) {
      // Said by kind only: the rest of the checker's message would repeat what the host sent.
      throw new ClientError(
        "integrity",
        "AUDIT_CHECKPOINT_INVALID",
        `audit checkpoint: ${CHECKPOINT_PROBLEMS[checked.problem]}`,
      );
    }
    const checkpoint = checked.checkpoint;
    return {
      count: checkpoint.count,
      lastRecordHash: checkpoint.lastRecordHash,
      time: checkpoint.time,
      line,
      signingPublicKey: toHex(enclave.signingPublicKey),
    };
  }

  /**
   * Streams a chat answer: text chunks, then one `done` event with usage, receipt and audit
   * reference. Messages and options out of the enclave's limits are refused (configuration) before
   * anything is sent.
   */
  chat(messages: readonly ChatMessage[], options: GenerationOptions = {}): AsyncGenerator<ChatEvent> {
    return this.#stream("chat", { messages }, options);
  }

  /** Streams a completion of `prompt`. */
  completeStream(prompt: string, options: GenerationOptions = {}): AsyncGenerator<ChatEvent> {
    return this.#stream("complete", { prompt }, options);
  }

  /** Completes `prompt` and returns the whole answer, with its checked receipt and audit reference. */
  async complete(prompt: string, options: GenerationOptions = {}): Promise<Completion> {
    let text = "";
    for await (const event of this.completeStream(prompt, options)) {
      if (event.type === "text") text += event.text;
      else {
        const { usage, finishReason, receipt, audit, redacted } = event;
        return { text, usage, finishReason, receipt, audit, redacted };
      }
    }
    throw new ClientError("integrity", "STREAM_TRUNCATED", "response ended without a final frame");
  }

  async *#stream(kind: RequestKind, content: RequestContent, options: GenerationOptions): AsyncGenerator<ChatEvent> {
    // Before anything is sealed or sent (a re-attestation included).
    checkRequestArguments(content, options);
    const body = {
      ...content,
      ...(options.maxTokens === undefined ? {} : { maxTokens: options.maxTokens }),
      ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
      ...(options.topP === undefined ? {} : { topP: options.topP }),
      ...(options.seed === undefined ? {} : { seed: options.seed }),
      ...(options.stop === undefined ? {} : { stop: options.stop }),
      tenant: this.tenant,
    };
    this.#inFlight++;
    this.#peakInFlight = Math.max(this.#peakInFlight, this.#inFlight);
    try {
      yield* this.#send(kind, body, options);
    } finally {
      this.#inFlight--;
    }
  }

  /**
   * Verifies the enclave again when the last verification is older than reattestAfterMs (or the
   * clock went back past it: a negative age counts as stale too).
   */
  async #reattestIfStale(signal?: AbortSignal): Promise<void> {
    const age = this.now().getTime() - this.#attestedAt;
    if (age >= 0 && age < this.reattestAfterMs) return;
    await this.attest(signal === undefined ? {} : { signal });
  }

  async *#send(kind: RequestKind, body: object, options: GenerationOptions): AsyncGenerator<ChatEvent> {
    // Nothing is sealed to an enclave whose verification is stale and does not pass again.
    await this.#reattestIfStale(options.signal);
    let response: TransportResponse | undefined;
    let context: Awaited<ReturnType<typeof sealRequest>>["context"] | undefined;
    /** The verified enclave the request was sealed to: its receipt must come from it. */
    let sealedTo: VerifiedEnclave = this.enclave;
    for (let attempt = 0; attempt < 2 && response === undefined; attempt++) {
      sealedTo = this.enclave;
      // Checked on every attempt: a re-verification (stale, or after WRONG_ENCLAVE_KEY) may have
      // found another enclave, serving another model the policy also accepts; the request is then
      // refused, not resealed to it.
      checkExpectedModel(sealedTo, options.expectModel);
      const enclavePublicKey = sealedTo.sealingPublicKey;
      // A caller that gave up (before, or while its key was being made) has nothing sealed or sent,
      // whatever its transport does with an aborted signal; one that gave up before takes no key
      // made ahead for the next request.
      const signal = options.signal;
      if (signal?.aborted) throw callerAborted(signal, "request", signal.reason);
      const prepared = this.#takePrepared(enclavePublicKey) ?? (await this.#takeMaking(enclavePublicKey));
      if (signal?.aborted) {
        prepared?.discard();
        throw callerAborted(signal, "request", signal.reason);
      }
      let sealed: Awaited<ReturnType<typeof sealRequest>>;
      try {
        sealed = await sealRequest({ enclavePublicKey, kind, body, ...(prepared === undefined ? {} : { prepared }) });
      } catch (error) {
        // Each message and the prompt were checked against the limits above; only the whole can be
        // too large to seal (more than the enclave takes in one request).
        if (error instanceof SealedError && error.code === "REQUEST_TOO_LARGE") {
          throw new ClientError("configuration", "REQUEST_TOO_LARGE", error.message, { cause: error });
        }
        throw error;
      } finally {
        // Wiped if sealing failed before taking it (e.g. a body over the size limit); a no-op otherwise.
        prepared?.discard();
      }
      context = sealed.context;
      try {
        response = await this.http.request("/v1/sealed", {
          method: "POST",
          body: sealed.envelope,
          contentType: "application/octet-stream",
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        });
      } catch (error) {
        // The enclave's keys changed (restart): re-attest once, fully, then reseal and resend.
        if (attempt === 0 && error instanceof ClientError && error.code === "WRONG_ENCLAVE_KEY") {
          // Compared with the key this request was sealed to: a concurrent request may already have
          // re-attested to the new key, and then this one reseals to it without attesting again.
          // (A session whose verification failed meanwhile has no enclave: it verifies again.)
          const after =
            !this.attested || bytesEqual(this.enclave.sealingPublicKey, enclavePublicKey)
              ? (await this.attest(options.signal === undefined ? {} : { signal: options.signal })).sealingPublicKey
              : this.enclave.sealingPublicKey;
          // Resend only to a key that really changed: a host that answers WRONG_ENCLAVE_KEY while
          // the key is unchanged (it may have forwarded the request) must not get the prompt twice.
          if (bytesEqual(enclavePublicKey, after)) {
            throw new ClientError(
              "integrity",
              "WRONG_ENCLAVE_KEY_UNCHANGED",
              "the host reported a changed enclave key, but re-attestation found the same key; not resending",
            );
          }
          continue;
        }
        throw error;
      }
    }
    if (response === undefined || context === undefined) {
      throw new ClientError("integrity", "STREAM_TRUNCATED", "response has no body");
    }
    // The answer is on its way: make the next request's key while it streams, once its first text
    // is out (the key's work does not delay that text), or when it ends without any.
    let replenished = false;
    const replenish = () => {
      if (replenished) return;
      replenished = true;
      this.#replenish();
    };
    try {
      let answer = "";
      for await (const event of openResponseFrames(context, response.body)) {
        if (event.type === "data") {
          answer += event.text;
          yield { type: "text", text: event.text };
          replenish();
        } else if (event.type === "final") {
          await checkReceipt(event, sealedTo, context.requestHash, answer);
          checkRedactions(event.redacted, sealedTo);
          yield {
            type: "done",
            usage: event.usage,
            finishReason: event.finishReason,
            receipt: event.receipt,
            audit: auditReference(context.requestId, event.auditOpening),
            redacted: event.redacted,
          };
          return;
        } else {
          const kindOfError = Object.hasOwn(FRAME_ERROR_KINDS, event.code)
            ? (FRAME_ERROR_KINDS[event.code] as ClientErrorKind)
            : UNKNOWN_FRAME_ERROR_KIND;
          throw new ClientError(
            kindOfError,
            event.code,
            // The code is the error's own (`kind: CODE: message`): the message does not repeat it.
            `enclave refused or failed the request${event.detail === null ? "" : ` (${event.detail})`}`,
            // Authenticated under the key this request was sealed to: the enclave's own word.
            { origin: "enclave", audit: auditReference(context.requestId, event.auditOpening) },
          );
        }
      }
    } catch (error) {
      if (error instanceof SealedError) {
        throw new ClientError("integrity", error.code, `response integrity: ${error.message}`, { cause: error });
      }
      if (error instanceof ClientError) throw error;
      if (options.signal?.aborted) throw callerAborted(options.signal, "request", error);
      // The host went silent mid-answer: nothing was shown as whole; retry later.
      if ((error as { code?: unknown } | null)?.code === "HOST_TIMEOUT") {
        throw transportError("HOST_TIMEOUT", "the host sent nothing more of the answer in time", error);
      }
      throw new ClientError("integrity", "STREAM_TRUNCATED", "response stream broke before its final frame", {
        cause: error,
      });
    } finally {
      replenish();
    }
    throw new ClientError("integrity", "STREAM_TRUNCATED", "response ended without a final frame");
  }
}

/** connect()'s `signal` aborted while the enclave's evidence was verified (Session's #attest). */
function abortedVerification(signal: AbortSignal): ClientError {
  return callerAborted(
    signal,
    "connect",
    signal.reason,
    " while the enclave was being verified: nothing of it is kept",
  );
}

function abortedWait(signal: AbortSignal): ClientError {
  return callerAborted(signal, "request", signal.reason, " while the enclave was being verified");
}

/**
 * `work` (a verification other requests may share), or ABORTED as soon as `signal` aborts: the
 * caller stops waiting, the work goes on for the others.
 */
async function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  // Not aborted yet: attest() refuses an aborted signal before it starts or joins any work.
  const aborted = () => abortedWait(signal);
  let onAbort = (): void => {};
  const abort = new Promise<never>((_, reject) => {
    onAbort = () => reject(aborted());
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([work, abort]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** MODEL_MISMATCH unless the enclave serves the model the caller expects (GenerationOptions.expectModel). */
function checkExpectedModel(enclave: VerifiedEnclave, expected: GenerationOptions["expectModel"]): void {
  if (expected === undefined) return;
  const { service, model } = enclave.manifest;
  if (service.name === expected.service && model.file === expected.file) return;
  const name = (s: string, f: string) => JSON.stringify(`${s}/${f}`.slice(0, 200));
  throw new ClientError(
    "attestation",
    "MODEL_MISMATCH",
    `expectModel: expected the enclave to serve ${name(expected.service, expected.file)}, found the enclave verified for this request serves ${name(service.name, model.file)} (sha256 ${model.sha256}); the request was not sent`,
    { stage: "manifest" },
  );
}

function auditReference(requestId: string, opening: string | null): AuditReference | null {
  return opening === null ? null : new AuditReference(auditRequestIdHash(requestId), opening);
}
