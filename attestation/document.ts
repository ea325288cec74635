/**
 * Attestation documents and nonce answers (DESIGN.md "Boot and attestation").
 *
 * The document is a compact JWS signed with the enclave's per-boot Ed25519 key. Its payload
 * carries the TEE type, the raw evidence (whose REPORT_DATA binds the keys and the manifest, see
 * binding.ts), the X25519 sealing key (`cnf`, EAT vocabulary), the Ed25519 key itself, and the
 * signed manifest. The nonce answer is a JWS by the same key over {eat_nonce, document digest, iat}.
 *
 * `verifyAttestationDocument` is the client's single entry point. It checks, in this order, and
 * names the failed stage: evidence (signature and chain to a pinned root, at `at`) → appraisal
 * (policy over the TEE's own fields) → binding (REPORT_DATA = hash of the document's keys and
 * manifest) → document (the JWS verifies under the bound Ed25519 key) → nonce (fresh answer under
 * the same key) → manifest (operator signature, model digest and platform acceptable).
 * The payload is read before its JWS is checked only to reach the hardware evidence, which is
 * self-authenticating; nothing from the payload is trusted until the stage that verifies it.
 */
import { base64url, CompactSign, type CryptoKey, compactVerify, importJWK, type JWK } from "jose";
import { COMPACT_JWS_FORM, isCompactJws } from "../manifests/digest.ts";
import { describeValue } from "../manifests/issues.ts";
import { appraise, describeViolation } from "./appraise.ts";
import { checkReportDataBinding } from "./binding.ts";
import { toHex, utf8 } from "./bytes.ts";
import type { AttestationCollateral } from "./collateral.ts";
import { constantTimeEqual, sha256 } from "./crypto.ts";
import { DOCUMENT_MAX_LENGTH } from "./document-key.ts";
import { AttestationError, ConfigurationError, ParseError, type VerifiedEvidenceIdentity } from "./errors.ts";
import { type DocumentEvidence, parseDocumentEvidence, type TrustAnchors, verifyDocumentEvidence } from "./evidence.ts";
import { compactJwsParts, decodeStrictBase64url, jwsPartObject } from "./jws.ts";
import { type ManifestTeeEvidence, manifestTeeEvidenceOfVerified } from "./manifest-tee.ts";
import { type AttestationPolicy, parsedAttestationPolicy } from "./policy.ts";
import { describeUntrusted } from "./untrusted-text.ts";

export const DOCUMENT_TYPE = "cloister-attestation+jwt";
export const NONCE_ANSWER_TYPE = "cloister-nonce-answer+jwt";
export const DOCUMENT_PROFILE = "tag:cloister.dev,2026:attestation-document:v1";

/**
 * How a policy's maa section is refused wherever attestation documents are verified (here, and by
 * the client policy's parser): nothing appraises an MAA token, a document's maa_token is not read.
 * Each refusal puts the section's path before it ("maa" within its policy) and says who reads none.
 */
export const MAA_SECTION_REFUSAL = "maa: expected null or absent, found a policy section";

export interface AttestationDocumentPayload {
  readonly iss: "cloister-enclave";
  readonly iat: number;
  readonly eat_profile: typeof DOCUMENT_PROFILE;
  readonly evidence: DocumentEvidence;
  /** The X25519 sealing key, as EAT/RFC 7800 confirmation key. */
  readonly cnf: { readonly jwk: { readonly kty: "OKP"; readonly crv: "X25519"; readonly x: string } };
  /** The Ed25519 key that signs this document, nonce answers and audit records. */
  readonly sig_jwk: { readonly kty: "OKP"; readonly crv: "Ed25519"; readonly x: string };
  /** The operator-signed deployment manifest (compact JWS). */
  readonly manifest: string;
  /** A Microsoft Azure Attestation token for the evidence, when one was obtained. */
  readonly maa_token: string | null;
}

export interface EnclaveKeys {
  /** tweetnacl `sign` key pair (secretKey is seed ‖ public key, 64 bytes). */
  readonly signing: { readonly publicKey: Uint8Array; readonly secretKey: Uint8Array };
  /** tweetnacl `box` key pair. */
  readonly sealing: { readonly publicKey: Uint8Array; readonly secretKey: Uint8Array };
}

function ed25519PrivateJwk(keys: EnclaveKeys["signing"]): JWK {
  return {
    kty: "OKP",
    crv: "Ed25519",
    x: base64url.encode(keys.publicKey),
    d: base64url.encode(keys.secretKey.subarray(0, 32)),
  };
}

async function signJws(keys: EnclaveKeys["signing"], typ: string, payload: unknown): Promise<string> {
  const key = await importJWK(ed25519PrivateJwk(keys), "EdDSA");
  return new CompactSign(utf8(JSON.stringify(payload))).setProtectedHeader({ alg: "EdDSA", typ }).sign(key);
}

/** Enclave side: signs the attestation document. */
export async function createAttestationDocument(input: {
  keys: EnclaveKeys;
  evidence: DocumentEvidence;
  manifest: string;
  maaToken: string | null;
  now: Date;
}): Promise<string> {
  const payload: AttestationDocumentPayload = {
    iss: "cloister-enclave",
    iat: Math.floor(input.now.getTime() / 1000),
    eat_profile: DOCUMENT_PROFILE,
    evidence: input.evidence,
    cnf: { jwk: { kty: "OKP", crv: "X25519", x: base64url.encode(input.keys.sealing.publicKey) } },
    sig_jwk: { kty: "OKP", crv: "Ed25519", x: base64url.encode(input.keys.signing.publicKey) },
    manifest: input.manifest,
    maa_token: input.maaToken,
  };
  return signJws(input.keys.signing, DOCUMENT_TYPE, payload);
}

/** Enclave side: answers a client's nonce with a JWS over {eat_nonce, document digest, iat}. */
export async function createNonceAnswer(input: {
  keys: EnclaveKeys;
  document: string;
  nonce: Uint8Array;
  now: Date;
}): Promise<string> {
  if (input.nonce.length < 16 || input.nonce.length > 64) {
    throw new AttestationError(
      "nonce",
      "NONCE_BAD_LENGTH",
      `nonce: expected 16..64 bytes, found ${input.nonce.length}`,
    );
  }
  return signJws(input.keys.signing, NONCE_ANSWER_TYPE, {
    eat_nonce: base64url.encode(input.nonce),
    doc: toHex(await sha256(utf8(input.document))),
    iat: Math.floor(input.now.getTime() / 1000),
  });
}

// --- verification --------------------------------------------------------------------------------

export interface ManifestCheck {
  /**
   * A description of everything `verify` decides on (e.g. the client policy's manifest section as
   * canonical JSON): two checks with equal identities must give equal verdicts. Remembered
   * verifications (below) are reused only under an equal identity.
   */
  readonly identity: string;
  /** SHA-256 of the exact compact-JWS bytes of the manifest (manifests/sign.ts `manifestDigest`). */
  digest(manifestJws: string): Promise<Uint8Array>;
  /**
   * Verifies the operator signature and the client's manifest policy (trusted signers, model
   * digests, platform), and the manifest's tee section against the verified evidence (`evidence`,
   * manifest-tee.ts); throws an AttestationError in stage "manifest" when it is not acceptable.
   * Returns what the client should see about the deployment.
   */
  verify(
    manifestJws: string,
    context: { tee: string; simulated: boolean; evidence: ManifestTeeEvidence },
  ): Promise<VerifiedManifestSummary>;
}

export interface VerifiedManifestSummary {
  readonly service: { readonly name: string; readonly version: string };
  readonly model: { readonly file: string; readonly sha256: string };
  readonly signerThumbprint: string;
  readonly manifest: unknown;
}

export interface DocumentVerificationOptions {
  readonly policy: AttestationPolicy;
  readonly anchors: TrustAnchors;
  readonly manifest: ManifestCheck;
  /** Verification time (certificate validity, freshness). */
  readonly at: Date;
  /** The client's fresh nonce and the enclave's answer to it. Required: there is no unchallenged mode. */
  readonly nonce: { readonly value: Uint8Array; readonly answer: string };
  /** Allowed clock difference for the nonce answer's iat. */
  readonly maxClockSkewSeconds: number;
  /** Collateral served with the document (collateral.ts), if any. */
  readonly collateral?: AttestationCollateral | null | undefined;
}

const brand: unique symbol = Symbol("VerifiedEnclave");

/**
 * An enclave whose document passed every stage. Only `verifyAttestationDocument` creates one: its
 * two keys are the caller's own copies, its manifest summary and details frozen.
 */
export class VerifiedEnclave {
  readonly [brand] = true;

  private constructor(
    readonly tee: DocumentEvidence["type"],
    readonly simulated: boolean,
    readonly measurement: string,
    /** The bound REPORT_DATA, hex (on Azure CVMs the value whose SHA-256 the vTPM quote carries). */
    readonly reportData: string,
    readonly sealingPublicKey: Uint8Array,
    readonly signingPublicKey: Uint8Array,
    readonly manifestDigest: string,
    readonly documentDigest: string,
    readonly manifest: VerifiedManifestSummary,
    readonly details: Readonly<Record<string, unknown>>,
  ) {}

  /** @internal */
  static create(fields: {
    tee: DocumentEvidence["type"];
    simulated: boolean;
    measurement: string;
    reportData: string;
    sealingPublicKey: Uint8Array;
    signingPublicKey: Uint8Array;
    manifestDigest: string;
    documentDigest: string;
    manifest: VerifiedManifestSummary;
    details: Record<string, unknown>;
  }): VerifiedEnclave {
    return new VerifiedEnclave(
      fields.tee,
      fields.simulated,
      fields.measurement,
      fields.reportData,
      fields.sealingPublicKey,
      fields.signingPublicKey,
      fields.manifestDigest,
      fields.documentDigest,
      fields.manifest,
      fields.details,
    );
  }
}

function fail(stage: AttestationError["stage"], code: string, message: string, cause?: unknown): never {
  throw new AttestationError(stage, code, message, cause === undefined ? undefined : { cause });
}

function decodeKey(value: unknown, crv: "X25519" | "Ed25519", field: string): Uint8Array {
  const jwk = value as { kty?: unknown; crv?: unknown; x?: unknown } | null;
  if (jwk === null || typeof jwk !== "object" || jwk.kty !== "OKP" || jwk.crv !== crv || typeof jwk.x !== "string") {
    fail("document", "DOCUMENT_MALFORMED", `${field}: expected an OKP ${crv} JWK`);
  }
  // Strictly, as audit verify reads sig_jwk.x: one spelling per key.
  const key = strictBase64url(jwk.x, `${field}.x`, "document");
  if (key.length !== 32) fail("document", "DOCUMENT_MALFORMED", `${field}.x: expected 32 bytes, found ${key.length}`);
  if (crv === "X25519" && hasSmallOrder(key)) {
    // Sealed to such a key, every request would be readable by anyone (X25519 gives all zeros).
    fail("document", "DOCUMENT_MALFORMED", `${field}.x: expected an X25519 public key, found a low-order point`);
  }
  return key;
}

/**
 * The u-coordinates of Curve25519's points of small order, and the non-canonical encodings of them
 * below 2^255 (p - 1, p, p + 1): X25519 with any of these gives an all-zero shared secret. The top
 * bit of the last byte is ignored, as X25519 ignores it (RFC 7748, 5).
 */
const SMALL_ORDER_POINTS: readonly string[] = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

function hasSmallOrder(key: Uint8Array): boolean {
  const canonical = key.slice();
  canonical[31] = (canonical[31] as number) & 0x7f;
  return SMALL_ORDER_POINTS.includes(toHex(canonical));
}

interface ParsedDocument {
  readonly payload: AttestationDocumentPayload;
  readonly evidence: DocumentEvidence;
  readonly sealingPublicKey: Uint8Array;
  readonly signingPublicKey: Uint8Array;
}

function parseDocument(jws: string): ParsedDocument {
  if (typeof jws !== "string" || jws.length > DOCUMENT_MAX_LENGTH) {
    // By its kind and length only, as every value the host hands over.
    fail(
      "document",
      "DOCUMENT_MALFORMED",
      `document: expected a compact JWS of at most ${DOCUMENT_MAX_LENGTH} characters (${DOCUMENT_MAX_LENGTH / (1024 * 1024)} MiB), found ${describeValue(jws)}`,
    );
  }
  const [headerBytes, payloadBytes] = strictJwsParts(jws, "document");
  const header = strictPartObject(headerBytes, "document header", "document");
  // An object; its members are checked below and by the stages that read them.
  const payload = strictPartObject(
    payloadBytes,
    "document payload",
    "document",
  ) as unknown as AttestationDocumentPayload;
  if (header.alg !== "EdDSA")
    fail("document", "DOCUMENT_BAD_ALGORITHM", `document alg: expected EdDSA, found ${describeUntrusted(header.alg)}`);
  if (header.typ !== DOCUMENT_TYPE)
    fail(
      "document",
      "DOCUMENT_MALFORMED",
      `document typ: expected ${DOCUMENT_TYPE}, found ${describeUntrusted(header.typ)}`,
    );
  if (payload.eat_profile !== DOCUMENT_PROFILE) {
    fail("document", "DOCUMENT_MALFORMED", `document eat_profile: expected ${DOCUMENT_PROFILE}`);
  }
  // Its form is checked here, so a malformed one is this stage's typed failure, not the digest's TypeError.
  if (!isCompactJws(payload.manifest)) {
    // By its kind and length only: whatever the host put there is not repeated.
    fail(
      "document",
      "DOCUMENT_MALFORMED",
      `document manifest: expected ${COMPACT_JWS_FORM}, found ${describeValue(payload.manifest)}`,
    );
  }
  if (payload.maa_token !== null && typeof payload.maa_token !== "string") {
    fail("document", "DOCUMENT_MALFORMED", "document maa_token: expected a string or null");
  }
  return {
    payload,
    evidence: parseDocumentEvidence(payload.evidence),
    sealingPublicKey: decodeKey(payload.cnf?.jwk, "X25519", "cnf.jwk"),
    signingPublicKey: decodeKey(payload.sig_jwk, "Ed25519", "sig_jwk"),
  };
}

/**
 * The three parts of a compact JWS, each decoded strictly (fromBase64url), or `stage`'s MALFORMED
 * naming the part. jose's decoder takes white space and padding and ignores the unused bits of a
 * part's last character, and a signature is checked over the header and payload *text* only: so a
 * host could re-spell a valid document's signature, and the document would verify under another
 * digest, the boot's id (receipts, the audit log, the nonce answer's `doc` all name it).
 */
function strictJwsParts(jws: unknown, stage: "document" | "nonce"): [Uint8Array, Uint8Array, Uint8Array] {
  const what = stage === "document" ? "document" : "nonce answer";
  const code = `${stage.toUpperCase()}_MALFORMED`;
  if (typeof jws !== "string") fail(stage, code, `${what}: expected a compact JWS, found ${describeValue(jws)}`);
  const [header, payload, signature] = compactJwsParts(jws, (found) =>
    fail(stage, code, `${what}: expected 3 JWS parts, found ${found}`),
  );
  return [
    strictBase64url(header, `${what} header`, stage),
    strictBase64url(payload, `${what} payload`, stage),
    strictBase64url(signature, `${what} signature`, stage),
  ];
}

/**
 * A decoded JWS part as a JSON object (jwsPartObject: UTF-8 only, each member once at every depth),
 * or `stage`'s MALFORMED naming the part and what was wrong.
 */
function strictPartObject(bytes: Uint8Array, part: string, stage: "document" | "nonce"): Record<string, unknown> {
  return jwsPartObject(bytes, part, (message, cause) =>
    fail(stage, `${stage.toUpperCase()}_MALFORMED`, message, cause),
  );
}

/** `text` decoded by fromBase64url, or `stage`'s MALFORMED with its refusal (naming `field`). */
function strictBase64url(text: string, field: string, stage: "document" | "nonce"): Uint8Array {
  return decodeStrictBase64url(text, field, (message, cause) =>
    fail(stage, `${stage.toUpperCase()}_MALFORMED`, message, cause),
  );
}

/**
 * The nonce answer's payload, once its parts are spelled strictly, its header reads as the
 * document's does (each member once: jose, which checks its alg and typ, keeps the last of two) and
 * its JWS verifies under `key`.
 */
async function verifyNonceAnswerJws(
  answer: string,
  key: Promise<CryptoKey | Uint8Array>,
): Promise<Record<string, unknown>> {
  const [header, payload] = strictJwsParts(answer, "nonce");
  strictPartObject(header, "nonce answer header", "nonce");
  await verifyJwsWithKey(answer, key, NONCE_ANSWER_TYPE, "nonce");
  return strictPartObject(payload, "nonce answer payload", "nonce");
}

/**
 * Checks that `jws` verifies under `key` (EdDSA only) and has the header typ `typ`. Its parts were
 * decoded by strictJwsParts, and only what that decoded is read: jose decodes them again to verify,
 * and its payload is not used.
 */
async function verifyJwsWithKey(
  jws: string,
  key: Promise<CryptoKey | Uint8Array>,
  typ: string,
  stage: "document" | "nonce",
): Promise<void> {
  let result: Awaited<ReturnType<typeof compactVerify>>;
  try {
    result = await compactVerify(jws, await key, { algorithms: ["EdDSA"] });
  } catch (error) {
    fail(
      stage,
      stage === "document" ? "DOCUMENT_SIGNATURE_INVALID" : "NONCE_SIGNATURE_INVALID",
      `${stage}: JWS does not verify under the attested Ed25519 key`,
      error,
    );
  }
  if (result.protectedHeader.typ !== typ)
    fail(stage, `${stage.toUpperCase()}_MALFORMED`, `${stage} typ: expected ${typ}`);
}

type Settled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/**
 * Runs `start` and returns a promise that never rejects (a synchronous throw included): its outcome
 * is looked at, and a failure thrown, by `unwrap`.
 */
function settled<T>(start: () => Promise<T>): Promise<Settled<T>> {
  return Promise.resolve()
    .then(start)
    .then(
      (value) => ({ ok: true, value }),
      (error: unknown) => ({ ok: false, error }),
    );
}

function unwrap<T>(result: Settled<T>): T {
  if (!result.ok) throw result.error;
  return result.value;
}

/**
 * Verifies an attestation document and the nonce answer end to end. Returns a VerifiedEnclave or
 * throws an AttestationError whose `stage` names the failed step and, when the evidence verified
 * before that, whose `evidence` says what the enclave is.
 */
export async function verifyAttestationDocument(
  documentJws: string,
  options: DocumentVerificationOptions,
): Promise<VerifiedEnclave> {
  // The caller's policy is parsed (once per policy object), as connect() and the key broker parse
  // theirs: one built in code is held to the policy file's rules, so a field it lacks is refused
  // here (POLICY_INVALID), never compared with undefined by appraisal (a check silently not made).
  const policy = parsedAttestationPolicy(options.policy);
  if ((policy.maa ?? null) !== null) {
    // The attestation policy's parser takes a maa section (verify-evidence --tee maa appraises MAA
    // tokens by it), but no stage here appraises one: a document's maa_token is not read. Alone the
    // section would accept nothing, found only at appraisal; beside another, it would read as a
    // check that is never made. The client policy's parser refuses it likewise.
    throw new ConfigurationError(
      "POLICY_INVALID",
      `attestation policy: ${MAA_SECTION_REFUSAL} (verifyAttestationDocument appraises the document's evidence, never an MAA token: a document's maa_token is not read)`,
    );
  }
  const skew: unknown = options.maxClockSkewSeconds;
  if (typeof skew !== "number" || !Number.isFinite(skew) || skew < 0) {
    // Anything else would make the nonce answer's time check compare with NaN: never failing.
    throw new ConfigurationError(
      "DOCUMENT_BAD_OPTION",
      `verifyAttestationDocument maxClockSkewSeconds: expected a number of seconds >= 0, found ${describeValue(skew)}`,
    );
  }
  if (!(options.at instanceof Date) || Number.isNaN(options.at.getTime())) {
    // Checked here, not only by the evidence verifiers: a remembered document is not verified again,
    // and its validity bounds compared with NaN would hold.
    throw new ConfigurationError("VERIFY_TIME_INVALID", "verification time: expected a valid Date");
  }
  // The collateral is read once, here: what is verified is what the verification is remembered by.
  const { collateral, texts } = readCollateral(options.collateral);
  const checked: DocumentVerificationOptions = { ...options, policy, collateral };
  let identity: VerifiedEvidenceIdentity | undefined;
  try {
    return await verifyDocument(documentJws, checked, texts, (verified) => {
      identity = verified;
    });
  } catch (error) {
    if (error instanceof AttestationError) error.evidence ??= identity;
    throw error;
  }
}

/**
 * What an enclave is, for AttestationError.evidence: only the three public values (never the keys
 * or manifest of what it is made from).
 */
export function identityOf(from: VerifiedEvidenceIdentity): VerifiedEvidenceIdentity {
  return { tee: from.tee, simulated: from.simulated, measurement: from.measurement };
}

/** verifyAttestationDocument's steps; `evidenceVerified` is told what the enclave is after stage 1. */
async function verifyDocument(
  documentJws: string,
  options: DocumentVerificationOptions,
  collateralTexts: CollateralTexts | null,
  evidenceVerified: (identity: VerifiedEvidenceIdentity) => void,
): Promise<VerifiedEnclave> {
  const known = recall(documentJws, options, collateralTexts);
  if (known !== null) {
    evidenceVerified(identityOf(known.fields));
    // Stages 1–4 and 6 as verified before (see "already-verified documents" below); stage 5 now,
    // under the bound key as imported then.
    const answer = await verifyNonceAnswerJws(options.nonce.answer, known.signingKey);
    checkNonceAnswer(answer, known.fields.documentDigest, options);
    return enclaveFor(known.fields);
  }
  const doc = parseDocument(documentJws);

  // The independent cryptographic operations below are started together, so their WebCrypto work
  // (a thread-pool job each) overlaps instead of queueing one after another; this roughly halves
  // the time to re-verify an already-verified enclave (scripts/bench-attestation.ts). Nothing is
  // *used* before its stage: each result is awaited, and so looked at, only in the numbered stage
  // below, in DESIGN.md's order, so the first failing stage is still the one reported. `settled`
  // keeps a rejection from surfacing before (or instead of) an earlier stage's failure.
  const evidenceResult = settled(() =>
    verifyDocumentEvidence(doc.evidence, options.anchors, options.at, options.collateral ?? null),
  );
  const manifestDigestResult = settled(() => options.manifest.digest(doc.payload.manifest));
  const signingKey = importJWK({ kty: "OKP", crv: "Ed25519", x: base64url.encode(doc.signingPublicKey) }, "EdDSA");
  const documentResult = settled(() => verifyJwsWithKey(documentJws, signingKey, DOCUMENT_TYPE, "document"));
  const documentDigestResult = settled(() => sha256(utf8(documentJws)));
  const answerResult = settled(() => verifyNonceAnswerJws(options.nonce.answer, signingKey));
  // The manifest check needs the verified evidence's platform, so it starts as soon as that is known.
  const manifestResult = settled(async () => {
    const evidence = unwrap(await evidenceResult);
    return options.manifest.verify(doc.payload.manifest, {
      tee: doc.evidence.type,
      simulated: evidence.simulated,
      evidence: manifestTeeEvidenceOfVerified(evidence.evidence),
    });
  });

  // 1. Evidence: hardware signature and chain to a pinned root, at `at`.
  const verified = unwrap(await evidenceResult);
  evidenceVerified({ tee: doc.evidence.type, simulated: verified.simulated, measurement: verified.measurement });

  // 2. Appraisal: the TEE's own fields against the client's policy; every violation is listed.
  // REPORT_DATA is checked by the binding stage below, so it is explicitly not appraised here.
  // On Azure CVMs the hardware report measures Microsoft's paravisor, not the guest image; the
  // image is appraised through the vTPM PCRs the policy's azure section pins (at least one).
  const appraisal = appraise(verified.evidence, options.policy, { now: options.at, expectedReportData: null });
  if (!appraisal.ok) {
    const first = appraisal.violations[0];
    const list = appraisal.violations.map((v) => describeViolation(v, appraisal.simulated)).join("; ");
    throw new AttestationError("appraise", first?.code ?? "APPRAISAL_FAILED", `policy violations: ${list}`);
  }

  // 3. Binding: REPORT_DATA must be the hash of this document's keys and manifest (on Azure, the
  // vTPM quote's qualifying data its SHA-256).
  const manifestDigest = unwrap(await manifestDigestResult);
  const reportData = await checkReportDataBinding(verified.bound, {
    signingPublicKey: doc.signingPublicKey,
    sealingPublicKey: doc.sealingPublicKey,
    manifestDigest,
  });

  // 4. Document: the JWS verifies under the bound Ed25519 key.
  unwrap(await documentResult);
  const documentDigest = toHex(unwrap(await documentDigestResult));

  // 5. Nonce: a fresh answer to the client's own nonce, by the same key, about this document.
  checkNonceAnswer(unwrap(await answerResult), documentDigest, options);

  // 6. Manifest: operator signature, model digest, platform, the tee section against the evidence.
  const manifest = unwrap(await manifestResult);

  // A frozen copy: nothing of it is shared with what the stages returned (a ManifestCheck's summary).
  const fields: EnclaveFields = deepFrozen(
    structuredClone({
      tee: doc.evidence.type,
      simulated: verified.simulated,
      measurement: verified.measurement,
      reportData: toHex(reportData),
      sealingPublicKey: doc.sealingPublicKey,
      signingPublicKey: doc.signingPublicKey,
      manifestDigest: toHex(manifestDigest),
      documentDigest,
      manifest,
      details: verified.details,
    }),
  );
  if (collateralTexts !== null) {
    rememberVerifiedDocument(
      documentJws,
      options,
      collateralTexts,
      { fields, signingKey },
      verified.certificatesNotAfter,
    );
  }
  return enclaveFor(fields);
}

type EnclaveFields = Parameters<typeof VerifiedEnclave.create>[0];

/**
 * A VerifiedEnclave of `fields` (deepFrozen) for one caller: its own copies of the two keys (a
 * Uint8Array cannot be frozen), everything else shared and frozen, so no caller can change what
 * another is given (a remembered verification's included).
 */
function enclaveFor(fields: EnclaveFields): VerifiedEnclave {
  return VerifiedEnclave.create({
    ...fields,
    sealingPublicKey: fields.sealingPublicKey.slice(),
    signingPublicKey: fields.signingPublicKey.slice(),
  });
}

/** `value` with its objects and arrays frozen, in place (byte arrays, which cannot be, are left). */
function deepFrozen<T>(value: T): T {
  if (typeof value !== "object" || value === null || ArrayBuffer.isView(value)) return value;
  for (const member of Object.values(value)) deepFrozen(member);
  return Object.freeze(value);
}

/** The nonce answer's payload (an object: strictPartObject) checked against this client's nonce and `documentDigest`. */
function checkNonceAnswer(
  answer: { eat_nonce?: unknown; doc?: unknown; iat?: unknown },
  documentDigest: string,
  options: DocumentVerificationOptions,
): void {
  if (typeof answer.eat_nonce !== "string") {
    fail(
      "nonce",
      "NONCE_MALFORMED",
      `nonce answer eat_nonce: expected a string, found ${describeValue(answer.eat_nonce)}`,
    );
  }
  // Strictly, as every other base64url value of the document and the answer: one spelling each.
  const answeredNonce = strictBase64url(answer.eat_nonce, "nonce answer eat_nonce", "nonce");
  if (!constantTimeEqual(answeredNonce, options.nonce.value)) {
    fail("nonce", "NONCE_MISMATCH", "nonce answer: eat_nonce is not the nonce this client sent");
  }
  if (answer.doc !== documentDigest) {
    fail(
      "nonce",
      "NONCE_DOCUMENT_MISMATCH",
      `nonce answer doc: expected ${documentDigest}, found ${describeUntrusted(answer.doc)}`,
    );
  }
  // A whole number of seconds, as createNonceAnswer writes it: not a text or an array Number() would read.
  if (typeof answer.iat !== "number" || !Number.isSafeInteger(answer.iat)) {
    fail(
      "nonce",
      "NONCE_MALFORMED",
      `nonce answer iat: expected a whole number of seconds (a safe integer), found ${describeValue(answer.iat)}`,
    );
  }
  const skew = Math.abs(answer.iat * 1000 - options.at.getTime());
  if (skew > options.maxClockSkewSeconds * 1000) {
    fail(
      "nonce",
      "NONCE_STALE",
      `nonce answer iat: expected within ${options.maxClockSkewSeconds}s of ${options.at.toISOString()}, found ${describeUntrusted(answer.iat)}`,
    );
  }
}

// --- already-verified documents -------------------------------------------------------------------
//
// A client re-attests the same enclave often (reconnects, key-change retries, several sessions).
// Stages 1–4 and 6 depend only on the document's exact bytes, the policy's content, the trust
// anchors, the manifest check and the verification time; stage 5 (the nonce) is fresh every call.
// So for the *same* document bytes, the *same* policy content (the same parsed policy, which is
// frozen, or one with the same JSON) and collateral (its texts, read once per call: readCollateral),
// the *same* anchors (object identity), an equal manifest check (`ManifestCheck.identity`), and a time
// `at` no earlier than the first verification and at most REVERIFY_WINDOW_MS later (and never more
// than the policy's maximumVerificationSkewSeconds, nor past any certificate's notAfter), the
// earlier result stands: every certificate valid at both ends of that interval is valid in between,
// and appraisal is a pure function of the same inputs. Only successes are remembered. The nonce
// answer is always verified under the bound key and compared with this call's nonce.

const REVERIFY_WINDOW_MS = 30_000;
/** How many verified documents are remembered at most; the least recently verified is forgotten first. */
export const MAX_REMEMBERED_DOCUMENTS = 32;

interface RememberedDocument {
  /** The parsed policy it was verified under (parseAttestationPolicy's: frozen), and its JSON. */
  readonly policy: AttestationPolicy;
  readonly policyJson: string;
  /** The texts of the collateral verified with it (readCollateral). */
  readonly collateral: CollateralTexts;
  readonly anchors: TrustAnchors;
  readonly manifestIdentity: string;
  readonly verifiedAt: number;
  readonly validUntil: number;
  /** deepFrozen; handed out only through enclaveFor. */
  readonly fields: EnclaveFields;
  /** fields.signingPublicKey, imported (a CryptoKey cannot be changed): the next nonce answer's key. */
  readonly signingKey: Promise<CryptoKey | Uint8Array>;
}

const remembered = new Map<string, RememberedDocument>();

/** Forgets every remembered verification (tests, benchmarks). */
export function clearVerifiedDocumentCache(): void {
  remembered.clear();
}

function rememberVerifiedDocument(
  documentJws: string,
  options: DocumentVerificationOptions,
  collateral: CollateralTexts,
  verified: Pick<RememberedDocument, "fields" | "signingKey">,
  certificatesNotAfter: number,
): void {
  const window = Math.min(REVERIFY_WINDOW_MS, options.policy.maximumVerificationSkewSeconds * 1000);
  if (window <= 0) return;
  // A Map keeps the order keys were first set in: a document verified again is taken out first, so
  // that it goes last (newest), and no other is forgotten to make room for it.
  remembered.delete(documentJws);
  if (remembered.size >= MAX_REMEMBERED_DOCUMENTS) remembered.delete(remembered.keys().next().value as string);
  remembered.set(documentJws, {
    policy: options.policy,
    policyJson: policyJson(options.policy),
    collateral,
    anchors: options.anchors,
    manifestIdentity: options.manifest.identity,
    verifiedAt: options.at.getTime(),
    validUntil: Math.min(options.at.getTime() + window, certificatesNotAfter),
    fields: verified.fields,
    signingKey: verified.signingKey,
  });
}

/**
 * A parsed policy's JSON, made once per policy object: parsed policies are deep-frozen
 * (registeredParser), so an object's JSON cannot change after it is first made.
 */
const policyJsons = new WeakMap<AttestationPolicy, string>();
function policyJson(policy: AttestationPolicy): string {
  let json = policyJsons.get(policy);
  if (json === undefined) {
    json = JSON.stringify(policy);
    policyJsons.set(policy, json);
  }
  return json;
}

/** The remembered verification of exactly this document under exactly these options, if any. */
function recall(
  documentJws: string,
  options: DocumentVerificationOptions,
  collateral: CollateralTexts | null,
): RememberedDocument | null {
  const entry = remembered.get(documentJws);
  if (entry === undefined) return null;
  const at = options.at.getTime();
  if (
    entry.anchors !== options.anchors ||
    entry.manifestIdentity !== options.manifest.identity ||
    at < entry.verifiedAt ||
    at > entry.validUntil ||
    (entry.policy !== options.policy && entry.policyJson !== policyJson(options.policy)) ||
    collateral === null ||
    !sameTexts(entry.collateral, collateral)
  ) {
    return null;
  }
  return entry;
}

/**
 * What collateral a remembered verification was verified with: the TDX texts in wire order
 * (tcbInfo, tcbInfoIssuerChain, qeIdentity, qeIdentityIssuerChain, then the CRLs), [] for none.
 * Compared text by text (under a µs where its JSON took about 14 µs): each attest parses the
 * collateral again, so the same object is rarely seen twice.
 */
type CollateralTexts = readonly string[];

/**
 * `given` read once: the copy to verify (frozen, of the same texts) and its texts. Collateral built
 * in code with a member that is not a string (the parser admits none) is verified as given, and
 * its verification is never remembered (texts null): only strings compare by content.
 */
function readCollateral(given: AttestationCollateral | null | undefined): {
  collateral: AttestationCollateral | null | undefined;
  texts: CollateralTexts | null;
} {
  try {
    return readCollateralMembers(given);
  } catch (error) {
    // A getter (or a list's iterator) of collateral built in code: refused as collateral that
    // cannot be verified, like any other malformed collateral, not passed on as a bare error.
    throw new ParseError("COLLATERAL_MALFORMED", "collateral: expected data, found a member that throws when read", {
      cause: error,
    });
  }
}

function readCollateralMembers(given: AttestationCollateral | null | undefined): ReturnType<typeof readCollateral> {
  const tdx: unknown = typeof given === "object" && given !== null ? given.tdx : undefined;
  // None (the evidence stage reads only `tdx`): the same as null.
  if (tdx === undefined) return { collateral: null, texts: [] };
  if (tdx === null || typeof tdx !== "object") return { collateral: given, texts: null };
  // Each member read once, as the CRL list (copied).
  const { tcbInfo, tcbInfoIssuerChain, qeIdentity, qeIdentityIssuerChain, crls: list } = tdx as Record<string, unknown>;
  if (!Array.isArray(list)) return { collateral: given, texts: null };
  const crls: unknown[] = [...list];
  if (
    typeof tcbInfo !== "string" ||
    typeof tcbInfoIssuerChain !== "string" ||
    typeof qeIdentity !== "string" ||
    typeof qeIdentityIssuerChain !== "string" ||
    !crls.every((crl): crl is string => typeof crl === "string")
  ) {
    return { collateral: given, texts: null };
  }
  const copy = { tcbInfo, tcbInfoIssuerChain, qeIdentity, qeIdentityIssuerChain, crls: Object.freeze(crls) };
  return {
    collateral: Object.freeze({ tdx: Object.freeze(copy) }),
    texts: [tcbInfo, tcbInfoIssuerChain, qeIdentity, qeIdentityIssuerChain, ...crls],
  };
}

function sameTexts(a: CollateralTexts, b: CollateralTexts): boolean {
  return a.length === b.length && a.every((text, i) => text === b[i]);
}
