/**
 * The audit trail (DESIGN.md "The zero-trust pipeline", step 5): for every request, blocked or
 * allowed, the enclave writes one record of hashes, decisions and counts — never plaintext —
 * hash-chained and signed with its attested per-boot Ed25519 key. The host stores the lines
 * (host/audit-store.ts); anyone holding the enclave's public key (the attestation document's
 * `sig_jwk`) can check that no record was removed, reordered, duplicated or altered.
 *
 * Format (version 1):
 *  - A record is a JSON object with integer, string, null, array and object values only. Its
 *    canonical bytes are UTF-8 JSON with object keys sorted by UTF-16 code units, no whitespace
 *    (`canonicalJson`). Record hash = SHA-256(canonical bytes).
 *  - `prevHash` is the previous record's hash; the first record of a boot (seq 0) has
 *    `prevHash = SHA-256("cloister/audit/genesis/v1\0" ‖ enclave Ed25519 public key)`, so a log
 *    cannot be moved under another boot's key.
 *  - Signature: Ed25519 (tweetnacl `sign.detached`) over `"cloister/audit/record/v1\0" ‖ canonical
 *    bytes`. Ed25519 is deterministic, so the writer may compute the same bytes with Node's native
 *    Ed25519 (about 0.05 ms instead of about 5 ms in tweetnacl's JavaScript, once per request);
 *    see `ed25519Signer`. The domain tag keeps an audit signature from ever being valid as another message of
 *    the same key (attestation documents and nonce answers are JWS signing inputs, which cannot
 *    start with the tag either).
 *  - One line per record: the canonical JSON of `{record, sig}` with `sig` as 128 hex characters.
 *    A verifier accepts only lines that are byte-for-byte canonical (no duplicate keys, no
 *    re-formatting), so every reader sees the bytes that were signed.
 *  - A checkpoint (`AuditWriter.checkpoint(nonce)`) is a signed `{v: 2, count, lastRecordHash,
 *    nonce, time}` under the tag `"cloister/audit/checkpoint/v2\0"`, one canonical line like a
 *    record; given one, a verifier also detects records cut from the end of the log, which a chain
 *    alone cannot show. `nonce` is the hex of the asker's fresh 16..64 random bytes (or null): the
 *    host relays checkpoints, and an old one replayed would hide every record written since, so a
 *    verifier asks with its own nonce and accepts only a checkpoint that carries it
 *    (`verifyAuditCheckpoint(line, key, {nonce})`).
 *
 * Prompt and response hashes are keyed, not plain SHA-256: a host holding a plain hash could
 * confirm a guessed low-entropy prompt ("yes", a known template) by hashing candidates. Each boot
 * draws a secret 32-byte commitment key that never leaves the enclave. For each request the writer
 * derives an *opening* key = HMAC-SHA256(commitment key, "cloister/audit/opening/v1\0" ‖
 * requestIdHash), and records promptHmac = HMAC-SHA256(opening, "cloister/audit/prompt/v1\0" ‖
 * prompt bytes) (likewise `response`). The enclave gives the opening (`openingFor`) to the client
 * inside the sealed final frame (never to the host): with it, the client — who knows its prompt —
 * can show that a record is about its prompt (`auditCommitment`, `cloister audit find`), while the
 * host, lacking it, cannot test guesses. `requestIdHash` is a plain tagged SHA-256, so a client can find its
 * record; request ids are 16 random bytes (sealed/request.ts), so the hash reveals nothing.
 *
 * What this does not give: a chain shows order and completeness *of what was written*; an enclave
 * that is restarted starts a new chain under a new key (one log per boot). Truncation at the end
 * is only detected against a checkpoint or an expected count and last hash. Times come from the
 * enclave's clock, which the host may influence.
 */

import type * as NodeCrypto from "node:crypto";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import nacl from "tweetnacl";
import { bytesEqual, concatBytes, fromHex, toHex } from "../../attestation/bytes.ts";
import { jsonSyntaxProblem } from "../../attestation/json-text.ts";
import { describeUntrusted } from "../../attestation/untrusted-text.ts";
import { describeValue } from "../../manifests/issues.ts";
import { PII_ENTITIES } from "../../manifests/schema.ts";
import { canonicalScalar, isCanonicalTime, smallOrderKey } from "../../sealed/receipt.ts";
import { GENESIS_TAG, RECORD_TAG } from "./audit-tags.ts";
import { AuditKeyInvalidError, AuditRecordInvalidError, type AuditVerifyCode } from "./errors.ts";
import type { PiiFinding } from "./pii.ts";

export const AUDIT_RECORD_VERSION = 1;
const CHECKPOINT_TAG = "cloister/audit/checkpoint/v2\0";
const REQUEST_ID_TAG = "cloister/audit/request-id/v1\0";
const OPENING_TAG = "cloister/audit/opening/v1\0";
const COMMITMENT_TAGS = { prompt: "cloister/audit/prompt/v1\0", response: "cloister/audit/response/v1\0" } as const;

export interface AuditUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
}

export interface AuditRecord {
  readonly v: 1;
  /** 0 for the first record of a boot, then +1 per record. */
  readonly seq: number;
  /** ISO-8601 time of writing (the enclave's clock). */
  readonly time: string;
  /** SHA-256("cloister/audit/request-id/v1\0" ‖ request id), hex. */
  readonly requestIdHash: string;
  /** The API key id the host authenticated (the host knows it already). */
  readonly tenant: string;
  readonly decision: "allow" | "block";
  /** Which step blocked: null when allowed. */
  readonly blockedBy: "policy" | "pii" | null;
  /** The policy rule that decided; null when defaultAction decided or PII blocked. */
  readonly ruleId: string | null;
  /**
   * Entity types and counts only. Exact counts, any safe integer: unlike the final frame's `redacted`
   * (sealed/frames.ts, capped at MAX_REDACTION_COUNT to keep that frame one size), a record is of no
   * fixed size, and it is the operator's (docs/protocol.md).
   */
  readonly piiFindings: readonly PiiFinding[];
  /** Error code when an allowed request failed in inference (e.g. ENGINE_BUSY); else null. */
  readonly error: string | null;
  /** Keyed commitment to the prompt (see module comment); null when not recorded. */
  readonly promptHmac: string | null;
  readonly responseHmac: string | null;
  /** Token counts; null when the request never reached the model. */
  readonly usage: AuditUsage | null;
  readonly modelSha256: string;
  /** SHA-256 of the attestation document this enclave published. */
  readonly attestationDigest: string;
  readonly prevHash: string;
}

export interface AuditEntry {
  /** The sealed request's id (32 hex characters in protocol v1; any non-empty string is accepted). */
  readonly requestId: string;
  readonly tenant: string;
  readonly decision: "allow" | "block";
  readonly blockedBy: "policy" | "pii" | null;
  readonly ruleId: string | null;
  readonly piiFindings: readonly PiiFinding[];
  readonly error: string | null;
  /**
   * The prompt as the client can rebuild it (the text the policy saw, before redaction), or null.
   * Ignored (recorded as null) when the manifest's `recordPromptHash` is false.
   */
  readonly prompt: string | Uint8Array | null;
  /** The full answer, or null (blocked, failed). Ignored when `recordResponseHash` is false. */
  readonly response: string | Uint8Array | null;
  readonly usage: AuditUsage | null;
}

export interface AuditWriterOptions {
  /** tweetnacl sign secret key (64 bytes: seed ‖ public key), the attested per-boot key. */
  readonly signingSecretKey: Uint8Array;
  /** The manifest's model SHA-256 (hex). */
  readonly modelSha256: string;
  /** SHA-256 of the attestation document (hex). */
  readonly attestationDigest: string;
  /** The manifest's `audit` settings (`recordPromptHash`, `recordResponseHash` are read). */
  readonly settings: { readonly recordPromptHash: boolean; readonly recordResponseHash: boolean };
  /** Clock; default `() => new Date()`. */
  readonly now?: () => Date;
  /** 32-byte per-boot commitment key; default fresh random. Inject only in tests. */
  readonly commitmentKey?: Uint8Array;
}

export interface WrittenAuditRecord {
  readonly record: AuditRecord;
  /** The line to hand to the host (no trailing newline). */
  readonly line: string;
  /**
   * The per-request opening key for promptHmac/responseHmac. Secret from the host: give it only to
   * the client, inside the sealed answer, or drop it.
   */
  readonly opening: Uint8Array;
}

export interface AuditCheckpoint {
  /** 2: with `nonce` (version 1, without it, never left the enclave). */
  readonly v: 2;
  /** Records written so far (= seq of the next record). */
  readonly count: number;
  /** Hash of the last record written; the genesis value when count is 0. */
  readonly lastRecordHash: string;
  /** The asker's nonce (hex), binding the checkpoint to one fresh question; null when none was given. */
  readonly nonce: string | null;
  readonly time: string;
}

/** Checkpoint nonces: 16..64 bytes (hex 32..128 characters). */
export const AUDIT_CHECKPOINT_NONCE_BYTES = { min: 16, max: 64 } as const;
const NONCE_HEX = /^(?:[0-9a-f]{2}){16,64}$/;

const encoder = new TextEncoder();
const HEX64 = /^[0-9a-f]{64}$/;
const ERROR_CODE = /^[A-Z][A-Z0-9_]{0,63}$/;
const RULE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

function bytesOf(value: string | Uint8Array): Uint8Array {
  return typeof value === "string" ? encoder.encode(value) : new Uint8Array(value);
}

/**
 * Canonical JSON: sorted keys (UTF-16 code-unit order), no whitespace, safe integers only (no
 * floats, whose text form is not canonical), no undefined. Throws on anything else.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return "null";
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isSafeInteger(value)) throw new TypeError("canonical JSON: expected a safe integer");
      return String(value);
    case "object": {
      if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
      const entries = Object.keys(value)
        .sort()
        .map((key) => `${JSON.stringify(key)}:${canonicalJson((value as Record<string, unknown>)[key])}`);
      return `{${entries.join(",")}}`;
    }
    default:
      throw new TypeError(`canonical JSON: unsupported ${typeof value}`);
  }
}

/** SHA-256 of the record's canonical bytes (hex): the next record's `prevHash`. */
export function auditRecordHash(record: AuditRecord): string {
  return toHex(sha256(encoder.encode(canonicalJson(record))));
}

/** `prevHash` of seq 0 for the log of the enclave with this Ed25519 public key. */
export function auditGenesisHash(signingPublicKey: Uint8Array): string {
  return toHex(sha256(concatBytes(encoder.encode(GENESIS_TAG), checkPublicKey(signingPublicKey))));
}

/** SHA-256 of the tagged request id (hex): how a client finds its record. */
export function auditRequestIdHash(requestId: string): string {
  return toHex(sha256(encoder.encode(REQUEST_ID_TAG + requestId)));
}

/** The keyed commitment a record holds, recomputed by whoever has the opening key (hex). */
export function auditCommitment(
  opening: Uint8Array,
  kind: "prompt" | "response",
  content: string | Uint8Array,
): string {
  if (opening.length !== 32) throw new AuditKeyInvalidError("audit opening key", "32 bytes", `${opening.length} bytes`);
  return toHex(hmac(sha256, opening, concatBytes(encoder.encode(COMMITMENT_TAGS[kind]), bytesOf(content))));
}

/**
 * What makes `key` no enclave Ed25519 public key a signature may be checked under, or null: not 32
 * bytes, or a small-order point (under which signatures that verify can be made for any message
 * without a secret; tweetnacl alone would take them). Each reader throws its own error with it
 * (checkPublicKey: AUDIT_KEY_INVALID; the audit command's document reader: AUDIT_DOCUMENT_INVALID).
 */
export function ed25519PublicKeyProblem(key: Uint8Array): { readonly expected: string; readonly found: string } | null {
  if (!(key instanceof Uint8Array) || key.length !== nacl.sign.publicKeyLength) {
    return { expected: "32 bytes", found: `${key?.length ?? 0} bytes` };
  }
  if (smallOrderKey(key)) return { expected: "a point of large order", found: "a small-order point" };
  return null;
}

function checkPublicKey(key: Uint8Array): Uint8Array {
  const problem = ed25519PublicKeyProblem(key);
  if (problem !== null) throw new AuditKeyInvalidError("enclave Ed25519 public key", problem.expected, problem.found);
  return new Uint8Array(key);
}

/**
 * A synchronous Ed25519 verifier for one public key: Node's native Ed25519 where this runs on Node
 * (about 0.1 ms a signature), else tweetnacl (about 6 ms in pure JS, so an hour for a long log).
 * The two agree on every signature whose S is reduced below the group order; tweetnacl also
 * accepts S + L, which Node refuses, so such signatures are refused before either runs (as a
 * receipt's are, sealed/receipt.ts): a line verifies alike wherever it is checked.
 */
export function ed25519Verifier(publicKey: Uint8Array): (message: Uint8Array, signature: Uint8Array) => boolean {
  const key = new Uint8Array(publicKey);
  let check = (message: Uint8Array, signature: Uint8Array) => nacl.sign.detached.verify(message, signature, key);
  if (nodeCrypto !== undefined) {
    try {
      const keyObject = nodeCrypto.createPublicKey({
        key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(key).toString("base64url") },
        format: "jwk",
      });
      const verify = nodeCrypto.verify;
      check = (message, signature) => verify(null, message, keyObject, signature);
    } catch {
      // a key Node does not take (not a point's encoding): tweetnacl decides, as before
    }
  }
  return (message, signature) => signature.length === 64 && canonicalScalar(signature) && check(message, signature);
}

/**
 * Parses an Ed25519 public key given as 64 hex characters, refusing a small-order one as the
 * verifier would (so a command refuses it with its other --key errors, before reading a log).
 */
export function parseAuditPublicKeyHex(hex: string): Uint8Array {
  const trimmed = hex.trim().toLowerCase();
  if (!HEX64.test(trimmed)) {
    throw new AuditKeyInvalidError("enclave Ed25519 public key", "64 hex characters", `${trimmed.length} characters`);
  }
  return checkPublicKey(fromHex(trimmed));
}

function signedBytes(tag: string, canonical: string): Uint8Array {
  return encoder.encode(tag + canonical);
}

/** Bytes of RECORD_TAG at the start of a record's signed bytes; its canonical bytes follow. */
const RECORD_TAG_BYTES = encoder.encode(RECORD_TAG).length;

/**
 * A record's line: `canonicalJson({record, sig})`, put around the record's canonical JSON instead
 * of building it again ("record" sorts before "sig"; a hex signature needs no escaping).
 */
function recordLine(canonicalRecord: string, sigHex: string): string {
  return `{"record":${canonicalRecord},"sig":"${sigHex}"}`;
}

// --- writer ---------------------------------------------------------------------------------------

// Node's crypto module when this runs on Node (looked up without a static import, so the module
// still loads in other runtimes, where tweetnacl signs).
const nodeCrypto = (
  globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }
).process?.getBuiltinModule?.("node:crypto") as typeof NodeCrypto | undefined;

// PKCS#8 PrivateKeyInfo of an Ed25519 key (RFC 8410): this prefix, then the 32-byte seed.
const ED25519_PKCS8_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
]);

/**
 * A synchronous Ed25519 signer for a tweetnacl secret key (seed ‖ public key) whose signatures are
 * byte-for-byte tweetnacl's `sign.detached` (Ed25519 is deterministic; test/pipeline/audit-signer
 * checks it on random keys and messages). Uses Node's native Ed25519 when available and when the
 * key's stored public half is the one its seed derives (tweetnacl hashes the stored half into the
 * signature, Node the derived one); otherwise tweetnacl itself.
 */
export function ed25519Signer(secretKey: Uint8Array): (message: Uint8Array) => Uint8Array {
  const key = new Uint8Array(secretKey);
  const viaTweetnacl = (message: Uint8Array) => nacl.sign.detached(message, key);
  if (nodeCrypto === undefined) return viaTweetnacl;
  const pkcs8 = new Uint8Array(ED25519_PKCS8_PREFIX.length + 32);
  pkcs8.set(ED25519_PKCS8_PREFIX, 0);
  pkcs8.set(key.subarray(0, 32), ED25519_PKCS8_PREFIX.length);
  let privateKey: NodeCrypto.KeyObject;
  try {
    privateKey = nodeCrypto.createPrivateKey({ key: Buffer.from(pkcs8.buffer), format: "der", type: "pkcs8" });
    const jwk = nodeCrypto.createPublicKey(privateKey).export({ format: "jwk" });
    if (jwk.x !== Buffer.from(key.subarray(32)).toString("base64url")) return viaTweetnacl;
  } catch {
    return viaTweetnacl;
  } finally {
    pkcs8.fill(0);
  }
  const sign = nodeCrypto.sign;
  return (message) => new Uint8Array(sign(null, message, privateKey));
}

/**
 * Writes the enclave's audit records in order. `record` is synchronous, so records are numbered and
 * chained in the order of the calls; the caller must deliver the lines to the host in that order
 * (one queue), or the verifier reports them as reordered.
 */
export class AuditWriter {
  readonly #sign: (message: Uint8Array) => Uint8Array;
  readonly #publicKey: Uint8Array;
  readonly #commitmentKey: Uint8Array;
  readonly #modelSha256: string;
  readonly #attestationDigest: string;
  readonly #recordPrompt: boolean;
  readonly #recordResponse: boolean;
  readonly #now: () => Date;
  #seq = 0;
  #prevHash: string;

  constructor(options: AuditWriterOptions) {
    if (
      !(options.signingSecretKey instanceof Uint8Array) ||
      options.signingSecretKey.length !== nacl.sign.secretKeyLength
    ) {
      throw new AuditKeyInvalidError("audit signing secret key", "64 bytes (tweetnacl sign key pair)", "another size");
    }
    this.#publicKey = nacl.sign.keyPair.fromSecretKey(options.signingSecretKey).publicKey;
    this.#sign = ed25519Signer(options.signingSecretKey);
    const commitmentKey = options.commitmentKey ?? nacl.randomBytes(32);
    if (commitmentKey.length !== 32) {
      throw new AuditKeyInvalidError("audit commitment key", "32 bytes", `${commitmentKey.length} bytes`);
    }
    this.#commitmentKey = new Uint8Array(commitmentKey);
    if (!HEX64.test(options.modelSha256))
      throw new AuditRecordInvalidError("modelSha256", "64 lower-case hex characters", options.modelSha256);
    if (!HEX64.test(options.attestationDigest)) {
      throw new AuditRecordInvalidError("attestationDigest", "64 lower-case hex characters", options.attestationDigest);
    }
    this.#modelSha256 = options.modelSha256;
    this.#attestationDigest = options.attestationDigest;
    this.#recordPrompt = options.settings.recordPromptHash;
    this.#recordResponse = options.settings.recordResponseHash;
    this.#now = options.now ?? (() => new Date());
    this.#prevHash = auditGenesisHash(this.#publicKey);
  }

  /** The Ed25519 public key records are signed with. */
  get publicKey(): Uint8Array {
    return new Uint8Array(this.#publicKey);
  }

  /** True when records carry keyed commitments (promptHmac or responseHmac) an opening can open. */
  get commits(): boolean {
    return this.#recordPrompt || this.#recordResponse;
  }

  /** True when a record with a prompt carries its promptHmac (also a blocked request's record). */
  get commitsPrompts(): boolean {
    return this.#recordPrompt;
  }

  /**
   * The opening key of the record this request id will have: given to the client inside the sealed
   * final frame (never to the host), so the client can show its record is about its prompt.
   */
  openingFor(requestId: string): Uint8Array {
    return this.#opening(auditRequestIdHash(requestId));
  }

  #opening(requestIdHash: string): Uint8Array {
    return hmac(sha256, this.#commitmentKey, concatBytes(encoder.encode(OPENING_TAG), fromHex(requestIdHash)));
  }

  /** Builds, chains and signs the record of one request. */
  record(entry: AuditEntry): WrittenAuditRecord {
    checkEntry(entry);
    const requestIdHash = auditRequestIdHash(entry.requestId);
    const opening = this.#opening(requestIdHash);
    const record: AuditRecord = {
      v: 1,
      seq: this.#seq,
      time: this.#time(),
      requestIdHash,
      tenant: entry.tenant,
      decision: entry.decision,
      blockedBy: entry.blockedBy,
      ruleId: entry.ruleId,
      piiFindings: entry.piiFindings.map((f) => ({ entity: f.entity, count: f.count })),
      error: entry.error,
      promptHmac: this.#recordPrompt && entry.prompt !== null ? auditCommitment(opening, "prompt", entry.prompt) : null,
      responseHmac:
        this.#recordResponse && entry.response !== null ? auditCommitment(opening, "response", entry.response) : null,
      usage:
        entry.usage === null
          ? null
          : { promptTokens: entry.usage.promptTokens, completionTokens: entry.usage.completionTokens },
      modelSha256: this.#modelSha256,
      attestationDigest: this.#attestationDigest,
      prevHash: this.#prevHash,
    };
    const canonical = canonicalJson(record);
    const signed = signedBytes(RECORD_TAG, canonical);
    const sig = toHex(this.#sign(signed));
    this.#seq += 1;
    this.#prevHash = toHex(sha256(signed.subarray(RECORD_TAG_BYTES)));
    return { record, line: recordLine(canonical, sig), opening };
  }

  /**
   * A signed head of the log so far, for truncation checks: one JSON line. `nonce` (16..64 bytes)
   * is the asker's freshness value, copied into the signed checkpoint.
   */
  checkpoint(nonce: Uint8Array | null = null): string {
    if (
      nonce !== null &&
      (!(nonce instanceof Uint8Array) ||
        nonce.length < AUDIT_CHECKPOINT_NONCE_BYTES.min ||
        nonce.length > AUDIT_CHECKPOINT_NONCE_BYTES.max)
    ) {
      throw new AuditRecordInvalidError(
        "checkpoint nonce",
        `${AUDIT_CHECKPOINT_NONCE_BYTES.min}..${AUDIT_CHECKPOINT_NONCE_BYTES.max} bytes`,
        nonce,
      );
    }
    const checkpoint: AuditCheckpoint = {
      v: 2,
      count: this.#seq,
      lastRecordHash: this.#prevHash,
      nonce: nonce === null ? null : toHex(nonce),
      time: this.#time(),
    };
    const sig = toHex(this.#sign(signedBytes(CHECKPOINT_TAG, canonicalJson(checkpoint))));
    return canonicalJson({ checkpoint, sig });
  }

  #time(): string {
    const t = this.#now();
    if (!(t instanceof Date) || Number.isNaN(t.getTime()))
      throw new AuditRecordInvalidError("time", "a valid Date from the clock", t);
    return t.toISOString();
  }
}

function checkEntry(e: AuditEntry): void {
  if (typeof e.requestId !== "string" || e.requestId.length === 0 || e.requestId.length > 256) {
    throw new AuditRecordInvalidError("requestId", "a string of 1..256 characters", e.requestId);
  }
  if (typeof e.tenant !== "string" || e.tenant.length === 0 || e.tenant.length > 200) {
    throw new AuditRecordInvalidError("tenant", "an API key id of 1..200 characters", e.tenant);
  }
  const broken = decisionRuleBroken(e);
  if (broken !== null) throw new AuditRecordInvalidError(broken.field, broken.expected, e[broken.field]);
  if (!isFindings(e.piiFindings)) {
    throw new AuditRecordInvalidError(
      "piiFindings",
      "a list of {entity, count} with distinct entities and counts ≥ 1",
      e.piiFindings,
    );
  }
  if (e.usage !== null && !isUsage(e.usage)) {
    throw new AuditRecordInvalidError(
      "usage",
      "{promptTokens, completionTokens} non-negative integers, or null",
      e.usage,
    );
  }
  for (const field of ["prompt", "response"] as const) {
    const v = e[field];
    if (v !== null && typeof v !== "string" && !(v instanceof Uint8Array)) {
      throw new AuditRecordInvalidError(field, "a string, bytes or null", v);
    }
  }
}

/**
 * The rules between a record's decision, blockedBy, ruleId and error, which the writer keeps
 * (checkEntry) and the verifier holds signed records to (recordShapeProblem): the first broken, as
 * the field and what it should be, or null.
 */
type DecisionFields = Readonly<Record<"decision" | "blockedBy" | "ruleId" | "error", unknown>>;

function decisionRuleBroken(
  r: DecisionFields,
): { readonly field: "decision" | "blockedBy" | "ruleId" | "error"; readonly expected: string } | null {
  if (r.decision !== "allow" && r.decision !== "block") return { field: "decision", expected: '"allow" or "block"' };
  if (r.decision === "allow" && r.blockedBy !== null)
    return { field: "blockedBy", expected: "null (decision is allow)" };
  if (r.decision === "block" && r.blockedBy !== "policy" && r.blockedBy !== "pii")
    return { field: "blockedBy", expected: '"policy" or "pii" (decision is block)' };
  if (r.ruleId !== null && (typeof r.ruleId !== "string" || !RULE_ID.test(r.ruleId)))
    return { field: "ruleId", expected: "a manifest rule id or null" };
  if (r.blockedBy === "pii" && r.ruleId !== null) return { field: "ruleId", expected: "null (blocked for PII)" };
  if (r.error !== null && (typeof r.error !== "string" || !ERROR_CODE.test(r.error)))
    return { field: "error", expected: "an error code (A-Z, 0-9, _) or null" };
  if (r.error !== null && r.decision !== "allow") return { field: "error", expected: "null (decision is block)" };
  return null;
}

function isFindings(value: unknown): value is readonly PiiFinding[] {
  if (!Array.isArray(value)) return false;
  const seen = new Set<string>();
  for (const f of value as unknown[]) {
    if (typeof f !== "object" || f === null || Object.keys(f).length !== 2) return false;
    const { entity, count } = f as { entity?: unknown; count?: unknown };
    if (typeof entity !== "string" || !(PII_ENTITIES as readonly string[]).includes(entity) || seen.has(entity))
      return false;
    if (!Number.isSafeInteger(count) || (count as number) < 1) return false;
    seen.add(entity);
  }
  return true;
}

function isUsage(value: unknown): value is AuditUsage {
  if (typeof value !== "object" || value === null) return false;
  const u = value as Record<string, unknown>;
  return (
    Object.keys(u).length === 2 &&
    Number.isSafeInteger(u.promptTokens) &&
    (u.promptTokens as number) >= 0 &&
    Number.isSafeInteger(u.completionTokens) &&
    (u.completionTokens as number) >= 0
  );
}

// --- verification ---------------------------------------------------------------------------------

export interface AuditVerifyFailure {
  readonly code: AuditVerifyCode;
  /** Index of the offending line (lines.length for a truncated log). */
  readonly index: number;
  readonly message: string;
}

export type AuditVerifyResult =
  | { readonly ok: true; readonly records: readonly AuditRecord[]; readonly lastRecordHash: string }
  | { readonly ok: false; readonly records: readonly AuditRecord[]; readonly error: AuditVerifyFailure };

export interface AuditVerifyOptions {
  /**
   * What the log must reach: `count` records in all (from seq 0) and, when given, the hash of record
   * `count - 1`. Take it from a verified checkpoint (`verifyAuditCheckpoint`). Without it a log cut
   * at the end still verifies: a chain cannot show what was never handed over.
   */
  readonly expect?: { readonly count: number; readonly lastRecordHash?: string };
  /** Verify a segment (a rotated log): the first line's seq and prevHash. Default seq 0, genesis. */
  readonly start?: { readonly seq: number; readonly prevHash: string };
}

type ParsedLine =
  | {
      readonly ok: true;
      readonly record: AuditRecord;
      readonly raw: Record<string, unknown>;
      /** The record's canonical JSON (what is signed after the tag, and hashed). */
      readonly canonical: string;
      readonly sig: Uint8Array;
    }
  | { readonly ok: false; readonly why: string };

function parseLine(line: string): ParsedLine {
  if (line === "") return { ok: false, why: "expected a record line, found an empty line" };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    // Where the line stops being JSON, by position, never its text (JSON.parse of a string throws
    // only SyntaxError).
    return { ok: false, why: jsonSyntaxProblem(error as SyntaxError) };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { ok: false, why: `expected a JSON object {record, sig}, found ${describeValue(value)}` };
  const keys = Object.keys(value).sort();
  if (keys.length !== 2 || keys[0] !== "record" || keys[1] !== "sig")
    return { ok: false, why: `expected exactly the keys record, sig, found ${keyList(keys)}` };
  const { record, sig } = value as { record: unknown; sig: unknown };
  if (typeof record !== "object" || record === null || Array.isArray(record))
    return { ok: false, why: `record: expected an object, found ${describeValue(record)}` };
  if (typeof sig !== "string" || !/^[0-9a-f]{128}$/.test(sig))
    return { ok: false, why: `sig: expected 128 hex characters, found ${hexShape(sig)}` };
  const refused = nonCanonicalValue(record);
  if (refused !== null) return { ok: false, why: refused };
  const canonical = canonicalJson(record);
  if (recordLine(canonical, sig) !== line)
    return { ok: false, why: "not in canonical form (re-formatted or duplicate keys)" };
  return {
    ok: true,
    record: record as AuditRecord,
    raw: record as Record<string, unknown>,
    canonical,
    sig: fromHex(sig),
  };
}

/** Deepest nesting a line's record may have: a record is 3 levels deep (piiFindings[i].count). */
const MAX_RECORD_DEPTH = 32;

/**
 * Where a parsed line first holds what canonicalJson refuses (of JSON's values only a number that
 * is not a safe integer), named by its path; or nesting deeper than any record's, which
 * canonicalJson would recurse into until the stack runs out (named by the record's field it is
 * in). Null when there is none. The walk names nothing while all is canonical (every line of a
 * log passes here): the path is built only for the value refused.
 */
function nonCanonicalValue(record: object): string | null {
  const found = firstNonCanonical(record, 0);
  if (found === null) return null;
  // The steps were collected on the way out, innermost first.
  const steps = found.steps.reverse();
  if (found.tooDeep) {
    return `${stepsPath(steps.slice(0, 1))}: expected at most ${MAX_RECORD_DEPTH} levels of nesting (canonical JSON), found more`;
  }
  return `${stepsPath(steps)}: expected a safe integer (canonical JSON), found ${found.value}`;
}

/** What firstNonCanonical found: the value refused or nesting too deep, and the steps down to it, innermost first. */
interface NonCanonical {
  readonly tooDeep: boolean;
  readonly value?: number;
  readonly steps: (string | number)[];
}

function firstNonCanonical(value: unknown, depth: number): NonCanonical | null {
  if (typeof value === "number" && !Number.isSafeInteger(value)) return { tooDeep: false, value, steps: [] };
  if (typeof value !== "object" || value === null) return null;
  if (depth === MAX_RECORD_DEPTH) return { tooDeep: true, steps: [] };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i += 1) {
      const found = firstNonCanonical(value[i], depth + 1);
      if (found !== null) {
        found.steps.push(i);
        return found;
      }
    }
    return null;
  }
  for (const key of Object.keys(value)) {
    const found = firstNonCanonical((value as Record<string, unknown>)[key], depth + 1);
    if (found !== null) {
      found.steps.push(key);
      return found;
    }
  }
  return null;
}

/** The record's path down `steps`, for a message: `record.usage.tokens`, `record.piiFindings[0]`. */
function stepsPath(steps: readonly (string | number)[]): string {
  return `record${steps.map((step) => (typeof step === "number" ? `[${step}]` : fieldPath(step))).join("")}`;
}

/** A key as a step of a path in a message: `.key`, or as describeUntrusted shows it. */
function fieldPath(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `.${key}` : `[${describeUntrusted(key)}]`;
}

const RECORD_FIELDS = [
  "attestationDigest",
  "blockedBy",
  "decision",
  "error",
  "modelSha256",
  "piiFindings",
  "prevHash",
  "promptHmac",
  "requestIdHash",
  "responseHmac",
  "ruleId",
  "seq",
  "tenant",
  "time",
  "usage",
  "v",
];

/**
 * Key names found in a line, for a message: at most 5, each as describeUntrusted shows it (a
 * tampered line's keys are arbitrary text: a bidi override or a terminal control among them).
 */
function keyList(keys: readonly string[]): string {
  if (keys.length === 0) return "no keys";
  const shown = keys.slice(0, 5).map(describeUntrusted);
  return `${shown.join(", ")}${keys.length > 5 ? ` and ${keys.length - 5} more` : ""}`;
}

/**
 * A record field's value, for a message: short printable strings as JSON (records hold hashes,
 * decisions, codes and times, never plaintext), anything else by its kind and size.
 */
function shown(value: unknown): string {
  if (typeof value === "string" && value.length <= 64 && /^[\x20-\x7e]*$/.test(value)) return JSON.stringify(value);
  return describeValue(value);
}

/**
 * What a public record field meant to be hex is, for a message: a string by its length and whether it
 * is lower-case hex (never its characters); none as none; any other value as describeValue shows it,
 * which is a number's or a boolean's value and an object's key names. For public record fields only
 * (hashes, signatures): an opening, the client's secret, must never go through it (audit-cli-impl.ts
 * openingShape says it by its type and length alone).
 */
export function hexShape(value: unknown): string {
  if (value === undefined) return "none";
  if (typeof value !== "string") return describeValue(value);
  return `${value.length} characters${/^[0-9a-f]*$/.test(value) ? "" : " (not all lower-case hex)"}`;
}

/** Structure of a record whose signature already verified. Returns the first problem, or null. */
function recordShapeProblem(r: Record<string, unknown>): string | null {
  const keys = Object.keys(r).sort();
  if (keys.join(",") !== RECORD_FIELDS.join(",")) {
    const missing = RECORD_FIELDS.filter((f) => !Object.hasOwn(r, f));
    const extra = keys.filter((k) => !RECORD_FIELDS.includes(k));
    const found = [
      missing.length === 0 ? "" : `missing ${missing.join(", ")}`,
      extra.length === 0 ? "" : `extra ${keyList(extra)}`,
    ].filter((part) => part !== "");
    return `fields: expected ${RECORD_FIELDS.join(", ")}, found ${found.join("; ")}`;
  }
  if (r.v !== 1) return `v: expected 1, found ${describeValue(r.v)}`;
  if (!Number.isSafeInteger(r.seq) || (r.seq as number) < 0)
    return `seq: expected a non-negative integer, found ${shown(r.seq)}`;
  if (!isCanonicalTime(r.time))
    return `time: expected an ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SS.sssZ), found ${shown(r.time)}`;
  for (const f of ["requestIdHash", "modelSha256", "attestationDigest", "prevHash"] as const) {
    if (typeof r[f] !== "string" || !HEX64.test(r[f] as string))
      return `${f}: expected 64 hex characters, found ${hexShape(r[f])}`;
  }
  for (const f of ["promptHmac", "responseHmac"] as const) {
    if (r[f] !== null && (typeof r[f] !== "string" || !HEX64.test(r[f] as string)))
      return `${f}: expected 64 hex characters or null, found ${hexShape(r[f])}`;
  }
  if (typeof r.tenant !== "string" || r.tenant.length === 0 || r.tenant.length > 200)
    return `tenant: expected an API key id of 1..200 characters, found ${shown(r.tenant)}`;
  // The writer's own rules (checkEntry): a signed record that breaks one is none this format defines.
  // (Every field is present: checked above.)
  const broken = decisionRuleBroken(r as DecisionFields);
  if (broken !== null) return `${broken.field}: expected ${broken.expected}, found ${shown(r[broken.field])}`;
  if (!isFindings(r.piiFindings))
    return `piiFindings: expected a list of {entity, count} with distinct known entities and counts ≥ 1, found ${describeValue(r.piiFindings)}`;
  if (r.usage !== null && !isUsage(r.usage))
    return `usage: expected {promptTokens, completionTokens} non-negative integers or null, found ${describeValue(r.usage)}`;
  return null;
}

/**
 * Verifies a log (one record line per element, no newlines) against the enclave's Ed25519 public
 * key. Stops at the first failure, in line order; `records` holds the records verified before it.
 * For each line, in this order: canonical `{record, sig}` shape → signature → record structure →
 * sequence and chain. When a signature fails, the code says whether the record's content still fits
 * the chain (AUDIT_SIGNATURE_INVALID: the signature was replaced or re-made with another key) or
 * not (AUDIT_RECORD_ALTERED); for the last line, with nothing after it committing to its content
 * (no `expect.lastRecordHash`), the two cannot be told apart and AUDIT_SIGNATURE_INVALID is reported.
 * For a log too large to hold in memory: `AuditLogVerifier`, which this runs line by line.
 */
export function verifyAuditLog(
  lines: readonly string[],
  enclaveSigningPublicKey: Uint8Array,
  options: AuditVerifyOptions = {},
): AuditVerifyResult {
  const records: AuditRecord[] = [];
  const verifier = new AuditLogVerifier(enclaveSigningPublicKey, options, (record) => records.push(record));
  for (const line of lines) verifier.push(line);
  const result = verifier.finish();
  return result.ok
    ? { ok: true, records, lastRecordHash: result.lastRecordHash }
    : { ok: false, records, error: result.error };
}

/** `AuditLogVerifier`'s verdict: `lines` read, `records` verified (before the failure, if any). */
export type AuditLogVerifierResult =
  | { readonly ok: true; readonly lines: number; readonly records: number; readonly lastRecordHash: string }
  | { readonly ok: false; readonly lines: number; readonly records: number; readonly error: AuditVerifyFailure };

/** A failure found; its message's prefix (which line, or the end) is added once the line count is known. */
type Failure = { readonly code: AuditVerifyCode; readonly index: number; readonly detail: string };

/**
 * `verifyAuditLog` one line at a time, for logs of any length (`cloister audit verify` and `find`
 * stream the file through it): the same checks, codes, indexes and messages. Feed every line in
 * order with `push`, then call `finish` once.
 *
 * Memory: no line is kept, and a verified record only as its 32-byte hash (telling a record that
 * repeats an earlier one, AUDIT_RECORD_DUPLICATED, from one out of order needs the earlier hash).
 * Two verdicts look ahead, and only after the first failure: a bad signature waits for the next
 * line (does a record that verifies chain to this content?), and a seq ahead of the expected one
 * scans the lines after it for a record of the expected seq that verifies (reordered, or removed?).
 * Once the verdict is known, further lines are only counted.
 */
export class AuditLogVerifier {
  readonly #publicKey: Uint8Array;
  readonly #verify: (message: Uint8Array, signature: Uint8Array) => boolean;
  readonly #options: AuditVerifyOptions;
  readonly #start: { readonly seq: number; readonly prevHash: string };
  readonly #onRecord: ((record: AuditRecord, index: number) => void) | undefined;
  #lines = 0;
  #expectedSeq: number;
  #prevHash: string;
  /** Hashes of the verified records, 32 bytes each: the record of line k at offset 32k. */
  #hashes = new Uint8Array(32 * 64);
  #failure: Failure | null = null;
  /** A failure whose code depends on lines not read yet. */
  #pending:
    | { readonly kind: "signature"; readonly index: number; readonly hash: string; readonly backward: boolean }
    | { readonly kind: "ahead"; readonly index: number; readonly seq: number }
    | null = null;
  #finished = false;

  /** `onRecord` sees each record once it verified, with its line index (0-based). */
  constructor(
    enclaveSigningPublicKey: Uint8Array,
    options: AuditVerifyOptions = {},
    onRecord?: (record: AuditRecord, index: number) => void,
  ) {
    this.#publicKey = checkPublicKey(enclaveSigningPublicKey);
    this.#verify = ed25519Verifier(this.#publicKey);
    this.#options = options;
    this.#start = options.start ?? { seq: 0, prevHash: auditGenesisHash(this.#publicKey) };
    this.#onRecord = onRecord;
    this.#expectedSeq = this.#start.seq;
    this.#prevHash = this.#start.prevHash;
  }

  /** The next line of the log (without its newline). */
  push(line: string): void {
    this.#next(() => parseLine(line));
  }

  /**
   * The next line, too long for the reader to hold (`bytes` long, far beyond any record the enclave
   * writes): a malformed line.
   */
  pushTooLong(bytes: number): void {
    this.#next(() => ({ ok: false, why: `expected a record line, found a line of ${bytes} bytes` }));
  }

  /**
   * The next line, whose bytes are not UTF-8 (from byte `at`, counted from 1: the first of the
   * sequence that is not): a malformed line, never decoded with replacement characters (other bytes
   * would then give the signed text).
   */
  pushNotUtf8(at: number): void {
    this.#next(() => ({
      ok: false,
      why: `expected UTF-8 text, found a byte that is not UTF-8 (byte ${at} of the line)`,
    }));
  }

  #next(parse: () => ParsedLine): void {
    if (this.#finished) throw new TypeError("audit log verifier: push after finish");
    const i = this.#lines;
    this.#lines += 1;
    if (this.#failure !== null) return;
    const entry = parse();
    if (this.#pending !== null) {
      this.#resolvePending(entry);
      return;
    }
    if (!entry.ok) {
      this.#fail("AUDIT_RECORD_MALFORMED", i, entry.why);
      return;
    }
    // The record's canonical bytes, encoded once: signed after the tag, and hashed.
    const signed = signedBytes(RECORD_TAG, entry.canonical);
    const hash = sha256(signed.subarray(RECORD_TAG_BYTES));
    if (!this.#verify(signed, entry.sig)) {
      // On the first line under the default start, prevHash is compared with a genesis derived from
      // the key being tried; with a wrong key it never fits, so only seq is compared there.
      const atGenesis = i === 0 && this.#options.start === undefined;
      const backward =
        entry.record.seq === this.#expectedSeq && (atGenesis || entry.record.prevHash === this.#prevHash);
      this.#pending = { kind: "signature", index: i, hash: toHex(hash), backward };
      return;
    }
    const problem = recordShapeProblem(entry.raw);
    if (problem !== null) {
      this.#fail("AUDIT_RECORD_MALFORMED", i, `signed record is malformed: ${problem}`);
      return;
    }
    const record = entry.record;
    const expectedSeq = this.#expectedSeq;
    if (record.seq > expectedSeq) {
      this.#pending = { kind: "ahead", index: i, seq: record.seq };
      return;
    }
    if (record.seq < expectedSeq) {
      // Verified records sit on lines 0, 1, … in seq order: seq s was verified on line s - start.seq.
      const line = record.seq - this.#start.seq;
      if (line >= 0 && bytesEqual(this.#hashAt(line), hash)) {
        this.#fail("AUDIT_RECORD_DUPLICATED", i, `seq ${record.seq} repeats line ${line + 1}`);
      } else {
        this.#fail("AUDIT_RECORD_REORDERED", i, `expected seq ${expectedSeq}, found ${record.seq} (out of order)`);
      }
      return;
    }
    if (record.prevHash !== this.#prevHash) {
      this.#fail(
        "AUDIT_CHAIN_BROKEN",
        i,
        `prevHash: expected ${this.#prevHash}, found ${record.prevHash} (a signed record from another chain)`,
      );
      return;
    }
    this.#keepHash(i, hash);
    this.#onRecord?.(record, i);
    // Hex: the next record's prevHash, compared as its text.
    this.#prevHash = toHex(hash);
    this.#expectedSeq += 1;
  }

  /** Decides a pending failure with the line after it (`entry`; null at the end of the log). */
  #resolvePending(entry: ParsedLine | null): void {
    const pending = this.#pending;
    if (pending === null) return;
    const expectedSeq = this.#expectedSeq;
    if (pending.kind === "ahead") {
      if (entry === null) {
        this.#fail(
          "AUDIT_RECORD_REMOVED",
          pending.index,
          `expected seq ${expectedSeq}, found ${pending.seq}: ${pending.seq - expectedSeq} record(s) missing`,
        );
      } else if (entry.ok && entry.record.seq === expectedSeq && this.#verifies(entry)) {
        // Only a record that verifies is the missing one come later: a line merely carrying its seq
        // (forged, or signed by another key) must not turn a removal into a reordering.
        this.#fail(
          "AUDIT_RECORD_REORDERED",
          pending.index,
          `expected seq ${expectedSeq}, found ${pending.seq} (seq ${expectedSeq} comes later)`,
        );
      }
      return; // else: the expected seq may still come
    }
    // A bad signature: does the content fit the chain behind it (backward) and ahead of it (forward)?
    // Ahead, only a commitment that verifies vouches for the content (the next record's prevHash, or
    // the checkpoint's hash): a next line that names this content's hash without verifying may have
    // been rewritten to fit it ("unverified": cannot tell). A next line that names another hash,
    // verified or not, leaves the content unvouched for (false).
    let forward: boolean | "unverified" | null = null;
    const expect = this.#options.expect;
    if (entry !== null) {
      forward =
        entry.ok && entry.record.prevHash === pending.hash ? (this.#verifies(entry) ? true : "unverified") : false;
    } else if (expect?.lastRecordHash !== undefined && expect.count === expectedSeq + 1) {
      forward = expect.lastRecordHash === pending.hash;
    }
    if (forward === null) {
      this.#fail(
        "AUDIT_SIGNATURE_INVALID",
        pending.index,
        "signature does not verify under the enclave key (last line: altered and re-signed cannot be told apart)",
      );
    } else if (pending.backward && forward === true) {
      this.#fail(
        "AUDIT_SIGNATURE_INVALID",
        pending.index,
        "signature does not verify under the enclave key; the content fits the chain (re-signed or signature replaced)",
      );
    } else if (pending.backward && forward === "unverified") {
      this.#fail(
        "AUDIT_SIGNATURE_INVALID",
        pending.index,
        "signature does not verify under the enclave key, nor does the next line's, which names this content's hash (wrong key, re-signed or altered: cannot be told apart)",
      );
    } else {
      this.#fail(
        "AUDIT_RECORD_ALTERED",
        pending.index,
        "signature does not verify and the content no longer fits the chain: the record was altered",
      );
    }
  }

  /** The verdict, once every line was pushed. */
  finish(): AuditLogVerifierResult {
    if (!this.#finished) {
      this.#finished = true;
      if (this.#failure === null) this.#resolvePending(null);
      if (this.#failure === null) this.#checkExpectation();
    }
    const records = this.#expectedSeq - this.#start.seq;
    const failure = this.#failure;
    if (failure === null) return { ok: true, lines: this.#lines, records, lastRecordHash: this.#prevHash };
    // Messages count lines from 1, as editors do; `index` is 0-based.
    const where =
      failure.index < this.#lines ? `audit log line ${failure.index + 1}` : `audit log end (after line ${this.#lines})`;
    return {
      ok: false,
      lines: this.#lines,
      records,
      error: { code: failure.code, index: failure.index, message: `${where}: ${failure.detail}` },
    };
  }

  #checkExpectation(): void {
    const expect = this.#options.expect;
    if (expect === undefined) return;
    const expectedSeq = this.#expectedSeq;
    if (expectedSeq < expect.count) {
      this.#fail(
        "AUDIT_LOG_TRUNCATED",
        this.#lines,
        // (Before seq 0 there is none to name: a segment's start is the seq its earlier part ends at.)
        `expected ${expect.count} records (seq up to ${expect.count - 1}), found ${expectedSeq === 0 ? "no record" : `seq up to ${expectedSeq - 1}`}`,
      );
      return;
    }
    if (expect.lastRecordHash === undefined) return;
    const line = expect.count - 1 - this.#start.seq;
    let at: { hash: string; index: number } | undefined;
    if (expect.count === this.#start.seq) at = { hash: this.#start.prevHash, index: 0 };
    else if (line >= 0) at = { hash: toHex(this.#hashAt(line)), index: line };
    if (at === undefined || at.hash !== expect.lastRecordHash) {
      this.#fail(
        "AUDIT_CHECKPOINT_MISMATCH",
        at?.index ?? 0,
        `hash of record seq ${expect.count - 1}: expected ${expect.lastRecordHash}, found ${at?.hash ?? "none"}`,
      );
    }
  }

  /** Whether a parsed line's signature verifies under the enclave key (its content unchecked). */
  #verifies(entry: Extract<ParsedLine, { ok: true }>): boolean {
    return this.#verify(signedBytes(RECORD_TAG, entry.canonical), entry.sig);
  }

  #fail(code: AuditVerifyCode, index: number, detail: string): void {
    this.#failure = { code, index, detail };
    this.#pending = null;
  }

  #keepHash(line: number, hash: Uint8Array): void {
    if (32 * (line + 1) > this.#hashes.length) {
      const grown = new Uint8Array(this.#hashes.length * 2);
      grown.set(this.#hashes);
      this.#hashes = grown;
    }
    this.#hashes.set(hash, 32 * line);
  }

  #hashAt(line: number): Uint8Array {
    return this.#hashes.subarray(32 * line, 32 * (line + 1));
  }
}

/** Why a checkpoint line was refused (`checkAuditCheckpoint`). */
export type AuditCheckpointProblem = "malformed" | "version" | "signature" | "nonce";

export type AuditCheckpointCheck =
  | { readonly ok: true; readonly checkpoint: AuditCheckpoint }
  | { readonly ok: false; readonly problem: AuditCheckpointProblem; readonly message: string };

/**
 * Verifies a checkpoint line under the enclave key; returns null when it does not verify. With
 * `expect.nonce`, only a checkpoint carrying exactly that nonce verifies (a fresh answer, not a
 * replayed one). `checkAuditCheckpoint` says why one was refused.
 */
export function verifyAuditCheckpoint(
  line: string,
  enclaveSigningPublicKey: Uint8Array,
  expect: { readonly nonce?: Uint8Array } = {},
): AuditCheckpoint | null {
  const result = checkAuditCheckpoint(line, enclaveSigningPublicKey, expect);
  return result.ok ? result.checkpoint : null;
}

/**
 * `verifyAuditCheckpoint` with the reason of a refusal: `malformed` (not the canonical line
 * `{checkpoint, sig}`, or a signed checkpoint whose fields are wrong), `version` (a `v` other than
 * 2), `signature` (does not verify under this key: signed by another key, or altered — the two
 * cannot be told apart), `nonce` (not the nonce asked with). Messages hold no checkpoint content
 * beyond `v`, `count`, a short printable `time`, sizes and key names (never the nonce).
 */
export function checkAuditCheckpoint(
  line: string,
  enclaveSigningPublicKey: Uint8Array,
  expect: { readonly nonce?: Uint8Array } = {},
): AuditCheckpointCheck {
  const publicKey = checkPublicKey(enclaveSigningPublicKey);
  const refuse = (problem: AuditCheckpointProblem, message: string): AuditCheckpointCheck => ({
    ok: false,
    problem,
    message,
  });
  let value: unknown;
  try {
    value = JSON.parse(line.trim());
  } catch {
    return refuse(
      "malformed",
      `expected a checkpoint line (JSON), found ${line.trim().length} characters of other text`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return refuse("malformed", `expected a JSON object {checkpoint, sig}, found ${describeValue(value)}`);
  }
  const { checkpoint, sig } = value as { checkpoint?: unknown; sig?: unknown };
  if (checkpoint === undefined) {
    return refuse("malformed", `expected the keys checkpoint, sig, found ${keyList(Object.keys(value).sort())}`);
  }
  if (typeof checkpoint !== "object" || checkpoint === null || Array.isArray(checkpoint)) {
    return refuse("malformed", `checkpoint: expected an object, found ${describeValue(checkpoint)}`);
  }
  if (typeof sig !== "string" || !/^[0-9a-f]{128}$/.test(sig)) {
    return refuse("malformed", `sig: expected 128 lower-case hex characters, found ${hexShape(sig)}`);
  }
  let canonical: string;
  try {
    canonical = canonicalJson(checkpoint);
    // Only the exact canonical line (as for records): no duplicate keys, extra members or re-formatting.
    if (line.trim() !== canonicalJson({ checkpoint, sig })) {
      const keys = Object.keys(value).sort();
      return refuse(
        "malformed",
        keys.length === 2
          ? "expected the canonical line (sorted keys, no whitespace), found it re-formatted or with duplicate keys"
          : `expected exactly the keys checkpoint, sig, found ${keyList(keys)}`,
      );
    }
  } catch {
    return refuse(
      "malformed",
      "expected canonical JSON (integers, strings, null, arrays, objects), found other values",
    );
  }
  const c = checkpoint as Record<string, unknown>;
  // Read before the signature check only to name the problem: a checkpoint of another version is
  // refused whoever signed it.
  if (c.v !== 2) return refuse("version", `checkpoint v: expected 2, found ${describeValue(c.v)}`);
  if (!ed25519Verifier(publicKey)(signedBytes(CHECKPOINT_TAG, canonical), fromHex(sig))) {
    return refuse(
      "signature",
      "expected a checkpoint signed by the enclave key, found a signature that does not verify under it (signed by another key, or altered)",
    );
  }
  const fields = Object.keys(c).sort();
  if (fields.join(",") !== "count,lastRecordHash,nonce,time,v") {
    return refuse(
      "malformed",
      `checkpoint fields: expected count, lastRecordHash, nonce, time, v, found ${keyList(fields)}`,
    );
  }
  if (!Number.isSafeInteger(c.count) || (c.count as number) < 0) {
    return refuse("malformed", `checkpoint count: expected a non-negative integer, found ${describeValue(c.count)}`);
  }
  if (typeof c.lastRecordHash !== "string" || !HEX64.test(c.lastRecordHash)) {
    return refuse(
      "malformed",
      `checkpoint lastRecordHash: expected 64 hex characters, found ${describeValue(c.lastRecordHash)}`,
    );
  }
  if (!(c.nonce === null || (typeof c.nonce === "string" && NONCE_HEX.test(c.nonce)))) {
    return refuse(
      "malformed",
      `checkpoint nonce: expected null or 32..128 hex characters, found ${describeValue(c.nonce)}`,
    );
  }
  if (!isCanonicalTime(c.time)) {
    return refuse(
      "malformed",
      `checkpoint time: expected an ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SS.sssZ), found ${shown(c.time)}`,
    );
  }
  if (expect.nonce !== undefined && c.nonce !== toHex(expect.nonce)) {
    return refuse(
      "nonce",
      `checkpoint nonce: expected the nonce it was asked with, found ${c.nonce === null ? "none" : "another one"}`,
    );
  }
  return { ok: true, checkpoint: c as unknown as AuditCheckpoint };
}
