/**
 * The inference engine against the real tiny model (generated into a temp dir): digest pinning
 * before load, concurrency without cross-talk, abort, bounded queue, usage, seeds, tenant
 * isolation of cached state. The tiny model is a bigram model (its attention is zero), so it cannot
 * notice a contaminated KV cache; the last block repeats the isolation checks on the small
 * benchmark model, whose random attention reads every cached token. One thread per engine keeps it
 * steady on a shared 2-core machine.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, type LlamaOptions } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  EngineError,
  type GenerationEvent,
  type InferenceEngine,
  ModelDigestMismatchError,
  openInferenceEngine,
} from "../../enclave/engine.ts";
import { writeBenchModel } from "../../models/bench.ts";
import { writeTinyModel } from "../../models/tiny.ts";

let dir: string;
let modelPath: string;
let sha256: string;
let engine: InferenceEngine;

const PROMPTS = ["The enclave", "A client", "The host", "Attestation"] as const;

function code(error: unknown): unknown {
  return error instanceof EngineError ? error.code : error;
}

async function open(options: { sequences: number; maxQueue: number }): Promise<InferenceEngine> {
  return openInferenceEngine({ modelPath, expectedSha256: sha256, threads: 1, contextSize: 256, ...options });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-engine-test-"));
  modelPath = join(dir, "tiny.gguf");
  ({ sha256 } = await writeTinyModel(modelPath));
  engine = await open({ sequences: 4, maxQueue: 2 });
});

afterAll(async () => {
  await engine?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("loading", () => {
  it("refuses a digest mismatch before loading anything, naming both digests", async () => {
    const loader = vi.fn((options: LlamaOptions) => getLlama(options));
    const wrong = "ab".repeat(32);
    const error = await openInferenceEngine({ modelPath, expectedSha256: wrong }, { getLlama: loader }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ModelDigestMismatchError);
    expect(code(error)).toBe("MODEL_DIGEST_MISMATCH");
    expect((error as Error).message).toContain(wrong);
    expect((error as Error).message).toContain(sha256);
    expect(loader).not.toHaveBeenCalled();
  });

  it("accepts the digest in upper case (same value)", async () => {
    const e = await openInferenceEngine({ modelPath, expectedSha256: sha256.toUpperCase(), threads: 1, sequences: 1 });
    expect(e.info.modelSha256).toBe(sha256);
    await e.close();
  });

  it("reports a missing file clearly without hashing or loading", async () => {
    const loader = vi.fn((options: LlamaOptions) => getLlama(options));
    const hasher = vi.fn(async () => sha256);
    const missing = join(dir, "nope.gguf");
    const error = await openInferenceEngine(
      { modelPath: missing, expectedSha256: sha256 },
      { getLlama: loader, sha256File: hasher },
    ).catch((e: unknown) => e);
    expect(code(error)).toBe("MODEL_NOT_FOUND");
    expect((error as Error).message).toBe(`model file ${missing}: not found`);
    expect(hasher).not.toHaveBeenCalled();
    expect(loader).not.toHaveBeenCalled();
  });

  it("takes a digest the caller computed as it wrote the file instead of reading it again, and still compares it", async () => {
    const hasher = vi.fn(async () => sha256);
    const wrong = "ab".repeat(32);
    const refused = await openInferenceEngine(
      { modelPath, expectedSha256: sha256, modelSha256: wrong, threads: 1, sequences: 1 },
      { sha256File: hasher },
    ).catch((e: unknown) => e);
    expect(code(refused)).toBe("MODEL_DIGEST_MISMATCH");
    const e = await openInferenceEngine(
      { modelPath, expectedSha256: sha256, modelSha256: sha256, threads: 1, sequences: 1 },
      { sha256File: hasher },
    );
    expect(e.info.modelSha256).toBe(sha256);
    expect(hasher).not.toHaveBeenCalled();
    await e.close();
  });

  it("refuses a malformed pinned digest", async () => {
    await expect(openInferenceEngine({ modelPath, expectedSha256: "1234" })).rejects.toSatisfy(
      (e) => code(e) === "ENGINE_OPTIONS",
    );
  });

  it("refuses a file that is not a model with MODEL_LOAD_FAILED (digest pinned to the junk)", async () => {
    const junk = join(dir, "junk.gguf");
    await writeFile(junk, "not a gguf file");
    const { sha256File } = await import("../../models/hash.ts");
    await expect(
      openInferenceEngine({ modelPath: junk, expectedSha256: await sha256File(junk), threads: 1 }),
    ).rejects.toSatisfy((e) => code(e) === "MODEL_LOAD_FAILED");
  });
});

describe("generation", () => {
  it("4 concurrent requests each get the output they get alone (greedy)", async () => {
    const alone: string[] = [];
    for (const prompt of PROMPTS) alone.push((await engine.complete({ prompt, maxTokens: 24 })).text);
    expect(new Set(alone).size).toBeGreaterThan(1); // the prompts lead to different texts
    const together = await Promise.all(PROMPTS.map((prompt) => engine.complete({ prompt, maxTokens: 24 })));
    expect(together.map((r) => r.text)).toEqual(alone);
    expect(engine.stats).toEqual({ sequences: 4, busy: 0, queued: 0 });
  });

  it("streams text chunks whose concatenation is the completion", async () => {
    const chunks: string[] = [];
    let done: Extract<GenerationEvent, { type: "done" }> | undefined;
    for await (const event of engine.generate({ prompt: PROMPTS[0], maxTokens: 24 })) {
      if (event.type === "text") chunks.push(event.text);
      else done = event;
    }
    expect(chunks.length).toBeGreaterThan(1);
    const whole = await engine.complete({ prompt: PROMPTS[0], maxTokens: 24 });
    expect(chunks.join("")).toBe(whole.text);
    expect(done?.stopReason).toBe(whole.stopReason);
  });

  it("generates from a prompt rendered once (renderPrompt) exactly as from the request, and refuses another request's rendering", async () => {
    const request = { messages: [{ role: "user" as const, content: "What does the enclave do?" }], maxTokens: 8 };
    const rendering = engine.renderPrompt(request);
    expect(rendering.tokenCount).toBe(engine.countPromptTokens(request));
    const collect = async (events: AsyncIterable<{ type: string; text?: string }>) => {
      let text = "";
      for await (const e of events) if (e.type === "text") text += e.text;
      return text;
    };
    expect(await collect(engine.generate(request, rendering))).toBe(await collect(engine.generate(request)));
    const other = { ...request };
    await expect(collect(engine.generate(other, rendering))).rejects.toMatchObject({ code: "ENGINE_REQUEST" });
  });

  it("reports consistent usage and stops at maxTokens", async () => {
    const prompt = PROMPTS[1];
    const r = await engine.complete({ prompt, maxTokens: 3 });
    expect(r.stopReason).toBe("maxTokens");
    expect(r.usage.completionTokens).toBe(3);
    expect(r.usage.promptTokens).toBeGreaterThan(0);
    expect(r.usage.promptTokens).toBe(engine.countPromptTokens({ prompt }));
    expect(r.usage.cachedPromptTokens).toBe(0);
    expect(r.usage.ttftMs).toBeGreaterThan(0);
    expect(r.usage.ttftMs).toBeLessThanOrEqual(r.usage.totalMs);
    expect(r.usage.queueMs).toBeLessThanOrEqual(r.usage.ttftMs);
    expect(r.usage.tokensPerSecond).toBeGreaterThan(0);
    const free = await engine.complete({ prompt, maxTokens: 200 });
    expect(free.stopReason).toBe("eog");
    expect(free.usage.completionTokens).toBeLessThanOrEqual(200);
    expect(free.text.startsWith(r.text)).toBe(true);
  });

  it("reproduces a sampled output with the same seed", async () => {
    const request = { prompt: PROMPTS[2], maxTokens: 24, temperature: 1.5, topP: 0.95 };
    const a = await engine.complete({ ...request, seed: 7 });
    const b = await engine.complete({ ...request, seed: 7 });
    expect(b.text).toBe(a.text);
    const others = await Promise.all([1, 2, 3, 4, 5].map((seed) => engine.complete({ ...request, seed })));
    expect(new Set([a.text, ...others.map((r) => r.text)]).size).toBeGreaterThan(1);
  });

  it("renders chat messages through the model's chat template", async () => {
    const messages = [
      { role: "system" as const, content: "Answer briefly." },
      { role: "user" as const, content: "What does the enclave do?" },
    ];
    const r = await engine.complete({ messages, maxTokens: 32 });
    expect(r.text.trim().length).toBeGreaterThan(0);
    expect(r.usage.promptTokens).toBeGreaterThan(engine.countPromptTokens({ prompt: messages[1]!.content }));
    expect(engine.info.chatTemplate).not.toBe("");
  });

  it("honours request stop strings without emitting them", async () => {
    const whole = await engine.complete({ prompt: PROMPTS[0], maxTokens: 24 });
    const words = whole.text.trim().split(" ");
    expect(words.length).toBeGreaterThan(2);
    const stop = ` ${words[2]}`;
    const r = await engine.complete({ prompt: PROMPTS[0], maxTokens: 24, stop: [stop] });
    expect(r.stopReason).toBe("stop");
    expect(r.text).toBe(whole.text.slice(0, whole.text.indexOf(stop)));
  });

  it("validates requests and never echoes prompt text in errors", async () => {
    const secret = "my secret prompt words ";
    const tooLong = secret.repeat(200);
    const errors = await Promise.all([
      engine.complete({ prompt: tooLong }).catch((e: unknown) => e),
      engine.complete({ prompt: secret, maxTokens: 0 }).catch((e: unknown) => e),
      engine.complete({ prompt: secret, temperature: 3 }).catch((e: unknown) => e),
      engine.complete({ messages: [{ role: "tool" as "user", content: secret }] }).catch((e: unknown) => e),
      engine.complete({ prompt: secret, messages: [] } as never).catch((e: unknown) => e),
    ]);
    expect(errors.map(code)).toEqual([
      "PROMPT_TOO_LONG",
      "ENGINE_REQUEST",
      "ENGINE_REQUEST",
      "ENGINE_REQUEST",
      "ENGINE_REQUEST",
    ]);
    for (const error of errors) expect((error as Error).message).not.toContain("secret");
    expect(engine.stats.busy).toBe(0);
  });
});

describe("one sequence: queue, abort, tenants, close", () => {
  let single: InferenceEngine;
  beforeAll(async () => {
    single = await open({ sequences: 1, maxQueue: 1 });
  });
  afterAll(async () => {
    await single?.close();
  });

  it("queues one request FIFO and refuses the next with ENGINE_BUSY at once", async () => {
    const holder = single.generate({ prompt: PROMPTS[0], maxTokens: 24 });
    expect((await holder.next()).done).toBe(false); // holds the only sequence, suspended
    const queued = single.generate({ prompt: PROMPTS[1], maxTokens: 24 });
    const queuedFirst = queued.next();
    expect(single.stats).toEqual({ sequences: 1, busy: 1, queued: 1 });
    const refused = await single.complete({ prompt: PROMPTS[2] }).catch((e: unknown) => e);
    expect(code(refused)).toBe("ENGINE_BUSY");
    await holder.return(undefined); // frees the sequence: the queued request runs
    let text = "";
    for (let step = await queuedFirst; !step.done; step = await queued.next()) {
      if (step.value.type === "text") text += step.value.text;
    }
    expect(text).toBe((await single.complete({ prompt: PROMPTS[1], maxTokens: 24 })).text);
    expect(single.stats).toEqual({ sequences: 1, busy: 0, queued: 0 });
  });

  it("an abort ends the generation and frees the sequence for the next requests", async () => {
    const controller = new AbortController();
    const events: GenerationEvent[] = [];
    for await (const event of single.generate({ prompt: PROMPTS[0], maxTokens: 100, signal: controller.signal })) {
      events.push(event);
      if (event.type === "text") controller.abort();
    }
    const done = events.at(-1);
    expect(done?.type === "done" && done.stopReason).toBe("abort");
    const full = await single.complete({ prompt: PROMPTS[0], maxTokens: 100 });
    expect(done?.type === "done" && done.usage.completionTokens).toBeLessThan(full.usage.completionTokens);
    // maxQueue 1 and one sequence: three more requests in a row all run.
    for (const prompt of PROMPTS.slice(1)) {
      expect((await single.complete({ prompt, maxTokens: 8 })).usage.completionTokens).toBeGreaterThan(0);
    }
    expect(single.stats.busy).toBe(0);
  });

  it("an abort while queued rejects with ENGINE_ABORTED and leaves the queue", async () => {
    const holder = single.generate({ prompt: PROMPTS[0], maxTokens: 24 });
    await holder.next();
    const controller = new AbortController();
    const waiting = single.complete({ prompt: PROMPTS[1], signal: controller.signal });
    expect(single.stats.queued).toBe(1);
    controller.abort();
    await expect(waiting).rejects.toSatisfy((e) => code(e) === "ENGINE_ABORTED");
    expect(single.stats.queued).toBe(0);
    await holder.return(undefined);
  });

  it("reuses cached prompt state only for the same tenant", async () => {
    const prompt = "The enclave keeps every prompt private";
    const first = await single.complete({ prompt, maxTokens: 8, tenant: "key-a" });
    expect(first.usage.cachedPromptTokens).toBe(0);
    const again = await single.complete({ prompt, maxTokens: 8, tenant: "key-a" });
    expect(again.usage.cachedPromptTokens).toBe(again.usage.promptTokens - 1);
    expect(again.text).toBe(first.text);
    const other = await single.complete({ prompt, maxTokens: 8, tenant: "key-b" });
    expect(other.usage.cachedPromptTokens).toBe(0);
    expect(other.text).toBe(first.text);
    const anonymous = await single.complete({ prompt, maxTokens: 8 });
    expect(anonymous.usage.cachedPromptTokens).toBe(0);
    const afterAnonymous = await single.complete({ prompt, maxTokens: 8, tenant: "key-b" });
    expect(afterAnonymous.usage.cachedPromptTokens).toBe(0);
  });

  it("close refuses new requests with ENGINE_CLOSED", async () => {
    await single.close();
    await expect(single.complete({ prompt: PROMPTS[0] })).rejects.toSatisfy((e) => code(e) === "ENGINE_CLOSED");
  });
});

describe("with attention (small benchmark model): no KV cross-talk", () => {
  let attentive: InferenceEngine;
  const prompts = ["The enclave keeps", "A client verifies", "The host forwards", "Attestation binds"];
  beforeAll(async () => {
    const path = join(dir, "small-q8_0.gguf");
    const made = await writeBenchModel(path, "small", { quant: "q8_0" });
    attentive = await openInferenceEngine({
      modelPath: path,
      expectedSha256: made.sha256,
      sequences: 4,
      maxQueue: 0,
      threads: 1,
      contextSize: 128,
    });
  });
  afterAll(async () => {
    await attentive?.close();
  });

  it("the model's output depends on earlier context (so contamination would show)", async () => {
    const plain = await attentive.complete({ prompt: prompts[0]!, maxTokens: 12 });
    const preceded = await attentive.complete({ prompt: `Attestation binds. ${prompts[0]!}`, maxTokens: 12 });
    expect(preceded.text).not.toBe(plain.text);
  });

  it("4 concurrent requests equal the same requests run alone (greedy)", async () => {
    const alone: string[] = [];
    for (const prompt of prompts) alone.push((await attentive.complete({ prompt, maxTokens: 16 })).text);
    expect(new Set(alone).size).toBe(prompts.length);
    const together = await Promise.all(prompts.map((prompt) => attentive.complete({ prompt, maxTokens: 16 })));
    expect(together.map((r) => r.text)).toEqual(alone);
  });

  it("same-tenant prefix reuse gives the output of a fresh sequence", async () => {
    const fresh = await attentive.complete({ prompt: `${prompts[1]!} the report`, maxTokens: 12 });
    await attentive.complete({ prompt: prompts[1]!, maxTokens: 12, tenant: "key-a" });
    // Every sequence is free again; the tenant's own sequence is picked and its prefix reused.
    const reused = await attentive.complete({ prompt: `${prompts[1]!} the report`, maxTokens: 12, tenant: "key-a" });
    expect(reused.usage.cachedPromptTokens).toBeGreaterThan(0);
    expect(reused.text).toBe(fresh.text);
  });
});
