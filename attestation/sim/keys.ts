/**
 * INSECURE simulator ECDSA keys (P-256 / P-384) derived from a public seed, with deterministic
 * (RFC 6979) signatures through @noble/curves. Verification never uses this file: the production
 * verifier checks simulated signatures through WebCrypto exactly as it checks real ones.
 */
import { p256, p384 } from "@noble/curves/nist.js";
import { encodeBitString, encodeOid, encodeSequence, encodeUnsignedInteger } from "../der.ts";
import { InsecureSeededDrbg } from "./drbg.ts";

export type SimulatedCurve = "P-256" | "P-384";

const OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1";
const CURVE_OID: Record<SimulatedCurve, string> = { "P-256": "1.2.840.10045.3.1.7", "P-384": "1.3.132.0.34" };

export interface InsecureEcKey {
  readonly curve: SimulatedCurve;
  readonly secretKey: Uint8Array;
  /** Uncompressed point 04‖X‖Y. */
  readonly point: Uint8Array;
  /** SubjectPublicKeyInfo DER. */
  readonly spki: Uint8Array;
}

function impl(curve: SimulatedCurve) {
  return curve === "P-256" ? p256 : p384;
}

export function ecSpki(curve: SimulatedCurve, point: Uint8Array): Uint8Array {
  return encodeSequence(
    encodeSequence(encodeOid(OID_EC_PUBLIC_KEY), encodeOid(CURVE_OID[curve])),
    encodeBitString(point),
  );
}

/** Deterministic key for (seed, label). */
export function deriveInsecureEcKey(seed: string, label: string, curve: SimulatedCurve): InsecureEcKey {
  const c = impl(curve);
  const drbg = new InsecureSeededDrbg(seed, `ec:${curve}:${label}`);
  const secretKey = c.utils.randomSecretKey(drbg.bytes(c.lengths.seed ?? 72));
  const point = c.getPublicKey(secretKey, false);
  return { curve, secretKey, point, spki: ecSpki(curve, point) };
}

/**
 * ECDSA over `message` hashed with the curve's own hash (SHA-256 for P-256, SHA-384 for P-384),
 * as the raw fixed-size r‖s (IEEE P1363), big-endian.
 */
export function signEcdsaRaw(key: InsecureEcKey, message: Uint8Array): Uint8Array {
  return impl(key.curve).sign(message, key.secretKey, { prehash: true, lowS: false });
}

/** The same signature as an X.509 ECDSA-Sig-Value (DER SEQUENCE of INTEGER r, s). */
export function signEcdsaDer(key: InsecureEcKey, message: Uint8Array): Uint8Array {
  const raw = signEcdsaRaw(key, message);
  const size = raw.length / 2;
  return encodeSequence(encodeUnsignedInteger(raw.subarray(0, size)), encodeUnsignedInteger(raw.subarray(size)));
}
