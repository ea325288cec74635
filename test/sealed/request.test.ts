import { readFileSync } from "node:fs";
import nacl from "tweetnacl";
import { describe, expect, it, vi } from "vitest";
import { sha256 } from "../../sealed/crypto.ts";
import { ENCLAVE_KEY_ID_HEX, encodeEnvelopePrefix, MAX_REQUEST_CIPHERTEXT_LENGTH } from "../../sealed/envelope.ts";
import {
  ENVELOPE_PREFIX_LENGTH,
  enclaveKeyId,
  openRequest,
  openResponseFrames,
  parseEnvelope,
  prepareRequestKey,
  ReplayGuard,
  sealRequest,
  toHex,
} from "../../sealed/index.ts";
import { paddedLength } from "../../sealed/padding.ts";
import { PADDING_SOFT_LIMIT } from "../../sealed/request.ts";
import { enclaveKeyFromSeed, sealedErrorOf, seededRandom, T0 } from "./helpers.ts";

const SECRET_PROMPT = "the launch code is 0000-swordfish";
const body = { messages: [{ role: "user", content: SECRET_PROMPT }] };

async function sealed(seed = 7, kind: "chat" | "complete" = "chat", now = T0, requestBody: unknown = body) {
  const key = await enclaveKeyFromSeed(1);
  const { envelope, context } = await sealRequest({
    enclavePublicKey: key.publicKey,
    kind,
    body: requestBody,
    now,
    randomBytes: seededRandom(seed),
  });
  return { key, envelope, context };
}

function flipBit(bytes: Uint8Array, index: number, bit = 0): Uint8Array {
  const copy = bytes.slice();
  copy[index] = copy[index]! ^ (1 << bit);
  return copy;
}

describe("sealRequest / openRequest", () => {
  it("round-trips the request and exposes only the routing header in the clear", async () => {
    const { key, envelope, context } = await sealed();
    const { request } = await openRequest(envelope, key, new ReplayGuard(), T0 + 500);
    expect(request).toEqual({ v: 1, requestId: context.requestId, timestamp: T0, kind: "chat", body });
    expect(context.requestId).toMatch(/^[0-9a-f]{32}$/);

    const parsed = parseEnvelope(envelope);
    expect(parsed.header.version).toBe(1);
    expect(parsed.header.kind).toBe("chat");
    expect(toHex(parsed.header.keyId)).toBe(toHex(await enclaveKeyId(key.publicKey)));
    expect(parsed.header.ciphertextLength).toBe(envelope.length - ENVELOPE_PREFIX_LENGTH);
    // Neither the prompt nor the request id appears in the envelope bytes.
    const asText = new TextDecoder("latin1").decode(envelope);
    expect(asText).not.toContain("swordfish");
    expect(toHex(envelope)).not.toContain(context.requestId);
  });

  it("pads the ciphertext: prompts of different lengths give envelopes of one size, and still open exactly", async () => {
    const sizes: number[] = [];
    for (const content of ["hi", "a prompt of some thirty letters", "x".repeat(50)]) {
      const requestBody = { messages: [{ role: "user", content }] };
      const { key, envelope } = await sealed(7, "chat", T0, requestBody);
      sizes.push(envelope.length);
      expect((await openRequest(envelope, key, new ReplayGuard(), T0)).request.body).toEqual(requestBody);
    }
    expect(new Set(sizes).size).toBe(1);
    const ciphertext = (sizes[0] as number) - ENVELOPE_PREFIX_LENGTH;
    expect(ciphertext % 256).toBe(0);
    // A much longer prompt lands in a larger bucket (Padmé above the 256-byte blocks).
    const long = await sealed(7, "chat", T0, { messages: [{ role: "user", content: "y".repeat(5000) }] });
    const longCiphertext = long.envelope.length - ENVELOPE_PREFIX_LENGTH;
    expect(longCiphertext % 256).toBe(0);
    expect(longCiphertext).toBeGreaterThan(5000 + 48);
    expect(longCiphertext).toBeLessThanOrEqual(paddedLength(5000 + 48 + 200, 256));
  });

  it("never pads a request that fits the host's default 1 MiB limit past it", async () => {
    // Unpadded just under the limit: Padmé alone would add up to 12 % (and the host would say 413).
    const near = await sealed(7, "complete", T0, { prompt: "z".repeat(1024 * 1024 - 400) });
    expect(near.envelope.length).toBe(1024 * 1024);
    expect(PADDING_SOFT_LIMIT + ENVELOPE_PREFIX_LENGTH).toBe(1024 * 1024);
    expect((await openRequest(near.envelope, near.key, new ReplayGuard(), T0)).request.body).toEqual({
      prompt: "z".repeat(1024 * 1024 - 400),
    });
    // Over the limit unpadded: padded as usual (the host must be configured for such requests).
    const over = await sealed(7, "complete", T0, { prompt: "z".repeat(1024 * 1024 + 100) });
    // (Padmé keeps the top 5 bits of a length just over 2^20: steps of 2^15.)
    expect(over.envelope.length - ENVELOPE_PREFIX_LENGTH).toBe(1024 * 1024 + 32768);
  });

  it("refuses a request too large to seal (REQUEST_TOO_LARGE), naming the limit and the size", async () => {
    // JSON around the prompt, the header digest and the MAC: the prompt may be this much shorter.
    const overhead = (await sealed(7, "complete", T0, { prompt: "" })).envelope.length;
    const error = await sealed(7, "complete", T0, { prompt: "z".repeat(MAX_REQUEST_CIPHERTEXT_LENGTH) }).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ name: "RequestTooLargeError", code: "REQUEST_TOO_LARGE" });
    expect((error as Error).message).toMatch(
      new RegExp(`^request size: expected a ciphertext of at most ${MAX_REQUEST_CIPHERTEXT_LENGTH} bytes, found \\d+$`),
    );
    expect(overhead).toBeLessThan(1024);
  });

  it("seals a request whose ciphertext is exactly the largest (MAX_REQUEST_CIPHERTEXT_LENGTH), one byte more is REQUEST_TOO_LARGE", async () => {
    // Unpadded ciphertext: header digest (32) + the request JSON + MAC (16); request ids are 32 characters.
    const jsonAround = JSON.stringify({
      v: 1,
      requestId: "0".repeat(32),
      timestamp: T0,
      kind: "complete",
      body: { prompt: "" },
    }).length;
    const fill = MAX_REQUEST_CIPHERTEXT_LENGTH - 48 - jsonAround;
    const largest = await sealed(7, "complete", T0, { prompt: "z".repeat(fill) });
    expect(largest.envelope.length).toBe(ENVELOPE_PREFIX_LENGTH + MAX_REQUEST_CIPHERTEXT_LENGTH);
    const opened = await openRequest(largest.envelope, largest.key, new ReplayGuard(), T0);
    expect((opened.request.body as { prompt: string }).prompt).toHaveLength(fill);

    const error = await sealedErrorOf(() => sealed(7, "complete", T0, { prompt: "z".repeat(fill + 1) }));
    expect([error.code, error.message]).toEqual([
      "REQUEST_TOO_LARGE",
      `request size: expected a ciphertext of at most ${MAX_REQUEST_CIPHERTEXT_LENGTH} bytes, found ${MAX_REQUEST_CIPHERTEXT_LENGTH + 1}`,
    ]);
  });

  it("parses an envelope declaring the largest ciphertext, and refuses one declaring a byte more (ENVELOPE_MALFORMED)", async () => {
    const key = await enclaveKeyFromSeed(1);
    const keyId = await enclaveKeyId(key.publicKey);
    const envelopeOf = (ciphertextLength: number) => {
      const envelope = new Uint8Array(ENVELOPE_PREFIX_LENGTH + ciphertextLength);
      envelope.set(encodeEnvelopePrefix("chat", keyId, ciphertextLength, new Uint8Array(32), new Uint8Array(24)));
      return envelope;
    };
    expect(parseEnvelope(envelopeOf(MAX_REQUEST_CIPHERTEXT_LENGTH)).header.ciphertextLength).toBe(
      MAX_REQUEST_CIPHERTEXT_LENGTH,
    );
    // Declared and actual lengths agree: only the limit refuses it.
    const error = await sealedErrorOf(() => parseEnvelope(envelopeOf(MAX_REQUEST_CIPHERTEXT_LENGTH + 1)));
    expect([error.code, error.message]).toEqual([
      "ENVELOPE_MALFORMED",
      `envelope ciphertext length: expected at most ${MAX_REQUEST_CIPHERTEXT_LENGTH}, found ${MAX_REQUEST_CIPHERTEXT_LENGTH + 1}`,
    ]);
  });

  it("is reproducible with injected randomness and fresh per request otherwise", async () => {
    const a = await sealed(99);
    const b = await sealed(99);
    expect(toHex(a.envelope)).toBe(toHex(b.envelope));
    const key = a.key;
    const c = await sealRequest({ enclavePublicKey: key.publicKey, kind: "chat", body, now: T0 });
    const d = await sealRequest({ enclavePublicKey: key.publicKey, kind: "chat", body, now: T0 });
    // Fresh ephemeral key (bytes 22..54), nonce (54..78) and request id per request.
    expect(toHex(c.envelope.subarray(22, 54))).not.toBe(toHex(d.envelope.subarray(22, 54)));
    expect(toHex(c.envelope.subarray(54, 78))).not.toBe(toHex(d.envelope.subarray(54, 78)));
    expect(c.context.requestId).not.toBe(d.context.requestId);
  });

  it("never serialises the response key of the client context", async () => {
    const { context } = await sealed();
    expect(JSON.parse(JSON.stringify(context))).toEqual({ requestId: context.requestId, kind: "chat" });
  });

  const tampers: Array<{ name: string; mutate: (e: Uint8Array) => Uint8Array; code: string }> = [
    { name: "version byte", mutate: (e) => flipBit(e, 0, 1), code: "UNSUPPORTED_VERSION" },
    { name: "kind byte to an unknown kind", mutate: (e) => flipBit(e, 1, 3), code: "ENVELOPE_MALFORMED" },
    { name: "kind byte chat → complete", mutate: (e) => Object.assign(e.slice(), { 1: 2 }), code: "HEADER_MISMATCH" },
    { name: "key id", mutate: (e) => flipBit(e, 5), code: "WRONG_ENCLAVE_KEY" },
    { name: "ciphertext length", mutate: (e) => flipBit(e, 21), code: "ENVELOPE_MALFORMED" },
    { name: "ephemeral public key", mutate: (e) => flipBit(e, 30), code: "DECRYPTION_FAILED" },
    // X25519 masks bit 255 of the u-coordinate (RFC 7748 section 5): the same point, another
    // encoding, so decryption succeeds and the header digest refuses it (docs/protocol.md).
    { name: "ephemeral public key's top bit", mutate: (e) => flipBit(e, 53, 7), code: "HEADER_MISMATCH" },
    { name: "nonce", mutate: (e) => flipBit(e, 60), code: "DECRYPTION_FAILED" },
    { name: "MAC", mutate: (e) => flipBit(e, ENVELOPE_PREFIX_LENGTH + 3), code: "DECRYPTION_FAILED" },
    { name: "ciphertext body", mutate: (e) => flipBit(e, e.length - 5, 7), code: "DECRYPTION_FAILED" },
    { name: "truncation", mutate: (e) => e.slice(0, e.length - 1), code: "ENVELOPE_MALFORMED" },
    { name: "appended byte", mutate: (e) => Uint8Array.from([...e, 0]), code: "ENVELOPE_MALFORMED" },
    { name: "shorter than a prefix", mutate: (e) => e.slice(0, 40), code: "ENVELOPE_MALFORMED" },
  ];

  for (const { name, mutate, code } of tampers) {
    it(`refuses a bit flip / edit in the ${name} with ${code}`, async () => {
      const { key, envelope } = await sealed();
      const guard = new ReplayGuard();
      const error = await sealedErrorOf(() => openRequest(mutate(envelope), key, guard, T0));
      expect(error.code).toBe(code);
      expect(error.message).not.toContain("swordfish");
      // Not recorded by the replay guard (docs/protocol.md): the request as sealed still opens.
      expect(guard.size).toBe(0);
      expect((await openRequest(envelope, key, guard, T0)).request.requestId).toMatch(/^[0-9a-f]{32}$/);
    });
  }

  it("fixes the decryption failure message", async () => {
    const { key, envelope } = await sealed();
    const error = await sealedErrorOf(() => openRequest(flipBit(envelope, 100), key, new ReplayGuard(), T0));
    expect(error.message).toBe("decryption failed");
  });

  it("refuses a routing header swapped in from another request (HEADER_MISMATCH)", async () => {
    // Two requests of equal size but different kinds: the host moves B's header onto A.
    // "complete" is 4 characters longer than "chat"; pad the chat body to the same size.
    const a = await sealed(11, "chat", T0, "abcdefgh");
    const b = await sealed(12, "complete", T0, "abcd");
    expect(a.envelope.length).toBe(b.envelope.length);
    const swapped = a.envelope.slice();
    swapped.set(b.envelope.subarray(0, 22), 0);
    const error = await sealedErrorOf(() => openRequest(swapped, a.key, new ReplayGuard(), T0));
    expect(error.code).toBe("HEADER_MISMATCH");
  });

  it("refuses a request sealed to another enclave key", async () => {
    const { envelope } = await sealed();
    const other = await enclaveKeyFromSeed(2);
    expect((await sealedErrorOf(() => openRequest(envelope, other, new ReplayGuard(), T0))).code).toBe(
      "WRONG_ENCLAVE_KEY",
    );
    // A host that rewrites the key id to the other enclave's still gets nothing decrypted.
    const rerouted = envelope.slice();
    rerouted.set(other.keyId, 2);
    expect((await sealedErrorOf(() => openRequest(rerouted, other, new ReplayGuard(), T0))).code).toBe(
      "DECRYPTION_FAILED",
    );
  });

  it("refuses a replayed request (REQUEST_REPLAYED) and stale or future timestamps (REQUEST_STALE)", async () => {
    const { key, envelope } = await sealed();
    const guard = new ReplayGuard({ windowMs: 120_000 });
    await openRequest(envelope, key, guard, T0);
    expect((await sealedErrorOf(() => openRequest(envelope, key, guard, T0 + 1000))).code).toBe("REQUEST_REPLAYED");

    const late = await sealedErrorOf(() => openRequest(envelope, key, new ReplayGuard(), T0 + 120_001));
    expect(late.code).toBe("REQUEST_STALE");
    const early = await sealedErrorOf(() => openRequest(envelope, key, new ReplayGuard(), T0 - 120_001));
    expect(early.code).toBe("REQUEST_STALE");
    // Exactly at the window edge it is still accepted.
    await expect(openRequest(envelope, key, new ReplayGuard(), T0 + 120_000)).resolves.toBeDefined();
  });

  it("does not record a request that failed to open", async () => {
    const { key, envelope } = await sealed();
    const guard = new ReplayGuard();
    await sealedErrorOf(() => openRequest(flipBit(envelope, 90), key, guard, T0));
    expect(guard.size).toBe(0);
    await expect(openRequest(envelope, key, guard, T0)).resolves.toBeDefined();
  });

  it("validates its arguments", async () => {
    const key = await enclaveKeyFromSeed(1);
    const short = await sealedErrorOf(() =>
      sealRequest({ enclavePublicKey: key.publicKey.subarray(0, 31), kind: "chat", body: 1 }),
    );
    expect(short.code).toBe("INVALID_ARGUMENT");
    const kind = await sealedErrorOf(() =>
      sealRequest({ enclavePublicKey: key.publicKey, kind: "embed" as "chat", body: 1 }),
    );
    expect(kind.code).toBe("INVALID_ARGUMENT");
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const unserialisable = await sealedErrorOf(() =>
      sealRequest({ enclavePublicKey: key.publicKey, kind: "chat", body: cyclic }),
    );
    expect(unserialisable.code).toBe("INVALID_ARGUMENT");
    expect(unserialisable.cause).toBeInstanceOf(TypeError);
  });
});

describe("prepared request keys (made ahead of time, single use)", () => {
  it("seal a request the enclave opens, with the prepared ephemeral key in the envelope", async () => {
    const key = await enclaveKeyFromSeed(1);
    const prepared = await prepareRequestKey(key.publicKey);
    const { envelope, context } = await sealRequest({
      enclavePublicKey: key.publicKey,
      kind: "chat",
      body,
      now: T0,
      prepared,
    });
    expect(prepared.used).toBe(true);
    expect(toHex(parseEnvelope(envelope).ephemeralPublicKey)).toBe(toHex(prepared.ephemeralPublicKey));
    const { request, sealer } = await openRequest(envelope, key, new ReplayGuard(), T0);
    expect(request.body).toEqual(body);
    // The response key matches too: a frame sealed by the enclave opens with the client's context.
    const events = [];
    for await (const event of openResponseFrames(context, [
      sealer.data("hi"),
      sealer.final({
        promptTokens: 1,
        completionTokens: 1,
        ttftMs: 1,
        finishReason: "stop",
        receipt: "r",
        auditOpening: null,
        redacted: null,
      }),
    ])) {
      events.push(event);
    }
    expect(events.map((e) => e.type)).toEqual(["data", "final"]);
  });

  it("refuse a second use, a discarded key, and a key made for another enclave key", async () => {
    const key = await enclaveKeyFromSeed(1);
    const other = await enclaveKeyFromSeed(2);
    const prepared = await prepareRequestKey(key.publicKey);
    await sealRequest({ enclavePublicKey: key.publicKey, kind: "chat", body, prepared });
    const again = await sealedErrorOf(() =>
      sealRequest({ enclavePublicKey: key.publicKey, kind: "chat", body, prepared }),
    );
    expect(again).toMatchObject({ code: "INVALID_ARGUMENT" });
    expect(again.message).toMatch(/already used/);

    const discarded = await prepareRequestKey(key.publicKey);
    discarded.discard();
    expect(discarded.used).toBe(true);
    expect(
      await sealedErrorOf(() =>
        sealRequest({ enclavePublicKey: key.publicKey, kind: "chat", body, prepared: discarded }),
      ),
    ).toMatchObject({ code: "INVALID_ARGUMENT" });

    const forKey = await prepareRequestKey(key.publicKey);
    const wrong = await sealedErrorOf(() =>
      sealRequest({ enclavePublicKey: other.publicKey, kind: "chat", body, prepared: forKey }),
    );
    expect(wrong.message).toMatch(/made for this enclave key/);
    expect(forKey.used).toBe(false);
  });

  it("import the enclave's key once for all of them, again once the caller's array holds another key", async () => {
    const key = await enclaveKeyFromSeed(1);
    const other = await enclaveKeyFromSeed(2);
    const enclave = key.publicKey.slice();
    const importKey = vi.spyOn(globalThis.crypto.subtle, "importKey");
    try {
      const rawImports = () => importKey.mock.calls.filter((call) => call[0] === "raw").length;
      (await prepareRequestKey(enclave)).discard();
      (await prepareRequestKey(enclave)).discard();
      expect(rawImports()).toBe(1);
      enclave.set(other.publicKey);
      const prepared = await prepareRequestKey(enclave);
      expect(rawImports()).toBe(2);
      // Made with the key the array holds now: the enclave holding it opens the request.
      const { envelope } = await sealRequest({ enclavePublicKey: enclave, kind: "chat", body, now: T0, prepared });
      expect((await openRequest(envelope, other, new ReplayGuard(), T0)).request.body).toEqual(body);
    } finally {
      importKey.mockRestore();
    }
  });

  it("are fresh each time", async () => {
    const key = await enclaveKeyFromSeed(1);
    const a = await prepareRequestKey(key.publicKey);
    const b = await prepareRequestKey(key.publicKey);
    expect(toHex(a.ephemeralPublicKey)).not.toBe(toHex(b.ephemeralPublicKey));
  });
});

/**
 * An envelope sealed to enclave key 1 by hand: routing header of kind `headerKind`, bound by its
 * digest as the format says, and `json` as the request plaintext.
 */
async function handSealed(json: string, headerKind: "chat" | "complete" = "chat") {
  const key = await enclaveKeyFromSeed(1);
  const ephemeral = nacl.box.keyPair();
  const nonce = nacl.randomBytes(24);
  const bytes = new TextEncoder().encode(json);
  const prefix = encodeEnvelopePrefix(
    headerKind,
    await enclaveKeyId(key.publicKey),
    32 + bytes.length + 16,
    ephemeral.publicKey,
    nonce,
  );
  const plaintext = new Uint8Array([...sha256(prefix), ...bytes]);
  const envelope = new Uint8Array([...prefix, ...nacl.box(plaintext, nonce, key.publicKey, ephemeral.secretKey)]);
  return { key, envelope };
}

/** The error `openRequest` gives for `handSealed(json, headerKind)`. */
async function openHandSealed(json: string, headerKind: "chat" | "complete" = "chat", guard = new ReplayGuard()) {
  const { key, envelope } = await handSealed(json, headerKind);
  return sealedErrorOf(() => openRequest(envelope, key, guard, T0));
}

const NOT_ONE_OBJECT = "request plaintext: expected a JSON object ('{' first, '}' last) followed only by spaces (0x20)";
const MEMBER_REPEATED = "request plaintext: expected each member name once, found one repeated";

/**
 * That each plaintext of `cases` (named by `what`) is refused as REQUEST_MALFORMED with `message`,
 * no "swordfish" in it reaching the error (message or cause), before the replay guard records it.
 */
async function expectRefused(cases: readonly (readonly [what: string, plaintext: string])[], message: string) {
  for (const [what, plaintext] of cases) {
    const guard = new ReplayGuard();
    const error = await openHandSealed(plaintext, "chat", guard);
    expect({ what, code: error.code, message: error.message }).toEqual({ what, code: "REQUEST_MALFORMED", message });
    expect(`${error.message} ${String(error.cause)}`).not.toContain("swordfish");
    expect(guard.size).toBe(0);
  }
}

describe("openRequest error messages", () => {
  const request = (fields: Record<string, unknown>) =>
    JSON.stringify({ v: 1, requestId: "ab".repeat(16), timestamp: T0, kind: "chat", body: {}, ...fields });

  it("refuse an unknown request field without echoing its decrypted name (the host sees the message)", async () => {
    const error = await openHandSealed(request({ "secret-field": 1 }));
    expect(error.code).toBe("REQUEST_MALFORMED");
    expect(error.message).not.toContain("secret-field");
  });

  it("refuse a request whose kind is not its routing header's (a client that sealed the two apart)", async () => {
    // The host cannot do this (the header digest binds the header); a faulty client can, and the
    // enclave must serve the kind the request says only if the header it was routed by says it too.
    for (const [inner, header] of [
      ["complete", "chat"],
      ["chat", "complete"],
    ] as const) {
      const error = await openHandSealed(request({ kind: inner }), header);
      expect([error.code, error.message]).toEqual([
        "REQUEST_MALFORMED",
        `request kind: expected "${header}" (the header's kind)`,
      ]);
    }
  });

  it("refuse a requestId that is not 32 lower-case hex characters, before the replay guard records it", async () => {
    // Anyone may seal to the enclave's key: the id is authenticated only as the sender's choice. An
    // id of any length would otherwise be kept in the replay cache (up to the 16 MiB envelope per
    // entry) and reach the audit writer, which refuses ids over 256 characters and so would stop
    // the enclave (AUDIT_FAILED).
    for (const requestId of [
      "AB".repeat(16),
      "0".repeat(31),
      "0".repeat(33),
      "f".repeat(300),
      "0".repeat(64 * 1024),
      `${"0".repeat(31)}g`,
      `${"0".repeat(32)}\n`,
      "",
      32,
      null,
    ]) {
      const guard = new ReplayGuard();
      const error = await openHandSealed(request({ requestId }), "chat", guard);
      expect([error.code, error.message]).toEqual([
        "REQUEST_MALFORMED",
        "request requestId: expected 32 lower-case hex characters",
      ]);
      expect(guard.size).toBe(0);
    }
    // The same plaintext with a well-formed id opens (the refusals above are the id's alone).
    const guard = new ReplayGuard();
    const { key, envelope } = await handSealed(request({}));
    expect((await openRequest(envelope, key, guard, T0)).request.requestId).toBe("ab".repeat(16));
    expect(guard.size).toBe(1);
  });

  it("refuse a plaintext whose v is not the protocol version (the envelope's version byte says 1)", async () => {
    for (const v of [2, 0, "1", null]) {
      const guard = new ReplayGuard();
      const error = await openHandSealed(request({ v }), "chat", guard);
      expect([error.code, error.message]).toEqual(["REQUEST_MALFORMED", "request v: expected 1"]);
      expect(guard.size).toBe(0);
    }
  });

  it("read exactly the object's text followed by 0x20 padding: other white space around it, or a NUL, is refused", async () => {
    const json = request({ body: { secret: "swordfish" } });
    await expectRefused(
      [
        ["a tab in the padding", `${json}\t   `],
        ["a line feed as the padding", `${json}\n`],
        ["a carriage return before the 0x20 padding", `${json}\r  `],
        ["a leading space", ` ${json}`],
        ["a leading line feed", `\n${json}  `],
        ["a NUL in the padding", `${json}  \u0000  `],
      ],
      NOT_ONE_OBJECT,
    );
    // 0x20 padding and none open, and the receipt's request hash is the object's text in both.
    for (const plaintext of [`${json}${" ".repeat(40)}`, json]) {
      const { key, envelope } = await handSealed(plaintext);
      const opened = await openRequest(envelope, key, new ReplayGuard(), T0);
      expect(opened.request.body).toEqual({ secret: "swordfish" });
      expect(opened.requestHash).toBe(toHex(sha256(new TextEncoder().encode(json))));
    }
    // White space inside the object is the object's own text (JSON allows it there).
    const spaced = json.replace('"v":1', '"v" :\t1').replace(',"body"', ',\n"body"');
    const { key, envelope } = await handSealed(spaced);
    expect((await openRequest(envelope, key, new ReplayGuard(), T0)).requestHash).toBe(
      toHex(sha256(new TextEncoder().encode(spaced))),
    );
  });

  it("refuse JSON that is not an object (an array, a string, null, a number) before it is parsed (its first and last bytes)", async () => {
    const json = request({ body: { secret: "swordfish" } });
    const plaintexts = [`[${json}]`, JSON.stringify(json), "null", "1", "{", "}"];
    await expectRefused(
      plaintexts.map((plaintext) => [plaintext, plaintext] as const),
      NOT_ONE_OBJECT,
    );
  });

  it("refuse a member name given twice (JSON.parse would keep the last) in any object, the body's too", async () => {
    const id = "ab".repeat(16);
    const other = "cd".repeat(16);
    const head = `"requestId":"${id}","v":1,"timestamp":${T0},"kind":"chat"`;
    const base = `"v":1,"timestamp":${T0},"kind":"chat","body":{}`;
    const withBody = (body: string) => `{${head},"body":${body}}`;
    const repeats = [
      ["requestId twice", `{"requestId":"${other}",${base},"requestId":"${id}"}`],
      ["body twice", `{"requestId":"${id}",${base},"body":{"x":1}}`],
      ["v twice, one escaped", `{"requestId":"${id}",${base},"\\u0076":1}`],
      ["a body member twice", withBody('{"k":1,"k":2}')],
      ["prompt twice", withBody('{"prompt":"a","prompt":"b"}')],
      [
        "a member twice in body.messages[1]",
        withBody('{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b","content":"c"}]}'),
      ],
      ["a repeat whose first value held objects", withBody('{"o":{"p":{"q":1},"r":[{"s":2}]},"o":1}')],
      ["a repeat whose last value holds objects", withBody('{"o":1,"x":{"o":2},"o":{"p":{"q":1}}}')],
      ["an escaped name and its plain one", withBody('{"n":{"\\u0061":1,"a":2}}')],
      ["__proto__ twice", withBody('{"__proto__":{"a":1},"__proto__":{"a":1}}')],
      ["__proto__ twice, one escaped", withBody('[{"__proto__":1,"\\u005f_proto__":2}]')],
      [
        "a repeat beside strings holding commas, braces, colons and quotes",
        withBody('{"a":"x,\\"}:{","b":["],{:"],"a":"y"}'),
      ],
    ] as const;
    await expectRefused(repeats, MEMBER_REPEATED);
    // Commas, braces, colons, quotes and escapes inside strings, names alike after JSON.parse only in
    // another object, and `__proto__` once are members once: the request opens as sealed.
    const body = {
      a: [1, { b: "x,y}:" }],
      c: 'q\\":,{',
      d: { a: 1, e: [], f: {} },
      "{,:": "],:",
      g: [{ a: 1 }, { a: 2 }],
      h: "\\",
      ["__proto__"]: { a: 1 },
    };
    const plain = withBody(JSON.stringify(body));
    expect(plain).toContain('"__proto__":{"a":1}');
    const { key, envelope } = await handSealed(plain);
    expect((await openRequest(envelope, key, new ReplayGuard(), T0)).request.body).toEqual(
      JSON.parse(JSON.stringify(body)),
    );
    const escaped = withBody('{"\\u0061":1,"b":{"a":2}}');
    const opened = await handSealed(escaped);
    expect((await openRequest(opened.envelope, opened.key, new ReplayGuard(), T0)).request.body).toEqual({
      a: 1,
      b: { a: 2 },
    });
  });

  it("count the members of a body nested 100,000 deep without overflowing the stack, and find a repeat at its bottom", async () => {
    const depth = 100_000;
    const deep = (inner: string) => `${'{"a":['.repeat(depth)}${inner}${"]}".repeat(depth)}`;
    const head = `"requestId":"${"ab".repeat(16)}","v":1,"timestamp":${T0},"kind":"chat"`;
    const accepted = await handSealed(`{${head},"body":${deep('{"b":1,"c":2}')}}`);
    let body = (await openRequest(accepted.envelope, accepted.key, new ReplayGuard(), T0)).request.body;
    for (let i = 0; i < depth; i++) body = (body as { a: unknown[] }).a[0];
    expect(body).toEqual({ b: 1, c: 2 });
    await expectRefused([["a repeat at the bottom", `{${head},"body":${deep('{"b":1,"b":2}')}}`]], MEMBER_REPEATED);
  });

  it("refuse plaintext that is not JSON without carrying it anywhere in the error (message or cause)", async () => {
    const error = await openHandSealed("swordfish is the launch code");
    expect(error.code).toBe("REQUEST_MALFORMED");
    const everything = `${error.message} ${String(error.cause)} ${(error.cause as Error | undefined)?.message ?? ""}`;
    expect(everything).not.toContain("swordfish");
  });
});

describe("ENCLAVE_KEY_ID_HEX", () => {
  it("matches an enclave key id in lower-case hex, and no other spelling or length", async () => {
    const id = toHex(await enclaveKeyId((await enclaveKeyFromSeed(1)).publicKey));
    expect(ENCLAVE_KEY_ID_HEX.test(id)).toBe(true);
    for (const other of [id.toUpperCase(), id.slice(1), `${id}0`, `${id.slice(1)}g`, ` ${id.slice(1)}`, `${id}\n`]) {
      expect([other, ENCLAVE_KEY_ID_HEX.test(other)]).toEqual([other, false]);
    }
  });

  it("is the one spelling of the key id's form: the CLI, the SDK and the host spell no pattern of their own", () => {
    for (const file of ["client/cli/commands.ts", "client/sdk.ts", "host/pool.ts", "host/app.ts"]) {
      const text = readFileSync(new URL(`../../${file}`, import.meta.url), "utf8");
      expect([file, text.includes("[0-9a-f]{32}")]).toEqual([file, false]);
    }
  });
});
