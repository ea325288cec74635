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
 * request body, then run it through the model and seal every chunk into a response frame.
 * Nothing here logs a prompt or an answer.
 */
import { readFile } from "node:fs/promises";
import type { JWK } from "jose";
import nacl from "tweetnacl";
import { z } from "zod";
import { computeReportData } from "../attestation/binding.ts";
import { createAttestationDocument, createNonceAnswer, type EnclaveKeys } from "../attestation/document.ts";
import { manifestDigest } from "../manifests/digest.ts";
import type { Manifest } from "../manifests/schema.ts";
import { verifyManifest } from "../manifests/sign.ts";
import {
  type EnclaveSealingKey,
  enclaveSealingKeyFromSecretKey,
  openRequest,
  ReplayGuard,
  type ResponseSealer,
  SealedError,
} from "../sealed/index.ts";
import { type GenerateRequest, type InferenceEngine, openInferenceEngine } from "./engine.ts";
import { EnclaveError } from "./errors.ts";
import { createEvidenceSource, type EvidenceSource, type TeeMode } from "./tee.ts";

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

const messageSchema = z.strictObject({
  role: z.enum(["system", "user", "assistant"]),
  content: z.string().max(1_000_000),
});
const samplingShape = {
  maxTokens: z.int().min(1).max(1_000_000).optional(),
  temperature: z.number().min(0).max(2).optional(),
  topP: z.number().gt(0).max(1).optional(),
  seed: z.int().min(0).max(0xffff_ffff).optional(),
  stop: z.array(z.string().min(1).max(64)).max(8).optional(),
  /** Keyed hash of the caller's API key, chosen by the client: KV cache is reused only within it. */
  tenant: z
    .string()
    .regex(/^[0-9a-f]{32}$/)
    .optional(),
};
const chatBodySchema = z.strictObject({ messages: z.array(messageSchema).min(1).max(256), ...samplingShape });
const completeBodySchema = z.strictObject({ prompt: z.string().max(1_000_000), ...samplingShape });

export interface StreamedAnswer {
  /** Sealed frames (wire bytes), in order; the last one is a final or error frame. */
  readonly frames: AsyncIterable<Uint8Array>;
}

export class Enclave {
  private readonly replayGuard = new ReplayGuard();

  private constructor(
    readonly manifest: Manifest,
    readonly manifestJws: string,
    readonly document: string,
    readonly keys: EnclaveKeys,
    readonly evidenceSource: EvidenceSource,
    private readonly sealingKey: EnclaveSealingKey,
    private readonly engine: InferenceEngine,
    private readonly now: () => Date,
  ) {}

  static async boot(config: EnclaveConfig): Promise<Enclave> {
    const now = config.now ?? (() => new Date());
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
    const engine =
      config.engine ??
      (await openInferenceEngine({
        modelPath: config.modelPath,
        expectedSha256: manifest.model.sha256,
        sequences: manifest.inference.sequences,
        contextSize: manifest.inference.contextSize,
        threads: manifest.inference.threads,
      }));
    if (engine.info.modelSha256 !== manifest.model.sha256) {
      await engine.close();
      throw new EnclaveError("BOOT_MODEL_DIGEST_MISMATCH", 500, "boot: the engine's model is not the manifest's model");
    }
    try {
      const signing = nacl.sign.keyPair();
      const sealing = nacl.box.keyPair();
      const keys: EnclaveKeys = { signing, sealing };
      const evidenceSource = await createEvidenceSource(config.tee);
      const reportData = await computeReportData({
        signingPublicKey: signing.publicKey,
        sealingPublicKey: sealing.publicKey,
        manifestDigest: await manifestDigest(config.manifestJws),
      });
      const evidence = await evidenceSource.collect(reportData);
      const document = await createAttestationDocument({
        keys,
        evidence,
        manifest: config.manifestJws,
        maaToken: null,
        now: now(),
      });
      const sealingKey = await enclaveSealingKeyFromSecretKey(sealing.secretKey);
      return new Enclave(manifest, config.manifestJws, document, keys, evidenceSource, sealingKey, engine, now);
    } catch (error) {
      await engine.close();
      throw error;
    }
  }

  /** Reads the manifest file and boots. */
  static async bootFromFiles(options: {
    manifestPath: string;
    operatorKeyPaths: readonly string[];
    modelPath: string;
    tee: TeeMode;
  }): Promise<Enclave> {
    const manifestJws = (await readFile(options.manifestPath, "utf8")).trim();
    const operatorKeys = await Promise.all(
      options.operatorKeyPaths.map(async (p) => JSON.parse(await readFile(p, "utf8")) as JWK),
    );
    return Enclave.boot({ manifestJws, operatorKeys, modelPath: options.modelPath, tee: options.tee });
  }

  async answerNonce(nonce: Uint8Array): Promise<string> {
    return createNonceAnswer({ keys: this.keys, document: this.document, nonce, now: this.now() });
  }

  /**
   * Opens a sealed request and starts answering it. Errors before the request is open are thrown
   * as EnclaveError (they become HTTP errors); after that, every failure is a sealed error frame.
   */
  async handleSealed(envelope: Uint8Array, hostTenant: string | null, signal: AbortSignal): Promise<StreamedAnswer> {
    let opened: Awaited<ReturnType<typeof openRequest>>;
    try {
      opened = await openRequest(envelope, this.sealingKey, this.replayGuard, this.now().getTime());
    } catch (error) {
      if (error instanceof SealedError) {
        const status = error.code === "WRONG_ENCLAVE_KEY" || error.code === "REQUEST_REPLAYED" ? 409 : 400;
        throw new EnclaveError(error.code, status, error.message, { cause: error });
      }
      throw error;
    }
    const { request, sealer } = opened;
    const parsed = (request.kind === "chat" ? chatBodySchema : completeBodySchema).safeParse(request.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return single(
        sealer.error("REQUEST_INVALID", `body.${issue?.path.join(".") ?? ""}: ${issue?.message ?? "invalid"}`),
      );
    }
    const body = parsed.data;
    const maxTokens = Math.min(body.maxTokens ?? this.manifest.inference.maxTokens, this.manifest.inference.maxTokens);
    const tenant = body.tenant ?? hostTenant ?? undefined;
    const common = {
      maxTokens,
      ...(body.temperature === undefined ? {} : { temperature: body.temperature }),
      ...(body.topP === undefined ? {} : { topP: body.topP }),
      ...(body.seed === undefined ? {} : { seed: body.seed }),
      ...(body.stop === undefined ? {} : { stop: body.stop }),
      ...(tenant === undefined ? {} : { tenant }),
      signal,
    };
    const generate: GenerateRequest =
      "messages" in body ? { ...common, messages: body.messages } : { ...common, prompt: body.prompt };
    return { frames: this.stream(generate, sealer) };
  }

  private async *stream(request: GenerateRequest, sealer: ResponseSealer): AsyncGenerator<Uint8Array> {
    try {
      for await (const event of this.engine.generate(request)) {
        if (event.type === "text") {
          if (event.text.length > 0) yield sealer.data(event.text);
        } else {
          yield sealer.final({
            promptTokens: event.usage.promptTokens,
            completionTokens: event.usage.completionTokens,
            ttftMs: Math.round(event.usage.ttftMs * 1000) / 1000,
            finishReason: event.stopReason === "maxTokens" || event.stopReason === "contextFull" ? "length" : "stop",
          });
          return;
        }
      }
      yield sealer.error("ENGINE_ENDED", "generation ended without a result");
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      yield sealer.error(
        typeof code === "string" && /^[A-Z][A-Z0-9_]{1,63}$/.test(code) ? code : "INFERENCE_FAILED",
        null,
      );
    }
  }

  async close(): Promise<void> {
    await this.engine.close();
  }
}

async function* singleFrame(frame: Uint8Array): AsyncGenerator<Uint8Array> {
  yield frame;
}

function single(frame: Uint8Array): StreamedAnswer {
  return { frames: singleFrame(frame) };
}
