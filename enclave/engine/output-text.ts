/**
 * Turns generated tokens into text chunks, and decides where generation stops.
 *
 * - Tokens are decoded incrementally, with the preceding tokens as context so tokenizers that mark
 *   word starts (SentencePiece "▁") produce the right spaces. A token that ends inside a multi-byte
 *   UTF-8 character decodes to U+FFFD; such tokens are held back (up to 4) until the character
 *   completes, so a chunk never carries half a character.
 * - Stop tokens (single special tokens of the chat template, e.g. `<|im_end|>`) end generation and
 *   produce no text; EOG tokens are handled by the caller (llama.cpp ends the token stream).
 * - Stop texts (plain-text triggers of the chat template, or the request's `stop` strings) end
 *   generation at their first occurrence; the trigger itself is never emitted. Text that may be the
 *   start of a trigger is held back until it is known not to be one.
 */
import type { Token } from "node-llama-cpp";

export type Detokenize = (tokens: readonly Token[], lastTokens: readonly Token[]) => string;

export type StopRules = {
  /** Tokens that end generation when generated (e.g. the template's end-of-turn token). */
  tokens: ReadonlySet<Token>;
  /** Token sequences (of special tokens) that end generation when the output ends with them. */
  tokenSequences: readonly (readonly Token[])[];
  /** Texts that end generation at their first occurrence in the output. */
  texts: readonly string[];
};

export type PushResult = { text: string; stop: boolean };

const MAX_HELD_TOKENS = 4;
const CONTEXT_TOKENS = 8;

export class OutputText {
  readonly #detokenize: Detokenize;
  readonly #rules: StopRules;
  /** All tokens decoded into `#decoded` so far (the context for the next decode). */
  readonly #committed: Token[];
  readonly #generated: Token[] = [];
  /** Tokens not yet decoded because they end inside a UTF-8 character. */
  #heldTokens: Token[] = [];
  /** Decoded text not yet emitted because it may be the start of a stop text. */
  #heldText = "";
  #stopped = false;

  /** `contextTokens`: the prompt's last tokens, so the first generated word decodes correctly. */
  constructor(detokenize: Detokenize, rules: StopRules, contextTokens: readonly Token[]) {
    this.#detokenize = detokenize;
    this.#rules = rules;
    this.#committed = contextTokens.slice(-CONTEXT_TOKENS);
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Add one generated token; returns the text that may be emitted now and whether to stop. */
  push(token: Token): PushResult {
    if (this.#stopped) return { text: "", stop: true };
    this.#generated.push(token);
    if (this.#rules.tokens.has(token) || this.#endsWithStopSequence()) {
      // Special stop tokens decode to nothing; flush what was held as ordinary text.
      this.#stopped = true;
      return { text: this.#flushHeld(), stop: true };
    }
    this.#heldTokens.push(token);
    const decoded = this.#detokenize(this.#heldTokens, this.#committed.slice(-CONTEXT_TOKENS));
    if (decoded.endsWith("\uFFFD") && this.#heldTokens.length < MAX_HELD_TOKENS) return { text: "", stop: false };
    this.#commitHeldTokens();
    return this.#scanText(decoded);
  }

  /** Generation ended for another reason (EOG, max tokens, abort): everything held is text. */
  finish(): string {
    if (this.#stopped) return "";
    this.#stopped = true;
    return this.#flushHeld();
  }

  #flushHeld(): string {
    let text = this.#heldText;
    this.#heldText = "";
    if (this.#heldTokens.length > 0) {
      text += this.#detokenize(this.#heldTokens, this.#committed.slice(-CONTEXT_TOKENS));
      this.#commitHeldTokens();
    }
    return text;
  }

  #commitHeldTokens(): void {
    this.#committed.push(...this.#heldTokens);
    if (this.#committed.length > CONTEXT_TOKENS * 4) this.#committed.splice(0, this.#committed.length - CONTEXT_TOKENS);
    this.#heldTokens = [];
  }

  #scanText(decoded: string): PushResult {
    const text = this.#heldText + decoded;
    let cut = -1;
    for (const stop of this.#rules.texts) {
      const at = text.indexOf(stop);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.#stopped = true;
      this.#heldText = "";
      return { text: text.slice(0, cut), stop: true };
    }
    const keep = longestTriggerPrefixSuffix(text, this.#rules.texts);
    this.#heldText = text.slice(text.length - keep);
    return { text: text.slice(0, text.length - keep), stop: false };
  }

  #endsWithStopSequence(): boolean {
    const out = this.#generated;
    return this.#rules.tokenSequences.some(
      (sequence) =>
        sequence.length > 0 &&
        sequence.length <= out.length &&
        sequence.every((token, i) => out[out.length - sequence.length + i] === token),
    );
  }
}

/** Length of the longest suffix of `text` that is a proper prefix of one of `triggers`. */
export function longestTriggerPrefixSuffix(text: string, triggers: readonly string[]): number {
  let best = 0;
  for (const trigger of triggers) {
    const max = Math.min(trigger.length - 1, text.length);
    for (let n = max; n > best; n--) {
      if (text.endsWith(trigger.slice(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}
