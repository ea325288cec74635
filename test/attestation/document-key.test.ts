/**
 * attestation/document-key.ts: the payload and X25519 key of an unverified document, for routing
 * and naming a refusal only, are read as strictly as the verifier reads them (fromBase64url, three
 * parts): a spelling the verifier refuses (padding, white space, unused bits set) names no key, so
 * the host's pool and the client's nonce question never route by a document that cannot verify.
 */
import { base64url } from "jose";
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { unverifiedDocumentPayload, unverifiedDocumentSealingKey } from "../../attestation/document-key.ts";
import { parseUtf8Json } from "../../attestation/json-text.ts";

const KEY = nacl.box.keyPair().publicKey;
const X = base64url.encode(KEY);
const HEADER = base64url.encode(JSON.stringify({ alg: "EdDSA", typ: "cloister-attestation+jwt" }));

function documentWith(options: { x?: string; payload?: (encoded: string) => string; parts?: number } = {}): string {
  const encoded = base64url.encode(JSON.stringify({ cnf: { jwk: { kty: "OKP", crv: "X25519", x: options.x ?? X } } }));
  const parts = [HEADER, options.payload?.(encoded) ?? encoded, "AAAA", "AAAA"];
  return parts.slice(0, options.parts ?? 3).join(".");
}

/** `text` with its last character's unused low bits set: the same bytes to a loose decoder. */
function withUnusedBitsSet(text: string): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const last = alphabet.indexOf(text.at(-1) as string);
  const unused = text.length % 4 === 2 ? 0b1111 : 0b11;
  return text.slice(0, -1) + (alphabet[last | unused] as string);
}

/** `text` with the padding RFC 4648 §4 would add (it has some to add: checked). */
function padded(text: string): string {
  expect(text.length % 4).not.toBe(0);
  return text + "=".repeat(4 - (text.length % 4));
}

describe("unverified document key", () => {
  it("reads the key of a document spelled as an enclave spells it", () => {
    expect(unverifiedDocumentSealingKey(documentWith())).toEqual(KEY);
    expect(unverifiedDocumentPayload(documentWith())).toMatchObject({ cnf: { jwk: { x: X } } });
  });

  it.each([
    ["a padded cnf.jwk.x", documentWith({ x: `${X}=` })],
    ["cnf.jwk.x with unused bits set", documentWith({ x: withUnusedBitsSet(X) })],
    ["cnf.jwk.x with white space", documentWith({ x: `${X.slice(0, 20)} ${X.slice(20)}` })],
    ["a padded payload", documentWith({ payload: padded })],
    ["a payload with white space", documentWith({ payload: (p) => `${p.slice(0, 8)}\n${p.slice(8)}` })],
    ["a payload with unused bits set", documentWith({ payload: withUnusedBitsSet })],
    ["four parts", documentWith({ parts: 4 })],
    ["two parts", documentWith({ parts: 2 })],
  ])("names no key for %s (the verifier refuses that spelling)", (_, document) => {
    expect(unverifiedDocumentSealingKey(document)).toBeNull();
  });

  it("refuses to read the payload of a spelling the verifier refuses, naming the part", () => {
    expect(() => unverifiedDocumentPayload(documentWith({ payload: padded }))).toThrow(/document payload/);
    expect(() => unverifiedDocumentPayload(documentWith({ parts: 4 }))).toThrow(
      /expected 3 JWS parts, found more than 3/,
    );
  });
});

describe("a document part's JSON, as the verifier reads it", () => {
  const bytes = (text: string) => new TextEncoder().encode(text);
  /** A document whose payload is exactly `payload`'s bytes. */
  const withPayload = (payload: Uint8Array) => `${HEADER}.${base64url.encode(payload)}.AAAA`;
  const keyJson = `{"kty":"OKP","crv":"X25519","x":"${X}"}`;

  it("reads the payload's JSON as parseUtf8Json does: a member named twice names no key", () => {
    const twice = bytes(`{"cnf":{"jwk":{"x":"${base64url.encode(nacl.box.keyPair().publicKey)}","x":"${X}"}}}`);
    expect(unverifiedDocumentSealingKey(withPayload(bytes(`{"cnf":{"jwk":${keyJson}}}`)))).toEqual(KEY);
    expect(unverifiedDocumentSealingKey(withPayload(twice))).toBeNull();
    expect(() => unverifiedDocumentPayload(withPayload(twice))).toThrow(
      expect.objectContaining({
        code: "DOCUMENT_MALFORMED",
        message: expect.stringMatching(/^document payload: cnf\.jwk\.x appears twice in one object/),
      }),
    );
    // JSON, but no object: named as the verifier names it, for every reader (the host's audit check, the CLI).
    expect(() => unverifiedDocumentPayload(withPayload(bytes("null")))).toThrow(
      expect.objectContaining({
        code: "DOCUMENT_MALFORMED",
        message: "document payload: expected a JSON object, found null",
      }),
    );
    expect(() => unverifiedDocumentPayload(withPayload(bytes('{"cnf":')))).toThrow(
      expect.objectContaining({
        code: "DOCUMENT_MALFORMED",
        message: "document payload: expected UTF-8 JSON, found text that is not valid JSON (it ends early)",
      }),
    );
  });

  // Each sequence inside a JSON string after `{"a":"` (6 bytes): refused where it starts, as the
  // Unicode Standard's table 3-7 has it (and TextDecoder's fatal mode, which decides).
  it.each([
    ["a lone continuation byte", [0x80]],
    ["an overlong two-byte form", [0xc0, 0x80]],
    ["an overlong three-byte form", [0xe0, 0x80, 0x80]],
    ["a surrogate (CESU-8)", [0xed, 0xa0, 0x80]],
    ["a code point past U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
    ["a byte no UTF-8 has", [0xf5, 0x80, 0x80, 0x80]],
    ["a three-byte form cut short", [0xe2, 0x82, 0x22]],
  ])("refuses %s, naming its offset", (_, sequence) => {
    const payload = Uint8Array.from([...bytes('{"a":"x'), ...sequence, ...bytes('"}')]);
    expect(() => parseUtf8Json(payload)).toThrow(
      new SyntaxError("expected UTF-8 JSON, found bytes that are not UTF-8 (from offset 7)"),
    );
  });

  it("refuses a sequence cut short at the very end, and takes every well-formed one", () => {
    expect(() => parseUtf8Json(Uint8Array.from([...bytes('{"a":1} '), 0xf0, 0x9f]))).toThrow(
      /not UTF-8 \(from offset 8\)/,
    );
    // The edges of table 3-7: U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF, U+10000, U+10FFFF.
    const text = "\u0080\u07ff\u0800\ud7ff\ue000\uffff\u{10000}\u{10ffff}";
    expect(parseUtf8Json(bytes(JSON.stringify({ a: text })))).toEqual({ a: text });
  });

  it("refuses a byte order mark, which a plain TextDecoder drops unasked", () => {
    expect(() => parseUtf8Json(Uint8Array.from([0xef, 0xbb, 0xbf, ...bytes("{}")]))).toThrow(
      "expected UTF-8 JSON, found a byte order mark before it (offsets 0 to 2)",
    );
  });
});
