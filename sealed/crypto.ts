/**
 * Every cryptographic call of the sealed protocol lives in this file (auditors: read this one).
 *
 * Primitives: tweetnacl `box` (X25519 + XSalsa20-Poly1305) for the request, `secretbox`
 * (XSalsa20-Poly1305) under a derived response key for the frames, `nacl.hash` (SHA-512) for the
 * response-key derivation, and WebCrypto SHA-256 for key ids and the header binding. Nothing here
 * is hand-made cryptography; the only low-level use is tweetnacl's own `crypto_secretbox` entry
 * points, called so that a frame is sealed straight into its wire buffer without extra copies.
 */
import nacl from "tweetnacl";

export const X25519_KEY_LENGTH = 32;
export const BOX_NONCE_LENGTH = 24;
export const MAC_LENGTH = 16;
export const SHARED_KEY_LENGTH = 32;

/** Domain tag of the response-key derivation (ASCII). */
const RESPONSE_KEY_DOMAIN = new TextEncoder().encode("cloister/response/v1");

interface NaclLowLevel {
  crypto_secretbox(c: Uint8Array, m: Uint8Array, d: number, n: Uint8Array, k: Uint8Array): number;
  crypto_secretbox_open(m: Uint8Array, c: Uint8Array, d: number, n: Uint8Array, k: Uint8Array): number;
}
// tweetnacl's typings omit `lowlevel`, which the library exports (nacl-fast.js, `nacl.lowlevel`).
const lowlevel = (nacl as unknown as { lowlevel: NaclLowLevel }).lowlevel;

export function randomBytes(length: number): Uint8Array {
  return nacl.randomBytes(length);
}

export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
}

export function x25519PublicKey(secretKey: Uint8Array): Uint8Array {
  return nacl.box.keyPair.fromSecretKey(secretKey).publicKey;
}

/** X25519 shared secret hashed by HSalsa20 (`nacl.box.before`). */
export function boxSharedKey(peerPublicKey: Uint8Array, ownSecretKey: Uint8Array): Uint8Array {
  return nacl.box.before(peerPublicKey, ownSecretKey);
}

export function boxSealWithSharedKey(plaintext: Uint8Array, nonce: Uint8Array, sharedKey: Uint8Array): Uint8Array {
  return nacl.box.after(plaintext, nonce, sharedKey);
}

export function boxOpenWithSharedKey(
  ciphertext: Uint8Array,
  nonce: Uint8Array,
  sharedKey: Uint8Array,
): Uint8Array | null {
  return nacl.box.open.after(ciphertext, nonce, sharedKey);
}

/**
 * The response key: SHA-512(domain ‖ shared key ‖ request nonce), first 32 bytes. A key separate
 * from the request's shared key, so the counter nonces of the frames can never meet the request's
 * random nonce under one key; binding the request nonce makes the key unique per request.
 */
export function deriveResponseKey(sharedKey: Uint8Array, requestNonce: Uint8Array): Uint8Array {
  const input = new Uint8Array(RESPONSE_KEY_DOMAIN.length + sharedKey.length + requestNonce.length);
  input.set(RESPONSE_KEY_DOMAIN, 0);
  input.set(sharedKey, RESPONSE_KEY_DOMAIN.length);
  input.set(requestNonce, RESPONSE_KEY_DOMAIN.length + sharedKey.length);
  const digest = nacl.hash(input);
  input.fill(0);
  return digest.slice(0, SHARED_KEY_LENGTH);
}

/**
 * Seals in place: `buffer` holds 32 zero bytes then the plaintext (`length` bytes in all); the
 * result is written to `out` (same `length`): 16 bytes tweetnacl leaves zero, the 16-byte MAC,
 * then the ciphertext. The caller owns both buffers.
 */
export function secretboxSealInto(
  out: Uint8Array,
  buffer: Uint8Array,
  length: number,
  nonce: Uint8Array,
  key: Uint8Array,
): void {
  if (lowlevel.crypto_secretbox(out, buffer, length, nonce, key) !== 0) {
    throw new Error("secretbox: input shorter than 32 bytes");
  }
}

/** Opens a secretbox (`MAC ‖ ciphertext`); returns the plaintext or null when authentication fails. */
export function secretboxOpen(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | null {
  if (box.length < MAC_LENGTH) return null;
  const length = box.length + 16;
  const c = new Uint8Array(length);
  c.set(box, 16);
  const m = new Uint8Array(length);
  if (lowlevel.crypto_secretbox_open(m, c, length, nonce, key) !== 0) return null;
  return m.subarray(32);
}

/** Constant-time equality of two byte strings (lengths are not secret). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
