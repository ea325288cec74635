/** A small GGUF model for tests of the readers of a model file (inspect, seal): one F32 tensor. */
import { readFile } from "node:fs/promises";
import { writeGguf } from "../../models/gguf-write.ts";

/** Writes at `path` a GGUF file of one F32 tensor of `elements` parameters; its bytes. */
export async function oneTensorModel(path: string, elements: number): Promise<Buffer> {
  const data = new Float32Array(elements).map((_, i) => i / elements);
  await writeGguf(
    path,
    [["general.architecture", { type: "STRING", value: "llama" }]],
    [{ name: "w", type: "F32", dims: [elements], data }],
  );
  return readFile(path);
}
