/**
 * enclave/engine.ts chatWrapperFor: for each model models/ makes (the tiny model, every benchmark
 * preset and quantisation), the chat wrapper is the one node-llama-cpp's "auto" resolution chooses,
 * formatting the same bytes, without auto's trial of every specialized wrapper (seconds of blocked
 * event loop). The benchmark models are loaded from their header alone (vocabulary only): the
 * wrapper depends on the metadata, not on the weights.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ChatHistoryItem, getLlama, type Llama, LlamaLogLevel, resolveChatWrapper } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { chatWrapperFor } from "../../enclave/engine.ts";
import { BENCH_PRESETS, type BenchPreset, type BenchQuant, benchShape, buildBenchVocab } from "../../models/bench.ts";
import { writeGguf } from "../../models/gguf-write.ts";
import { llamaMetadata } from "../../models/llama-layout.ts";
import { writeTinyModel } from "../../models/tiny.ts";

// resolveChatWrapper as the engine calls it, watched: which resolution it asked for.
vi.mock("node-llama-cpp", async (importOriginal) => {
  const real = await importOriginal<typeof import("node-llama-cpp")>();
  return { ...real, resolveChatWrapper: vi.fn(real.resolveChatWrapper) };
});

const HISTORIES: readonly (readonly ChatHistoryItem[])[] = [
  [
    { type: "user", text: "The enclave" },
    { type: "model", response: [] },
  ],
  [
    { type: "system", text: "Answer briefly." },
    { type: "user", text: "What is sealed?" },
    { type: "model", response: ["The prompt, to the attested key."] },
    { type: "user", text: "And the answer?\nSealed too." },
    { type: "model", response: [] },
  ],
];

let dir: string;
let llama: Llama;
const models: { name: string; path: string }[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-chat-wrapper-test-"));
  const tiny = join(dir, "tiny.gguf");
  await writeTinyModel(tiny);
  models.push({ name: "tiny", path: tiny });
  for (const preset of Object.keys(BENCH_PRESETS) as BenchPreset[]) {
    for (const quant of ["f16", "q8_0"] as BenchQuant[]) {
      const path = join(dir, `bench-${preset}-${quant}.gguf`);
      const vocab = buildBenchVocab(BENCH_PRESETS[preset].vocab);
      await writeGguf(path, llamaMetadata(benchShape(preset, quant), vocab), []);
      models.push({ name: `bench ${preset} ${quant}`, path });
    }
  }
  // Silent: llama.cpp logs a "missing tensor" error for a header-only file, then loads its vocabulary.
  llama = await getLlama({ gpu: false, build: "never", progressLogs: false, logLevel: LlamaLogLevel.disabled });
}, 120_000);

afterAll(async () => {
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe("chatWrapperFor", () => {
  it("chooses auto's wrapper for every model models/ makes, formatting the same bytes, without auto's trial of every wrapper", async () => {
    expect(models).toHaveLength(7);
    for (const { name, path } of models) {
      const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, vocabOnly: true });
      try {
        const auto = resolveChatWrapper(model);
        vi.mocked(resolveChatWrapper).mockClear();
        const chosen = chatWrapperFor(model);
        // auto tries each specialized wrapper (seconds of blocked event loop); the known template
        // asks for the Jinja wrapper directly. What was asked for, not a time: the machine is shared.
        expect({ name, calls: vi.mocked(resolveChatWrapper).mock.calls.map((call) => (call as unknown[])[1]) }).toEqual(
          {
            name,
            calls: [{ type: "jinjaTemplate" }],
          },
        );
        expect({ name, class: chosen.constructor.name, wrapperName: chosen.wrapperName }).toEqual({
          name,
          class: auto.constructor.name,
          wrapperName: auto.wrapperName,
        });
        expect(chosen.constructor.name).toBe("JinjaTemplateChatWrapper");
        for (const chatHistory of HISTORIES) {
          const expected = auto.generateContextState({ chatHistory: [...chatHistory] });
          const found = chosen.generateContextState({ chatHistory: [...chatHistory] });
          expect(found.contextText.toJSON()).toEqual(expected.contextText.toJSON());
          expect(found.contextText.toString()).toBe(expected.contextText.toString());
          expect(found.stopGenerationTriggers.map((t) => t.toJSON())).toEqual(
            expected.stopGenerationTriggers.map((t) => t.toJSON()),
          );
          expect(model.tokenize(found.contextText.toString(), true)).toEqual(
            model.tokenize(expected.contextText.toString(), true),
          );
        }
      } finally {
        await model.dispose();
      }
    }
  }, 300_000);
});
