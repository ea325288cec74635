/**
 * The SDK's HTTP transport on Node.js: node:http / node:https on keep-alive agents. The body is
 * the response's own async iteration of socket chunks; leaving it early destroys the response,
 * aborting the request closes the socket.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { urlToHttpOptions } from "node:url";
import { readBoundedText, type Transport, type TransportRequest, type TransportResponse } from "./transport.ts";

/**
 * Longest silence on a connection, waiting for the answer's headers or between two chunks of its
 * body, before the request is given up (fetch's own defaults are the same 300 s). A streamed answer
 * is never silent that long: the enclave sends a frame at least for every token.
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 300_000;

/** A transport with its own keep-alive agents (the SDK's default shares one per process). */
export function nodeTransport(options: { idleTimeoutMs?: number } = {}): Transport {
  const agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  // A session asks a handful of URLs again and again: each is parsed once, not per request (about
  // 30 µs of the 0.2-0.25 ms from a sealed request's call to its write, its code cold after the wait
  // for the answer before).
  const targets = new Map<string, Target>();
  return (url, request) => {
    let target = targets.get(url);
    if (target === undefined) {
      const parsed = new URL(url);
      target = { https: parsed.protocol === "https:", options: urlToHttpOptions(parsed) };
      if (targets.size >= MAX_TARGETS) targets.clear();
      targets.set(url, target);
    }
    return send(agents, target, request, idleTimeoutMs);
  };
}

/** A URL as node:http takes it (protocol, host name, port, path, credentials), parsed once. */
type Target = { readonly https: boolean; readonly options: RequestOptions };

/** URLs kept parsed per transport: past it they are parsed again (a caller asking many URLs). */
const MAX_TARGETS = 16;

/** What a transport rejects with (before headers) or the body throws (after) on a silent host. */
export class HostTimeoutError extends Error {
  readonly code = "HOST_TIMEOUT";
  constructor(idleMs: number) {
    super(`no data from the host for ${idleMs} ms`);
    this.name = "HostTimeoutError";
  }
}

function send(
  agents: { http: HttpAgent; https: HttpsAgent },
  target: Target,
  init: TransportRequest,
  idleTimeoutMs: number,
): Promise<TransportResponse> {
  return new Promise((resolve, reject) => {
    const { signal } = init;
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const body = typeof init.body === "string" ? Buffer.from(init.body, "utf8") : init.body;
    const headers: Record<string, string> = { ...init.headers };
    if (body !== undefined) headers["content-length"] = String(body.byteLength);
    // Strict whatever node's own options say (--insecure-http-parser, in NODE_OPTIONS too): the host
    // is untrusted, and the lenient parser takes answers framed two ways (smuggling past a proxy).
    const options = { ...target.options, method: init.method, headers, insecureHTTPParser: false };
    const req = target.https
      ? httpsRequest({ ...options, agent: agents.https })
      : httpRequest({ ...options, agent: agents.http });
    /** What an abort ends the request (before the headers) or the response (after) with. */
    const abortReason = () => (signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
    const onAbort = () => req.destroy(abortReason());
    // Socket inactivity, before the headers and between body chunks alike. After the headers the
    // body's iteration reports it (node gives it only a generic "aborted" error of its own).
    const state: { timedOut: HostTimeoutError | null } = { timedOut: null };
    req.setTimeout(idleTimeoutMs, () => {
      state.timedOut = new HostTimeoutError(idleTimeoutMs);
      req.destroy(state.timedOut);
    });
    signal?.addEventListener("abort", onAbort, { once: true });
    let answered = false;
    req.on("error", (error) => {
      if (answered) return; // the response's own iteration reports it
      signal?.removeEventListener("abort", onAbort);
      reject(error);
    });
    req.on("response", (res: IncomingMessage) => {
      answered = true;
      // From here the response is what an abort ends. Destroying the request instead would destroy
      // its socket with the abort's reason even after the response had been read to its end and the
      // socket handed back to the agent, where nothing listens for that error (the process crashed).
      signal?.removeEventListener("abort", onAbort);
      const onAbortBody = () => res.destroy(abortReason());
      signal?.addEventListener("abort", onAbortBody, { once: true });
      res.once("close", () => signal?.removeEventListener("abort", onAbortBody));
      resolve(response(res, state));
    });
    req.end(body);
  });
}

function response(res: IncomingMessage, state: { readonly timedOut: HostTimeoutError | null }): TransportResponse {
  return {
    status: res.statusCode ?? 0,
    header(name) {
      const value = res.headers[name.toLowerCase()];
      if (value === undefined) return null;
      return Array.isArray(value) ? value.join(", ") : value;
    },
    body: chunks(res, state),
    text(maxBytes) {
      return readBoundedText(chunks(res, state), maxBytes);
    },
  };
}

async function* chunks(
  res: IncomingMessage,
  state: { readonly timedOut: HostTimeoutError | null },
): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of res as AsyncIterable<Buffer>) yield chunk;
  } catch (error) {
    throw state.timedOut ?? error;
  }
  // A connection cut mid-body ends the iteration quietly on some Node versions: say so.
  if (!res.complete) throw state.timedOut ?? new Error("response body was cut before its end");
}
