/**
 * Client side: opens a streamed, sealed response and judges the stream as a whole.
 *
 * Each frame carries its seq in the clear, authenticated through the nonce (frames.ts). With
 * `expected` = the next seq to deliver, an arriving frame is judged:
 * - it fails authentication → FRAME_TAMPERED (this includes a changed clear seq);
 * - seq < expected → FRAME_REPLAYED (a frame already delivered, sent again);
 * - seq > expected → a gap. Nothing more is delivered; up to REORDER_LOOKAHEAD further frames are
 *   read: if the missing frame turns up among them → FRAME_REORDERED, else (stream ends or the
 *   look-ahead runs out) → FRAME_DROPPED;
 * - the stream ends without a final/error frame → STREAM_TRUNCATED;
 * - any byte after the final/error frame → DATA_AFTER_FINAL (or FRAME_REPLAYED if those bytes are
 *   an authentic earlier frame).
 * Bad framing (FRAME_MALFORMED) is judged after the frames before it, also those in the same chunk,
 * so after the final frame it is DATA_AFTER_FINAL and after a gap FRAME_DROPPED, however the host
 * chunked the bytes.
 * Data events are yielded as soon as they are verified and in order; the final (or error) event is
 * yielded only once the stream has ended cleanly after it. Any error means the answer is
 * incomplete or altered and must not be shown as a whole answer.
 */

import { type ByteSource, chunksOf } from "./bytes.ts";
import {
  DataAfterFinalError,
  FrameDroppedError,
  FrameMalformedError,
  FrameReorderedError,
  FrameReplayedError,
  FrameTamperedError,
  StreamTruncatedError,
} from "./errors.ts";
import {
  AUDIT_OPENING,
  type ClientRequestContext,
  type DecoderFailure,
  type FinishReason,
  FRAME_TYPE_DATA,
  FRAME_TYPE_ERROR,
  FRAME_TYPE_FINAL,
  FrameDecoder,
  framePlaintextLength,
  MAX_ERROR_DETAIL_LENGTH,
  type RawFrame,
  type Redactions,
  type ResponseUsage,
  redactionsProblem,
  SAFE_ERROR_CODE,
  TERMINAL_FRAME_PLAINTEXT_LENGTH,
} from "./frames.ts";
import { FRAME_PAD_MARKER } from "./padding.ts";
import { MAX_RECEIPT_LENGTH } from "./receipt.ts";

/** How many frames past a gap are read to tell a reordered frame from a dropped one. */
export const REORDER_LOOKAHEAD = 16;

export type ResponseEvent =
  | { readonly type: "data"; readonly seq: number; readonly text: string }
  | {
      readonly type: "final";
      readonly seq: number;
      readonly usage: ResponseUsage;
      readonly finishReason: FinishReason;
      readonly frameCount: number;
      /** The enclave's signed receipt line, still to be verified (client/sdk.ts does). */
      readonly receipt: string;
      /** The audit record's opening key (64 hex), or null when the audit keeps no commitments. */
      readonly auditOpening: string | null;
      /**
       * PII kinds the enclave redacted from the prompt, with counts; null when none was; undefined
       * when the enclave did not say (a build from before the member: neither "none" nor "some").
       */
      readonly redacted: Redactions | undefined;
    }
  | {
      readonly type: "error";
      readonly seq: number;
      readonly code: string;
      readonly detail: string | null;
      /**
       * The audit record's opening key (64 hex) when the record of this refused or failed request
       * commits to its prompt; null otherwise. Required: an error frame without it is FRAME_MALFORMED.
       */
      readonly auditOpening: string | null;
    };

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Opens the frames of the response to the request `context` was returned for. */
export async function* openResponseFrames(
  context: ClientRequestContext,
  source: ByteSource,
): AsyncGenerator<ResponseEvent, void, undefined> {
  const decoder = new FrameDecoder();
  let expected = 0;
  let terminal: ResponseEvent | null = null;
  let gap: { expected: number; found: number; lookahead: number } | null = null;

  for await (const chunk of chunksOf(source)) {
    let frames: readonly RawFrame[];
    // A framing error is judged after the frames its chunk completed before it, as it would be if
    // the bad bytes came in a chunk of their own: the host's chunking must not change the code.
    let framingError: unknown = null;
    try {
      frames = decoder.push(chunk);
    } catch (error) {
      const failure = decoder.failure;
      if (failure === null) throw error;
      framingError = error;
      frames = failure.framesBefore;
    }
    for (const frame of frames) {
      const plaintext = context.openFrame(frame.seq, frame.box);
      if (terminal !== null) {
        if (plaintext !== null && frame.seq < expected) throw new FrameReplayedError(expected, frame.seq);
        throw new DataAfterFinalError(frame.byteLength + decoder.pendingBytes);
      }
      if (gap !== null) {
        if (plaintext !== null && frame.seq === gap.expected) throw new FrameReorderedError(gap.expected, gap.found);
        gap.lookahead -= 1;
        if (gap.lookahead === 0) throw new FrameDroppedError(gap.expected, gap.found);
        continue;
      }
      if (plaintext === null) throw new FrameTamperedError(frame.seq);
      if (frame.seq < expected) throw new FrameReplayedError(expected, frame.seq);
      if (frame.seq > expected) {
        gap = { expected, found: frame.seq, lookahead: REORDER_LOOKAHEAD };
        continue;
      }
      const event = decodeFramePlaintext(frame.seq, plaintext);
      expected += 1;
      if (event.type === "data") yield event;
      else terminal = event;
    }
    if (framingError !== null) {
      if (terminal !== null) throw new DataAfterFinalError((decoder.failure as DecoderFailure).bytes);
      if (gap !== null) throw new FrameDroppedError(gap.expected, gap.found);
      throw framingError;
    }
  }
  if (gap !== null) throw new FrameDroppedError(gap.expected, gap.found);
  if (terminal === null) {
    const partial = decoder.pendingBytes;
    throw new StreamTruncatedError(
      `response stream: expected a final frame, found the end after ${expected} frames` +
        (partial > 0 ? ` and ${partial} bytes of an incomplete frame` : ""),
    );
  }
  if (decoder.pendingBytes > 0) throw new DataAfterFinalError(decoder.pendingBytes);
  yield terminal;
}

/** Decodes an authenticated frame plaintext (type byte ‖ payload ‖ 0x80 ‖ zero padding). */
export function decodeFramePlaintext(seq: number, plaintext: Uint8Array): ResponseEvent {
  const type = plaintext[0];
  let end = plaintext.length - 1;
  while (end > 0 && plaintext[end] === 0) end--;
  if (end < 1 || plaintext[end] !== FRAME_PAD_MARKER) {
    throw new FrameMalformedError(`frame ${seq} padding: expected the payload, 0x80, then only zero bytes`);
  }
  // Exactly the padded length the sealer makes (one encoding per frame, and a client notices an
  // enclave that stopped padding): terminal frames all of one size, data frames in padded steps.
  const expectedLength =
    type === FRAME_TYPE_FINAL || type === FRAME_TYPE_ERROR
      ? TERMINAL_FRAME_PLAINTEXT_LENGTH
      : framePlaintextLength(end + 1);
  if (plaintext.length !== expectedLength) {
    throw new FrameMalformedError(
      `frame ${seq} padding: expected a plaintext of ${expectedLength} bytes, found ${plaintext.length}`,
    );
  }
  const payload = plaintext.subarray(1, end);
  if (type === FRAME_TYPE_DATA) {
    let text: string;
    try {
      text = utf8.decode(payload);
    } catch (cause) {
      throw new FrameMalformedError(`data frame ${seq} text: expected UTF-8, found invalid bytes`, { cause });
    }
    return { type: "data", seq, text };
  }
  if (type === FRAME_TYPE_FINAL) {
    const o = parseJsonObject(seq, "final", payload);
    const promptTokens = o.promptTokens;
    const completionTokens = o.completionTokens;
    const ttftMs = o.ttftMs;
    if (!isCount(promptTokens)) throw fieldError(seq, "final", "promptTokens", "a non-negative integer");
    if (!isCount(completionTokens)) throw fieldError(seq, "final", "completionTokens", "a non-negative integer");
    if (typeof ttftMs !== "number" || !Number.isFinite(ttftMs) || ttftMs < 0) {
      throw fieldError(seq, "final", "ttftMs", "a non-negative number");
    }
    if (o.finishReason !== "stop" && o.finishReason !== "length") {
      throw fieldError(seq, "final", "finishReason", '"stop" or "length"');
    }
    if (typeof o.receipt !== "string" || o.receipt.length > MAX_RECEIPT_LENGTH) {
      throw fieldError(seq, "final", "receipt", `a string of at most ${MAX_RECEIPT_LENGTH} characters`);
    }
    if (o.auditOpening !== null && (typeof o.auditOpening !== "string" || !AUDIT_OPENING.test(o.auditOpening))) {
      throw fieldError(seq, "final", "auditOpening", "null or 64 lower-case hex digits");
    }
    // Absent (an enclave built before the member) is "not said", kept apart from null ("none"):
    // never read as nothing redacted, nor refused (docs/protocol.md "Versioning"). Present, it must
    // be null or known kinds with counts.
    const redactions = o.redacted === undefined ? null : redactionsProblem(o.redacted);
    if (redactions !== null) throw fieldError(seq, "final", "redacted", redactions);
    if (o.frameCount !== seq + 1) {
      throw new FrameMalformedError(`final frame frameCount: expected ${seq + 1}, found ${String(o.frameCount)}`);
    }
    return {
      type: "final",
      seq,
      usage: { promptTokens, completionTokens, ttftMs },
      finishReason: o.finishReason,
      frameCount: seq + 1,
      receipt: o.receipt,
      auditOpening: o.auditOpening,
      redacted: o.redacted as Redactions | undefined,
    };
  }
  if (type === FRAME_TYPE_ERROR) {
    const o = parseJsonObject(seq, "error", payload);
    if (typeof o.code !== "string" || !SAFE_ERROR_CODE.test(o.code)) {
      throw fieldError(seq, "error", "code", "an upper-case identifier");
    }
    const detail = o.detail;
    if (detail !== null && (typeof detail !== "string" || detail.length > MAX_ERROR_DETAIL_LENGTH)) {
      throw fieldError(seq, "error", "detail", `null or at most ${MAX_ERROR_DETAIL_LENGTH} characters`);
    }
    // Present in every error frame, as in final frames (null when the record commits to nothing).
    const auditOpening = o.auditOpening;
    if (auditOpening !== null && (typeof auditOpening !== "string" || !AUDIT_OPENING.test(auditOpening))) {
      throw fieldError(seq, "error", "auditOpening", "null or 64 lower-case hex digits");
    }
    return { type: "error", seq, code: o.code, detail, auditOpening };
  }
  throw new FrameMalformedError(`frame ${seq} type: expected 1 (data), 2 (final) or 3 (error), found ${String(type)}`);
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function fieldError(seq: number, kind: string, field: string, expected: string): FrameMalformedError {
  return new FrameMalformedError(`${kind} frame ${seq} ${field}: expected ${expected}`);
}

function parseJsonObject(seq: number, kind: string, payload: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(payload));
  } catch {
    // No `cause`: JSON.parse's message quotes the decrypted text.
    throw new FrameMalformedError(`${kind} frame ${seq}: expected a JSON object, found unparsable bytes`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new FrameMalformedError(`${kind} frame ${seq}: expected a JSON object`);
  }
  return value as Record<string, unknown>;
}
