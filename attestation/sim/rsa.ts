/**
 * INSECURE simulator RSA: deterministic key generation from a seeded DRBG (BigInt, Miller–Rabin)
 * and RSASSA-PSS signing (SHA-384, MGF1-SHA-384, salt 48 — AMD's ARK/ASK parameters).
 *
 * Why hand-written: the simulated ARK/ASK certificates must be byte-identical in every process that
 * uses the same seed (a client pins the simulated ARK by digest), so both the key and the PSS salt
 * must be deterministic, which WebCrypto cannot do. None of this is used to protect anything real:
 * the simulator's keys are public by construction (derived from a public seed). Verification of
 * these signatures goes through WebCrypto (crypto.ts), like for real AMD certificates.
 *
 * Real ARKs/ASKs are RSA-4096; the simulator uses RSA-2048 to keep key generation around a second.
 */
import { sha384 } from "@noble/hashes/sha2.js";
import { bigIntToBytes, bytesToBigInt, concatBytes } from "../bytes.ts";
import { encodeBitString, encodeOid, encodeSequence, encodeTlv, encodeUnsignedInteger, TAG } from "../der.ts";
import { InsecureSeededDrbg } from "./drbg.ts";

export const SIMULATED_RSA_BITS = 2048;
const E = 65537n;
const OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1";

export interface InsecureRsaKey {
  readonly n: bigint;
  readonly e: bigint;
  readonly d: bigint;
  readonly p: bigint;
  readonly q: bigint;
  readonly dp: bigint;
  readonly dq: bigint;
  readonly qInv: bigint;
  readonly bits: number;
  /** Secret used to derive deterministic PSS salts. */
  readonly saltKey: Uint8Array;
  /** SubjectPublicKeyInfo DER (rsaEncryption). */
  readonly spki: Uint8Array;
}

export function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  let result = 1n;
  let b = base % modulus;
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % modulus;
    b = (b * b) % modulus;
    e >>= 1n;
  }
  return result;
}

function modInverse(a: bigint, m: bigint): bigint {
  let [oldR, r] = [a % m, m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  if (oldR !== 1n) throw new Error("not invertible");
  return ((oldS % m) + m) % m;
}

const SMALL_PRIMES: readonly bigint[] = (() => {
  const primes: bigint[] = [];
  for (let n = 3; primes.length < 300; n += 2) {
    let prime = true;
    for (const p of primes) {
      if (p * p > BigInt(n)) break;
      if (BigInt(n) % p === 0n) {
        prime = false;
        break;
      }
    }
    if (prime) primes.push(BigInt(n));
  }
  return primes;
})();

function isProbablePrime(n: bigint, drbg: InsecureSeededDrbg, bytes: number): boolean {
  for (const p of SMALL_PRIMES) if (n % p === 0n) return n === p;
  let d = n - 1n;
  let r = 0;
  while ((d & 1n) === 0n) {
    d >>= 1n;
    r++;
  }
  // 8 random bases: error probability below 4^-8 per composite, far less for random candidates
  // of this size (FIPS 186-5 table B.1 asks for 5 rounds at 1024-bit primes).
  for (let round = 0; round < 8; round++) {
    const a = (bytesToBigInt(drbg.bytes(bytes)) % (n - 3n)) + 2n;
    let x = modPow(a, d, n);
    if (x === 1n || x === n - 1n) continue;
    let composite = true;
    for (let i = 1; i < r; i++) {
      x = (x * x) % n;
      if (x === n - 1n) {
        composite = false;
        break;
      }
    }
    if (composite) return false;
  }
  return true;
}

function generatePrime(bits: number, drbg: InsecureSeededDrbg): bigint {
  const bytes = bits / 8;
  for (;;) {
    const candidate = drbg.bytes(bytes);
    candidate[0] = (candidate[0] as number) | 0xc0; // top two bits: p·q has exactly 2·bits bits
    candidate[bytes - 1] = (candidate[bytes - 1] as number) | 1;
    const p = bytesToBigInt(candidate);
    if ((p - 1n) % E === 0n) continue; // e must be invertible mod p-1
    if (isProbablePrime(p, drbg, bytes)) return p;
  }
}

function rsaSpki(n: bigint, e: bigint): Uint8Array {
  const byteLength = Math.ceil(n.toString(16).length / 2);
  const rsaPublicKey = encodeSequence(
    encodeUnsignedInteger(bigIntToBytes(n, byteLength)),
    encodeUnsignedInteger(bigIntToBytes(e, 3)),
  );
  return encodeSequence(
    encodeSequence(encodeOid(OID_RSA_ENCRYPTION), encodeTlv(TAG.NULL, new Uint8Array())),
    encodeBitString(rsaPublicKey),
  );
}

/** Deterministic RSA key from (seed, label). Costs ~0.5–2 s; callers memoise. */
export function generateInsecureRsaKey(seed: string, label: string, bits = SIMULATED_RSA_BITS): InsecureRsaKey {
  const drbg = new InsecureSeededDrbg(seed, `rsa:${bits}:${label}`);
  for (;;) {
    const p = generatePrime(bits / 2, drbg);
    const q = generatePrime(bits / 2, drbg);
    if (p === q) continue;
    const n = p * q;
    const phi = (p - 1n) * (q - 1n);
    const d = modInverse(E, phi);
    return {
      n,
      e: E,
      d,
      p,
      q,
      dp: d % (p - 1n),
      dq: d % (q - 1n),
      qInv: modInverse(q, p),
      bits,
      saltKey: drbg.bytes(48),
      spki: rsaSpki(n, E),
    };
  }
}

function mgf1Sha384(seed: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let counter = 0, filled = 0; filled < length; counter++) {
    const c = new Uint8Array(4);
    new DataView(c.buffer).setUint32(0, counter);
    const block = sha384(concatBytes(seed, c));
    out.set(block.subarray(0, Math.min(block.length, length - filled)), filled);
    filled += block.length;
  }
  return out;
}

/** RSASSA-PSS (RFC 8017 §8.1.1) with SHA-384, MGF1-SHA-384 and a 48-byte deterministic salt. */
export function signRsaPssSha384(key: InsecureRsaKey, message: Uint8Array): Uint8Array {
  const hLen = 48;
  const sLen = 48;
  const modBits = key.bits;
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const mHash = sha384(message);
  // Deterministic salt (the simulated certificates must be reproducible); RFC 8017 allows any salt.
  const salt = sha384(concatBytes(key.saltKey, mHash)).subarray(0, sLen);
  const h = sha384(concatBytes(new Uint8Array(8), mHash, salt));
  const db = new Uint8Array(emLen - hLen - 1);
  db[emLen - sLen - hLen - 2] = 0x01;
  db.set(salt, emLen - sLen - hLen - 1);
  const mask = mgf1Sha384(h, db.length);
  for (let i = 0; i < db.length; i++) db[i] = (db[i] as number) ^ (mask[i] as number);
  db[0] = (db[0] as number) & (0xff >> (8 * emLen - emBits));
  const em = concatBytes(db, h, Uint8Array.of(0xbc));
  const m = bytesToBigInt(em);
  // CRT exponentiation.
  const m1 = modPow(m, key.dp, key.p);
  const m2 = modPow(m, key.dq, key.q);
  const hh = (key.qInv * (((m1 - m2) % key.p) + key.p)) % key.p;
  const s = m2 + hh * key.q;
  if (modPow(s, key.e, key.n) !== m) throw new Error("RSA signature self-check failed");
  return bigIntToBytes(s, modBits / 8);
}
