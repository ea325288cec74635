/**
 * One HTTP request of an evidence provider (AMD KDS, Azure IMDS) with a deadline and a bound on
 * the answer: a provider boots the enclave, so a service that stalls or answers without end must
 * fail the boot with a reason rather than hang it or fill its memory.
 */
import { ResponseTooLargeError, readBoundedBytes } from "../../sealed/index.ts";

/** Why the request gave no answer, in words for the caller's message (`cause`: the error under it). */
export class FetchProblem extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FetchProblem";
  }
}

/**
 * The body of a 200 answer to `url`, whole within `timeoutMs` and at most `maxBytes`; else a
 * FetchProblem (unreachable, no answer in time, another status, too large, cut off).
 */
export async function fetchBounded(
  fetchFn: typeof fetch,
  url: string,
  init: RequestInit,
  timeoutMs: number,
  maxBytes: number,
): Promise<Uint8Array> {
  const timedOut = (error: unknown) => (error as Error | null)?.name === "TimeoutError";
  let response: Response;
  try {
    // No redirect is followed: KDS and IMDS do not redirect on these paths, and following one would
    // send the request (IMDS's `Metadata: true` header with it) to whatever host the answer names.
    response = await fetchFn(url, { ...init, redirect: "error", signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
    const why =
      typeof cause?.code === "string"
        ? cause.code
        : typeof cause?.message === "string"
          ? cause.message
          : (error as Error).message;
    throw new FetchProblem(timedOut(error) ? `no answer in ${timeoutMs} ms` : `unreachable (${why})`, { cause: error });
  }
  if (response.status !== 200) {
    await response.body?.cancel().catch(() => undefined);
    throw new FetchProblem(
      `expected status 200, found ${response.status}${response.status === 429 ? " (rate limited)" : ""}`,
    );
  }
  try {
    return await readBoundedBytes(response.body ?? [], maxBytes);
  } catch (error) {
    throw new FetchProblem(
      error instanceof ResponseTooLargeError
        ? `expected at most ${maxBytes} bytes, found more`
        : timedOut(error)
          ? `answer not whole within ${timeoutMs} ms`
          : "answer cut off",
      { cause: error },
    );
  }
}
