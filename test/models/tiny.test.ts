import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  getLlama,
  type Llama,
  LlamaChatSession,
  LlamaCompletion,
  type LlamaModel,
  readGgufFileInfo,
} from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readGgufFile } from "../../models/gguf.ts";
import { sha256File } from "../../models/hash.ts";
import { inspectModel } from "../../models/inspect.ts";
import { TINY_MODEL_SHA256, writeTinyModel } from "../../models/tiny.ts";
import { TINY_CORPUS } from "../../models/tiny-corpus.ts";

let dir: string;
let path: string;
let written: { sha256: string; bytes: number };
let llama: Llama;
let model: LlamaModel;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-tiny-"));
  path = join(dir, "tiny.gguf");
  written = await writeTinyModel(path);
  llama = await getLlama({ gpu: false });
  model = await llama.loadModel({ modelPath: path });
});

afterAll(async () => {
  await model?.dispose();
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe("tiny model bytes", () => {
  it("parses the same header with our reader and node-llama-cpp's independent one", async () => {
    const ours = await readGgufFile(path);
    const theirs = await readGgufFileInfo(path, { logWarnings: false });
    expect(theirs.version).toBe(ours.version);
    expect(theirs.metadata.general.architecture).toBe("llama");
    const tokens = ours.metadata.get("tokenizer.ggml.tokens");
    expect(tokens?.type).toBe("ARRAY");
    expect(theirs.metadata.tokenizer.ggml.tokens).toEqual(tokens?.type === "ARRAY" ? tokens.items : undefined);
    expect(theirs.tensorInfo?.map((t) => [t.name, t.dimensions.map(Number), t.ggmlType, Number(t.fileOffset)])).toEqual(
      ours.tensors.map((t) => [t.name, t.dims, t.type, ours.dataOffset + t.offset]),
    );
  });

  it("is identical across writes and equal to the pinned digest", async () => {
    const again = await writeTinyModel(join(dir, "again.gguf"));
    expect(again).toEqual(written);
    expect(written.sha256).toBe(TINY_MODEL_SHA256);
    expect(await sha256File(path)).toBe(TINY_MODEL_SHA256);
  });

  it("inspects as a llama model with a llama tokenizer and a chat template", async () => {
    const s = await inspectModel(path);
    expect(s).toMatchObject({
      sha256: TINY_MODEL_SHA256,
      bytes: written.bytes,
      ggufVersion: 3,
      architecture: "llama",
      name: "cloister-tiny",
      tokenizer: "llama",
      contextLength: 2048,
      blockCount: 1,
      hasChatTemplate: true,
      tensorTypes: { Q8_0: 8, F32: 3, F16: 1 },
    });
    expect(s.vocabularySize).toBeGreaterThan(259);
    expect(s.embeddingLength).toBeGreaterThanOrEqual(s.vocabularySize!);
  });
});

// One thread per context: on a 2-core machine shared with other test files, llama.cpp's spinning
// worker threads slow a few-token generation from milliseconds to tens of seconds.
describe("tiny model in llama.cpp (node-llama-cpp)", () => {
  it("loads without tokenizer warnings", () => {
    expect(model.getWarnings()).toEqual([]);
  });

  it("round-trips varied UTF-8 exactly through tokenize → detokenize", () => {
    const samples = [
      "",
      "The enclave keeps every prompt private.",
      "  leading and trailing spaces  ",
      "tabs\tand\nnew\r\nlines\n\n",
      "emoji 😀🔐👩‍💻 and flags 🇪🇺",
      "日本語のテキスト、中文文本，한국어",
      "combining marks: e\u0301 a\u0308 n\u0303 Z\u0351\u0352",
      "Ελληνικά и кириллица; العربية; עברית",
      "literal <s> and </s> and <0x41> and <unk> stay text",
      "symbols ~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./",
      "\u0000 nul and \u007f del and \u00a0 nbsp and \uFEFF bom",
    ];
    for (const text of samples) {
      const tokens = model.tokenize(text);
      expect(model.detokenize(tokens), JSON.stringify(text)).toBe(text);
    }
    // As in every SentencePiece vocabulary, a literal U+2581 is the escaped space and reads back as " ".
    expect(model.detokenize(model.tokenize("a\u2581b"))).toBe("a b");
    // Corpus words are single tokens (reachable by SPM merges), unknown text falls back to bytes.
    expect(model.tokenize(" enclave")).toHaveLength(1);
    expect(model.tokenize("😀")).toHaveLength(4);
  });

  it("greedy generation is exact and reproducible", async () => {
    const generate = async () => {
      const context = await model.createContext({ contextSize: 256, sequences: 1, threads: 1 });
      try {
        const completion = new LlamaCompletion({ contextSequence: context.getSequence() });
        return await completion.generateCompletion("The enclave", { maxTokens: 24, temperature: 0 });
      } finally {
        await context.dispose();
      }
    };
    const first = await generate();
    expect(first).toBe(" keeps every prompt private inside a confidential virtual machine.");
    expect(await generate()).toBe(first);
  });

  it("chats through the model's template and answers with corpus words", async () => {
    const context = await model.createContext({ contextSize: 1024, sequences: 1, threads: 1 });
    try {
      const session = new LlamaChatSession({
        contextSequence: context.getSequence(),
        systemPrompt: "You answer questions about confidential computing.",
      });
      const answer = await session.prompt("What does the enclave do?", { maxTokens: 40, temperature: 0 });
      expect(answer.trim().length).toBeGreaterThan(0);
      const vocabulary = new Set(TINY_CORPUS.join(" ").match(/[A-Za-z']+/g));
      for (const word of answer.match(/[A-Za-z']+/g) ?? []) expect(vocabulary.has(word), word).toBe(true);
      expect(answer).toMatch(/enclave/);
    } finally {
      await context.dispose();
    }
  });
});
