/**
 * The limits of a sealed request's body (the JSON inside the envelope): what the enclave accepts
 * for each field of a chat or complete request. The client checks a request against them before
 * sealing it (client/sdk.ts), so a bad argument is refused locally instead of after a round trip
 * as REQUEST_INVALID; the CLI and the proxy cap their options with them.
 *
 * The enclave's request schema (enclave/service.ts) applies the same values;
 * test/client/request-limits.test.ts checks the enclave accepts each limit and refuses one step past
 * it, so the two cannot drift apart unnoticed. Data only, no imports: the browser bundle takes it.
 */

/** The roles a chat message may have. */
export const CHAT_ROLES = ["system", "user", "assistant"] as const;

export const REQUEST_LIMITS = {
  /** Most characters (UTF-16 code units) of a complete request's prompt or of one chat message's content. */
  maxTextChars: 1_000_000,
  /** Messages in a chat request: at least one, at most this many. */
  maxMessages: 256,
  /** maxTokens: an integer in min..max (the manifest's own maximum caps it further, silently). */
  maxTokens: { min: 1, max: 1_000_000 },
  /** temperature: a number in min..max. */
  temperature: { min: 0, max: 2 },
  /** topP: a number above `above`, at most `max`. */
  topP: { above: 0, max: 1 },
  /** seed: an integer in min..max. */
  seed: { min: 0, max: 0xffff_ffff },
  /** stop: at most `maxCount` strings of minChars..maxChars characters each. */
  stop: { maxCount: 8, minChars: 1, maxChars: 64 },
} as const;
