/**
 * A Latin letter written with a combining mark that NFKC composes with it (`pa\u0301ssword`, which
 * normalizes to `pássword`) is read by block rules and PII detection as the bare letter, as one
 * with a mark no letter composes with (`pa\u0336ssword`) is (auditor41d); block rules also read a
 * letter written accented (`pássword` with U+00E1) as the bare letter, PII detection does not
 * (tidy66: accent-folding.test.ts), and marks on letters of other scripts stay.
 */

import { describe, expect, it } from "vitest";
import { normalizeCharacters, unmarkedForDetection, withoutMarksOnLatin } from "../../enclave/pipeline/normalize.ts";
import { detectPii, redactPii } from "../../enclave/pipeline/pii.ts";
import { compileRequestPolicy, type RequestPolicy } from "../../enclave/pipeline/policy.ts";
import { PII_ENTITIES, type RequestRule } from "../../manifests/schema.ts";

const PII_OFF: RequestPolicy["pii"] = { mode: "off", entities: [], reason: "policy unit tests only" };

function decider(rule: RequestRule, defaultAction: "allow" | "block" = "allow") {
  const policy = compileRequestPolicy({ rules: [rule], defaultAction, pii: PII_OFF });
  return (text: string) =>
    policy.evaluate({ kind: "complete", model: "m", text, estimatedTokens: 1, metadata: {} }).decision;
}

const blockPassword = decider({
  id: "no-password",
  kind: "pattern",
  action: "block",
  pattern: "password",
  caseInsensitive: false,
});

describe("a block rule reads a Latin letter and the marks NFKC composes with it as the bare letter", () => {
  it("blocks an acute, a diaeresis, several marks, marks behind an invisible character", () => {
    for (const text of [
      "pa\u0301ssword",
      "pa\u0308ssword",
      "passwo\u0308rd",
      "my pa\u0301\u0308ssword is", // two marks: NFKC composes the first, keeps the second
      "pa\u200b\u0301ssword", // a zero-width space between the letter and the mark
      "pa\u00ad\u0301ssword", // a soft hyphen
      "p\u0301a\u0301s\u0301s\u0301w\u0301o\u0301r\u0301d\u0301", // every letter
    ]) {
      expect(blockPassword(text), JSON.stringify(text)).toBe("block");
    }
  });

  it("blocks full-width and mathematical letters NFKC writes as ASCII, and look-alikes, under a composing mark", () => {
    for (const text of [
      "ｐａ\u0301ｓｓｗｏｒｄ", // full-width: NFKC makes `pássword`
      "\u{1d429}\u{1d41a}\u0301\u{1d42c}\u{1d42c}\u{1d430}\u{1d428}\u{1d42b}\u{1d41d}", // mathematical bold
      "passw\u043e\u0308rd", // Cyrillic о + diaeresis: NFKC makes Cyrillic ӧ, which folds to nothing
      "pa\u0301ssw\u03bf\u0301rd", // Greek ο + acute: NFKC makes ό
    ]) {
      expect(blockPassword(text), JSON.stringify(text)).toBe("block");
    }
    const caseless = decider({
      id: "pw",
      kind: "pattern",
      action: "block",
      pattern: "password",
      caseInsensitive: true,
    });
    expect(caseless("PA\u0301SSWORD")).toBe("block");
    expect(caseless("ＰＡ\u0308ＳＳＷＯＲＤ")).toBe("block");
  });

  it("blocks a letter written accented (precomposed), with one more mark too; a mark on no letter cuts nothing", () => {
    // Since tidy66 a block rule reads precomposed letters without their accents (fail-closed).
    for (const text of ["pássword", "pässword", "passwörd", "pä\u0301ssword"]) {
      expect(blockPassword(text), JSON.stringify(text)).toBe("block");
    }
    expect(blockPassword("pa\u0301ss word")).toBe("allow");
  });

  it("still blocks a rule written with an accented letter where a kept mark cuts it and a composing one writes the letter", () => {
    // The rule is searched on the unmarked text as `contrasena` (tidy66), so the word without its
    // accent meets it too (fail-closed).
    for (const pattern of ["contraseña", "contrase\\u00f1a", "contrase\\u{f1}a"]) {
      const blockAccented = decider({ id: "no-es", kind: "pattern", action: "block", pattern, caseInsensitive: false });
      for (const text of ["con\u0336trasen\u0303a", "con\u0336traseña", "contrasen\u0303a", "con\u0336trasena"]) {
        expect(blockAccented(text), `${pattern} ${JSON.stringify(text)}`).toBe("block");
      }
      expect(blockAccented("con\u0336trasenna")).toBe("allow");
    }
    // A rule in ASCII letters still reads both kinds of marks dropped.
    expect(blockPassword("pa\u0301ss\u0336word")).toBe("block");
  });

  it("blocks for a rule written with an accented letter its mark behind an invisible character or under a kept one", () => {
    // Removing the zero-width space or soft hyphen brings `n` and U+0303 together after NFKC; a
    // kept mark on the composed `ñ` itself (U+0336 sorts before U+0303, so NFKC still composes).
    const blockAccented = decider({
      id: "no-es",
      kind: "pattern",
      action: "block",
      pattern: "contraseña",
      caseInsensitive: false,
    });
    for (const text of [
      "contrasen\u200b\u0303a",
      "contrasen\u00ad\u0303a",
      "con\u0336trasen\u200b\u0303a",
      "contrasen\u0336\u0303a",
      "contrasen\u0303\u0336a",
    ]) {
      expect(blockAccented(text), JSON.stringify(text)).toBe("block");
    }
    expect(blockAccented("contrasen\u200ba")).toBe("block"); // `contrasena` (tidy66)
    expect(blockAccented("contrasen\u200bo")).toBe("allow");
    const blockSister = decider({
      id: "no-ru",
      kind: "pattern",
      action: "block",
      pattern: "сёстра",
      caseInsensitive: false,
    });
    expect(blockSister("с\u0435\u0336\u0308стра")).toBe("block");
  });

  it("reads both kinds of marks dropped for a rule whose only marks are on other scripts' letters or escaped text", () => {
    // Hindi and Thai vowel signs and Japanese sound marks are no diacritic on a Latin letter, and
    // `\\xe1` is a backslash and `xe1`: the `password` of such a rule still meets `pa\u0301ssword`.
    for (const pattern of ["password|पासवर्ड", "password|パスワード", "password|รหัสผ่าน", "password|\\\\xe1"]) {
      const block = decider({ id: "no-password", kind: "pattern", action: "block", pattern, caseInsensitive: false });
      expect(block("pa\u0301ssword"), pattern).toBe("block");
      expect(block("pa\u0336ssword"), pattern).toBe("block");
    }
    // A mark on a symbol or a digit is no diacritic on a letter (`≠` is `=` and U+0338, keycap `1️⃣`
    // is `1`, U+FE0F and U+20E3), nor a variation selector on a letter-like symbol (`ℹ️`, `Ⓜ️`).
    for (const pattern of [
      "password|≠",
      "password|x \\u2260 y",
      "password|1\ufe0f\u20e3",
      "password|\u2139\ufe0f",
      "password|Ⓜ\ufe0f",
    ]) {
      const block = decider({ id: "no-password", kind: "pattern", action: "block", pattern, caseInsensitive: false });
      expect(block("pa\u0301ssword"), pattern).toBe("block");
    }
    // A rule writing the letter as `\xf1` or Cyrillic `ё` reads the composing marks kept.
    for (const [pattern, text] of [
      ["contrase\\xf1a", "con\u0336trasen\u0303a"],
      ["с\u0451стра", "с\u0336\u0435\u0308стра"],
    ] as const) {
      const block = decider({ id: "no-word", kind: "pattern", action: "block", pattern, caseInsensitive: false });
      expect(block(text), pattern).toBe("block");
    }
  });

  it("leaves an allow rule as it was: it never reads the unmarked view", () => {
    const allowPassword = decider(
      { id: "only-password", kind: "pattern", action: "allow", pattern: "^password$", caseInsensitive: false },
      "block",
    );
    expect(allowPassword("password")).toBe("allow");
    expect(allowPassword("pa\u0301ssword")).toBe("block");
    expect(allowPassword("pa\u0336ssword")).toBe("block");
  });
});

describe("unmarkedForDetection and withoutMarksOnLatin", () => {
  it("drop the marks on the normalized text decomposed, those NFKC composed and those it kept", () => {
    const unmarked = (text: string) => unmarkedForDetection(normalizeCharacters(text));
    expect(unmarked("pa\u0301ssword")).toBe("password");
    expect(unmarked("ｐａ\u0301ｓｓｗｏｒｄ")).toBe("password");
    expect(unmarked("pa\u0336ssword")).toBe("password");
    expect(unmarked("pa\u200b\u0301ss\u0336word")).toBe("password");
    // Normalizing makes the mark of a half-width katakana voiced sound mark (U+FF9E → U+3099).
    expect(unmarked("a\uff9eb")).toBe("ab");
  });

  it("French, German and Vietnamese with precomposed accents: kept by withoutMarksOnLatin (PII), folded for block rules", () => {
    for (const [text, bare] of [
      [
        "Ça coûte très cher, même à Noël ; l'élève a déjà reçu sa note.",
        "Ca coute tres cher, meme a Noel ; l'eleve a deja recu sa note.",
      ],
      ["Die Größe der Übergänge für Änderungen ist schön.", "Die Große der Ubergange fur Anderungen ist schon."],
      ["Tiếng Việt có dấu.", "Tieng Viet co dau."], // Vietnamese as keyboards write it (NFC)
    ] as const) {
      expect(withoutMarksOnLatin(text), text).toBeNull();
      expect(unmarkedForDetection(normalizeCharacters(text)), text).toBe(bare);
    }
  });

  it("keep marks on letters of other scripts and a mark at the start", () => {
    for (const text of ["हिन्दी में लिखा पाठ", "שָׁלוֹם עוֹלָם", "\u0301abc", "中\u0301文"]) {
      expect(withoutMarksOnLatin(text), text).toBeNull();
      expect(unmarkedForDetection(text), text).toBe(normalizeCharacters(text));
    }
  });

  it("map each unit kept to its place in the text, across invisible characters and surrogate pairs", () => {
    const text = "x\u200b\u0301\u{1d41a}\u0301\u0308y\u0915\u093fz";
    const bare = withoutMarksOnLatin(text);
    expect(bare?.text).toBe("x\u200b\u{1d41a}y\u0915\u093fz");
    expect(bare?.from).toHaveLength(bare?.text.length ?? -1);
    for (const [k, at] of (bare?.from ?? []).entries()) expect(text[at]).toBe(bare?.text[k]);
  });

  it("take a lone low surrogate before a mark as the character under it, and one prompt cannot change the next's reading", () => {
    // A lone low surrogate after full-width `ｚ` is no pair with it: the mark sits on the surrogate.
    expect(withoutMarksOnLatin("\uff5a\udc00\u0301")).toBeNull();
    expect(withoutMarksOnLatin("a\udc00\u0301")).toBeNull();
    // The per-code-point table: `ｚ` met first in that shape, then as a letter under a mark.
    const blockZebra = decider({
      id: "no-zebra",
      kind: "pattern",
      action: "block",
      pattern: "zebra",
      caseInsensitive: false,
    });
    expect(blockZebra("\uff5a\udc00\u0301")).toBe("allow");
    expect(blockZebra("\uff5a\u0301ebra")).toBe("block");
    expect(unmarkedForDetection(normalizeCharacters("\uff5a\u0301ebra"))).toBe("zebra");
  });

  it("read each character a bounded number of times: marks behind runs of invisible characters", () => {
    // `a` then 20,000 times a zero-width space and a mark: each mark is on `a`.
    const text = `a${"\u200b\u0301".repeat(20_000)}b`;
    expect(withoutMarksOnLatin(text)?.text).toBe(`a${"\u200b".repeat(20_000)}b`);
    expect(unmarkedForDetection(normalizeCharacters(text))).toBe("ab");
  });
});

describe("PII detection reads an entity written with composing marks whole", () => {
  it("redacts jo\\u0301hn@example.com whole, its marks with it, and counts it in block mode", () => {
    for (const text of [
      "mail jo\u0301hn@example.com now",
      "mail jo\u0301\u0308hn@example.com now",
      "mail jo\u200b\u0301hn@exa\u0301mple.com\u0301 now",
      "mail jo\u0336hn@example.com now",
    ]) {
      expect(redactPii(text, PII_ENTITIES), JSON.stringify(text)).toEqual({
        text: "mail [REDACTED_EMAIL] now",
        findings: [{ entity: "email", count: 1 }],
      });
      expect(detectPii(text, PII_ENTITIES)).toEqual([{ entity: "email", count: 1 }]);
    }
    expect(redactPii("key sk-a\u0301bcdefghij1234567890abcd end", PII_ENTITIES).text).toBe(
      "key [REDACTED_SECRET_KEY] end",
    );
  });

  it("redacts a key or an IBAN that an invisible character cuts as sent and a composing mark after normalizing", () => {
    // As sent, the zero-width space cuts the entity; normalized, `a` + U+0301 is `á`, which no key
    // or IBAN holds; read without the mark and then normalized, it is whole.
    for (const [text, entity] of [
      ["key s\u200bk-a\u0301bcdefghij1234567890abcd end", "secret_key"],
      ["key ｓｋ-ａ\u0301ｂｃｄｅｆｇｈｉｊ１２３４５６７８９０ａｂｃｄ end", "secret_key"],
      ["iban GB82 WE\u0301ST 1234\u200b 5698 7654 32 end", "iban"],
      ["iban ＧＢ８２ ＷＥ\u0301ＳＴ １２３４ ５６９８ ７６５４ ３２ end", "iban"],
      ["mail jo\u200bhn@example.co\u0301m now", "email"],
    ] as const) {
      const result = redactPii(text, PII_ENTITIES);
      expect(result.findings, text).toEqual([{ entity, count: 1 }]);
      expect(result.text, text).toBe(
        `${text.split(" ")[0]} [REDACTED_${entity.toUpperCase()}] ${text.split(" ").at(-1)}`,
      );
    }
  });

  it("leaves a French prompt with precomposed accents and no entity as given", () => {
    const text = "Ça coûte très cher, même à Noël.";
    expect(redactPii(text, PII_ENTITIES)).toEqual({ text, findings: [] });
  });
});
