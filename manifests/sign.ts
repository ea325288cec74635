/**
 * Signing and verifying deployment manifests as compact JWS (jose), `typ: cloister-manifest+jws`,
 * alg EdDSA (Ed25519) or ES256 (P-256). Platform-neutral: jose and WebCrypto only, so the browser
 * client verifies manifests with this same code.
 *
 * verifyManifest checks, in order: JWS structure, each part in its one canonical base64url
 * spelling; the protected header, read as the payload is (UTF-8 JSON, each member once: jose
 * would read the last of two `alg` members), and its alg (allow-list, so `none` and HMAC are
 * refused before any key is touched) and typ; an ES256 signature in its low-S form; the signature against the caller's
 * trusted public keys; only then parses the payload and checks the schema. The canonical forms
 * matter because the manifest's digest (digest.ts) is the SHA-256 of the JWS text, bound into
 * REPORT_DATA and named in receipts and broker records: without them anyone holding a signed
 * manifest could make other valid spellings of it (unused bits of a part's last character, an
 * ECDSA signature's other S), each with its own digest. signManifest writes only the low-S form. It does not
 * decide whether the manifest's model or policy is acceptable to a client: that is the client's
 * policy, applied to the verified manifest.
 */
import {
  base64url,
  CompactSign,
  type CryptoKey,
  calculateJwkThumbprint,
  compactVerify,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  errors as joseErrors,
} from "jose";
import { bigIntToBytes, bytesToBigInt } from "../attestation/bytes.ts";
import { checkStrictBase64url, decodeStrictBase64url, jwsPartObject } from "../attestation/jws.ts";
import type { DeepReadonly } from "../attestation/policy.ts";
import { COMPACT_JWS_FORM, digestHex, isCompactJws, manifestDigest } from "./digest.ts";
import {
  ManifestAlgUnsupportedError,
  ManifestJwsMalformedError,
  ManifestKeyInvalidError,
  ManifestPayloadInvalidError,
  ManifestSignatureInvalidError,
  ManifestTypInvalidError,
} from "./errors.ts";
import { describeValue } from "./issues.ts";
import { type Manifest, parseManifest } from "./schema.ts";

export const MANIFEST_JWS_TYP = "cloister-manifest+jws";
export const MANIFEST_ALGS = ["EdDSA", "ES256"] as const;
export type ManifestAlg = (typeof MANIFEST_ALGS)[number];

export interface ManifestSigningKeyPair {
  readonly alg: ManifestAlg;
  /** Private JWK (includes the public part); `kid` is the RFC 7638 SHA-256 thumbprint. */
  readonly privateJwk: JWK;
  readonly publicJwk: JWK;
  /** RFC 7638 SHA-256 thumbprint of the public key (base64url). */
  readonly thumbprint: string;
}

export interface VerifiedManifest {
  readonly manifest: Manifest;
  /** RFC 7638 SHA-256 thumbprint (base64url) of the trusted key that verified the signature. */
  readonly signerKeyThumbprint: string;
  /** manifestDigest(jws), lower-case hex. */
  readonly digest: string;
  readonly jws: string;
}

/**
 * A JWK as a parsed policy holds it (deep-frozen): what the functions that only read a key take, so
 * a client policy's trusted signers are given as they are.
 */
export type ReadonlyJwk = DeepReadonly<JWK>;

/** The alg a JWK is for, or null when it is neither an Ed25519 nor a P-256 key. */
function algOfJwk(jwk: ReadonlyJwk): ManifestAlg | null {
  if (jwk.kty === "OKP" && jwk.crv === "Ed25519") return "EdDSA";
  if (jwk.kty === "EC" && jwk.crv === "P-256") return "ES256";
  return null;
}

/** What a value that should be a JWK is, for an error message (never the key's members). */
function describeNonJwk(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

/**
 * What a JWK member holds, for a message: short names (at most 16 characters, as every JOSE alg,
 * use and key_ops value is) as JSON, anything else by kind only (it may be a pasted secret).
 */
function describeMember(value: unknown): string {
  const name = (v: unknown) => typeof v === "string" && /^[A-Za-z0-9._+-]{1,16}$/.test(v);
  if (name(value)) return JSON.stringify(value);
  if (Array.isArray(value) && value.length <= 8 && value.every(name)) return JSON.stringify(value);
  if (typeof value === "string") return `a string of ${value.length} characters`;
  if (Array.isArray(value)) return `an array of ${value.length} items`;
  return value === null ? "null" : `a ${typeof value}`;
}

/**
 * What key type a JWK that is neither Ed25519 nor P-256 says it is: its `kty` and `crv` by
 * describeMember (short names as JSON, anything else by kind), never another member (`d`, `x`).
 */
function describeKeyType(jwk: ReadonlyJwk): string {
  const members = jwk as Record<string, unknown>;
  const member = (name: "kty" | "crv") =>
    Object.hasOwn(members, name) ? `${name} ${describeMember(members[name])}` : `no ${name}`;
  return `found ${member("kty")}, ${member("crv")}`;
}

function refuseKeyType(jwk: ReadonlyJwk, source: string): ManifestAlg {
  const alg = algOfJwk(jwk);
  if (alg === null) {
    throw new ManifestKeyInvalidError(
      `${source}: expected an Ed25519 (OKP) or P-256 (EC) JWK, ${describeKeyType(jwk)}`,
    );
  }
  return alg;
}

/** A JWK member that says the key is not for `operation` with its key type's alg. */
export interface KeyUsageProblem {
  readonly member: "use" | "key_ops" | "alg";
  /** "expected …". */
  readonly expected: string;
  /** The value found, shown only when it is a short name (describeMember). */
  readonly found: string;
}

const CURVE_NAME: Record<ManifestAlg, string> = { EdDSA: "an Ed25519 key", ES256: "a P-256 key" };

/**
 * The optional members that restrict what a key is for (RFC 7517 §4.2 `use`, §4.3 `key_ops`, §4.4
 * `alg`), honoured when present: `use` must be "sig", `key_ops` must list `operation`, and `alg`
 * must be the one alg the key's type signs with here (so the JWS header's alg, which verifyManifest
 * requires to be the key type's, equals it too; RFC 9864's `Ed25519` names EdDSA's). A key that
 * says otherwise can never sign or verify a manifest: it is the wrong file, refused when it is given
 * rather than skipped at each use. Null when the key has no such problem (or is not an
 * Ed25519/P-256 key, refused elsewhere).
 */
export function keyUsageProblem(jwk: ReadonlyJwk, operation: "sign" | "verify"): KeyUsageProblem | null {
  const members = jwk as Record<string, unknown>;
  if (Object.hasOwn(members, "use") && members.use !== "sig") {
    return { member: "use", expected: 'expected "sig" (a key for signatures)', found: describeMember(members.use) };
  }
  if (Object.hasOwn(members, "key_ops")) {
    const ops = members.key_ops;
    if (!Array.isArray(ops) || !ops.includes(operation)) {
      return { member: "key_ops", expected: `expected an array including "${operation}"`, found: describeMember(ops) };
    }
  }
  const alg = algOfJwk(jwk);
  // RFC 9864's fully specified name for EdDSA over Ed25519 says the same of an Ed25519 key.
  const sameAlg = alg === "EdDSA" && members.alg === "Ed25519";
  if (alg !== null && Object.hasOwn(members, "alg") && members.alg !== alg && !sameAlg) {
    return {
      member: "alg",
      expected: `expected "${alg}" (${CURVE_NAME[alg]} signs only ${alg})`,
      found: describeMember(members.alg),
    };
  }
  return null;
}

function refuseKeyUsage(jwk: ReadonlyJwk, operation: "sign" | "verify", source: string): void {
  const problem = keyUsageProblem(jwk, operation);
  if (problem !== null) {
    throw new ManifestKeyInvalidError(`${source}: ${problem.member}: ${problem.expected}, found ${problem.found}`);
  }
}

/**
 * Checks that `value` (parsed JSON: a trusted key file, an `--operator-key`) is one public Ed25519
 * or P-256 JWK whose `use`, `key_ops` and `alg`, when present, allow verifying manifest signatures
 * (keyUsageProblem), with its public coordinates (`x`, and `y` for P-256), and returns it; otherwise MANIFEST_KEY_INVALID naming `source` and what it
 * found (null, an array, a JWK Set, a private key, another key type, the member), never the key's
 * bytes.
 */
export function checkTrustedJwk(value: unknown, source: string): JWK {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ManifestKeyInvalidError(
      `${source}: expected a public JWK (a JSON object), found ${describeNonJwk(value)}`,
    );
  }
  const jwk = value as JWK & { keys?: unknown };
  if (jwk.kty === undefined && Array.isArray(jwk.keys)) {
    throw new ManifestKeyInvalidError(
      `${source}: expected a public JWK, found a JWK Set ({"keys": […]}); give each key as its own JWK`,
    );
  }
  if (jwk.d !== undefined) {
    throw new ManifestKeyInvalidError(`${source}: expected a public JWK, found a private one`);
  }
  refuseKeyType(jwk, source);
  refuseKeyUsage(jwk, "verify", source);
  // Its public coordinates, before anything hashes or imports it (jose's ERR_JWK_INVALID names neither).
  const members = jwk as Record<string, unknown>;
  const lacking = (jwk.kty === "EC" ? ["x", "y"] : ["x"]).find((name) => typeof members[name] !== "string");
  if (lacking !== undefined) {
    throw new ManifestKeyInvalidError(
      `${source}: ${lacking}: expected the public key (a base64url string), found ${describeValue(members[lacking])}`,
    );
  }
  return jwk;
}

/** Public members only (drops `d` and anything else private), as a new object. */
function publicPart(jwk: ReadonlyJwk): JWK {
  const { kty, crv, x, y } = jwk;
  const out: JWK = { kty: kty!, crv: crv!, x: x! };
  if (y !== undefined) out.y = y;
  return out;
}

/**
 * The public JWK of manifest key `jwk` (private or public) as generateManifestSigningKey gives it:
 * kty, crv, x (and y), then alg, use and kid when `jwk` has them (`cloister up` derives the operator's
 * public key from its private key file this way, so a run that reuses the key writes the same).
 */
export function manifestPublicJwk(jwk: ReadonlyJwk): JWK {
  const { alg, use, kid } = jwk;
  const decorate = Object.entries({ alg, use, kid }).filter(([, value]) => value !== undefined);
  return { ...publicPart(jwk), ...Object.fromEntries(decorate) };
}

/**
 * The RFC 7638 SHA-256 thumbprint (base64url) of manifest key `jwk` (private or public), of its public
 * part: the kid signManifest writes and the signerKeyThumbprint verifyManifest returns.
 */
export function manifestKeyThumbprint(jwk: ReadonlyJwk): Promise<string> {
  return calculateJwkThumbprint(publicPart(jwk), "sha256");
}

export async function generateManifestSigningKey(alg: ManifestAlg = "EdDSA"): Promise<ManifestSigningKeyPair> {
  if (!MANIFEST_ALGS.includes(alg)) throw new ManifestAlgUnsupportedError(alg);
  const { privateKey, publicKey } = await generateKeyPair(
    alg,
    alg === "EdDSA" ? { crv: "Ed25519", extractable: true } : { extractable: true },
  );
  const thumbprint = await manifestKeyThumbprint(await exportJWK(publicKey));
  const privateJwk = { ...(await exportJWK(privateKey)), alg, use: "sig", kid: thumbprint };
  return { alg, privateJwk, publicJwk: manifestPublicJwk(privateJwk), thumbprint };
}

/**
 * Checks the manifest against the schema, then signs it. Returns the compact JWS. `source` names
 * the key in errors (the CLI passes its `--key` file).
 */
export async function signManifest(manifest: Manifest, privateJwk: JWK, source = "signing key"): Promise<string> {
  const checked = parseManifest(manifest);
  const alg = refuseKeyType(privateJwk, source);
  if (typeof privateJwk.d !== "string")
    throw new ManifestKeyInvalidError(`${source}: expected a private JWK, found a public one`);
  refuseKeyUsage(privateJwk, "sign", source);
  let key: CryptoKey | Uint8Array;
  try {
    key = await importJWK(privateJwk, alg);
  } catch (cause) {
    throw new ManifestKeyInvalidError(`${source}: could not be imported as a JWK`, { cause });
  }
  const kid = await manifestKeyThumbprint(privateJwk);
  const payload = new TextEncoder().encode(JSON.stringify(checked));
  const jws = await new CompactSign(payload).setProtectedHeader({ alg, typ: MANIFEST_JWS_TYP, kid }).sign(key);
  if (alg !== "ES256") return jws;
  // ECDSA gives either S; the verifier takes only the low one (n - S verifies as well).
  const dot = jws.lastIndexOf(".");
  const signature = base64url.decode(jws.slice(dot + 1));
  const s = bytesToBigInt(signature.subarray(32));
  if (s <= P256_HALF_N) return jws;
  signature.set(bigIntToBytes(P256_N - s, 32), 32);
  return `${jws.slice(0, dot + 1)}${base64url.encode(signature)}`;
}

/** The order of P-256's base point, and half of it: an ES256 signature's S must not exceed the half. */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const P256_HALF_N = P256_N >> 1n;

const JWS_PARTS = ["protected header", "payload", "signature"] as const;

/**
 * Refuses a JWS part that is not in its one canonical base64url spelling (checkStrictBase64url, as the
 * verifiers read every JWS part): a last character with unused bits set decodes to the same bytes,
 * so it would give the same signed manifest another digest (as a high S would: checkLowS).
 */
function checkCanonical(jws: string): void {
  for (const [i, part] of jws.split(".").entries()) {
    checkStrictBase64url(part, `manifest JWS ${JWS_PARTS[i]}`, refuseMalformedJws);
  }
}

/** A manifest JWS part refused as malformed (MANIFEST_JWS_MALFORMED) with `message`. */
function refuseMalformedJws(message: string, cause?: Error): never {
  throw new ManifestJwsMalformedError(message, cause === undefined ? undefined : { cause });
}

function checkLowS(jws: string): void {
  const signature = base64url.decode(jws.slice(jws.lastIndexOf(".") + 1));
  if (signature.length === 64 && bytesToBigInt(signature.subarray(32)) > P256_HALF_N) {
    throw new ManifestJwsMalformedError(
      "manifest JWS ES256 signature: expected the low-S form (S at most half the group order), found the high-S form",
    );
  }
}

/** An RFC 7638 SHA-256 thumbprint, base64url (what signManifest puts in the header's kid). */
const THUMBPRINT = /^[A-Za-z0-9_-]{43}$/;

/**
 * What the header of a manifest no trusted key verifies says signed it, for the refusal: its `kid`
 * when that is a thumbprint (and whether it is one of the trusted keys: then the manifest or its
 * signature was changed), else as describeMember shows it (a short name, or its kind only: it is
 * the manifest's text, and could hold anything).
 */
function describeSignerKid(kid: unknown, trusted: readonly string[]): string {
  if (kid === undefined) return "names no signer (no kid)";
  if (typeof kid !== "string" || !THUMBPRINT.test(kid)) {
    return `kid is not a key thumbprint (${describeMember(kid)})`;
  }
  return trusted.includes(kid)
    ? `names signer kid ${kid}, a trusted key: the manifest or its signature was changed after signing`
    : `names signer kid ${kid} (unverified), not a trusted key`;
}

/** Verifies a signed manifest against trusted public keys, then checks its schema. */
export async function verifyManifest(
  jws: string,
  trustedPublicJwks: readonly ReadonlyJwk[],
): Promise<VerifiedManifest> {
  if (!isCompactJws(jws)) {
    throw new ManifestJwsMalformedError(`manifest: expected ${COMPACT_JWS_FORM}, found ${describeValue(jws)}`);
  }
  if (trustedPublicJwks.length === 0)
    throw new ManifestKeyInvalidError("trusted keys: expected at least one public JWK, found none");
  checkCanonical(jws);

  // Read as the payload is (jwsPartObject: UTF-8 only, each member once), not with jose's
  // decodeProtectedHeader: JSON.parse keeps the last of two `alg` or `typ` members, a reader the first.
  const header = jwsPartObject(
    decodeStrictBase64url(jws.slice(0, jws.indexOf(".")), "manifest JWS protected header", refuseMalformedJws),
    "manifest JWS protected header",
    refuseMalformedJws,
  );
  const alg = header.alg;
  if (!MANIFEST_ALGS.includes(alg as ManifestAlg)) throw new ManifestAlgUnsupportedError(alg);
  if (header.typ !== MANIFEST_JWS_TYP) throw new ManifestTypInvalidError(header.typ);
  if (alg === "ES256") checkLowS(jws);

  let payload: Uint8Array | undefined;
  let signer: ReadonlyJwk | undefined;
  for (const [index, candidate] of trustedPublicJwks.entries()) {
    const trusted = checkTrustedJwk(candidate, `trusted key ${index}`);
    const keyAlg = algOfJwk(trusted) as ManifestAlg;
    if (keyAlg !== alg) continue;
    let key: CryptoKey | Uint8Array;
    try {
      key = await importJWK(publicPart(trusted), keyAlg);
    } catch (cause) {
      throw new ManifestKeyInvalidError(`trusted key ${index}: could not be imported as a JWK`, { cause });
    }
    try {
      payload = (await compactVerify(jws, key, { algorithms: [alg as string] })).payload;
      signer = trusted;
      break;
    } catch (error) {
      if (error instanceof joseErrors.JWSSignatureVerificationFailed) continue;
      if (error instanceof joseErrors.JOSEError) {
        throw new ManifestJwsMalformedError(`manifest JWS: expected a well-formed JWS, found: ${error.code}`, {
          cause: error,
        });
      }
      throw error;
    }
  }
  if (payload === undefined || signer === undefined) {
    const thumbprints = await Promise.all(trustedPublicJwks.map((trusted) => manifestKeyThumbprint(trusted)));
    throw new ManifestSignatureInvalidError(thumbprints, describeSignerKid(header.kid, thumbprints));
  }

  // Only now, with the signature verified, is the payload looked at: as every JWS part is read
  // (jwsPartObject: strict UTF-8, no byte order mark, each member once, an object), so that the
  // signed bytes mean one thing, and a refusal says what was found without quoting it.
  const value = jwsPartObject(payload, "manifest payload", (message, cause) => {
    throw new ManifestPayloadInvalidError(message, cause === undefined ? undefined : { cause });
  });
  const manifest = parseManifest(value);
  return {
    manifest,
    signerKeyThumbprint: await manifestKeyThumbprint(signer),
    digest: digestHex(await manifestDigest(jws)),
    jws,
  };
}
