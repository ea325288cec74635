/**
 * A compact JWS read part by part, as every reader in attestation/ reads one: its three parts found
 * without decoding them (compactJwsParts), and a decoded header or payload read as JSON that means
 * one thing to every reader (parseJwsPartJson: UTF-8 only, no byte order mark, each member once).
 * Base64url is fromBase64url's (bytes.ts, one spelling). Nothing here verifies a signature; the
 * verifiers (document.ts, azure/maa.ts) and the readers of unverified documents (document-key.ts,
 * the audit command) use these so that they all read the same text alike. No cryptography, no
 * Node.js module: the host and the browser bundle import it.
 */
import { jsonTextRefusal, parseJsonText } from "./json-text.ts";

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
