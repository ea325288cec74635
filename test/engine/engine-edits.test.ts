/**
 * The engine's pending-edit wait (InferenceEngine #editSequence) against scripted fakes of
 * node-llama-cpp's model, context and sequences, so the order of events is chosen by the test: a
 * generation that waits for another request's edit of its sequence, and is aborted meanwhile, ends
 * after the wait without asking the model for another token.
 */
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { type EngineInfo, type GenerationEvent, InferenceEngine } from "../../enclave/engine.ts";

/** A sequence whose tokens are counted as asked for, and whose clearing waits for the test. */
class ScriptedSequence {
  nextTokenIndex: number;
  /** Tokens the generation asked evaluate() for. */
  produced = 0;
  /** Resolves once clearHistory() has been called; `clear` then lets it finish. */
  readonly clearing: Promise<void>;
  #cleared!: () => void;
  clear!: () => void;
  #clearCalled!: () => void;

  constructor(cachedTokens: number) {
    this.nextTokenIndex = cachedTokens;
    this.clearing = new Promise((resolve) => (this.#clearCalled = resolve));
    const cleared = new Promise<void>((resolve) => (this.#cleared = resolve));
    this.clear = () => this.#cleared();
    this.clearHistory = () => {
      this.#clearCalled();
      return cleared.then(() => {
        this.nextTokenIndex = 0;
      });
    };
  }

  clearHistory: () => Promise<void>;

  compareContextTokens(): { firstDifferentIndex: number } {
    return { firstDifferentIndex: 0 };
  }

  async *evaluate(): AsyncGenerator<Token> {
    for (;;) {
      this.produced++;
      yield (100 + this.produced) as Token;
    }
  }
}

function scriptedEngine(sequences: ScriptedSequence[]): InferenceEngine {
  const model = {
    tokens: { bos: null, shouldPrependBosToken: false },
    tokenize: (text: string) => [...text].map((_, i) => (i + 1) as Token),
    detokenize: (tokens: readonly Token[]) => tokens.map((t) => ` t${t}`).join(""),
  };
  const info: EngineInfo = {
    modelPath: "scripted.gguf",
    modelSha256: "0".repeat(64),
    modelBytes: 0,
    sequences: sequences.length,
    maxQueue: 0,
    contextSize: 256,
    gpu: false,
    chatTemplate: "none",
  };
  return new InferenceEngine(
    {} as Llama,
    model as unknown as LlamaModel,
    { disposed: false } as LlamaContext,
    sequences.map((s) => ({ sequence: s as unknown as LlamaContextSequence, tenant: undefined })),
    {} as never,
    0,
    info,
    null,
  );
}

describe("a generation waiting for another request's edit", () => {
  it("ends at its abort when the wait is over, without asking the model for another token", async () => {
    const running = new ScriptedSequence(0);
    // Holds another request's tokens: the next request on it clears it first (an edit).
    const held = new ScriptedSequence(5);
    const engine = scriptedEngine([running, held]);
    const stop = new AbortController();
    const a = engine.generate({ prompt: "abc", maxTokens: 50, signal: stop.signal });
    expect(((await a.next()).value as GenerationEvent).type).toBe("text");
    expect(running.produced).toBe(1);

    const b = engine.generate({ prompt: "xyz", maxTokens: 1 });
    const bFirst = b.next();
    await held.clearing; // b's edit is pending until held.clear()
    const aNext = a.next(); // a waits for b's edit before asking for its next token
    stop.abort();
    held.clear();

    const event = (await aNext).value as GenerationEvent;
    expect(event).toMatchObject({ type: "done", stopReason: "abort", usage: { completionTokens: 1 } });
    expect(running.produced).toBe(1);
    expect(((await bFirst).value as GenerationEvent).type).toBe("text");
    await b.return(undefined);
  });
});
