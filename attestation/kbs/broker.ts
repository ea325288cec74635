/**
 * The key broker (DESIGN.md "Parties": trusted with keys only). It holds model keys and releases
 * one only to an enclave whose attestation passes that key's release policy — a client-policy file
 * (client/policy.ts), so an operator states once, in one format, what clients and the broker
 * accept — and whose attested manifest seals its model under that key id. The released key is
 * boxed to the enclave's attested X25519 key (protocol.ts); nothing else the broker sends is secret.
 *
 * Platform-neutral: no Node.js modules here; configuration files are read by config.ts.
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { base64url } from "jose";
import nacl from "tweetnacl";
import { ClientError } from "../../client/errors.ts";
import { type ClientPolicy, parseClientPolicy, policyRisks, verifyWithClientPolicy } from "../../client/policy.ts";
import { parseManifest } from "../../manifests/schema.ts";
import { KEY_ID_PATTERN, KEY_ID_RULE } from "../../models/key-id.ts";
import { type AttestationCollateral, parseAttestationCollateral } from "../collateral.ts";
import { constantTimeEqual } from "../crypto.ts";
import type { VerifiedEnclave } from "../document.ts";
import { DOCUMENT_MAX_LENGTH } from "../document-key.ts";
import { AttestationError, type VerifiedEvidenceIdentity } from "../errors.ts";
import { INSECURE_SIMULATOR_EVIDENCE_FOUND } from "../sim/names.ts";
import { KBS_CHALLENGE_BYTES, MODEL_KEY_BYTES, type WrappedModelKey, wrapModelKey } from "./protocol.ts";

/**
 * A refusal, or a fault of the broker (INTERNAL, 500), with a stable code and the HTTP status the
 * server maps it to. Never carries a key. Its message is what the caller is told; `detail`, what
 * the broker's log says (the same, but for attestation failures and faults: see `release` and
 * brokerFault); `cause`, the error it stands for, when there is one.
 */
export class BrokerError extends Error {
  readonly code: string;
  /** 408 only for a release body the server itself answered so (server.ts incompleteBody). */
  readonly status: 400 | 403 | 404 | 408 | 413 | 500 | 503;
  readonly detail: string;
  /** Attestation failures: the failed stage (verify, appraise, binding, document, nonce, manifest). */
  readonly stage: string | undefined;
  /**
   * Refusals after the evidence verified: what the enclave is (public values), for the broker's
   * log — how an operator learns the measurement of a new image its policy does not list. After the
   * whole document verified (KBS_KEY_NOT_IN_MANIFEST), also the digests a release's record has.
   */
  readonly evidence: VerifiedEvidenceIdentity | Omit<ReleaseRecord, "keyId"> | undefined;

  constructor(
    code: string,
    status: BrokerError["status"],
    message: string,
    options?: { stage?: string; evidence?: BrokerError["evidence"]; detail?: string; cause?: unknown },
  ) {
    super(message, options !== undefined && "cause" in options ? { cause: options.cause } : undefined);
    this.name = "BrokerError";
    this.code = code;
    this.status = status;
    this.detail = options?.detail ?? message;
    this.stage = options?.stage;
    this.evidence = options?.evidence;
  }
}

export interface BrokerKey {
  readonly keyId: string;
  readonly key: Uint8Array;
  /**
   * The release policy: what an enclave's attestation must satisfy to receive this key. Parsed
   * when the broker is built (parseClientPolicy): one that does not parse is refused then.
   */
  readonly policy: ClientPolicy;
}

/** What the broker verified about the enclave a key went to (public values: for its log). */
export interface ReleaseRecord {
  readonly keyId: string;
  readonly tee: string;
  readonly simulated: boolean;
  readonly measurement: string;
  readonly manifestDigest: string;
  readonly documentDigest: string;
}

export interface KeyBrokerOptions {
  /**
   * The wall clock (evidence and collateral validity), and, when given, the challenges' clock too
   * (tests); by default challenges are timed on `performance`'s clock, which wall-clock steps do
   * not move.
   */
  readonly now?: () => Date;
  /** How long a challenge may be answered (default 60 s). */
  readonly challengeTtlMs?: number;
  /**
   * Most challenges spent within one challenge lifetime; release attempts past it are refused with
   * 503 until the next lifetime begins. The default is what createBrokerApp's default limits admit
   * within the lifetime (releasesAdmittedWithin: 200 000 for 60 s), or, with `clientLimits`, what
   * those admit, so through that app (built with the same limits) the set cannot fill. See
   * KeyBroker's "Challenges".
   */
  readonly maxSpentChallenges?: number;
  /**
   * The limits the broker's HTTP API will be built with (createBrokerApp's options), when not
   * CLIENT_LIMITS': the default maxSpentChallenges is what they admit in a lifetime.
   */
  readonly clientLimits?: { readonly releasesPerMinute: number; readonly maxClients: number };
}

/**
 * The per-client limits of the broker's HTTP API (server.ts) by default. Clients are counted by
 * limitBucket of their address, in fixed windows of `windowMs`; at most `maxClients` windows are
 * counted at once, and a client that would need one more is refused until one ends.
 */
export const CLIENT_LIMITS = {
  windowMs: 60_000,
  challengesPerMinute: 60,
  releasesPerMinute: 20,
  maxClients: 5_000,
} as const;

/**
 * Most release attempts limits like CLIENT_LIMITS' admit within any `ms`: a window counts at most
 * `releasesPerMinute`, and the windows that overlap the interval are at most `maxClients` live
 * when it begins plus at most `maxClients` begun in each `windowMs` of it (those are all live at
 * that stretch's end, and no more than `maxClients` are ever live).
 */
export function releasesAdmittedWithin(
  ms: number,
  limits: { readonly releasesPerMinute: number; readonly maxClients: number },
): number {
  return limits.maxClients * limits.releasesPerMinute * (1 + Math.ceil(ms / CLIENT_LIMITS.windowMs));
}

/**
 * The longest document a release request may carry: 512 Ki characters, below the 4 MiB a client
 * reads (document-key.ts DOCUMENT_MAX_LENGTH), so an enclave whose document is longer verifies for
 * clients but gets no key here; its refusal says so. Kept: a release request (server.ts
 * MAX_RELEASE_BYTES, 1 MiB) holds the document with its collateral, and the broker reads 64 at once
 * (64 MiB of bodies, more once parsed); 4 MiB documents would make that over 320 MiB, for documents
 * that are tens of KiB in practice.
 */
const MAX_DOCUMENT_CHARS = 512 * 1024;
const MAX_ANSWER_CHARS = 4096;
/** A challenge: issued-at (ms, u64 big-endian) ‖ random ‖ the first bytes of its MAC. */
const ISSUED_BYTES = 8;
const RANDOM_BYTES = 8;
const MAC_BYTES = KBS_CHALLENGE_BYTES - ISSUED_BYTES - RANDOM_BYTES;
const CHALLENGE_CHARS = Math.ceil((KBS_CHALLENGE_BYTES * 4) / 3);
const CHALLENGE_MAC_TAG = new TextEncoder().encode("cloister/kbs/challenge/v1\u0000");

/**
 * Challenges. Asking for one stores nothing here: it is its issue time and random bytes under a MAC
 * whose key is made at start and never leaves this process, so the broker recognises its own
 * unexpired challenges without a table of outstanding ones. Single use is kept by remembering the
 * challenges release attempts spent until they expire, in two generations of one lifetime each: a
 * challenge spent during a generation is kept until the second rotation after that generation
 * began, at least one lifetime after it was spent, by when it has expired. Only a challenge this
 * broker issued and that has not expired is spent (anything else is refused before), so only
 * release attempts with one add to them, and they are bounded: past maxSpentChallenges in a
 * generation, release attempts are refused with KBS_BUSY until the next rotation. Anyone can get
 * challenges, so that bound alone could be filled by strangers, refusing every enclave: the HTTP
 * API (server.ts) limits release attempts per client address and the number of addresses it
 * counts at once, and createBrokerApp refuses a broker whose maxSpentChallenges is below what those
 * limits admit in one lifetime, so through it the bound is never reached (a stranger with very
 * many addresses fills the limiter's table instead: new addresses are refused, the ones counted
 * keep their budgets). A restart forgets the MAC key, so challenges issued before it are unknown
 * after it.
 */
export class KeyBroker {
  readonly #keys = new Map<string, BrokerKey>();
  readonly #challengeKey = nacl.randomBytes(32);
  /** Challenges (base64url) spent in the current generation and in the one before it. */
  #spent = new Set<string>();
  #spentBefore = new Set<string>();
  #generationStart: number;
  /** The latest clock reading: challenge time never runs backwards (see #clock). */
  #latest = 0;
  readonly #now: () => Date;
  /** Milliseconds for challenge times (see KeyBrokerOptions.now). */
  readonly #challengeTime: () => number;
  readonly #ttlMs: number;
  readonly #maxSpent: number;

  constructor(keys: readonly BrokerKey[], options: KeyBrokerOptions = {}) {
    try {
      for (const entry of keys) {
        if (!KEY_ID_PATTERN.test(entry.keyId)) throw new RangeError(`key id "${entry.keyId}": not a valid key id`);
        if (entry.key.length !== MODEL_KEY_BYTES) {
          throw new RangeError(`key "${entry.keyId}": expected ${MODEL_KEY_BYTES} bytes, found ${entry.key.length}`);
        }
        if (this.#keys.has(entry.keyId)) throw new RangeError(`key id "${entry.keyId}": listed twice`);
        this.#keys.set(entry.keyId, { keyId: entry.keyId, key: entry.key.slice(), policy: releasePolicy(entry) });
      }
    } catch (error) {
      // Refused: the copies taken of the keys before the one refused serve nothing.
      for (const copy of this.#keys.values()) copy.key.fill(0);
      throw error;
    }
    this.#now = options.now ?? (() => new Date());
    const injected = options.now;
    this.#challengeTime =
      injected === undefined
        ? () => Math.floor(performance.timeOrigin + performance.now())
        : () => injected().getTime();
    this.#ttlMs = options.challengeTtlMs ?? 60_000;
    this.#maxSpent =
      options.maxSpentChallenges ?? releasesAdmittedWithin(this.#ttlMs, options.clientLimits ?? CLIENT_LIMITS);
    this.#generationStart = this.#clock();
  }

  /**
   * Milliseconds by the challenges' clock, never less than an earlier reading: a clock stepped back
   * would otherwise let a challenge dropped from the spent sets be valid again. By default that
   * clock is monotonic, so a wall clock stepped forward and back neither expires valid challenges
   * nor keeps challenges alive until it catches up again.
   */
  #clock(): number {
    this.#latest = Math.max(this.#latest, this.#challengeTime());
    return this.#latest;
  }

  #mac(body: Uint8Array): Uint8Array {
    const input = new Uint8Array(CHALLENGE_MAC_TAG.length + body.length);
    input.set(CHALLENGE_MAC_TAG);
    input.set(body, CHALLENGE_MAC_TAG.length);
    return hmac(sha256, this.#challengeKey, input).subarray(0, MAC_BYTES);
  }

  /** How long a challenge may be answered, in milliseconds. */
  get challengeTtlMs(): number {
    return this.#ttlMs;
  }

  /** Most challenges spent within one challenge lifetime (KeyBrokerOptions.maxSpentChallenges). */
  get maxSpentChallenges(): number {
    return this.#maxSpent;
  }

  /** The key ids this broker can release (for logs and `cloister kbs check`). */
  get keyIds(): string[] {
    return [...this.#keys.keys()];
  }

  /** A fresh single-use challenge, base64url (see "Challenges" above: nothing is stored). */
  challenge(): { challenge: string; expiresInSeconds: number } {
    const bytes = new Uint8Array(KBS_CHALLENGE_BYTES);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(this.#clock()));
    bytes.set(nacl.randomBytes(RANDOM_BYTES), ISSUED_BYTES);
    bytes.set(this.#mac(bytes.subarray(0, ISSUED_BYTES + RANDOM_BYTES)), ISSUED_BYTES + RANDOM_BYTES);
    return { challenge: base64url.encode(bytes), expiresInSeconds: Math.floor(this.#ttlMs / 1000) };
  }

  /** The bytes of `challenge` if this broker issued it and it has not expired at `now`, else null. */
  #issued(challenge: string, now: number): Uint8Array | null {
    if (challenge.length !== CHALLENGE_CHARS) return null;
    let bytes: Uint8Array;
    try {
      bytes = base64url.decode(challenge);
    } catch {
      return null;
    }
    // Only the spelling the broker issued: the spent sets hold strings, and another spelling of the
    // same bytes (other trailing bits) must not be a second use.
    if (bytes.length !== KBS_CHALLENGE_BYTES || base64url.encode(bytes) !== challenge) return null;
    const mac = this.#mac(bytes.subarray(0, ISSUED_BYTES + RANDOM_BYTES));
    if (!constantTimeEqual(bytes.subarray(ISSUED_BYTES + RANDOM_BYTES), mac)) return null;
    const issued = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0));
    return now - issued < this.#ttlMs ? bytes : null;
  }

  /**
   * Spends `challenge`: returns its bytes if this broker issued it, it has not expired and no
   * earlier attempt spent it; throws KBS_CHALLENGE_UNKNOWN otherwise, or KBS_BUSY when the spent
   * set is full (the challenge is then not spent: the enclave may retry with it).
   */
  #spend(challenge: string): Uint8Array {
    const now = this.#clock();
    if (now - this.#generationStart >= this.#ttlMs) {
      this.#spentBefore = this.#spent;
      this.#spent = new Set();
      this.#generationStart = now;
    }
    const bytes = this.#issued(challenge, now);
    if (bytes === null || this.#spent.has(challenge) || this.#spentBefore.has(challenge)) {
      throw new BrokerError(
        "KBS_CHALLENGE_UNKNOWN",
        400,
        "challenge: not one this broker issued, already used, or expired; ask for a new one",
      );
    }
    if (this.#spent.size >= this.#maxSpent) {
      throw new BrokerError(
        "KBS_BUSY",
        503,
        `key broker: over ${this.#maxSpent} release attempts within one challenge lifetime (${this.#ttlMs / 1000} s); retry later`,
      );
    }
    this.#spent.add(challenge);
    return bytes;
  }

  /**
   * Verifies the enclave behind `request` and returns its model key, wrapped to the enclave's
   * attested sealing key. Throws BrokerError naming the check that refused it.
   */
  async release(request: unknown): Promise<{ wrapped: WrappedModelKey; record: ReleaseRecord }> {
    const r = request as Record<string, unknown> | null;
    if (r === null || typeof r !== "object" || Array.isArray(r)) {
      throw malformed("expected a JSON object {keyId, document, challenge, answer}");
    }
    for (const field of ["keyId", "document", "challenge", "answer"] as const) {
      if (typeof r[field] !== "string") throw malformed(`${field}: expected a string, found ${typeof r[field]}`);
    }
    const { keyId, document, challenge, answer } = r as {
      keyId: string;
      document: string;
      challenge: string;
      answer: string;
    };
    if (document.length > MAX_DOCUMENT_CHARS) {
      throw malformed(
        `document: expected at most ${MAX_DOCUMENT_CHARS} characters (${MAX_DOCUMENT_CHARS / 1024} Ki, the key broker's bound; a client reads documents of up to ${DOCUMENT_MAX_LENGTH / (1024 * 1024)} MiB, so such an enclave may verify for clients but gets no key from this broker), found ${document.length}`,
      );
    }
    if (answer.length > MAX_ANSWER_CHARS) {
      throw malformed(`answer: expected at most ${MAX_ANSWER_CHARS} characters, found ${answer.length}`);
    }
    // The vendor's TCB collateral the enclave serves with its document (attestation/collateral.ts).
    let collateral: AttestationCollateral | null;
    try {
      collateral = parseAttestationCollateral(r.collateral);
    } catch (error) {
      throw malformed((error as Error).message, error);
    }

    // Spent by every attempt that gets this far, released or refused. Requests refused above (a
    // field that is not a string, a document or answer over its limit, malformed collateral) do not
    // spend it: they never looked at it, and the enclave may retry with it.
    const challengeBytes = this.#spend(challenge);
    const at = this.#now();

    if (!KEY_ID_PATTERN.test(keyId)) throw malformed(`keyId: expected ${KEY_ID_RULE}`);
    const entry = this.#keys.get(keyId);
    if (entry === undefined)
      throw new BrokerError("KBS_KEY_UNKNOWN", 404, `keyId: this broker holds no key "${keyId}"`);

    let enclave: VerifiedEnclave;
    try {
      enclave = await verifyWithClientPolicy(document, entry.policy, { value: challengeBytes, answer }, at, collateral);
    } catch (error) {
      // A ConfigurationError is the verifier called wrongly (its clock, its trust anchors, its
      // policy): the broker's fault, as any error that is not an AttestationError is (a bug). Only
      // the document failing a check is the enclave's refusal.
      if (!(error instanceof AttestationError) || error.stage === "configuration") {
        throw brokerFault("verifying the document", error);
      }
      // The caller is told the stage and the verifier's code only. The verifier's message names
      // what the release policy expects (pinned measurements, minimum TCB, allowed model digests):
      // anyone with genuine evidence could read the policy from it. It goes to the broker's log.
      throw new BrokerError(
        "KBS_ATTESTATION_FAILED",
        403,
        `attestation failed at stage ${error.stage} (${error.code}); the key broker's log has the reason`,
        {
          stage: error.stage,
          // What the enclave is, when its evidence verified (from that one verification).
          evidence: error.evidence,
          detail: `attestation failed at stage ${error.stage}: ${error.code}: ${refusedBecause(error, keyId)}`,
          cause: error,
        },
      );
    }
    const verified = {
      tee: enclave.tee,
      simulated: enclave.simulated,
      measurement: enclave.measurement,
      manifestDigest: enclave.manifestDigest,
      documentDigest: enclave.documentDigest,
    };
    // The key goes only to a deployment whose attested manifest says its model is sealed under it.
    // The key id alone says so: parseManifest refuses a manifest whose model.keyId and
    // model.sealedAtRest disagree (a key id with sealedAtRest false, or null with it true:
    // manifests/schema.ts `model`), so a manifest naming this key id seals its model at rest.
    const model = parseManifest(enclave.manifest.manifest).model;
    if (model.keyId !== keyId) {
      throw new BrokerError(
        "KBS_KEY_NOT_IN_MANIFEST",
        403,
        `manifest model.keyId: expected "${keyId}" with sealedAtRest true, found ${model.keyId === null ? "null" : `"${model.keyId}"`} (sealedAtRest ${model.sealedAtRest})`,
        { evidence: verified },
      );
    }
    const wrapped = wrapModelKey({
      keyId,
      key: entry.key,
      enclaveSealingPublicKey: enclave.sealingPublicKey,
      challenge: challengeBytes,
      documentDigest: enclave.documentDigest,
    });
    return { wrapped, record: { keyId, ...verified } };
  }
}

/**
 * `entry`'s release policy, parsed as `kbs serve` and `connect()` parse theirs: a policy built in
 * code (a cast, a JavaScript caller) has the file's rules too, so a field it lacks is refused here,
 * never compared with undefined at each release (a check silently not made). The parsed copy is
 * the broker's own: the caller changing its object later changes nothing.
 */
function releasePolicy(entry: BrokerKey): ClientPolicy {
  try {
    return parseClientPolicy(entry.policy);
  } catch (error) {
    const message = error instanceof ClientError ? error.message.replace(/^client policy: /, "") : String(error);
    throw new RangeError(`key "${entry.keyId}" policy: ${message}`, { cause: error });
  }
}

/**
 * The verifier's reason for refusing `error`, as the broker's log gives it: its message, but for
 * simulated evidence, whose SDK words (client/policy.ts verifyWithClientPolicy) point a client to
 * the policy `cloister up` writes. A broker's release policy is the operator's own file: what fits
 * it is its trustSimulator (development only) or hardware. Only that path names the code here (the
 * simulator's roots are an anchor only of a policy that trusts it), so the whole message is its.
 */
function refusedBecause(error: AttestationError, keyId: string): string {
  if (error.code !== "SIMULATED_EVIDENCE_NOT_TRUSTED") return error.message;
  return (
    `${INSECURE_SIMULATOR_EVIDENCE_FOUND}, which the release policy of key "${keyId}" does not trust ` +
    "(attestation.trustSimulator: false); this enclave runs on the simulator: deploy it on SEV-SNP or TDX " +
    "hardware, or, for development only, set attestation.trustSimulator: true in that release policy and " +
    "restart the broker (kbs serve then keeps the key on loopback: anyone who reaches it can forge such evidence)"
  );
}

function malformed(detail: string, cause?: unknown): BrokerError {
  return new BrokerError(
    "KBS_REQUEST_MALFORMED",
    400,
    `release request: ${detail}`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * A fault of the broker while `during` (not a refusal of the caller): 500 INTERNAL, telling the
 * caller nothing more; `error` is its cause, and what it was goes to the broker's log (detail).
 * An error the broker did not make itself may say anything, so the log names its class, its code
 * when it has one, and its message; the broker's own errors never carry a key, nonce or token.
 */
export function brokerFault(during: string, error: unknown): BrokerError {
  let what: string;
  if (error instanceof AttestationError) what = `${error.stage} ${error.code}: ${error.message}`;
  else if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    what = `${error.name}${typeof code === "string" ? ` ${code}` : ""}: ${error.message}`;
  } else what = `${typeof error === "string" ? error : `a thrown ${typeof error}`} (not an Error)`;
  return new BrokerError("INTERNAL", 500, "internal error in the key broker; its log has the reason", {
    detail: `internal error while ${during}: ${what}`,
    cause: error,
  });
}

/** `error` as the broker answers and logs it: a BrokerError as it is, anything else a fault (brokerFault). */
export function asBrokerError(error: unknown, during: string): BrokerError {
  return error instanceof BrokerError ? error : brokerFault(during, error);
}

/**
 * What in a release policy gives the key to more than one known image: `kbs check` shows these and
 * `kbs serve` warns of each at start. The signed manifest is public (every document carries it),
 * so without pinned measurements any guest on genuine hardware that presents it gets the key.
 */
export function releaseRisks(policy: ClientPolicy): string[] {
  return policyRisks(policy, "gets the key");
}
