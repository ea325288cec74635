/**
 * The form of a prompt the policy and PII detectors also look at, so that trivial rewrites of the
 * same text do not slip past them: Unicode NFKC (full-width and other compatibility forms become
 * their plain characters: `４１１１` → `4111`, `＠` → `@`, a no-break space → a space), every
 * invisible formatting character removed (zero-width spaces and joiners, soft hyphens, bidi
 * controls: general category Cf and the default-ignorable code points), every dash punctuation (en
 * and em dashes, minus signs: category Pd) written as `-`, and decimal digits of every script
 * (Arabic-Indic `٤`, Devanagari `४`, …) as ASCII digits.
 *
 * Not handled: look-alike letters of other scripts (Cyrillic `о` for Latin `o`), which NFKC keeps.
 */
const INVISIBLE = /[\p{Cf}\p{Default_Ignorable_Code_Point}]/gu;
const DASHES = /[\p{Pd}\u2212]/gu;
const NON_ASCII_DIGIT = /(?![0-9])\p{Nd}/gu;
const DIGIT = /^\p{Nd}$/u;

export function normalizeForDetection(text: string): string {
  return text
    .normalize("NFKC")
    .replace(INVISIBLE, "")
    .replace(DASHES, "-")
    .replace(NON_ASCII_DIGIT, (digit) => String(digitValue(digit.codePointAt(0) as number)));
}

/** Unicode lays out each script's digits 0..9 as one run of consecutive code points. */
function digitValue(codePoint: number): number {
  let start = codePoint;
  while (DIGIT.test(String.fromCodePoint(start - 1))) start -= 1;
  return (codePoint - start) % 10;
}
