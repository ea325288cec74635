/**
 * Content types the enclave's and the host's POST routes must refuse (415 CONTENT_TYPE_UNSUPPORTED),
 * and how each refusal names what it found: both servers word it alike (enclave/http.ts
 * contentTypeRefusal), so their tests share the cases.
 */

/**
 * For a route that takes `type`: none at all, what a web page may send without a CORS preflight
 * (the "simple" types), the other route's type, a near miss, and a header that is not a media type
 * (not echoed: it could be anything).
 */
export function wrongContentTypes(type: string): (string | undefined)[] {
  return [
    undefined,
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    type === "application/json" ? "application/octet-stream" : "application/json",
    "application/jsonx",
    "sk-live-0123456789abcdefSECRET",
  ];
}

/** The refusal's message for `found` on `route`: the media type alone, quoted; a header that is none, by its length. */
export function contentTypeRefusalMessage(route: string, type: string, found: string | undefined): string {
  const mediaType = found?.split(";")[0]?.trim();
  const shown =
    mediaType === undefined
      ? "none"
      : mediaType.startsWith("sk-")
        ? `a header of ${found?.length} characters`
        : JSON.stringify(mediaType);
  return `${route}: expected content-type ${type}, found ${shown}`;
}
