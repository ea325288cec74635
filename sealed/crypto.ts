/**
 * Every cryptographic call of the sealed protocol lives in this file (auditors: read this one).
 *
 * Primitives: tweetnacl `box` (X25519 + XSalsa20-Poly1305) for the request, `secretbox`
 * (XSalsa20-Poly1305) under a derived response key for the frames, `nacl.hash` (SHA-512) for the
 * response-key derivation, and WebCrypto SHA-256 for key ids and the header binding. Nothing here
 * is hand-made cryptography; the only low-level use is tweetnacl's own `crypto_secretbox` entry
 * points, called so that a frame is sealed straight into its wire buffer without extra copies.
 *
 * The request's shared key is `nacl.box.before` = HSalsa20(X25519(secret, peer)), byte for byte.
 * Where WebCrypto has X25519 (Node 20, current browsers) the X25519 step runs there (about 0.1 ms
 * instead of about 1 ms in tweetnacl's JavaScript, twice per request on the client) and
 * tweetnacl's own `crypto_core_hsalsa20` finishes it exactly as `box.before` does; elsewhere
 * tweetnacl does both. Either way an all-zero X25519 output (a low-order peer key) is refused, as
 * WebCrypto itself does, so the two paths accept exactly the same keys.
 * test/sealed/x25519.test.ts checks both paths against `nacl.box.before` on random keys.
 */
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
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
  crypto_core_hsalsa20(out: Uint8Array, input: Uint8Array, k: Uint8Array, c: Uint8Array): number;
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): number;
}
// tweetnacl's typings omit `lowlevel`, which the library exports (nacl-fast.js, `nacl.lowlevel`).
const lowlevel = (nacl as unknown as { lowlevel: NaclLowLevel }).lowlevel;

/**
 * Random bytes from WebCrypto, which every runtime this code runs on has (Node.js, browsers,
 * workers). Not tweetnacl's own source: it finds one through `self.crypto` or `require("crypto")`,
 * and a bundled copy running outside a browser window (a worker, or Node.js) has neither.
 */
export function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  // getRandomValues fills at most 65536 bytes per call.
  for (let offset = 0; offset < length; offset += 65536) {
    globalThis.crypto.getRandomValues(out.subarray(offset, Math.min(length, offset + 65536)));
  }
  return out;
}

/**
 * SHA-256 of the small inputs this protocol hashes (a 78-byte envelope prefix, a 32-byte key),
 * computed synchronously by @noble/hashes: a few microseconds, where WebCrypto's digest is a
 * thread-pool round trip on every request's path.
 */
export function sha256(data: Uint8Array): Uint8Array {
  return nobleSha256(data);
}

export function x25519PublicKey(secretKey: Uint8Array): Uint8Array {
  return nacl.box.keyPair.fromSecretKey(secretKey).publicKey;
}

/** The X25519 output was all zero: the peer's key is a low-order point. */
export class LowOrderKeyError extends Error {
  constructor() {
    super("X25519: the peer public key is a low-order point");
    this.name = "LowOrderKeyError";
  }
}

/** HSalsa20's constant, "expand 32-byte k" (as `nacl.box.before` uses it). */
const SIGMA = new Uint8Array([101, 120, 112, 97, 110, 100, 32, 51, 50, 45, 98, 121, 116, 101, 32, 107]);
const ZERO_16 = new Uint8Array(16);

/** `nacl.box.before`'s second step: HSalsa20 keyed by the X25519 output, zero input. Wipes `x25519`. */
export function hsalsa20SharedKey(x25519: Uint8Array): Uint8Array {
  let nonZero = 0;
  for (let i = 0; i < x25519.length; i++) nonZero |= x25519[i]!;
  if (nonZero === 0) throw new LowOrderKeyError();
  const key = new Uint8Array(SHARED_KEY_LENGTH);
  lowlevel.crypto_core_hsalsa20(key, ZERO_16, x25519, SIGMA);
  x25519.fill(0);
  return key;
}

function tweetnaclSharedKey(peerPublicKey: Uint8Array, ownSecretKey: Uint8Array): Uint8Array {
  const x25519 = new Uint8Array(X25519_KEY_LENGTH);
  lowlevel.crypto_scalarmult(x25519, ownSecretKey, peerPublicKey);
  return hsalsa20SharedKey(x25519);
}

const subtle = globalThis.crypto?.subtle;
/**
 * WebCrypto's key type, named from the runtime's `crypto` rather than from TypeScript's DOM lib, so
 * that a Node.js project without DOM (@types/node only) type-checks the SDK.
 */
export type WebCryptoKey = Awaited<ReturnType<NonNullable<typeof subtle>["importKey"]>>;
const X25519_ALGORITHM = { name: "X25519" } as const;
// PKCS#8 PrivateKeyInfo for an X25519 key (RFC 8410): this prefix, then the 32 secret bytes.
const X25519_PKCS8_PREFIX = new Uint8Array([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
]);

let webCryptoX25519: Promise<boolean> | undefined;

/** Whether this runtime's WebCrypto does X25519 (probed once, by making a key). */
export function webCryptoHasX25519(): Promise<boolean> {
  webCryptoX25519 ??=
    subtle === undefined
      ? Promise.resolve(false)
      : subtle.generateKey(X25519_ALGORITHM, false, ["deriveBits"]).then(
          () => true,
          () => false,
        );
  return webCryptoX25519;
}

async function webCryptoSharedKey(
  peerPublicKey: Uint8Array,
  privateKey: WebCryptoKey,
  options: { readonly cachePeerKey: boolean } = { cachePeerKey: false },
): Promise<Uint8Array> {
  const peer = await importPeerKey(peerPublicKey, options.cachePeerKey);
  let bits: ArrayBuffer;
  try {
    bits = await subtle.deriveBits({ name: "X25519", public: peer }, privateKey, 256);
  } catch {
    // WebCrypto refuses an all-zero X25519 output; say so the same way as the tweetnacl path.
    throw new LowOrderKeyError();
  }
  return hsalsa20SharedKey(new Uint8Array(bits));
}

// Imported peer keys (the enclave's public key, which every request key of a client meets), per
// array, checked against a copy of its bytes on each use as importedSecretKeys below is.
const importedPeerKeys = new WeakMap<Uint8Array, { bytes: Uint8Array; key: Promise<WebCryptoKey> }>();

function importPeerKey(peerPublicKey: Uint8Array, cache: boolean): Promise<WebCryptoKey> {
  const cached = cache ? importedPeerKeys.get(peerPublicKey) : undefined;
  if (cached !== undefined && bytesEqual(cached.bytes, peerPublicKey)) return cached.key;
  const bytes = peerPublicKey.slice();
  const key = subtle.importKey("raw", bytes, X25519_ALGORITHM, false, []);
  if (cache) {
    importedPeerKeys.set(peerPublicKey, { bytes, key });
    key.catch(() => {
      if (importedPeerKeys.get(peerPublicKey)?.key === key) importedPeerKeys.delete(peerPublicKey);
    });
  }
  return key;
}

// Imported private keys, per secret-key array. The bytes are kept and compared on each use, so a
// caller that changes (or wipes) its array never gets a stale key.
const importedSecretKeys = new WeakMap<Uint8Array, { bytes: Uint8Array; key: Promise<WebCryptoKey> }>();

function importSecretKey(secretKey: Uint8Array, cache: boolean): Promise<WebCryptoKey> {
  const cached = cache ? importedSecretKeys.get(secretKey) : undefined;
  if (cached !== undefined && bytesEqual(cached.bytes, secretKey)) return cached.key;
  const pkcs8 = new Uint8Array(X25519_PKCS8_PREFIX.length + X25519_KEY_LENGTH);
  pkcs8.set(X25519_PKCS8_PREFIX, 0);
  pkcs8.set(secretKey, X25519_PKCS8_PREFIX.length);
  const key = subtle.importKey("pkcs8", pkcs8, X25519_ALGORITHM, false, ["deriveBits"]).finally(() => pkcs8.fill(0));
  if (cache) {
    importedSecretKeys.set(secretKey, { bytes: secretKey.slice(), key });
    key.catch(() => importedSecretKeys.delete(secretKey));
  }
  return key;
}

/**
 * `nacl.box.before(peerPublicKey, ownSecretKey)`, through WebCrypto's X25519 where available.
 * Throws LowOrderKeyError when the X25519 output is all zero. With `cacheSecretKey` (a key used
 * many times: the enclave's per-boot key) the imported WebCrypto key is kept per array.
 */
export async function boxSharedKeyFast(
  peerPublicKey: Uint8Array,
  ownSecretKey: Uint8Array,
  options: { readonly cacheSecretKey: boolean },
): Promise<Uint8Array> {
  if (await webCryptoHasX25519()) {
    return webCryptoSharedKey(peerPublicKey, await importSecretKey(ownSecretKey, options.cacheSecretKey));
  }
  return tweetnaclSharedKey(peerPublicKey, ownSecretKey);
}

/** The tweetnacl-only path of `boxSharedKeyFast` (the fallback; exported for its test). */
export function boxSharedKeyTweetnacl(peerPublicKey: Uint8Array, ownSecretKey: Uint8Array): Uint8Array {
  return tweetnaclSharedKey(peerPublicKey, ownSecretKey);
}

/** A fresh X25519 key for one request: its public key, and one derivation of the shared key. */
export interface EphemeralX25519Key {
  readonly publicKey: Uint8Array;
  /** `nacl.box.before(peerPublicKey, secret)`; the secret is unusable afterwards. */
  sharedKey(peerPublicKey: Uint8Array): Promise<Uint8Array>;
}

/**
 * Makes a fresh ephemeral X25519 key. With WebCrypto's X25519 the secret is a non-extractable
 * CryptoKey that is dropped after its one use; otherwise tweetnacl makes it from `randomBytes`
 * and it is wiped after its one use.
 */
export async function generateEphemeralX25519Key(): Promise<EphemeralX25519Key> {
  if (await webCryptoHasX25519()) {
    const pair = (await subtle.generateKey(X25519_ALGORITHM, false, ["deriveBits"])) as {
      publicKey: WebCryptoKey;
      privateKey: WebCryptoKey;
    };
    const publicKey = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
    let privateKey: WebCryptoKey | null = pair.privateKey;
    return {
      publicKey,
      async sharedKey(peerPublicKey) {
        if (privateKey === null) throw new Error("ephemeral X25519 key already used");
        const key = privateKey;
        privateKey = null;
        // The peer is the enclave's key, the same for every request key: imported once.
        return webCryptoSharedKey(peerPublicKey, key, { cachePeerKey: true });
      },
    };
  }
  return ephemeralFromSecretKey(randomBytes(X25519_KEY_LENGTH));
}

/** An ephemeral key from given secret bytes (tests with seeded randomness). Takes ownership of `secretKey`. */
export function ephemeralFromSecretKey(secretKey: Uint8Array): EphemeralX25519Key {
  const publicKey = x25519PublicKey(secretKey);
  let used = false;
  return {
    publicKey,
    async sharedKey(peerPublicKey) {
      if (used) throw new Error("ephemeral X25519 key already used");
      used = true;
      try {
        return await boxSharedKeyFast(peerPublicKey, secretKey, { cacheSecretKey: false });
      } finally {
        secretKey.fill(0);
      }
    },
  };
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
  const key = digest.slice(0, SHARED_KEY_LENGTH);
  digest.fill(0);
  return key;
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
