import { describe, expect, it } from "vitest";
import { LOOK_ALIKES } from "../../enclave/pipeline/look-alikes.ts";
import { foldLookAlikes, normalizeCharacters, normalizeForDetection } from "../../enclave/pipeline/normalize.ts";

describe("look-alike letters", () => {
  it("the table maps single BMP letters of five scripts, unchanged by NFKC, each to one ASCII letter or digit", () => {
    expect(LOOK_ALIKES).toHaveLength(180);
    expect(new Set(LOOK_ALIKES.map(([codePoint]) => codePoint)).size).toBe(LOOK_ALIKES.length);
    for (const [codePoint, ascii] of LOOK_ALIKES) {
      const char = String.fromCodePoint(codePoint);
      const label = `U+${codePoint.toString(16)}`;
      expect(codePoint > 0x7f && codePoint <= 0xffff && !(codePoint >= 0xd800 && codePoint <= 0xdfff), label).toBe(
        true,
      );
      expect(char, label).toMatch(/^\p{L}$/u);
      expect(char, label).toMatch(
        /^[\p{Script=Latin}\p{Script=Greek}\p{Script=Cyrillic}\p{Script=Armenian}\p{Script=Cherokee}]$/u,
      );
      expect(char.normalize("NFKC"), label).toBe(char);
      expect(ascii, label).toMatch(/^[A-Za-z0-9]$/);
    }
  });

  it("folds one UTF-16 unit to one, so positions in the folded text are positions in its input", () => {
    const cases: readonly (readonly [string, string])[] = [
      ["pаsswоrd", "password"], // Cyrillic а, о
      ["ραssword", "password"], // Greek ρ, α
      ["ТОКЕН ХОРОШ", "TOKEH XOPOШ"], // Cyrillic capitals; Ш has no ASCII look-alike
      ["Տօ", "So"], // Armenian
      ["ᎪᏴᏟ", "ABC"], // Cherokee
      ["ıᴏꜱ", "ios"], // Latin dotless i, small capitals O and S
      ["ІЗб", "I36"], // capital I as I (confusables.txt: l), Ze and be as digits
      ["😀а\ud800", "😀a\ud800"], // surrogate pairs and lone surrogates pass through
    ];
    for (const [input, folded] of cases) {
      expect(foldLookAlikes(input), input).toBe(folded);
      expect(folded.length).toBe(input.length);
    }
    const ascii = "plain ASCII stays the same string";
    expect(foldLookAlikes(ascii)).toBe(ascii);
  });

  it("normalizeForDetection folds after NFKC; normalizeCharacters keeps letters as written", () => {
    expect(normalizeForDetection("𝐩𝐚𝐬𝐬 ｐａｓｓ ſ")).toBe("pass pass s"); // NFKC already covers these
    expect(normalizeForDetection("раss\u200bwоrd – ４２")).toBe("password - 42");
    expect(normalizeCharacters("раss\u200bwоrd – ４２")).toBe("раsswоrd - 42");
    // Not folded: several characters for one, accented letters, ASCII look-alikes of each other.
    expect(normalizeForDetection("rn cl ё ό 0 1")).toBe("rn cl ё ό 0 1");
  });
});
