import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  FRAME_LENGTH_PREFIX,
  FRAME_SEQ_LENGTH,
  MAX_FRAME_LENGTH,
  MAX_REDACTION_COUNT,
  MIN_FRAME_LENGTH,
  REDACTION_KINDS,
  redactionsOf,
  TERMINAL_FRAME_PLAINTEXT_LENGTH,
  writeResponseNonce,
} from "../../sealed/frames.ts";
import {
  type ClientRequestContext,
  FrameDecoder,
  openRequest,
  openResponseFrames,
  REORDER_LOOKAHEAD,
  ReplayGuard,
  type ResponseEvent,
  ResponseSealer,
  SealedError,
  sealRequest,
  toHex,
} from "../../sealed/index.ts";
import { paddedLength, padme } from "../../sealed/padding.ts";
import { MAX_RECEIPT_LENGTH } from "../../sealed/receipt.ts";
import { decodeFramePlaintext } from "../../sealed/response.ts";
import { enclaveKeyFromSeed, sealedErrorOf, seededRandom, T0 } from "./helpers.ts";

const CHUNKS = ["Once ", "upon ", "a ", "time, ", "sécret ", "😀 ", "swordfish", "."];
// A receipt is opaque to the frame layer (client/sdk.ts verifies it); any string up to its limit.
const SUMMARY = {
  promptTokens: 12,
  completionTokens: CHUNKS.length,
  ttftMs: 3.25,
  finishReason: "stop",
  receipt: "receipt-line",
  auditOpening: "ab".repeat(32),
  redacted: null,
} as const;

async function channel(seed = 5): Promise<{ context: ClientRequestContext; sealer: ResponseSealer }> {
  const key = await enclaveKeyFromSeed(3);
  const { envelope, context } = await sealRequest({
    enclavePublicKey: key.publicKey,
    kind: "chat",
    body: { prompt: "x" },
    now: T0,
    randomBytes: seededRandom(seed),
  });
  const { sealer } = await openRequest(envelope, key, new ReplayGuard(), T0);
  return { context, sealer };
}

/** Frames of a normal response: one data frame per chunk, then the final frame. */
async function response(seed = 5) {
  const { context, sealer } = await channel(seed);
  const frames = CHUNKS.map((text) => sealer.data(text));
  frames.push(sealer.final(SUMMARY));
  return { context, sealer, frames };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

async function collect(context: ClientRequestContext, source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>) {
  const events: ResponseEvent[] = [];
  try {
    for await (const event of openResponseFrames(context, source)) events.push(event);
    return { events, error: undefined };
  } catch (error) {
    if (!(error instanceof SealedError)) throw error;
    return { events, error };
  }
}

function text(events: readonly ResponseEvent[]): string {
  return events.map((e) => (e.type === "data" ? e.text : "")).join("");
}

describe("response frames", () => {
  it("round-trips data, usage and frame count", async () => {
    const { context, frames } = await response();
    const { events, error } = await collect(context, frames);
    expect(error).toBeUndefined();
    expect(text(events)).toBe(CHUNKS.join(""));
    expect(events.at(-1)).toEqual({
      type: "final",
      seq: CHUNKS.length,
      usage: { promptTokens: 12, completionTokens: CHUNKS.length, ttftMs: 3.25 },
      finishReason: "stop",
      frameCount: CHUNKS.length + 1,
      receipt: "receipt-line",
      auditOpening: "ab".repeat(32),
      redacted: null,
    });
    expect(events.map((e) => e.seq)).toEqual([...Array(CHUNKS.length + 1).keys()]);
  });

  it("lays frames out as u32 length ‖ u64 seq ‖ MAC ‖ ciphertext", async () => {
    const { frames } = await response();
    frames.forEach((frame, seq) => {
      const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
      expect(view.getUint32(0)).toBe(frame.length - 4);
      expect(view.getBigUint64(4)).toBe(BigInt(seq));
    });
    // Data frame: 4 (length) + 8 (seq) + 16 (MAC) + the padded plaintext (type, text, 0x80, zeros).
    expect(frames[0]!.length).toBe(28 + paddedLength(2 + new TextEncoder().encode(CHUNKS[0]).length, 32));
  });

  it("pads every frame's plaintext: the host sees a frame's text length only in 32-byte steps", async () => {
    const { context, sealer } = await channel();
    const lengths = [0, 1, 5, 30, 31, 62, 63];
    const frames = lengths.map((n) => sealer.data("a".repeat(n)));
    // type + text + marker: up to 32 bytes in one block, then the next.
    expect(frames.map((f) => f.length)).toEqual([60, 60, 60, 60, 92, 92, 124]);
    frames.push(sealer.final(SUMMARY));
    expect(((frames.at(-1) as Uint8Array).length - 28) % 32).toBe(0);
    // ...and the client gets back exactly the texts.
    const { events, error } = await collect(context, frames);
    expect(error).toBeUndefined();
    expect(events.filter((e) => e.type === "data").map((e) => (e as { text: string }).text.length)).toEqual(lengths);
  });

  it("decodes the padding exactly: payload, 0x80, then only zeros; anything else is FRAME_MALFORMED", () => {
    const te = new TextEncoder();
    // Zero bytes up to `length` (the padded length the sealer makes: 32 for these short frames).
    const plain = (length: number, ...parts: number[][]) => {
      const out = new Uint8Array(length);
      out.set(parts.flat());
      return out;
    };
    const hi = [...te.encode("hi\u0000")]; // a text may itself end in a NUL
    expect(decodeFramePlaintext(0, plain(32, [1], hi, [0x80]))).toEqual({
      type: "data",
      seq: 0,
      text: "hi\u0000",
    });
    expect(decodeFramePlaintext(0, plain(32, [1], [0x80]))).toEqual({ type: "data", seq: 0, text: "" });
    for (const bad of [
      plain(4, [1], hi),
      plain(32, [1], hi, [0x80, 0, 1]),
      plain(32, [1], hi, [0x81, 0]),
      plain(1, [1]),
      plain(0),
    ]) {
      expect(() => decodeFramePlaintext(3, bad)).toThrow(
        /frame 3 padding: expected the payload, 0x80, then only zero bytes/,
      );
    }
    // Well-formed but not padded as the sealer pads: one encoding per frame only.
    for (const [bad, expected] of [
      [plain(5, [1], hi, [0x80]), 32],
      [plain(64, [1], hi, [0x80]), 32],
      [plain(32, [2], [...te.encode("{}")], [0x80]), TERMINAL_FRAME_PLAINTEXT_LENGTH],
    ] as const) {
      expect(() => decodeFramePlaintext(3, bad)).toThrow(
        `frame 3 padding: expected a plaintext of ${expected} bytes, found ${bad.length}`,
      );
    }
  });

  it("makes every final and error frame the same size, whatever it says", () => {
    const sizes = new Set<number>();
    const sealer = () => new ResponseSealer(new Uint8Array(32).fill(9));
    sizes.add(sealer().error("PII_BLOCKED", "PII found: EMAIL_ADDRESS").length);
    sizes.add(sealer().error("PII_BLOCKED", "PII found: EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD").length);
    sizes.add(sealer().error("POLICY_BLOCKED", "r".repeat(200)).length);
    sizes.add(sealer().error(`X${"Y".repeat(63)}`, "\u0001".repeat(200)).length); // the largest escaped detail
    sizes.add(sealer().error(`X${"Y".repeat(63)}`, "\u0001".repeat(200), "f".repeat(64)).length); // … with an opening
    sizes.add(sealer().error("INFERENCE_FAILED").length);
    sizes.add(
      sealer().final({
        promptTokens: 1,
        completionTokens: 2,
        ttftMs: 1,
        finishReason: "stop",
        receipt: "r",
        auditOpening: null,
        redacted: null,
      }).length,
    );
    // The largest final frame: the longest receipt (a real one has about 40 quotes, which JSON
    // escapes, and otherwise plain ASCII) and the biggest counts.
    sizes.add(
      sealer().final({
        promptTokens: Number.MAX_SAFE_INTEGER,
        completionTokens: Number.MAX_SAFE_INTEGER,
        ttftMs: 123456789.123,
        finishReason: "length",
        receipt: '"'.repeat(40) + "a".repeat(MAX_RECEIPT_LENGTH - 40),
        auditOpening: "f".repeat(64),
        // Every kind, each with the largest count.
        redacted: Object.fromEntries(REDACTION_KINDS.map((kind) => [kind, MAX_REDACTION_COUNT])),
      }).length,
    );
    expect([...sizes]).toEqual([FRAME_LENGTH_PREFIX + FRAME_SEQ_LENGTH + 16 + TERMINAL_FRAME_PLAINTEXT_LENGTH]);
  });
});

describe("length padding (Padmé)", () => {
  it("never shrinks, is monotonic, leaves exact block sizes alone and costs at most 12 % above 256 bytes", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 * 1024 * 1024 }), (n) => {
        const p = padme(n);
        expect(p).toBeGreaterThanOrEqual(n);
        expect(padme(n + 1)).toBeGreaterThanOrEqual(p);
        expect(padme(p)).toBe(p);
        if (n >= 256) expect(p / n).toBeLessThanOrEqual(1.12);
        expect(paddedLength(n, 32) % 32).toBe(0);
      }),
    );
    // Padmé keeps the leading one and floor(log2 E) + 1 bits: 1000 (E = 9, 5 bits) → multiples of 32.
    expect(padme(1000)).toBe(1024);
    expect(padme(9000)).toBe(9216);
    expect(paddedLength(40, 256)).toBe(256);
  });

  it("carries an enclave error frame as a terminal event", async () => {
    const { context, sealer } = await channel();
    const frames = [sealer.data("partial"), sealer.error("POLICY_BLOCKED", "rule no-secrets")];
    const { events, error } = await collect(context, frames);
    expect(error).toBeUndefined();
    expect(events.at(-1)).toEqual({
      type: "error",
      seq: 1,
      code: "POLICY_BLOCKED",
      detail: "rule no-secrets",
      auditOpening: null,
    });
    expect((await sealedErrorOf(() => sealer.data("more"))).code).toBe("SEALER_CLOSED");
    expect((await sealedErrorOf(() => sealer.error("not a code"))).code).toBe("SEALER_CLOSED");
  });

  it("carries the audit opening of a refused request in its error frame", async () => {
    const { context, sealer } = await channel();
    const { events, error } = await collect(context, [
      sealer.error("PII_BLOCKED", "PII found: email", "cd".repeat(32)),
    ]);
    expect(error).toBeUndefined();
    expect(events).toEqual([
      { type: "error", seq: 0, code: "PII_BLOCKED", detail: "PII found: email", auditOpening: "cd".repeat(32) },
    ]);
  });

  /** A terminal frame's plaintext as the sealer pads it: type byte, JSON, 0x80, zeros. */
  const terminalPlaintext = (type: number, json: string) => {
    const out = new Uint8Array(TERMINAL_FRAME_PLAINTEXT_LENGTH);
    out.set([type, ...new TextEncoder().encode(json), 0x80]);
    return out;
  };

  it("requires a final frame's frameCount to count the frames up to it (its seq + 1)", () => {
    const final = (frameCount: string) =>
      terminalPlaintext(
        2,
        `{"promptTokens":1,"completionTokens":2,"ttftMs":3,"finishReason":"stop","receipt":"r","auditOpening":null,"redacted":null${frameCount}}`,
      );
    expect(decodeFramePlaintext(4, final(',"frameCount":5'))).toMatchObject({ type: "final", seq: 4, frameCount: 5 });
    for (const [frameCount, found] of [
      [',"frameCount":4', "4"],
      [',"frameCount":6', "6"],
      [',"frameCount":"5"', "5"],
      ["", "undefined"],
    ] as const) {
      expect(() => decodeFramePlaintext(4, final(frameCount))).toThrow(
        `final frame frameCount: expected 5, found ${found}`,
      );
    }
  });

  it("carries the PII kinds the enclave redacted, with counts, inside the sealed final frame", async () => {
    const { context, sealer } = await channel();
    const frames = [sealer.data("an answer"), sealer.final({ ...SUMMARY, redacted: { email: 1, phone: 2 } })];
    const { events, error } = await collect(context, frames);
    expect(error).toBeUndefined();
    expect(events.at(-1)).toMatchObject({ type: "final", seq: 1, redacted: { email: 1, phone: 2 } });
    // The host forwards these bytes: neither the field nor a kind is in them in the clear.
    const wire = Buffer.concat(frames);
    for (const clear of ["redacted", "email", "phone"]) expect(wire.includes(Buffer.from(clear))).toBe(false);
    // Nothing redacted: null, and the frame is as large as one that names every kind.
    const { context: other, sealer: plain } = await channel(6);
    const none = plain.final({ ...SUMMARY, redacted: null });
    expect((await collect(other, [none])).events).toEqual([expect.objectContaining({ type: "final", redacted: null })]);
    expect(none.length).toBe(frames[1]!.length);
  });

  it("reads the final frame of an enclave built before redacted (no such member) as not said: undefined, not null", async () => {
    // Exactly the JSON the sealer wrote before the member came (key order and all).
    const old = terminalPlaintext(
      2,
      `{"promptTokens":1,"completionTokens":2,"ttftMs":3,"finishReason":"stop","frameCount":5,"receipt":"r","auditOpening":null}`,
    );
    const event = decodeFramePlaintext(4, old);
    expect(event).toMatchObject({ type: "final", seq: 4, frameCount: 5, receipt: "r", auditOpening: null });
    expect(event.type === "final" && "redacted" in event).toBe(true);
    expect(event.type === "final" ? event.redacted : "not final").toBeUndefined();
    // Present but null is "nothing redacted", still told apart from absent.
    const none = terminalPlaintext(
      2,
      `{"promptTokens":1,"completionTokens":2,"ttftMs":3,"finishReason":"stop","frameCount":5,"receipt":"r","auditOpening":null,"redacted":null}`,
    );
    expect(decodeFramePlaintext(4, none)).toMatchObject({ type: "final", redacted: null });
    // This build's enclave always says: its sealer refuses a summary without it.
    const { sealer } = await channel();
    const unsaid = { ...SUMMARY, redacted: undefined } as unknown as Parameters<ResponseSealer["final"]>[0];
    expect((await sealedErrorOf(() => sealer.final(unsaid))).code).toBe("INVALID_ARGUMENT");
  });

  it("says a summed count past MAX_REDACTION_COUNT as MAX_REDACTION_COUNT (at least), so the final frame still seals", async () => {
    const counts = new Map([
      ["phone", 3],
      ["email", MAX_REDACTION_COUNT + 5],
    ] as const);
    const redacted = redactionsOf(counts);
    expect(redacted).toEqual({ phone: 3, email: MAX_REDACTION_COUNT });
    expect(redactionsOf(new Map())).toBeNull();
    const { sealer, context } = await channel();
    const events = (await collect(context, [sealer.final({ ...SUMMARY, redacted })])).events;
    expect(events).toEqual([
      expect.objectContaining({ type: "final", redacted: { phone: 3, email: MAX_REDACTION_COUNT } }),
    ]);
  });

  it("refuses a final frame's redacted that is not null or known kinds with counts 1..MAX_REDACTION_COUNT", async () => {
    const final = (redacted: string) =>
      terminalPlaintext(
        2,
        `{"promptTokens":1,"completionTokens":2,"ttftMs":3,"finishReason":"stop","receipt":"r","auditOpening":null${redacted},"frameCount":5}`,
      );
    expect(decodeFramePlaintext(4, final(',"redacted":{"iban":3,"us_ssn":1}'))).toMatchObject({
      redacted: { iban: 3, us_ssn: 1 },
    });
    const nine = Object.fromEntries([...REDACTION_KINDS, "name", "address"].map((kind) => [kind, 1]));
    for (const [redacted, expected] of [
      [',"redacted":[["email",1]]', "null or an object of PII kinds to counts"],
      [',"redacted":"email"', "null or an object of PII kinds to counts"],
      [',"redacted":{}', "null or at least one PII kind"],
      [',"redacted":{"name":1}', "PII kinds among email, phone, credit_card, iban, us_ssn, ip_address, secret_key"],
      [
        ',"redacted":{"__proto__":1}',
        "PII kinds among email, phone, credit_card, iban, us_ssn, ip_address, secret_key, found an unknown kind",
      ],
      [',"redacted":{"email":-1}', "a count of email of 1..16777216, found -1"],
      [',"redacted":{"email":0}', "a count of email of 1..16777216, found 0"],
      [',"redacted":{"email":1.5}', "a count of email of 1..16777216, found 1.5"],
      [',"redacted":{"email":"1"}', "a count of email of 1..16777216, found string"],
      [`,"redacted":{"phone":${MAX_REDACTION_COUNT + 1}}`, "a count of phone of 1..16777216, found 16777217"],
      [
        `,"redacted":${JSON.stringify(nine)}`,
        "PII kinds among email, phone, credit_card, iban, us_ssn, ip_address, secret_key, found an unknown kind",
      ],
    ] as const) {
      expect(() => decodeFramePlaintext(4, final(redacted)), redacted).toThrow(
        `final frame 4 redacted: expected ${expected}`,
      );
      const value = JSON.parse(redacted.slice(',"redacted":'.length));
      const { sealer } = await channel();
      expect((await sealedErrorOf(() => sealer.final({ ...SUMMARY, redacted: value }))).code, redacted).toBe(
        "INVALID_ARGUMENT",
      );
    }
  });

  it("requires an error frame's auditOpening, as a final frame's (null or 64 hex digits)", () => {
    const errorPlaintext = (json: string) => terminalPlaintext(3, json);
    expect(
      decodeFramePlaintext(4, errorPlaintext('{"code":"POLICY_BLOCKED","detail":null,"auditOpening":null}')),
    ).toEqual({ type: "error", seq: 4, code: "POLICY_BLOCKED", detail: null, auditOpening: null });
    expect(() => decodeFramePlaintext(4, errorPlaintext('{"code":"POLICY_BLOCKED","detail":null}'))).toThrow(
      "error frame 4 auditOpening: expected null or 64 lower-case hex digits",
    );
    for (const opening of ['"AB"', '"ab"', "7", `"${"ab".repeat(32)}\\n"`]) {
      expect(() =>
        decodeFramePlaintext(4, errorPlaintext(`{"code":"POLICY_BLOCKED","detail":null,"auditOpening":${opening}}`)),
      ).toThrow("error frame 4 auditOpening: expected null or 64 lower-case hex digits");
    }
  });

  it("refuses to seal after the final frame (no counter reuse)", async () => {
    const { sealer } = await response();
    expect(sealer.closed).toBe(true);
    expect((await sealedErrorOf(() => sealer.data("late"))).code).toBe("SEALER_CLOSED");
    expect((await sealedErrorOf(() => sealer.final(SUMMARY))).code).toBe("SEALER_CLOSED");
  });

  it("checks what the sealer is given", async () => {
    const { sealer } = await channel();
    expect((await sealedErrorOf(() => sealer.error("lower_case"))).code).toBe("INVALID_ARGUMENT");
    expect((await sealedErrorOf(() => sealer.final({ ...SUMMARY, promptTokens: -1 }))).code).toBe("INVALID_ARGUMENT");
    expect((await sealedErrorOf(() => sealer.data("x".repeat(1_100_000)))).code).toBe("INVALID_ARGUMENT");
    for (const auditOpening of ["AB".repeat(32), "ab".repeat(31), `${"ab".repeat(32)}\n`]) {
      expect((await sealedErrorOf(() => sealer.final({ ...SUMMARY, auditOpening }))).code).toBe("INVALID_ARGUMENT");
      expect((await sealedErrorOf(() => sealer.error("PII_BLOCKED", null, auditOpening))).code).toBe(
        "INVALID_ARGUMENT",
      );
    }
    expect(sealer.nextSeq).toBe(0);
  });

  const attacks: Array<{ name: string; mutate: (frames: Uint8Array[]) => Uint8Array[]; code: string }> = [
    {
      name: "bit flip in a frame's ciphertext",
      mutate: (f) => f.map((fr, i) => (i === 3 ? Object.assign(fr.slice(), { [fr.length - 1]: fr.at(-1)! ^ 1 }) : fr)),
      code: "FRAME_TAMPERED",
    },
    {
      name: "bit flip in a frame's MAC",
      mutate: (f) => f.map((fr, i) => (i === 2 ? Object.assign(fr.slice(), { 14: fr[14]! ^ 0x80 }) : fr)),
      code: "FRAME_TAMPERED",
    },
    {
      name: "clear seq rewritten",
      mutate: (f) => f.map((fr, i) => (i === 2 ? Object.assign(fr.slice(), { 11: 5 }) : fr)),
      code: "FRAME_TAMPERED",
    },
    { name: "frame dropped", mutate: (f) => f.filter((_, i) => i !== 3), code: "FRAME_DROPPED" },
    {
      name: "last data frame dropped",
      mutate: (f) => f.filter((_, i) => i !== CHUNKS.length - 1),
      code: "FRAME_DROPPED",
    },
    { name: "two frames swapped", mutate: (f) => [f[0]!, f[2]!, f[1]!, ...f.slice(3)], code: "FRAME_REORDERED" },
    {
      name: "frame moved later",
      mutate: (f) => [f[0]!, f[2]!, f[3]!, f[4]!, f[1]!, ...f.slice(5)],
      code: "FRAME_REORDERED",
    },
    { name: "frame duplicated", mutate: (f) => [...f.slice(0, 3), f[2]!, ...f.slice(3)], code: "FRAME_REPLAYED" },
    {
      name: "old frame replayed later",
      mutate: (f) => [...f.slice(0, 5), f[1]!, ...f.slice(5)],
      code: "FRAME_REPLAYED",
    },
    { name: "final frame dropped", mutate: (f) => f.slice(0, -1), code: "STREAM_TRUNCATED" },
    {
      name: "stream cut inside a frame",
      mutate: (f) => [...f.slice(0, 4), f[4]!.subarray(0, 10)],
      code: "STREAM_TRUNCATED",
    },
    { name: "empty stream", mutate: () => [], code: "STREAM_TRUNCATED" },
    { name: "bytes after the final frame", mutate: (f) => [...f, Uint8Array.of(0, 0)], code: "DATA_AFTER_FINAL" },
    { name: "frame replayed after the final", mutate: (f) => [...f, f[0]!], code: "FRAME_REPLAYED" },
    {
      name: "frame length prefix out of range",
      mutate: (f) => f.map((fr, i) => (i === 1 ? Object.assign(fr.slice(), { 0: 0x7f }) : fr)),
      code: "FRAME_MALFORMED",
    },
  ];

  for (const { name, mutate, code } of attacks) {
    it(`detects ${name} as ${code}`, async () => {
      const { context, frames } = await response();
      const { events, error } = await collect(context, mutate(frames));
      expect(error?.code).toBe(code);
      // Never a final event when the stream was attacked; what was delivered is an in-order prefix.
      expect(events.some((e) => e.type === "final")).toBe(false);
      expect(CHUNKS.join("").startsWith(text(events))).toBe(true);
      expect(error?.message).not.toContain("swordfish");
    });
  }

  it("reports a gap with no late frame within the look-ahead as dropped", async () => {
    const { context, sealer } = await channel();
    const frames = Array.from({ length: REORDER_LOOKAHEAD + 4 }, (_, i) => sealer.data(`t${i}`));
    frames.push(sealer.final(SUMMARY));
    // Frame 1 reappears only after more than REORDER_LOOKAHEAD later frames.
    const moved = [frames[0]!, ...frames.slice(2), frames[1]!];
    expect((await collect(context, moved)).error?.code).toBe("FRAME_DROPPED");
  });

  it("judges the frames before a framing error first, whatever the chunking (DATA_AFTER_FINAL, FRAME_DROPPED)", async () => {
    const junk = new Uint8Array(FRAME_LENGTH_PREFIX); // L = 0: out of bounds
    // The final frame, then bad framing: in a chunk of its own, or in the final frame's chunk.
    const ended = await response();
    const final = ended.frames.at(-1) as Uint8Array;
    const before = ended.frames.slice(0, -1);
    const afterFinal = [
      await collect(ended.context, [...before, final, junk]),
      await collect(ended.context, [...before, concat([final, junk])]),
      await collect(ended.context, [concat([...before, final, junk])]),
    ];
    for (const { events, error } of afterFinal) {
      expect(error?.code).toBe("DATA_AFTER_FINAL");
      expect(error?.message).toContain(`found ${junk.length} more bytes`);
      expect(events.some((e) => e.type === "final")).toBe(false);
      expect(text(events)).toBe(CHUNKS.join(""));
    }
    // A frame after a gap (frame 1 never sent), then bad framing.
    const { context, sealer } = await channel();
    const frames = [sealer.data("a"), sealer.data("dropped"), sealer.data("later")];
    for (const chunks of [
      [frames[0]!, frames[2]!, junk],
      [frames[0]!, concat([frames[2]!, junk])],
      [concat([frames[0]!, frames[2]!, junk])],
    ]) {
      const { events, error } = await collect(context, chunks);
      expect(error?.code).toBe("FRAME_DROPPED");
      expect(error?.message).toContain("expected 1, found 2");
      expect(text(events)).toBe("a");
    }
    // Bad framing right after a frame that is in order is the framing error itself.
    for (const chunks of [[frames[0]!, junk], [concat([frames[0]!, junk])]]) {
      expect((await collect(context, chunks)).error?.code).toBe("FRAME_MALFORMED");
    }
  });

  it("refuses a whole frame after the final frame (DATA_AFTER_FINAL), authentic or not, and gives no final event", async () => {
    // The same seed gives the same request and so the same response key: \`twin\` seals the frame
    // that would follow the final one (seq = final + 1), which the real sealer refuses to make.
    const { context, frames } = await response(5);
    const twin = await channel(5);
    const next = Array.from({ length: frames.length + 1 }, (_, i) => twin.sealer.data(`t${i}`)).at(-1) as Uint8Array;
    expect(new DataView(next.buffer, next.byteOffset).getBigUint64(4)).toBe(BigInt(frames.length));
    const foreign = (await response(6)).frames[1] as Uint8Array; // another request's key: its MAC fails
    for (const [name, extra] of [
      ["authentic, seq = final + 1", next],
      ["another request's frame", foreign],
    ] as const) {
      for (const chunks of [[...frames, extra], [concat([...frames, extra])]]) {
        const { events, error } = await collect(context, chunks);
        expect([name, error?.code, error?.message]).toEqual([
          name,
          "DATA_AFTER_FINAL",
          `response stream: expected end after the final frame, found ${extra.length} more bytes`,
        ]);
        expect(events.some((e) => e.type === "final")).toBe(false);
        expect(text(events)).toBe(CHUNKS.join(""));
      }
    }
  });

  it("refuses frames spliced in from another request (different response key)", async () => {
    const a = await response(5);
    const b = await response(6);
    const spliced = [...a.frames.slice(0, 2), b.frames[2]!, ...a.frames.slice(3)];
    expect((await collect(a.context, spliced)).error?.code).toBe("FRAME_TAMPERED");
  });

  it("rejects every single bit flip anywhere in the stream", async () => {
    const { context, frames } = await response();
    const stream = concat(frames);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: stream.length * 8 - 1 }), async (bit) => {
        const flipped = stream.slice();
        flipped[bit >> 3] = flipped[bit >> 3]! ^ (1 << (bit & 7));
        const { events, error } = await collect(context, [flipped]);
        expect(error).toBeInstanceOf(SealedError);
        expect(events.some((e) => e.type === "final")).toBe(false);
      }),
      { seed: 20250115, numRuns: 300 },
    );
  });

  it("decodes the same events whatever the chunking (FrameDecoder)", async () => {
    const { context, frames } = await response();
    const stream = concat(frames);
    const expected = (await collect(context, frames)).events;
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 40 }),
        async (cuts) => {
          const points = [0, ...cuts.sort((x, y) => x - y), stream.length];
          const chunks = points.slice(1).map((end, i) => stream.subarray(points[i]!, end));
          const { events, error } = await collect(context, chunks);
          expect(error).toBeUndefined();
          expect(events).toEqual(expected);
        },
      ),
      { seed: 42, numRuns: 200 },
    );
    // Extremes: one byte at a time, and everything in one chunk.
    const bytewise = Array.from(stream, (b) => Uint8Array.of(b));
    expect((await collect(context, bytewise)).events).toEqual(expected);
    expect((await collect(context, [stream])).events).toEqual(expected);
  });

  it("reads a WHATWG ReadableStream", async () => {
    const { context, frames } = await response();
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const frame of frames) controller.enqueue(frame);
        controller.close();
      },
    });
    const { events, error } = await collect(context, stream as unknown as AsyncIterable<Uint8Array>);
    expect(error).toBeUndefined();
    expect(text(events)).toBe(CHUNKS.join(""));
  });

  it("FrameDecoder refuses out-of-range lengths and seqs, and stays failed", async () => {
    const tooShort = new FrameDecoder();
    expect((await sealedErrorOf(() => tooShort.push(Uint8Array.of(0, 0, 0, 24)))).code).toBe("FRAME_MALFORMED");
    expect((await sealedErrorOf(() => tooShort.push(Uint8Array.of(0)))).code).toBe("FRAME_MALFORMED");
    const tooLong = new FrameDecoder();
    expect((await sealedErrorOf(() => tooLong.push(Uint8Array.of(0, 0x10, 0, 1)))).code).toBe("FRAME_MALFORMED");
    // A frame of the least length (MIN_FRAME_LENGTH) whose seq is ≥ 2^53: its length passes, its seq does not.
    const hugeSeq = new Uint8Array(4 + MIN_FRAME_LENGTH);
    hugeSeq[3] = MIN_FRAME_LENGTH;
    hugeSeq[4] = 0xff; // seq ≥ 2^53
    const seqError = await sealedErrorOf(() => new FrameDecoder().push(hugeSeq));
    expect([seqError.code, seqError.message]).toEqual([
      "FRAME_MALFORMED",
      "frame seq: expected a value below 2^53, found a larger one",
    ]);
    // The top bit of seq alone is ≥ 2^53 too; 2^53 - 1 (0x001f ff.. ff) is the largest seq decoded.
    for (const [top, second, refused] of [
      [0x80, 0x00, true],
      [0x00, 0x20, true],
      [0x00, 0x1f, false],
    ] as const) {
      const bytes = new Uint8Array(4 + MIN_FRAME_LENGTH);
      bytes[3] = MIN_FRAME_LENGTH;
      bytes.fill(0xff, 6, 12);
      bytes[4] = top;
      bytes[5] = second;
      if (refused) expect((await sealedErrorOf(() => new FrameDecoder().push(bytes))).code).toBe("FRAME_MALFORMED");
      else expect(new FrameDecoder().push(bytes).map((f) => f.seq)).toEqual([2 ** 53 - 1]);
    }
    // Lengths: MIN_FRAME_LENGTH - 1 is refused by the decoder (not left to fail later as tampered),
    // MIN_FRAME_LENGTH is read.
    const minus = await sealedErrorOf(() => new FrameDecoder().push(Uint8Array.of(0, 0, 0, MIN_FRAME_LENGTH - 1)));
    expect([minus.code, minus.message]).toEqual([
      "FRAME_MALFORMED",
      `frame length: expected ${MIN_FRAME_LENGTH}..${MAX_FRAME_LENGTH}, found ${MIN_FRAME_LENGTH - 1}`,
    ]);
    const least = new Uint8Array(4 + MIN_FRAME_LENGTH);
    least[3] = MIN_FRAME_LENGTH;
    expect(new FrameDecoder().push(least)).toHaveLength(1);
    // The frames a failing chunk completed before the error are left for the caller to judge.
    const { frames } = await response();
    const decoder = new FrameDecoder();
    decoder.push(frames[0]!.subarray(0, 5));
    expect((await sealedErrorOf(() => decoder.push(concat([frames[0]!.subarray(5), frames[1]!, hugeSeq])))).code).toBe(
      "FRAME_MALFORMED",
    );
    expect(decoder.failure?.framesBefore.map((f) => f.seq)).toEqual([0, 1]);
    expect(decoder.failure?.bytes).toBe(hugeSeq.length);
  });

  it("never repeats a nonce: seqs run 0..n-1 on a long stream and each maps to a distinct nonce", async () => {
    const { context, sealer } = await channel();
    const n = 20_000;
    const frames: Uint8Array[] = [];
    for (let i = 0; i < n; i++) frames.push(sealer.data("tok "));
    frames.push(sealer.final({ ...SUMMARY, completionTokens: n }));
    const seen = new Set<string>();
    const nonce = new Uint8Array(24);
    frames.forEach((frame, i) => {
      const seq = Number(new DataView(frame.buffer, frame.byteOffset + 4, 8).getBigUint64(0));
      expect(seq).toBe(i);
      writeResponseNonce(nonce, seq);
      seen.add(toHex(nonce));
    });
    expect(seen.size).toBe(n + 1);
    let count = 0;
    for await (const event of openResponseFrames(context, frames)) count += event.type === "data" ? 1 : 0;
    expect(count).toBe(n);
  });

  it("encodes response nonces as direction 0x01 ‖ zeros ‖ u64 BE seq, correct past 2^32", () => {
    const nonce = new Uint8Array(24);
    writeResponseNonce(nonce, 2 ** 32 + 5);
    expect(toHex(nonce)).toBe(`01${"00".repeat(15)}0000000100000005`);
    const high = new Uint8Array(24);
    writeResponseNonce(high, Number.MAX_SAFE_INTEGER);
    expect(toHex(high)).toBe(`01${"00".repeat(15)}001fffffffffffff`);
  });
});
