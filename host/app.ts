/**
 * The untrusted host: a hono app that authenticates callers, applies limits and forwards bytes to
 * one enclave. It can read a sealed envelope's routing header (version, kind, enclave key id,
 * sizes) and nothing else: it never imports the code that opens sealed messages (a test checks
 * the import graph). Responses stream through as they come; the host never buffers an answer.
 *
 * Routes: GET /healthz, GET /v1/attestation, POST /v1/attestation/challenge, POST /v1/sealed.
 */
import { Agent, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { Hono } from "hono";
import { parseEnvelope, TENANT_HEADER } from "../sealed/envelope.ts";
import type { AccessLogEntry, AccessLogSink } from "./access-log.ts";
import { bodyTooLarge, errorResponse, HostError } from "./errors.ts";
import type { ApiKeyRecord, ApiKeyStore, Caller, Permission } from "./identity.ts";
import { ConcurrencyLimiter, type LimiterOptions } from "./limiter.ts";

export interface HostOptions {
  /** Base URL of the enclave's internal server, e.g. http://127.0.0.1:8443 */
  readonly enclaveUrl: string;
  readonly apiKeys: ApiKeyStore;
  readonly limits: {
    /** Largest sealed request accepted, in bytes. */
    readonly maxRequestBytes: number;
    /** Time allowed for the enclave to send response headers. */
    readonly upstreamHeadersTimeoutMs: number;
    /** Longest pause allowed between two chunks of a streamed answer. */
    readonly upstreamIdleTimeoutMs: number;
  } & LimiterOptions;
  readonly accessLog: AccessLogSink;
  /**
   * Injectable for tests; defaults to the global fetch. Without it, sealed answers served by the
   * node adapter go over node:http on a keep-alive agent, written straight to the client's socket.
   */
  readonly fetch?: typeof fetch;
  /** Called when a sealed response has ended (e.g. to collect the enclave's audit records). */
  readonly onSealedResponseEnd?: () => void;
}

export { TENANT_HEADER };

const CHALLENGE_MAX_BYTES = 1024;
const DOCUMENT_MAX_BYTES = 4 * 1024 * 1024;

type Variables = { caller: Caller | null; requestBytes: number; sent: ResponseMeter | null };

/** What the node adapter passes as `c.env` (HttpBindings); absent for in-process `app.request`. */
type Env = { outgoing?: ServerResponse } | undefined;

async function readBody(
  request: { readonly headers: Headers; readonly body: ReadableStream<Uint8Array> | null },
  limit: number,
): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw bodyTooLarge(limit, declared);
  const reader = request.body?.getReader();
  if (reader === undefined) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel();
      throw bodyTooLarge(limit, `more than ${limit}`);
    }
    chunks.push(value);
  }
  const body = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    body.set(c, offset);
    offset += c.length;
  }
  return body;
}

export function createHostApp(options: HostOptions): Hono<{ Variables: Variables }> {
  const app = new Hono<{ Variables: Variables }>();
  const limiter = new ConcurrencyLimiter(options.limits);
  const doFetch = options.fetch ?? fetch;
  const enclaveBase = options.enclaveUrl.replace(/\/+$/, "");
  // Under the node adapter, sealed answers go over node:http straight into the client's socket
  // (no web streams per frame); an injected fetch (tests) or a non-http enclave keeps the fetch path.
  const agent =
    options.fetch === undefined && new URL(enclaveBase).protocol === "http:" ? new Agent({ keepAlive: true }) : null;

  // Access log: sizes and timings only, written when the last byte has gone out.
  app.use("*", async (c, next) => {
    const started = performance.now();
    c.set("caller", null);
    c.set("requestBytes", 0);
    c.set("sent", null);
    await next();
    const headersMs = performance.now() - started;
    // An answer written straight to the socket carries its status and byte count in its meter.
    const sent = c.get("sent");
    const status = sent?.status ?? c.res.status;
    const base = {
      time: new Date().toISOString(),
      method: c.req.method,
      path: c.req.path,
      status,
      keyId: c.get("caller")?.keyId ?? null,
      requestBytes: c.get("requestBytes"),
      headersMs: Math.round(headersMs * 100) / 100,
    };
    const ok = status >= 200 && status < 300;
    const done = (responseBytes: number, outcome: AccessLogEntry["outcome"]) =>
      options.accessLog({
        ...base,
        responseBytes,
        durationMs: Math.round((performance.now() - started) * 100) / 100,
        outcome: outcome === "ok" && !ok ? "error" : outcome,
      });
    if (sent !== null) {
      sent.attach(done);
      return;
    }
    const body = c.res.body;
    if (body === null) {
      options.accessLog({ ...base, responseBytes: 0, durationMs: base.headersMs, outcome: c.res.ok ? "ok" : "error" });
      return;
    }
    // Streamed answers count their bytes in the forwarding loop itself (no extra stream per answer).
    const meter = meters.get(c.res);
    if (meter !== undefined) {
      meter.attach(done);
      return;
    }
    let responseBytes = 0;
    const counted = body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          responseBytes += chunk.byteLength;
          controller.enqueue(chunk);
        },
        flush() {
          done(responseBytes, "ok");
        },
      }),
    );
    c.res = new Response(counted, { status: c.res.status, headers: c.res.headers });
  });

  app.onError((error, c) => errorResponse(c, error));
  app.notFound((c) => c.json({ error: { code: "NOT_FOUND", message: "no such route" } }, 404));

  // Identity comes first: anonymous or unknown keys are refused before anything else.
  const authenticate = (c: { req: { header(name: string): string | undefined } }, permission: Permission): Caller => {
    const record: ApiKeyRecord = options.apiKeys.authenticate(c.req.header("authorization"));
    return options.apiKeys.authorize(record, permission);
  };

  app.get("/healthz", (c) => c.json({ status: "ok", inFlight: limiter.active, queued: limiter.queued }));

  app.get("/v1/attestation", async (c) => {
    c.set("caller", authenticate(c, "attest"));
    const upstream = await forward(doFetch, `${enclaveBase}/attestation`, { method: "GET" }, options.limits);
    return passThroughBounded(upstream, DOCUMENT_MAX_BYTES);
  });

  app.post("/v1/attestation/challenge", async (c) => {
    c.set("caller", authenticate(c, "attest"));
    const body = await readBody(c.req.raw, CHALLENGE_MAX_BYTES);
    c.set("requestBytes", body.length);
    const upstream = await forward(
      doFetch,
      `${enclaveBase}/attestation/challenge`,
      { method: "POST", body, headers: { "content-type": "application/json" } },
      options.limits,
    );
    return passThroughBounded(upstream, 64 * 1024);
  });

  app.post("/v1/sealed", async (c) => {
    const record = options.apiKeys.authenticate(c.req.header("authorization"));
    const body = await readBody(c.req.raw, options.limits.maxRequestBytes);
    c.set("requestBytes", body.length);
    // The routing header is all the host may read: check its structure, then forward the bytes.
    let kind: Permission;
    try {
      kind = parseEnvelope(body).header.kind;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new HostError(
        typeof code === "string" ? code : "ENVELOPE_MALFORMED",
        400,
        error instanceof Error ? error.message : "malformed envelope",
      );
    }
    const caller = options.apiKeys.authorize(record, kind);
    c.set("caller", caller);
    const slot = await limiter.acquire();
    const release = () => {
      slot();
      options.onSealedResponseEnd?.();
    };
    const headers = { "content-type": "application/octet-stream", [TENANT_HEADER]: caller.keyId };
    const outgoing = (c.env as Env)?.outgoing;
    try {
      if (agent !== null && outgoing !== undefined) {
        const meter = await forwardToSocket(
          agent,
          `${enclaveBase}/sealed`,
          body,
          headers,
          options.limits,
          outgoing,
          release,
        );
        c.set("sent", meter);
        return RESPONSE_ALREADY_SENT;
      }
      const upstream = await forward(
        doFetch,
        `${enclaveBase}/sealed`,
        { method: "POST", body, headers, signal: c.req.raw.signal },
        options.limits,
      );
      return streamThrough(upstream, options.limits.upstreamIdleTimeoutMs, release);
    } catch (error) {
      release();
      throw error;
    }
  });

  return app;
}

/** Sends a request to the enclave, mapping connection failures and header timeouts. */
async function forward(
  doFetch: typeof fetch,
  url: string,
  init: { method: string; body?: Uint8Array; headers?: Record<string, string>; signal?: AbortSignal },
  limits: HostOptions["limits"],
): Promise<{ response: Response; controller: AbortController }> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error("headers timeout")), limits.upstreamHeadersTimeoutMs);
  const onClientAbort = () => controller.abort(new Error("client went away"));
  init.signal?.addEventListener("abort", onClientAbort, { once: true });
  try {
    const response = await doFetch(url, {
      method: init.method,
      ...(init.body === undefined ? {} : { body: init.body as Uint8Array<ArrayBuffer> }),
      ...(init.headers === undefined ? {} : { headers: init.headers }),
      signal: controller.signal,
    });
    return { response, controller };
  } catch (error) {
    if (controller.signal.aborted && !init.signal?.aborted) {
      throw new HostError(
        "ENCLAVE_TIMEOUT",
        504,
        `enclave did not answer within ${limits.upstreamHeadersTimeoutMs} ms`,
        {
          cause: error,
        },
      );
    }
    throw new HostError("ENCLAVE_UNREACHABLE", 502, "enclave is unreachable from the host", { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

const PASSED_HEADERS = ["content-type", "retry-after"];

/**
 * The node:http transport for sealed answers: posts `body` to the enclave over a keep-alive agent
 * and, once the enclave's headers are in, writes status and the passed headers to `outgoing` and
 * pipes the answer straight through, counting bytes. Resolves with the meter once the headers are
 * sent; rejects (without calling `release`) with the same 502/504 errors as `forward` when the
 * enclave cannot be reached or does not answer in time, so the caller can still send a JSON error.
 * After the headers, `release` runs exactly once: on the end, an upstream error or idle gap (the
 * client's response is destroyed, so it sees the truncation), or the client going away (the
 * upstream request is aborted).
 */
function forwardToSocket(
  agent: Agent,
  url: string,
  body: Uint8Array,
  headers: Record<string, string>,
  limits: HostOptions["limits"],
  outgoing: ServerResponse,
  release: () => void,
): Promise<ResponseMeter> {
  return new Promise((resolve, reject) => {
    let timedOut = false;
    let clientGone = false;
    let upstream: IncomingMessage | null = null;
    const req = httpRequest(url, {
      method: "POST",
      agent,
      headers: { ...headers, "content-length": String(body.byteLength) },
    });
    const headersTimer = setTimeout(() => {
      timedOut = true;
      req.destroy(new Error("headers timeout"));
    }, limits.upstreamHeadersTimeoutMs);
    const onClientClose = () => {
      if (outgoing.writableFinished) return;
      clientGone = true;
      req.destroy(new Error("client went away"));
    };
    outgoing.once("close", onClientClose);
    req.on("error", (error) => {
      if (upstream !== null) return; // after the headers, the response's close handler finishes
      clearTimeout(headersTimer);
      outgoing.off("close", onClientClose);
      if (timedOut && !clientGone) {
        reject(
          new HostError("ENCLAVE_TIMEOUT", 504, `enclave did not answer within ${limits.upstreamHeadersTimeoutMs} ms`, {
            cause: error,
          }),
        );
      } else {
        reject(new HostError("ENCLAVE_UNREACHABLE", 502, "enclave is unreachable from the host", { cause: error }));
      }
    });
    req.on("response", (res) => {
      upstream = res;
      clearTimeout(headersTimer);
      const status = res.statusCode ?? 502;
      const meter = new ResponseMeter(status);
      const passed: Record<string, string> = {};
      for (const name of PASSED_HEADERS) {
        const value = res.headers[name];
        if (typeof value === "string") passed[name] = value;
      }
      let lastChunkAt = performance.now();
      const idleMs = limits.upstreamIdleTimeoutMs;
      const onIdle = () => {
        const quiet = performance.now() - lastChunkAt;
        if (quiet >= idleMs) req.destroy(new Error("idle timeout"));
        else idle = setTimeout(onIdle, idleMs - quiet);
      };
      let idle = setTimeout(onIdle, idleMs);
      let finished = false;
      const finish = (outcome: Outcome) => {
        if (finished) return;
        finished = true;
        clearTimeout(idle);
        outgoing.off("close", onClientClose);
        outgoing.off("drain", onDrain);
        release();
        meter.end(outcome);
      };
      const onDrain = () => res.resume();
      outgoing.on("drain", onDrain);
      res.on("data", (chunk: Buffer) => {
        lastChunkAt = performance.now();
        meter.bytes += chunk.byteLength;
        if (!outgoing.write(chunk)) res.pause();
      });
      res.on("end", () => {
        finish("ok");
        outgoing.end();
      });
      res.on("error", () => {});
      res.on("close", () => {
        if (finished) return;
        finish("aborted");
        outgoing.destroy();
      });
      if (clientGone || outgoing.destroyed) {
        finish("aborted");
        req.destroy();
        resolve(meter);
        return;
      }
      outgoing.writeHead(status, passed);
      outgoing.flushHeaders();
      resolve(meter);
    });
    req.end(body);
  });
}

function pickHeaders(from: Headers): Headers {
  const headers = new Headers();
  for (const name of PASSED_HEADERS) {
    const value = from.get(name);
    if (value !== null) headers.set(name, value);
  }
  return headers;
}

async function passThroughBounded(upstream: { response: Response }, limit: number): Promise<Response> {
  const body = await readBody(upstream.response, limit).catch((error: unknown) => {
    if (error instanceof HostError)
      throw new HostError("ENCLAVE_RESPONSE_TOO_LARGE", 502, "enclave response too large");
    throw new HostError("ENCLAVE_UNREACHABLE", 502, "enclave response was cut", { cause: error });
  });
  return new Response(body as Uint8Array<ArrayBuffer>, {
    status: upstream.response.status,
    headers: pickHeaders(upstream.response.headers),
  });
}

type Outcome = AccessLogEntry["outcome"];

/**
 * Byte count and end of a streamed answer, reported to the access log once the stream is over.
 * The log callback is attached after the handler returned; an end seen before that is kept.
 */
class ResponseMeter {
  bytes = 0;
  /** The status written to the client, when the meter's transport writes it itself. */
  readonly status: number | undefined;

  #ended: Outcome | null = null;
  #report: ((bytes: number, outcome: Outcome) => void) | null = null;

  constructor(status?: number) {
    this.status = status;
  }

  attach(report: (bytes: number, outcome: Outcome) => void): void {
    this.#report = report;
    if (this.#ended !== null) report(this.bytes, this.#ended);
  }

  end(outcome: Outcome): void {
    if (this.#ended !== null) return;
    this.#ended = outcome;
    this.#report?.(this.bytes, outcome);
  }
}

/** Responses built by `streamThrough`, keyed by the Response the handler returns. */
const meters = new WeakMap<Response, ResponseMeter>();

/**
 * Streams the enclave's answer through as it arrives. An idle gap longer than `idleMs` aborts the
 * upstream request, which ends the client's stream early; the client detects the truncation.
 * Per chunk this does one read and one enqueue: the idle timer is not re-armed per chunk (a chunk
 * only records its time; the one timer re-arms itself for what is left of the gap), and bytes are
 * counted here for the access log.
 */
function streamThrough(
  upstream: { response: Response; controller: AbortController },
  idleMs: number,
  release: () => void,
): Response {
  const source = upstream.response.body;
  if (source === null) {
    release();
    return new Response(null, { status: upstream.response.status, headers: pickHeaders(upstream.response.headers) });
  }
  const reader = source.getReader();
  const meter = new ResponseMeter();
  let lastChunkAt = performance.now();
  let idle: ReturnType<typeof setTimeout> | undefined;
  const onIdle = () => {
    const quiet = performance.now() - lastChunkAt;
    if (quiet >= idleMs) upstream.controller.abort(new Error("idle timeout"));
    else idle = setTimeout(onIdle, idleMs - quiet);
  };
  let finished = false;
  const finish = (outcome: Outcome) => {
    if (finished) return;
    finished = true;
    clearTimeout(idle);
    release();
    meter.end(outcome);
  };
  const stream = new ReadableStream<Uint8Array>({
    start() {
      idle = setTimeout(onIdle, idleMs);
    },
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          finish("ok");
          controller.close();
          return;
        }
        lastChunkAt = performance.now();
        meter.bytes += value.byteLength;
        controller.enqueue(value);
      } catch (error) {
        finish("aborted");
        controller.error(error);
      }
    },
    async cancel(reason) {
      finish("aborted");
      upstream.controller.abort(reason);
      await reader.cancel(reason).catch(() => {});
    },
  });
  const response = new Response(stream, {
    status: upstream.response.status,
    headers: pickHeaders(upstream.response.headers),
  });
  meters.set(response, meter);
  return response;
}
