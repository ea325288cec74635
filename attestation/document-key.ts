/**
 * An attestation document's payload, and the X25519 key it names (`cnf.jwk`), read without
 * verifying anything: only for routing (the host's pool and the client's nonce question go to the
 * enclave with that key) and for naming a refusal. The payload and the key are read in the
 * verifier's spelling (three parts: compactJwsParts; base64url in its one spelling: fromBase64url;
 * JSON as parseJwsPartJson reads it), so no key is routed to by a spelling the verifier refuses
 * (the header and signature are not decoded here). Verification is attestation/document.ts's,
 * which reads its parts with the same two functions; this file imports no cryptography (bytes.ts:
 * jose's base64url), so the untrusted host can use it.
 */
import { fromBase64url } from "./bytes.ts";
import { ParseError } from "./errors.ts";
import { jsonTextRefusal, parseJsonText } from "./json-text.ts";

/**
 * The longest attestation document anyone reads or passes on: 4 MiB, in bytes and so in characters
 * (a compact JWS is ASCII). The host's bound on the enclave's /attestation answer, the SDK's on the
 * host's, the verifier's on the JWS, and the CLI's on a --document or manifest file (a signed
 * manifest travels whole inside the document). Here, as the host may import this file.
 */
export const DOCUMENT_MAX_LENGTH = 4 * 1024 * 1024;

/**
 * The three parts of a compact JWS (`header.payload.signature`), not decoded; `refuse` is called
 * with how many were found ("1", "2", "more than 3") when there are not three. Found by indexOf:
 * a split of 4 MiB of dots would make millions of strings.
 */
export function compactJwsParts(jws: string, refuse: (found: string) => never): [string, string, string] {
  const payloadStart = jws.indexOf(".") + 1;
  const signatureStart = jws.indexOf(".", payloadStart) + 1;
  if (payloadStart === 0) return refuse("1");
  if (signatureStart === 0) return refuse("2");
  if (jws.includes(".", signatureStart)) return refuse("more than 3");
  return [jws.slice(0, payloadStart - 1), jws.slice(payloadStart, signatureStart - 1), jws.slice(signatureStart)];
}

// ignoreBOM: a byte order mark is kept, and refused (RFC 8259 §8.1: none in JSON text), rather than
// dropped unasked: bytes with one and without would be two spellings of one text.
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A JWS part's bytes (a header's or payload's) as JSON, read so that they mean one thing to every
 * reader: UTF-8 only (a plain TextDecoder turns a byte that is not into U+FFFD, which another
 * reader may not), no byte order mark, and each member once per object at every depth
 * (parseJsonText: JSON.parse keeps the last of two, another reader the first). A signature covers
 * the bytes, so without this a signed document could say two things. Throws a SyntaxError whose
 * message says what was expected and where it went wrong (a byte offset, a member path or a
 * position), never what the part holds.
 */
export function parseJwsPartJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = STRICT_UTF8.decode(bytes);
  } catch {
    throw new SyntaxError(
      `expected UTF-8 JSON, found bytes that are not UTF-8 (from byte ${firstNonUtf8Offset(bytes)})`,
    );
  }
  if (text.startsWith("\uFEFF")) {
    throw new SyntaxError("expected UTF-8 JSON, found a byte order mark before it (bytes 0 to 2)");
  }
  try {
    return parseJsonText(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new SyntaxError(jsonTextRefusal(error, "UTF-8 JSON"));
  }
}

/**
 * The offset of the first byte of the first sequence in `bytes` that is not well-formed UTF-8
 * (The Unicode Standard, table 3-7: no overlong forms, no surrogates, nothing past U+10FFFF), or
 * `bytes.length` if there is none. Only to name where a strict decode failed.
 */
function firstNonUtf8Offset(bytes: Uint8Array): number {
  const inRange = (at: number, low: number, high: number) => {
    const b = bytes[at];
    return b !== undefined && b >= low && b <= high;
  };
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i] as number;
    // The first continuation byte's range by lead byte; every later one is 80..BF.
    let length: number;
    let low = 0x80;
    let high = 0xbf;
    if (lead <= 0x7f) length = 1;
    else if (lead >= 0xc2 && lead <= 0xdf) length = 2;
    else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      if (lead === 0xe0) low = 0xa0;
      if (lead === 0xed) high = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      if (lead === 0xf0) low = 0x90;
      if (lead === 0xf4) high = 0x8f;
    } else return i;
    if (length > 1 && !inRange(i + 1, low, high)) return i;
    for (let k = 2; k < length; k++) if (!inRange(i + k, 0x80, 0xbf)) return i;
    i += length;
  }
  return i;
}

/**
 * The JSON payload of a compact JWS document, decoded as the verifier decodes it (compactJwsParts,
 * fromBase64url, parseJwsPartJson) without verifying its signature or its shape. Throws a
 * ParseError (DOCUMENT_MALFORMED, BAD_BASE64) naming the part when it cannot be read.
 */
export function unverifiedDocumentPayload(document: string): unknown {
  const [, payload] = compactJwsParts(document, (found) => {
    throw new ParseError("DOCUMENT_MALFORMED", `document: expected 3 JWS parts, found ${found}`);
  });
  const bytes = fromBase64url(payload, "document payload");
  try {
    return parseJwsPartJson(bytes);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new ParseError("DOCUMENT_MALFORMED", `document payload: ${error.message}`, { cause: error });
  }
}

export function unverifiedDocumentSealingKey(document: string): Uint8Array | null {
  try {
    const payload = unverifiedDocumentPayload(document) as { cnf?: { jwk?: { x?: unknown } } } | null;
    const x = payload?.cnf?.jwk?.x;
    if (typeof x !== "string") return null;
    const key = fromBase64url(x, "cnf.jwk.x");
    return key.length === 32 ? key : null;
  } catch {
    return null;
  }
}
