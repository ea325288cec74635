/**
 * The inference engine against the real tiny model (generated into a temp dir): digest pinning
 * before load, concurrency without cross-talk, abort, bounded queue, usage, seeds, tenant
 * isolation of cached state. The tiny model is a bigram model (its attention is zero), so it cannot
 * notice a contaminated KV cache; the last block repeats the isolation checks on the small
 * benchmark model, whose random attention reads every cached token. One thread per engine keeps it
 * steady on a shared 2-core machine.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Worker } from "node:worker_threads";
import { getLlama, type Llama, type LlamaOptions } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  type ChatMessage,
  EngineError,
  type GenerationEvent,
  type InferenceEngine,
  ModelDigestMismatchError,
  openInferenceEngine,
} from "../../enclave/engine.ts";
import { writeBenchModel } from "../../models/bench.ts";
import { writeGguf } from "../../models/gguf-write.ts";
import { llamaMetadata, llamaTensors } from "../../models/llama-layout.ts";
import { buildTinyBigram, tinyShape, writeTinyModel } from "../../models/tiny.ts";
import { REQUEST_LIMITS } from "../../sealed/request-limits.ts";

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

  it("reports a missing file clearly without copying or loading", async () => {
    const loader = vi.fn((options: LlamaOptions) => getLlama(options));
    const missing = join(dir, "nope.gguf");
    const error = await openInferenceEngine({ modelPath: missing, expectedSha256: sha256 }, { getLlama: loader }).catch(
      (e: unknown) => e,
    );
    expect(code(error)).toBe("MODEL_NOT_FOUND");
    expect((error as Error).message).toBe(
      `--model file ${missing}: not found; check the path, or put the model file there`,
    );
    expect(loader).not.toHaveBeenCalled();
  });

  it("takes a digest the caller computed as it wrote the file instead of copying it, and still compares it", async () => {
    const stager = vi.fn(async () => {
      throw new Error("not copied");
    });
    const wrong = "ab".repeat(32);
    const refused = await openInferenceEngine(
      { modelPath, expectedSha256: sha256, modelSha256: wrong, threads: 1, sequences: 1 },
      { stageModel: stager },
    ).catch((e: unknown) => e);
    expect(code(refused)).toBe("MODEL_DIGEST_MISMATCH");
    const e = await openInferenceEngine(
      { modelPath, expectedSha256: sha256, modelSha256: sha256, threads: 1, sequences: 1 },
      { stageModel: stager },
    );
    expect(e.info.modelSha256).toBe(sha256);
    expect(stager).not.toHaveBeenCalled();
    await e.close();
  });

  it("fails with the load's own error, or a stop's reason, when the private copy cannot be removed", async () => {
    const removals: string[] = [];
    const stager = (found: string) => async () => ({
      path: modelPath,
      sha256: found,
      remove: async () => {
        removals.push(found);
        throw Object.assign(new Error("EBUSY: resource busy or locked (a stand-in)"), { code: "EBUSY" });
      },
    });
    const wrong = "ab".repeat(32);
    const refused = await openInferenceEngine(
      { modelPath, expectedSha256: sha256, threads: 1, sequences: 1 },
      { stageModel: stager(wrong) },
    ).catch((e: unknown) => e);
    expect(code(refused)).toBe("MODEL_DIGEST_MISMATCH");
    // Stopped while it loads (the signal aborted as llama.cpp starts): the stop's reason.
    const stop = new AbortController();
    const stopped = await openInferenceEngine(
      { modelPath, expectedSha256: sha256, threads: 1, sequences: 1, signal: stop.signal },
      {
        stageModel: stager(sha256),
        // A stand-in (never loaded): disposing a real one could free what the other tests' engine uses.
        getLlama: async () => {
          stop.abort("SIGINT");
          return { dispose: async () => {} } as unknown as Llama;
        },
      },
    ).catch((e: unknown) => e);
    expect(stopped).toBe("SIGINT");
    expect(removals).toEqual([wrong, sha256]);
  });

  it("close: freeing the model failed and removing the copy failed too: an AggregateError of both, in that order", async () => {
    let removals = 0;
    const busy = Object.assign(new Error("EBUSY: resource busy or locked (a stand-in)"), { code: "EBUSY" });
    const freeing = new Error("llama dispose failed (a stand-in)");
    const e = await openInferenceEngine(
      { modelPath, expectedSha256: sha256, threads: 1, sequences: 1, contextSize: 256 },
      {
        stageModel: async () => ({
          path: modelPath,
          sha256,
          remove: async () => {
            removals++;
            throw busy;
          },
        }),
        // The real Llama, but its dispose fails (and never runs: the other tests' engine shares it).
        getLlama: async (options) => {
          const llama = await getLlama(options);
          return new Proxy(llama, {
            get: (target, key) => {
              if (key === "dispose") return async () => Promise.reject(freeing);
              const value: unknown = Reflect.get(target, key, target);
              return typeof value === "function" ? value.bind(target) : value;
            },
          });
        },
      },
    );
    const error = await e.close().then(
      () => null,
      (failure: unknown) => failure,
    );
    expect(removals).toBe(1);
    expect(error).toBeInstanceOf(AggregateError);
    expect((error as AggregateError).errors).toEqual([freeing, busy]);
    expect((error as Error).message).toBe(
      "closing the engine: freeing the model failed (llama dispose failed (a stand-in)), and removing the model copy failed (EBUSY: resource busy or locked (a stand-in))",
    );
  });

  it("refuses a pinned Jinja chat wrapper for a model without a chat template from its header, before loading it", async () => {
    // The tiny model's header without its chat template, and no tensors: llama.cpp could not load it.
    const { vocab } = buildTinyBigram();
    const bare = join(dir, "no-template.gguf");
    const { sha256: bareSha256 } = await writeGguf(
      bare,
      llamaMetadata(tinyShape(vocab.tokens.length), vocab).filter(([key]) => key !== "tokenizer.chat_template"),
      [],
    );
    let loads = 0;
    const error = await openInferenceEngine(
      { modelPath: bare, expectedSha256: bareSha256, threads: 1, sequences: 1, chatWrapper: "jinjaTemplate" },
      {
        // A stand-in: what is refused from the header never reaches llama.cpp's load.
        getLlama: async () =>
          ({
            loadModel: async () => {
              loads += 1;
              throw new Error("loaded (a stand-in)");
            },
            dispose: async () => {},
          }) as unknown as Llama,
      },
    ).catch((e: unknown) => e);
    expect({ code: code(error), message: (error as Error).message, loads }).toEqual({
      code: "CHAT_WRAPPER_UNAVAILABLE",
      message:
        'manifest field model.chatWrapper: "jinjaTemplate" expected a Jinja chat template in the model (tokenizer.chat_template), found none; pin another chat wrapper, or "auto"',
      loads: 0,
    });
  });

  it("ends auto's worker for an operator's template when the load fails, with the load's own error", async () => {
    // The worker starts from the header, before the load (engine/chat-wrapper.ts planChatWrapper).
    const { vocab } = buildTinyBigram();
    const template =
      "{% for message in messages %}{{ '<<' + message['role'] + '>> ' + message['content'] }}{% endfor %}";
    const operator = join(dir, "operator-template.gguf");
    const { sha256: operatorSha256 } = await writeGguf(
      operator,
      llamaMetadata(tinyShape(vocab.tokens.length), vocab).map(([key, value]) =>
        key === "tokenizer.chat_template" ? [key, { type: "STRING", value: template }] : [key, value],
      ),
      [],
    );
    const ended = vi.spyOn(Worker.prototype, "terminate");
    try {
      const error = await openInferenceEngine(
        { modelPath: operator, expectedSha256: operatorSha256, threads: 1, sequences: 1 },
        {
          getLlama: async () =>
            ({
              loadModel: async () => {
                throw new Error("load failed (a stand-in)");
              },
              dispose: async () => {},
            }) as unknown as Llama,
        },
      ).catch((e: unknown) => e);
      expect({ code: code(error), cause: ((error as Error).cause as Error).message }).toEqual({
        code: "MODEL_LOAD_FAILED",
        cause: "load failed (a stand-in)",
      });
      expect(ended).toHaveBeenCalledTimes(1);
    } finally {
      ended.mockRestore();
    }
  });

  it("refuses a pinned Jinja chat wrapper whose template node-llama-cpp cannot render before making the context", async () => {
    // The tiny model's shape and vocabulary, zero weights, under a template that iterates a field no
    // message has (node-llama-cpp's Jinja engine fails it).
    const { vocab } = buildTinyBigram();
    const shape = tinyShape(vocab.tokens.length);
    const template = "{% for message in messages %}{% for part in message.parts %}{{ part }}{% endfor %}{% endfor %}";
    const unrenderable = join(dir, "unrenderable.gguf");
    const { sha256: unrenderableSha256 } = await writeGguf(
      unrenderable,
      llamaMetadata(shape, vocab).map(([key, value]) =>
        key === "tokenizer.chat_template" ? [key, { type: "STRING", value: template }] : [key, value],
      ),
      llamaTensors(shape, vocab.tokens.length, { blockMatrices: "F32", embedding: "F32", output: "F32" }).map(
        (tensor) => ({ ...tensor, data: new Float32Array(tensor.dims.reduce((a, b) => a * b, 1)) }),
      ),
    );
    let contexts = 0;
    const error = await openInferenceEngine(
      {
        modelPath: unrenderable,
        expectedSha256: unrenderableSha256,
        threads: 1,
        sequences: 1,
        chatWrapper: "jinjaTemplate",
      },
      {
        // The real Llama (never freed here: the other tests' engine shares it), its models' contexts counted.
        getLlama: async (options) => {
          const llama = await getLlama(options);
          return new Proxy(llama, {
            get: (target, key) => {
              if (key === "dispose") return async () => {};
              if (key === "loadModel") {
                return async (loading: Parameters<Llama["loadModel"]>[0]) => {
                  const model = await target.loadModel(loading);
                  const createContext = model.createContext.bind(model);
                  model.createContext = (creating) => {
                    contexts += 1;
                    return createContext(creating);
                  };
                  return model;
                };
              }
              const value: unknown = Reflect.get(target, key, target);
              return typeof value === "function" ? value.bind(target) : value;
            },
          });
        },
      },
    ).catch((e: unknown) => e);
    expect({ code: code(error), contexts }).toEqual({ code: "CHAT_WRAPPER_UNAVAILABLE", contexts: 0 });
  });

  it("names the model file in MODEL_LOAD_FAILED and MODEL_CHANGED_DURING_LOAD as fileMessage does (quoted only where needed)", async () => {
    const bytes = new Uint8Array(64).fill(7);
    const pinned = createHash("sha256").update(bytes).digest("hex");
    const refusal = async (file: string, onLoad: () => Promise<void>) => {
      await writeFile(file, bytes);
      const loader = async () =>
        ({
          loadModel: async () => {
            await onLoad();
            return { dispose: async () => {} };
          },
          dispose: async () => {},
        }) as unknown as Llama;
      return (await openInferenceEngine(
        { modelPath: file, expectedSha256: pinned, modelSha256: pinned, threads: 1, sequences: 1 },
        { getLlama: loader },
      ).catch((e: unknown) => e)) as EngineError;
    };
    const failing = async () => {
      throw new Error("load failed (a stand-in)");
    };
    const messages = [];
    for (const file of [join(dir, "load: refused.gguf"), join(dir, "load-refused.gguf")]) {
      const failed = await refusal(file, failing);
      const changed = await refusal(file, () => writeFile(file, new Uint8Array(65)));
      messages.push(`${failed.code}: ${failed.message}`, `${changed.code}: ${changed.message}`);
    }
    const changedReason = "changed between hashing and loading (size/inode/mtime differ); refusing it";
    expect(messages).toEqual([
      `MODEL_LOAD_FAILED: model file '${dir}/load: refused.gguf': could not be loaded`,
      `MODEL_CHANGED_DURING_LOAD: model file '${dir}/load: refused.gguf': ${changedReason}`,
      `MODEL_LOAD_FAILED: model file ${dir}/load-refused.gguf: could not be loaded`,
      `MODEL_CHANGED_DURING_LOAD: model file ${dir}/load-refused.gguf: ${changedReason}`,
    ]);
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

/**
 * A model path someone else can write (`cloister model run --sha256`, the benchmarks): the engine
 * copies the file into a private directory, hashing the bytes as it writes them, and loads the
 * copy, so what is loaded is what was hashed whatever happens to the path meanwhile. A stub
 * loadModel plays the racing writer: it changes the original while "llama.cpp" reads the path it
 * was given, then stops the load (after the identity check) with a sentinel error.
 */
describe("a model path another process can write", () => {
  const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
  const good = new Uint8Array(4096).fill(1);
  const bad = new Uint8Array(4096).fill(2);

  function racingLoader(onLoad: (loadedPath: string) => Promise<void>) {
    return async () =>
      ({
        async loadModel({ modelPath: loadedPath }: { modelPath: string }) {
          await onLoad(loadedPath);
          return {
            get trainContextSize(): number {
              throw new Error("LOADED_PAST_IDENTITY_CHECK");
            },
            dispose: async () => {},
          };
        },
        dispose: async () => {},
        cpuMathCores: 1,
        gpu: false,
      }) as never;
  }

  async function raced(race: (original: string, loadedPath: string) => Promise<void>) {
    const raceDir = await mkdtemp(join(dir, "race-"));
    const original = join(raceDir, "model.gguf");
    await writeFile(original, good);
    await writeFile(join(raceDir, "bad.gguf"), bad);
    let loadedPath = "";
    let loaded = "";
    const error = await openInferenceEngine(
      { modelPath: original, expectedSha256: digest(good), threads: 1 },
      {
        getLlama: racingLoader(async (path) => {
          loadedPath = path;
          await race(original, path);
          loaded = digest(await readFile(path)); // what llama.cpp reads (open + mmap)
        }),
      },
    ).then(
      () => {
        throw new Error("expected the stub's sentinel to stop the load");
      },
      (e: unknown) => e as EngineError,
    );
    return { original, loadedPath, loaded, error };
  }

  it("a file renamed in for the load and renamed back: the bytes loaded are still the pinned ones", async () => {
    const swapped = { read: "" };
    const run = await raced(async (original) => {
      const dirOf = dirname(original);
      await rename(original, join(dirOf, "good.bak"));
      await rename(join(dirOf, "bad.gguf"), original);
      swapped.read = digest(await readFile(original));
      await rename(original, join(dirOf, "bad.gguf"));
      await rename(join(dirOf, "good.bak"), original);
    });
    expect(swapped.read).toBe(digest(bad)); // the swap happened during the load
    expect(run.loadedPath).not.toBe(run.original);
    expect(run.loaded).toBe(digest(good));
    expect((run.error.cause as Error).message).toBe("LOADED_PAST_IDENTITY_CHECK");
    // The private copy is gone once the load failed.
    await expect(stat(run.loadedPath)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("a file rewritten in place with its mtime restored: the bytes loaded are still the pinned ones", async () => {
    const run = await raced(async (original) => {
      execFileSync("touch", ["-r", original, `${original}.ref`]);
      await writeFile(original, bad, { flag: "r+" });
      execFileSync("touch", ["-r", `${original}.ref`, original]);
    });
    expect(digest(await readFile(run.original))).toBe(digest(bad)); // the rewrite happened
    expect(run.loaded).toBe(digest(good));
    expect((run.error.cause as Error).message).toBe("LOADED_PAST_IDENTITY_CHECK");
  });

  it("the private copy changed during the load is refused with MODEL_CHANGED_DURING_LOAD", async () => {
    const run = await raced(async (_original, loadedPath) => {
      await writeFile(loadedPath, bad);
      await writeFile(loadedPath, new Uint8Array(8192));
    });
    expect(run.error.code).toBe("MODEL_CHANGED_DURING_LOAD");
    await expect(stat(run.loadedPath)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("a real load keeps its copy until close, then removes it", async () => {
    let copy = "";
    const e = await openInferenceEngine(
      { modelPath, expectedSha256: sha256, threads: 1, sequences: 1 },
      {
        getLlama: async (options) => {
          const llama = await getLlama(options);
          const loadModel = llama.loadModel.bind(llama);
          llama.loadModel = (o) => {
            copy = o.modelPath;
            return loadModel(o);
          };
          return llama;
        },
      },
    );
    expect(e.info.modelPath).toBe(modelPath);
    expect(e.info.modelSha256).toBe(sha256);
    expect(copy).not.toBe(modelPath);
    expect((await stat(copy)).isFile()).toBe(true);
    await e.close();
    await expect(stat(copy)).rejects.toMatchObject({ code: "ENOENT" });
    await expect(stat(dirname(copy))).rejects.toMatchObject({ code: "ENOENT" });
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
    const rendering = await engine.renderPrompt(request);
    expect(rendering.tokenCount).toBe((await engine.complete(request)).usage.promptTokens);
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
    expect(r.usage.promptTokens).toBe((await engine.renderPrompt({ prompt })).tokenCount);
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
    expect(r.usage.promptTokens).toBeGreaterThan(
      (await engine.renderPrompt({ prompt: messages[1]!.content })).tokenCount,
    );
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
      engine.complete({ messages: [{ role: "user", content: secret }, null as never] }).catch((e: unknown) => e),
    ]);
    expect(errors.map(code)).toEqual([
      "PROMPT_TOO_LONG",
      "ENGINE_REQUEST",
      "ENGINE_REQUEST",
      "ENGINE_REQUEST",
      "ENGINE_REQUEST",
      "ENGINE_REQUEST",
    ]);
    expect((errors[5] as Error).message).toBe("messages[1]: expected an object with role and content, found null");
    for (const error of errors) expect((error as Error).message).not.toContain("secret");
    expect(engine.stats.busy).toBe(0);
  });

  it("refuses a hole in messages and a role that cannot be made a string as ENGINE_REQUEST, not a TypeError", async () => {
    // forEach skips a sparse array's holes: [user, <hole>] passed the check and reached the wrapper.
    const holed = [{ role: "user", content: "a" }] as ChatMessage[];
    holed.length = 2;
    const unprintable = { role: Object.create(null) as never, content: "a" };
    const errors = await Promise.all([
      engine.renderPrompt({ messages: holed }).catch((e: unknown) => e),
      engine.renderPrompt({ messages: [unprintable] }).catch((e: unknown) => e),
    ]);
    expect(errors.map(code)).toEqual(["ENGINE_REQUEST", "ENGINE_REQUEST"]);
    expect((errors[0] as Error).message).toBe("messages[1]: expected an object with role and content, found undefined");
    expect((errors[1] as Error).message).toBe("messages[0].role: expected system, user or assistant, found object");
    expect(engine.stats.busy).toBe(0);
  });

  it("generate without a rendering refuses a prompt that is no string, and neither or both of prompt and messages", async () => {
    const messages = [{ role: "user" as const, content: "a" }];
    const errors = await Promise.all([
      engine.complete({ prompt: 42 as never }).catch((e: unknown) => e),
      engine.complete({} as never).catch((e: unknown) => e),
      engine.complete({ prompt: "a", messages } as never).catch((e: unknown) => e),
    ]);
    expect(errors.map(code)).toEqual(["ENGINE_REQUEST", "ENGINE_REQUEST", "ENGINE_REQUEST"]);
    expect((errors[0] as Error).message).toBe("prompt: expected a string, found number");
    expect((errors[1] as Error).message).toBe("request: expected exactly one of prompt or messages");
    expect((errors[2] as Error).message).toBe("request: expected exactly one of prompt or messages");
    expect(engine.stats.busy).toBe(0);
  });

  it("renderPrompt refuses a prompt that is no string, and a string role shows its length, never its text", async () => {
    const errors = await Promise.all([
      engine.renderPrompt({ prompt: 42 as never }).catch((e: unknown) => e),
      engine.renderPrompt({} as never).catch((e: unknown) => e),
      engine
        .renderPrompt({ messages: [{ role: "secret text as a role" as never, content: "a" }] })
        .catch((e: unknown) => e),
    ]);
    expect(errors.map(code)).toEqual(["ENGINE_REQUEST", "ENGINE_REQUEST", "ENGINE_REQUEST"]);
    expect((errors[0] as Error).message).toBe("prompt: expected a string, found number");
    expect((errors[1] as Error).message).toBe("request: expected exactly one of prompt or messages");
    expect((errors[2] as Error).message).toBe(
      "messages[0].role: expected system, user or assistant, found a string of 21 characters",
    );
  });

  it("refuses more messages than the service's schema takes (maxMessages) as ENGINE_REQUEST", async () => {
    // The shapes' keys (engine/template-shapes.ts) and Cloister's template's cost rest on that bound;
    // the engine's in-process callers pass no schema, so the engine applies it itself.
    const conversation = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ role: i % 2 === 0 ? "user" : "assistant", content: "" }) as const);
    const most = REQUEST_LIMITS.maxMessages;
    const past = await engine.renderPrompt({ messages: conversation(most + 1) }).catch((e: unknown) => e);
    expect(code(past)).toBe("ENGINE_REQUEST");
    expect((past as Error).message).toBe(`messages: expected 1..${most} messages, found ${most + 1}`);
    const streamed = engine.generate({ messages: conversation(most + 1) });
    expect(code(await streamed.next().catch((e: unknown) => e))).toBe("ENGINE_REQUEST");
    // The limit itself passes the check (and then renders, or is too long for this engine's context).
    const atMost = await engine.renderPrompt({ messages: conversation(most) }).then(
      () => "rendered",
      (e: unknown) => code(e),
    );
    expect(["rendered", "PROMPT_TOO_LONG"]).toContain(atMost);
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

  // Preparing a sequence (erasing a tenant's cached tokens after the reused prefix) takes the
  // context's lock, which node-llama-cpp's batch loop holds while any decode is queued: with two
  // sequences generating one nearly always is, so the newcomer waited for their whole generations
  // (engine.ts #editSequence). Shown by order, not time nor a count of tokens that batching sets:
  // its first text comes while both runners still generate, before either has its last token.
  it("a request arriving while two others generate gets its first token while they still generate, with the same texts", async () => {
    const runnerPrompts = [prompts[2]!, prompts[3]!];
    const runnerTokens = 100; // the model does not stop by itself before
    const alone = await attentive.complete({ prompt: prompts[0]!, maxTokens: 8, tenant: "key-j" });
    const runnersAlone: string[] = [];
    for (const prompt of runnerPrompts) {
      runnersAlone.push((await attentive.complete({ prompt, maxTokens: runnerTokens })).text);
    }
    const progress = [0, 0];
    /** Whether each runner has had its last event (its generation ended). */
    const ended = [false, false];
    const runners = runnerPrompts.map(async (prompt, i) => {
      let text = "";
      for await (const event of attentive.generate({ prompt, maxTokens: runnerTokens })) {
        if (event.type === "text") {
          progress[i]!++;
          text += event.text;
        } else ended[i] = true;
      }
      return text;
    });
    while (progress.some((tokens) => tokens < 10)) await new Promise((resolve) => setTimeout(resolve, 1));
    let endedAtFirstText: boolean[] | undefined;
    let text = "";
    let cached = 0;
    // The tenant's sequence holds its prompt and answer: reusing the prompt erases the answer.
    for await (const event of attentive.generate({ prompt: prompts[0]!, maxTokens: 8, tenant: "key-j" })) {
      if (event.type === "text") {
        endedAtFirstText ??= [...ended];
        text += event.text;
      } else cached = event.usage.cachedPromptTokens;
    }
    expect(cached).toBeGreaterThan(0);
    // Before: the edit waited for the runners' whole rest (~180 tokens), its first text came after both ended.
    expect(endedAtFirstText).toEqual([false, false]);
    expect(text).toBe(alone.text);
    expect(await Promise.all(runners)).toEqual(runnersAlone);
  });
});
