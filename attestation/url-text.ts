/**
 * How a URL given as configuration (a host, a key broker, a KDS cache) is shown in an error
 * message, which reaches logs: never its credentials, never its query or fragment (tokens live
 * there). Shared by the SDK, the enclave's options and the KDS client. Platform-neutral.
 */

/** Most characters of a URL that failed to parse that a message repeats. */
const URL_SHOWN_MAX_CHARS = 200;

/**
 * A URL that failed a check, as a message may show it. Input with an `@` anywhere is not shown at
 * all: what comes before it may be a password, and no pattern tells where a password ends in a
 * string that is not a URL (`/`, `?` or `#` in it, `http:\\u:p@…`, `http:/u:p@…`). Other input is
 * shown, at most its first URL_SHOWN_MAX_CHARS characters, quoted, cut at a `?` or `#`.
 */
export function describeUrlText(input: string): string {
  let value = input;
  const length = value.length;
  if (value.includes("@")) {
    return `a string of ${value.length} characters with a user/password-like part (…@), not shown`;
  }
  // A query or fragment may carry a token: only what comes before it is shown.
  const cut = value.search(/[?#]/);
  if (cut >= 0) value = `${value.slice(0, cut)}${value[cut]}… (the rest not shown)`;
  const chars = Array.from(value);
  return chars.length > URL_SHOWN_MAX_CHARS
    ? `${JSON.stringify(chars.slice(0, URL_SHOWN_MAX_CHARS).join(""))}… (${length} characters)`
    : JSON.stringify(value);
}
