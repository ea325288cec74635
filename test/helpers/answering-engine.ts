/**
 * A stand-in for enclave/engine.ts openInferenceEngine (for a vi.mock of that module): an engine
 * that answers every request with `chunks`, one text event each, then a done event; no model.
 */
export function answeringEngine(chunks: readonly string[]) {
  return {
    async *generate() {
      for (const text of chunks) yield { type: "text" as const, text };
      yield {
        type: "done" as const,
        stopReason: "eog" as const,
        usage: { promptTokens: 2, completionTokens: 2, ttftMs: 1, tokensPerSecond: 1 },
      };
    },
    close: async () => {},
  };
}
