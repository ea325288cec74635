/**
 * Synthetic llama-shaped models for benchmarks: real shapes (about 25M, 125M and 1.1B parameters),
 * deterministic pseudo-random weights from a seeded PRNG, streamed to disk in 1M-value chunks so
 * memory stays constant whatever the preset. The text they write is meaningless; they exist to
 * measure load time, memory and tokens per second of real-size matrices.
 *
 * Numerical sanity: weights are uniform with variance 1/fan_in (so each projection keeps the scale
 * of its RMS-normalised input), the two projections that write back into the residual stream are
 * further scaled by 1/sqrt(2·blocks), norms are 1, so activations and logits stay O(1) and finite.
 * The vocabulary is the tiny model's (so tokenization works and round-trips) padded with filler
 * word pieces to the preset's size.
 */
import { GgufWriter } from "./gguf-write.ts";
import { type LlamaShape, llamaMetadata, llamaTensors } from "./llama-layout.ts";
import { fnv1a32, Mulberry32 } from "./numeric.ts";
import { TINY_CORPUS } from "./tiny-corpus.ts";
import { buildVocab, TokenType, type Vocab } from "./tiny-vocab.ts";

export type BenchPreset = "small" | "medium" | "large";
export type BenchQuant = "f16" | "q8_0";

interface PresetShape {
  readonly vocab: number;
  readonly embedding: number;
  readonly blocks: number;
  readonly feedForward: number;
  readonly heads: number;
  readonly headsKv: number;
}

export const BENCH_PRESETS: Readonly<Record<BenchPreset, PresetShape>> = {
  small: { vocab: 8192, embedding: 512, blocks: 5, feedForward: 1536, heads: 8, headsKv: 8 },
  medium: { vocab: 32000, embedding: 768, blocks: 12, feedForward: 1792, heads: 12, headsKv: 12 },
  large: { vocab: 32000, embedding: 2048, blocks: 22, feedForward: 5632, heads: 32, headsKv: 4 },
};

const SEED = 0x5eed_c105;
const CHUNK = 1 << 20;

/** The tiny vocabulary padded with unreachable filler pieces (`▁` + letters) to `size` tokens. */
export function buildBenchVocab(size: number): Vocab {
  const base = buildVocab(TINY_CORPUS);
  const tokens = [...base.tokens];
  const scores = [...base.scores];
  const types = [...base.types];
  const seen = new Set(tokens);
  for (let n = 0; tokens.length < size; n++) {
    let word = "";
    let k = n;
    do {
      word = String.fromCharCode(97 + (k % 26)) + word;
      k = Math.floor(k / 26) - 1;
    } while (k >= 0);
    const piece = `\u2581${word}`;
    if (seen.has(piece)) continue;
    seen.add(piece);
    tokens.push(piece);
    scores.push(-1e6 - n);
    types.push(TokenType.NORMAL);
  }
  const index = new Map<string, number>();
  tokens.forEach((t, i) => {
    index.set(t, i);
  });
  return { tokens, scores, types, index };
}

export function benchShape(preset: BenchPreset, quant: BenchQuant): LlamaShape {
  const p = BENCH_PRESETS[preset];
  return {
    name: `cloister-bench-${preset}-${quant}`,
    contextLength: 2048,
    embedding: p.embedding,
    blocks: p.blocks,
    feedForward: p.feedForward,
    heads: p.heads,
    headsKv: p.headsKv,
    rmsEpsilon: 1e-5,
    fileType: quant === "f16" ? 1 : 7,
  };
}

/** Write the benchmark model `preset` to `path`; same bytes for the same preset and quant. */
export async function writeBenchModel(
  path: string,
  preset: BenchPreset,
  options?: { quant?: BenchQuant },
): Promise<{ sha256: string; bytes: number; parameters: number }> {
  const quant = options?.quant ?? "f16";
  const shape = benchShape(preset, quant);
  const vocab = buildBenchVocab(BENCH_PRESETS[preset].vocab);
  const type = quant === "f16" ? "F16" : "Q8_0";
  const tensors = llamaTensors(shape, vocab.tokens.length, { blockMatrices: type, embedding: type, output: type });
  const writer = await GgufWriter.create(path, llamaMetadata(shape, vocab), tensors);
  let parameters = 0;
  try {
    const chunk = new Float32Array(CHUNK);
    const residualScale = 1 / Math.sqrt(2 * shape.blocks);
    for (const spec of tensors) {
      const fanIn = spec.dims[0]!;
      const elements = spec.dims.reduce((a, b) => a * b, 1);
      parameters += elements;
      const isNorm = spec.dims.length === 1;
      let bound: number;
      if (spec.name === "token_embd.weight") bound = 1;
      else bound = Math.sqrt(3 / fanIn);
      if (spec.name.endsWith("attn_output.weight") || spec.name.endsWith("ffn_down.weight")) bound *= residualScale;
      const rng = new Mulberry32((SEED ^ fnv1a32(spec.name)) >>> 0);
      // Whole rows per chunk, so Q8_0 chunks are always a multiple of 32 values.
      const perChunk = Math.max(fanIn, Math.floor(CHUNK / fanIn) * fanIn);
      for (let done = 0; done < elements; ) {
        const n = Math.min(perChunk, elements - done);
        const view = chunk.subarray(0, n);
        if (isNorm) view.fill(1);
        else for (let i = 0; i < n; i++) view[i] = rng.nextSigned() * bound;
        await writer.append(view);
        done += n;
      }
    }
  } catch (error) {
    await writer.abort();
    throw error;
  }
  const { sha256, bytes } = await writer.finish();
  return { sha256, bytes, parameters };
}
