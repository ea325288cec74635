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
