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
 * `m`, `cl` for `d`), letters with diacritics (Cyrillic `ё` is not `e`, nor Latin `ö` `o`; block
 * rules also read unmarkedForDetection, where `ё` reads `е` and `ö` `o`), letters of scripts
 * outside the table (Coptic, Lisu, …), symbols (`∪` for `U`), and ASCII look-alikes of each other
 * (`0` for `O`, `1` for `l`): a rule that should see through those must say so itself.
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

const MARK_RUN = /[\p{Mn}\p{Me}]+/gu;
const INVISIBLE_UNIT = /^[\p{Cf}\p{Default_Ignorable_Code_Point}]$/u;

/**
 * By code point, whether one outside ASCII reads as one ASCII character or look-alike once
 * normalized: 0 not yet asked, 1 yes, 2 no (filled as prompts meet them, so each code point is
 * normalized once per process; 1.1 MB).
 */
const NORMALIZES_TO_LATIN = new Uint8Array(0x110000);

/**
 * Whether the combining marks after `char` (one code point, not a mark) are read past: an ASCII
 * character, a look-alike letter, or a character that NFKC writes as one of those (full-width
 * `ａ`, mathematical `𝐚`, circled `ⓐ`); with `accented`, also one of those written with a
 * diacritic (`ñ`, Cyrillic `ё`: the first code point of its decomposed form is one).
 */
function marksReadPast(char: string, accented = false): boolean {
  const codePoint = char.codePointAt(0) as number;
  if (codePoint < 0x80 || (codePoint < 0x10000 && FOLDED[codePoint] !== 0)) return true;
  // From the code point alone, so that what one prompt leaves in the table is what any other would.
  if (NORMALIZES_TO_LATIN[codePoint] === 0) {
    NORMALIZES_TO_LATIN[codePoint] = normalizesToLatin(String.fromCodePoint(codePoint)) ? 1 : 2;
  }
  if (NORMALIZES_TO_LATIN[codePoint] === 1) return true;
  if (!accented) return false;
  const base = String.fromCodePoint(codePoint).normalize("NFD").codePointAt(0) as number;
  return base !== codePoint && marksReadPast(String.fromCodePoint(base));
}

function normalizesToLatin(char: string): boolean {
  const normalized = char.normalize("NFKC");
  const unit = normalized.charCodeAt(0);
  return normalized.length === 1 && (unit < 0x80 || FOLDED[unit] !== 0);
}

/**
 * `text` without the non-spacing and enclosing combining marks (Mn, Me) that sit on an ASCII
 * character, a look-alike letter or a character NFKC writes as one of those (full-width `ａ`),
 * invisible characters between them looked past (`a\u200b\u0301`), with the position in `text` of
 * each UTF-16 unit kept (`from`); null when there is no such mark (most prompts: one scan). On the
 * prompt as sent it removes the marks NFKC would compose with the letter (`pa\u0301ssword` reads
 * `password`, where NFKC makes `pássword`); on normalized text those that no letter composes with
 * (U+0336 in `pa\u0336ssword`); on decomposed text also the accents of letters written accented
 * (unmarkedForDetection). What PII detection also reads, where a letter written accented (`pässword`,
 * U+00E4) keeps its accent; marks on other letters stay (Hindi vowel signs, Hebrew points: there
 * they are part of the word), and the model gets the text as it was. With `accented`, marks on
 * such letters written with a diacritic go too (`ñ\u0336`).
 */
export function withoutMarksOnLatin(text: string, accented = false): { text: string; from: number[] } | null {
  let out = "";
  const from: number[] = [];
  let copied = 0; // `out` is text[0, copied) without the marks read past
  let previousEnd = 0; // where the last run of marks ended
  let previousReadPast = false; // and whether it sat on such a character (none at the start)
  for (const run of text.matchAll(MARK_RUN)) {
    const start = run.index;
    // The character under the run: the last one before it that is neither invisible nor a mark;
    // back to the previous run at most (then it is that run's), so each character is read once.
    let readPast: boolean = previousReadPast;
    for (let j = start; j > previousEnd; ) {
      const pair =
        j - 2 >= previousEnd && isLowSurrogate(text.charCodeAt(j - 1)) && isHighSurrogate(text.charCodeAt(j - 2))
          ? 2
          : 1;
      const char = text.slice(j - pair, j);
      j -= pair;
      if (char.charCodeAt(0) >= 0x80 && INVISIBLE_UNIT.test(char)) continue;
      readPast = marksReadPast(char, accented);
      break;
    }
    previousEnd = start + run[0].length;
    previousReadPast = readPast;
    if (!readPast) continue;
    out += text.slice(copied, start);
    for (let k = copied; k < start; k++) from.push(k);
    copied = previousEnd;
  }
  if (copied === 0) return null;
  for (let k = copied; k < text.length; k++) from.push(k);
  return { text: out + text.slice(copied), from };
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

const NON_ASCII = /[^\p{ASCII}]/u;

/**
 * `normalized` (normalizeCharacters' output) with every letter read without the combining marks
 * on it where it is a Latin or look-alike letter: decomposed (NFD), those marks dropped
 * (withoutMarksOnLatin), composed again (NFC), so that the marks on other scripts' letters are
 * as before (Japanese `パ`, Hindi vowel signs). `passwörd` (U+00F6), `passwo\u0308rd`,
 * `pa\u0336ssword`, `contrasen\u0303a` and `contraseña` read `password` and `contrasena`;
 * Cyrillic `ё` reads `е`, Greek `ό` `ο`. Letters that do not decompose keep their form (`ß`, `ø`,
 * `ł`, `æ`, `đ`). The view block rules also read (policy.ts), with their own literal letters read
 * the same way; three passes over the text, none when it is ASCII.
 */
export function unmarkedForDetection(normalized: string): string {
  if (!NON_ASCII.test(normalized)) return normalized;
  const decomposed = normalized.normalize("NFD");
  return (withoutMarksOnLatin(decomposed)?.text ?? decomposed).normalize("NFC");
}

/**
 * The view block rules read before unmarkedForDetection (tidy66), in which a letter written
 * precomposed keeps its accent: `normalized` (normalizeCharacters(`text`)) without the combining
 * marks on Latin and look-alike letters that `text` writes decomposed and those NFKC keeps
 * (`bo\u0301mbé` and `bo\u0336mbé` read `bombé`, `bömbé` stays); with `composeMarks`, instead
 * without only the marks NFKC keeps, those on a letter written with a diacritic included, the marks
 * NFKC composes left composed (`contrasen\u0303a` reads `contraseña`, `señ\u0336oré` `señoré`).
 * What a block rule that may tell an accented letter from its bare one (a word boundary, `\W`, a
 * negated class) also reads (policy.ts); `normalized` itself when nothing is dropped or composed.
 */
export function precomposedForDetection(text: string, normalized: string, composeMarks: boolean): string {
  if (composeMarks) {
    // Composed once more: removing an invisible character may bring a letter and its mark together.
    const composed = normalized.normalize("NFKC");
    return withoutMarksOnLatin(composed, true)?.text ?? composed;
  }
  const bare = withoutMarksOnLatin(text);
  const renormalized = bare === null ? normalized : normalizeCharacters(bare.text);
  return withoutMarksOnLatin(renormalized)?.text ?? renormalized;
}

/** Unicode lays out each script's digits 0..9 as one run of consecutive code points. */
function digitValue(codePoint: number): number {
  let start = codePoint;
  while (DIGIT.test(String.fromCodePoint(start - 1))) start -= 1;
  return (codePoint - start) % 10;
}
