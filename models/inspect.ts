/**
 * Summary of a GGUF model file for `cloister model inspect` and the manifest tooling: reads only
 * the header (see gguf-read.ts) plus a streaming SHA-256 of the whole file. It reports what the
 * file declares; it does not run the model.
 */

import type { FileHandle } from "node:fs/promises";
import { fileMessage } from "../attestation/bounded-read.ts";
import { cannotRead, GgufFormatError, ModelError } from "./errors.ts";
import { type GgufFile, metadataArrayLength, metadataNumber, metadataString, readGgufHandle } from "./gguf-read.ts";
import { closeModelInput, HASH_BUFFER_BYTES, openModelInput, sha256Handle } from "./hash.ts";
import { refuseSealedModelHandle } from "./sealed.ts";

export interface ModelSummary {
  readonly path: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly ggufVersion: number;
  readonly architecture: string | null;
  readonly name: string | null;
  readonly parameters: number;
  readonly tensorCount: number;
  /** Number of tensors of each ggml type, e.g. { F32: 3, Q8_0: 7 }. */
  readonly tensorTypes: Readonly<Record<string, number>>;
  /** Parameters stored in each ggml type. */
  readonly parametersByType: Readonly<Record<string, number>>;
  readonly contextLength: number | null;
  readonly embeddingLength: number | null;
  readonly blockCount: number | null;
  readonly vocabularySize: number | null;
  readonly tokenizer: string | null;
  readonly hasChatTemplate: boolean;
  readonly alignment: number;
  readonly metadataKeys: number;
}

export function summarizeGguf(file: GgufFile): Omit<ModelSummary, "path" | "sha256"> {
  const arch = metadataString(file, "general.architecture") ?? null;
  const archNumber = (key: string) => (arch === null ? null : (metadataNumber(file, `${arch}.${key}`) ?? null));
  const tensorTypes: Record<string, number> = {};
  const parametersByType: Record<string, number> = {};
  let parameters = 0;
  for (const t of file.tensors) {
    parameters += t.elements;
    tensorTypes[t.typeName] = (tensorTypes[t.typeName] ?? 0) + 1;
    parametersByType[t.typeName] = (parametersByType[t.typeName] ?? 0) + t.elements;
  }
  return {
    bytes: file.fileSize,
    ggufVersion: file.version,
    architecture: arch,
    name: metadataString(file, "general.name") ?? null,
    parameters,
    tensorCount: file.tensors.length,
    tensorTypes,
    parametersByType,
    contextLength: archNumber("context_length"),
    embeddingLength: archNumber("embedding_length"),
    blockCount: archNumber("block_count"),
    vocabularySize: metadataArrayLength(file, "tokenizer.ggml.tokens") ?? archNumber("vocab_size"),
    tokenizer: metadataString(file, "tokenizer.ggml.model") ?? null,
    hasChatTemplate: metadataString(file, "tokenizer.chat_template") !== undefined,
    alignment: file.alignment,
    metadataKeys: file.metadata.size,
  };
}

/**
 * Parse the header of `path` (throws GgufFormatError on malformed files, MODEL_SEALED on a sealed
 * model) and hash the file, both through one handle: a file swapped in between by name would give a
 * digest of one file printed under another's header.
 */
export async function inspectModel(path: string): Promise<ModelSummary> {
  const { handle } = await openModelInput(path);
  try {
    const header = await summarizeModelHandle(handle, path);
    const sha256 = await sha256Handle(handle, path, header.bytes, Buffer.allocUnsafe(HASH_BUFFER_BYTES));
    // The digest is of the size the header's read saw: a file grown or cut since (written to in
    // place) is refused, not printed with a digest of part of it, or of a part of its new size.
    const { size } = await handle.stat().catch(cannotRead(path));
    if (size !== header.bytes) {
      throw new ModelError(
        "MODEL_CHANGED",
        fileMessage(path, "model file", `changed while being read: expected ${header.bytes} bytes, found ${size}`),
      );
    }
    return { path, sha256, ...header };
  } finally {
    await closeModelInput(handle);
  }
}

/**
 * What the header of a file already open declares (`handle`, read at offsets, not closed; `path`
 * names it): `cloister model seal` counts the parameters of the file it seals through the handle it
 * seals, `inspect` hashes the file it summarized.
 */
export async function summarizeModelHandle(
  handle: FileHandle,
  path: string,
): Promise<Omit<ModelSummary, "path" | "sha256">> {
  const file = await readGgufHandle(handle, path).catch(async (error: unknown) => {
    // Not a GGUF file: name the one other model format we make, rather than its magic in hex.
    if (error instanceof GgufFormatError && error.code === "GGUF_BAD_MAGIC")
      await refuseSealedModelHandle(handle, path, "model file");
    throw error;
  });
  return summarizeGguf(file);
}
