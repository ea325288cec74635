/**
 * The X25519 key an attestation document names (`cnf.jwk`), read without verifying anything: only
 * for routing (the host's pool and the client's nonce question go to the enclave with that key).
 * Verification is attestation/document.ts's; this file imports nothing but jose's base64url, so the
 * untrusted host can use it.
 */
import { base64url } from "jose";

export function unverifiedDocumentSealingKey(document: string): Uint8Array | null {
  try {
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(document.split(".")[1] ?? ""))) as {
      cnf?: { jwk?: { x?: unknown } };
    };
    const x = payload.cnf?.jwk?.x;
    if (typeof x !== "string") return null;
    const key = base64url.decode(x);
    return key.length === 32 ? key : null;
  } catch {
    return null;
  }
}
