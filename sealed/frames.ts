/**
 * Response frames: sealing (enclave side), framing, and per-frame opening (client side).
 *
 * Wire layout of one frame (docs/protocol.md is the reference):
 *
 * ```
 * offset  size  field
 *      0     4  L, u32 big-endian: length of what follows (8 + 16 + P)
 *      4     8  seq, u64 big-endian, in the clear (0, 1, 2, ...)
 *     12    16  Poly1305 MAC
 *     28     P  XSalsa20 ciphertext of the frame plaintext: type byte ‖ payload
 * ```
 *
 * Each frame is a `secretbox` under the per-request response key (see crypto.ts
 * `deriveResponseKey`) with nonce = 0x01 ‖ 15 zero bytes ‖ u64 BE seq. The clear seq is therefore
 * authenticated: a host that changes it changes the nonce and the MAC fails (FRAME_TAMPERED).
 * Frame plaintext: type ‖ payload ‖ 0x80 ‖ zero bytes, padded to a multiple of 32 bytes (and to
 * its Padmé length when larger; padding.ts) so the host sees the size of a frame's text only in
 * 32-byte steps. Types: 0x01 data (UTF-8 text), 0x02 final (JSON summary, with what PII the
 * enclave redacted), 0x03 error (JSON code). Data frames — the hot path — carry raw UTF-8, no
 * JSON; the once-per-stream final and error frames carry small JSON objects.
 *
 * This module checks framing and authenticity of single frames. Ordering, completeness and
 * replays across frames are judged in response.ts.
 */
import { readU32BE, readU64BE, writeU32BE, writeU64BE } from "./bytes.ts";
import { BOX_NONCE_LENGTH, MAC_LENGTH, SHARED_KEY_LENGTH, secretboxOpen, secretboxSealInto } from "./crypto.ts";
import { MAX_REQUEST_CIPHERTEXT_LENGTH, type RequestKind } from "./envelope.ts";
import { FrameMalformedError, SealedInvalidArgumentError, SealerClosedError } from "./errors.ts";
import { FRAME_PAD_BLOCK, FRAME_PAD_MARKER, paddedLength } from "./padding.ts";
import { MAX_RECEIPT_LENGTH } from "./receipt.ts";

/** What a frame error code asks of its reader (FRAME_ERROR_KINDS). */
export type FrameErrorKind = "policy" | "transport";

/**
 * The kind of each code an enclave's sealed error frame carries (docs/errors.md, "Enclave": the
 * `frame` rows and those that say they arrive in an error frame). A table, so that a new frame code
 * is classified when it is added (test/client/frame-error-kinds.test.ts checks the docs against it).
 * The enclave sends no other code in a frame (enclave/service.ts `frameErrorCode`), the SDK classifies
 * by it (the kinds are the SDK's `ClientErrorKind` of that name): one table for both sides.
 *
 * `policy`: the enclave refused the request itself under its attested configuration; the same
 * request is refused again, so it is not retried (ENGINE_REQUEST: a field the engine refuses;
 * PROMPT_TOO_LONG: a prompt over the model's context; CHAT_TEMPLATE_REFUSED: a conversation shape
 * the model's chat template did not render; CHAT_WRAPPER_FAILED: a new conversation shape, refused
 * until the enclave restarts, since its template's worker holds another Jinja wrapper than its engine's).
 *
 * `transport`: the enclave could not answer now, through no fault of the request: retry later (a
 * pool host may send the retry to another member). ENGINE_BUSY, ENGINE_CLOSED (shutting down),
 * AUDIT_FAILED (that enclave refuses everything until restarted, but a pool host answers a request
 * sealed to it WRONG_ENCLAVE_KEY, and the SDK re-attests to another member and resends; a single
 * enclave refuses the retry before opening it). INFERENCE_FAILED (an engine failure without a
 * code of its own), ENGINE_ENDED (the engine's stream stopped without a result: closed under it)
 * and GENERATION_FAILED (the model runtime failed while generating) are the enclave's failures, not
 * refusals of the prompt: the engine's refusals of a request have their own codes (ENGINE_REQUEST,
 * PROMPT_TOO_LONG), so nothing says the same prompt fails again, and a runtime failure (memory, a
 * sequence) may well not; a retry costs one more sealed request to the same attested enclave.
 */
export const FRAME_ERROR_KINDS: Readonly<Record<string, FrameErrorKind>> = {
  REQUEST_INVALID: "policy",
  POLICY_BLOCKED: "policy",
  PII_BLOCKED: "policy",
  ENGINE_REQUEST: "policy",
  PROMPT_TOO_LONG: "policy",
  CHAT_TEMPLATE_REFUSED: "policy",
  CHAT_WRAPPER_FAILED: "policy",
  ENGINE_BUSY: "transport",
  ENGINE_CLOSED: "transport",
  ENGINE_ENDED: "transport",
  INFERENCE_FAILED: "transport",
  GENERATION_FAILED: "transport",
  AUDIT_FAILED: "transport",
};

export const FRAME_LENGTH_PREFIX = 4;
export const FRAME_SEQ_LENGTH = 8;
/** Smallest valid L: seq, MAC, the type byte and the padding marker. */
export const MIN_FRAME_LENGTH = FRAME_SEQ_LENGTH + MAC_LENGTH + 2;
/** Largest valid L (1 MiB): bounds what one frame can make the client buffer. */
export const MAX_FRAME_LENGTH = 1024 * 1024;
/** Direction byte of response nonces (enclave → client). */
export const RESPONSE_NONCE_DIRECTION = 0x01;

export const FRAME_TYPE_DATA = 0x01;
export const FRAME_TYPE_FINAL = 0x02;
export const FRAME_TYPE_ERROR = 0x03;

/**
 * Padded plaintext length of a data frame whose type ‖ payload ‖ marker is `unpadded` bytes long:
 * 32-byte steps and Padmé, never past the largest valid frame. The client requires exactly this.
 */
export function framePlaintextLength(unpadded: number): number {
  return Math.min(paddedLength(unpadded, FRAME_PAD_BLOCK), MAX_FRAME_LENGTH - FRAME_SEQ_LENGTH - MAC_LENGTH);
}

/** Error codes an enclave may put in an error frame: upper-case identifiers. */
export const SAFE_ERROR_CODE = /^[A-Z][A-Z0-9_]{1,63}$/;
export const MAX_ERROR_DETAIL_LENGTH = 200;
/**
 * Plaintext length of every final and error frame, whatever it says: the host must not tell which
 * error (or which rule's reason, or how many PII kinds) ended an answer, nor a stop at the end of
 * text versus at the token limit, by the last frame's size. The largest terminal plaintext is an
 * error frame: type (1) + JSON (`{"code":"` + 64 + `","detail":"` + 200 UTF-16 units × at most 6
 * bytes escaped + `","auditOpening":"` + 64 + `"}` = 1369) + marker (1) = 1371 bytes. A final frame
 * is at most about 1300: its counts and time (< 150), the receipt line (≤ MAX_RECEIPT_LENGTH = 900
 * ASCII characters, whose ≤ 40 quotes are escaped), the audit opening (64 hex, ~85 with its name)
 * and the redactions (`,"redacted":{` 13 + 7 kinds × at most `"credit_card":` 14 + 8 digits + a
 * comma 1 + `}` 1 = 175).
 */
export const TERMINAL_FRAME_PLAINTEXT_LENGTH = 1536;

/** An audit opening key in a final frame: 32 bytes as lower-case hex. */
export const AUDIT_OPENING = /^[0-9a-f]{64}$/;

export type FinishReason = "stop" | "length";

/**
 * The PII kinds a final frame may say were redacted: the manifest's entity names too
 * (manifests/schema.ts PII_ENTITIES is this list: sealed/ may not import manifests/).
 */
export const REDACTION_KINDS = ["email", "phone", "credit_card", "iban", "us_ssn", "ip_address", "secret_key"] as const;
export type RedactionKind = (typeof REDACTION_KINDS)[number];
/**
 * Most a count of one kind may be: bounds a count (8 digits) and so the final frame. One redaction
 * per byte of a request; the enclave's redaction rounds and a conversation's messages are summed,
 * which can in theory pass it: the count is then said as this, read as "at least" (redactionsOf).
 */
export const MAX_REDACTION_COUNT = MAX_REQUEST_CIPHERTEXT_LENGTH;

/**
 * The final frame's `redacted` for the redaction counts summed per kind (kinds in `counts`' order):
 * null when there are none, and a count over MAX_REDACTION_COUNT said as MAX_REDACTION_COUNT
 * ("at least"), so a sum past it cannot make the final frame fail.
 */
export function redactionsOf(counts: ReadonlyMap<RedactionKind, number>): Redactions {
  if (counts.size === 0) return null;
  return Object.fromEntries([...counts].map(([kind, count]) => [kind, Math.min(count, MAX_REDACTION_COUNT)]));
}
/**
 * Which PII kinds the enclave replaced in the prompt before the model saw it, and how many of each
 * (each ≥ 1), or null when it replaced nothing. Kinds and counts only: never the text or where it was.
 */
export type Redactions = Readonly<Partial<Record<RedactionKind, number>>> | null;

/**
 * Why `redacted` is not a redaction list (null or a non-empty object of known kinds to counts
 * 1..MAX_REDACTION_COUNT), or null when it is one. The sealer and the client's parser both ask it.
 */
export function redactionsProblem(redacted: unknown): string | null {
  if (redacted === null) return null;
  if (typeof redacted !== "object" || Array.isArray(redacted)) return "null or an object of PII kinds to counts";
  const entries = Object.entries(redacted);
  if (entries.length === 0) return "null or at least one PII kind (null when nothing was redacted)";
  // Keys are distinct: more than REDACTION_KINDS.length of them include an unknown kind, refused below.
  for (const [kind, count] of entries) {
    if (!(REDACTION_KINDS as readonly string[]).includes(kind)) {
      return `PII kinds among ${REDACTION_KINDS.join(", ")}, found an unknown kind`;
    }
    if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 1 || count > MAX_REDACTION_COUNT) {
      return `a count of ${kind} of 1..${MAX_REDACTION_COUNT}, found ${typeof count === "number" ? count : typeof count}`;
    }
  }
  return null;
}

export interface ResponseUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Time to first token in milliseconds, measured inside the enclave. */
  readonly ttftMs: number;
}

export interface ResponseSummary extends ResponseUsage {
  readonly finishReason: FinishReason;
  /** The enclave's signed receipt line (sealed/receipt.ts). */
  readonly receipt: string;
  /**
   * The opening key (64 hex) of this request's audit record's prompt and answer commitments, or null
   * when the manifest's audit keeps none. Sealed to the client only, outside the receipt.
   */
  readonly auditOpening: string | null;
  /** The PII the enclave redacted from the prompt before the model saw it (sealed to the client only). */
  readonly redacted: Redactions;
}

const utf8 = new TextEncoder();

/** Writes the response nonce for `seq` into `nonce` (24 bytes, reused by its owner). */
export function writeResponseNonce(nonce: Uint8Array, seq: number): void {
  nonce[0] = RESPONSE_NONCE_DIRECTION;
  writeU64BE(nonce, 16, seq);
}

function newNonceBuffer(): Uint8Array {
  const nonce = new Uint8Array(BOX_NONCE_LENGTH);
  nonce[0] = RESPONSE_NONCE_DIRECTION;
  return nonce;
}

function assertResponseKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== SHARED_KEY_LENGTH) {
    throw new SealedInvalidArgumentError(`response key: expected ${SHARED_KEY_LENGTH} bytes`);
  }
}

function checkAuditOpening(frame: "final" | "error", opening: string | null): void {
  if (opening !== null && !AUDIT_OPENING.test(opening)) {
    throw new SealedInvalidArgumentError(`${frame} frame auditOpening: expected null or 64 lower-case hex digits`);
  }
}

function nonNegativeInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new SealedInvalidArgumentError(`${name}: expected a non-negative integer, found ${value}`);
  }
}

/**
 * Enclave side: seals the frames of one response, numbering them 0, 1, 2, ... The final or error
 * frame ends the stream; sealing after it throws SEALER_CLOSED, so a frame counter can never be
 * reused under the key. It takes the response key it is given and wipes it when the stream ends
 * (`dispose`).
 */
export class ResponseSealer {
  readonly #key: Uint8Array;
  readonly #nonce = newNonceBuffer();
  #seq = 0;
  #closed = false;

  constructor(responseKey: Uint8Array) {
    assertResponseKey(responseKey);
    this.#key = responseKey;
  }

  /** Sequence number the next frame will carry (= frames sealed so far). */
  get nextSeq(): number {
    return this.#seq;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** A data frame carrying one text chunk. */
  data(text: string): Uint8Array {
    if (typeof text !== "string")
      throw new SealedInvalidArgumentError(`data frame text: expected a string, found ${typeof text}`);
    return this.#seal(FRAME_TYPE_DATA, text.length * 3, (target) => utf8.encodeInto(text, target).written);
  }

  /** The final frame: usage and finish reason; it also carries the total frame count. */
  final(summary: ResponseSummary): Uint8Array {
    if (this.#closed) throw new SealerClosedError();
    nonNegativeInteger("final frame promptTokens", summary.promptTokens);
    nonNegativeInteger("final frame completionTokens", summary.completionTokens);
    if (!Number.isFinite(summary.ttftMs) || summary.ttftMs < 0) {
      throw new SealedInvalidArgumentError(
        `final frame ttftMs: expected a non-negative number, found ${summary.ttftMs}`,
      );
    }
    if (typeof summary.receipt !== "string" || summary.receipt.length > MAX_RECEIPT_LENGTH) {
      throw new SealedInvalidArgumentError(`final frame receipt: expected at most ${MAX_RECEIPT_LENGTH} characters`);
    }
    checkAuditOpening("final", summary.auditOpening);
    const redactions = redactionsProblem(summary.redacted);
    if (redactions !== null) throw new SealedInvalidArgumentError(`final frame redacted: expected ${redactions}`);
    if (summary.finishReason !== "stop" && summary.finishReason !== "length") {
      throw new SealedInvalidArgumentError(
        `final frame finishReason: expected "stop" or "length", found ${String(summary.finishReason)}`,
      );
    }
    const json = JSON.stringify({
      promptTokens: summary.promptTokens,
      completionTokens: summary.completionTokens,
      ttftMs: summary.ttftMs,
      finishReason: summary.finishReason,
      frameCount: this.#seq + 1,
      receipt: summary.receipt,
      auditOpening: summary.auditOpening,
      redacted: summary.redacted,
    });
    return this.#sealTerminal(FRAME_TYPE_FINAL, json);
  }

  /**
   * An error frame carrying a safe error code (and optional non-secret detail, e.g. a rule id), and
   * the audit opening of a request whose record commits to its prompt (a blocked or failed request),
   * so the client can show that record is about its prompt.
   */
  error(code: string, detail: string | null = null, auditOpening: string | null = null): Uint8Array {
    if (this.#closed) throw new SealerClosedError();
    checkAuditOpening("error", auditOpening);
    if (!SAFE_ERROR_CODE.test(code)) {
      throw new SealedInvalidArgumentError("error frame code: expected an upper-case identifier (A-Z, 0-9, _)");
    }
    if (detail !== null && (typeof detail !== "string" || detail.length > MAX_ERROR_DETAIL_LENGTH)) {
      throw new SealedInvalidArgumentError(
        `error frame detail: expected null or at most ${MAX_ERROR_DETAIL_LENGTH} characters`,
      );
    }
    return this.#sealTerminal(FRAME_TYPE_ERROR, JSON.stringify({ code, detail, auditOpening }));
  }

  #sealTerminal(type: number, json: string): Uint8Array {
    const frame = this.#seal(
      type,
      json.length * 3,
      (target) => utf8.encodeInto(json, target).written,
      TERMINAL_FRAME_PLAINTEXT_LENGTH,
    );
    this.dispose();
    return frame;
  }

  /**
   * Ends the stream: no frame can follow (SEALER_CLOSED), and the response key, of no further use
   * here, is wiped. The final and error frames do it; the enclave calls it for a stream that ends
   * without one (its client went away, the answer was abandoned or cut at shutdown).
   */
  dispose(): void {
    this.#closed = true;
    this.#key.fill(0);
  }

  /**
   * Encodes the plaintext straight into tweetnacl's input layout (32 zero bytes, type, payload,
   * padding) and seals into the output buffer, whose first 16 bytes (left zero by secretbox) then
   * receive the length prefix and seq: the wire frame is a view of that one buffer, no further copies.
   */
  #seal(
    type: number,
    maxPayload: number,
    write: (target: Uint8Array) => number,
    fixedPlaintextLength?: number,
  ): Uint8Array {
    if (this.#closed) throw new SealerClosedError();
    const content = 2 + maxPayload; // type ‖ payload ‖ marker, at most
    const input = new Uint8Array(
      32 + Math.max(paddedLength(content, FRAME_PAD_BLOCK), content, fixedPlaintextLength ?? 0),
    );
    input[32] = type;
    const written = write(input.subarray(33, 33 + maxPayload));
    input[33 + written] = FRAME_PAD_MARKER; // then zeros up to the padded length
    const unpadded = 2 + written;
    if (unpadded + 24 > MAX_FRAME_LENGTH) {
      throw new SealedInvalidArgumentError(
        `frame length: expected at most ${MAX_FRAME_LENGTH}, found ${unpadded + 24}`,
      );
    }
    if (fixedPlaintextLength !== undefined && unpadded > fixedPlaintextLength) {
      // Unreachable with the checks on codes and details (see TERMINAL_FRAME_PLAINTEXT_LENGTH).
      throw new SealedInvalidArgumentError(
        `terminal frame plaintext: expected at most ${fixedPlaintextLength} bytes, found ${unpadded}`,
      );
    }
    const plaintextLength = fixedPlaintextLength ?? framePlaintextLength(unpadded);
    const length = 32 + plaintextLength; // 32 zero bytes + plaintext
    const frameLength = length - 8; // L = seq (8) + MAC (16) + plaintext
    const seq = this.#seq;
    writeResponseNonce(this.#nonce, seq);
    const out = new Uint8Array(length);
    secretboxSealInto(out, input, length, this.#nonce, this.#key);
    input.fill(0, 32, length);
    writeU32BE(out, 4, frameLength);
    writeU64BE(out, 8, seq);
    this.#seq = seq + 1;
    return out.subarray(4);
  }
}

/**
 * Client side: the secret a sealed request leaves behind (the response key, derived from the
 * `nacl.box.before` shared key and the request nonce) plus the request id. The key stays in a
 * private field; it is never serialised or shown by `console.log`/`JSON.stringify`.
 */
export class ClientRequestContext {
  readonly requestId: string;
  readonly kind: RequestKind;
  /** SHA-256 (hex) of the request's plaintext JSON (unpadded): what the enclave's receipt names. */
  readonly requestHash: string;
  readonly #key: Uint8Array;
  readonly #nonce = newNonceBuffer();

  constructor(requestId: string, kind: RequestKind, responseKey: Uint8Array, requestHash: string) {
    assertResponseKey(responseKey);
    this.requestId = requestId;
    this.kind = kind;
    this.requestHash = requestHash;
    this.#key = responseKey;
  }

  /** Opens one frame body sealed under seq; null when authentication fails. */
  openFrame(seq: number, box: Uint8Array): Uint8Array | null {
    writeResponseNonce(this.#nonce, seq);
    return secretboxOpen(box, this.#nonce, this.#key);
  }

  toJSON(): { requestId: string; kind: RequestKind } {
    return { requestId: this.requestId, kind: this.kind };
  }
}

/** One complete frame off the wire, not yet authenticated. */
export interface RawFrame {
  /** The clear seq (authenticated only once the frame opens). */
  readonly seq: number;
  /** MAC ‖ ciphertext. */
  readonly box: Uint8Array;
  /** Bytes the frame took on the wire, prefix included. */
  readonly byteLength: number;
}

/**
 * Splits a byte stream into frames, whatever the chunking: chunks may split or merge frames
 * arbitrarily. A frame that lies inside one chunk is returned as a view of it (no copy), so do not
 * reuse a chunk's buffer after pushing it; a frame spread over chunks is assembled once into a
 * buffer of its exact size (linear in the stream length). After an error the decoder stays failed.
 *
 * A framing error throws for the whole chunk; the frames that chunk completed before the error are
 * then in `failure`, so a caller can judge them first, as it would have had the bad bytes come in
 * a later chunk (chunking is the host's to choose; it must not change the verdict).
 */
export class FrameDecoder {
  readonly #lengthBytes = new Uint8Array(FRAME_LENGTH_PREFIX);
  #lengthFill = 0;
  #body: Uint8Array | null = null;
  #bodyFill = 0;
  #failed: FrameMalformedError | null = null;
  #failure: DecoderFailure | null = null;

  /** Bytes held of an incomplete frame. */
  get pendingBytes(): number {
    return this.#body === null ? this.#lengthFill : FRAME_LENGTH_PREFIX + this.#bodyFill;
  }

  /** Set by the push that failed: what it completed before the error, and the bytes from there. */
  get failure(): DecoderFailure | null {
    return this.#failure;
  }

  push(chunk: Uint8Array): RawFrame[] {
    if (this.#failed !== null) throw this.#failed;
    const frames: RawFrame[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#body === null) {
        let length: number;
        if (this.#lengthFill === 0 && chunk.length - offset >= FRAME_LENGTH_PREFIX) {
          length = readU32BE(chunk, offset);
          offset += FRAME_LENGTH_PREFIX;
        } else {
          const take = Math.min(FRAME_LENGTH_PREFIX - this.#lengthFill, chunk.length - offset);
          this.#lengthBytes.set(chunk.subarray(offset, offset + take), this.#lengthFill);
          this.#lengthFill += take;
          offset += take;
          if (this.#lengthFill < FRAME_LENGTH_PREFIX) break;
          this.#lengthFill = 0;
          length = readU32BE(this.#lengthBytes, 0);
        }
        if (length < MIN_FRAME_LENGTH || length > MAX_FRAME_LENGTH) {
          throw this.#fail(
            `frame length: expected ${MIN_FRAME_LENGTH}..${MAX_FRAME_LENGTH}, found ${length}`,
            frames,
            chunk.length - offset + FRAME_LENGTH_PREFIX,
          );
        }
        if (chunk.length - offset >= length) {
          const bytes = chunk.length - offset + FRAME_LENGTH_PREFIX;
          frames.push(this.#frame(chunk.subarray(offset, offset + length), frames, bytes));
          offset += length;
          continue;
        }
        this.#body = new Uint8Array(length);
        this.#bodyFill = 0;
      }
      const body = this.#body;
      const take = Math.min(body.length - this.#bodyFill, chunk.length - offset);
      body.set(chunk.subarray(offset, offset + take), this.#bodyFill);
      this.#bodyFill += take;
      offset += take;
      if (this.#bodyFill === body.length) {
        this.#body = null;
        this.#bodyFill = 0;
        frames.push(this.#frame(body, frames, chunk.length - offset + FRAME_LENGTH_PREFIX + body.length));
      }
    }
    return frames;
  }

  /** `frames`, `bytes`: as for `#fail`, should the seq be out of range. */
  #frame(body: Uint8Array, frames: readonly RawFrame[], bytes: number): RawFrame {
    const seq = readU64BE(body, 0);
    if (seq < 0) throw this.#fail("frame seq: expected a value below 2^53, found a larger one", frames, bytes);
    return { seq, box: body.subarray(FRAME_SEQ_LENGTH), byteLength: FRAME_LENGTH_PREFIX + body.length };
  }

  /**
   * Fails the decoder for good. `bytes`: from the bad frame's first byte (its length prefix, maybe
   * held from earlier chunks) to the end of the failing chunk.
   */
  #fail(message: string, framesBefore: readonly RawFrame[], bytes: number): FrameMalformedError {
    this.#failed = new FrameMalformedError(message);
    this.#failure = { framesBefore, bytes };
    return this.#failed;
  }
}

/** What a failed `FrameDecoder.push` leaves for its caller to judge. */
export interface DecoderFailure {
  /** The frames the failing chunk completed before the framing error, in order. */
  readonly framesBefore: readonly RawFrame[];
  /** Bytes of the stream from the start of the bad frame to the end of the failing chunk. */
  readonly bytes: number;
}
