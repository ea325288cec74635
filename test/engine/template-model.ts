/**
 * A model file for the chat-template tests: the tiny model's shape and vocabulary, zero weights,
 * under `template` (tokenizer.chat_template), written to `path`.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel } from "node-llama-cpp";
import { afterAll, beforeAll } from "vitest";
import { type InferenceEngine, openInferenceEngine } from "../../enclave/engine.ts";
import { writeGguf } from "../../models/gguf-write.ts";
import { llamaMetadata, llamaTensors } from "../../models/llama-layout.ts";
import { buildTinyBigram, tinyShape } from "../../models/tiny.ts";

export async function writeTemplateModel(path: string, template: string): Promise<{ sha256: string }> {
  const { vocab } = buildTinyBigram();
  const shape = tinyShape(vocab.tokens.length);
  const { sha256 } = await writeGguf(
    path,
    llamaMetadata(shape, vocab).map(([key, value]) =>
      key === "tokenizer.chat_template" ? [key, { type: "STRING", value: template }] : [key, value],
    ),
    llamaTensors(shape, vocab.tokens.length, { blockMatrices: "F32", embedding: "F32", output: "F32" }).map(
      (tensor) => ({ ...tensor, data: new Float32Array(tensor.dims.reduce((a, b) => a * b, 1)) }),
    ),
  );
  return { sha256 };
}

/**
 * A model under `template`, loaded vocabulary only (its tokenizer, for a shape worker) in a new
 * llama.cpp instance, from a file in a temporary directory; `dispose` frees both (llama.cpp's
 * instance disposes its model with it) and removes the directory.
 */
export async function loadTemplateModel(template: string): Promise<{ model: LlamaModel; dispose(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "cloister-template-model-"));
  let llama: Llama | undefined;
  try {
    const path = join(dir, "template.gguf");
    await writeTemplateModel(path, template);
    llama = await getLlama({ gpu: false, build: "never", progressLogs: false, logLevel: LlamaLogLevel.disabled });
    const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, vocabOnly: true });
    const loaded = llama;
    return {
      model,
      dispose: async () => {
        await loaded.dispose();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await llama?.dispose();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/** The test file's model under `template` (loadTemplateModel), loaded before its tests and freed after: read it in a test. */
export function useTemplateModel(template: string): () => LlamaModel {
  let loaded: { model: LlamaModel; dispose(): Promise<void> } | undefined;
  beforeAll(async () => {
    loaded = await loadTemplateModel(template);
  });
  afterAll(async () => {
    await loaded?.dispose();
  });
  return () => {
    if (loaded === undefined) throw new Error("expected the template model loaded (beforeAll)");
    return loaded.model;
  };
}

/**
 * An engine of a model under `template` written to `path`, its wrapper the pinned "jinjaTemplate"
 * (an operator's template: its conversation shapes rendered on the boot's worker first), one
 * sequence of 256 tokens.
 */
export async function openTemplateEngine(path: string, template: string): Promise<InferenceEngine> {
  const { sha256 } = await writeTemplateModel(path, template);
  return openInferenceEngine({
    modelPath: path,
    expectedSha256: sha256,
    threads: 1,
    sequences: 1,
    contextSize: 256,
    chatWrapper: "jinjaTemplate",
  });
}
