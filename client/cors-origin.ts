/**
 * What a `--cors-origin` value may be (`cloister host`'s and `cloister up`'s): the origin of a page
 * allowed to call the host's API from a browser (host/cors.ts). Here, not in host/, so that `up`
 * checks its values before it starts anything without the client importing the host's code; the
 * host imports it from here. Pure: no state, nothing but the URL parser. Platform-neutral.
 */
import { describeUrlText } from "../attestation/url-text.ts";

/**
 * Checks one `--cors-origin` value: a serialized origin, `scheme://host[:port]` with scheme http
 * or https and nothing after it (no path, not even "/"), exactly as browsers send it in `Origin`.
 * A refused value is shown as describeUrlText shows URLs (never a user:password part or a query).
 */
export function parseCorsOrigin(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new RangeError(`cors origin: expected scheme://host[:port], found ${describeUrlText(value)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new RangeError(`cors origin: expected http: or https:, found "${url.protocol}" in ${describeUrlText(value)}`);
  }
  if (url.origin !== value) {
    throw new RangeError(
      `cors origin: expected the bare origin "${url.origin}" (no path, query or trailing slash), found ${describeUrlText(value)}`,
    );
  }
  return url.origin;
}
