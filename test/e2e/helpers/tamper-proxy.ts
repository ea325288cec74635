/**
 * An adversarial host in a box: an HTTP proxy on 127.0.0.1 (random port) between the client and
 * the real host. It logs every request and response body that passes, and per test it can rewrite
 * a request body before the host sees it, rewrite a response body before the client sees it, or
 * cut the connection part-way through a response. Responses are buffered whole so that rewrites
 * work on complete frames (tests/protocol only: a real host streams).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ProxiedExchange {
  readonly method: string;
  /** Path without the query, e.g. "/v1/attestation/challenge" (what rules and `observed` match). */
  readonly path: string;
  /** Path and query as sent, e.g. "/v1/attestation/challenge?enclave=…" (forwarded unless a rule's `forwardUrl`). */
  readonly url: string;
  /** The body the client sent (before any rewrite). */
  readonly clientBody: Uint8Array;
  /** The body forwarded to the host (after any rewrite). */
  readonly hostBody: Uint8Array;
  /** The host's status and body (before any rewrite); null when the host could not be reached. */
  status: number | null;
  hostResponse: Uint8Array | null;
}

export interface TamperRule {
  readonly method: string;
  readonly path: string;
  /** How many matching requests this rule applies to (default: all until cleared). */
  readonly times?: number;
  /** Rewrites the path and query before the request goes to the host (a host routing as it likes). */
  readonly forwardUrl?: (url: string) => string;
  /** Rewrites the request body before it goes to the host. */
  readonly request?: (body: Uint8Array) => Uint8Array;
  /** Rewrites the host's response body before it goes to the client. */
  readonly response?: (body: Uint8Array) => Uint8Array;
  /** Sends only this many bytes of the (rewritten) response body, then destroys the connection. */
  readonly cutAfterBytes?: number;
}

export interface TamperProxy {
  readonly url: string;
  readonly exchanges: readonly ProxiedExchange[];
  /** Exchanges of one method and path. */
  observed(method: string, path: string): ProxiedExchange[];
  /** Adds a rule; rules are tried in the order added, the first that matches (and has uses left) applies. */
  tamper(rule: TamperRule): void;
  /** Forgets every rule and the exchange log. */
  reset(): void;
  close(): Promise<void>;
}

const FORWARDED_REQUEST_HEADERS = ["authorization", "content-type"];
const FORWARDED_RESPONSE_HEADERS = ["content-type", "retry-after"];

async function readAll(request: IncomingMessage): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

export async function startTamperProxy(target: string): Promise<TamperProxy> {
  const base = target.replace(/\/+$/, "");
  const exchanges: ProxiedExchange[] = [];
  let rules: { rule: TamperRule; left: number }[] = [];

  const take = (method: string, path: string): TamperRule | undefined => {
    const entry = rules.find((r) => r.rule.method === method && r.rule.path === path && r.left > 0);
    if (entry === undefined) return undefined;
    entry.left -= 1;
    return entry.rule;
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const method = request.method ?? "GET";
    const url = request.url ?? "/";
    const path = url.split("?")[0] as string;
    const clientBody = await readAll(request);
    const rule = take(method, path);
    const hostBody = rule?.request === undefined ? clientBody : rule.request(clientBody);
    const exchange: ProxiedExchange = { method, path, url, clientBody, hostBody, status: null, hostResponse: null };
    exchanges.push(exchange);

    const headers: Record<string, string> = {};
    for (const name of FORWARDED_REQUEST_HEADERS) {
      const value = request.headers[name];
      if (typeof value === "string") headers[name] = value;
    }
    let upstream: Response;
    try {
      upstream = await fetch(`${base}${rule?.forwardUrl === undefined ? url : rule.forwardUrl(url)}`, {
        method,
        headers,
        ...(method === "GET" || method === "HEAD" ? {} : { body: hostBody as Uint8Array<ArrayBuffer> }),
      });
    } catch {
      response.writeHead(502, { "content-type": "application/json" });
      response.end(
        JSON.stringify({ error: { code: "PROXY_UPSTREAM_FAILED", message: "tamper proxy: host unreachable" } }),
      );
      return;
    }
    const hostResponse = new Uint8Array(await upstream.arrayBuffer());
    exchange.status = upstream.status;
    exchange.hostResponse = hostResponse;
    const out = rule?.response === undefined ? hostResponse : rule.response(hostResponse);
    const outHeaders: Record<string, string> = {};
    for (const name of FORWARDED_RESPONSE_HEADERS) {
      const value = upstream.headers.get(name);
      if (value !== null) outHeaders[name] = value;
    }
    if (rule?.cutAfterBytes !== undefined) {
      // Chunked, so the client cannot tell the cut from the length; then the socket goes away.
      response.writeHead(upstream.status, outHeaders);
      response.write(out.subarray(0, rule.cutAfterBytes), () => {
        setTimeout(() => response.destroy(), 20);
      });
      return;
    }
    outHeaders["content-length"] = String(out.length);
    response.writeHead(upstream.status, outHeaders);
    response.end(out);
  };

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500, { "content-type": "text/plain" });
      response.end(`tamper proxy failed: ${(error as Error).message}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    exchanges,
    observed: (method, path) => exchanges.filter((e) => e.method === method && e.path === path),
    tamper(rule) {
      rules.push({ rule, left: rule.times ?? Number.POSITIVE_INFINITY });
    },
    reset() {
      rules = [];
      exchanges.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// ---- Whole-frame surgery on a response body (docs/protocol.md "Response frames") ----

/** Splits a response body into whole wire frames (u32 BE length ‖ seq ‖ MAC ‖ ciphertext each). */
export function splitFrames(body: Uint8Array): Uint8Array[] {
  const frames: Uint8Array[] = [];
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let offset = 0;
  while (offset < body.length) {
    if (offset + 4 > body.length) throw new Error(`splitFrames: ${body.length - offset} stray bytes at the end`);
    const length = view.getUint32(offset);
    const end = offset + 4 + length;
    if (end > body.length) throw new Error(`splitFrames: frame at ${offset} runs past the end`);
    frames.push(body.slice(offset, end));
    offset = end;
  }
  return frames;
}

export function joinFrames(frames: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(frames));
}

/** The clear seq of a wire frame. */
export function frameSeq(frame: Uint8Array): number {
  return Number(new DataView(frame.buffer, frame.byteOffset, frame.byteLength).getBigUint64(4));
}

/** A copy of `bytes` with bit `bit` of byte `offset` flipped. */
export function flipBit(bytes: Uint8Array, offset: number, bit = 0): Uint8Array {
  if (offset < 0 || offset >= bytes.length) throw new Error(`flipBit: offset ${offset} outside ${bytes.length} bytes`);
  const copy = new Uint8Array(bytes);
  copy[offset] = (copy[offset] as number) ^ (1 << bit);
  return copy;
}

/** Offsets inside one wire frame. */
export const FRAME_OFFSETS = { seq: 4, mac: 12, ciphertext: 28 } as const;

/** Offsets inside a request envelope. */
export const ENVELOPE_OFFSETS = {
  version: 0,
  kind: 1,
  keyId: 2,
  length: 18,
  clientKey: 22,
  nonce: 54,
  ciphertext: 78,
} as const;
