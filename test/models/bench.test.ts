import { join } from "node:path";
import { getLlama, LlamaCompletion } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { BENCH_PRESETS, benchShape, buildBenchVocab, writeBenchModel } from "../../models/bench.ts";
import { encodeGgufHeader, readGgufFile } from "../../models/gguf.ts";
import { llamaMetadata, llamaTensors } from "../../models/llama-layout.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-bench-");

describe("benchmark models", () => {
  it("declares about 25M, 127M and 1.1B parameters (computed from the headers, nothing written)", () => {
    const expected = { small: [24e6, 27e6], medium: [120e6, 135e6], large: [1.0e9, 1.2e9] } as const;
    for (const preset of ["small", "medium", "large"] as const) {
      const shape = benchShape(preset, "q8_0");
      const vocab = buildBenchVocab(BENCH_PRESETS[preset].vocab);
      expect(vocab.tokens).toHaveLength(BENCH_PRESETS[preset].vocab);
      expect(new Set(vocab.tokens).size).toBe(vocab.tokens.length);
      const tensors = llamaTensors(shape, vocab.tokens.length, {
        blockMatrices: "Q8_0",
        embedding: "Q8_0",
        output: "Q8_0",
      });
      const layout = encodeGgufHeader(llamaMetadata(shape, vocab), tensors);
      const params = layout.placements.reduce((a, p) => a + p.elements, 0);
      expect(params, preset).toBeGreaterThanOrEqual(expected[preset][0]);
      expect(params, preset).toBeLessThanOrEqual(expected[preset][1]);
    }
  });

  it("writes the small preset deterministically in both encodings, and llama.cpp runs it", async () => {
    const a = await writeBenchModel(join(dir, "a.gguf"), "small", { quant: "q8_0" });
    const b = await writeBenchModel(join(dir, "b.gguf"), "small", { quant: "q8_0" });
    expect(b).toEqual(a);
    const f16 = await writeBenchModel(join(dir, "f16.gguf"), "small");
    expect(f16.parameters).toBe(a.parameters);
    expect(f16.sha256).not.toBe(a.sha256);
    expect(f16.bytes).toBeGreaterThan(a.bytes * 1.8);

    const file = await readGgufFile(join(dir, "a.gguf"));
    expect(file.fileSize).toBe(a.bytes);
    expect(file.tensors.filter((t) => t.typeName === "Q8_0")).toHaveLength(2 + 7 * 5);

    const llama = await getLlama({ gpu: false });
    const model = await llama.loadModel({ modelPath: join(dir, "a.gguf") });
    try {
      expect(model.trainContextSize).toBe(2048);
      const context = await model.createContext({ contextSize: 128, sequences: 1, threads: 1 });
      const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
      const text = await completion.generateCompletion("The enclave", { maxTokens: 6, temperature: 0 });
      // Random weights write filler pieces; what matters is that the graph ran and picked tokens.
      expect(model.tokenize(text).length).toBeGreaterThan(0);
      await context.dispose();
    } finally {
      await model.dispose();
      await llama.dispose();
    }
  });
});
