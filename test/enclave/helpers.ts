/** A scripted inference engine and an enclave booted on it (tests of the answer stream and server). */
import type { JWK } from "jose";
import type { GenerateRequest, GenerationEvent, InferenceEngine } from "../../enclave/engine.ts";
import { Enclave, type StreamedAnswer } from "../../enclave/service.ts";
import { devManifest, type ManifestOverrides } from "../../manifests/dev.ts";
import { generateManifestSigningKey, signManifest } from "../../manifests/sign.ts";
import { TINY_MODEL_SHA256 } from "../../models/tiny.ts";
import { sealRequest } from "../../sealed/index.ts";

export const usage = {
  promptTokens: 3,
  cachedPromptTokens: 0,
  completionTokens: 0,
  queueMs: 0,
  ttftMs: 1,
  totalMs: 2,
  tokensPerSecond: 0,
};

/**
 * Pauses the scripted engine before its next event: a slow decode step of `pauseMs`, or until
 * `until` settles (an engine that stays silent for as long as the test needs).
 */
export type Pause = { readonly pauseMs: number } | { readonly until: Promise<unknown> };

/** An engine whose `generate` hands out `script` one event per `next()`, counting the pulls. */
export class ScriptedEngine {
  /** The dev manifest's model and context (boot refuses an engine whose context differs). */
  readonly info = { modelSha256: TINY_MODEL_SHA256, contextSize: devManifest().inference.contextSize };
  pulls = 0;
  /** Generations that ended (ran to their end, or were returned/aborted by the consumer). */
  finished = 0;
  /** performance.now() when each event was handed out. */
  readonly emittedAt: number[] = [];
  /** The request each `generate` was given. */
  readonly requests: GenerateRequest[] = [];
  constructor(private readonly script: () => (GenerationEvent | Error | Pause)[]) {}
  renderPrompt(request: unknown) {
    return { tokenCount: 3, request };
  }
  async *generate(request: GenerateRequest): AsyncGenerator<GenerationEvent, void, undefined> {
    this.requests.push(request);
    try {
      for (const event of this.script()) {
        if ("pauseMs" in event) {
          await new Promise((resolve) => setTimeout(resolve, event.pauseMs));
          continue;
        }
        if ("until" in event) {
          await event.until;
          continue;
        }
        this.pulls++;
        this.emittedAt.push(performance.now());
        if (event instanceof Error) throw Object.assign(event, { code: "GENERATION_FAILED" });
        yield event;
      }
    } finally {
      this.finished++;
    }
  }
  async close(): Promise<void> {}
}

let operator: Promise<{ privateJwk: JWK; publicJwk: JWK }> | undefined;

/** The operator key `bootWith` signs manifests with (public JWK), for client policies. */
export async function operatorPublicKey(): Promise<JWK> {
  operator ??= generateManifestSigningKey("EdDSA");
  return (await operator).publicJwk;
}

export async function bootWith(
  engine: ScriptedEngine,
  frameIntervalMs = 0,
  overrides: ManifestOverrides = {},
  tee: "sim-snp" | "sim-tdx" = "sim-snp",
): Promise<Enclave> {
  const manifest = devManifest({ ...overrides, model: { sha256: TINY_MODEL_SHA256 } });
  operator ??= generateManifestSigningKey("EdDSA");
  const { privateJwk, publicJwk } = await operator;
  return Enclave.boot({
    manifestJws: await signManifest(manifest, privateJwk),
    operatorKeys: [publicJwk],
    modelPath: "unused (engine injected)",
    tee,
    engine: engine as unknown as InferenceEngine,
    frameIntervalMs,
  });
}

/** Seals a completion of `prompt` to `enclave` and opens it there, as the host's tenant: its answer, not read yet. */
export async function openCompletion(enclave: Enclave, prompt: string): Promise<StreamedAnswer> {
  const { envelope } = await sealRequest({
    enclavePublicKey: enclave.publicKeys.sealing,
    kind: "complete",
    body: { prompt },
  });
  return enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
}
