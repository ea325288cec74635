/**
 * A compact JWS read part by part, as every reader in attestation/ reads one: its three parts found
 * without decoding them (compactJwsParts), and a decoded header or payload read as JSON that means
 * one thing to every reader (parseJwsPartJson: UTF-8 only, no byte order mark, each member once),
 * and as the object whose members they read, refused in one wording (jwsPartObject).
 * Base64url is fromBase64url's (bytes.ts, one spelling), strict UTF-8 decodeUtf8's (utf8.ts, where
 * the file readers find a byte that is not UTF-8 too). Nothing here verifies a signature; the
 * verifiers (document.ts, azure/maa.ts) and the readers of unverified documents (document-key.ts,
 * the audit command) use these so that they all read the same text alike. No cryptography, no
 * Node.js module: the host and the browser bundle import it.
 */
import { describeValue } from "../manifests/issues.ts";
import { jsonTextRefusal, parseJsonText } from "./json-text.ts";
import { decodeUtf8 } from "./utf8.ts";

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
  const text = decodeUtf8(bytes);
  if (typeof text !== "string") {
    throw new SyntaxError(`expected UTF-8 JSON, found bytes that are not UTF-8 (from offset ${text.notUtf8At})`);
  }
  if (text.startsWith("\uFEFF")) {
    throw new SyntaxError("expected UTF-8 JSON, found a byte order mark before it (offsets 0 to 2)");
  }
  try {
    return parseJsonText(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new SyntaxError(jsonTextRefusal(error, "UTF-8 JSON"));
  }
}

/**
 * A JWS header's or payload's bytes as the JSON object its members are read from (parseJwsPartJson),
 * for every reader alike: the verifiers (document.ts, azure/maa.ts) and the readers of unverified
 * documents (document-key.ts, the audit command). Otherwise `refuse` is called with a message that
 * starts with `part` ("document header") and says what was wrong: parseJwsPartJson's refusal (its
 * SyntaxError the cause), or that the JSON is no object, by its kind and size only (describeValue:
 * `null.alg` would be a TypeError, and the part is not quoted). Each reader throws its own error.
 */
export function jwsPartObject(
  bytes: Uint8Array,
  part: string,
  refuse: (message: string, cause?: SyntaxError) => never,
): Record<string, unknown> {
  let value: unknown;
  try {
    value = parseJwsPartJson(bytes);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    return refuse(`${part}: ${error.message}`, error);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return refuse(`${part}: expected a JSON object, found ${describeValue(value)}`);
  }
  return value as Record<string, unknown>;
}
