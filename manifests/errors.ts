/**
 * Errors of manifest signing and checking: a base class with a stable `code` and one subclass per
 * failure. Messages name the field, the expected and the found value; they never contain key
 * material.
 */

export type ManifestErrorCode =
  | "MANIFEST_JWS_MALFORMED"
  | "MANIFEST_ALG_UNSUPPORTED"
  | "MANIFEST_TYP_INVALID"
  | "MANIFEST_SIGNATURE_INVALID"
  | "MANIFEST_PAYLOAD_INVALID"
  | "MANIFEST_FIELD_MISSING"
  | "MANIFEST_FIELD_UNKNOWN"
  | "MANIFEST_FIELD_INVALID"
  | "MANIFEST_KEY_INVALID"
  | "MANIFEST_FILE";

/**
 * The codes that mean bad input (the CLI exits 2, as for USAGE): a file that cannot be read or
 * written, or is not JSON / a compact JWS / a usable key, or a manifest that breaks the schema. The
 * others (a signature no trusted key verifies, an alg or typ this project does not sign with) are
 * verification failures (exit 1).
 */
export const MANIFEST_BAD_INPUT_CODES: ReadonlySet<ManifestErrorCode> = new Set<ManifestErrorCode>([
  "MANIFEST_FILE",
  "MANIFEST_KEY_INVALID",
  "MANIFEST_JWS_MALFORMED",
  "MANIFEST_PAYLOAD_INVALID",
  "MANIFEST_FIELD_MISSING",
  "MANIFEST_FIELD_UNKNOWN",
  "MANIFEST_FIELD_INVALID",
]);

export class ManifestError extends Error {
  readonly code: ManifestErrorCode;

  constructor(code: ManifestErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** Not a compact JWS (three base64url parts with a JSON protected header). */
export class ManifestJwsMalformedError extends ManifestError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("MANIFEST_JWS_MALFORMED", message, options);
  }
}

/** The JWS `alg` is not one this project signs manifests with (this includes `none`). */
export class ManifestAlgUnsupportedError extends ManifestError {
  constructor(found: unknown) {
    super("MANIFEST_ALG_UNSUPPORTED", `manifest JWS alg: expected "EdDSA" or "ES256", found ${JSON.stringify(found)}`);
  }
}

/** The JWS `typ` is not `cloister-manifest+jws` (a JWS made for another purpose). */
export class ManifestTypInvalidError extends ManifestError {
  constructor(found: unknown) {
    super("MANIFEST_TYP_INVALID", `manifest JWS typ: expected "cloister-manifest+jws", found ${JSON.stringify(found)}`);
  }
}

/** No trusted key verifies the signature (wrong signer, or altered header/payload/signature). */
export class ManifestSignatureInvalidError extends ManifestError {
  /**
   * `trustedThumbprints`: the RFC 7638 thumbprints of the keys tried; `signer`: what the JWS header's
   * (unverified) `kid` says, already phrased ("names signer kid …", "names no signer (no kid)").
   */
  constructor(trustedThumbprints: readonly string[], signer: string) {
    super(
      "MANIFEST_SIGNATURE_INVALID",
      `manifest signature: expected a valid signature by a trusted key (${trustedThumbprints.join(", ")}), ` +
        `found none that verifies; the manifest's header ${signer}`,
    );
  }
}

/** The signed payload is not a JSON object. */
export class ManifestPayloadInvalidError extends ManifestError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("MANIFEST_PAYLOAD_INVALID", message, options);
  }
}

export interface ManifestIssue {
  /** Dotted path of the field, e.g. `model.sha256` or `requestPolicy.rules.0.id`. */
  readonly path: string;
  readonly kind: "missing" | "unknown" | "invalid";
  readonly message: string;
}

/**
 * The manifest breaks the schema. `issues` lists every violation at once; `code` says what the
 * first one is (missing field, unknown field, or invalid value) and the message names it.
 */
export class ManifestSchemaError extends ManifestError {
  readonly issues: readonly ManifestIssue[];

  constructor(issues: readonly ManifestIssue[]) {
    const first = issues[0];
    const code: ManifestErrorCode =
      first?.kind === "missing"
        ? "MANIFEST_FIELD_MISSING"
        : first?.kind === "unknown"
          ? "MANIFEST_FIELD_UNKNOWN"
          : "MANIFEST_FIELD_INVALID";
    const more =
      issues.length > 1
        ? ` (and ${issues.length - 1} more: ${issues
            .slice(1)
            .map((i) => i.path)
            .join(", ")})`
        : "";
    super(code, `${first?.message ?? "manifest: invalid"}${more}`);
    this.issues = issues;
  }
}

/** A key is unusable: wrong type or curve, private where public is expected, or unparsable. */
export class ManifestKeyInvalidError extends ManifestError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("MANIFEST_KEY_INVALID", message, options);
  }
}

/** A file the CLI needs could not be read or written. */
export class ManifestFileError extends ManifestError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("MANIFEST_FILE", message, options);
  }
}
