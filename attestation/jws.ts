/**
 * A compact JWS read part by part, as every reader in attestation/ reads one: its three parts found
 * without decoding them (compactJwsParts), and a decoded header or payload read as the JSON object
 * whose members they read, as JSON that means one thing to every reader (parseUtf8Json,
 * json-text.ts: UTF-8 only, no byte order mark, each member once), refused in one wording
 * (jwsPartObject). Base64url is fromBase64url's (bytes.ts, one spelling), refused as each reader
 * says (decodeStrictBase64url, checkStrictBase64url). Nothing here verifies a signature; the
 * verifiers (document.ts, azure/maa.ts, manifests/sign.ts) and the readers of unverified documents
 * (document-key.ts, the audit command) use these so that they all read the same text alike. No
 * cryptography, no Node.js module: the host and the browser bundle import it.
 */
import { describeValue } from "../manifests/issues.ts";
import { checkBase64url, fromBase64url } from "./bytes.ts";
import { ParseError } from "./errors.ts";
import { parseUtf8Json } from "./json-text.ts";

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
 * A JWS header's or payload's bytes as the JSON object its members are read from (parseUtf8Json,
 * json-text.ts: a signature covers the bytes, so they must mean one thing to every reader),
 * for every reader alike: the verifiers (document.ts, azure/maa.ts) and the readers of unverified
 * documents (document-key.ts, the audit command). Otherwise `refuse` is called with a message that
 * starts with `part` ("document header") and says what was wrong: parseUtf8Json's refusal (its
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
    value = parseUtf8Json(bytes);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    return refuse(`${part}: ${error.message}`, error);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return refuse(`${part}: expected a JSON object, found ${describeValue(value)}`);
  }
  return value as Record<string, unknown>;
}

/** How a reader refuses a part that is not strict base64url: its own error, with the ParseError as cause. */
type RefuseBase64url = (message: string, cause: ParseError) => never;

/**
 * `text` (a JWS part, or a member read from one) decoded in base64url's one spelling (fromBase64url,
 * bytes.ts: one signed token, one text), else `refuse` called with the refusal's message, which
 * names `field` and why (a character, a length, unused bits), and the ParseError (BAD_BASE64) as
 * the cause: each reader throws its own error (document.ts, azure/maa.ts, the audit command).
 */
export function decodeStrictBase64url(text: string, field: string, refuse: RefuseBase64url): Uint8Array {
  return strictly(() => fromBase64url(text, field), refuse);
}

/**
 * That `text` is in base64url's one spelling (checkBase64url), as decodeStrictBase64url refuses it,
 * for a part another decoder then decodes (jose decodes a JWS's payload and signature with atob,
 * which takes white space and unused bits set): azure/maa.ts, manifests/sign.ts.
 */
export function checkStrictBase64url(text: string, field: string, refuse: RefuseBase64url): void {
  strictly(() => checkBase64url(text, field), refuse);
}

function strictly<T>(read: () => T, refuse: RefuseBase64url): T {
  try {
    return read();
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    return refuse(error.message, error);
  }
}
