/**
 * A model file for the chat-template tests: the tiny model's shape and vocabulary, zero weights,
 * under `template` (tokenizer.chat_template), written to `path`.
 */
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
