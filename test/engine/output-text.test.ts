import type { Token } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { longestTriggerPrefixSuffix, OutputText, type StopRules } from "../../enclave/engine/output-text.ts";

// A fake vocabulary: token n decodes to VOCAB[n]. Tokens 10 and 11 are the two halves of "é"
// (0xC3 0xA9), so decoding one alone gives U+FFFD like a byte-level tokenizer would.
const VOCAB: Record<number, string> = { 1: "Hel", 2: "lo", 3: " wor", 4: "ld", 5: "\n", 6: "User", 7: ":", 9: "" };
const BYTES: Record<number, number> = { 10: 0xc3, 11: 0xa9 };

function detokenize(tokens: readonly Token[]): string {
  const bytes: number[] = [];
  let text = "";
  for (const t of tokens) {
    const byte = BYTES[t];
    if (byte !== undefined) {
      bytes.push(byte);
      continue;
    }
    text += Buffer.from(bytes).toString("utf8") + (VOCAB[t] ?? "?");
    bytes.length = 0;
  }
  return text + Buffer.from(bytes).toString("utf8");
}

const tok = (n: number): Token => n as Token;
const rules = (partial: Partial<StopRules>): StopRules => ({
  tokens: new Set(),
  tokenSequences: [],
  texts: [],
  ...partial,
});

function run(out: OutputText, tokens: number[]): { chunks: string[]; stopped: boolean } {
  const chunks: string[] = [];
  for (const t of tokens) {
    const step = out.push(tok(t));
    if (step.text !== "") chunks.push(step.text);
    if (step.stop) return { chunks, stopped: true };
  }
  const rest = out.finish();
  if (rest !== "") chunks.push(rest);
  return { chunks, stopped: false };
}

describe("OutputText", () => {
  it("streams decoded text token by token", () => {
    const { chunks, stopped } = run(new OutputText(detokenize, rules({}), []), [1, 2, 3, 4]);
    expect(chunks).toEqual(["Hel", "lo", " wor", "ld"]);
    expect(stopped).toBe(false);
  });

  it("never splits a multi-byte character across chunks", () => {
    const { chunks } = run(new OutputText(detokenize, rules({}), []), [1, 10, 11, 2]);
    expect(chunks).toEqual(["Hel", "é", "lo"]);
  });

  it("stops at a stop token without emitting it", () => {
    const { chunks, stopped } = run(new OutputText(detokenize, rules({ tokens: new Set([tok(9)]) }), []), [1, 9, 2]);
    expect(chunks).toEqual(["Hel"]);
    expect(stopped).toBe(true);
  });

  it("stops at a stop text split over tokens, holding back only the possible trigger start", () => {
    const out = new OutputText(detokenize, rules({ texts: ["\nUser:"] }), []);
    expect(out.push(tok(1))).toEqual({ text: "Hel", stop: false });
    expect(out.push(tok(5))).toEqual({ text: "", stop: false });
    expect(out.push(tok(6))).toEqual({ text: "", stop: false });
    expect(out.push(tok(7))).toEqual({ text: "", stop: true });
    expect(out.finish()).toBe("");
  });

  it("releases held text when the trigger does not complete", () => {
    const { chunks, stopped } = run(new OutputText(detokenize, rules({ texts: ["\nUser:"] }), []), [5, 6, 2]);
    expect(chunks.join("")).toBe("\nUserlo");
    expect(stopped).toBe(false);
  });

  it("flushes held text at finish", () => {
    const { chunks } = run(new OutputText(detokenize, rules({ texts: ["\nUser:"] }), []), [1, 5, 6]);
    expect(chunks.join("")).toBe("Hel\nUser");
  });

  it("stops on a token sequence", () => {
    const out = new OutputText(detokenize, rules({ tokenSequences: [[tok(6), tok(7)]] }), []);
    const { stopped } = run(out, [1, 6, 7, 2]);
    expect(stopped).toBe(true);
  });

  it("longestTriggerPrefixSuffix finds the longest proper prefix at the end", () => {
    expect(longestTriggerPrefixSuffix("abc\nUs", ["\nUser:"])).toBe(3);
    expect(longestTriggerPrefixSuffix("abc", ["\nUser:"])).toBe(0);
    expect(longestTriggerPrefixSuffix("x<", ["<|end|>", "<"])).toBe(1);
  });
});
