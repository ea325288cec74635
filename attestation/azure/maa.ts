/**
 * Verification of Microsoft Azure Attestation (MAA) tokens, offline, from a JSON Web Key Set the
 * caller trusts (the instance's `/certs` response obtained over a channel the caller trusts).
 *
 * Checked, in this order, and each failure named by its own code:
 *   1. the token is a compact JWS, its three parts in base64url's one spelling, with a decodable
 *      protected header (MAA_TOKEN_MALFORMED); the header and the payload are read strictly, UTF-8
 *      and each member once (signedJsonObject);
 *   2. `alg` is exactly RS256 — `none` and every other algorithm are refused before anything else
 *      is looked at (MAA_ALG_NOT_ALLOWED);
 *   3. `kid` selects exactly one key of the set by string equality (MAA_UNKNOWN_KEY), whose
 *      `x5c[0]` certificate is an RSA key valid at `at` (MAA_SIGNING_CERT_EXPIRED /
 *      MAA_SIGNING_CERT_NOT_YET_VALID) and agrees with the JWK's own `n`/`e` when present;
 *   4. the RS256 signature verifies under that certificate's key (MAA_SIGNATURE_INVALID);
 *   5. only then the claims: `exp` and `nbf` at `at` (MAA_TOKEN_EXPIRED, MAA_TOKEN_NOT_YET_VALID),
 *      `iss` equal to the expected issuer unless the caller passes null, an explicit choice to
 *      check it elsewhere (MAA_ISSUER_MISMATCH; no decision at all: MAA_EXPECTED_ISSUER_MISSING),
 *      and `x-ms-attestation-type`.
 *
 * Why the issuer: a key set can hold keys that sign for more than one MAA instance (the CA-issued
 * "Microsoft Azure Attestation 2020" keys name no instance in their certificate), and anyone can
 * create an instance with a policy of their own. The key says "some MAA instance"; `iss` says whose
 * policy issued the token (RFC 8725 3.8; Microsoft's verifier sample always validates it).
 *
 * Not checked here: that the x5c certificate chains anywhere (the shared-instance key is
 * self-signed; trust comes from the key set the caller passes), and what the claims say about
 * the TEE: that is appraisal (attestation/appraise.ts, against a policy's `maa` section, which also
 * checks `iss` against its allow-list). Platform-neutral: jose and WebCrypto only.
 */
import {
  type CryptoKey,
  compactVerify,
  exportJWK,
  importX509,
  type JSONWebKeySet,
  type JWK,
  errors as joseErrors,
} from "jose";
import { ConfigurationError, ParseError, VerifyError } from "../errors.ts";
import { jsonTextRefusal, parseJsonText } from "../json-text.ts";
import { checkStrictBase64url, compactJwsParts, decodeStrictBase64url, jwsPartObject } from "../jws.ts";
import { describeUntrusted } from "../untrusted-text.ts";
import { base64ToBytes, type Certificate, checkValidity, parseCertificate } from "../x509.ts";

export type { JSONWebKeySet } from "jose";

export interface VerifyMaaTokenOptions {
  /** The key set to trust; there is no implicit network fetch. */
  readonly jwks: JSONWebKeySet;
  /** The time at which `exp`, `nbf` and the signing certificate's validity are checked. */
  readonly at: Date;
  /**
   * The MAA instance URL `iss` must equal exactly, or null: an explicit choice that the caller
   * checks `iss` itself (the result's `issuer`). Required, so leaving it out cannot skip the check.
   */
  readonly expectedIssuer: string | null;
  /** Allowed clock skew for exp/nbf, seconds (default 0, at most 300). */
  readonly clockToleranceSeconds?: number;
}

// Not exported: only this module can construct a VerifiedMaaToken.
const CONSTRUCT = Symbol("VerifiedMaaToken");

/** A token whose signature verified under a key of the caller's set and whose times hold. */
export class VerifiedMaaToken {
  readonly claims: Readonly<Record<string, unknown>>;
  /** MAA has no simulator: a token is never simulated evidence (appraise reads this as for the others). */
  readonly simulated = false;

  constructor(
    key: symbol,
    claims: Record<string, unknown>,
    readonly kid: string,
    readonly attestationType: string,
    readonly issuer: string,
    readonly expiresAt: Date,
    readonly notBefore: Date | null,
    /** The `at` the signing certificate, exp and nbf were checked at. */
    readonly verifiedAt: Date,
  ) {
    if (key !== CONSTRUCT) throw new TypeError("VerifiedMaaToken is produced by verifyMaaToken only");
    this.claims = Object.freeze(claims);
    Object.freeze(this);
    CONSTRUCTED_MAA.add(this);
  }

  /**
   * True only for objects this constructor made (so by verifyMaaToken): `instanceof` also holds
   * for an object made with Object.create(VerifiedMaaToken.prototype).
   */
  static isVerified(value: unknown): value is VerifiedMaaToken {
    return typeof value === "object" && value !== null && CONSTRUCTED_MAA.has(value);
  }
}

const CONSTRUCTED_MAA = new WeakSet<object>();

function malformed(message: string, cause?: unknown): ParseError {
  return new ParseError("MAA_TOKEN_MALFORMED", `MAA token: ${message}`, cause === undefined ? undefined : { cause });
}

interface JwksKey extends JWK {
  readonly x5c?: string[];
}

function selectKey(jwks: JSONWebKeySet, kid: string): JwksKey {
  if (jwks === null || typeof jwks !== "object" || !Array.isArray(jwks.keys)) {
    throw new ConfigurationError("MAA_JWKS_INVALID", "MAA key set: expected an object with a `keys` array, found none");
  }
  const matches = (jwks.keys as JwksKey[]).filter((k) => k !== null && typeof k === "object" && k.kid === kid);
  if (matches.length === 0) {
    // kid values are public key identifiers, not secrets.
    throw new VerifyError(
      "MAA_UNKNOWN_KEY",
      `MAA token: kid ${describeUntrusted(kid)} expected in the trusted key set (${jwks.keys.length} keys), found in none`,
    );
  }
  if (matches.length > 1) {
    throw new ConfigurationError(
      "MAA_JWKS_INVALID",
      `MAA key set: kid ${JSON.stringify(kid)} expected once, found ${matches.length} times`,
    );
  }
  return matches[0] as JwksKey;
}

async function signingKey(jwk: JwksKey, kid: string, at: Date): Promise<CryptoKey> {
  const x5c0 = Array.isArray(jwk.x5c) ? jwk.x5c[0] : undefined;
  if (typeof x5c0 !== "string" || x5c0 === "") {
    throw new ConfigurationError(
      "MAA_JWKS_INVALID",
      `MAA key set: key ${JSON.stringify(kid)} expected an x5c certificate, found none`,
    );
  }
  let der: Uint8Array;
  try {
    der = base64ToBytes(x5c0);
  } catch (error) {
    throw new ConfigurationError("MAA_JWKS_INVALID", `MAA key set: key ${JSON.stringify(kid)} x5c[0] is not base64`, {
      cause: error,
    });
  }
  let cert: Certificate;
  try {
    cert = parseCertificate(der);
  } catch (error) {
    throw new ConfigurationError(
      "MAA_JWKS_INVALID",
      `MAA key set: key ${JSON.stringify(kid)} x5c[0] expected a DER certificate, found one that does not parse (${(error as { code?: string }).code ?? "malformed"})`,
      { cause: error },
    );
  }
  if (cert.publicKey.kind !== "rsa") {
    throw new ConfigurationError(
      "MAA_JWKS_INVALID",
      `MAA key set: key ${JSON.stringify(kid)} expected an RSA certificate, found ${cert.publicKey.kind}`,
    );
  }
  try {
    checkValidity(cert, at, "MAA signing");
  } catch (error) {
    const code =
      (error as { code?: string }).code === "CERT_NOT_YET_VALID"
        ? "MAA_SIGNING_CERT_NOT_YET_VALID"
        : "MAA_SIGNING_CERT_EXPIRED";
    throw new VerifyError(code, (error as Error).message, { cause: error });
  }
  const pem = `-----BEGIN CERTIFICATE-----\n${x5c0.replace(/(.{64})/g, "$1\n")}\n-----END CERTIFICATE-----`;
  const key = await importX509(pem, "RS256", { extractable: true });
  if (jwk.n !== undefined || jwk.e !== undefined) {
    const fromCert = await exportJWK(key);
    if (fromCert.n !== jwk.n || fromCert.e !== jwk.e) {
      throw new ConfigurationError(
        "MAA_JWKS_INVALID",
        `MAA key set: key ${JSON.stringify(kid)} expected n/e equal to its x5c[0] certificate's key, found different values`,
      );
    }
  }
  return key;
}

/**
 * The token refused as MAA_TOKEN_MALFORMED with `message`: a part that is not strict base64url (the
 * refusal names the part and why: a character, a length, unused bits) or not a JSON object.
 */
function refuseMalformed(message: string, cause?: unknown): never {
  throw malformed(message, cause);
}

/**
 * The token's protected header (its base64url text) or payload (its verified bytes) as a JSON
 * object, read as the verifier reads an attestation document's parts (jwsPartObject): UTF-8 only
 * and each member once at every depth. The signature covers the bytes; a plain TextDecoder would
 * read a byte that is not UTF-8 as U+FFFD and JSON.parse the last of two members, where another
 * reader of the same signed token may not.
 */
function signedJsonObject(part: string | Uint8Array, name: "protected header" | "payload"): Record<string, unknown> {
  const bytes = typeof part === "string" ? decodeStrictBase64url(part, name, refuseMalformed) : part;
  return jwsPartObject(bytes, name, refuseMalformed);
}

function numericDate(claims: Record<string, unknown>, name: string, required: boolean): Date | null {
  const value = claims[name];
  if (value === undefined && !required) return null;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw malformed(`claim ${name}: expected a NumericDate, found ${value === undefined ? "none" : typeof value}`);
  }
  const date = new Date(value * 1000);
  // Beyond ±8.64e12 seconds a Date is invalid, and comparing its NaN time fails every check: an
  // exp there would never expire the token, an nbf there never hold it back.
  if (Number.isNaN(date.getTime())) {
    throw malformed(
      `claim ${name}: expected a NumericDate, found a number of seconds outside the dates JavaScript holds`,
    );
  }
  return date;
}

/**
 * Verifies an MAA token against the caller's key set at time `at`. Returns the verified claims;
 * throws ParseError, VerifyError or ConfigurationError with the codes listed at the top.
 */
export async function verifyMaaToken(token: string, options: VerifyMaaTokenOptions): Promise<VerifiedMaaToken> {
  const tolerance = options.clockToleranceSeconds ?? 0;
  if (!Number.isFinite(tolerance) || tolerance < 0 || tolerance > 300) {
    throw new ConfigurationError(
      "MAA_CLOCK_TOLERANCE_RANGE",
      `clockToleranceSeconds: expected 0..300, found ${tolerance}`,
    );
  }
  if (!(options.at instanceof Date) || Number.isNaN(options.at.getTime())) {
    throw new ConfigurationError("MAA_BAD_TIME", "at: expected a valid Date");
  }
  const expectedIssuer: unknown = options.expectedIssuer;
  if (expectedIssuer !== null && (typeof expectedIssuer !== "string" || expectedIssuer === "")) {
    throw new ConfigurationError(
      "MAA_EXPECTED_ISSUER_MISSING",
      "expectedIssuer: expected the MAA instance URL the token's iss must equal, or null to check iss elsewhere",
    );
  }
  const compact = token.trim();
  // Its parts found as every reader finds them (compactJwsParts), each then read in base64url's one
  // spelling: the header as it is decoded (signedJsonObject), the payload and the signature before
  // jose decodes them with atob, which takes white space and unused bits set (one signed token,
  // one text).
  const [protectedHeader, payloadPart, signaturePart] = compactJwsParts(compact, (found) => {
    throw malformed(`expected 3 JWS parts, found ${found}`);
  });
  const header = signedJsonObject(protectedHeader, "protected header");
  checkStrictBase64url(payloadPart, "payload", refuseMalformed);
  checkStrictBase64url(signaturePart, "signature", refuseMalformed);
  // The algorithm is decided by us, never by the token: RS256 only, checked before any key
  // lookup or claim, so an unsigned (`alg: none`) token can never get further.
  if (header.alg !== "RS256") {
    throw new VerifyError(
      "MAA_ALG_NOT_ALLOWED",
      `MAA token: alg expected RS256, found ${describeUntrusted(header.alg)}`,
    );
  }
  if (typeof header.kid !== "string" || header.kid === "") {
    throw new VerifyError("MAA_UNKNOWN_KEY", "MAA token: expected a kid naming a key of the trusted set, found none");
  }
  const kid = header.kid;
  const key = await signingKey(selectKey(options.jwks, kid), kid, options.at);

  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(compact, key, { algorithms: ["RS256"] }));
  } catch (error) {
    if (error instanceof joseErrors.JWSSignatureVerificationFailed) {
      throw new VerifyError(
        "MAA_SIGNATURE_INVALID",
        `MAA token: RS256 signature does not verify under key ${JSON.stringify(kid)}`,
        {
          cause: error,
        },
      );
    }
    throw malformed("JWS structure rejected", error);
  }

  const claims = signedJsonObject(payload, "payload");

  const at = options.at.getTime();
  const expiresAt = numericDate(claims, "exp", true) as Date;
  const notBefore = numericDate(claims, "nbf", false);
  // Expired at exp itself (RFC 7519 4.1.4: "on or after"), as jose and the MAA SDKs judge it.
  if (at >= expiresAt.getTime() + tolerance * 1000) {
    throw new VerifyError(
      "MAA_TOKEN_EXPIRED",
      `MAA token: exp ${expiresAt.toISOString()} expected after the verification time ${options.at.toISOString()}, found at or before it`,
    );
  }
  if (notBefore !== null && at < notBefore.getTime() - tolerance * 1000) {
    throw new VerifyError(
      "MAA_TOKEN_NOT_YET_VALID",
      `MAA token: nbf ${notBefore.toISOString()} expected before the verification time ${options.at.toISOString()}, found after`,
    );
  }
  const issuer = claims.iss;
  if (typeof issuer !== "string") throw malformed("claim iss: expected a string");
  if (options.expectedIssuer !== null && issuer !== options.expectedIssuer) {
    throw new VerifyError(
      "MAA_ISSUER_MISMATCH",
      `MAA token: iss expected ${JSON.stringify(options.expectedIssuer)}, found ${describeUntrusted(issuer)}`,
    );
  }
  const attestationType = claims["x-ms-attestation-type"];
  if (typeof attestationType !== "string") throw malformed("claim x-ms-attestation-type: expected a string");
  return new VerifiedMaaToken(
    CONSTRUCT,
    claims,
    kid,
    attestationType,
    issuer,
    expiresAt,
    notBefore,
    new Date(options.at.getTime()),
  );
}

// --- Optional key-set fetching -----------------------------------------------------------------

export interface MaaJwksGetterOptions {
  /** The MAA instance, e.g. https://sharedeus2.eus2.attest.azure.net (https only). */
  readonly instance: string;
  /** Injected fetch (no default: the caller decides that network access is acceptable). */
  readonly fetch: (url: string) => Promise<{ ok: boolean; status: number; text(): Promise<string> }>;
  /** Cache lifetime, milliseconds (default one hour). */
  readonly cacheMs?: number;
  /** Clock for the cache (default Date.now). */
  readonly now?: () => number;
}

/**
 * A getter for an MAA instance's `/certs` key set, cached for `cacheMs`. Off by default: nothing
 * in Cloister calls it unless the caller builds one with its own fetch. A fetched key set is only
 * as trustworthy as the TLS connection it came over; pinning a key set is stronger.
 */
export function createMaaJwksGetter(options: MaaJwksGetterOptions): () => Promise<JSONWebKeySet> {
  let url: URL;
  try {
    url = new URL("/certs", options.instance);
  } catch (error) {
    throw new ConfigurationError("MAA_INSTANCE_INVALID", "MAA instance: expected an absolute https URL", {
      cause: error,
    });
  }
  if (url.protocol !== "https:") {
    throw new ConfigurationError("MAA_INSTANCE_INVALID", `MAA instance: expected https, found ${url.protocol}`);
  }
  const cacheMs = options.cacheMs ?? 3_600_000;
  const now = options.now ?? Date.now;
  let cached: { jwks: JSONWebKeySet; at: number } | undefined;
  return async () => {
    if (cached !== undefined && now() - cached.at < cacheMs) return cached.jwks;
    const response = await options.fetch(url.href);
    if (!response.ok) {
      throw new VerifyError(
        "MAA_JWKS_FETCH_FAILED",
        `MAA key set: GET ${url.href} expected status 200, found ${response.status}`,
      );
    }
    const jwks = parseMaaJwks(await response.text());
    cached = { jwks, at: now() };
    return jwks;
  };
}

/** Parses a `/certs` response body (JSON with a `keys` array of objects carrying kid and x5c). */
export function parseMaaJwks(text: string): JSONWebKeySet {
  // The key set decides which keys are trusted: each member once (parseJsonText), as JSON.parse
  // keeps the last of two while a reader of the file takes the first (a second x5c for a kid).
  let parsed: unknown;
  try {
    parsed = parseJsonText(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new ParseError("MAA_JWKS_INVALID", `MAA key set: ${jsonTextRefusal(error, "JSON")}`);
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys))
    throw new ParseError("MAA_JWKS_INVALID", "MAA key set: expected an object with a `keys` array");
  keys.forEach((k: unknown, i) => {
    const key = k as { kid?: unknown; x5c?: unknown } | null;
    if (key === null || typeof key !== "object" || typeof key.kid !== "string" || !Array.isArray(key.x5c)) {
      throw new ParseError("MAA_JWKS_INVALID", `MAA key set: keys[${i}] expected kid (string) and x5c (array)`);
    }
  });
  return parsed as JSONWebKeySet;
}
