/**
 * What `cloister chat` and the page of `cloister web` say when the tokens an answer may have that
 * they ask for (`--max-tokens`) are more than the verified enclave's manifest allows
 * (inference.maxTokens): the enclave cuts the request to its limit without a word, and an answer
 * stopped there would read as the model's own end. Platform-neutral (the page imports it).
 */
import type { VerifiedEnclave } from "../attestation/document.ts";

/** The verified manifest's inference.maxTokens (an integer: the manifest was checked against its schema), or null. */
export function manifestMaxTokens(enclave: VerifiedEnclave): number | null {
  const manifest = enclave.manifest.manifest as { inference?: { maxTokens?: unknown } } | null;
  const limit = manifest?.inference?.maxTokens;
  return typeof limit === "number" ? limit : null;
}

/**
 * The note for `asked` tokens an answer over `enclave`'s limit (`--max-tokens N: …`), or null within
 * it. `cloister chat` prints it as its other notes (`cloister: note: --max-tokens N: …`): not an error.
 */
export function maxTokensNote(asked: number | undefined, enclave: VerifiedEnclave): string | null {
  const limit = manifestMaxTokens(enclave);
  if (asked === undefined || limit === null || asked <= limit) return null;
  return `--max-tokens ${asked}: the enclave's manifest allows at most ${limit} tokens an answer (inference.maxTokens): answers stop there`;
}
