/**
 * For the servers Cloister runs on 127.0.0.1 for the user's own apps and browser (the proxy, the
 * web page): a request must name a loopback host. A web page whose own name an attacker rebinds to
 * 127.0.0.1 (DNS rebinding) reaches these servers with its own name in the Host header; such a
 * request is answered 421 before any route runs, so that page cannot read the policy, the host URL
 * or anything else they serve.
 */
import type { Context, MiddlewareHandler } from "hono";
import { describeUntrusted } from "../attestation/untrusted-text.ts";

const LOOPBACK_NAMES = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** True for `127.0.0.1`, `localhost` or `[::1]`, with or without a port. */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const match = /^(\[[^\]]*\]|[^:]*)(?::(\d{1,5}))?$/.exec(host.trim().toLowerCase());
  return match !== null && LOOPBACK_NAMES.has(match[1] as string);
}

/**
 * Hono middleware: a request whose Host is not a loopback name gets `refuse(c, message)` (the
 * server's own 421 response) before any route runs. The message names the names accepted and the
 * Host found, as untrusted text (describeUntrusted: bounded, no control characters); it goes to the
 * caller only, never into a log line.
 */
export function loopbackHostOnly(
  refuse: (c: Context, message: string) => Response | Promise<Response>,
): MiddlewareHandler {
  return async (c, next) => {
    const host = c.req.header("host") ?? new URL(c.req.url).host;
    if (isLoopbackHost(host)) return next();
    return refuse(
      c,
      `request Host: expected 127.0.0.1, localhost or [::1] (any port), found ${describeUntrusted(host)}`,
    );
  };
}
