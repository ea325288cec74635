/**
 * Whether an address or a Host names this machine's loopback, for every server Cloister keeps to
 * this machine: the proxy and the web page (on 127.0.0.1 and [::1], for the user's own apps and
 * browser) and a key broker serving a key released to the INSECURE simulator (`kbs serve` on any
 * 127.0.0.0/8 address, attestation/kbs). One rule serves them all: each refuses a web page whose
 * own name an attacker rebinds to 127.0.0.1 (DNS rebinding), which reaches them with its own name
 * in the Host header; such a request is answered 421 before any route runs, so that page cannot
 * read what they serve (the policy, the host URL, a challenge). A browser sends an address as Host
 * only when the page's own origin is that address, which no attacker's name can be: any address of
 * 127.0.0.0/8 is as safe as 127.0.0.1 (a server bound to 127.0.0.1 is not reached through 127.0.0.2
 * anyway), and the broker needs them all, as it may listen on any.
 */
import type { Context, Env, MiddlewareHandler } from "hono";
import { describeUntrusted } from "../attestation/untrusted-text.ts";

/** What isLoopbackHost accepts, for messages. */
export const LOOPBACK_NAMES = "127.0.0.0/8, [::1] or localhost";

/**
 * An address or name as a message shows it: an IPv6 address in brackets, as in a URL (`--listen [::]:
 * …` reads where `--listen :::` does not), anything else as given.
 */
export function shownHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** 127.0.0.0/8, ::1 or localhost (any case): an address or name only this machine reaches. */
export function isLoopbackAddress(address: string): boolean {
  const octets = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (octets !== null) return octets.slice(1).every((octet) => Number(octet) <= 255);
  return address === "::1" || address.toLowerCase() === "localhost";
}

/**
 * Whether a Host header (a name or address, with or without a port) is loopback: an address of
 * 127.0.0.0/8, localhost (any case), or [::1]. Brackets hold an IPv6 address only (`[localhost]` is
 * none).
 */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*))(?::\d{1,5})?$/.exec(host.trim());
  if (match === null) return false;
  return match[1] !== undefined ? match[1] === "::1" : isLoopbackAddress(match[2] as string);
}

/**
 * Hono middleware: a request whose Host is not a loopback name gets `refuse(c, message)` (the
 * server's own 421 response, and its log line if it keeps one) before any route runs. The message
 * names the names accepted, `why` the server keeps to them when given, and the Host found, as
 * untrusted text (describeUntrusted: bounded, no control characters).
 */
export function loopbackHostOnly<E extends Env = Env>(
  refuse: (c: Context<E>, message: string) => Response | Promise<Response>,
  why?: string,
): MiddlewareHandler<E> {
  const expected = `request Host: expected a loopback name (${LOOPBACK_NAMES}; any port)`;
  const prefix = why === undefined ? `${expected},` : `${expected}: ${why};`;
  return async (c, next) => {
    const host = c.req.header("host") ?? new URL(c.req.url).host;
    if (isLoopbackHost(host)) return next();
    return refuse(c, `${prefix} found ${describeUntrusted(host)}`);
  };
}
