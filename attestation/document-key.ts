/**
 * An attestation document's payload, and the X25519 key it names (`cnf.jwk`), read without
 * verifying anything: only for routing (the host's pool and the client's nonce question go to the
 * enclave with that key) and for naming a refusal. Verification is attestation/document.ts's; this
 * file imports nothing but jose's base64url, so the untrusted host can use it.
 */
import { base64url } from "jose";

/**
 * The longest attestation document anyone reads or passes on: 4 MiB, in bytes and so in characters
 * (a compact JWS is ASCII). The host's bound on the enclave's /attestation answer, the SDK's on the
 * host's, the verifier's on the JWS, and the CLI's on a --document or manifest file (a signed
 * manifest travels whole inside the document). Here, as the host may import this file.
 */
export const DOCUMENT_MAX_LENGTH = 4 * 1024 * 1024;

/**
 * The JSON payload of a compact JWS document, decoded without verifying its signature or its shape.
 * Throws (base64url or JSON) when the second segment is not base64url-encoded JSON.
 */
export function unverifiedDocumentPayload(document: string): unknown {
  return JSON.parse(new TextDecoder().decode(base64url.decode(document.split(".")[1] ?? "")));
}

export function unverifiedDocumentSealingKey(document: string): Uint8Array | null {
  try {
    const payload = unverifiedDocumentPayload(document) as { cnf?: { jwk?: { x?: unknown } } };
    const x = payload.cnf?.jwk?.x;
    if (typeof x !== "string") return null;
    const key = base64url.decode(x);
    return key.length === 32 ? key : null;
  } catch {
    return null;
  }
}
