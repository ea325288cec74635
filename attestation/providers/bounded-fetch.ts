/**
 * One HTTP request made at boot (AMD KDS, Azure IMDS, the key broker) with a deadline and a bound
 * on the answer, following no redirect: the enclave boots on these answers, so a service that
 * stalls or answers without end must fail the boot with a reason rather than hang it or fill its
 * memory, and one that redirects must not steer the request (its headers and body) elsewhere.
 */
import { ResponseTooLargeError, readBoundedBytes } from "../../sealed/index.ts";
import { describeFetchFailure } from "../fetch-failure-text.ts";
import { describeUrlText } from "../url-text.ts";

/** Why the request gave no usable answer, in words for the caller's message (`cause`: the error under it, shownCause). */
export class FetchProblem extends Error {
  constructor(
    message: string,
    /** The status of the answer this is about, or null when no answer came (unreachable, no answer in time). */
    readonly status: number | null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "FetchProblem";
  }
}

/** An answer's status and headers; its body is read by `read`, or dropped by `discard`. */
export interface BoundedAnswer {
  readonly status: number;
  readonly headers: Headers;
  /** The whole body, at most the bound, before the deadline; else a FetchProblem (too large, cut off, not whole in time). */
  read(): Promise<Uint8Array>;
  /** Drops the body unread (the connection closes). */
  discard(): Promise<void>;
}

/**
 * Whether `error` is `signal`'s stop, not a failure of its own: the signal aborted and `error` is its
 * reason, or an AbortError caused by it (as node's streams reject). Here, so that attestation/ (which
 * imports nothing of enclave/) and the enclave's boot (enclave/stop.ts) judge a stop by one rule.
 */
export function stoppedBy(error: unknown, signal: AbortSignal | null | undefined): boolean {
  if (signal?.aborted !== true) return false;
  return (
    error === signal.reason || (error instanceof Error && error.name === "AbortError" && error.cause === signal.reason)
  );
}

/** The statuses fetch would follow: here each one is refused instead. */
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

const timedOut = (error: unknown) => (error as Error | null)?.name === "TimeoutError";
/** Codes of a connection that was made, then closed or reset by the other end before its answer. */
const CLOSED_BEFORE_ANSWER = new Set(["UND_ERR_SOCKET", "ECONNRESET", "EPIPE"]);

/** A name or code such as `TypeError` or `ECONNREFUSED`: nothing that may quote a URL. */
const isIdentifier = (value: unknown): value is string =>
  typeof value === "string" && /^[A-Za-z_]\w{0,63}$/.test(value);

/**
 * What of fetch's failure is kept as a FetchProblem's cause: its name, its code (its own or its
 * cause's: `ECONNREFUSED`) and `why` (describeFetchFailure's words), not fetch's error itself,
 * whose message and stack may quote the URL with its credentials (node's `http:/u:p@…`): a caller
 * that logs the error object whole (util.inspect) would print them.
 */
function shownCause(error: unknown, why: string): Error {
  const failed = error as { name?: unknown; code?: unknown; cause?: { code?: unknown } } | null;
  const shown = new Error(why);
  shown.name = isIdentifier(failed?.name) ? failed.name : "Error";
  const code = failed?.code ?? failed?.cause?.code;
  if (isIdentifier(code)) Object.assign(shown, { code });
  // Its stack names only this function: the first line is made again with the name kept.
  shown.stack = `${shown.name}: ${why}`;
  return shown;
}

/**
 * Sends the request and returns the answer of any status but a redirect, whole within `timeoutMs`
 * (one deadline for the answer and its body) and at most `maxBytes` of body; else a FetchProblem
 * (unreachable, no answer in time, a redirect, and from `read`: too large, cut off). The messages
 * never repeat `url` (it may carry a token): callers name what they asked.
 */
export async function openBounded(
  fetchFn: typeof fetch,
  url: string,
  init: RequestInit,
  timeoutMs: number,
  maxBytes: number,
): Promise<BoundedAnswer> {
  let response: Response;
  try {
    // No redirect is followed: following one would send the request (IMDS's `Metadata: true`
    // header, the broker's attested answer) to whatever host the answer names. "manual" rather
    // than "error" so the refusal can say it was a redirect, and to where.
    // The caller's own signal (the enclave's boot stopped by SIGTERM) ends it too, the caller then
    // rethrowing its reason rather than this FetchProblem.
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = init.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
    response = await fetchFn(url, { ...init, redirect: "manual", signal });
  } catch (error) {
    // fetch's own message may quote the URL (an unparsable one, one with credentials): then only
    // the error's name is shown.
    const why = describeFetchFailure(error);
    const problem = timedOut(error)
      ? `no answer in ${timeoutMs} ms`
      : CLOSED_BEFORE_ANSWER.has(why)
        ? `the connection closed before an answer (${why})`
        : `unreachable (${why})`;
    // The caller's stop is kept as it is: the caller knows its reason (stoppedBy compares it).
    throw new FetchProblem(problem, null, { cause: stoppedBy(error, init.signal) ? error : shownCause(error, why) });
  }
  const discard = async () => {
    await response.body?.cancel().catch(() => undefined);
  };
  if (REDIRECT_STATUSES.has(response.status) || response.type === "opaqueredirect") {
    await discard();
    const location = response.headers.get("location");
    throw new FetchProblem(
      `expected no redirect, found HTTP ${response.status} to ${location === null ? "no location" : describeUrlText(location)} (not followed)`,
      response.status,
    );
  }
  return {
    status: response.status,
    headers: response.headers,
    discard,
    read: async () => {
      try {
        return await readBoundedBytes(response.body ?? [], maxBytes);
      } catch (error) {
        throw new FetchProblem(
          error instanceof ResponseTooLargeError
            ? `expected at most ${maxBytes} bytes, found more`
            : timedOut(error)
              ? `answer not whole within ${timeoutMs} ms`
              : "answer cut off",
          response.status,
          { cause: error },
        );
      }
    },
  };
}

/**
 * The body of a 200 answer to `url`, whole within `timeoutMs` and at most `maxBytes`; else a
 * FetchProblem (unreachable, no answer in time, a redirect, another status, too large, cut off).
 */
export async function fetchBounded(
  fetchFn: typeof fetch,
  url: string,
  init: RequestInit,
  timeoutMs: number,
  maxBytes: number,
): Promise<Uint8Array> {
  const answer = await openBounded(fetchFn, url, init, timeoutMs, maxBytes);
  if (answer.status !== 200) {
    await answer.discard();
    throw new FetchProblem(
      `expected status 200, found ${answer.status}${answer.status === 429 ? " (rate limited)" : ""}`,
      answer.status,
    );
  }
  return answer.read();
}
