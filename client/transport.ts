import { type ByteSource, ResponseTooLargeError, readBoundedBytes } from "../sealed/index.ts";

export { ResponseTooLargeError };

/**
 * How the SDK talks HTTP to the host: one small interface with two implementations, `fetch` (any
 * runtime, and what callers inject) and node:http (client/node-transport.ts, the default on
 * Node.js: a keep-alive agent and the socket's own chunks, without fetch's per-request web-stream
 * machinery, which costs about half a millisecond per request on loopback).
 */

export interface TransportRequest {
  readonly method: "GET" | "POST";
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: Uint8Array | string;
  readonly signal?: AbortSignal;
}

export interface TransportResponse {
  readonly status: number;
  /** A response header, or null. */
  header(name: string): string | null;
  /** The body as it arrives. A connection cut before the end makes the reading throw. */
  readonly body: ByteSource;
  /**
   * The whole body as text, or a ResponseTooLargeError (the rest unread, the connection closed)
   * once it passes `maxBytes`: the host is not trusted to send a bounded body.
   */
  text(maxBytes: number): Promise<string>;
}

/** Reads `body` as UTF-8 text, at most `maxBytes` of it (readBoundedBytes). */
export async function readBoundedText(body: ByteSource, maxBytes: number): Promise<string> {
  return new TextDecoder().decode(await readBoundedBytes(body, maxBytes));
}

/**
 * Sends one request. Rejects only when no response came (unreachable, aborted); any HTTP status
 * resolves.
 */
export type Transport = (url: string, request: TransportRequest) => Promise<TransportResponse>;

/** A transport over a fetch implementation. */
export function fetchTransport(doFetch: typeof fetch): Transport {
  return async (url, request) => {
    const response = await doFetch(url, {
      method: request.method,
      // Never followed: the SDK refuses a redirect (HOST_REDIRECT) rather than send its API key and
      // request wherever the host points. A browser shows it as status 0 ("opaqueredirect").
      redirect: "manual",
      headers: request.headers,
      ...(request.body === undefined ? {} : { body: request.body as NonNullable<RequestInit["body"]> }),
      ...(request.signal === undefined ? {} : { signal: request.signal }),
    });
    return {
      status: response.status,
      header: (name) => response.headers.get(name),
      body: response.body ?? [],
      text: (maxBytes) => readBoundedText(response.body ?? [], maxBytes),
    };
  };
}

/**
 * The transport used when the caller injects none: node:http on Node.js, fetch elsewhere. One per
 * process, like fetch's own connection pool, so sessions and later connect() calls reuse its
 * keep-alive connections. The node module is loaded only on Node, so other runtimes never see
 * node:http.
 */
export function defaultTransport(): Promise<Transport> {
  if (shared === undefined) {
    const made = makeDefaultTransport();
    shared = made;
    // A failed load is not kept: the next connect() tries again.
    made.catch(() => {
      if (shared === made) shared = undefined;
    });
  }
  return shared;
}

let shared: Promise<Transport> | undefined;

async function makeDefaultTransport(): Promise<Transport> {
  const onNode = typeof process !== "undefined" && typeof process.versions?.node === "string";
  if (!onNode) return fetchTransport(globalThis.fetch.bind(globalThis));
  const { nodeTransport } = await import("./node-transport.ts");
  return nodeTransport();
}
