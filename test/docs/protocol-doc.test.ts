/**
 * docs/protocol.md is meant to let a third party write a compatible client from it alone. This file
 * is such a client (and, for the other direction, such an enclave), written from the page: every
 * offset, size, label, block size and limit it uses is read out of docs/protocol.md's text (`doc`
 * below fails naming the sentence it looked for), and every primitive is tweetnacl's public API or
 * @noble/hashes — nothing of sealed/. The real code is only the other party: the enclave's
 * `openRequest` and `ResponseSealer`, the client's `openResponseFrames` and `verifyReceipt`. So a
 * change to the code that the page does not follow, or to the page that the code does not follow,
 * fails here. (test/sealed/known-answer.test.ts checks the opposite half: the real client's bytes
 * opened by documented formulas.)
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sha256, sha512 } from "@noble/hashes/sha2.js";
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import {
  enclaveSealingKeyFromSecretKey,
  openRequest,
  openResponseFrames,
  ReplayGuard,
  type ResponseEvent,
  SealedError,
  sealRequest,
  signReceipt,
  verifyReceipt,
} from "../../sealed/index.ts";
import { REPO_ROOT } from "../helpers/cli.ts";
import { seededRandom, T0 } from "../sealed/helpers.ts";

const PAGE = readFileSync(join(REPO_ROOT, "docs", "protocol.md"), "utf8");

/** The first match of `pattern` in docs/protocol.md; fails naming what the page should say. */
function doc(pattern: RegExp, what: string): RegExpExecArray {
  const match = pattern.exec(PAGE);
  if (match === null) throw new Error(`docs/protocol.md: expected ${what} (${pattern}), found none`);
  return match;
}

const number = (text: string) => Number(text.replace(/[\s\u202f]/g, ""));
const MiB = 1024 * 1024;

/** `offset size field` rows of the first code block after `heading`, by the field's first word. */
function layout(heading: string): Map<string, { offset: number; size: string }> {
  const block = doc(
    new RegExp(`${escapeRegExp(heading)}[\\s\\S]*?\`\`\`\\n([\\s\\S]*?)\`\`\``),
    `a layout under ${heading}`,
  );
  const rows = new Map<string, { offset: number; size: string }>();
  for (const line of (block[1] as string).split("\n")) {
    const row = /^\s*(\d+)\s+(\d+|[A-Z])\s+(\S+)/.exec(line);
    if (row !== null) rows.set(row[3] as string, { offset: Number(row[1]), size: row[2] as string });
  }
  return rows;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function field(rows: Map<string, { offset: number; size: string }>, name: string) {
  const row = rows.get(name);
  if (row === undefined) throw new Error(`docs/protocol.md: expected a layout row for ${name}, found none`);
  return row;
}

// ---- What the page says, read from it ------------------------------------------------------------

const ENVELOPE = layout("## Request envelope");
const VERSION = number(doc(/version = 0x(\d\d)/, "the version byte")[1] as string);
const KIND_CHAT = Number.parseInt(doc(/kind: 0x(\d\d) chat/, "the chat kind byte")[1] as string, 16);
const KIND_COMPLETE = Number.parseInt(doc(/0x(\d\d) complete/, "the complete kind byte")[1] as string, 16);
const KEY_ID_BYTES = number(doc(/key_id = SHA-256\(E_pub\)\[0\.\.(\d+)\]/, "the key id")[1] as string);
const PREFIX = number(doc(/Bytes 0\.\.(\d+) are the \*\*prefix\*\*/, "the prefix length")[1] as string);
const MIN_ENVELOPE = number(doc(/length ≥ (\d+)/, "the least envelope length")[1] as string);
const MAX_CIPHERTEXT = number(doc(/`N` can be at most (\d+) MiB/, "the largest N")[1] as string) * MiB;
const REQUEST_BLOCK = number(
  doc(/a multiple of (\d+) bytes, and at least the Padmé/, "the request block")[1] as string,
);
const SOFT_LIMIT = (() => {
  const m = doc(/never past (\d+) MiB − (\d+) bytes/, "the padding's soft limit");
  return number(m[1] as string) * MiB - number(m[2] as string);
})();
const RESPONSE_LABEL = doc(/R = SHA-512\("([^"]+)" ‖ K ‖ N_req\)\[0\.\.(\d+)\]/, "the response key");
const FRAME = layout("## Response frames");
const FRAME_LIMIT = number(doc(/26 ≤ L ≤ (\d+) MiB/, "the largest frame")[1] as string) * MiB;
const FRAME_BLOCK = number(
  doc(/the next\s+multiple of (\d+) bytes and its Padmé length/, "the frame block")[1] as string,
);
const TERMINAL_P = number(doc(/Every final and error frame has `P = (\d+)`/, "the terminal frame size")[1] as string);
const NONCE = doc(
  /N_resp\(seq\) = 0x(\d\d) \(direction: enclave → client\) ‖ (\d+) zero bytes ‖ seq \(u64\)/,
  "the response nonce",
);
const TYPE = {
  data: Number.parseInt(doc(/\| 0x(\d\d) \| data /, "the data frame type")[1] as string, 16),
  final: Number.parseInt(doc(/\| 0x(\d\d) \| final /, "the final frame type")[1] as string, 16),
  error: Number.parseInt(doc(/\| 0x(\d\d) \| error /, "the error frame type")[1] as string, 16),
};
const MARKER = Number.parseInt(doc(/‖ payload ‖ 0x(80) ‖ zero bytes/, "the padding marker")[1] as string, 16);
const WINDOW_MS = number(doc(/The default window is ([\d\s\u202f]+) ms/, "the replay window")[1] as string);
const RECEIPT_TAG = doc(/over\s+`"(cloister\/receipt\/v1)\\0"`/, "the receipt's signing tag")[1] as string;

const utf8 = new TextEncoder();
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const concat = (...parts: Uint8Array[]) => Uint8Array.from(Buffer.concat(parts));

/** Padmé, as the page states it: L with ⌊log₂ L⌋ = E rounded up to a multiple of 2^(E − ⌊log₂ E⌋ − 1). */
function padme(length: number): number {
  const e = Math.floor(Math.log2(length));
  const step = 2 ** (e - Math.floor(Math.log2(e)) - 1);
  return Math.ceil(length / step) * step;
}

/** "N is a padded length: a multiple of 256 bytes, and at least the Padmé length of the unpadded N", capped. */
function paddedRequestLength(unpadded: number): number {
  const limit = unpadded <= SOFT_LIMIT ? SOFT_LIMIT : MAX_CIPHERTEXT;
  return Math.min(Math.max(Math.ceil(unpadded / REQUEST_BLOCK) * REQUEST_BLOCK, padme(unpadded)), limit);
}

/** A data frame's P: "the larger of the next multiple of 32 bytes and its Padmé length", within the limit. */
function dataFramePlaintextLength(content: number): number {
  return Math.min(Math.max(Math.ceil(content / FRAME_BLOCK) * FRAME_BLOCK, padme(content)), FRAME_LIMIT - 8 - 16);
}

function responseKey(sharedKey: Uint8Array, requestNonce: Uint8Array): Uint8Array {
  return sha512(concat(utf8.encode(RESPONSE_LABEL[1] as string), sharedKey, requestNonce)).slice(
    0,
    Number(RESPONSE_LABEL[2]),
  );
}

function responseNonce(seq: number): Uint8Array {
  const nonce = new Uint8Array(1 + Number(NONCE[2]) + 8);
  nonce[0] = Number.parseInt(NONCE[1] as string, 16);
  new DataView(nonce.buffer).setBigUint64(nonce.length - 8, BigInt(seq));
  return nonce;
}

// ---- A client written from the page --------------------------------------------------------------

interface DocRequest {
  readonly envelope: Uint8Array;
  readonly responseKey: Uint8Array;
  readonly requestId: string;
  /** SHA-256 (hex) of the JSON as sealed, without its padding: what the receipt names. */
  readonly requestHash: string;
}

function docSealRequest(
  enclavePublicKey: Uint8Array,
  kind: "chat" | "complete",
  body: unknown,
  timestamp: number,
  options: { readonly pad: boolean; readonly jsonKind?: "chat" | "complete" } = { pad: true },
): DocRequest {
  const client = nacl.box.keyPair();
  const nonce = nacl.randomBytes(24);
  const requestId = hex(nacl.randomBytes(16));
  const json = utf8.encode(JSON.stringify({ v: 1, requestId, timestamp, kind: options.jsonKind ?? kind, body }));
  // N = MAC (16) ‖ XSalsa20(SHA-256(prefix) (32) ‖ JSON ‖ spaces)
  const unpadded = 16 + 32 + json.length;
  const n = options.pad ? paddedRequestLength(unpadded) : unpadded;
  const prefix = new Uint8Array(PREFIX);
  prefix[field(ENVELOPE, "version").offset] = VERSION;
  prefix[field(ENVELOPE, "kind:").offset] = kind === "chat" ? KIND_CHAT : KIND_COMPLETE;
  prefix.set(sha256(enclavePublicKey).subarray(0, KEY_ID_BYTES), field(ENVELOPE, "key_id").offset);
  new DataView(prefix.buffer).setUint32(field(ENVELOPE, "N").offset, n);
  prefix.set(client.publicKey, field(ENVELOPE, "C_pub").offset);
  prefix.set(nonce, field(ENVELOPE, "N_req,").offset);
  const padded = new Uint8Array(n - 16 - 32).fill(0x20);
  padded.set(json);
  const sharedKey = nacl.box.before(enclavePublicKey, client.secretKey);
  const ciphertext = nacl.box.after(concat(sha256(prefix), padded), nonce, sharedKey);
  expect(ciphertext.length).toBe(n);
  return {
    envelope: concat(prefix, ciphertext),
    responseKey: responseKey(sharedKey, nonce),
    requestId,
    requestHash: hex(sha256(json)),
  };
}

type DocEvent =
  | { type: "data"; text: string }
  | { type: "final"; summary: Record<string, unknown> }
  | { type: "error"; error: Record<string, unknown> };

/** Splits and opens the frames of a whole response, checking each rule of "Response frames". */
function docOpenFrames(stream: Uint8Array, key: Uint8Array): DocEvent[] {
  const events: DocEvent[] = [];
  const view = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  let offset = 0;
  for (let expected = 0; offset < stream.length; expected++) {
    const length = view.getUint32(offset + field(FRAME, "L").offset);
    expect(length).toBeGreaterThanOrEqual(26);
    expect(length).toBeLessThanOrEqual(FRAME_LIMIT);
    const seq = Number(view.getBigUint64(offset + field(FRAME, "seq").offset));
    expect(seq).toBe(expected);
    const box = stream.subarray(offset + field(FRAME, "Poly1305").offset, offset + 4 + length);
    const plaintext = nacl.secretbox.open(box, responseNonce(seq), key);
    expect(plaintext, `frame ${seq} opens under R and N_resp(seq)`).not.toBeNull();
    const p = plaintext as Uint8Array;
    expect(p.length).toBe(length - 8 - 16);
    let end = p.length - 1;
    while (p[end] === 0) end--;
    expect(p[end]).toBe(MARKER);
    const payload = new TextDecoder().decode(p.subarray(1, end));
    if (p[0] === TYPE.data) {
      expect(p.length).toBe(dataFramePlaintextLength(end + 1));
      events.push({ type: "data", text: payload });
    } else {
      expect(p.length).toBe(TERMINAL_P);
      const object = JSON.parse(payload) as Record<string, unknown>;
      if (p[0] === TYPE.final) {
        expect(object.frameCount).toBe(seq + 1);
        events.push({ type: "final", summary: object });
      } else {
        expect(p[0]).toBe(TYPE.error);
        events.push({ type: "error", error: object });
      }
      expect(offset + 4 + length, "nothing after the final or error frame").toBe(stream.length);
    }
    offset += 4 + length;
  }
  return events;
}

/** One frame as the page says an enclave seals it. */
function docSealFrame(key: Uint8Array, seq: number, type: number, payload: Uint8Array): Uint8Array {
  const content = 1 + payload.length + 1;
  const size = type === TYPE.data ? dataFramePlaintextLength(content) : TERMINAL_P;
  const plaintext = new Uint8Array(size);
  plaintext[0] = type;
  plaintext.set(payload, 1);
  plaintext[1 + payload.length] = MARKER;
  const box = nacl.secretbox(plaintext, responseNonce(seq), key);
  const frame = new Uint8Array(4 + 8 + box.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, 8 + box.length);
  view.setBigUint64(4, BigInt(seq));
  frame.set(box, 12);
  return frame;
}

/** The receipt's signed bytes: the tag, a zero byte, then the line without `,"sig":…`. */
function receiptMessage(line: string): Uint8Array {
  const unsigned = line.replace(/,"sig":"[A-Za-z0-9_-]+"\}$/, "}");
  return concat(utf8.encode(RECEIPT_TAG), new Uint8Array([0]), utf8.encode(unsigned));
}

// ---- The real enclave and client on the other side ------------------------------------------------

async function enclave(seed = 7) {
  const secret = seededRandom(seed)(32);
  const key = await enclaveSealingKeyFromSecretKey(secret.slice());
  return { key, publicKey: nacl.box.keyPair.fromSecretKey(secret).publicKey, secretKey: secret };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof SealedError) return error.code;
    throw error;
  }
  return "(none)";
}

const BODY = { messages: [{ role: "user", content: "What does the enclave do?" }], maxTokens: 16 };

describe("a client written from docs/protocol.md, against the real enclave", () => {
  it("reads the page's layout as the request's and frames' offsets", () => {
    // The layout rows this file found (a page that lost one fails above; here, that they add up).
    expect([...ENVELOPE].map(([name, row]) => [name, row.offset, row.size])).toEqual([
      ["version", 0, "1"],
      ["kind:", 1, "1"],
      ["key_id", 2, "16"],
      ["N", 18, "4"],
      ["C_pub", 22, "32"],
      ["N_req,", 54, "24"],
      ["nacl.box", 78, "N"],
    ]);
    expect(PREFIX).toBe(78);
    expect(MIN_ENVELOPE).toBe(PREFIX + 16);
    expect([...FRAME].map(([name, row]) => [name, row.offset, row.size])).toEqual([
      ["L", 0, "4"],
      ["seq", 4, "8"],
      ["Poly1305", 12, "16"],
      ["XSalsa20", 28, "P"],
    ]);
  });

  it("seals a request the enclave opens, names the request hash the enclave computes, and pads as the SDK does", async () => {
    const { key, publicKey } = await enclave();
    for (const kind of ["chat", "complete"] as const) {
      const body = kind === "chat" ? BODY : { prompt: "The enclave", maxTokens: 4 };
      const sealed = docSealRequest(publicKey, kind, body, T0);
      const opened = await openRequest(sealed.envelope, key, new ReplayGuard(), T0);
      expect(opened.request).toEqual({ v: 1, requestId: sealed.requestId, timestamp: T0, kind, body });
      expect(opened.requestHash).toBe(sealed.requestHash);
      // The padded length the page gives is the one the SDK makes for the same JSON length.
      const real = await sealRequest({ enclavePublicKey: publicKey, kind, body, now: T0 });
      expect(sealed.envelope.length).toBe(real.envelope.length);
    }
  });

  it("pads every length as the SDK does, at the block, Padmé and the soft limit alike", async () => {
    const { publicKey } = await enclave();
    // The JSON of a request whose prompt is `n` characters: 80 + n bytes around it.
    const fixed = utf8.encode(
      JSON.stringify({ v: 1, requestId: "0".repeat(32), timestamp: T0, kind: "complete", body: { prompt: "" } }),
    ).length;
    for (const prompt of [0, 1, 200, 207, 208, 4000, 8200, 9000, 70_000, SOFT_LIMIT - 48 - fixed - 1]) {
      const body = { prompt: "x".repeat(prompt) };
      const real = await sealRequest({ enclavePublicKey: publicKey, kind: "complete", body, now: T0 });
      const unpadded = 16 + 32 + fixed + prompt;
      expect(real.envelope.length - PREFIX, `prompt of ${prompt}`).toBe(paddedRequestLength(unpadded));
    }
    // Past the soft limit unpadded: padded up to 16 MiB at most.
    const over = SOFT_LIMIT - 48 - fixed + 100;
    const real = await sealRequest({
      enclavePublicKey: publicKey,
      kind: "complete",
      body: { prompt: "x".repeat(over) },
      now: T0,
    });
    expect(real.envelope.length - PREFIX).toBe(paddedRequestLength(16 + 32 + fixed + over));
    expect(real.envelope.length - PREFIX).toBeGreaterThan(SOFT_LIMIT);
  });

  it("an unpadded request opens too, with the same request hash", async () => {
    const { key, publicKey } = await enclave();
    const sealed = docSealRequest(publicKey, "chat", BODY, T0, { pad: false });
    const opened = await openRequest(sealed.envelope, key, new ReplayGuard(), T0);
    expect(opened.requestHash).toBe(sealed.requestHash);
  });

  it("the enclave refuses as the page's order of checks says", async () => {
    const { key, publicKey } = await enclave();
    const open = (envelope: Uint8Array, now = T0) => codeOf(openRequest(envelope, key, new ReplayGuard(), now));
    const good = docSealRequest(publicKey, "chat", BODY, T0).envelope;
    const edit = (at: number, value: (b: number) => number) => {
      const copy = good.slice();
      copy[at] = value(copy[at] as number);
      return copy;
    };
    expect(await open(good.subarray(0, MIN_ENVELOPE - 1))).toBe("ENVELOPE_MALFORMED");
    expect(await open(edit(0, () => 2))).toBe("UNSUPPORTED_VERSION");
    expect(await open(edit(1, () => 3))).toBe("ENVELOPE_MALFORMED");
    expect(await open(good.subarray(0, good.length - 1))).toBe("ENVELOPE_MALFORMED");
    expect(await open(edit(2, (b) => b ^ 1))).toBe("WRONG_ENCLAVE_KEY");
    expect(await open(edit(PREFIX + 20, (b) => b ^ 1))).toBe("DECRYPTION_FAILED");
    expect(await open(edit(field(ENVELOPE, "N_req,").offset, (b) => b ^ 1))).toBe("DECRYPTION_FAILED");
    // The kind byte flipped to the other kind: a header the sealed digest does not name.
    expect(await open(edit(1, () => KIND_COMPLETE))).toBe("HEADER_MISMATCH");
    // C_pub's top bit (ignored by X25519): the same shared key, another header.
    expect(await open(edit(field(ENVELOPE, "C_pub").offset + 31, (b) => b ^ 0x80))).toBe("HEADER_MISMATCH");
    // A low-order C_pub (here the all-zero point) gives no shared key: DECRYPTION_FAILED.
    const lowOrder = good.slice();
    lowOrder.fill(0, field(ENVELOPE, "C_pub").offset, field(ENVELOPE, "C_pub").offset + 32);
    expect(await open(lowOrder)).toBe("DECRYPTION_FAILED");
    // The JSON's kind must equal the header's.
    const otherKind = docSealRequest(publicKey, "chat", BODY, T0, { pad: true, jsonKind: "complete" });
    expect(await open(otherKind.envelope)).toBe("REQUEST_MALFORMED");
  });

  it("the timestamp window and the replay cache are as the page states", async () => {
    const { key, publicKey } = await enclave();
    const guard = new ReplayGuard();
    const open = (envelope: Uint8Array, now: number) => codeOf(openRequest(envelope, key, guard, now));
    for (const skew of [-WINDOW_MS, WINDOW_MS]) {
      expect(await open(docSealRequest(publicKey, "chat", BODY, T0 + skew).envelope, T0)).toBe("(none)");
    }
    for (const skew of [-WINDOW_MS - 1, WINDOW_MS + 1]) {
      expect(await open(docSealRequest(publicKey, "chat", BODY, T0 + skew).envelope, T0)).toBe("REQUEST_STALE");
    }
    const once = docSealRequest(publicKey, "chat", BODY, T0).envelope;
    expect(await open(once, T0)).toBe("(none)");
    expect(await open(once, T0 + 1)).toBe("REQUEST_REPLAYED");
    // "The guard's clock … never runs backwards": a later request is judged at the largest now seen.
    expect(await open(docSealRequest(publicKey, "chat", BODY, T0).envelope, T0 - 10 * WINDOW_MS)).toBe("(none)");
  });

  it("opens the real enclave's frames (data of every size, final, error) by the page's rules, and verifies the receipt", async () => {
    const { key, publicKey } = await enclave();
    const sealed = docSealRequest(publicKey, "chat", BODY, T0);
    const opened = await openRequest(sealed.envelope, key, new ReplayGuard(), T0);
    const texts = ["", "a", "x".repeat(29), "x".repeat(30), "é".repeat(500), "z".repeat(5000), "w".repeat(MiB - 26)];
    const signing = nacl.sign.keyPair.fromSeed(seededRandom(9)(32));
    const answer = texts.join("");
    const receipt = signReceipt(
      {
        requestHash: opened.requestHash,
        answerHash: hex(sha256(utf8.encode(answer))),
        finishReason: "stop",
        promptTokens: 3,
        completionTokens: texts.length,
        modelSha256: "a".repeat(64),
        manifestDigest: "b".repeat(64),
        documentDigest: "c".repeat(64),
        time: "2025-01-15T12:00:00.000Z",
      },
      signing.secretKey,
    );
    const stream = concat(
      ...texts.map((text) => opened.sealer.data(text)),
      opened.sealer.final({
        promptTokens: 3,
        completionTokens: texts.length,
        ttftMs: 1.5,
        finishReason: "stop",
        receipt,
        auditOpening: "d".repeat(64),
        redacted: null,
      }),
    );
    const events = docOpenFrames(stream, sealed.responseKey);
    expect(events.slice(0, -1)).toEqual(texts.map((text) => ({ type: "data", text })));
    const final = events.at(-1) as Extract<DocEvent, { type: "final" }>;
    expect(final.summary).toEqual({
      promptTokens: 3,
      completionTokens: texts.length,
      ttftMs: 1.5,
      finishReason: "stop",
      frameCount: texts.length + 1,
      receipt,
      auditOpening: "d".repeat(64),
      redacted: null,
    });
    // The receipt, by the page: fields in order, its request hash the one this client computed.
    const fields = JSON.parse(receipt) as Record<string, unknown>;
    expect(Object.keys(fields)).toEqual([
      "v",
      "requestHash",
      "answerHash",
      "finishReason",
      "promptTokens",
      "completionTokens",
      "modelSha256",
      "manifestDigest",
      "documentDigest",
      "time",
      "sig",
    ]);
    expect(fields.requestHash).toBe(sealed.requestHash);
    const signature = Buffer.from(fields.sig as string, "base64url");
    expect(nacl.sign.detached.verify(receiptMessage(receipt), signature, signing.publicKey)).toBe(true);

    // An error frame: the same size as a final frame.
    const second = docSealRequest(publicKey, "chat", BODY, T0);
    const refused = await openRequest(second.envelope, key, new ReplayGuard(), T0);
    expect(docOpenFrames(refused.sealer.error("POLICY_BLOCKED", "rule r1", null), second.responseKey)).toEqual([
      { type: "error", error: { code: "POLICY_BLOCKED", detail: "rule r1", auditOpening: null } },
    ]);
  });
});

describe("an enclave written from docs/protocol.md, against the real client", () => {
  /** The real SDK's request, opened the page's way (box.open under N_req between C_pub and E_sec). */
  async function exchange() {
    const { publicKey, secretKey } = await enclave();
    const { envelope, context } = await sealRequest({ enclavePublicKey: publicKey, kind: "chat", body: BODY, now: T0 });
    const clientKey = envelope.subarray(field(ENVELOPE, "C_pub").offset, field(ENVELOPE, "C_pub").offset + 32);
    const nonce = envelope.subarray(field(ENVELOPE, "N_req,").offset, PREFIX);
    const sharedKey = nacl.box.before(clientKey, secretKey);
    const plaintext = nacl.box.open.after(envelope.subarray(PREFIX), nonce, sharedKey) as Uint8Array;
    expect(hex(plaintext.subarray(0, 32))).toBe(hex(sha256(envelope.subarray(0, PREFIX))));
    const json = new TextDecoder().decode(plaintext.subarray(32)).replace(/ +$/, "");
    expect(hex(sha256(utf8.encode(json)))).toBe(context.requestHash);
    return { context, key: responseKey(sharedKey, nonce), request: JSON.parse(json) as { requestId: string } };
  }

  async function collect(context: Parameters<typeof openResponseFrames>[0], frames: Uint8Array[]) {
    const events: ResponseEvent[] = [];
    for await (const event of openResponseFrames(context, frames)) events.push(event);
    return events;
  }

  it("its data, final and error frames are what the real client accepts", async () => {
    const { context, key, request } = await exchange();
    expect(request.requestId).toBe(context.requestId);
    const texts = ["The host ", "only forwards", " sealed bytes.", "ü".repeat(700)];
    const summary = {
      promptTokens: 5,
      completionTokens: 4,
      ttftMs: 2,
      finishReason: "length",
      frameCount: texts.length + 1,
      receipt: "line",
      auditOpening: null,
      redacted: null,
    };
    const frames = [
      ...texts.map((text, seq) => docSealFrame(key, seq, TYPE.data, utf8.encode(text))),
      docSealFrame(key, texts.length, TYPE.final, utf8.encode(JSON.stringify(summary))),
    ];
    const events = await collect(context, frames);
    expect(events.filter((e) => e.type === "data").map((e) => (e as { text: string }).text)).toEqual(texts);
    expect(events.at(-1)).toMatchObject({
      type: "final",
      frameCount: texts.length + 1,
      finishReason: "length",
      usage: { promptTokens: 5, completionTokens: 4, ttftMs: 2 },
    });

    const second = await exchange();
    const error = { code: "PII_BLOCKED", detail: null, auditOpening: "e".repeat(64) };
    expect(
      await collect(second.context, [docSealFrame(second.key, 0, TYPE.error, utf8.encode(JSON.stringify(error)))]),
    ).toEqual([{ type: "error", seq: 0, ...error }]);
  });

  it("a frame padded to another length, or without its marker, is FRAME_MALFORMED", async () => {
    const { context, key } = await exchange();
    const plaintext = new Uint8Array(64); // "hi" needs 32
    plaintext.set([TYPE.data, 0x68, 0x69, MARKER]);
    const box = nacl.secretbox(plaintext, responseNonce(0), key);
    const frame = new Uint8Array(12 + box.length);
    new DataView(frame.buffer).setUint32(0, 8 + box.length);
    frame.set(box, 12);
    expect(await codeOf(collect(context, [frame]))).toBe("FRAME_MALFORMED");
  });

  it("a receipt signed as the page says verifies with the real verifier", async () => {
    const signing = nacl.sign.keyPair.fromSeed(seededRandom(13)(32));
    const unsigned = JSON.stringify({
      v: 1,
      requestHash: "1".repeat(64),
      answerHash: "2".repeat(64),
      finishReason: "stop",
      promptTokens: 1,
      completionTokens: 2,
      modelSha256: "3".repeat(64),
      manifestDigest: "4".repeat(64),
      documentDigest: "5".repeat(64),
      time: "2025-01-15T12:00:00.000Z",
    });
    const message = concat(utf8.encode(RECEIPT_TAG), new Uint8Array([0]), utf8.encode(unsigned));
    const sig = Buffer.from(nacl.sign.detached(message, signing.secretKey)).toString("base64url");
    const line = `${unsigned.slice(0, -1)},"sig":"${sig}"}`;
    await expect(verifyReceipt(line, signing.publicKey)).resolves.toMatchObject({ completionTokens: 2, line });
  });
});
