/**
 * Block rules read one accent-folded view of the prompt (tidy66): the normalized text decomposed,
 * the combining marks on Latin and look-alike letters dropped, composed again; and each block rule
 * is searched there with its own literal letters folded the same way (`contraseña` as
 * `contrasena`). Before, a rule read one of two unmarked views chosen by whether it wrote an
 * accented letter, and five kinds of prompt passed (the direct cases below). The differential test
 * runs the code before the change (before-tidy66/, a frozen copy) and the current code over a
 * generated corpus: every prompt the old code blocks the new blocks too, and the prompts only the
 * new code blocks are of the kinds listed (over-matching, fail-closed). A second corpus (tidy77)
 * does the same for rules with a word boundary, `\W` or a negated class next to accented letters,
 * which the accent-folded view alone reads wrong (`bo\u0301mbé` as `bombe`).
 */

import { describe, expect, it } from "vitest";
import {
  normalizeCharacters,
  precomposedForDetection,
  unmarkedForDetection,
} from "../../enclave/pipeline/normalize.ts";
import {
  type CompiledRequestPolicy,
  compilePattern,
  compileRequestPolicy,
  MAX_PATTERN_PROGRAM_SIZE,
  MAX_POLICY_PATTERN_WORK,
  type RequestPolicy,
  toRe2Syntax,
} from "../../enclave/pipeline/policy.ts";
import type { RequestRule } from "../../manifests/schema.ts";
import { compileRequestPolicy as compileBefore } from "./before-tidy66/policy.ts";

const PII_OFF: RequestPolicy["pii"] = { mode: "off", entities: [], reason: "policy unit tests only" };

type Decide = (text: string) => "allow" | "block";

function deciders(pattern: string, caseInsensitive = false): { old: Decide; current: Decide } {
  const rule: RequestRule = { id: "r", kind: "pattern", action: "block", pattern, caseInsensitive };
  const policy: RequestPolicy = { rules: [rule], defaultAction: "allow", pii: PII_OFF };
  const decide =
    (compiled: CompiledRequestPolicy): Decide =>
    (text) =>
      compiled.evaluate({ kind: "complete", model: "m", text, estimatedTokens: 1, metadata: {} }).decision;
  return { old: decide(compileBefore(policy)), current: decide(compileRequestPolicy(policy)) };
}

describe("the prompts that passed the old choice of unmarked view now meet the rule", () => {
  it.each([
    ["password", "my passwörd is", "U+00F6 written precomposed"],
    ["contraseña|password", "my pa\u0301ssword is", "a composing mark on the ASCII part of a rule that writes ñ"],
    ["contraseña", "la con\u0301traseña es", "a composing mark on another letter of a rule that writes ñ"],
    ["contraseña", "la contrasen\u0305\u0303a es", "a kept mark before the composing one on the ñ"],
    ["contraseña", "la contrasena es", "the word written without its accent"],
  ])("%s blocks %j (%s): allowed before, blocked now", (pattern, text) => {
    const { old, current } = deciders(pattern);
    expect(old(text)).toBe("allow");
    expect(current(text)).toBe("block");
  });

  it("reads a letter as the bare letter however it is written, marks on other scripts' letters kept", () => {
    for (const text of [
      "passwörd",
      "passwo\u0308rd",
      "passw\u00f6\u0336rd",
      "ｐａｓｓｗｏ\u0308ｒｄ",
      "passwo\u200b\u0308rd",
    ]) {
      expect(unmarkedForDetection(text.normalize("NFKC").replace("\u200b", "")), JSON.stringify(text)).toBe("password");
    }
    for (const text of ["contraseña", "contrasen\u0303a", "contrasen\u0336\u0303a", "con\u0301traseña"]) {
      expect(unmarkedForDetection(text.normalize("NFKC")), JSON.stringify(text)).toBe("contrasena");
    }
    // Japanese sound marks and Hindi vowel signs stay (and `パ` is composed again); letters without
    // a decomposition keep their form.
    for (const text of ["パスワード", "ガ", "पासवर्ड", "ß ø ł æ đ"]) expect(unmarkedForDetection(text)).toBe(text);
    expect(unmarkedForDetection("сёстра κωδικός")).toBe("сестра κωδικος");
  });

  it("folds a rule's literal letters the same way, class members one by one, ranges gaining bare letters", () => {
    const bare = (pattern: string) => toRe2Syntax("r", pattern, { foldAccents: true });
    expect(bare("contraseña")).toBe("contrasena");
    expect(bare("contrase\\u00f1a|contrase\\u{f1}a|contrase\\xf1a")).toBe("contrasena|contrasena|contrasena");
    expect(bare("contrasen\\u0303a")).toBe("contrasena");
    expect(bare("p[aá]ss[à-ÿ][\\u00e0-\\u00ff]")).toBe("p[aa]ss[à-ÿaceinouy][\\x{00e0}-\\x{00ff}aceinouy]");
    // A negated class stays as written: `[^o]` would no longer match the `o` that `[^ó]` does.
    expect(bare("a[^ó]b")).toBe("a[^ó]b");
    expect(deciders("a[^ó]b").current("a\u0301ob")).toBe("block"); // read `aob`
    expect(bare("пароль|сёстра")).toBe("пароль|сестра");
    expect(bare("पासवर्ड|パスワード")).toBe("पासवर्ड|パスワード");
    // A dropped mark under a quantifier leaves an empty group, so the quantifier binds nothing else.
    expect(bare("e\\u0301{0}x")).toBe("e(?:){0}x");
    // Without the option nothing changes.
    expect(toRe2Syntax("r", "contrase\\xf1a")).toBe("contrase\\xf1a");
  });

  it("folds a range by adding the bare letters of the accented ones it holds (read43c)", () => {
    // Before read43c a range stayed as written, so a kept mark (U+0336) on an accented letter it
    // names passed: the old composed view read `àx`, the accent-folded one `ax`.
    const { old, current } = deciders("[à-ÿ]x");
    expect(old("a\u0300\u0336x")).toBe("block");
    expect(current("a\u0300\u0336x")).toBe("block");
    expect(current("ö\u0336x")).toBe("block");
    expect(current("àx")).toBe("block");
    expect(current("bx")).toBe("allow"); // `b` has no accented form in the range
    const bare = (pattern: string, caseInsensitive = false) =>
      toRe2Syntax("r", pattern, { foldAccents: true, caseInsensitive });
    // Range ends written as escapes; a range of ASCII letters or of letters without an accent gains nothing.
    expect(bare("[\\u{e0}-\\u{e5}]")).toBe("[\\x{e0}-\\x{e5}a]");
    expect(bare("[\\xe8-\\xeb]")).toBe("[\\x{e8}-\\x{eb}e]");
    expect(bare("[a-z]|[ß-å]|[\\t-\\xe0]|[\\xe0-\\xe1]")).toBe("[a-z]|[ß-åa]|[\\t-\\x{e0}]|[\\x{e0}-\\x{e1}a]");
    // Greek with tonos and Cyrillic `ё`, `ѓ` gain the bare letters that are look-alikes (`ά` → `α`,
    // `ё` → `е`, `ѓ` → `г`); `έ`, `ή` and `й`, whose `ε`, `η`, `и` are none, read as written in the view
    // and add nothing, nor does `ї`, whose `і` the range holds.
    expect(bare("[ά-ί]")).toBe("[ά-ίαι]");
    expect(bare("[ѐ-ї]")).toBe("[ѐ-їег]");
    expect(bare("[й-й]")).toBe("[й-й]");
    // A negated class stays as written.
    expect(bare("[^à-ÿ]")).toBe("[^à-ÿ]");
    // Case-insensitively the other cases' bare letters too (RE2 folds the class itself as well).
    expect(bare("[À-Å]", true)).toBe("[À-ÅAa]");
    for (const [pattern, caseInsensitive, text] of [
      ["[À-Ö]x", true, "a\u0300\u0336x"],
      ["[\\u00e0-\\u00ff]x", true, "A\u0300\u0336x"],
      ["[\\u{e0}-\\u{ff}]x", false, "y\u0308\u0336x"],
      ["caf[è-ë]", false, "cafe\u0301\u0305"],
    ] as const) {
      const pair = deciders(pattern, caseInsensitive);
      expect(pair.old(text), `${pattern} ${JSON.stringify(text)}`).toBe("block");
      expect(pair.current(text), `${pattern} ${JSON.stringify(text)}`).toBe("block");
    }
  });

  it("reads each case of a rule's letter as the view does, case-insensitively (read43e)", () => {
    // The view reads a letter's cases apart where only one of them is a look-alike: `ѓ` reads `г`,
    // `Ѓ` stays; `Ǯ` reads `Ʒ`, `ǯ` stays; `Ή` reads `Η`, `ή` stays; titlecase `ᾘ` reads `Η`,
    // `ᾐ` stays. The angstrom sign U+212B, which NFKC writes `Å`, holds `å` case-insensitively. A
    // rule that writes `é` read the prompt composed before, so these met it.
    for (const [pattern, text] of [
      ["é|Ѓx", "ѓ\u0336x"],
      ["é|ǯx", "Ǯ\u0336x"],
      ["é|[Ѓ]x", "ѓ\u0336x"],
      ["é|[έ-ή]x", "Ή\u0336x"],
      ["é|ᾐx", "ᾘ\u0336x"],
      ["é|ѓax", "Ѓa\u0336x"],
      ["[\\u212A-\\u212B]x", "å\u0336x"],
    ] as const) {
      const pair = deciders(pattern, true);
      expect(pair.old(text), `${pattern} ${JSON.stringify(text)}`).toBe("block");
      expect(pair.current(text), `${pattern} ${JSON.stringify(text)}`).toBe("block");
    }
    const bare = (pattern: string) => toRe2Syntax("r", pattern, { foldAccents: true, caseInsensitive: true });
    expect(bare("Ѓ|ѓ|ǯ|é")).toBe("[Ѓг]|[гѓ]|[ǯƷ]|e");
    // Case-sensitively a letter reads one way: nothing is added.
    expect(toRe2Syntax("r", "Ѓ|ѓ", { foldAccents: true })).toBe("Ѓ|г");
  });

  it("keeps a literal astral range end whole where the range gains letters (read43e)", () => {
    // The letters a range gains went between the two UTF-16 units of `😀`, so the range ended at
    // its lone high surrogate and `🔀` (U+1F500) fell out of it.
    const { old, current } = deciders("[ḁ-😀]ab");
    expect(old("🔀a\u0336b")).toBe("block");
    expect(current("🔀a\u0336b")).toBe("block");
    const bare = toRe2Syntax("r", "[ḁ-😀]", { foldAccents: true });
    expect(bare.startsWith("[ḁ-😀")).toBe(true);
    expect(toRe2Syntax("r", "[😀-😂]", { foldAccents: true })).toBe("[😀-😂]");
  });

  it("reads every accented letter of the table in the Basic Multilingual Plane: none past U+FFFF folds", () => {
    // policy.ts builds the letters a range gains from U+0080..U+FFFF only; this checks the rest.
    const past: string[] = [];
    for (let codePoint = 0x10000; codePoint <= 0x10ffff; codePoint++) {
      const char = String.fromCodePoint(codePoint);
      if (char.normalize("NFD") === char || char.normalize("NFKC") !== char) continue;
      if (unmarkedForDetection(char) !== char) past.push(codePoint.toString(16));
    }
    expect(past).toEqual([]);
  });

  it("reads the precomposed view too where a rule tells an accented letter from its bare one (tidy77)", () => {
    // The accent-folded view reads `bo\u0301mbé` as `bombe`, where `\b` does not hold after `b`; the
    // view before tidy66 kept precomposed letters (`bombé`) and met it. A rule with a word boundary,
    // `\W` or a negated class reads that view as well (as read and folded).
    for (const [pattern, caseInsensitive, text] of [
      ["\\bbomb\\b", false, "bo\u0301mbé"],
      ["\\bbomb\\b", true, "Bo\u0301mbé"],
      ["\\bbomb\\b", false, "àbo\u0336mb"],
      ["bomb\\W", false, "bo\u0301mbé"],
      ["\\Wbomb", false, "ébo\u0301mb"],
      ["bomb[^a-z]", false, "bo\u0301mbà"],
      ["x[^\\p{Mn}a-z]", false, "x\u0301é"],
      // A look-alike letter with a mark: the precomposed view folded (`bоmbé` with Cyrillic `о` reads `bombé`).
      ["\\bbomb\\b", false, "b\u043e\u0301mbé"],
      // A rule that writes an accented letter reads the view where only the marks NFKC keeps are
      // dropped, on its accented letters too (`señ\u0336oré` reads `señoré`).
      ["señor\\b", false, "señ\u0336oré"],
      ["\\bcontraseña\\b", false, "con\u0336traseñaé"],
      ["contraseña\\W", false, "con\u0336traseñaé"],
      // Its look-alikes folded there too: `\bсёстра\b` reads `\bcёcтpa\b`, which `сё\u0336страé` meets.
      ["\\bсёстра\\b", false, "сё\u0336страé"],
      // The one property that tells an accented letter from its bare one: Greek titlecase `ᾈ` (Lt)
      // reads `Α` (Lu) in the accent-folded view; the view before tidy66 kept it (read44a).
      ["\\p{Lt}ay", false, "ᾈa\u0336y"],
      ["\\p{gc=Lt}ay", false, "ᾈa\u0301y"],
      ["\\P{General_Category=Lu}ay", false, "ᾈa\u0336y"],
    ] as const) {
      const { old, current } = deciders(pattern, caseInsensitive);
      expect(old(text), `${pattern} ${JSON.stringify(text)}`).toBe("block");
      expect(current(text), `${pattern} ${JSON.stringify(text)}`).toBe("block");
    }
  });

  // Each passed tidy77-79's precomposed view: `[^nñ]` writes `ñ` but read the view of a rule without
  // accented letters (the old test is writesComposedLetter, not a differing accent-folded form);
  // `[Ɓ-ɏ]` writes none but gains bare letters, so the view the old code read was skipped as the
  // unmarked one; and `сор`'s folded program met `bombé` folded, but not the folded text as written.
  it.each([
    ["a[^nñ]b", "ań\u0336b"],
    ["\\b[Ɓ-ɏ]", "c\u0301Ǎ"],
    ["\\Bbomb\\b|сор", "\u043ebo\u0301mbé"],
  ])("runs the unmarked stage before tidy66 as it was: %s blocks %j as before (read44d)", (pattern, text) => {
    const { old, current } = deciders(pattern);
    expect(old(text)).toBe("block");
    expect(current(text)).toBe("block");
  });

  it("finds one property that tells an accented letter from its bare one: titlecase Lt read as Lu (read44a)", () => {
    // readsAccentApart counts `\\p{Lt}` and `\\P{Lu}` with the boundaries and negated classes: every
    // other general category and script holds a letter and its accent-folded reading alike.
    const categories = "Lu Ll Lt Lm Lo Mn Mc Me Nd Nl No Pc Pd Ps Pe Pi Pf Po Sm Sc Sk So Zs Zl Zp Cc Cf Co Cn";
    const scripts = "Latin Greek Cyrillic Armenian Cherokee Coptic Georgian Lisu Common Inherited";
    const scriptProperties = scripts.split(" ").map((name) => [name, new RegExp(`^\\p{sc=${name}}$`, "u")] as const);
    const properties = [
      ...categories.split(" ").map((name) => [name, new RegExp(`^\\p{gc=${name}}$`, "u")] as const),
      ...scriptProperties,
    ];
    const differing = new Set<string>();
    let pairs = 0;
    for (let codePoint = 0x80; codePoint <= 0x2ffff; codePoint++) {
      const letter = normalizeCharacters(String.fromCodePoint(codePoint));
      const bare = unmarkedForDetection(letter);
      if (bare === letter || [...letter].length !== 1 || [...bare].length !== 1) continue;
      pairs += 1;
      // Each letter is of a script the list names, so that the scripts are compared at all.
      expect(
        scriptProperties.some(([, p]) => p.test(letter)),
        letter,
      ).toBe(true);
      for (const [name, p] of properties) {
        if (p.test(letter) !== p.test(bare)) differing.add(`${name}: ${p.test(letter) ? "letter" : "bare"}`);
      }
    }
    expect(pairs).toBeGreaterThan(600);
    expect([...differing].sort()).toEqual(["Lt: letter", "Lu: bare"]);
  });

  it("pins the limit: `bömbé` passes `\\bbomb\\b`, which cannot tell it from the plain word `bombe`", () => {
    // Every view reads `bömbé` either with `ö` (no `bomb` in it) or as `bombe` (no boundary after
    // `bomb`), the same text as the French word `bombe`, which a rule `\bbomb\b` does not meet.
    const { old, current } = deciders("\\bbomb\\b");
    expect(old("bömbé")).toBe("allow");
    expect(current("bömbé")).toBe("allow");
    expect(current("bömb")).toBe("block");
    // Accents elsewhere in a French prompt do not make `bombastic` or `bombe` meet the rule.
    for (const text of [
      "Ça coûte très cher, c'est bombastic",
      "Ça coûte tre\u0300s cher, c'est bombastic",
      "une bombe glacée, tre\u0300s bonne",
    ]) {
      expect(current(text), JSON.stringify(text)).toBe("allow");
    }
  });

  it("allows read44a's Zürich prompt: the precomposed view's folded form looks past plain matches as before", () => {
    // The folded form is searched as the code before tidy66 searched it: plain `cop` matches of
    // `\\bсор\\b` are looked past (MAX_ASCII_MATCHES of them) as on every other folded form, so two
    // plain `cop`s in a prompt with an accented letter do not count; tidy79 counted them past 2.
    const { old, current } = deciders("\\bсор\\b");
    const prompt = "the cop came to Jose\u0301 in Zürich";
    for (const text of [prompt, `${prompt}, the cop`]) {
      expect(old(text), JSON.stringify(text)).toBe("allow");
      expect(current(text), JSON.stringify(text)).toBe("allow");
    }
    // Still fail-closed at 4 plain matches, and a match with a Cyrillic letter still counts.
    expect(current(`${prompt}, the cop, a cop, a cop`)).toBe("block");
    expect(current("the \u0441op came to Jose\u0301 in Zürich")).toBe("block");
    expect(old("the \u0441op came to Jose\u0301 in Zürich")).toBe("block");
  });

  it("skips the precomposed view where it is the unmarked one and the rule's programs fold no accent", () => {
    // `bo\u0336mb` with no accented letter: both views read `bomb`, searched by the same programs
    // (the skip saves the repeated searches; it changes no decision).
    const { old, current } = deciders("\\bсор\\b");
    for (const text of ["a cop, a cop, bo\u0336mb \u043f", "a cop, a cop, bo\u0336mb, a cop, \u043f"]) {
      expect(old(text), JSON.stringify(text)).toBe("allow");
      expect(current(text), JSON.stringify(text)).toBe("allow");
    }
    expect(current("a cop, a cop, a cop, a cop, bo\u0336mb \u043f")).toBe("block");
    expect(current("a \u0441op, bo\u0336mb")).toBe("block");
  });

  it("counts the precomposed view's searches in the budget: a 64-instruction rule with a folded program and a boundary costs 1216", () => {
    const pattern = "\\bсор[a-z]{58}";
    const rule = (id: string): RequestRule => ({
      id,
      kind: "pattern",
      action: "block",
      pattern,
      caseInsensitive: false,
    });
    const plain = compilePattern("r", pattern, false).programSize();
    const folded = compilePattern("r", pattern, false, { foldLiterals: true, longest: true }).programSize();
    expect(plain).toBe(MAX_PATTERN_PROGRAM_SIZE);
    expect(folded).toBe(MAX_PATTERN_PROGRAM_SIZE);
    // 5 forms + 4 by the folded program on each of the 2 folded forms (no accented letter: the
    // unmarked forms search the program as written) + the precomposed view and its folded form as
    // written, and 4 searches of that by the folded program: 7 × 64 + 3 × 4 × 64, exactly the budget.
    const perRule = 7 * plain + 12 * folded;
    expect(perRule).toBe(1216);
    expect(MAX_POLICY_PATTERN_WORK).toBe(perRule);
    const policy = (rules: RequestRule[]): RequestPolicy => ({ rules, defaultAction: "allow", pii: PII_OFF });
    expect(() => compileRequestPolicy(policy([rule("a")]))).not.toThrow();
    expect(() => compileRequestPolicy(policy([rule("a"), rule("b")]))).toThrow(
      `at most ${MAX_POLICY_PATTERN_WORK} instruction-searches, found ${2 * perRule} over 2 pattern rules`,
    );
    // One more instruction anywhere does not fit: the smallest other pattern rule, an allow rule of
    // the fewest instructions (2 searches), or the same rule one character longer (refused alone).
    const smallest = compilePattern("s", "a", false).programSize();
    const allow: RequestRule = { id: "s", kind: "pattern", action: "allow", pattern: "a", caseInsensitive: false };
    expect(() => compileRequestPolicy(policy([rule("a"), allow]))).toThrow(
      `at most ${MAX_POLICY_PATTERN_WORK} instruction-searches, found ${perRule + 2 * smallest} over 2 pattern rules`,
    );
    expect(() => compilePattern("r", "\\bсор[a-z]{59}", false)).toThrow(/65 instructions/);
  });

  it("leaves an allow rule as it was: it never reads the unmarked view", () => {
    const policy: RequestPolicy = {
      rules: [{ id: "ok", kind: "pattern", action: "allow", pattern: "^contrasena$", caseInsensitive: false }],
      defaultAction: "block",
      pii: PII_OFF,
    };
    const p = compileRequestPolicy(policy);
    const decide = (text: string) =>
      p.evaluate({ kind: "complete", model: "m", text, estimatedTokens: 1, metadata: {} }).decision;
    expect(decide("contrasena")).toBe("allow");
    expect(decide("contraseña")).toBe("block");
  });

  it("keeps a 256 KiB accented prompt to whole-string passes (a block rule still evaluates it)", () => {
    const text = "Ça coûte très cher, même à Noël. ".repeat(8_000);
    expect(unmarkedForDetection(text)).toBe("Ca coute tres cher, meme a Noel. ".repeat(8_000));
    const policy: RequestPolicy = {
      rules: [{ id: "r", kind: "pattern", action: "block", pattern: "Noël!", caseInsensitive: false }],
      defaultAction: "allow",
      pii: PII_OFF,
    };
    const p = compileRequestPolicy(policy, { maxPatternInputChars: 300_000 });
    expect(p.evaluate({ kind: "complete", model: "m", text, estimatedTokens: 1, metadata: {} }).decision).toBe("allow");
  });
});

/** A small deterministic generator (mulberry32), so the corpus is the same on every run. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = [
  "password",
  "Password",
  "Passwörter",
  "contraseña",
  "contrasena",
  "bomb",
  "пароль",
  "сёстра",
  "сестра",
  "κωδικός",
  "पासवर्ड",
  "बम",
  "パスワード",
  "mật khẩu",
  "hello",
  "naïve café",
];
const FILLERS = ["my", "the", "is", "here", "ok", "la", "это", "है", "です", "và"];
const MARKS = ["\u0301", "\u0308", "\u0303", "\u0336", "\u0305", "\u0323", "\u20e5"];
const INVISIBLES = ["\u200b", "\u00ad", "\u2060", "\u200d"];
const PRECOMPOSED: Record<string, string> = { a: "á", e: "é", i: "ï", o: "ö", u: "ü", n: "ñ", s: "ś", c: "ç" };
const CYRILLIC: Record<string, string> = { a: "а", o: "о", e: "е", p: "р", c: "с", x: "х" };
const FROM_CYRILLIC: Record<string, string> = { а: "a", о: "o", е: "e", р: "p", с: "c" };

/** The kinds of rewrite, each a function of the word and the generator. */
const KINDS: Record<string, (word: string, next: () => number) => string> = {
  "as written": (w) => w,
  decomposed: (w) => w.normalize("NFD"),
  "accent stripped": (w) => w.normalize("NFD").replace(/[\u0300-\u036f]/g, ""),
  "precomposed accent": (w, next) => replaceOne(w, next, (c) => PRECOMPOSED[c]),
  "decomposed mark": (w, next) => insertAfterLetter(w, next, () => pick(MARKS, next)),
  "two marks": (w, next) => insertAfterLetter(w, next, () => pick(MARKS, next) + pick(MARKS, next)),
  "mark behind invisible": (w, next) => insertAfterLetter(w, next, () => pick(INVISIBLES, next) + pick(MARKS, next)),
  invisible: (w, next) => insertAfterLetter(w, next, () => pick(INVISIBLES, next)),
  "full-width with mark": (w, next) =>
    insertAfterLetter(
      [...w].map((c) => (/[a-z]/i.test(c) ? String.fromCodePoint((c.codePointAt(0) as number) + 0xfee0) : c)).join(""),
      next,
      () => pick(MARKS, next),
    ),
  "Cyrillic look-alike": (w, next) => replaceOne(w, next, (c) => CYRILLIC[c]),
  "Latin look-alike": (w, next) => replaceOne(w, next, (c) => FROM_CYRILLIC[c]),
  "look-alike and mark": (w, next) =>
    insertAfterLetter(
      replaceOne(w, next, (c) => CYRILLIC[c]),
      next,
      () => pick(MARKS, next),
    ),
};

function pick<T>(items: readonly T[], next: () => number): T {
  return items[Math.floor(next() * items.length)] as T;
}

function replaceOne(word: string, next: () => number, by: (c: string) => string | undefined): string {
  const chars = [...word];
  const places = chars.flatMap((c, i) => (by(c) === undefined ? [] : [i]));
  if (places.length === 0) return word;
  const at = pick(places, next);
  chars[at] = by(chars[at] as string) as string;
  return chars.join("");
}

function insertAfterLetter(word: string, next: () => number, what: () => string): string {
  const chars = [...word];
  const places = chars.flatMap((c, i) => (/\p{L}/u.test(c) ? [i] : []));
  if (places.length === 0) return word;
  const at = pick(places, next);
  chars[at] = (chars[at] as string) + what();
  return chars.join("");
}

/** About 3,800 prompts: each word under each kind of rewrite, 20 times in random surroundings. */
function corpus(words: readonly string[] = WORDS, seed = 66): { word: string; kind: string; text: string }[] {
  const next = random(seed);
  const out: { word: string; kind: string; text: string }[] = [];
  for (const word of words) {
    for (const [kind, rewrite] of Object.entries(KINDS)) {
      for (let n = 0; n < 20; n++) {
        out.push({ word, kind, text: `${pick(FILLERS, next)} ${rewrite(word, next)} ${pick(FILLERS, next)}` });
      }
    }
  }
  return out;
}

const RULES: readonly (readonly [pattern: string, caseInsensitive: boolean])[] = [
  ["password", false],
  ["password", true],
  ["\\bbomb\\b", true],
  ["contraseña", false],
  ["contraseña|password", false],
  ["пароль", true],
  ["сёстра", false],
  ["p[aá]ss", false],
  ["κωδικ[οό]ς", false],
  ["पासवर्ड", false],
  ["बम", false],
  ["パスワード", false],
  ["mật khẩu", true],
  // Ranges (read43c): each gains the bare letters of the accented ones it holds.
  ["contrase[ñ-ÿ]a", false],
  ["PASSW[Ò-Ö]RD", true],
  ["κωδικ[ά-ώ]ς", false],
  ["с[ѐ-ё]стра", false],
  ["na[ì-ï]ve", false],
];

/** Words with an accented letter where a boundary, `\W` or a negated class looks (tidy77). */
const BOUNDARY_WORDS = [
  "bomb",
  "bombé",
  "àbomb",
  "bombastic",
  "contraseñaé",
  "écontraseña",
  "señoré",
  "сёстраé",
  "пароль",
];

/** Rules that tell an accented letter from its bare one by a word boundary, `\W` or a negated class. */
const BOUNDARY_RULES: readonly (readonly [pattern: string, caseInsensitive: boolean])[] = [
  ["\\bbomb\\b", false],
  ["\\bbomb\\b", true],
  ["bomb\\W", false],
  ["\\Wbomb", false],
  ["\\Bomb", false],
  ["bom\\B", false],
  ["bomb[^a-z]", false],
  ["[^a-z]bomb", false],
  ["\\bcontraseña\\b", false],
  ["contraseña\\W", false],
  ["señor\\b", false],
  ["сёстра[^а-я]", false],
  ["\\bпароль", true],
];

/**
 * The prompts of `prompts` the old code blocks and the new does not, and the word and kind of rewrite
 * of those only the new code blocks.
 */
function compare(
  rules: readonly (readonly [pattern: string, caseInsensitive: boolean])[],
  prompts: readonly { word: string; kind: string; text: string }[],
): { lost: string[]; gained: string[]; blockedBefore: number } {
  const lost: string[] = [];
  const gained = new Set<string>();
  let blockedBefore = 0;
  for (const [pattern, caseInsensitive] of rules) {
    const { old, current } = deciders(pattern, caseInsensitive);
    const name = `${pattern}${caseInsensitive ? " (i)" : ""}`;
    for (const { word, kind, text } of prompts) {
      const was = old(text);
      const now = current(text);
      if (was === "block") blockedBefore += 1;
      if (was === "block" && now !== "block") lost.push(`${name}: ${JSON.stringify(text)}`);
      if (was === "allow" && now === "block") gained.add(`${name}: ${word}, ${kind}`);
    }
  }
  return { lost, gained: [...gained].sort(), blockedBefore };
}

/** Rules of look-alikes alone (read44a), as the folded program reads them, in JavaScript. */
const LOOK_ALIKE_RULES: readonly (readonly [pattern: string, folded: RegExp])[] = [
  ["[^a-z]\u0441\u043e\u0440", /[^a-z]cop/gu],
  ["\\bp\u0430ss\\b", /\bpass\b/gu],
  ["\\b\u0440\u0430\\b", /\bpa\b/gu],
  ["\\b\u0441\u043e\u0440\\b", /\bcop\b/gu],
];

/** French and English prompts of 5 to 19 words, each word decomposed (NFD) with probability 0.4. */
function frenchEnglishCorpus(count: number, seed: number): string[] {
  const words =
    "the cop came to José in Zürich pass pa a café très élève naïve Noël à côté de la mer password passe police est bien ça va le garçon".split(
      " ",
    );
  const next = random(seed);
  return Array.from({ length: count }, () =>
    Array.from({ length: 5 + Math.floor(next() * 15) }, () => {
      const word = pick(words, next);
      return next() < 0.4 ? word.normalize("NFD") : word;
    }).join(" "),
  );
}

describe("differential: the accent-folded view against the two views before it", () => {
  it("decides a French or English prompt for a look-alike rule as the old code did (read44a)", () => {
    const prompts = frenchEnglishCorpus(2_000, 79);
    let blocked = 0;
    const differing: string[] = [];
    const unexplained: string[] = [];
    for (const [pattern, folded] of LOOK_ALIKE_RULES) {
      const { old, current } = deciders(pattern);
      for (const text of prompts) {
        const now = current(text);
        if (old(text) !== now) differing.push(`${pattern} (${now}): ${JSON.stringify(text)}`);
        if (now !== "block") continue;
        blocked += 1;
        // Fail-closed only (the corpus has no Cyrillic letter): the rule's folded program meets the
        // prompt's plain words MAX_ASCII_MATCHES (4) times, on the unmarked view or the precomposed one.
        const normalized = normalizeCharacters(text);
        const views = [unmarkedForDetection(normalized), precomposedForDetection(text, normalized, false)];
        const plainMatches = Math.max(...views.map((view) => view.match(folded)?.length ?? 0));
        if (plainMatches < 4) unexplained.push(`${pattern}: ${JSON.stringify(text)}`);
      }
    }
    expect(differing).toEqual([]);
    expect(unexplained).toEqual([]);
    // The corpus reaches the fail-closed case at all (11 prompts at this seed).
    expect(blocked).toBeGreaterThan(5);
  });

  it("blocks every prompt the old code blocks where a rule reads an accented letter apart (tidy77)", () => {
    const prompts = corpus(BOUNDARY_WORDS, 77);
    const { lost, gained, blockedBefore } = compare(BOUNDARY_RULES, prompts);
    expect(blockedBefore).toBeGreaterThan(1_000);
    expect(lost).toEqual([]);
    expect(gained).toEqual(NEWLY_BLOCKED_AT_BOUNDARIES);
  });

  it("blocks every prompt the old code blocks, and newly blocks only the listed kinds", () => {
    const prompts = corpus();
    expect(prompts.length).toBeGreaterThan(3_000);
    const { lost, gained, blockedBefore } = compare(RULES, prompts);
    // The comparison means something: the old code blocks thousands of these prompts.
    expect(blockedBefore).toBeGreaterThan(2_000);
    expect(lost).toEqual([]);
    expect(gained).toEqual(NEWLY_BLOCKED);
  });
});

/**
 * `rule: word, kind of rewrite` for each pair some prompt of which only the new code blocks: a
 * letter written precomposed with an accent (`passwörd`, `bömb`); any mark on a letter of a rule
 * that writes an accented one (`con\u0301traseña`, a kept mark before `ñ`'s) or on the ASCII part
 * of such a rule (`contraseña|password`, also `p[aá]ss`); the word without the accent its rule writes
 * (`contrasena`, `сестра`), however it is written; Greek with a mark on its look-alike `ι`; and
 * Vietnamese with a mark changed, added or dropped (read without its marks); a rule with a range
 * of accented letters, which gains their bare letters (read43c), meets the word with the bare
 * letter or any mark on it (`password` meets `PASSW[Ò-Ö]RD`, `сестра` `с[ѐ-ё]стра`). German
 * `Passwörter` reads `Passworter` and does not meet `password`.
 */
const NEWLY_BLOCKED: string[] = [
  "PASSW[Ò-Ö]RD (i): Password, Cyrillic look-alike",
  "PASSW[Ò-Ö]RD (i): Password, Latin look-alike",
  "PASSW[Ò-Ö]RD (i): Password, accent stripped",
  "PASSW[Ò-Ö]RD (i): Password, as written",
  "PASSW[Ò-Ö]RD (i): Password, decomposed",
  "PASSW[Ò-Ö]RD (i): Password, decomposed mark",
  "PASSW[Ò-Ö]RD (i): Password, full-width with mark",
  "PASSW[Ò-Ö]RD (i): Password, invisible",
  "PASSW[Ò-Ö]RD (i): Password, look-alike and mark",
  "PASSW[Ò-Ö]RD (i): Password, mark behind invisible",
  "PASSW[Ò-Ö]RD (i): Password, precomposed accent",
  "PASSW[Ò-Ö]RD (i): Password, two marks",
  "PASSW[Ò-Ö]RD (i): password, Cyrillic look-alike",
  "PASSW[Ò-Ö]RD (i): password, Latin look-alike",
  "PASSW[Ò-Ö]RD (i): password, accent stripped",
  "PASSW[Ò-Ö]RD (i): password, as written",
  "PASSW[Ò-Ö]RD (i): password, decomposed",
  "PASSW[Ò-Ö]RD (i): password, decomposed mark",
  "PASSW[Ò-Ö]RD (i): password, full-width with mark",
  "PASSW[Ò-Ö]RD (i): password, invisible",
  "PASSW[Ò-Ö]RD (i): password, look-alike and mark",
  "PASSW[Ò-Ö]RD (i): password, mark behind invisible",
  "PASSW[Ò-Ö]RD (i): password, precomposed accent",
  "PASSW[Ò-Ö]RD (i): password, two marks",
  "\\bbomb\\b (i): bomb, precomposed accent",
  "contrase[ñ-ÿ]a: contrasena, Cyrillic look-alike",
  "contrase[ñ-ÿ]a: contrasena, Latin look-alike",
  "contrase[ñ-ÿ]a: contrasena, accent stripped",
  "contrase[ñ-ÿ]a: contrasena, as written",
  "contrase[ñ-ÿ]a: contrasena, decomposed",
  "contrase[ñ-ÿ]a: contrasena, decomposed mark",
  "contrase[ñ-ÿ]a: contrasena, full-width with mark",
  "contrase[ñ-ÿ]a: contrasena, invisible",
  "contrase[ñ-ÿ]a: contrasena, look-alike and mark",
  "contrase[ñ-ÿ]a: contrasena, mark behind invisible",
  "contrase[ñ-ÿ]a: contrasena, precomposed accent",
  "contrase[ñ-ÿ]a: contrasena, two marks",
  "contrase[ñ-ÿ]a: contraseña, accent stripped",
  "contrase[ñ-ÿ]a: contraseña, decomposed mark",
  "contrase[ñ-ÿ]a: contraseña, full-width with mark",
  "contrase[ñ-ÿ]a: contraseña, look-alike and mark",
  "contrase[ñ-ÿ]a: contraseña, mark behind invisible",
  "contrase[ñ-ÿ]a: contraseña, precomposed accent",
  "contrase[ñ-ÿ]a: contraseña, two marks",
  "contraseña: contrasena, Cyrillic look-alike",
  "contraseña: contrasena, Latin look-alike",
  "contraseña: contrasena, accent stripped",
  "contraseña: contrasena, as written",
  "contraseña: contrasena, decomposed",
  "contraseña: contrasena, decomposed mark",
  "contraseña: contrasena, full-width with mark",
  "contraseña: contrasena, invisible",
  "contraseña: contrasena, look-alike and mark",
  "contraseña: contrasena, mark behind invisible",
  "contraseña: contrasena, precomposed accent",
  "contraseña: contrasena, two marks",
  "contraseña: contraseña, accent stripped",
  "contraseña: contraseña, decomposed mark",
  "contraseña: contraseña, full-width with mark",
  "contraseña: contraseña, look-alike and mark",
  "contraseña: contraseña, mark behind invisible",
  "contraseña: contraseña, precomposed accent",
  "contraseña: contraseña, two marks",
  "contraseña|password: contrasena, Cyrillic look-alike",
  "contraseña|password: contrasena, Latin look-alike",
  "contraseña|password: contrasena, accent stripped",
  "contraseña|password: contrasena, as written",
  "contraseña|password: contrasena, decomposed",
  "contraseña|password: contrasena, decomposed mark",
  "contraseña|password: contrasena, full-width with mark",
  "contraseña|password: contrasena, invisible",
  "contraseña|password: contrasena, look-alike and mark",
  "contraseña|password: contrasena, mark behind invisible",
  "contraseña|password: contrasena, precomposed accent",
  "contraseña|password: contrasena, two marks",
  "contraseña|password: contraseña, accent stripped",
  "contraseña|password: contraseña, decomposed mark",
  "contraseña|password: contraseña, full-width with mark",
  "contraseña|password: contraseña, look-alike and mark",
  "contraseña|password: contraseña, mark behind invisible",
  "contraseña|password: contraseña, precomposed accent",
  "contraseña|password: contraseña, two marks",
  "contraseña|password: password, decomposed mark",
  "contraseña|password: password, full-width with mark",
  "contraseña|password: password, look-alike and mark",
  "contraseña|password: password, mark behind invisible",
  "contraseña|password: password, precomposed accent",
  "contraseña|password: password, two marks",
  "mật khẩu (i): mật khẩu, accent stripped",
  "mật khẩu (i): mật khẩu, decomposed mark",
  "mật khẩu (i): mật khẩu, full-width with mark",
  "mật khẩu (i): mật khẩu, look-alike and mark",
  "mật khẩu (i): mật khẩu, mark behind invisible",
  "mật khẩu (i): mật khẩu, precomposed accent",
  "mật khẩu (i): mật khẩu, two marks",
  "na[ì-ï]ve: naïve café, accent stripped",
  "na[ì-ï]ve: naïve café, decomposed mark",
  "na[ì-ï]ve: naïve café, full-width with mark",
  "na[ì-ï]ve: naïve café, look-alike and mark",
  "na[ì-ï]ve: naïve café, mark behind invisible",
  "na[ì-ï]ve: naïve café, precomposed accent",
  "na[ì-ï]ve: naïve café, two marks",
  "p[aá]ss: password, decomposed mark",
  "p[aá]ss: password, full-width with mark",
  "p[aá]ss: password, look-alike and mark",
  "p[aá]ss: password, mark behind invisible",
  "p[aá]ss: password, precomposed accent",
  "p[aá]ss: password, two marks",
  "password (i): Password, precomposed accent",
  "password (i): password, precomposed accent",
  "password: password, precomposed accent",
  "κωδικ[ά-ώ]ς: κωδικός, full-width with mark",
  "κωδικ[ά-ώ]ς: κωδικός, mark behind invisible",
  "κωδικ[οό]ς: κωδικός, full-width with mark",
  "κωδικ[οό]ς: κωδικός, mark behind invisible",
  "с[ѐ-ё]стра: сестра, Cyrillic look-alike",
  "с[ѐ-ё]стра: сестра, accent stripped",
  "с[ѐ-ё]стра: сестра, as written",
  "с[ѐ-ё]стра: сестра, decomposed",
  "с[ѐ-ё]стра: сестра, decomposed mark",
  "с[ѐ-ё]стра: сестра, full-width with mark",
  "с[ѐ-ё]стра: сестра, invisible",
  "с[ѐ-ё]стра: сестра, look-alike and mark",
  "с[ѐ-ё]стра: сестра, mark behind invisible",
  "с[ѐ-ё]стра: сестра, precomposed accent",
  "с[ѐ-ё]стра: сестра, two marks",
  "с[ѐ-ё]стра: сёстра, accent stripped",
  "сёстра: сестра, Cyrillic look-alike",
  "сёстра: сестра, Latin look-alike",
  "сёстра: сестра, accent stripped",
  "сёстра: сестра, as written",
  "сёстра: сестра, decomposed",
  "сёстра: сестра, decomposed mark",
  "сёстра: сестра, full-width with mark",
  "сёстра: сестра, invisible",
  "сёстра: сестра, look-alike and mark",
  "сёстра: сестра, mark behind invisible",
  "сёстра: сестра, precomposed accent",
  "сёстра: сестра, two marks",
  "сёстра: сёстра, accent stripped",
];

/**
 * `rule: word, kind of rewrite` for each pair some prompt of which only the new code blocks (tidy77):
 * the kinds NEWLY_BLOCKED lists, the rules' boundaries and classes left as they were: a letter of
 * the word written precomposed with an accent, read bare (`bömb` meets `\bbomb\b`, ` bömbastic`
 * `\Wbomb`); a mark on, or the accent dropped from, a rule's own accented letter (`contraseña\W`,
 * `сёстра[^а-я]`). `bombastic` meets `\bbomb\b` no more than before, however written.
 */
const NEWLY_BLOCKED_AT_BOUNDARIES: string[] = [
  "[^a-z]bomb: bomb, precomposed accent",
  "[^a-z]bomb: bombastic, precomposed accent",
  "[^a-z]bomb: bombé, precomposed accent",
  "\\Bomb: bomb, precomposed accent",
  "\\Bomb: bombastic, precomposed accent",
  "\\Bomb: bombé, precomposed accent",
  "\\Bomb: àbomb, precomposed accent",
  "\\Wbomb: bomb, precomposed accent",
  "\\Wbomb: bombastic, precomposed accent",
  "\\Wbomb: bombé, precomposed accent",
  "\\bbomb\\b (i): bomb, precomposed accent",
  "\\bbomb\\b: bomb, precomposed accent",
  "bom\\B: bomb, precomposed accent",
  "bom\\B: bombastic, precomposed accent",
  "bom\\B: bombé, precomposed accent",
  "bom\\B: àbomb, precomposed accent",
  "bomb[^a-z]: bomb, precomposed accent",
  "bomb[^a-z]: àbomb, precomposed accent",
  "bomb\\W: bomb, precomposed accent",
  "bomb\\W: àbomb, precomposed accent",
  "contraseña\\W: écontraseña, accent stripped",
  "contraseña\\W: écontraseña, decomposed mark",
  "contraseña\\W: écontraseña, full-width with mark",
  "contraseña\\W: écontraseña, look-alike and mark",
  "contraseña\\W: écontraseña, mark behind invisible",
  "contraseña\\W: écontraseña, precomposed accent",
  "contraseña\\W: écontraseña, two marks",
  "сёстра[^а-я]: сёстраé, accent stripped",
];
