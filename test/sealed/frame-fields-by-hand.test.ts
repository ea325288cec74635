/**
 * The FRAME_MALFORMED refusals of docs/protocol.md ("How the client judges a stream": unknown type,
 * bad final/error JSON) that the real ResponseSealer never produces, since it checks what it seals:
 * frames here are sealed by hand as the page says (secretbox under the response key, nonce
 * 0x01 ‖ 15 zero bytes ‖ seq, plaintext type ‖ payload ‖ 0x80 ‖ zeros padded to its length) and read
 * by the real client parser, `openResponseFrames`. Each stream is a genuine data frame then one
 * authentic frame with one field wrong: the client must refuse it naming that field, and deliver no
 * terminal event. Also: during a gap, a frame that fails authentication does not count as the
 * missing one, and does count as one of the look-ahead frames.
 */
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import {
  ClientRequestContext,
  FRAME_TYPE_DATA,
  FRAME_TYPE_ERROR,
  FRAME_TYPE_FINAL,
  framePlaintextLength,
  TERMINAL_FRAME_PLAINTEXT_LENGTH,
  writeResponseNonce,
} from "../../sealed/frames.ts";
import { openResponseFrames, type ResponseEvent, SealedError } from "../../sealed/index.ts";
import { MAX_RECEIPT_LENGTH } from "../../sealed/receipt.ts";
import { REORDER_LOOKAHEAD } from "../../sealed/response.ts";
import { seededRandom } from "./helpers.ts";

const utf8 = new TextEncoder();
const RESPONSE_KEY = seededRandom(21)(32);
const OPENING = "ab".repeat(32);
const FINAL = {
  promptTokens: 3,
  completionTokens: 1,
  ttftMs: 2.5,
  finishReason: "stop",
  frameCount: 2,
  receipt: "receipt-line",
  auditOpening: OPENING,
  redacted: null,
};
const ERROR = { code: "POLICY_BLOCKED", detail: "rule r1", auditOpening: null };

/** One wire frame: u32 L ‖ u64 seq ‖ secretbox(type ‖ payload ‖ 0x80 ‖ zeros, N_resp(seq), key). */
function frame(seq: number, type: number, payload: Uint8Array, key = RESPONSE_KEY): Uint8Array {
  const length =
    type === FRAME_TYPE_FINAL || type === FRAME_TYPE_ERROR
      ? TERMINAL_FRAME_PLAINTEXT_LENGTH
      : framePlaintextLength(payload.length + 2);
  const plaintext = new Uint8Array(length);
  plaintext[0] = type;
  plaintext.set(payload, 1);
  plaintext[payload.length + 1] = 0x80;
  const nonce = new Uint8Array(24);
  writeResponseNonce(nonce, seq);
  const box = nacl.secretbox(plaintext, nonce, key);
  const out = new Uint8Array(12 + box.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, 8 + box.length);
  view.setBigUint64(4, BigInt(seq));
  out.set(box, 12);
  return out;
}

const json = (value: unknown) => utf8.encode(JSON.stringify(value));
const data = (seq: number, text: string) => frame(seq, FRAME_TYPE_DATA, utf8.encode(text));

async function judge(frames: readonly Uint8Array[]) {
  const context = new ClientRequestContext("00".repeat(16), "chat", new Uint8Array(RESPONSE_KEY), "00".repeat(32));
  const events: ResponseEvent[] = [];
  try {
    for await (const event of openResponseFrames(context, frames)) events.push(event);
  } catch (error) {
    if (!(error instanceof SealedError)) throw error;
    return { events: events.map((e) => e.type), code: error.code, message: error.message };
  }
  return { events: events.map((e) => e.type), code: null, message: null };
}

describe("the client refuses an authentic final or error frame whose JSON is not the page's", () => {
  it("reads the hand-sealed well-formed final and error frames (so each refusal below is its field's)", async () => {
    const final = await judge([data(0, "hi"), frame(1, FRAME_TYPE_FINAL, json(FINAL))]);
    expect(final).toEqual({ events: ["data", "final"], code: null, message: null });
    const error = await judge([data(0, "hi"), frame(1, FRAME_TYPE_ERROR, json(ERROR))]);
    expect(error).toEqual({ events: ["data", "error"], code: null, message: null });
  });

  const finals: [string, Record<string, unknown>, string][] = [
    ["without usage (promptTokens)", { promptTokens: undefined }, "promptTokens: expected a non-negative integer"],
    ["promptTokens not an integer", { promptTokens: 1.5 }, "promptTokens: expected a non-negative integer"],
    ["without completionTokens", { completionTokens: undefined }, "completionTokens: expected a non-negative integer"],
    ["completionTokens negative", { completionTokens: -1 }, "completionTokens: expected a non-negative integer"],
    ["without ttftMs", { ttftMs: undefined }, "ttftMs: expected a non-negative number"],
    ["ttftMs as a string", { ttftMs: "2.5" }, "ttftMs: expected a non-negative number"],
    ["ttftMs negative", { ttftMs: -0.5 }, "ttftMs: expected a non-negative number"],
    ["another finishReason", { finishReason: "eos" }, 'finishReason: expected "stop" or "length"'],
    ["without receipt", { receipt: undefined }, "receipt: expected a string of at most"],
    ["a receipt over its limit", { receipt: "r".repeat(MAX_RECEIPT_LENGTH + 1) }, "receipt: expected a string"],
    ["without auditOpening", { auditOpening: undefined }, "auditOpening: expected null or 64 lower-case hex"],
    ["auditOpening in upper case", { auditOpening: "AB".repeat(32) }, "auditOpening: expected null or 64"],
  ];
  for (const [name, change, message] of finals) {
    it(`a final frame ${name} → FRAME_MALFORMED naming the field, no final event`, async () => {
      const result = await judge([data(0, "hi"), frame(1, FRAME_TYPE_FINAL, json({ ...FINAL, ...change }))]);
      expect(result).toMatchObject({ events: ["data"], code: "FRAME_MALFORMED" });
      expect(result.message).toContain(`final frame 1 ${message}`);
    });
  }

  const errors: [string, Record<string, unknown>, string][] = [
    ["without code", { code: undefined }, "code: expected an upper-case identifier"],
    ["a code in lower case", { code: "policy_blocked" }, "code: expected an upper-case identifier"],
    ["without detail", { detail: undefined }, "detail: expected null or at most 200 characters"],
    ["a detail over 200 characters", { detail: "d".repeat(201) }, "detail: expected null or at most 200 characters"],
  ];
  for (const [name, change, message] of errors) {
    it(`an error frame ${name} → FRAME_MALFORMED naming the field, no error event`, async () => {
      const result = await judge([data(0, "hi"), frame(1, FRAME_TYPE_ERROR, json({ ...ERROR, ...change }))]);
      expect(result).toMatchObject({ events: ["data"], code: "FRAME_MALFORMED" });
      expect(result.message).toContain(`error frame 1 ${message}`);
    });
  }

  it("a final or error frame whose JSON is an array, or not JSON → FRAME_MALFORMED", async () => {
    for (const type of [FRAME_TYPE_FINAL, FRAME_TYPE_ERROR]) {
      const name = type === FRAME_TYPE_FINAL ? "final" : "error";
      for (const [payload, message] of [
        [json([FINAL]), `${name} frame 1: expected a JSON object`],
        [utf8.encode("{"), `${name} frame 1: expected a JSON object, found unparsable bytes`],
      ] as const) {
        const result = await judge([data(0, "hi"), frame(1, type, payload)]);
        expect(result).toEqual({ events: ["data"], code: "FRAME_MALFORMED", message });
      }
    }
  });

  it("an authentic frame of an unknown type → FRAME_MALFORMED, not read as text", async () => {
    for (const type of [0x00, 0x04, 0xff]) {
      const result = await judge([data(0, "hi"), frame(1, type, utf8.encode("text")), frame(2, 2, json(FINAL))]);
      expect(result).toEqual({
        events: ["data"],
        code: "FRAME_MALFORMED",
        message: `frame 1 type: expected 1 (data), 2 (final) or 3 (error), found ${type}`,
      });
    }
  });

  it("an authentic data frame whose text is not UTF-8 → FRAME_MALFORMED, never U+FFFD", async () => {
    for (const bytes of [[0xff], [0xc3], [0xed, 0xa0, 0x80]]) {
      const result = await judge([frame(0, FRAME_TYPE_DATA, Uint8Array.from(bytes)), frame(1, 2, json(FINAL))]);
      expect(result).toEqual({
        events: [],
        code: "FRAME_MALFORMED",
        message: "data frame 0 text: expected UTF-8, found invalid bytes",
      });
    }
  });
});

describe("a gap is closed only by the authentic missing frame", () => {
  it("a frame with the missing seq that fails authentication is not the missing frame: FRAME_DROPPED", async () => {
    const forged = frame(1, FRAME_TYPE_DATA, utf8.encode("forged"), seededRandom(22)(32));
    const result = await judge([data(0, "a"), data(2, "c"), forged]);
    expect(result).toMatchObject({ events: ["data"], code: "FRAME_DROPPED" });
    // The authentic frame 1 in its place: FRAME_REORDERED.
    expect(await judge([data(0, "a"), data(2, "c"), data(1, "b")])).toMatchObject({
      events: ["data"],
      code: "FRAME_REORDERED",
    });
  });

  it("a look-ahead frame that fails authentication counts as one of the 16 (REORDER_LOOKAHEAD)", async () => {
    const forged = (seq: number) => frame(seq, FRAME_TYPE_DATA, utf8.encode("forged"), seededRandom(23)(32));
    const forgedRun = (count: number) => Array.from({ length: count }, (_, i) => forged(i % 2 === 0 ? 1 : 3 + i));
    // The authentic missing frame as the 16th look-ahead frame: still found.
    expect(await judge([data(0, "a"), data(2, "c"), ...forgedRun(REORDER_LOOKAHEAD - 1), data(1, "b")])).toMatchObject({
      events: ["data"],
      code: "FRAME_REORDERED",
    });
    // As the 17th: 16 frames passed without it.
    expect(await judge([data(0, "a"), data(2, "c"), ...forgedRun(REORDER_LOOKAHEAD), data(1, "b")])).toMatchObject({
      events: ["data"],
      code: "FRAME_DROPPED",
    });
  });
});
