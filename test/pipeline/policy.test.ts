import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { normalizeCharacters } from "../../enclave/pipeline/normalize.ts";
import {
  compilePattern,
  compileRequestPolicy,
  evaluateRequestPolicy,
  MAX_PATTERN_PROGRAM_SIZE,
  MAX_POLICY_PATTERN_WORK,
  type PolicyRequest,
  type RequestPolicy,
  toRe2Syntax,
} from "../../enclave/pipeline/policy.ts";
import { checkCommand } from "../../manifests/cli-impl.ts";
import { DEV_MANIFEST } from "../../manifests/dev.ts";
import type { RequestRule } from "../../manifests/schema.ts";

const PII_OFF: RequestPolicy["pii"] = { mode: "off", entities: [], reason: "policy unit tests only" };

function policy(rules: RequestRule[], defaultAction: "allow" | "block" = "allow"): RequestPolicy {
  return { defaultAction, rules, pii: PII_OFF };
}

const base: PolicyRequest = {
  kind: "chat",
  model: "tiny.gguf",
  text: "Hello there, how are you?",
  estimatedTokens: 10,
  metadata: { team: "research" },
};
const req = (over: Partial<PolicyRequest>): PolicyRequest => ({ ...base, ...over });

describe("each rule kind", () => {
  it("maxPromptTokens matches strictly above the limit", () => {
    const p = compileRequestPolicy(policy([{ id: "max", kind: "maxPromptTokens", action: "block", limit: 100 }]));
    expect(p.evaluate(req({ estimatedTokens: 100 })).decision).toBe("allow");
    expect(p.evaluate(req({ estimatedTokens: 101 }))).toEqual({
      decision: "block",
      ruleId: "max",
      reason: 'rule "max" (maxPromptTokens, block): estimated prompt tokens 101 exceed the limit 100',
    });
  });

  it("pattern: case-sensitive and case-insensitive, Unicode mode", () => {
    const sensitive = compileRequestPolicy(
      policy([{ id: "secret", kind: "pattern", action: "block", pattern: "top secret", caseInsensitive: false }]),
    );
    expect(sensitive.evaluate(req({ text: "this is TOP SECRET" })).decision).toBe("allow");
    expect(sensitive.evaluate(req({ text: "this is top secret" }))).toEqual({
      decision: "block",
      ruleId: "secret",
      reason: `rule "secret" (pattern, block): the prompt matches the rule's pattern`,
    });
    const insensitive = compileRequestPolicy(
      policy([{ id: "secret", kind: "pattern", action: "block", pattern: "top secret", caseInsensitive: true }]),
    );
    expect(insensitive.evaluate(req({ text: "this is TOP SECRET" })).decision).toBe("block");
    const unicode = compileRequestPolicy(
      policy([{ id: "greek", kind: "pattern", action: "block", pattern: "\\p{Script=Greek}", caseInsensitive: false }]),
    );
    expect(unicode.evaluate(req({ text: "αβγ" })).decision).toBe("block");
    expect(unicode.evaluate(req({ text: "abc" })).decision).toBe("allow");
  });

  it("pattern evaluation keeps no state between requests (no lastIndex drift)", () => {
    const p = compileRequestPolicy(
      policy([{ id: "x", kind: "pattern", action: "block", pattern: "x", caseInsensitive: false }]),
    );
    for (let i = 0; i < 5; i += 1) expect(p.evaluate(req({ text: "x" })).decision).toBe("block");
  });

  it("allowModels blocks a model outside the list, without naming it", () => {
    const p = compileRequestPolicy(
      policy([{ id: "models", kind: "allowModels", action: "block", models: ["tiny.gguf", "b.gguf"] }]),
    );
    expect(p.evaluate(req({ model: "tiny.gguf" })).ruleId).toBeNull();
    const decision = p.evaluate(req({ model: "secret-model-name" }));
    expect(decision).toEqual({
      decision: "block",
      ruleId: "models",
      reason: 'rule "models" (allowModels, block): the requested model is not one of the 2 models the rule allows',
    });
  });

  it("metadataEquals: exact own-property equality", () => {
    const p = compileRequestPolicy(
      policy([{ id: "interns", kind: "metadataEquals", action: "block", key: "team", value: "interns" }]),
    );
    expect(p.evaluate(req({ metadata: { team: "interns" } })).decision).toBe("block");
    expect(p.evaluate(req({ metadata: { team: "Interns" } })).decision).toBe("allow");
    expect(p.evaluate(req({ metadata: {} })).decision).toBe("allow");
    const proto = compileRequestPolicy(
      policy([{ id: "proto", kind: "metadataEquals", action: "block", key: "toString", value: "" }]),
    );
    expect(proto.evaluate(req({ metadata: {} })).decision).toBe("allow");
  });

  it("requestKind matches listed kinds", () => {
    const p = compileRequestPolicy(
      policy([{ id: "no-complete", kind: "requestKind", action: "block", kinds: ["complete"] }]),
    );
    expect(p.evaluate(req({ kind: "chat" })).decision).toBe("allow");
    expect(p.evaluate(req({ kind: "complete" }))).toEqual({
      decision: "block",
      ruleId: "no-complete",
      reason: 'rule "no-complete" (requestKind, block): request kind "complete" is listed',
    });
  });
});

describe("order and default", () => {
  const rules: RequestRule[] = [
    { id: "vip", kind: "metadataEquals", action: "allow", key: "tier", value: "vip" },
    { id: "max", kind: "maxPromptTokens", action: "block", limit: 50 },
    { id: "bad-word", kind: "pattern", action: "block", pattern: "forbidden", caseInsensitive: true },
  ];

  it("the first matching rule decides: an earlier allow admits what a later block would stop", () => {
    const p = compileRequestPolicy(policy(rules, "block"));
    const d = p.evaluate(req({ metadata: { tier: "vip" }, estimatedTokens: 500, text: "forbidden" }));
    expect(d).toMatchObject({ decision: "allow", ruleId: "vip" });
  });

  it("the first block wins over later matching rules", () => {
    const p = compileRequestPolicy(policy(rules, "allow"));
    expect(p.evaluate(req({ estimatedTokens: 500, text: "Forbidden" }))).toMatchObject({
      decision: "block",
      ruleId: "max",
    });
    expect(p.evaluate(req({ estimatedTokens: 5, text: "Forbidden" }))).toMatchObject({
      decision: "block",
      ruleId: "bad-word",
    });
  });

  it("no match → defaultAction, with ruleId null", () => {
    expect(compileRequestPolicy(policy(rules, "allow")).evaluate(base)).toEqual({
      decision: "allow",
      ruleId: null,
      reason: 'no rule matched; defaultAction is "allow"',
    });
    expect(compileRequestPolicy(policy(rules, "block")).evaluate(base)).toEqual({
      decision: "block",
      ruleId: null,
      reason: 'no rule matched; defaultAction is "block"',
    });
    expect(evaluateRequestPolicy(policy([], "block"), base).decision).toBe("block");
  });

  it("the dev manifest's policy blocks a PEM private key and a long prompt, allows the rest", () => {
    const p = compileRequestPolicy(DEV_MANIFEST.requestPolicy);
    expect(p.evaluate(req({ text: "-----BEGIN RSA PRIVATE KEY-----\nMII..." })).ruleId).toBe("no-private-keys");
    expect(p.evaluate(req({ estimatedTokens: 1537 })).ruleId).toBe("max-prompt-tokens");
    expect(p.evaluate(base).decision).toBe("allow");
  });

  it("reasons never contain prompt text, model names or metadata values", () => {
    const marker = "MARKER-7f3a";
    const all: RequestRule[] = [
      { id: "a", kind: "pattern", action: "allow", pattern: "nomatch", caseInsensitive: false },
      { id: "b", kind: "metadataEquals", action: "block", key: "k", value: marker },
      { id: "c", kind: "allowModels", action: "block", models: ["m"] },
      { id: "d", kind: "pattern", action: "block", pattern: "MARKER", caseInsensitive: false },
    ];
    const p = compileRequestPolicy(policy(all));
    for (const r of [
      req({ text: marker, metadata: { k: marker }, model: "m" }),
      req({ text: "x", model: marker }),
      req({ text: marker, model: "m" }),
    ]) {
      const d = p.evaluate(r);
      expect(d.decision).toBe("block");
      expect(d.reason).not.toContain("7f3a");
    }
  });
});

describe("patterns run in linear time (RE2)", () => {
  const blockRule = (pattern: string, caseInsensitive = false) =>
    compileRequestPolicy(policy([{ id: "rule", kind: "pattern", action: "block", pattern, caseInsensitive }]));

  // Each of these took minutes or hours on a backtracking engine at this length; the old
  // shape check accepted the first three. A hang fails the test by its timeout. Each also
  // matches where it should, so a matcher that never matches would not pass.
  it.each([
    ["\\s*\\s*x", " ".repeat(65_530), "  x"],
    ["[a-z]+\\s*[a-z]+\\s*!", "a".repeat(65_530), "ab !"],
    ["^(?:aa?)+$", `${"a".repeat(65_530)}b`, "aaa"],
    ["(a+)+$", `${"a".repeat(65_530)}!`, "aaa"],
    ["(a|ab)*c", "ab".repeat(32_765), "ababc"],
  ])("evaluates %s on an adversarial 64 Ki-character prompt", (pattern, adversarial, matching) => {
    expect(blockRule(pattern).evaluate(req({ text: adversarial })).decision).toBe("allow");
    expect(blockRule(pattern).evaluate(req({ text: matching })).decision).toBe("block");
  });

  it("refuses a pattern whose RE2 program is too large (work per character grows with it)", () => {
    const compile = () => blockRule("[a-z]{1000}!");
    expect(compile).toThrow(expect.objectContaining({ code: "POLICY_PATTERN_UNSAFE", ruleId: "rule" }));
    expect(compile).toThrow(`a program of 1003 instructions, more than ${MAX_PATTERN_PROGRAM_SIZE}`);
    expect(() => blockRule("[a-z]{50}!")).not.toThrow();
  });

  it("accepts a program of exactly MAX_PATTERN_PROGRAM_SIZE instructions and refuses one more", () => {
    // A literal of n characters compiles to n + 2 instructions.
    expect(compilePattern("r", "a".repeat(MAX_PATTERN_PROGRAM_SIZE - 2), false).programSize()).toBe(
      MAX_PATTERN_PROGRAM_SIZE,
    );
    expect(() => blockRule("a".repeat(MAX_PATTERN_PROGRAM_SIZE - 2))).not.toThrow();
    const over = () => blockRule("a".repeat(MAX_PATTERN_PROGRAM_SIZE - 1));
    expect(over).toThrow(expect.objectContaining({ code: "POLICY_PATTERN_UNSAFE", ruleId: "rule" }));
    expect(over).toThrow(
      `a program of ${MAX_PATTERN_PROGRAM_SIZE + 1} instructions, more than ${MAX_PATTERN_PROGRAM_SIZE}`,
    );
  });

  it("accepts pattern rules whose summed work is exactly the budget and refuses one instruction-search more", () => {
    // An allow rule searches 2 forms, a block rule without look-alike letters 5: work = searches × (n + 2).
    const literal = (id: string, action: "allow" | "block", size: number): RequestRule => ({
      id,
      kind: "pattern",
      action,
      pattern: "a".repeat(size - 2),
      caseInsensitive: false,
    });
    const allows = (count: number) => Array.from({ length: count }, (_, i) => literal(`allow-${i}`, "allow", 64));
    const exact = [...allows(9), literal("half", "allow", 32)]; // 9 × 2 × 64 + 2 × 32 = 1216
    expect(MAX_POLICY_PATTERN_WORK).toBe(1216);
    expect(() => compileRequestPolicy(policy(exact))).not.toThrow();
    // 5 × 61 + 7 × 2 × 64 + 2 × 8 = 1217
    const over = [literal("block", "block", 61), ...allows(7), literal("last", "allow", 8)];
    const compile = () => compileRequestPolicy(policy(over));
    expect(compile).toThrow(expect.objectContaining({ code: "POLICY_PATTERN_BUDGET" }));
    expect(compile).toThrow(
      `at most ${MAX_POLICY_PATTERN_WORK} instruction-searches, found ${MAX_POLICY_PATTERN_WORK + 1} over 9 pattern rules`,
    );
    // The limit shrinks with a longer input limit: 65,537 characters leave 1215.
    expect(() => compileRequestPolicy(policy(exact), { maxPatternInputChars: 65_537 })).toThrow(
      `at most ${MAX_POLICY_PATTERN_WORK - 1} instruction-searches, found ${MAX_POLICY_PATTERN_WORK} over 10 pattern rules`,
    );
  });

  it("refuses pattern rules whose summed worst-case RE2 work per request is over the budget, naming both", async () => {
    // 47 instructions, with a folded program (Cyrillic `сор`): 5 forms + 2 × 4 folded searches.
    const rule = (id: string): RequestRule => ({
      id,
      kind: "pattern",
      action: "block",
      pattern: "(?:[a-z]+[\\s,.]){14}сор",
      caseInsensitive: true,
    });
    const one = compilePattern("r", "(?:[a-z]+[\\s,.]){14}сор", true).programSize();
    const folded = compilePattern("r", "(?:[a-z]+[\\s,.]){14}сор", true, { foldLiterals: true, longest: true });
    const perRule = 5 * one + 8 * folded.programSize();
    expect(perRule).toBeLessThanOrEqual(MAX_POLICY_PATTERN_WORK);
    expect(() => compileRequestPolicy(policy([rule("a")]))).not.toThrow();
    const rules = [rule("a"), rule("b")];
    const compile = () => compileRequestPolicy(policy(rules));
    expect(compile).toThrow(expect.objectContaining({ code: "POLICY_PATTERN_BUDGET" }));
    expect(compile).toThrow(
      `at most ${MAX_POLICY_PATTERN_WORK} instruction-searches, found ${2 * perRule} over 2 pattern rules`,
    );
    // An allow rule searches 2 forms; a non-pattern rule costs nothing. A shorter input limit leaves more.
    expect(() => compileRequestPolicy(policy(rules), { maxPatternInputChars: 16_384 })).not.toThrow();
    // The dev manifest's policy fits.
    expect(() => compileRequestPolicy(DEV_MANIFEST.requestPolicy)).not.toThrow();
    // `cloister manifest check` refuses the manifest the enclave would refuse at boot.
    const dir = await mkdtemp(join(tmpdir(), "cloister-budget-"));
    try {
      const path = join(dir, "manifest.json");
      const requestPolicy = { ...DEV_MANIFEST.requestPolicy, rules };
      await writeFile(path, JSON.stringify({ ...DEV_MANIFEST, requestPolicy }));
      await expect(checkCommand(path, { json: false })).rejects.toThrow(
        /requestPolicy\.rules.*expected pattern rules whose worst-case RE2 work per request .* is at most 1216/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("gives each JavaScript construct its JavaScript meaning, or refuses it", () => {
    // \s is Unicode whitespace in JavaScript (RE2's own is ASCII only).
    const spaced = blockRule("bomb\\s+making");
    for (const gap of ["\u2028", "\u2029", "\v", "\u1680", "\u3000", " \t"]) {
      expect(spaced.evaluate(req({ text: `bomb${gap}making` })).decision, JSON.stringify(gap)).toBe("block");
    }
    expect(blockRule("a\\Sb").evaluate(req({ text: "a\u2028b" })).decision).toBe("allow");
    expect(blockRule("a\\Sb").evaluate(req({ text: "axb" })).decision).toBe("block");
    // . does not match a line terminator (RE2's matches \r and U+2028).
    for (const eol of ["\n", "\r", "\u2028", "\u2029"]) {
      expect(blockRule("a.b").evaluate(req({ text: `a${eol}b` })).decision, JSON.stringify(eol)).toBe("allow");
    }
    expect(blockRule("[.]").evaluate(req({ text: "a.b" })).decision).toBe("block");
    expect(blockRule("[.]").evaluate(req({ text: "ab" })).decision).toBe("allow");
    expect(blockRule("\\u0062omb").evaluate(req({ text: "bomb" })).decision).toBe("block");
    expect(blockRule("\\u{1F4A3}").evaluate(req({ text: "💣" })).decision).toBe("block");
    expect(blockRule("[\\s]x").evaluate(req({ text: "\u00a0x" })).decision).toBe("block");
    expect(blockRule("\\p{sc=Greek}").evaluate(req({ text: "λ" })).decision).toBe("block");
    for (const [pattern, why] of [
      ["\\cJ", "\\c control escape"],
      ["[^]", '"[^]"'],
      ["x[]", '"[]"'],
      ["[\\S]", "\\S inside a character class"],
    ]) {
      expect(() => blockRule(pattern as string), pattern).toThrow(`${why}, which has no RE2 form`);
    }
  });

  it("refuses \\P{…} in a case-insensitive rule (RE2 folds before the complement), keeps it case-sensitive", () => {
    // JavaScript /iu: \P{Ll} matches `a` (its capital `A` is in the set); RE2's (?i)\P{Ll} is the
    // complement of the case-folded class and matches no cased letter, so the rule would let it pass.
    for (const pattern of ["\\P{Ll}", "\\P{Lu}", "x[\\P{Ll}]", "[^\\P{Lu}]", "\\P{gc=Lt}"]) {
      expect(() => blockRule(pattern, true), pattern).toThrow(
        expect.objectContaining({ code: "POLICY_PATTERN_UNSAFE", ruleId: "rule" }),
      );
      expect(() => blockRule(pattern, true), pattern).toThrow("\\P{…} in a caseInsensitive pattern");
    }
    const sensitive = blockRule("\\P{Ll}");
    expect(sensitive.evaluate(req({ text: "a" })).decision).toBe("allow");
    for (const text of ["A", "Ж", "Σ", "1"]) expect(sensitive.evaluate(req({ text })).decision, text).toBe("block");
    // A negated class of \p{…} means the same in both (no cased letter): still accepted.
    const negated = blockRule("[^\\p{Ll}]", true);
    for (const text of ["a", "A", "Σ"]) expect(negated.evaluate(req({ text })).decision, text).toBe("allow");
    expect(negated.evaluate(req({ text: "1" })).decision).toBe("block");
  });

  it.each([
    ["(a)\\1", "invalid escape sequence"],
    ["(?<w>a)\\k<w>", "invalid escape sequence"],
    ["(?=x)y+", "(?="],
    ["(?<!x)y", "(?<!"],
  ])("refuses %s, which needs backtracking, naming the rule and RE2's reason", (pattern, why) => {
    const compile = () => blockRule(pattern);
    expect(compile).toThrow(expect.objectContaining({ code: "POLICY_PATTERN_UNSAFE", ruleId: "rule" }));
    expect(compile).toThrow(why);
  });

  it.each([
    "-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "(?:foo|bar)",
    "(ab)?c+",
    "\\p{L}+\\d{2,}",
    "[(+*)]+",
    "a{2}(?:bc){3}",
    "\\(a+\\)+",
  ])("accepts %s", (pattern) => {
    expect(() => compilePattern("ok", pattern, false)).not.toThrow();
  });

  it("matches the normalized prompt too: a block rule on either form, an allow rule only on both", () => {
    const rules: RequestRule[] = [
      { id: "ok-greeting", kind: "pattern", action: "allow", pattern: "^hello 42$", caseInsensitive: false },
      { id: "no-bomb", kind: "pattern", action: "block", pattern: "\\bbomb\\b", caseInsensitive: true },
    ];
    const p = compileRequestPolicy(policy(rules));
    for (const text of ["a ｂｏｍｂ", "a bo\u200bmb", "a b\u00adomb", "a BOMB", "a\u00a0bomb"]) {
      expect(p.evaluate(req({ text })).ruleId, JSON.stringify(text)).toBe("no-bomb");
    }
    expect(p.evaluate(req({ text: "a bombard" })).ruleId).toBeNull();
    expect(p.evaluate(req({ text: "hello 42" })).ruleId).toBe("ok-greeting");
    // Allowed only when both forms match: full-width digits are not the greeting as written.
    expect(p.evaluate(req({ text: "hello ４２" })).ruleId).toBeNull();
  });

  it("a block rule reads look-alike letters of other scripts as the ASCII letters they look like", () => {
    const p = compileRequestPolicy(
      policy([{ id: "no-password", kind: "pattern", action: "block", pattern: "password", caseInsensitive: true }]),
    );
    // Cyrillic а, о; Greek ρ, α; Cyrillic Р, А, Ѕ, О with Armenian Տ; Cherokee Ꮤ; dotless ı is not o.
    for (const text of ["my pаsswоrd is", "my ραssword is", "PАЅՏWОRD", "PASSᏔORD", "pass​wоrd"]) {
      expect(p.evaluate(req({ text })).ruleId, JSON.stringify(text)).toBe("no-password");
    }
    // Not folded: several characters for one (rn for m), letters that do not decompose, ASCII look-alikes.
    const m = compileRequestPolicy(
      policy([{ id: "no-mom", kind: "pattern", action: "block", pattern: "mom", caseInsensitive: false }]),
    );
    for (const text of ["rnorn", "møm", "m0m"]) {
      expect(m.evaluate(req({ text })).ruleId, JSON.stringify(text)).toBeNull();
    }
    // An accented letter reads as the bare letter where it decomposes (tidy66: accent-folding.test.ts).
    expect(m.evaluate(req({ text: "möm" })).ruleId).toBe("no-mom");
  });

  it("a block rule reads Latin and look-alike letters without the combining marks on them (U+0336 strikes)", () => {
    const p = compileRequestPolicy(
      policy([{ id: "no-password", kind: "pattern", action: "block", pattern: "password", caseInsensitive: true }]),
    );
    for (const text of [
      "my pa\u0336ssword is",
      "p\u0336a\u0336s\u0336s\u0336w\u0336o\u0336r\u0336d\u0336",
      "my pаss\u20e5wоrd", // Cyrillic а, о and a mark on a Latin s
      "my pаsswо\u0338rd", // a mark on a Cyrillic look-alike
    ]) {
      expect(p.evaluate(req({ text })).ruleId, JSON.stringify(text)).toBe("no-password");
    }
    // Marks on other letters are part of the word (a Hindi vowel sign): बुम is not बम.
    const hindi = compileRequestPolicy(
      policy([{ id: "no-bam", kind: "pattern", action: "block", pattern: "बम", caseInsensitive: false }]),
    );
    expect(hindi.evaluate(req({ text: "बुम" })).ruleId).toBeNull();
    expect(hindi.evaluate(req({ text: "यह बम है" })).ruleId).toBe("no-bam");
    // An allow rule still needs the text as written.
    const allow = compileRequestPolicy(
      policy([{ id: "ok", kind: "pattern", action: "allow", pattern: "^hello$", caseInsensitive: false }], "block"),
    );
    expect(allow.evaluate(req({ text: "he\u0336llo" })).ruleId).toBeNull();
  });

  it("Russian and Greek prompts pass the dev manifest's rules, and rules written in their letters still work", () => {
    const russian = "Пожалуйста, кратко изложите приложенный квартальный отчёт и назовите три главных риска.";
    const greek = "Παρακαλώ συνοψίστε την τριμηνιαία αναφορά και αναφέρετε τρεις κινδύνους για το επόμενο τρίμηνο.";
    const dev = compileRequestPolicy(DEV_MANIFEST.requestPolicy);
    for (const text of [russian, greek]) {
      expect(dev.evaluate(req({ text })), text).toEqual({
        decision: "allow",
        ruleId: null,
        reason: 'no rule matched; defaultAction is "allow"',
      });
    }
    // Folding is for block rules: an allow rule in Cyrillic still allows its text, and a block rule
    // in Cyrillic still sees through a zero-width space (on the normalized, unfolded form).
    const rules: RequestRule[] = [
      { id: "ok-report", kind: "pattern", action: "allow", pattern: "^Пожалуйста, кратко", caseInsensitive: false },
      { id: "no-bomb", kind: "pattern", action: "block", pattern: "бомба", caseInsensitive: true },
      { id: "no-password", kind: "pattern", action: "block", pattern: "password", caseInsensitive: true },
    ];
    const p = compileRequestPolicy(policy(rules));
    expect(p.evaluate(req({ text: russian })).ruleId).toBe("ok-report");
    expect(p.evaluate(req({ text: `Что такое бо\u200bмба?` })).ruleId).toBe("no-bomb");
    expect(p.evaluate(req({ text: greek })).ruleId).toBeNull();
    expect(p.evaluate(req({ text: "Какой у вас пароль?" })).ruleId).toBeNull();
  });

  it("a block rule written in Cyrillic or Greek meets a prompt that writes its look-alike letters in Latin", () => {
    const p = compileRequestPolicy(
      policy([
        { id: "no-parol", kind: "pattern", action: "block", pattern: "пароль", caseInsensitive: true },
        { id: "no-greek", kind: "pattern", action: "block", pattern: "κωδικ[οό]ς", caseInsensitive: false },
      ]),
    );
    // Latin a, o, p for Cyrillic а, о, р; upper case; the Cyrillic original; Greek with a Latin o.
    for (const [text, rule] of [
      ["Какой у вас пaрoль?", "no-parol"],
      ["пapoль", "no-parol"],
      ["ПAPOЛЬ", "no-parol"],
      ["Какой у вас пароль?", "no-parol"],
      ["ο κωδικoς", null], // inside a class ([οό]) nothing is folded: the Latin o does not meet it
      ["ο κωδικός", "no-greek"],
    ] as const) {
      expect(p.evaluate(req({ text })).ruleId, text).toBe(rule);
    }
    // The Russian word that is not the rule's is not caught by the folding.
    expect(p.evaluate(req({ text: "Пароход отходит в пять" })).ruleId).toBeNull();
  });

  it("a folded block rule compiles wherever the rule does, and meets only text with a letter of another script", () => {
    const block = (pattern: string, caseInsensitive: boolean) =>
      compileRequestPolicy(policy([{ id: "r", kind: "pattern", action: "block", pattern, caseInsensitive }]));
    // A named group keeps its name (it was rewritten to "(?<[wW]>" and the manifest no longer booted).
    expect(block("(?<w>пароль)", true).evaluate(req({ text: "мой пaрoль" })).ruleId).toBe("r");
    // A rule of look-alikes alone: its English reading is not met by plain English text...
    for (const [pattern, ci] of [
      ["сор", false],
      ["тор", true],
      ["вор", true],
      ["σ", true],
    ] as const) {
      for (const text of ["a cop car", "go to the top of the page", "bop", "no"]) {
        expect(block(pattern, ci).evaluate(req({ text })).ruleId, `${pattern} / ${text}`).toBeNull();
      }
    }
    // ...but it is by a mixed spelling, and by the rule's own letters, also where an all-ASCII match
    // comes first and overlaps it, or a shorter alternative would win.
    expect(block("сор", false).evaluate(req({ text: "сop" })).ruleId).toBe("r");
    expect(block("сос", false).evaluate(req({ text: "cocос" })).ruleId).toBe("r");
    expect(block("сос|сосна", false).evaluate(req({ text: "cocна" })).ruleId).toBe("r");
    // Many all-ASCII matches before anything else: fail-closed once the prompt has another script.
    expect(block("сос", false).evaluate(req({ text: `${"coc ".repeat(10)}и` })).ruleId).toBe("r");
    expect(block("сос", false).evaluate(req({ text: "coc ".repeat(10) })).ruleId).toBeNull();
    // ...and only a letter counts, not any other character outside ASCII (a curly apostrophe).
    expect(block("сос", false).evaluate(req({ text: `${"coc ".repeat(10)}it\u2019s` })).ruleId).toBeNull();
    expect(block("сор", false).evaluate(req({ text: "сор" })).ruleId).toBe("r");
    // A folded digit does not extend an escape before it: \0 then З is NUL and "3", not \03.
    expect(block("\\0З", false).evaluate(req({ text: "\u0003" })).ruleId).toBeNull();
    expect(block("\\0З", false).evaluate(req({ text: "\u0000З" })).ruleId).toBe("r");
    // Letters that are no look-alike in any case stay as written: such a rule has no folded form.
    for (const pattern of ["über", "длиж"]) {
      const folding = { foldLiterals: true, caseInsensitive: true };
      expect(toRe2Syntax("r", pattern, folding)).toBe(toRe2Syntax("r", pattern));
    }
    // A look-alike letter written as an escape is folded as if written out.
    expect(block("п\\u0430роль", true).evaluate(req({ text: "пaрoль" })).ruleId).toBe("r");
  });

  it("counts the normalized prompt's length against the pattern input limit too (NFKC can lengthen it)", () => {
    const p = compileRequestPolicy(
      policy([{ id: "no-x", kind: "pattern", action: "block", pattern: "x", caseInsensitive: false }]),
      { maxPatternInputChars: 16 },
    );
    expect(p.evaluate(req({ text: "\ufdfa" })).decision).toBe("block"); // one character, 18 after NFKC
    expect(p.evaluate(req({ text: "\ufdfa" })).reason).toContain("the prompt has 18 characters, more than the 16");
    expect(p.evaluate(req({ text: "plain" })).decision).toBe("allow");
  });

  it("a prompt longer than the pattern input limit is blocked by a block rule and skipped by an allow rule", () => {
    const rules: RequestRule[] = [
      { id: "allow-hello", kind: "pattern", action: "allow", pattern: "hello", caseInsensitive: false },
      { id: "no-x", kind: "pattern", action: "block", pattern: "x", caseInsensitive: false },
    ];
    const p = compileRequestPolicy(policy(rules), { maxPatternInputChars: 16 });
    expect(p.evaluate(req({ text: "hello" })).ruleId).toBe("allow-hello");
    expect(p.evaluate(req({ text: "hello".repeat(4) }))).toEqual({
      decision: "block",
      ruleId: "no-x",
      reason:
        'rule "no-x" (pattern, block): the prompt has 20 characters, more than the 16 a pattern rule evaluates (treated as a match: fail-closed)',
    });
  });

  it("evaluates a prompt of exactly the pattern input limit and fails closed one character past it", () => {
    const rules: RequestRule[] = [
      { id: "allow-hello", kind: "pattern", action: "allow", pattern: "^hello", caseInsensitive: false },
      { id: "no-x", kind: "pattern", action: "block", pattern: "x", caseInsensitive: false },
    ];
    const p = compileRequestPolicy(policy(rules), { maxPatternInputChars: 16 });
    const atLimit = "hello".padEnd(16, ".");
    expect(p.evaluate(req({ text: atLimit })).ruleId).toBe("allow-hello");
    expect(p.evaluate(req({ text: "x".padEnd(16, ".") })).reason).toBe(
      'rule "no-x" (pattern, block): the prompt matches the rule\'s pattern',
    );
    expect(p.evaluate(req({ text: ".".repeat(16) })).decision).toBe("allow");
    // One past: the allow rule does not match, the block rule does (no "x" in it).
    expect(p.evaluate(req({ text: `${atLimit}.` }))).toEqual({
      decision: "block",
      ruleId: "no-x",
      reason:
        'rule "no-x" (pattern, block): the prompt has 17 characters, more than the 16 a pattern rule evaluates (treated as a match: fail-closed)',
    });
    // The normalized length counts the same way: 15 + "ﬁ" (2 after NFKC) is 17.
    expect(p.evaluate(req({ text: `${"hello".padEnd(15, ".")}\ufb01` })).reason).toContain(
      "the prompt has 17 characters, more than the 16",
    );
    expect(p.evaluate(req({ text: `${"hello".padEnd(14, ".")}\ufb01` })).ruleId).toBe("allow-hello");
  });

  it("an allow rule admits only when the prompt as sent and its normalized form both match", () => {
    // "Not a digit anywhere" then "block digits": full-width digits are no ASCII digit as sent, but
    // are 0-9 once normalized, so the allow rule must not admit them past the block rule.
    const rules: RequestRule[] = [
      { id: "allow-no-digits", kind: "pattern", action: "allow", pattern: "^[^0-9]*$", caseInsensitive: false },
      { id: "no-digits", kind: "pattern", action: "block", pattern: "[0-9]", caseInsensitive: false },
    ];
    const p = compileRequestPolicy(policy(rules));
    expect(p.evaluate(req({ text: "order some units" })).ruleId).toBe("allow-no-digits");
    expect(p.evaluate(req({ text: "order 42 units" })).ruleId).toBe("no-digits");
    for (const text of ["order ４２ units", "order \u0664\u0662 units"]) {
      expect(normalizeCharacters(text), JSON.stringify(text)).toBe("order 42 units");
      expect(p.evaluate(req({ text })), JSON.stringify(text)).toMatchObject({ decision: "block", ruleId: "no-digits" });
    }
    // Raw and normalized differ but both match: admitted (zero-width space and full-width letters).
    for (const text of ["order so\u200bme units", "order ｓｏｍｅ units"]) {
      expect(normalizeCharacters(text)).not.toBe(text);
      expect(p.evaluate(req({ text })).ruleId, JSON.stringify(text)).toBe("allow-no-digits");
    }
  });

  it("refuses malformed requests (caller bugs) with POLICY_REQUEST_INVALID", () => {
    const p = compileRequestPolicy(policy([]));
    for (const bad of [
      req({ estimatedTokens: -1 }),
      req({ estimatedTokens: 1.5 }),
      req({ kind: "embed" as "chat" }),
      req({ metadata: { a: 1 as unknown as string } }),
    ]) {
      expect(() => p.evaluate(bad)).toThrow(expect.objectContaining({ code: "POLICY_REQUEST_INVALID" }));
    }
  });
});
