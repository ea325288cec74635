/**
 * Every cryptographic primitive the verification code uses, behind one small interface over
 * WebCrypto (`globalThis.crypto.subtle`: Node 20 and browsers), and @noble/hashes's SHA-256 where a
 * pure function needs a hash synchronously. No primitive is implemented here; this file only adapts
 * encodings (raw r||s signatures, SPKI forms) and caches imported keys.
 *
 * Auditors: this file, der.ts and x509.ts are the whole of the certificate and hardware-signature
 * checks; JWS signatures are jose's (document.ts, azure/maa.ts, manifests/sign.ts). README.md's
 * "Auditing the verification code" names every file the client's trust rests on.
 */

import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";

export type HashName = "SHA-256" | "SHA-384" | "SHA-512";
export type Curve = "P-256" | "P-384";

const subtle = globalThis.crypto.subtle;
// WebCrypto's types, named from the runtime's `crypto` rather than from TypeScript's DOM lib, so
// that a Node.js project without DOM (@types/node only) type-checks this file.
type CryptoKey = Awaited<ReturnType<typeof subtle.importKey>>;
type ImportAlgorithm = Parameters<typeof subtle.importKey>[2];
type VerifyAlgorithm = Parameters<typeof subtle.verify>[0];

function buf(bytes: Uint8Array): ArrayBuffer {
  // WebCrypto wants a BufferSource; hand it an exact copy so views into larger buffers are safe.
  // (`new Uint8Array(view)` always copies; Node's Buffer#slice would not.)
  return new Uint8Array(bytes).buffer as ArrayBuffer;
}

export async function digest(hash: HashName, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await subtle.digest(hash, buf(data)));
}

export const sha256 = (data: Uint8Array): Promise<Uint8Array> => digest("SHA-256", data);
export const sha384 = (data: Uint8Array): Promise<Uint8Array> => digest("SHA-384", data);
export const sha512 = (data: Uint8Array): Promise<Uint8Array> => digest("SHA-512", data);

/** SHA-256, synchronously (@noble/hashes), for the pure functions that need one (appraisal). */
export const sha256Sync = (data: Uint8Array): Uint8Array => nobleSha256(data);

/** Constant-time comparison for secrets and MAC-like values; length is not secret. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

// Imported keys are cached by algorithm and SPKI bytes: verifying the same chain twice must not
// pay for key import twice (verification of an already-verified document is benchmarked).
const keyCache = new Map<string, Promise<CryptoKey>>();
const KEY_CACHE_LIMIT = 256;

function cacheKey(tag: string, spki: Uint8Array): string {
  let s = tag;
  for (const b of spki) s += String.fromCharCode(b);
  return s;
}

function importCached(tag: string, spki: Uint8Array, algorithm: ImportAlgorithm): Promise<CryptoKey> {
  const key = cacheKey(tag, spki);
  let promise = keyCache.get(key);
  if (promise === undefined) {
    if (keyCache.size >= KEY_CACHE_LIMIT) keyCache.clear();
    promise = subtle.importKey("spki", buf(spki), algorithm, false, ["verify"]);
    // A failed import must not poison the cache.
    promise.catch(() => keyCache.delete(key));
    keyCache.set(key, promise);
  }
  return promise;
}

// Verified signatures are memoised. A signature check is a pure function of (algorithm, key,
// signature, data) with no time in it, so a `true` result can be reused for exactly the same bytes:
// the memo key is those bytes themselves (no hash, hence no collision to reason about). Only
// successes are stored; a failure (or an import error) is recomputed every time. Every other check
// (certificate validity at `at`, chain structure, extensions, TCB, REPORT_DATA binding, the JWS,
// nonce and manifest checks) still runs on every verification: this only spares re-verifying the
// same report and certificate signatures when a client re-attests an enclave it already verified.
// Bounded: at most VERIFIED_LIMIT entries, and inputs over VERIFIED_MAX_BYTES are never memoised.
const verifiedSignatures = new Set<string>();
const VERIFIED_LIMIT = 256;
const VERIFIED_MAX_BYTES = 16 * 1024;

function appendBytes(s: string, bytes: Uint8Array): string {
  // Length-prefixed, so the concatenation of the parts is unambiguous.
  let out = `${s}${bytes.length}:`;
  for (let i = 0; i < bytes.length; i += 4096) {
    out += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096) as unknown as number[]);
  }
  return out;
}

function memoKey(tag: string, spki: Uint8Array, signature: Uint8Array, data: Uint8Array): string | null {
  if (spki.length + signature.length + data.length > VERIFIED_MAX_BYTES) return null;
  return appendBytes(appendBytes(appendBytes(`${tag}\u0000`, spki), signature), data);
}

async function memoised(key: string | null, verify: () => Promise<boolean>): Promise<boolean> {
  if (key !== null && verifiedSignatures.has(key)) return true;
  const ok = await verify();
  if (ok && key !== null) {
    if (verifiedSignatures.size >= VERIFIED_LIMIT) verifiedSignatures.clear();
    verifiedSignatures.add(key);
  }
  return ok;
}

/** Forgets every memoised signature verification (benchmarks measuring cold verification; tests). */
export function clearVerifiedSignatureMemo(): void {
  verifiedSignatures.clear();
}

/**
 * The one verification path: a private copy of the inputs (the memo key and the verification must
 * see the same bytes, even if the caller changes its arrays while this call awaits), the memo of
 * successes, the cached key import, and a WebCrypto verify. A key that does not import is a failed
 * verification.
 */
async function verifyWith(
  memoTag: string,
  importTag: string,
  importAlgorithm: ImportAlgorithm,
  verifyAlgorithm: VerifyAlgorithm,
  input: { spki: Uint8Array; signature: Uint8Array; data: Uint8Array },
): Promise<boolean> {
  const spki = input.spki.slice();
  const signature = input.signature.slice();
  const data = input.data.slice();
  return memoised(memoKey(memoTag, spki, signature, data), async () => {
    let key: CryptoKey;
    try {
      key = await importCached(importTag, spki, importAlgorithm);
    } catch {
      return false;
    }
    return subtle.verify(verifyAlgorithm, key, buf(signature), buf(data));
  });
}

/** ECDSA verification; `signature` is the raw fixed-size r||s form (IEEE P1363). */
export async function verifyEcdsa(params: {
  curve: Curve;
  hash: HashName;
  spki: Uint8Array;
  signature: Uint8Array;
  data: Uint8Array;
}): Promise<boolean> {
  const size = params.curve === "P-256" ? 32 : 48;
  if (params.signature.length !== 2 * size) return false;
  return verifyWith(
    `ec:${params.curve}:${params.hash}`,
    `ec:${params.curve}`,
    { name: "ECDSA", namedCurve: params.curve },
    { name: "ECDSA", hash: params.hash },
    params,
  );
}

/** RSASSA-PSS verification with MGF1 over the same hash. `spki` must be an rsaEncryption SPKI. */
export async function verifyRsaPss(params: {
  hash: HashName;
  saltLength: number;
  spki: Uint8Array;
  signature: Uint8Array;
  data: Uint8Array;
}): Promise<boolean> {
  return verifyWith(
    `pss:${params.hash}:${params.saltLength}`,
    `pss:${params.hash}`,
    { name: "RSA-PSS", hash: params.hash },
    { name: "RSA-PSS", saltLength: params.saltLength },
    params,
  );
}

/** RSASSA-PKCS1-v1_5 verification. `spki` must be an rsaEncryption SPKI. */
export async function verifyRsaPkcs1(params: {
  hash: HashName;
  spki: Uint8Array;
  signature: Uint8Array;
  data: Uint8Array;
}): Promise<boolean> {
  return verifyWith(
    `pkcs1:${params.hash}`,
    `pkcs1:${params.hash}`,
    { name: "RSASSA-PKCS1-v1_5", hash: params.hash },
    { name: "RSASSA-PKCS1-v1_5" },
    params,
  );
}

/** Cryptographically random bytes. */
export function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  globalThis.crypto.getRandomValues(out);
  return out;
}
