/**
 * How a value from unverified input (a host-delivered document, collateral, token header, a key
 * broker's answer, a sealed model's header, a key file) is shown in an error message. The message
 * reaches the CLI, the proxy's error body, the browser page and logs, so the text is cut short,
 * stripped of control and format characters (line breaks, terminal escapes, bidirectional overrides
 * such as U+202E, which JSON.stringify leaves in), as the SDK does with a host's error message, and
 * JSON-quoted, so a quote inside it cannot end the shown value early. The one cleaner for such
 * messages: platform-neutral and dependency-free (the browser bundle takes it).
 */

/**
 * Control, format and line/paragraph separator characters: what a terminal may act on (escapes, C1
 * controls such as U+009B), or shows as nothing while it changes what is shown (U+202E). The body of
 * a character class (`[${INVISIBLE_CLASS}]`, flag u): the one definition, INVISIBLE's here and
 * client/cli/terminal-text.ts's for a line of a message.
 */
export const INVISIBLE_CLASS = "\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}";
/** A character of INVISIBLE_CLASS. */
const INVISIBLE = new RegExp(`[${INVISIBLE_CLASS}]`, "gu");
/** INVISIBLE without U+0000 to U+001F (stringifyJsonVisibly). */
const INVISIBLE_IN_JSON = /[\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}]/gu;

/** Most characters of an untrusted string that a message repeats. */
export const UNTRUSTED_SHOWN_MAX_CHARS = 64;

/**
 * `value` as a message may show it: a string quoted, without control or format characters, cut to
 * UNTRUSTED_SHOWN_MAX_CHARS characters (its full length then named); a number, boolean or null as
 * is; anything else by its kind and size only.
 */
export function describeUntrusted(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null || typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value))
    return value.length === 0 ? "an empty array" : `an array of ${value.length} item${value.length === 1 ? "" : "s"}`;
  if (typeof value !== "string") return typeof value === "object" ? "an object" : `a value of type ${typeof value}`;
  const chars = Array.from(value);
  const cleaned = value.replace(INVISIBLE, "\uFFFD");
  const shown = Array.from(cleaned);
  if (shown.length <= UNTRUSTED_SHOWN_MAX_CHARS) return JSON.stringify(cleaned);
  return `${JSON.stringify(shown.slice(0, UNTRUSTED_SHOWN_MAX_CHARS).join(""))}… (${chars.length} characters)`;
}

/**
 * `value` as JSON text (JSON.stringify's, indented by `indent` spaces) for a terminal: each control,
 * format or separator character (INVISIBLE) written as a \uXXXX escape. JSON.stringify escapes
 * U+0000 to U+001F only, and leaves U+007F to U+009F, bidirectional overrides and other invisible
 * characters of untrusted text (a collateral file's name) in, for a terminal to act on or to show
 * the text as other text. The same JSON value: a reader gets every character back.
 */
export function stringifyJsonVisibly(value: object, indent?: number): string {
  // INVISIBLE but U+0000 to U+001F: JSON.stringify has escaped those in strings, and outside them
  // writes ASCII only, its indentation's line breaks among them, which stay.
  return JSON.stringify(value, null, indent).replace(INVISIBLE_IN_JSON, (char) =>
    Array.from({ length: char.length }, (_, i) => `\\u${char.charCodeAt(i).toString(16).padStart(4, "0")}`).join(""),
  );
}
