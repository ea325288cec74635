/**
 * Cross-origin access for browser clients (client/browser.ts): a page served from an origin the
 * operator lists may call the host's API; no origin is allowed by default. CORS protects nothing
 * on the host side (the API key still decides who may call); it only lets browsers read the
 * answers. Exact origins only, no wildcard: each listed origin is a site whose code users trust
 * with their prompts, so it is named.
 */
import { parseCorsOrigin } from "../client/cors-origin.ts";

/** Request headers the SDK sends (Content-Type is not safelisted for application/octet-stream). */
const ALLOWED_REQUEST_HEADERS = "authorization, content-type";
/** Response headers the SDK reads beyond the CORS-safelisted ones. */
const EXPOSED_RESPONSE_HEADERS = "retry-after";
/** How long a browser may cache a preflight answer, in seconds. */
const PREFLIGHT_MAX_AGE_SECONDS = 600;

export class CorsPolicy {
  readonly #origins: ReadonlySet<string>;

  constructor(origins: readonly string[]) {
    this.#origins = new Set(origins.map(parseCorsOrigin));
  }

  /** True when some origin is listed (responses then vary by Origin). */
  get enabled(): boolean {
    return this.#origins.size > 0;
  }

  allows(origin: string | undefined): boolean {
    return origin !== undefined && this.#origins.has(origin);
  }

  /** Headers for an actual response to a listed origin. */
  responseHeaders(origin: string): Record<string, string> {
    return { "access-control-allow-origin": origin, "access-control-expose-headers": EXPOSED_RESPONSE_HEADERS };
  }

  /** Headers for the answer to a listed origin's preflight request. */
  preflightHeaders(origin: string): Record<string, string> {
    return {
      "access-control-allow-origin": origin,
      "access-control-allow-methods": "GET, POST",
      "access-control-allow-headers": ALLOWED_REQUEST_HEADERS,
      "access-control-max-age": String(PREFLIGHT_MAX_AGE_SECONDS),
      vary: "Origin",
    };
  }
}
