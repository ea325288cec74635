/**
 * An attestation document's payload, and the X25519 key it names (`cnf.jwk`), read without
 * verifying anything: only for routing (the host's pool and the client's nonce question go to the
 * enclave with that key) and for naming a refusal. The payload and the key are read in the
 * verifier's spelling (three parts: compactJwsParts; base64url in its one spelling: fromBase64url;
 * JSON as jwsPartObject reads it; jws.ts), so no key is routed to by a spelling the verifier
 * refuses (the header and signature are not decoded here). Verification is attestation/document.ts's,
 * which reads its parts with the same functions; this file imports no cryptography (bytes.ts:
 * jose's base64url), so the untrusted host can use it.
 */
import { fromBase64url } from "./bytes.ts";
import { ParseError } from "./errors.ts";
import { compactJwsParts, jwsPartObject } from "./jws.ts";

/**
 * The longest attestation document anyone reads or passes on: 4 MiB, in bytes and so in characters
 * (a compact JWS is ASCII). The host's bound on the enclave's /attestation answer, the SDK's on the
 * host's, the verifier's on the JWS, and the CLI's on a --document or manifest file (a signed
 * manifest travels whole inside the document). Here, as the host may import this file.
 */
export const DOCUMENT_MAX_LENGTH = 4 * 1024 * 1024;

/**
 * The JSON payload of a compact JWS document, decoded as the verifier decodes it (compactJwsParts,
 * fromBase64url, jwsPartObject) without verifying its signature or its shape. Throws a ParseError
 * (DOCUMENT_MALFORMED, BAD_BASE64) naming the part when it cannot be read or is no JSON object.
 */
export function unverifiedDocumentPayload(document: string): Record<string, unknown> {
  const [, payload] = compactJwsParts(document, (found) => {
    throw new ParseError("DOCUMENT_MALFORMED", `document: expected 3 JWS parts, found ${found}`);
  });
  return jwsPartObject(fromBase64url(payload, "document payload"), "document payload", (message, cause) => {
    throw new ParseError("DOCUMENT_MALFORMED", message, cause === undefined ? undefined : { cause });
  });
}

export function unverifiedDocumentSealingKey(document: string): Uint8Array | null {
  try {
    const payload = unverifiedDocumentPayload(document) as { cnf?: { jwk?: { x?: unknown } } };
    const x = payload.cnf?.jwk?.x;
    if (typeof x !== "string") return null;
    const key = fromBase64url(x, "cnf.jwk.x");
    return key.length === 32 ? key : null;
  } catch {
    return null;
  }
}
