/**
 * The enclave: boot (DESIGN.md "Boot and attestation") and the handling of one sealed request.
 *
 * Boot, in order: verify the operator's signature on the manifest; check the TEE mode is one the
 * manifest allows; open the model (the engine hashes the file and refuses a digest that differs
 * from the manifest's before loading it); make fresh per-boot X25519 and Ed25519 keys; ask the TEE
 * for evidence whose REPORT_DATA binds both keys and the manifest digest; sign the attestation
 * document with the Ed25519 key.
 *
 * A request: open the envelope (key id, decryption, header binding, freshness, replay), check the
 * request body, then the zero-trust pipeline of DESIGN.md — the manifest's request policy (first
 * BLOCK ends it), PII redaction or blocking, inference, and an audit record for every opened
 * request, blocked or allowed (hash-chained, signed by the attested Ed25519 key, hashes and
 * decisions only). Every chunk of the answer is sealed into a response frame. Nothing here logs
 * a prompt or an answer.
 */
import type { JWK } from "jose";
import nacl from "tweetnacl";
import { z } from "zod";
import { computeReportData } from "../attestation/binding.ts";
import { toHex, utf8 } from "../attestation/bytes.ts";
import type { AttestationCollateral } from "../attestation/collateral.ts";
import { sha256 } from "../attestation/crypto.ts";
import { createAttestationDocument, createNonceAnswer, type EnclaveKeys } from "../attestation/document.ts";
import {
  describeManifestTeeViolations,
  launchMeasurement,
  manifestTeeEvidenceOfDocument,
  manifestTeeViolations,
} from "../attestation/manifest-tee.ts";
import type { SnpProduct } from "../attestation/snp/parse.ts";
import { errorText } from "../client/cli/output.ts";
import { manifestDigest } from "../manifests/digest.ts";
import { formatIssue } from "../manifests/issues.ts";
import type { Manifest } from "../manifests/schema.ts";
import { verifyManifest } from "../manifests/sign.ts";
import { SealedModelError } from "../models/sealed.ts";
import { TENANT_HEADER, TENANT_LABEL_PATTERN } from "../sealed/envelope.ts";
import {
  FRAME_ERROR_KINDS,
  MAX_ERROR_DETAIL_LENGTH,
  type RedactionKind,
  type Redactions,
  redactionsOf,
} from "../sealed/frames.ts";
import {
  type EnclaveSealingKey,
  enclaveSealingKeyFromSecretKey,
  openRequest,
  ReplayGuard,
  type ResponseSealer,
  SealedError,
} from "../sealed/index.ts";
import { signReceipt, textHash } from "../sealed/receipt.ts";
import { CHAT_ROLES, REQUEST_LIMITS } from "../sealed/request-limits.ts";
import {
  type GenerateRequest,
  type GenerationEvent,
  type InferenceEngine,
  openInferenceEngine,
  type PromptRendering,
} from "./engine.ts";
import { EnclaveError } from "./errors.ts";
import { DEFAULT_FRAME_INTERVAL_MS } from "./frame-interval.ts";
import { requestModelKey } from "./model-key.ts";
import {
  checkModelFile,
  closeThenRemoveCopy,
  type StagedModel,
  stageModel,
  stageSealedModel,
} from "./model-staging.ts";
import {
  type AuditEntry,
  AuditWriter,
  applyPiiPolicy,
  type CompiledRequestPolicy,
  compileRequestPolicy,
  ed25519Signer,
  type PiiFinding,
  piiAcrossMessages,
} from "./pipeline/index.ts";
import { throwIfStoppedBy } from "./stop.ts";
import {
  checkEvidenceSourceOptions,
  createEvidenceSource,
  type EvidenceSource,
  isSimulatedTeeMode,
  type TeeMode,
} from "./tee.ts";
import { nodeSyncPrimitives } from "./x25519.ts";

export interface EnclaveConfig {
  /** The operator-signed manifest (compact JWS). */
  readonly manifestJws: string;
  /** Operator public keys trusted to sign manifests. */
  readonly operatorKeys: readonly JWK[];
  readonly modelPath: string;
  readonly tee: TeeMode;
  readonly now?: () => Date;
  /** Test seam: an already-open engine (its model digest is still checked against the manifest). */
  readonly engine?: InferenceEngine;
  /**
   * Least time between two data frames of one answer, after the first (default
   * DEFAULT_FRAME_INTERVAL_MS); text decoded meanwhile goes out together in the next frame. The
   * first text and the end of an answer are never held back. 0: a frame whenever the writer asks.
   */
  readonly frameIntervalMs?: number;
  /**
   * The key broker's URL: required when the manifest's model is sealed at rest (its key is released
   * to this boot's attested keys only), refused otherwise.
   */
  readonly kbsUrl?: string;
  /** TDX: the directory of Intel PCS collateral served next to the document (enclave/tee.ts). */
  readonly tdxCollateralDir?: string;
  /** SNP: an AMD KDS cache for a VCEK the host's certificate table lacks (enclave/tee.ts). */
  readonly kdsUrl?: string;
  /** SNP: the processor to ask KDS about when a version 2 report cannot tell it. */
  readonly snpProduct?: SnpProduct;
  /**
   * Aborting stops the boot (`cloister enclave` on SIGTERM or Ctrl-C): between its steps, and within
   * the slow ones (the key broker's retries, the model's copy or decryption, its load), removing the
   * model copy staged so far; the boot then rejects with the signal's reason. Once the boot has
   * resolved, close() the enclave instead.
   */
  readonly signal?: AbortSignal;
}

/** The manifest's `tee.platforms` name of each mode (they coincide). */
const PLATFORM: Record<TeeMode, string> = {
  snp: "snp",
  tdx: "tdx",
  "azure-snp": "azure-snp",
  "azure-tdx": "azure-tdx",
  "sim-snp": "sim-snp",
  "sim-tdx": "sim-tdx",
};

// The limits are the ones clients check before sealing (sealed/request-limits.ts).
const L = REQUEST_LIMITS;
const messageSchema = z.strictObject({
  role: z.enum(CHAT_ROLES),
  content: z.string().max(L.maxTextChars),
});
const samplingShape = {
  maxTokens: z.int().min(L.maxTokens.min).max(L.maxTokens.max).optional(),
  temperature: z.number().min(L.temperature.min).max(L.temperature.max).optional(),
  topP: z.number().gt(L.topP.above).max(L.topP.max).optional(),
  seed: z.int().min(L.seed.min).max(L.seed.max).optional(),
  stop: z.array(z.string().min(L.stop.minChars).max(L.stop.maxChars)).max(L.stop.maxCount).optional(),
  /** The client's secret cache scope (random per session by default): KV cache is reused only within it. */
  tenant: z
    .string()
    .regex(/^[0-9a-f]{32}$/)
    .optional(),
};
const chatBodySchema = z.strictObject({ messages: z.array(messageSchema).min(1).max(L.maxMessages), ...samplingShape });
const completeBodySchema = z.strictObject({ prompt: z.string().max(L.maxTextChars), ...samplingShape });

/** A sealed model the boot refuses (its header, or unsealing it): the cause's code in the message. */
function sealedModelRefused(error: unknown): EnclaveError {
  return new EnclaveError(
    "BOOT_SEALED_MODEL_REFUSED",
    500,
    `boot: ${(error as { code?: string }).code ?? "ERROR"}: ${(error as Error).message}`,
    { cause: error },
  );
}

/** A streamed answer's reader, as abandon tells the stream it has gone. */
interface Reader {
  gone: boolean;
  wake: () => void;
}

export interface StreamedAnswer {
  /** Sealed frames (wire bytes), in order; the last one is a final or error frame. */
  readonly frames: AsyncIterable<Uint8Array>;
  /**
   * Ends the answer for a reader that went away, whether or not it read a frame: generation stops,
   * its sequence is freed, and the request is audited (CLIENT_ABORTED unless it was complete).
   * Harmless after the answer has ended.
   */
  abandon(): Promise<void>;
}

/** Audit lines the host has not collected yet; beyond this the enclave refuses new requests. */
export const MAX_AUDIT_BACKLOG = 10_000;

/**
 * The most audit lines one `GET /audit` answer carries (about 1 MB of JSON, 1.7 MB at the longest
 * lines): a backlog is handed over in pages, so neither the enclave's event loop (it builds the
 * answer synchronously, between frames of the answers under way) nor the host's memory ever holds
 * the whole of it at once. A host that gets a page with lines asks again at once.
 */
export const AUDIT_PAGE_MAX_LINES = 1000;

export class Enclave {
  private readonly replayGuard = new ReplayGuard();
  private readonly requestPolicy: CompiledRequestPolicy;
  private readonly audit: AuditWriter | null;
  /** Audit lines not yet collected by the host, in record order; `auditNext` is the next seq. */
  private readonly auditBacklog: { seq: number; line: string }[] = [];
  private auditNext = 0;
  /**
   * Sealed requests under way whose audit record is not tried yet: each is counted from its start
   * (handleSealed) until its record is written (or fails to be), or until it is refused before one
   * is due. A stopping enclave says these with its backlog (enclave/run.ts).
   */
  private recordsOwed = 0;
  /**
   * The code of the first audit record that could not be written, or null. Auditing fails closed:
   * from then on every new sealed request is refused (AUDIT_FAILED) until the enclave is restarted.
   */
  private auditFailure: string | null = null;
  /** This boot's public keys (bound in REPORT_DATA); the secret halves never leave this object. */
  readonly publicKeys: { readonly sealing: Uint8Array; readonly signing: Uint8Array };
  /** The key pairs: a true private field, unreachable from outside even at run time. */
  readonly #keys: EnclaveKeys;
  /** Ed25519 under the attested signing key, native where Node has it (receipts: every answer). */
  readonly #signReceipt: (message: Uint8Array) => Uint8Array;

  private constructor(
    readonly manifest: Manifest,
    readonly manifestJws: string,
    readonly document: string,
    keys: EnclaveKeys,
    readonly evidenceSource: EvidenceSource,
    private readonly sealingKey: EnclaveSealingKey,
    private readonly engine: InferenceEngine,
    private readonly now: () => Date,
    readonly documentDigest: string,
    private readonly stagedModel: StagedModel | null,
    private readonly frameIntervalMs: number,
    /** SHA-256 (hex) of the signed manifest (bound in REPORT_DATA; named in receipts). */
    readonly manifestDigest: string,
  ) {
    this.#keys = keys;
    this.#signReceipt = ed25519Signer(keys.signing.secretKey);
    this.publicKeys = Object.freeze({
      sealing: keys.sealing.publicKey.slice(),
      signing: keys.signing.publicKey.slice(),
    });
    this.requestPolicy = compileRequestPolicy(manifest.requestPolicy);
    this.audit = manifest.audit.enabled
      ? new AuditWriter({
          signingSecretKey: keys.signing.secretKey,
          modelSha256: manifest.model.sha256,
          attestationDigest: documentDigest,
          settings: manifest.audit,
          now,
        })
      : null;
  }

  /**
   * Audit lines from `from` on, for the host to store: the first AUDIT_PAGE_MAX_LINES of them, and
   * `next`, the one to ask for after them. Asking for `from` acknowledges every line before it:
   * those are dropped here. Lines are never dropped unacknowledged; when the host stops
   * collecting, the enclave refuses new requests instead (AUDIT_BACKLOG_FULL).
   */
  collectAudit(
    from: number,
    boot: string | null = this.documentDigest,
  ): { boot: string; signingKey: string; from: number; lines: string[]; next: number } {
    // Only an acknowledgement for *this* boot drops lines: a collector still counting records of a
    // previous boot (the enclave restarted) must not make this boot's unread records disappear.
    if (boot === this.documentDigest) {
      const kept = this.auditBacklog.findIndex((e) => e.seq >= from);
      this.auditBacklog.splice(0, kept === -1 ? this.auditBacklog.length : kept);
    }
    // The backlog's seqs run on without a gap (writeAudit numbers each line it keeps), so the page
    // is from..next-1, and `next` is the record to ask for after it (auditNext once it is the last).
    const page = this.auditBacklog.slice(0, AUDIT_PAGE_MAX_LINES);
    const first = page[0]?.seq ?? this.auditNext;
    return {
      boot: this.documentDigest,
      signingKey: toHex(this.publicKeys.signing),
      from: first,
      lines: page.map((e) => e.line),
      next: first + page.length,
    };
  }

  /** Audit records written and not yet acknowledged by the host (a draining enclave waits for 0). */
  get auditPending(): number {
    return this.auditBacklog.length;
  }

  /**
   * Audit records still to be written by the sealed requests under way (one each): an answer whose
   * record is written is not counted, whether or not its engine has stopped.
   */
  get auditOwed(): number {
    return this.recordsOwed;
  }

  /** True once an audit record could not be written: no new sealed request is served until restart. */
  get auditFailed(): boolean {
    return this.auditFailure !== null;
  }

  /**
   * Fails closed: once a record could not be written, no request is answered (DESIGN.md, the
   * pipeline) and no new session is offered: AUDIT_FAILED (503) until a restart. A pool host then
   * sends new sessions to another member, as for ENCLAVE_DRAINING.
   */
  refuseIfAuditFailed(): void {
    if (this.auditFailure !== null) {
      throw new EnclaveError(
        "AUDIT_FAILED",
        503,
        `audit: expected the audit writer to work, found a record that could not be written (${this.auditFailure}); this enclave serves no more requests: restart it`,
      );
    }
  }

  /**
   * Writes one request's audit record; false when the writer failed. It never throws: a record that
   * fails after the final frame must not cut the answer the client already has. The first failure
   * is logged once, by its code only, and makes the enclave refuse new sealed requests; requests
   * already under way still try to write theirs (the writer's chain advances only on success).
   */
  private writeAudit(entry: AuditEntry): boolean {
    if (this.audit === null) return true;
    try {
      const written = this.audit.record(entry);
      this.auditBacklog.push({ seq: this.auditNext++, line: written.line });
      return true;
    } catch (error) {
      if (this.auditFailure === null) {
        this.auditFailure = errorCode(error, "INTERNAL");
        process.stderr.write(
          `cloister enclave: audit record not written (${this.auditFailure}): refusing new sealed requests (AUDIT_FAILED) until restarted\n`,
        );
      }
      return false;
    }
  }

  static async boot(config: EnclaveConfig): Promise<Enclave> {
    const now = config.now ?? (() => new Date());
    const frameIntervalMs = config.frameIntervalMs ?? DEFAULT_FRAME_INTERVAL_MS;
    if (!(Number.isFinite(frameIntervalMs) && frameIntervalMs >= 0 && frameIntervalMs <= 1000)) {
      throw new RangeError(`frameIntervalMs: expected 0..1000, found ${frameIntervalMs}`);
    }
    const verified = await verifyManifest(config.manifestJws, config.operatorKeys).catch((error: unknown) => {
      throw new EnclaveError("BOOT_MANIFEST_INVALID", 500, `boot: manifest refused: ${(error as Error).message}`, {
        cause: error,
      });
    });
    const manifest = verified.manifest;
    const platform = PLATFORM[config.tee];
    if (!(manifest.tee.platforms as readonly string[]).includes(platform)) {
      throw new EnclaveError(
        "BOOT_PLATFORM_NOT_ALLOWED",
        500,
        `boot: manifest tee.platforms [${manifest.tee.platforms.join(", ")}] does not include ${platform}`,
      );
    }
    // Sealed requests carry no metadata yet: a metadataEquals rule could never match, so a
    // manifest that relies on one is refused rather than silently not enforced.
    const metadataRule = manifest.requestPolicy.rules.find((rule) => rule.kind === "metadataEquals");
    if (metadataRule !== undefined) {
      throw new EnclaveError(
        "BOOT_POLICY_UNSUPPORTED",
        500,
        `boot: requestPolicy rule "${metadataRule.id}" is metadataEquals, but sealed requests carry no metadata yet`,
      );
    }
    // Before anything slow (evidence, the key broker, the model): a --kbs-url that contradicts the
    // manifest is bad input (the command line exits 2), said at once.
    const sealedModel = manifest.model.sealedAtRest ? (manifest.model.keyId as string) : null;
    if (sealedModel !== null && config.kbsUrl === undefined) {
      throw new EnclaveError(
        "BOOT_KBS_REQUIRED",
        500,
        `boot: --kbs-url: expected the key broker's URL, as the manifest's model is sealed at rest (model.sealedAtRest true, model.keyId "${sealedModel}"), found none`,
      );
    }
    if (sealedModel === null && config.kbsUrl !== undefined) {
      throw new EnclaveError(
        "BOOT_KBS_UNUSED",
        500,
        "boot: --kbs-url: expected none, as the manifest's model is not sealed at rest (model.sealedAtRest false), found a key broker URL",
      );
    }
    const sourceOptions = {
      tdxCollateralDir: config.tdxCollateralDir,
      kdsUrl: config.kdsUrl,
      snpProduct: config.snpProduct,
    };
    // So are the options of --tee, checked here before the evidence source is made (the simulator
    // hashes its measured files for it).
    checkEvidenceSourceOptions(config.tee, sourceOptions);
    // Then, still before anything slow: a --model file that is missing, unreadable or not the
    // manifest's size, or a sealed one whose header is not the manifest's, stops the boot now, not
    // after the evidence or after the key broker released the model key (never asked for then).
    // Only the simulator may decrypt a sealed model to the temp directory (no tmpfs /dev/shm): one
    // answer for the check now and for the staging below.
    const allowDisk = isSimulatedTeeMode(config.tee);
    if (sealedModel !== null || config.engine === undefined) {
      const expected = { sizeBytes: manifest.model.sizeBytes, keyId: sealedModel, allowDisk };
      await checkModelFile(config.modelPath, expected).catch((error: unknown) => {
        throw error instanceof SealedModelError ? sealedModelRefused(error) : error;
      });
    }
    const signal = config.signal;
    signal?.throwIfAborted();
    // Keys, evidence and the attestation document first: a sealed model's key is released only to
    // this attested boot, so the document must exist before the model can be read.
    const signing = nacl.sign.keyPair();
    const sealing = nacl.box.keyPair();
    const keys: EnclaveKeys = { signing, sealing };
    const evidenceSource = await createEvidenceSource(config.tee, sourceOptions);
    const bootManifestDigest = await manifestDigest(config.manifestJws);
    const reportData = await computeReportData({
      signingPublicKey: signing.publicKey,
      sealingPublicKey: sealing.publicKey,
      manifestDigest: bootManifestDigest,
    });
    const evidence = await evidenceSource.collect(reportData);
    // The manifest's tee section against this launch's own evidence (parsed: the enclave trusts its
    // own TEE; clients verify it), as clients check it (attestation/manifest-tee.ts): a measurement,
    // TCB or flag the signed manifest refuses is a misdeployment, said now, before the key broker is
    // asked for a model key or the model is loaded, not by the first client's refusal.
    // A report that names no processor (SNP version 2) is decoded with --snp-product's TCB layout, as
    // the evidence source asks KDS about it. Evidence of its own that does not parse is a broken TEE,
    // said with a boot code (the parse error kept as the cause), not a bare ParseError.
    let ownEvidence: ReturnType<typeof manifestTeeEvidenceOfDocument>;
    try {
      ownEvidence = manifestTeeEvidenceOfDocument(evidence, config.snpProduct);
    } catch (error) {
      throw new EnclaveError(
        "BOOT_EVIDENCE_INVALID",
        500,
        `boot: this launch's evidence (${evidence.type}): expected a report or quote that parses, found one that does not: ${(error as Error).message}`,
        { cause: error },
      );
    }
    const teeViolations = manifestTeeViolations(ownEvidence, manifest.tee);
    if (teeViolations.length > 0) {
      throw new EnclaveError(
        "BOOT_TEE_NOT_ALLOWED",
        500,
        `boot: this launch's evidence does not meet the manifest: ${describeManifestTeeViolations(teeViolations)}`,
      );
    }
    const document = await createAttestationDocument({
      keys,
      evidence,
      manifest: config.manifestJws,
      maaToken: null,
      now: now(),
    });
    const documentDigest = toHex(await sha256(utf8(document)));
    // The collateral served with the document: read (or made) now, so a bad --tdx-collateral stops
    // the boot instead of the first client's attestation.
    const bootCollateral = await evidenceSource.collateral(now());
    signal?.throwIfAborted();

    // The engine hashes and loads a private in-memory copy, never the file the host could rewrite.
    // A sealed model is decrypted into that copy with the key the broker released to this boot.
    let staged: StagedModel | null = null;
    let expectedModelSha256 = manifest.model.sha256;
    if (sealedModel !== null) {
      const own = launchMeasurement(ownEvidence);
      const key = await requestModelKey({
        kbsUrl: config.kbsUrl as string, // required above for a sealed model
        keyId: sealedModel,
        document,
        documentDigest,
        collateral: bootCollateral,
        answer: (nonce) => createNonceAnswer({ keys, document, nonce, now: now() }),
        sealingSecretKey: sealing.secretKey,
        // Named in a refusal, to compare with the broker's release policy.
        publicValues: {
          tee: config.tee,
          measurementField: own.field,
          measurement: toHex(own.value),
          modelSha256: manifest.model.sha256,
        },
        // A busy broker, or one that refused the challenge, is asked again: the boot says so on stderr.
        onRetry: (message) => process.stderr.write(`cloister enclave: ${message}\n`),
        ...(signal === undefined ? {} : { signal }),
      });
      try {
        const unsealed = await stageSealedModel(
          config.modelPath,
          { sha256: manifest.model.sha256, sizeBytes: manifest.model.sizeBytes, keyId: sealedModel },
          { keyId: sealedModel, key },
          { allowDisk, ...(signal === undefined ? {} : { signal }) },
        ).catch((error: unknown) => {
          throwIfStoppedBy(error, signal);
          throw sealedModelRefused(error);
        });
        staged = unsealed;
        // The sealed header's plaintextSha256 (model-staging.ts): the same value as the staged
        // copy's sha256 below, so the engine's and the boot's digest comparisons cannot fail for a
        // sealed model. What makes the decrypted bytes the sealed ones is unsealModelFile's own
        // check of the plaintext against that digest (SEALED_MODEL_PLAINTEXT_MISMATCH, under the
        // manifest's pin of the sealed file): never drop it because these comparisons exist.
        expectedModelSha256 = unsealed.sha256;
      } finally {
        key.fill(0);
      }
    } else if (config.engine === undefined) {
      staged = await stageModel(config.modelPath, manifest.model.sizeBytes, signal === undefined ? {} : { signal });
    }
    let engine: InferenceEngine;
    try {
      engine =
        config.engine ??
        (await openInferenceEngine({
          modelPath: (staged as StagedModel).path,
          // The private copy was hashed as it was written (model-staging.ts): each byte of the
          // model is read once at boot; the engine still compares the digest and checks the copy
          // did not change while it loaded.
          modelSha256: (staged as StagedModel).sha256,
          expectedSha256: expectedModelSha256,
          // Its errors name the file the operator gave (--model), not the private copy in /dev/shm.
          modelName: config.modelPath,
          sequences: manifest.inference.sequences,
          contextSize: manifest.inference.contextSize,
          threads: manifest.inference.threads,
          ...(manifest.model.chatWrapper === undefined ? {} : { chatWrapper: manifest.model.chatWrapper }),
          ...(signal === undefined ? {} : { signal }),
        }));
    } catch (error) {
      // The load's own error (or, stopped, the stop's reason) is the boot's, whatever the removal
      // does: a copy it could not remove is recorded, and `cloister enclave` names it, after a
      // failed boot as after a stop (modelCopiesLeft).
      await staged?.remove().catch(() => {});
      throw error;
    }
    if (engine.info.modelSha256 !== expectedModelSha256) {
      await refusedAfterLoad(engine, staged);
      throw new EnclaveError(
        "BOOT_MODEL_DIGEST_MISMATCH",
        500,
        `boot: the engine's model is not the manifest's model (expected sha256 ${expectedModelSha256}${sealedModel === null ? "" : ", the sealed model's plaintext"}, found ${engine.info.modelSha256})`,
      );
    }
    // llama.cpp runs at most the model's training context (engine.ts), and node-llama-cpp rounds a
    // context up to a multiple of 256 only while the result stays below the training context (a
    // context within 256 of it runs as given: 2000 of 2048; no schema rule can say which without
    // the model). A manifest that states another would attest a context that does not run;
    // a larger one would also fail every request using its default maxTokens (at most
    // contextSize, schema.ts): refuse before serving.
    if (engine.info.contextSize !== manifest.inference.contextSize) {
      await refusedAfterLoad(engine, staged);
      throw new EnclaveError(
        "BOOT_CONTEXT_SIZE_MISMATCH",
        500,
        `boot: inference.contextSize: expected the context that runs (${engine.info.contextSize}), found ${manifest.inference.contextSize} in the manifest; llama.cpp runs at most the model's training context and rounds a smaller context up to a multiple of 256 unless that would reach the training context: set inference.contextSize to ${engine.info.contextSize} (maxTokens at most that), or to another multiple of 256 at most the model's training context`,
      );
    }
    try {
      const sealingKey = await enclaveSealingKeyFromSecretKey(sealing.secretKey, nodeSyncPrimitives(sealing.secretKey));
      return new Enclave(
        manifest,
        config.manifestJws,
        document,
        keys,
        evidenceSource,
        sealingKey,
        engine,
        now,
        documentDigest,
        staged,
        frameIntervalMs,
        toHex(bootManifestDigest),
      );
    } catch (error) {
      await refusedAfterLoad(engine, staged);
      throw error;
    }
  }

  /** The vendor collateral served next to the document (attestation/collateral.ts), or null. */
  collateral(): Promise<AttestationCollateral | null> {
    return this.evidenceSource.collateral(this.now());
  }

  async answerNonce(nonce: Uint8Array): Promise<string> {
    return createNonceAnswer({ keys: this.#keys, document: this.document, nonce, now: this.now() });
  }

  /**
   * The signed head of this boot's audit log, carrying the asker's nonce (enclave/pipeline/audit.ts):
   * with it a verifier detects records the host cut from the end of the log it stores.
   */
  auditCheckpoint(nonce: Uint8Array): string {
    if (this.audit === null) {
      throw new EnclaveError("AUDIT_DISABLED", 409, "audit checkpoint: this deployment's manifest disables auditing");
    }
    return this.audit.checkpoint(nonce);
  }

  /**
   * Opens a sealed request and starts answering it. Errors before the request is open are thrown
   * as EnclaveError (they become HTTP errors); after that, every failure is a sealed error frame.
   */
  async handleSealed(envelope: Uint8Array, hostTenant: string | null, signal: AbortSignal): Promise<StreamedAnswer> {
    let owed = true;
    this.recordsOwed++;
    const written = () => {
      if (owed) this.recordsOwed--;
      owed = false;
    };
    try {
      return await this.answerSealed(envelope, hostTenant, signal, written);
    } catch (error) {
      // Refused before its record was due (or after it was written: counted once).
      written();
      throw error;
    }
  }

  /** handleSealed's work; `written` is called once its audit record was tried. */
  private async answerSealed(
    envelope: Uint8Array,
    hostTenant: string | null,
    signal: AbortSignal,
    written: () => void,
  ): Promise<StreamedAnswer> {
    this.refuseIfAuditFailed();
    if (this.auditBacklog.length >= MAX_AUDIT_BACKLOG) {
      throw new EnclaveError("AUDIT_BACKLOG_FULL", 503, "audit records are not being collected by the host");
    }
    // The host's label for the audit record (its API-key id). Checked before anything is opened: a
    // label the audit writer would refuse must not let an answer go out without its record.
    if (hostTenant !== null && !TENANT_LABEL_PATTERN.test(hostTenant)) {
      throw new EnclaveError(
        "TENANT_HEADER_INVALID",
        400,
        `${TENANT_HEADER}: expected 1-64 characters of A-Z a-z 0-9 _ . -, found ${hostTenant.length} characters`,
      );
    }
    let opened: Awaited<ReturnType<typeof openRequest>>;
    try {
      opened = await openRequest(envelope, this.sealingKey, this.replayGuard, this.now().getTime());
    } catch (error) {
      if (error instanceof SealedError) {
        // A full replay cache is overload (anyone can seal to the public key), not a bad request.
        const status =
          error.code === "WRONG_ENCLAVE_KEY" || error.code === "REQUEST_REPLAYED"
            ? 409
            : error.code === "REPLAY_CACHE_FULL"
              ? 503
              : 400;
        throw new EnclaveError(error.code, status, error.message, { cause: error });
      }
      throw error;
    }
    const { request, sealer, requestHash } = opened;
    /** False once this request's record could not be written: it then ends in AUDIT_FAILED. */
    let audited = true;
    const audit = (fields: Omit<AuditEntry, "requestId" | "tenant">, tenant: string): boolean => {
      audited = this.writeAudit({ requestId: request.requestId, tenant, ...fields });
      written();
      return audited;
    };
    /** A one-frame refusal, sent after its audit record: AUDIT_FAILED (no opening) when that failed. */
    const errorAnswer = (code: string, detail: string | null, opening: string | null = null) =>
      single(audited ? sealer.error(frameErrorCode(code), detail, opening) : auditFailedFrame(sealer));
    // The audit record's opening, for the client only (sealed): with it the client can show that the
    // record the host stores is about its prompt (and this answer). An answer carries it in its final
    // frame (derived when that frame is built, not before the first token); a request refused or
    // failed after its prompt was recorded, in the error frame.
    const writer = this.audit;
    const auditOpening = () => (writer?.commits === true ? toHex(writer.openingFor(request.requestId)) : null);
    const promptOpening = () => (writer?.commitsPrompts === true ? auditOpening() : null);
    // Audit vocabulary: "block" is a decision of the request policy or the PII filter; a request
    // that fails before or during inference (invalid body, too long, engine error) is recorded as
    // not blocked, with its error code.
    const refused = { prompt: null, response: null, usage: null } as const;

    const parsed = (request.kind === "chat" ? chatBodySchema : completeBodySchema).safeParse(request.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0] as z.core.$ZodIssue;
      audit(
        { decision: "allow", blockedBy: null, ruleId: null, piiFindings: [], error: "REQUEST_INVALID", ...refused },
        hostTenant ?? "unknown",
      );
      return errorAnswer(
        "REQUEST_INVALID",
        // "body.messages.0.content: expected …, found a string of N characters": never the text.
        errorDetail(formatIssue(issue, { body: request.body }, { root: "body", prefix: ["body"] })),
      );
    }
    const body = parsed.data;
    // KV-cache reuse is scoped only by the tenant value the client sealed into the request (random
    // per session unless the client shares a secret scope); the host's tenant header is never
    // trusted for it, so the host cannot make the enclave share one tenant's cached state with
    // requests of its own. The host's API-key id only labels the audit record.
    const tenant = body.tenant;
    const auditTenant = hostTenant ?? "unknown";
    const maxTokens = Math.min(body.maxTokens ?? this.manifest.inference.maxTokens, this.manifest.inference.maxTokens);
    const common = {
      maxTokens,
      ...(body.temperature === undefined ? {} : { temperature: body.temperature }),
      ...(body.topP === undefined ? {} : { topP: body.topP }),
      ...(body.seed === undefined ? {} : { seed: body.seed }),
      ...(body.stop === undefined ? {} : { stop: body.stop }),
      ...(tenant === undefined ? {} : { tenant }),
      signal,
    };
    const original: GenerateRequest =
      "messages" in body ? { ...common, messages: body.messages } : { ...common, prompt: body.prompt };
    const text = "messages" in body ? body.messages.map((m) => m.content).join("\n") : body.prompt;
    /** The record of a request the policy or the PII filter blocked (it commits to the prompt). */
    const auditBlock = (blockedBy: "policy" | "pii", ruleId: string | null, piiFindings: PiiFinding[]) =>
      audit(
        { decision: "block", blockedBy, ruleId, piiFindings, error: null, prompt: text, response: null, usage: null },
        auditTenant,
      );

    // 1. Policy over the request as the client sent it: the first BLOCK ends it. The prompt is
    // rendered and tokenized once here; inference reuses it when PII redaction changed nothing.
    let estimatedTokens: number;
    let rendering: PromptRendering;
    try {
      rendering = await this.engine.renderPrompt(original);
      estimatedTokens = rendering.tokenCount;
    } catch (error) {
      // What renderPrompt refuses for the request's fault carries a code (ENGINE_REQUEST,
      // CHAT_TEMPLATE_REFUSED…); an error without one is the enclave's failure (node-llama-cpp's
      // tokenizer, a chat wrapper), which a retry may get past: not "the same request is refused again".
      const code = errorCode(error, "INFERENCE_FAILED");
      audit(
        { decision: "allow", blockedBy: null, ruleId: null, piiFindings: [], error: code, ...refused },
        auditTenant,
      );
      return errorAnswer(code, null);
    }
    const decision = this.requestPolicy.evaluate({
      kind: request.kind,
      model: this.manifest.model.file,
      text,
      estimatedTokens,
      metadata: {},
    });
    if (decision.decision === "block") {
      auditBlock("policy", decision.ruleId, []);
      return errorAnswer("POLICY_BLOCKED", errorDetail(decision.reason), promptOpening());
    }

    // 2. PII: redact (or block on) what the manifest names, before the model sees anything.
    const findings = new Map<RedactionKind, number>();
    const filter = (content: string): string | null => {
      const outcome = applyPiiPolicy(this.manifest.requestPolicy.pii, content);
      for (const f of outcome.findings) findings.set(f.entity, (findings.get(f.entity) ?? 0) + f.count);
      return outcome.action === "allow" ? outcome.text : null;
    };
    let filtered: GenerateRequest;
    let blocked = false;
    let redacted = false;
    if ("messages" in original) {
      const messages = original.messages.map((m) => {
        const content = filter(m.content);
        if (content === null) blocked = true;
        else if (content !== m.content) redacted = true;
        return { ...m, content: content ?? "" };
      });
      filtered = { ...original, messages };
    } else {
      const prompt = filter(original.prompt);
      if (prompt === null) blocked = true;
      else if (prompt !== original.prompt) redacted = true;
      filtered = { ...original, prompt: prompt ?? "" };
    }
    // An entity split over two messages reaches the model whole: blocked, whatever the mode.
    const split =
      blocked || !("messages" in filtered)
        ? []
        : piiAcrossMessages(
            this.manifest.requestPolicy.pii,
            filtered.messages.map((m) => m.content),
          );
    for (const f of split) findings.set(f.entity, (findings.get(f.entity) ?? 0) + f.count);
    const piiFindings = [...findings].map(([entity, count]) => ({ entity, count })) as PiiFinding[];
    if (blocked || split.length > 0) {
      auditBlock("pii", null, piiFindings);
      const found = (blocked ? piiFindings : split).map((f) => f.entity).join(", ");
      return errorAnswer(
        "PII_BLOCKED",
        errorDetail(blocked ? `PII found: ${found}` : `PII split across messages: ${found}`),
        promptOpening(),
      );
    }

    // Redaction changed what the model sees: render that once more (inference reuses it) and hold
    // the policy to its token count too, as placeholders can make a prompt longer.
    let admitted = decision;
    if (redacted) {
      try {
        rendering = await this.engine.renderPrompt(filtered);
      } catch (error) {
        const code = errorCode(error, "INFERENCE_FAILED"); // as the rendering above: the enclave's failure
        audit({ decision: "allow", blockedBy: null, ruleId: null, piiFindings, error: code, ...refused }, auditTenant);
        return errorAnswer(code, null);
      }
      admitted = this.requestPolicy.evaluate({
        kind: request.kind,
        model: this.manifest.model.file,
        text,
        estimatedTokens: rendering.tokenCount,
        metadata: {},
      });
      if (admitted.decision === "block") {
        auditBlock("policy", admitted.ruleId, piiFindings);
        return errorAnswer("POLICY_BLOCKED", errorDetail(admitted.reason), promptOpening());
      }
    }
    // The rule that admitted the request (null: defaultAction did), for its audit record.
    const ruleId = admitted.ruleId;
    // What the model did not see as written, for the final frame (sealed to the client only): kinds
    // and counts, never the text. Null when redaction changed nothing.
    const redactions: Redactions = redacted ? redactionsOf(findings) : null;

    // 3. Inference. The first event is awaited here, so a full engine queue becomes a plain
    // 503 (the host passes Retry-After on) rather than a frame; the client reseals on retry.
    const events = this.engine.generate(redacted ? filtered : original, rendering);
    let first: IteratorResult<GenerationEvent, void>;
    try {
      first = await events.next();
    } catch (error) {
      const code = errorCode(error, "INFERENCE_FAILED");
      audit(
        {
          decision: "allow",
          blockedBy: null,
          ruleId,
          piiFindings,
          error: code,
          prompt: text,
          response: null,
          usage: null,
        },
        auditTenant,
      );
      if (error instanceof EnclaveError && error.status === 503) throw error;
      return errorAnswer(code, null, promptOpening());
    }
    // 4. Audit, once the answer is complete (or failed, or the client went away).
    const finish = (response: string | null, usage: AuditEntry["usage"], error: string | null): boolean =>
      audit(
        { decision: "allow", blockedBy: null, ruleId, piiFindings, error, prompt: text, response, usage },
        auditTenant,
      );
    // A generator that was never pulled does not run its `finally` when returned: a reader that
    // goes away before the first frame (e.g. during a long prefill) is handled by `abandon` itself.
    let started = false;
    let abandoned = false;
    const reader: Reader = { gone: false, wake: () => {} };
    const frames = this.stream(
      first,
      events,
      sealer,
      finish,
      { requestHash, auditOpening, promptOpening, redactions },
      reader,
      () => {
        started = true;
        return abandoned;
      },
    );
    return {
      frames,
      async abandon() {
        if (started) {
          // A frame may be being made (enclave/server.ts writeFrames no longer waits for it): the
          // answer stops waiting for its engine and ends, its record written, even when the engine
          // is slow to see its request aborted; `return` then ends the frames.
          reader.gone = true;
          reader.wake();
          await frames.return(undefined);
          return;
        }
        if (abandoned) return;
        abandoned = true;
        sealer.dispose();
        finish(null, null, "CLIENT_ABORTED");
        await events.return(undefined);
      },
    };
  }

  /**
   * Seals the answer into frames. A producer pulls generation events as soon as they come (so the
   * next token is being decoded while this one is sealed and written) and holds at most
   * MAX_PENDING_TEXT_EVENTS text chunks; the consumer (the HTTP response) takes every chunk that is
   * waiting when it asks for the next frame and seals them together into one data frame (the
   * protocol allows any text per data frame; the client concatenates). After the first frame, data
   * frames are paced: the next one goes out `frameIntervalMs` after the previous one at the
   * earliest, with everything decoded meanwhile. The first chunk goes out as soon as it is asked
   * for, and the end of the answer (final or error frame) is never held back by the pacing.
   */
  private async *stream(
    first: IteratorResult<GenerationEvent, void>,
    events: AsyncGenerator<GenerationEvent, void, undefined>,
    sealer: ResponseSealer,
    /** Writes the request's audit record; false when it could not be written. */
    finish: (response: string | null, usage: AuditEntry["usage"], error: string | null) => boolean,
    /**
     * SHA-256 (hex) of the request's plaintext JSON, for the receipt; the audit opening (hex) or null
     * for the final frame, and for an error frame (null when the record keeps no prompt commitment);
     * the PII redacted from the prompt, for the final frame.
     */
    ids: {
      readonly requestHash: string;
      readonly auditOpening: () => string | null;
      readonly promptOpening: () => string | null;
      readonly redactions: Redactions;
    },
    /** Set by abandon: a consumer waiting for the engine is woken (`wake`) and ends. */
    reader: Reader,
    /** Called when the first frame is asked for; true: the answer was already abandoned. */
    onStart: () => boolean,
  ): AsyncGenerator<Uint8Array> {
    if (onStart()) return;
    let answer = "";
    /**
     * A high surrogate that ended the last chunk taken, held for the next frame: each frame is
     * UTF-8-encoded on its own, so a pair cut between two frames would reach the client as two
     * U+FFFD while `answer` (and the receipt's hash) held the pair. Sent, alone, before the end.
     */
    let heldHigh = "";
    /** null until the record is tried (once): then whether it was written. */
    let recorded: boolean | null = null;
    /** Set once the final frame has been handed out: the answer is complete. */
    let completed: AuditEntry["usage"] | null = null;
    const record = (usage: AuditEntry["usage"], error: string | null): boolean => {
      recorded ??= finish(error === null ? answer : null, usage, error);
      return recorded;
    };
    /** The error frame of an answer that failed, after its record: AUDIT_FAILED when that failed. */
    const failed = (code: string, detail: string | null): Uint8Array =>
      record(null, code) ? sealer.error(frameErrorCode(code), detail, ids.promptOpening()) : auditFailedFrame(sealer);

    // --- producer: engine events → `texts` (bounded) and, at the end, `end` ---
    const texts: string[] = [];
    /** Shared with the producer closure (a plain object, so TypeScript does not narrow it). */
    const state: {
      end: StreamEnd | null;
      stopped: boolean;
      wakeConsumer: (() => void) | null;
      /** Set while the consumer waits out the frame interval: only the end cuts that wait short. */
      wakeOnEnd: (() => void) | null;
      wakeProducer: (() => void) | null;
    } = { end: null, stopped: false, wakeConsumer: null, wakeOnEnd: null, wakeProducer: null };
    const signalConsumer = () => {
      const wake = state.wakeConsumer;
      state.wakeConsumer = null;
      wake?.();
    };
    /** Wakes the consumer from either wait: for a text, or out the frame interval. */
    const wakeConsumerFully = () => {
      signalConsumer();
      const wake = state.wakeOnEnd;
      state.wakeOnEnd = null;
      wake?.();
    };
    const produce = async () => {
      try {
        let next = first;
        while (next.done !== true) {
          const event = next.value;
          if (event.type !== "text") {
            state.end = { kind: "done", event };
            return;
          }
          if (event.text.length > 0) {
            texts.push(event.text);
            signalConsumer();
          }
          while (texts.length >= MAX_PENDING_TEXT_EVENTS && !state.stopped) {
            await new Promise<void>((resolve) => (state.wakeProducer = resolve));
          }
          if (state.stopped) return;
          next = await events.next();
        }
        state.end = { kind: "ended" };
      } catch (error) {
        state.end = { kind: "failed", error };
      } finally {
        wakeConsumerFully();
      }
    };
    reader.wake = wakeConsumerFully;
    const producing = produce();
    const interval = this.frameIntervalMs;
    /** Resolves after `ms`, or as soon as the answer has ended. */
    const waitOutInterval = (ms: number) =>
      new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          state.wakeOnEnd = null;
          resolve();
        };
        const timer = setTimeout(wake, ms);
        state.wakeOnEnd = wake;
      });

    // --- consumer: one frame per request for the next frame ---
    try {
      let delivered = 0;
      let lastFrameAt = 0;
      for (;;) {
        if (reader.gone) return;
        if (texts.length === 0 && state.end === null) {
          await new Promise<void>((resolve) => (state.wakeConsumer = resolve));
          // After the first frame, let the engine dispatch its next decode (node-llama-cpp starts
          // it from setImmediate) before this frame is sealed and written, so the seal and the
          // socket write overlap the decode instead of preceding it. Costs one event-loop turn.
          if (delivered > 0 && state.end === null) await afterNextDecodeDispatch();
          continue;
        }
        if (texts.length > 0) {
          if (delivered > 0 && state.end === null) {
            const wait = lastFrameAt + interval - performance.now();
            if (wait > 0) {
              await waitOutInterval(wait);
              continue;
            }
          }
          // Once auditing has failed (another request's record), no more text goes out: the answer
          // ends in AUDIT_FAILED, its record tried once. (What went out before could not be helped.)
          if (this.auditFailure !== null) {
            yield failed("AUDIT_FAILED", AUDIT_FAILED_MIDWAY);
            return;
          }
          let text = takeCoalesced(texts);
          const producer = state.wakeProducer;
          state.wakeProducer = null;
          producer?.();
          if (heldHigh !== "") {
            text = heldHigh + text;
            heldHigh = "";
          }
          if (isHighSurrogate(text.charCodeAt(text.length - 1))) {
            heldHigh = text.slice(-1);
            text = text.slice(0, -1);
            if (text === "") continue;
          }
          lastFrameAt = performance.now();
          answer += text;
          delivered++;
          yield sealer.data(text);
          continue;
        }
        if (heldHigh !== "" && this.auditFailure === null) {
          // The answer ended on a lone high surrogate: it goes out as U+FFFD in this frame and in
          // the receipt's hash alike (both encode it with TextEncoder).
          answer += heldHigh;
          yield sealer.data(heldHigh);
          heldHigh = "";
        }
        const last = state.end as StreamEnd;
        if (last.kind === "done") {
          const event = last.event;
          const tokens = { promptTokens: event.usage.promptTokens, completionTokens: event.usage.completionTokens };
          // Once auditing has failed (another request's record), an answer still under way ends in
          // AUDIT_FAILED, no receipt, its record tried once.
          if (this.auditFailure !== null) {
            yield failed("AUDIT_FAILED", AUDIT_FAILED_MIDWAY);
            return;
          }
          const finishReason =
            event.stopReason === "maxTokens" || event.stopReason === "contextFull" ? "length" : "stop";
          // The receipt: what was answered to which request, signed with the attested key.
          const receipt = signReceipt(
            {
              requestHash: ids.requestHash,
              answerHash: textHash(answer),
              finishReason,
              promptTokens: event.usage.promptTokens,
              completionTokens: event.usage.completionTokens,
              modelSha256: this.manifest.model.sha256,
              manifestDigest: this.manifestDigest,
              documentDigest: this.documentDigest,
              time: this.now().toISOString(),
            },
            this.#signReceipt,
          );
          const final = sealer.final({
            promptTokens: event.usage.promptTokens,
            completionTokens: event.usage.completionTokens,
            ttftMs: Math.round(event.usage.ttftMs * 1000) / 1000,
            finishReason,
            receipt,
            auditOpening: ids.auditOpening(),
            redacted: ids.redactions,
          });
          // The audit record is written right after the final frame is handed out, not before, so
          // its hashing and signing is not on the answer's path. It is still written exactly once,
          // here or in `finally` (a consumer that stops after taking the final frame). If it fails,
          // the answer stays whole (writeAudit does not throw) and new requests are refused.
          completed = tokens;
          yield final;
          record(completed, null);
          return;
        }
        if (last.kind === "ended") {
          yield failed("ENGINE_ENDED", "generation ended without a result");
          return;
        }
        throw last.error;
      }
    } catch (error) {
      yield failed(errorCode(error, "INFERENCE_FAILED"), null);
    } finally {
      // No frame follows (a terminal one was sealed, or the client went away): wipe the response key.
      sealer.dispose();
      // The consumer stopped early (client went away): free the sequence, still audit the request;
      // once the final frame was handed out, the answer was complete.
      if (completed !== null) record(completed, null);
      else record(null, "CLIENT_ABORTED");
      state.stopped = true;
      const producer = state.wakeProducer;
      state.wakeProducer = null;
      producer?.();
      // Queued behind a `next()` the producer may still be waiting on; then the producer sees
      // `stopped` and pulls no more.
      await events.return(undefined);
      await producing;
    }
  }

  /**
   * Frees the engine and removes the private model copy, tried whatever the engine's close does;
   * when both fail, an AggregateError of both (closeThenRemoveCopy).
   */
  close(): Promise<void> {
    return closeThenRemoveCopy(
      () => this.engine.close(),
      this.stagedModel,
      "closing the enclave",
      "the engine's close",
    );
  }
}

/**
 * The clean-up of a boot refused once its engine loaded, which never replaces the refusal the boot
 * then throws: the copy's removal is tried whatever the engine's close does (as closeThenRemoveCopy),
 * a copy it could not remove is recorded and `cloister enclave` names it (modelCopiesLeft), and an
 * engine whose close failed is said on stderr, the enclave's log.
 */
async function refusedAfterLoad(engine: InferenceEngine, staged: StagedModel | null): Promise<void> {
  await engine.close().catch((error: unknown) => {
    // On one line, its invisible characters as \u escapes, as the CLI's error lines (a native error's text is not ours).
    process.stderr.write(`cloister enclave: boot refused; closing its engine failed too (${errorText(error)})\n`);
  });
  await staged?.remove().catch(() => {});
}

/** Error-frame details are bounded (sealed/frames.ts); a longer one is cut, never a failure of its own. */
function errorDetail(text: string): string {
  return text.length <= MAX_ERROR_DETAIL_LENGTH ? text : `${text.slice(0, MAX_ERROR_DETAIL_LENGTH - 1)}…`;
}

/** A thrown error's code when it is an upper-case identifier, else `fallback`: for the audit record and the log. */
function errorCode(error: unknown, fallback: string): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[A-Z][A-Z0-9_]{1,63}$/.test(code) ? code : fallback;
}

/**
 * The code an error frame carries for `code`: itself when documented (a frame code of docs/errors.md,
 * each in sealed/frames.ts FRAME_ERROR_KINDS, the table the SDK classifies by), else INFERENCE_FAILED (the
 * enclave's failure without a code of its own), so a code no frame documents (a native error's
 * `ERR_*` or errno, an engine code of boot) never reaches the client, which would call it an unknown
 * failure. The request's audit record keeps `code` as it was.
 */
export function frameErrorCode(code: string): string {
  return Object.hasOwn(FRAME_ERROR_KINDS, code) ? code : "INFERENCE_FAILED";
}

type StreamEnd =
  | { readonly kind: "done"; readonly event: Extract<GenerationEvent, { type: "done" }> }
  | { readonly kind: "ended" }
  | { readonly kind: "failed"; readonly error: unknown };

/**
 * Text chunks the enclave may hold ahead of a consumer that is not reading (bounded buffering);
 * well above what a fast model decodes in one frame interval, so pacing never stalls decoding.
 */
const MAX_PENDING_TEXT_EVENTS = 256;
/** Most UTF-16 units sealed into one coalesced data frame (≤ 3 bytes each: far below 1 MiB). */
const MAX_COALESCED_CHARS = 64 * 1024;

/** A UTF-16 code unit that opens a surrogate pair (D800-DBFF). */
function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

/** Removes and joins the waiting text chunks, up to MAX_COALESCED_CHARS (always at least one). */
function takeCoalesced(texts: string[]): string {
  let count = 1;
  let length = (texts[0] as string).length;
  while (count < texts.length && length + (texts[count] as string).length <= MAX_COALESCED_CHARS) {
    length += (texts[count] as string).length;
    count++;
  }
  return count === 1 ? (texts.shift() as string) : texts.splice(0, count).join("");
}

/**
 * Resolves after the callbacks already queued for this event-loop turn's check phase (among them
 * node-llama-cpp's batch dispatch, scheduled with setImmediate while the producer asked for the
 * next token): one setImmediate to get behind the current queue, a second to run after it.
 */
function afterNextDecodeDispatch(): Promise<void> {
  return new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
}

/** The error frame of a request whose audit record could not be written (it opens no record). */
const AUDIT_FAILED_MIDWAY = "auditing failed while this answer was under way: this enclave answers no more";

function auditFailedFrame(sealer: ResponseSealer): Uint8Array {
  return sealer.error("AUDIT_FAILED", "the audit record of this request could not be written", null);
}

async function* singleFrame(frame: Uint8Array): AsyncGenerator<Uint8Array> {
  yield frame;
}

/** A one-frame answer (refusals): already audited, nothing to free when abandoned. */
function single(frame: Uint8Array): StreamedAnswer {
  return { frames: singleFrame(frame), abandon: async () => {} };
}
