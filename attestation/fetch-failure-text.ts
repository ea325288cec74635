/**
 * Why a fetch failed, in words an error message or a log line may carry: never fetch's own text
 * when it may quote a URL, which may hold a user and password, or a token in its query. Shared by
 * the enclave's boot requests (providers/bounded-fetch.ts) and the host's audit collector.
 * Platform-neutral. A deadline is not told apart here: each caller words its own.
 */

/**
 * Text that may quote a URL: an `@` anywhere (node quotes `http:/u:p@…` as written, with no `://`;
 * no pattern tells where a password ends in text that is not a URL), a scheme followed by a slash
 * or backslash (`http://`, `http:/`, `http:\\`), or a `?` or `#` (a query or fragment, where tokens
 * live).
 */
const MAY_QUOTE_URL = /@|[a-z][a-z\d+.-]*:[/\\]|[?#]/i;

/**
 * The code under `error` (`ECONNREFUSED`, `UND_ERR_SOCKET`), else the message under it, else its
 * own message, each only when it may not quote a URL; else only the error's name.
 */
export function describeFetchFailure(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  const own = error as { name?: unknown; message?: unknown } | null;
  for (const text of [cause?.code, cause?.message, own?.message]) {
    if (shown(text)) return text;
  }
  return `${shown(own?.name) ? own.name : "Error"}, its message not shown (it may quote a URL)`;
}

/** Whether `text` is words a message may repeat: a string, not empty, that may not quote a URL. */
function shown(text: unknown): text is string {
  return typeof text === "string" && text !== "" && !MAY_QUOTE_URL.test(text);
}
