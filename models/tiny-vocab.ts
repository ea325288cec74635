/**
 * A SentencePiece-style ("llama" tokenizer model) vocabulary built from the tiny corpus:
 * `<unk>`, `<s>`, `</s>`, the 256 byte-fallback tokens `<0x00>`..`<0xFF>`, `▁` and the printable
 * ASCII characters, then every word of the corpus with a leading `▁` together with all its
 * prefixes. llama.cpp's SPM tokenizer merges adjacent pieces only when the merged piece is in the
 * vocabulary, so the prefixes give each word a merge path (`▁e` → `▁en` → … → `▁enclave`); text
 * outside the vocabulary falls back to single characters and then to bytes, so any UTF-8 string
 * round-trips exactly.
 *
 * {@link tokenizeSpm} reimplements llama.cpp's SPM merge order (highest score first, leftmost on
 * ties) so the bigram counts are taken over exactly the tokens llama.cpp will produce.
 */

export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export const UNK_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
const SPACE = "\u2581";

export interface Vocab {
  readonly tokens: readonly string[];
  readonly scores: readonly number[];
  readonly types: readonly number[];
  readonly index: ReadonlyMap<string, number>;
}

/** Code-point order comparison (locale-independent, so the vocabulary is the same everywhere). */
function compareCodePoints(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Words of the corpus: maximal runs of ASCII letters and apostrophes. */
function corpusWords(corpus: readonly string[]): string[] {
  const words = new Set<string>();
  for (const line of corpus) for (const m of line.matchAll(/[A-Za-z']+/g)) words.add(m[0]);
  return [...words].sort(compareCodePoints);
}

export function buildVocab(corpus: readonly string[]): Vocab {
  const tokens: string[] = ["<unk>", "<s>", "</s>"];
  const types: number[] = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL];
  const scores: number[] = [0, 0, 0];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TokenType.BYTE);
    scores.push(0);
  }
  const chars = [SPACE];
  for (let c = 0x21; c <= 0x7e; c++) chars.push(String.fromCharCode(c));
  for (const c of chars) {
    tokens.push(c);
    types.push(TokenType.NORMAL);
    scores.push(-1);
  }
  const pieces = new Set<string>();
  for (const word of corpusWords(corpus)) {
    const full = SPACE + word;
    for (let n = 2; n <= full.length; n++) pieces.add(full.slice(0, n));
  }
  // Shorter pieces first; the score only orders merges, and every word has a single merge chain.
  const sorted = [...pieces].sort((a, b) => a.length - b.length || compareCodePoints(a, b));
  sorted.forEach((piece, i) => {
    tokens.push(piece);
    types.push(TokenType.NORMAL);
    scores.push(-2 - i);
  });
  const index = new Map<string, number>();
  tokens.forEach((t, i) => {
    index.set(t, i);
  });
  return { tokens, scores, types, index };
}

const utf8 = new TextEncoder();

/** Tokenize like llama.cpp's SPM tokenizer with add_space_prefix = false and no special tokens. */
export function tokenizeSpm(vocab: Vocab, text: string): number[] {
  const symbols = Array.from(text.replaceAll(" ", SPACE));
  for (;;) {
    let best = -1;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const id = vocab.index.get(symbols[i]! + symbols[i + 1]!);
      if (id === undefined || vocab.types[id] !== TokenType.NORMAL) continue;
      const score = vocab.scores[id]!;
      if (score > bestScore) {
        bestScore = score;
        best = i;
      }
    }
    if (best < 0) break;
    symbols.splice(best, 2, symbols[best]! + symbols[best + 1]!);
  }
  const out: number[] = [];
  for (const s of symbols) {
    const id = vocab.index.get(s);
    if (id !== undefined && vocab.types[id] === TokenType.NORMAL) {
      out.push(id);
      continue;
    }
    for (const byte of utf8.encode(s)) out.push(3 + byte);
  }
  return out;
}
