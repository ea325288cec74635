/**
 * The manifest digest: SHA-256 of the exact bytes of the compact JWS (ASCII, no white space
 * anywhere). This function alone defines it; it is what the enclave binds into report_data and
 * what the client recomputes from the JWS it was given. Platform-neutral (WebCrypto).
 */

import { describeValue } from "./issues.ts";

/**
 * A compact JWS: three parts of base64url's characters (A-Z, a-z, 0-9, "-", "_"; the first
 * non-empty, the payload and signature may be empty), dots between, nothing else (no padding, no
 * white space). Only the characters: whether a part decodes (a length of 4k+1, unused bits set) is
 * for whoever decodes it.
 */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

/** isCompactJws's form in words, for the messages of the checks that use it. */
export const COMPACT_JWS_FORM = "a compact JWS (three base64url parts, the first non-empty, no white space)";

/**
 * Whether `value` is a compact JWS of that form (COMPACT_JWS): the form manifestDigest takes. The
 * manifest checks (verifyManifest, and the attestation document's parser for the manifest it
 * carries) use it; the attestation document's own JWS and the MAA token are read part by part
 * (compactJwsParts and fromBase64url, attestation/jws.ts and bytes.ts), and `cloister receipt
 * verify --document` takes this form with all three parts non-empty.
 */
export function isCompactJws(value: unknown): value is string {
  return typeof value === "string" && COMPACT_JWS.test(value);
}

/**
 * SHA-256 of `jws`'s bytes. A value not of that form is a caller's bug, hence a TypeError: every
 * path checks the form first (verifyManifest, the attestation document's parser, the enclave's boot
 * after verifyManifest), each with its own typed error.
 */
export async function manifestDigest(jws: string): Promise<Uint8Array> {
  if (!isCompactJws(jws)) {
    throw new TypeError(`manifestDigest: expected ${COMPACT_JWS_FORM}, found ${describeValue(jws)}`);
  }
  // Base64url is ASCII, so this is the byte string of the JWS.
  const bytes = new TextEncoder().encode(jws);
  return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", bytes));
}

/** Lower-case hex of a digest. */
export function digestHex(digest: Uint8Array): string {
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
