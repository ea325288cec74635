/**
 * A pattern is read as JavaScript's u mode reads it: a high-surrogate `\uXXXX` escape followed by a
 * low-surrogate one is one code point (`\uD83D\uDE00` is U+1F600, as `\u{1F600}`). toRe2Syntax wrote
 * them as two lone surrogates (`\x{D83D}\x{DE00}`), which no astral character in the text holds: a
 * block rule `\uD83D\uDE00` allowed `a 😀`, and a range `[\uD83D\uDE00-\uD83D\uDE4F]` was refused by
 * RE2 (its range ran from U+DE00 to U+D83D). A lone surrogate escape, or braced ones, stay lone in
 * both: the text's lone surrogate only.
 */

import { describe, expect, it } from "vitest";
import { compileRequestPolicy, type RequestPolicy, toRe2Syntax } from "../../enclave/pipeline/policy.ts";
import type { RequestRule } from "../../manifests/schema.ts";

const PII_OFF: RequestPolicy["pii"] = { mode: "off", entities: [], reason: "policy unit tests only" };

function decide(pattern: string, action: "block" | "allow", text: string, caseInsensitive = false): string {
  const rule: RequestRule = { id: "r", kind: "pattern", action, pattern, caseInsensitive };
  const policy: RequestPolicy = { rules: [rule], defaultAction: action === "block" ? "allow" : "block", pii: PII_OFF };
  return compileRequestPolicy(policy).evaluate({ kind: "complete", model: "m", text, estimatedTokens: 1, metadata: {} })
    .decision;
}

describe("a surrogate-pair escape in a pattern rule is one code point, as JavaScript's u mode reads it", () => {
  it.each([
    ["\\uD83D\\uDE00", "a 😀"],
    ["\\ud83d\\ude00", "a 😀"],
    ["[\\uD83D\\uDE00-\\uD83D\\uDE4F]", "🙂"],
    ["[\\uD83D\\uDE00]x", "😀x"],
    ["\\uD83D\\uDE00+!", "😀😀!"],
    ["é|\\uD83D\\uDE00", "😀"],
  ])("a block rule %s blocks %j (JavaScript matches it)", (pattern, text) => {
    expect(new RegExp(pattern, "u").test(text)).toBe(true);
    expect(decide(pattern, "block", text)).toBe("block");
    expect(decide(pattern, "block", text, true)).toBe("block");
  });

  it("an allow rule written with the pair matches the text as written", () => {
    expect(decide("^\\uD83D\\uDE00 ok$", "allow", "😀 ok")).toBe("allow");
    expect(decide("^[\\uD83D\\uDE00-\\uD83D\\uDE4F]+$", "allow", "🙂😀")).toBe("allow");
    expect(decide("^[\\uD83D\\uDE00-\\uD83D\\uDE4F]+$", "allow", "🙂😀a")).toBe("block");
  });

  it("writes the pair as one RE2 code point, in every form of the rule", () => {
    for (const options of [
      {},
      { foldLiterals: true },
      { foldAccents: true },
      { foldAccents: true, caseInsensitive: true },
    ]) {
      expect(toRe2Syntax("r", "\\uD83D\\uDE00", options)).toBe("\\x{1f600}");
      expect(toRe2Syntax("r", "[\\uD83D\\uDE00-\\uD83D\\uDE4F]", options)).toBe("[\\x{1f600}-\\x{1f64f}]");
    }
  });

  it("keeps a lone or braced surrogate escape lone, matching only where JavaScript does", () => {
    for (const [pattern, text] of [
      ["\\uD83D", "a 😀"],
      ["\\uDE00", "a 😀"],
      ["\\u{D83D}\\u{DE00}", "a 😀"],
      ["\\uD83D\\u{DE00}", "a 😀"],
      ["\\uD83D\\uD83D", "a 😀"],
      ["\\uD83D", "a \uD83Dx"],
      ["[\\uDE00]", "a \uDE00"],
      ["\\uD83Dx", "\uD83Dx"],
    ] as const) {
      const js = new RegExp(pattern, "u").test(text) ? "block" : "allow";
      expect(decide(pattern, "block", text), `${pattern} ${JSON.stringify(text)}`).toBe(js);
    }
    expect(toRe2Syntax("r", "\\uD83D\\u{DE00}")).toBe("\\x{D83D}\\x{DE00}");
  });

  it("joins only an escape pair JavaScript joins: not after an escaped backslash, a quantifier or a class edge", () => {
    for (const [pattern, text] of [
      ["\\\\uD83D\\uDE00", "\\uD83D\uDE00"],
      ["\\\\uD83D\\uDE00", "\\uD83D😀"],
      ["\\uD83D\\\\uDE00", "\uD83D\\uDE00"],
      ["\\uD83D\\\\uDE00", "😀"],
      ["\\uD83D+\\uDE00", "😀"],
      ["\\uD83D?\\uDE00", "a 😀"],
      ["[\\uD83D]\\uDE00", "😀"],
      ["\\uD83D[\\uDE00]", "😀"],
      ["[\\u{1F5FF}-\\uD83D\\uDE4F]", "🙂"],
      ["[\\u{1F5FF}-\\uD83D\\uDE4F]", "\uDE00"],
    ] as const) {
      const js = new RegExp(pattern, "u").test(text);
      expect(decide(pattern, "block", text), `${pattern} ${JSON.stringify(text)}`).toBe(js ? "block" : "allow");
      expect(decide(pattern, "allow", text), `${pattern} ${JSON.stringify(text)}`).toBe(js ? "allow" : "block");
    }
  });
});
