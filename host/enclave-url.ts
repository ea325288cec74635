/**
 * What an enclave URL given to the host may be: checked by every constructor that is given one
 * (checkEnclaveUrl: EnclavePool's, which every host builds, and AuditCollector's), so a library
 * caller's own pool or collector is checked too, and by `cloister host` for its --enclave-url before
 * anything starts (host/run.ts, enclaveUrlFault). What is wrong is said without the URL's text
 * (describeUrlText).
 */
import { describeUrlText } from "../attestation/url-text.ts";

/**
 * What is wrong with an enclave URL, as an error's words after its field's name, or null: a space or
 * control character in its text, not an http: URL (the enclave's internal server), one with a
 * user name or password, or one with a query or fragment. The enclave's server takes no credentials:
 * sent as Basic authorization to every member, they reached only its logs.
 */
export function enclaveUrlFault(url: string): string | null {
  // Checked as the text is used: the pool keeps it as written and the host appends its routes, where
  // the URL parser drops a space or control character at either end (a tab or newline anywhere).
  // "http://127.0.0.1:1 " passed, and "http://127.0.0.1:1 /sealed" did not parse (an "Invalid URL"
  // naming nothing); "http://127.0.0.1:1/\u0001" was taken, its requests sent to /%01/sealed.
  if (/[ \p{Cc}]/u.test(url)) {
    return `expected no space or control character (the URL parser drops them, the host's requests would not), found ${describeUrlText(url)}`;
  }
  // Not new URL's own TypeError for one that does not parse: it keeps the URL (`input`), a password too.
  const parsed = URL.canParse(url) ? new URL(url) : null;
  if (parsed === null || parsed.protocol !== "http:") {
    return `expected an http: URL (the enclave's internal server), found ${describeUrlText(url)}`;
  }
  if (parsed.username !== "" || parsed.password !== "") {
    return `expected no user name or password, found ${describeUrlText(url)} (the enclave's server takes none)`;
  }
  // The text, not parsed.search and .hash: those are "" for a bare "?" or "#". The host appends its
  // routes to the text, so "http://127.0.0.1:1?x" sent "/sealed" inside the query (to "/") and
  // "…#f" sent nothing of it: the member failed every read but was taken at start. A "?" after a
  // "#" is the fragment's; which comes first is named, the rest cut (describeUrlText).
  const mark = url.search(/[?#]/);
  if (mark >= 0) {
    const what = url[mark] === "?" ? "a query" : "a fragment";
    return `expected no query or fragment (the host appends its routes to the URL), found ${what} in ${describeUrlText(url)}`;
  }
  return null;
}

/**
 * Two entries of one list that name the same enclave, as an error's words after its field's name, or
 * null (each URL checked first: enclaveUrlFault). Listed twice, one enclave would be two members: the
 * host routes a key id to the first member that has it, so with that entry marked unreachable and the
 * other ready, its sealed requests would be refused (WRONG_ENCLAVE_KEY) although it serves. Compared
 * as URLs, as the host's requests reach them: the scheme's and host's case, the default port (80), dot
 * segments and trailing slashes aside (the pool strips those: its routes are appended). Two names for
 * one address (127.0.0.1 and localhost) are not detected. The URLs are shown: they have no user name,
 * password, query or fragment (enclaveUrlFault).
 */
export function enclaveUrlRepeat(urls: readonly string[]): string | null {
  const first = new Map<string, number>();
  for (const [index, url] of urls.entries()) {
    const key = new URL(url).href.replace(/\/+$/, "");
    const earlier = first.get(key);
    if (earlier !== undefined) {
      const texts = `${describeUrlText(urls[earlier] as string)} and ${describeUrlText(url)}`;
      return `expected each enclave listed once, found one enclave at positions ${earlier} and ${index} (from 0): ${texts}, the same compared as URLs (case, default port, dot segments and trailing slashes aside)`;
    }
    first.set(key, index);
  }
  return null;
}

/** Refuses an enclave URL the host cannot take: a RangeError naming `enclaveUrl` (enclaveUrlFault). */
export function checkEnclaveUrl(url: string): void {
  const fault = enclaveUrlFault(url);
  if (fault !== null) throw new RangeError(`enclaveUrl: ${fault}`);
}
