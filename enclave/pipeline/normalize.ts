/**
 * The form of a prompt the policy and PII detectors also look at, so that trivial rewrites of the
 * same text do not slip past them. Two steps:
 *
 * normalizeCharacters: Unicode NFKC (full-width and other compatibility forms become their plain
 * characters: `４１１１` → `4111`, `＠` → `@`, `𝐩` → `p`, a no-break space → a space), every
 * invisible formatting character removed (zero-width spaces and joiners, soft hyphens, bidi
 * controls: general category Cf and the default-ignorable code points), every dash punctuation (en
 * and em dashes, minus signs: category Pd) written as `-`, and decimal digits of every script
 * (Arabic-Indic `٤`, Devanagari `४`, …) as ASCII digits.
 *
 * foldLookAlikes: each letter of another script that looks like one ASCII letter or digit written
 * as that character (Cyrillic `а` → `a`, Greek `ρ` → `p`, Armenian `օ` → `o`, Cherokee `Ꮃ` → `W`,
 * Latin dotless `ı` → `i`, small capital `ᴏ` → `o`, Cyrillic `З` → `3`): the reviewed table of
 * look-alikes.ts, taken from Unicode's confusables.txt (UTS #39). It replaces one UTF-16 unit with
 * one, so the folded text is exactly as long as its input and a match found in it covers the same
 * positions in the input: the PII filter redacts those positions in the unfolded text, so the
 * model never gets Russian or Greek text rewritten in Latin letters.
 *
 * normalizeForDetection is both. Not handled: look-alikes made of several characters (`rn` for
 * `m`, `cl` for `d`), letters with diacritics (Cyrillic `ё` is not `e`, nor Latin `ö` `o`), letters
 * of scripts outside the table (Coptic, Lisu, …), symbols (`∪` for `U`), and ASCII look-alikes of
 * each other (`0` for `O`, `1` for `l`): a rule that should see through those must say so itself.
 */
import { LOOK_ALIKES } from "./look-alikes.ts";

const INVISIBLE = /[\p{Cf}\p{Default_Ignorable_Code_Point}]/gu;
const DASHES = /[\p{Pd}\u2212]/gu;
const NON_ASCII_DIGIT = /(?![0-9])\p{Nd}/gu;
const DIGIT = /^\p{Nd}$/u;

/**
 * Folded with the look-alike letters: the ideographic full stop `。` and its half-width form `｡`,
 * which domain names treat as a dot (UTS #46, RFC 3490 3.1): `john@example。com`, `192｡168｡1｡10`.
 * Only in what the detectors read; the model gets them as written.
 */
const DOTS: readonly (readonly [codePoint: number, ascii: string])[] = [
  [0x3002, "."],
  [0xff61, "."],
];
const FOLDS = [...LOOK_ALIKES, ...DOTS];

/** By UTF-16 code unit: the ASCII character code a look-alike folds to, 0 for every other unit. */
const FOLDED = new Uint8Array(0x10000);
for (const [codePoint, ascii] of FOLDS) FOLDED[codePoint] = ascii.charCodeAt(0);
/** Any look-alike; without the `u` flag it matches single UTF-16 units (the table has no surrogates). */
const LOOK_ALIKE = new RegExp(
  `[${FOLDS.map(([codePoint]) => `\\u${codePoint.toString(16).padStart(4, "0")}`).join("")}]`,
);

/** normalizeCharacters, then foldLookAlikes. */
export function normalizeForDetection(text: string): string {
  return foldLookAlikes(normalizeCharacters(text));
}

/** NFKC, invisible characters removed, dashes as `-`, digits of every script in ASCII; letters as written. */
export function normalizeCharacters(text: string): string {
  return text
    .normalize("NFKC")
    .replace(INVISIBLE, "")
    .replace(DASHES, "-")
    .replace(NON_ASCII_DIGIT, (digit) => String(digitValue(digit.codePointAt(0) as number)));
}

/**
 * Look-alike letters as the ASCII character they look like, and `。` `｡` as `.`; the result has the
 * length of `text`.
 */
export function foldLookAlikes(text: string): string {
  // One regular-expression scan answers for most prompts (no look-alike at all); from the first
  // one on, a table look-up per code unit (measured: about 2.5 times faster than a replace callback
  // on Russian text, where every other letter is one).
  const first = text.search(LOOK_ALIKE);
  if (first < 0) return text;
  let out = text.slice(0, first);
  let copied = first;
  for (let i = first; i < text.length; i++) {
    const ascii = FOLDED[text.charCodeAt(i)] as number;
    if (ascii === 0) continue;
    out += text.slice(copied, i) + String.fromCharCode(ascii);
    copied = i + 1;
  }
  return out + text.slice(copied);
}

const ANY_MARK = /[\p{Mn}\p{Me}]/u;
const MARK_UNIT = /^[\p{Mn}\p{Me}]$/u;

/**
 * `text` without the non-spacing and enclosing combining marks that sit on an ASCII character or
 * a look-alike letter (U+0336 in `pa\u0336ssword`, which no letter composes with, so normalizing
 * keeps it), with the position in `text` of each UTF-16 unit kept (`from`); null when there is no
 * such mark (most prompts: one scan). What block rules and PII detection also read; marks on other
 * letters stay (Hindi vowel signs, Hebrew points: there they are part of the word), and the model
 * gets the text as it was.
 */
export function withoutMarksOnLatin(text: string): { text: string; from: number[] } | null {
  if (!ANY_MARK.test(text)) return null;
  let out = "";
  const from: number[] = [];
  let stripped = false;
  let base = -1; // the UTF-16 unit of the last character that is not a mark, -1 at the start
  let i = 0;
  for (const char of text) {
    if (!MARK_UNIT.test(char)) {
      base = char.length === 1 ? char.charCodeAt(0) : 0x10000;
    } else if (base >= 0 && (base < 0x80 || (base < 0x10000 && FOLDED[base] !== 0))) {
      stripped = true;
      i += char.length;
      continue;
    }
    out += char;
    for (let k = 0; k < char.length; k++) from.push(i + k);
    i += char.length;
  }
  return stripped ? { text: out, from } : null;
}

/** Unicode lays out each script's digits 0..9 as one run of consecutive code points. */
function digitValue(codePoint: number): number {
  let start = codePoint;
  while (DIGIT.test(String.fromCodePoint(start - 1))) start -= 1;
  return (codePoint - start) % 10;
}
