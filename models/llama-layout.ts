/**
 * The llama architecture as llama.cpp expects it in GGUF: hyper-parameter keys, tokenizer keys and
 * tensor names with their shapes (innermost-first). Shared by the tiny and the benchmark models.
 */
import type { GgufValue, WritableGgmlType } from "./gguf-format.ts";
import type { GgufMetadata, GgufTensorSpec } from "./gguf-write.ts";
import { BOS_ID, EOS_ID, UNK_ID, type Vocab } from "./tiny-vocab.ts";

export interface LlamaShape {
  readonly name: string;
  readonly contextLength: number;
  readonly embedding: number;
  readonly blocks: number;
  readonly feedForward: number;
  readonly heads: number;
  readonly headsKv: number;
  readonly rmsEpsilon: number;
  /** llama.cpp `general.file_type` (1 = mostly F16, 7 = mostly Q8_0). */
  readonly fileType: number;
}

/** Tensor types per role: matrices of the blocks, token embedding, output projection. */
export interface LlamaTensorTypes {
  readonly blockMatrices: WritableGgmlType;
  readonly embedding: WritableGgmlType;
  readonly output: WritableGgmlType;
}

const u32 = (value: number): GgufValue => ({ type: "UINT32", value });
const str = (value: string): GgufValue => ({ type: "STRING", value });

/** A simple role-prefixed chat format; node-llama-cpp renders it with its Jinja chat wrapper. */
export const CHAT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}" +
  "{% if message['role'] == 'system' %}{{ 'System: ' + message['content'] + '\\n' }}" +
  "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n' }}" +
  "{% else %}{{ 'Assistant: ' + message['content'] + eos_token + '\\n' }}{% endif %}" +
  "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

export function llamaMetadata(shape: LlamaShape, vocab: Vocab): GgufMetadata {
  const headDim = shape.embedding / shape.heads;
  return [
    ["general.architecture", str("llama")],
    ["general.name", str(shape.name)],
    ["general.file_type", u32(shape.fileType)],
    ["general.alignment", u32(32)],
    ["llama.vocab_size", u32(vocab.tokens.length)],
    ["llama.context_length", u32(shape.contextLength)],
    ["llama.embedding_length", u32(shape.embedding)],
    ["llama.block_count", u32(shape.blocks)],
    ["llama.feed_forward_length", u32(shape.feedForward)],
    ["llama.attention.head_count", u32(shape.heads)],
    ["llama.attention.head_count_kv", u32(shape.headsKv)],
    ["llama.attention.layer_norm_rms_epsilon", { type: "FLOAT32", value: shape.rmsEpsilon }],
    ["llama.rope.dimension_count", u32(headDim)],
    ["llama.rope.freq_base", { type: "FLOAT32", value: 10000 }],
    ["tokenizer.ggml.model", str("llama")],
    ["tokenizer.ggml.tokens", { type: "ARRAY", itemType: "STRING", items: vocab.tokens }],
    ["tokenizer.ggml.scores", { type: "ARRAY", itemType: "FLOAT32", items: vocab.scores }],
    ["tokenizer.ggml.token_type", { type: "ARRAY", itemType: "INT32", items: vocab.types }],
    ["tokenizer.ggml.bos_token_id", u32(BOS_ID)],
    ["tokenizer.ggml.eos_token_id", u32(EOS_ID)],
    ["tokenizer.ggml.unknown_token_id", u32(UNK_ID)],
    ["tokenizer.ggml.add_bos_token", { type: "BOOL", value: true }],
    ["tokenizer.ggml.add_eos_token", { type: "BOOL", value: false }],
    ["tokenizer.ggml.add_space_prefix", { type: "BOOL", value: false }],
    ["tokenizer.chat_template", str(CHAT_TEMPLATE)],
  ];
}

/** Tensors in file order: embedding, each block, final norm, output projection. */
export function llamaTensors(shape: LlamaShape, vocabSize: number, types: LlamaTensorTypes): GgufTensorSpec[] {
  const d = shape.embedding;
  const kv = (d / shape.heads) * shape.headsKv;
  const m = types.blockMatrices;
  const out: GgufTensorSpec[] = [{ name: "token_embd.weight", type: types.embedding, dims: [d, vocabSize] }];
  for (let i = 0; i < shape.blocks; i++) {
    out.push(
      { name: `blk.${i}.attn_norm.weight`, type: "F32", dims: [d] },
      { name: `blk.${i}.attn_q.weight`, type: m, dims: [d, d] },
      { name: `blk.${i}.attn_k.weight`, type: m, dims: [d, kv] },
      { name: `blk.${i}.attn_v.weight`, type: m, dims: [d, kv] },
      { name: `blk.${i}.attn_output.weight`, type: m, dims: [d, d] },
      { name: `blk.${i}.ffn_norm.weight`, type: "F32", dims: [d] },
      { name: `blk.${i}.ffn_gate.weight`, type: m, dims: [d, shape.feedForward] },
      { name: `blk.${i}.ffn_up.weight`, type: m, dims: [d, shape.feedForward] },
      { name: `blk.${i}.ffn_down.weight`, type: m, dims: [shape.feedForward, d] },
    );
  }
  out.push(
    { name: "output_norm.weight", type: "F32", dims: [d] },
    { name: "output.weight", type: types.output, dims: [d, vocabSize] },
  );
  return out;
}
