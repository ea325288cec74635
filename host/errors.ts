/**
 * Host errors and their one mapping to HTTP. Responses carry a stable `code` and a short message;
 * they never echo request bodies, API keys or anything the enclave sent.
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export class HostError extends Error {
  readonly code: string;
  readonly status: ContentfulStatusCode;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: string,
    status: ContentfulStatusCode,
    message: string,
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "HostError";
    this.code = code;
    this.status = status;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

export const unauthenticated = () =>
  new HostError("UNAUTHENTICATED", 401, "missing or unknown API key (Authorization: Bearer <key>)");
export const forbidden = (permission: string) =>
  new HostError("FORBIDDEN", 403, `API key lacks the "${permission}" permission`);
export const rateLimited = (retryAfterSeconds: number) =>
  new HostError("RATE_LIMITED", 429, "rate limit for this API key exceeded", { retryAfterSeconds });
export const hostBusy = (retryAfterSeconds: number) =>
  new HostError("HOST_BUSY", 503, "too many requests in flight; retry later", { retryAfterSeconds });
export const bodyTooLarge = (limit: number, found: number | string) =>
  new HostError("BODY_TOO_LARGE", 413, `request body: expected at most ${limit} bytes, found ${found}`);

/** Writes `error` as the JSON error response. Unknown errors become a generic 500. */
export function errorResponse(c: Context, error: unknown): Response {
  if (error instanceof HostError) {
    if (error.retryAfterSeconds !== undefined) c.header("Retry-After", String(error.retryAfterSeconds));
    // The rest of an oversize body is never read, nor a late one waited for (host/app.ts
    // readRequestBody), nor any of a body of the wrong type, so this connection cannot carry another
    // request: say so (node then closes it once the answer is written), or the client reuses it and
    // its next request fails on a socket the server drops.
    if (error.status === 413 || error.status === 408 || error.status === 415) c.header("Connection", "close");
    // RFC 9110 §11.6.1: a 401 names the scheme it wants (RFC 6750 §3: Bearer).
    if (error.status === 401) c.header("WWW-Authenticate", 'Bearer realm="cloister"');
    return c.json({ error: { code: error.code, message: error.message } }, error.status);
  }
  return c.json({ error: { code: "INTERNAL", message: "internal error in the host" } }, 500);
}
