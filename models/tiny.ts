/**
 * The tiny demo/test model: a llama-architecture GGUF that llama.cpp loads and that writes
 * recognisable English about confidential computing, built deterministically from the corpus in
 * tiny-corpus.ts with no training and no downloads.
 *
 * How it works: it is a bigram model dressed as a transformer. The embedding of token t is the
 * one-hot vector e_t (n_embd ≥ vocabulary size); every block's attention output and feed-forward
 * down projections are zero, so the residual stream carries e_t unchanged to the end; the final
 * RMS norm scales it to exactly e_t (norm weight 1/sqrt(n_embd)), and row j of the output matrix
 * holds log P(j | t) for every t, so the logits are the bigram log-probabilities of the corpus.
 * Greedy decoding then follows the most frequent continuation word by word.
 *
 * Same bytes on every run: the vocabulary is sorted by code point, counts are integers, the only
 * floating-point step (a logarithm) is rounded to half precision, and nothing reads a clock or a
 * random source. The digest is pinned in {@link TINY_MODEL_SHA256} and checked by the tests.
 */
import { GgufWriter } from "./gguf-write.ts";
import { type LlamaShape, llamaMetadata, llamaTensors } from "./llama-layout.ts";
import { TINY_CORPUS } from "./tiny-corpus.ts";
import { BOS_ID, buildVocab, EOS_ID, tokenizeSpm, UNK_ID, type Vocab } from "./tiny-vocab.ts";

/** SHA-256 of the file {@link writeTinyModel} writes (lower-case hex). */
export const TINY_MODEL_SHA256 = "3e1948399ecab6f7ccc11449939a0b1337439f969f91547e6cd7680b0b9536df";

/** Smoothing mass spread by unigram frequency over continuations never seen after a token. */
const ALPHA = 0.05;
/** Floor for tokens that must never be produced (`<unk>`, `<s>`). */
const NEVER = -30;

export interface TinyBigram {
  readonly vocab: Vocab;
  /** logProb[t * V + j] = log P(next = j | current = t), float64 before half-precision rounding. */
  readonly logProb: Float64Array;
}

/** Count bigrams over the corpus (each line framed by `<s>` … `</s>`) and turn them into log P. */
export function buildTinyBigram(corpus: readonly string[] = TINY_CORPUS): TinyBigram {
  const vocab = buildVocab(corpus);
  const V = vocab.tokens.length;
  const pair = new Float64Array(V * V);
  const from = new Float64Array(V);
  const unigram = new Float64Array(V);
  for (const line of corpus) {
    const ids = [BOS_ID, ...tokenizeSpm(vocab, line), EOS_ID];
    for (let i = 0; i + 1 < ids.length; i++) {
      const t = ids[i]!;
      const j = ids[i + 1]!;
      pair[t * V + j]! += 1;
      from[t]! += 1;
      unigram[j]! += 1;
    }
  }
  // A bare space token only ends a prompt that stops between words, as a chat template's reply
  // prefix does ("Assistant: "): continue it the way the corpus continues after a colon, so the
  // reply starts with a word instead of the back-off distribution.
  const space = vocab.index.get("\u2581")!;
  const colon = vocab.index.get(":")!;
  if (from[space] === 0) {
    for (let j = 0; j < V; j++) pair[space * V + j] = pair[colon * V + j]!;
    from[space] = from[colon]!;
  }
  let total = 0;
  for (let j = 0; j < V; j++) total += unigram[j]!;
  // Unigram back-off distribution with a small floor so every token has a finite log-probability.
  const backoff = new Float64Array(V);
  for (let j = 0; j < V; j++) backoff[j] = (unigram[j]! + 1e-3) / (total + 1e-3 * V);
  const logProb = new Float64Array(V * V);
  for (let t = 0; t < V; t++) {
    const n = from[t]!;
    for (let j = 0; j < V; j++) {
      const p = n > 0 ? (pair[t * V + j]! + ALPHA * backoff[j]!) / (n + ALPHA) : backoff[j]!;
      logProb[t * V + j] = j === UNK_ID || j === BOS_ID ? NEVER : Math.max(NEVER, Math.log(p));
    }
  }
  return { vocab, logProb };
}

/** Shape of the tiny model for a vocabulary of `vocabSize` tokens. */
export function tinyShape(vocabSize: number): LlamaShape {
  const embedding = Math.ceil(vocabSize / 64) * 64;
  return {
    name: "cloister-tiny",
    contextLength: 2048,
    embedding,
    blocks: 1,
    feedForward: 64,
    heads: embedding / 64,
    headsKv: 1,
    rmsEpsilon: 1e-6,
    fileType: 7,
  };
}

/**
 * Write the tiny model to `path` (overwriting it) and return its SHA-256 and size. The token
 * embedding and block matrices are Q8_0, the output matrix F16 and the norms F32, so loading it
 * in llama.cpp exercises all three encodings of the writer.
 */
export async function writeTinyModel(path: string): Promise<{ sha256: string; bytes: number }> {
  const { vocab, logProb } = buildTinyBigram();
  const V = vocab.tokens.length;
  const shape = tinyShape(V);
  const d = shape.embedding;
  const tensors = llamaTensors(shape, V, { blockMatrices: "Q8_0", embedding: "Q8_0", output: "F16" });
  const writer = await GgufWriter.create(path, llamaMetadata(shape, vocab), tensors);
  try {
    const row = new Float32Array(d);
    for (const spec of tensors) {
      const rows = spec.dims[1] ?? 1;
      for (let r = 0; r < rows; r++) {
        row.fill(0);
        if (spec.name === "token_embd.weight") {
          row[r] = 1;
        } else if (spec.name === "output.weight") {
          // Row r produces the logit of token r; column t is the current token.
          for (let t = 0; t < V; t++) row[t] = logProb[t * V + r]!;
        } else if (spec.name === "output_norm.weight") {
          row.fill(1 / Math.sqrt(d));
        } else if (spec.name.endsWith("_norm.weight")) {
          row.fill(1);
        }
        await writer.append(row.subarray(0, spec.dims[0]));
      }
    }
  } catch (error) {
    await writer.abort();
    throw error;
  }
  return writer.finish();
}

/** Greedy continuation under the bigram table (float64, before rounding): used to design the corpus. */
export function greedyBigram(bigram: TinyBigram, lastToken: number, maxTokens: number): number[] {
  const V = bigram.vocab.tokens.length;
  const out: number[] = [];
  let t = lastToken;
  for (let i = 0; i < maxTokens; i++) {
    let best = 0;
    for (let j = 1; j < V; j++) if (bigram.logProb[t * V + j]! > bigram.logProb[t * V + best]!) best = j;
    if (best === EOS_ID) break;
    out.push(best);
    t = best;
  }
  return out;
}
