/**
 * A small HTTP listener for a fetch handler (hono app) on a given address, with connection limits
 * and a clean close. Shared by every server (enclave, host, key broker, proxy, web page); it carries
 * no protocol logic beyond what both enclave and host apply: the sealed request size limit, the
 * content-type refusal's wording, and the JSON refusal of a request no handler can read (node cannot
 * parse it or did not receive it in time, or @hono/node-server cannot make a URL of it).
 */

import {
  createServer,
  type IncomingMessage,
  maxHeaderSize,
  type OutgoingHttpHeader,
  type OutgoingHttpHeaders,
  type Server,
  ServerResponse,
  STATUS_CODES,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { getRequestListener, RequestError } from "@hono/node-server";
import { onOutputClosed, type StopReason } from "../client/cli/output.ts";
import { shownHost } from "../client/loopback.ts";
import { MAX_REQUEST_CIPHERTEXT_LENGTH } from "../sealed/envelope.ts";

/** How long SIGTERM/SIGINT lets answers under way finish before a server stops (closeOnSignal). */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;

/**
 * The largest sealed request body, in bytes: the enclave's own limit (a request ciphertext of up to
 * 16 MiB with its envelope prefix, sealed/envelope.ts), and so the most a host may be set to accept.
 */
export const MAX_SEALED_REQUEST_BYTES = MAX_REQUEST_CIPHERTEXT_LENGTH + 1024;

/**
 * How long the enclave's internal server keeps an idle keep-alive connection (enclave/run.ts): its
 * one client, the host, keeps a pool of them (host/app.ts, up to its --max-in-flight + 64), and
 * node's 5 s made it open every one again after any quiet spell of 4 s (node's agent lets go of a
 * socket a second before the server's `Keep-Alive: timeout`): 64 new connections at the start of
 * each burst of 64 requests, and about 0.24 MB more for the host's scavenges to copy then. Idle
 * connections cost no slot: the enclave bounds how many it holds (maxConnections), and the
 * slow-sender timeouts (first request, headers, whole request) are the same for it.
 */
export const INTERNAL_KEEP_ALIVE_TIMEOUT_MS = 65_000;

/** Connections a server holds open at once by default; past it, new ones are closed as they come. */
export const DEFAULT_MAX_CONNECTIONS = 1024;

/**
 * Time limits every server applies to its clients' connections (none to its answers, which
 * stream as long as they need; the host and enclave time those themselves):
 * - a connection must send its first request's headers within FIRST_REQUEST_TIMEOUT_MS, or it is
 *   closed (node's own header timeout starts only with a request, so a connection that never sends
 *   a byte would otherwise stay open for ever, holding a file descriptor);
 * - a request's headers must be complete within HEADERS_TIMEOUT_MS of its start, and the whole
 *   request (its body included) within REQUEST_TIMEOUT_MS (node's 408), above the host's own
 *   30 s body timeout (`requestBodyTimeoutMs`), which answers first with its own code; node checks
 *   both every CONNECTIONS_CHECKING_INTERVAL_MS, so a connection past either is closed at most that
 *   much later (node's default, 30 s, let a slow sender of headers hold a connection for 50 s);
 * - between requests, a keep-alive connection is closed after node's keepAliveTimeout (5 s), or
 *   `keepAliveTimeoutMs` (the enclave's, INTERNAL_KEEP_ALIVE_TIMEOUT_MS; the host's
 *   --keep-alive-timeout). It may be longer than HEADERS_TIMEOUT_MS: node starts a request's
 *   headers timer at that request's first byte, not when its connection fell idle (node 20 seen
 *   so: a 1 s headersTimeout, a 4 s keepAliveTimeout, a second request after 2.5 s idle answered).
 *   The old advice to keep headersTimeout above keepAliveTimeout was for node 10.15.2 to 12.18,
 *   which counted from the previous request (nodejs/node#27363).
 */
const FIRST_REQUEST_TIMEOUT_MS = 20_000;
const HEADERS_TIMEOUT_MS = 20_000;
const REQUEST_TIMEOUT_MS = 120_000;
const CONNECTIONS_CHECKING_INTERVAL_MS = 1_000;

/**
 * How long a connection is kept open after the server's own answer to a request it cannot read
 * (its `clientError`: 400, 408, 431), reading and dropping what the client still sends: closed at
 * once, a connection with unread bytes is reset, and the reset can take the answer with it (RFC
 * 9112 §9.6). Closed when the client closes it, or past this whatever it does. The host keeps a
 * connection whose body timed out (its BODY_TIMEOUT) no longer than this either.
 */
export const UNREADABLE_LINGER_MS = 2_000;

/**
 * Destroys `socket` UNREADABLE_LINGER_MS from now, unless it closes first (the timer is then
 * cleared, and with it what it holds). The timer keeps no process alive: the open socket does, for
 * as long as it is open.
 */
export function closeAfterLinger(socket: Socket): void {
  if (socket.destroyed) return;
  const linger = setTimeout(() => socket.destroy(), UNREADABLE_LINGER_MS).unref();
  socket.once("close", () => clearTimeout(linger));
}

export interface ListenOptions {
  /** Connections held open at once (default DEFAULT_MAX_CONNECTIONS). */
  readonly maxConnections?: number;
  /**
   * Connections held open at once from one client, `clientOf` its remote address (e.g. the key
   * broker's limitBucket): past `max`, a new one from that client is closed as it comes, so one
   * client cannot take all of maxConnections. No bound by default.
   */
  readonly maxConnectionsPerClient?: { readonly max: number; readonly clientOf: (address: string) => string };
  /**
   * How long an idle keep-alive connection is kept between requests (default node's, 5 s; the
   * enclave's INTERNAL_KEEP_ALIVE_TIMEOUT_MS; the host's --keep-alive-timeout; tests: a connection
   * that only `close` can end). node tells the client (`Keep-Alive: timeout=` its whole seconds).
   */
  readonly keepAliveTimeoutMs?: number;
  /** Overrides FIRST_REQUEST_TIMEOUT_MS (tests). */
  readonly firstRequestTimeoutMs?: number;
  /** Overrides HEADERS_TIMEOUT_MS (tests). */
  readonly headersTimeoutMs?: number;
  /** Told of each request the server refuses before any handler sees it (e.g. the host's access log). */
  readonly onRefused?: (refusal: Refusal) => void;
  /**
   * Told of each request whose body node could not read once its handler had it (bodyRefusal), as
   * the server answers it, with node's parse of its method: for a server that keeps no line per
   * request (the enclave). Told here, not when the handler's answer closes: a pipelined request's
   * answer may never get a connection, and then never closes. Also told of a body refused after its
   * handler's answer was whole (one that says keep-alive itself keeps the connection); a server
   * without onBodyRefused has that one told to onRefused, its line for the request written already.
   */
  readonly onBodyRefused?: (refusal: Refusal) => void;
}

/** Connections the server answered itself (its `clientError`) and is closing: no request read on them goes to a handler. */
const answeredByServer = new WeakSet<Socket>();

/** Requests whose body node could not read once their handler had them, with the server's own answer (bodyRefusal). */
const refusedBodies = new WeakMap<IncomingMessage, Refusal>();

/**
 * The server's own answer to `incoming` when node could not read its body (or receive it in time)
 * after its handler had it: what the client got, whatever the handler answers after (none of that
 * reaches the client), for the handler's access log. Not told to onRefused (one line per request);
 * told to onBodyRefused.
 */
export function bodyRefusal(incoming: IncomingMessage): Refusal | undefined {
  return refusedBodies.get(incoming);
}

/**
 * A request refused before any handler saw it: one node cannot parse or that is not received in
 * time (node's `clientError`), or one whose Host header or target @hono/node-server cannot make a
 * URL of; or one whose body node could not read once a handler had it (bodyRefusal). Sizes only:
 * nothing the client sent is kept (`method` is node's parse of it, one of a fixed list, null when
 * the request line was not read).
 */
export interface Refusal {
  readonly status: number;
  readonly code: string;
  /** The answer's message: fixed wording, naming of what was found only node's parse error code. */
  readonly message: string;
  readonly method: string | null;
  /** The answer's body, in bytes (as the host's access log counts them). */
  readonly responseBytes: number;
}

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  /**
   * The IP address bound, as the socket reports it: the one a name given to listen resolved to (the
   * URL keeps the name). What a check of where the server listens looks at (kbs serve's loopback).
   */
  readonly address: string;
  /**
   * Stops accepting connections and resolves when every connection is closed. Requests under way
   * get up to `graceMs` (default 0) to finish — streamed answers included — and each connection is
   * closed as soon as it is idle; whatever is still open after `graceMs` is cut. `beforeCut` is
   * called just before that cut (not when every connection closed within the grace): a server
   * whose handler logs how an answer ended (the proxy's `cut_at_stop`) learns there that the cut
   * is its own. Called once per server it is given to (listenLoopback's two: twice).
   */
  close(graceMs?: number, beforeCut?: () => void): Promise<void>;
}

/** A host name or IP address as it is written before `:port`, in a URL or a message: an IPv6 address in brackets. */
/**
 * A server that could not listen on `hostname:port`: `code` is the cause's (EADDRINUSE: the port is
 * taken; EACCES: not permitted; ENOTFOUND, EAI_AGAIN: a name that does not resolve;
 * EADDRNOTAVAIL: not an address of this machine…). The CLI names the option at fault
 * (client/cli/output.ts listenUsageError).
 */
export class ListenError extends Error {
  readonly code: string;
  /** As given: an IP address or a name. */
  readonly hostname: string;
  /** As shown: an IPv6 address in brackets. */
  readonly address: string;
  readonly port: number;

  constructor(hostname: string, port: number, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | null)?.code ?? "error";
    const address = shownHost(hostname);
    super(`cannot listen on ${address}:${port} (${code})`, { cause });
    this.name = "ListenError";
    this.code = code;
    this.hostname = hostname;
    this.address = address;
    this.port = port;
  }
}

/** A fetch handler as @hono/node-server calls it: the request, and node's request and response (`c.env`). */
type NodeFetchHandler = Parameters<typeof getRequestListener>[0];

/** node's request listener for a fetch handler, as @hono/node-server's `serve` makes it. */
type RequestListener = ReturnType<typeof getRequestListener>;

/**
 * The answers a server gives itself, before any handler, to a request it cannot read: the JSON
 * error body every Cloister server sends, with a fixed message naming what was expected and, of
 * what was found, only node's parse error code (what the client sent may be anything: never shown).
 */
interface Unreadable {
  readonly status: 400 | 408 | 431;
  readonly code: string;
  readonly message: string;
  /** The whole body: `{"error":{"code","message"}}`. */
  readonly json: string;
}

function unreadable(status: Unreadable["status"], code: string, message: string): Unreadable {
  return { status, code, message, json: JSON.stringify({ error: { code, message } }) };
}

/** What `onRefused` is told of `answer`: its status, code, message and body size. */
const refusal = (answer: Unreadable, method: string | null): Refusal => ({
  status: answer.status,
  code: answer.code,
  message: answer.message,
  method,
  responseBytes: Buffer.byteLength(answer.json),
});

const targetUnreadable = unreadable(
  400,
  "REQUEST_UNREADABLE",
  "request target or Host header: expected a path starting with / and a host name, found one this server cannot read",
);

/** node's `clientError` `error` as an answer; null when the client has gone (ECONNRESET and the like). */
function clientErrorAnswer(
  error: NodeJS.ErrnoException,
  timeouts: { readonly headersMs: number; readonly requestMs: number },
): Unreadable | null {
  const code = error.code ?? "";
  if (code === "HPE_HEADER_OVERFLOW") {
    return unreadable(431, "HEADERS_TOO_LARGE", `request headers: expected at most ${maxHeaderSize} bytes, found more`);
  }
  if (code === "ERR_HTTP_REQUEST_TIMEOUT") {
    return unreadable(
      408,
      "REQUEST_TIMEOUT",
      `request: expected its headers within ${timeouts.headersMs} ms and all of it within ${timeouts.requestMs} ms, found it incomplete`,
    );
  }
  // llhttp's codes are a fixed list of `HPE_` names: the one thing of the parse that is shown.
  if (/^HPE_[A-Z_]{1,40}$/.test(code)) {
    return unreadable(
      400,
      "REQUEST_UNREADABLE",
      `request: expected HTTP/1.1 this server can read, found a parse error (${code})`,
    );
  }
  return null;
}

/**
 * @hono/node-server's listener for `fetchHandler`, whose refusal of a request it cannot make a URL of
 * (a Host header that is no host name, `OPTIONS *`, a backslash in the path) is the JSON
 * REQUEST_UNREADABLE with `Connection: close`, told to `onRefused`, instead of its empty 400. Any
 * other error of the handler gets its answer as before: 504 for a TimeoutError, else 500, no body
 * (hono apps answer their own errors).
 */
const requestListener = (
  fetchHandler: NodeFetchHandler,
  hostname: string,
  onRefused: ((refusal: Refusal) => void) | undefined,
): RequestListener => {
  // The request being read: @hono/node-server makes its URL, and calls errorHandler when it cannot,
  // synchronously within the listener's call (its listener's catch, before any await; a handler's
  // own errors may come later, with none). Were it called later, such a request would get a bare
  // 500 and no onRefused: test/enclave/http-refusals.test.ts's Host-header and `OPTIONS *` cases
  // would fail. Other errors get @hono/node-server's own answer; it also takes an error whose class
  // alone is named TimeoutError for a timeout, which no error reaching here is (hono apps answer
  // their own errors, and AbortSignal.timeout's is a DOMException named so).
  let reading: { readonly method?: string | undefined } | null = null;
  const errorHandler = (error: unknown): Response => {
    if (!(error instanceof RequestError) || reading === null) {
      return new Response(null, { status: error instanceof Error && error.name === "TimeoutError" ? 504 : 500 });
    }
    onRefused?.(refusal(targetUnreadable, reading.method ?? null));
    return new Response(targetUnreadable.json, {
      status: targetUnreadable.status,
      headers: { "content-type": "application/json", connection: "close" },
    });
  };
  const listener = getRequestListener(fetchHandler, { hostname, errorHandler });
  return (incoming, outgoing) => {
    // Read after the server's own answer (a request sent on after a 408): nobody can answer it.
    if (answeredByServer.has(incoming.socket)) {
      incoming.socket.destroy();
      return Promise.resolve();
    }
    reading = incoming;
    try {
      return listener(incoming, outgoing);
    } finally {
      reading = null;
    }
  };
};

/**
 * Serves a hono-style fetch handler on `hostname:port` (0 = any free port), with connection limits.
 * Rejects with a {@link ListenError} when it cannot listen there, a RangeError for an option out of bounds.
 */
export async function listen(
  fetchHandler: (request: Request) => Response | Promise<Response>,
  hostname: string,
  port: number,
  options: ListenOptions = {},
): Promise<RunningServer> {
  return (await listenWith(requestListener(fetchHandler, hostname, options.onRefused), hostname, port, options))
    .running;
}

/**
 * node's response, saying `Connection: close` when its headers go out before the request's body has
 * all come (a refusal before reading it: no API key, a wrong route, an oversize declared length).
 * That connection cannot carry another request at once: @hono/node-server drains the unread body for
 * at most 500 ms and then drops the connection, and a client told `keep-alive` may have sent its next
 * request on it by then (lost: "other side closed"). A request read whole keeps its connection: a
 * handler that refuses a body it can bound and wants the connection kept reads it first (the proxy's
 * discardBody, for its authenticated local apps); none is read here for a handler, as most refusals
 * are of clients not yet known.
 */
class ClosingWhenUnreadResponse extends ServerResponse {
  override writeHead(
    ...args: [
      number,
      (string | OutgoingHttpHeaders | OutgoingHttpHeader[])?,
      (OutgoingHttpHeaders | OutgoingHttpHeader[])?,
    ]
  ): this {
    // A request without a body is complete only once its handler has been called: it has no more
    // to come (`complete` is set after the handler's call, so a synchronous answer sees it unset).
    // Its length read as node's parser reads it, a number (digits only: `+0` it refuses), so a zero
    // spelled `00` is no body either.
    const { req } = this;
    const hasBody = req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) !== 0;
    if (hasBody && !req.complete) this.shouldKeepAlive = false;
    return super.writeHead(...(args as [number, string?, OutgoingHttpHeaders?]));
  }
}

/** The longest time limit listen takes (a day): within node's timers' 2^31 - 1 ms, past which they fire at once. */
const MAX_LISTEN_TIMEOUT_MS = 86_400_000;

/** The most connections listen holds (`maxConnections`, `maxConnectionsPerClient.max`): the host's --max-connections' bound. */
export const MAX_LISTEN_CONNECTIONS = 1_000_000;

/**
 * Refuses a numeric ListenOptions field that is not an integer within its bounds: to node a 0 is
 * no limit at all (a keep-alive, first-request or headers timeout of 0 never closes; a
 * maxConnections of 0 holds any number), and a timer past 2^31 - 1 ms fires at once.
 */
function checkListenOptions(options: ListenOptions): void {
  const check = (field: string, value: number | undefined, max: number, unit: string) => {
    if (value !== undefined && !(Number.isInteger(value) && value >= 1 && value <= max)) {
      throw new RangeError(`${field}: expected an integer of 1..${max}${unit}, found ${value}`);
    }
  };
  check("keepAliveTimeoutMs", options.keepAliveTimeoutMs, MAX_LISTEN_TIMEOUT_MS, " (ms)");
  check("firstRequestTimeoutMs", options.firstRequestTimeoutMs, MAX_LISTEN_TIMEOUT_MS, " (ms)");
  // node refuses a headers timeout above the request timeout.
  check("headersTimeoutMs", options.headersTimeoutMs, REQUEST_TIMEOUT_MS, " (ms)");
  check("maxConnections", options.maxConnections, MAX_LISTEN_CONNECTIONS, "");
  check("maxConnectionsPerClient.max", options.maxConnectionsPerClient?.max, MAX_LISTEN_CONNECTIONS, "");
}

/**
 * `listen` with node's request listener, resolving with node's server too (listenBeforeServing swaps
 * its listener). Rejects with a RangeError when a numeric option is out of bounds (checkListenOptions).
 */
function listenWith(
  listener: RequestListener,
  hostname: string,
  port: number,
  options: ListenOptions,
): Promise<{ running: RunningServer; server: Server }> {
  checkListenOptions(options);
  const headersTimeoutMs = options.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const server = createServer(
      {
        headersTimeout: headersTimeoutMs,
        requestTimeout: REQUEST_TIMEOUT_MS,
        connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS,
        ServerResponse: ClosingWhenUnreadResponse,
        // Strict whatever node's own options say (--insecure-http-parser, in NODE_OPTIONS too): the
        // lenient parser takes a request with both Content-Length and Transfer-Encoding, and header
        // values with control characters, which a proxy in front may frame otherwise (smuggling).
        insecureHTTPParser: false,
      },
      listener,
    );
    server.listen(port, hostname, () => {
      const info = server.address() as AddressInfo;
      const url = `http://${shownHost(hostname)}:${info.port}`;
      const running: RunningServer = {
        url,
        port: info.port,
        address: info.address,
        close: (graceMs = 0, beforeCut) =>
          new Promise<void>((done) => {
            const cut = () => {
              beforeCut?.();
              server.closeAllConnections();
            };
            // Keep-alive connections would otherwise stay open until their idle timeout: each is
            // closed once its last request has ended (checked every 25 ms), the rest at the deadline.
            const sweep = setInterval(() => server.closeIdleConnections(), 25);
            const deadline = setTimeout(cut, graceMs);
            server.close(() => {
              clearInterval(sweep);
              clearTimeout(deadline);
              done();
            });
            if (graceMs <= 0) cut();
            else server.closeIdleConnections();
          }),
      };
      resolve({ running, server });
    });
    server.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    if (options.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = options.keepAliveTimeoutMs;
    const firstRequestTimeoutMs = options.firstRequestTimeoutMs ?? FIRST_REQUEST_TIMEOUT_MS;
    // Until its first request arrives, a connection is closed when idle that long; the request
    // clears it (node sets its keep-alive timeout itself once a response has ended, and clears that
    // when the next request comes).
    server.on("connection", (socket: Socket) => socket.setTimeout(firstRequestTimeoutMs));
    const perClient = options.maxConnectionsPerClient;
    if (perClient !== undefined) {
      const open = new Map<string, number>();
      server.on("connection", (socket: Socket) => {
        const client = perClient.clientOf(socket.remoteAddress ?? "unknown");
        const count = open.get(client) ?? 0;
        if (count >= perClient.max) {
          socket.destroy();
          return;
        }
        open.set(client, count + 1);
        socket.once("close", () => {
          const left = (open.get(client) ?? 1) - 1;
          if (left <= 0) open.delete(client);
          else open.set(client, left);
        });
      });
    }
    server.on("request", (request: IncomingMessage) => request.socket.setTimeout(0));
    // `Expect: 100-continue`: the 100 is sent when the handler starts reading the body (readBodyWithin,
    // or the fetch Request's body, which reads node's request as it is pulled), not as the request
    // comes (node's default). A request its handler refuses first (no API key, a wrong one, any
    // refusal before the body; the key broker's clients are anonymous) is answered without the
    // client ever sending its body, and node closes the connection (the body never came). Read
    // otherwise than by flowing (`read()` on "readable") no 100 is sent: the client sends its body
    // after its own wait (curl: 1 s). Nothing is sent once the answer has begun (node then drains
    // the unread body, which resumes it too).
    server.on("checkContinue", (request: IncomingMessage, response: ServerResponse) => {
      request.once("resume", () => {
        if (!response.headersSent) response.writeContinue();
      });
      server.emit("request", request, response);
    });
    // A request node cannot read (a parse error, headers over maxHeaderSize) or that is not received
    // in time: node's own answer is a bare status line; this one has the JSON error body. The
    // listener must close the socket itself. Nothing is written once an answer on the connection
    // has begun (node's rule too: the bytes would land inside it), nor to a client that has gone:
    // those connections are closed at once. An answered one is ended (FIN) and kept open, what the
    // client still sends read and dropped (node's parser, in error, reports each chunk again here),
    // until the client closes it or for UNREADABLE_LINGER_MS at most.
    // An error inside the body of a request the handler already has (its headers were read) is not
    // told to onRefused: the handler's own access-log line (with its method and path) says what the
    // client got (bodyRefusal), so telling it too gave one request two lines. It is told to
    // onBodyRefused, for a server with no such line.
    const timeouts = { headersMs: headersTimeoutMs, requestMs: REQUEST_TIMEOUT_MS };
    server.on("clientError", (error: NodeJS.ErrnoException, socket: Socket) => {
      if (answeredByServer.has(socket)) return;
      const answer = clientErrorAnswer(error, timeouts);
      const node = socket as Socket & {
        _httpMessage?: { headersSent: boolean } | null;
        parser?: { incoming?: IncomingMessage | null } | null;
      };
      if (answer === null || !socket.writable || node._httpMessage?.headersSent === true) {
        socket.destroy();
        return;
      }
      answeredByServer.add(socket);
      socket.end(
        `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status]}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(answer.json)}\r\nConnection: close\r\n\r\n${answer.json}`,
      );
      closeAfterLinger(socket);
      // node's parser keeps the last request it read the headers of; incomplete, it is this one, and
      // its handler had it. Its handler's line is still to come only while an answer is under way on
      // the connection. Once answered, the connection is kept only by an answer that says keep-alive
      // itself (ClosingWhenUnreadResponse closes it otherwise): its line is written already, and a
      // server without one (the enclave) must not log the 400 as a refusal before any route.
      const incoming = node.parser?.incoming;
      if (incoming?.complete === false) {
        const refused = refusal(answer, incoming.method ?? null);
        if (node._httpMessage != null) {
          refusedBodies.set(incoming, refused);
          options.onBodyRefused?.(refused);
        } else (options.onBodyRefused ?? options.onRefused)?.(refused);
      } else options.onRefused?.(refusal(answer, null));
    });
    server.once("error", (error) => reject(new ListenError(hostname, port, error)));
  });
}

/** A server listening before its handler exists: `serve` sets it (once), e.g. a hono app's `fetch`. */
export interface ListeningServer extends RunningServer {
  serve<Env>(fetchHandler: (request: Request, env?: Env) => Response | Promise<Response>): void;
  /**
   * Closes every open connection now, requests and answers under way included, and goes on
   * listening (`close` stops listening): the enclave cuts the answers its drain could not wait
   * for, then still serves the host its audit records for a moment (enclave/run.ts drainEnclave).
   */
  cutConnections(): void;
}

/**
 * Listens first and serves later (`listen` with a handler set by `serve`): a port or address the
 * server cannot have is found before a long start-up (the enclave's boot: attestation, the key
 * broker's release, the model's load), and nothing can take the port meanwhile. Until `serve`,
 * every request gets `meanwhile`'s answer; from then on the server's request listener is the
 * handler's own (the booting one is swapped out), so serving costs nothing more than `listen`.
 */
export async function listenBeforeServing(
  meanwhile: (request: Request) => Response,
  hostname: string,
  port: number,
  options: ListenOptions = {},
): Promise<ListeningServer> {
  const booting = requestListener(meanwhile, hostname, options.onRefused);
  const { running, server } = await listenWith(booting, hostname, port, options);
  let served = false;
  return {
    url: running.url,
    port: running.port,
    address: running.address,
    close: (graceMs, beforeCut) => running.close(graceMs, beforeCut),
    cutConnections: () => server.closeAllConnections(),
    serve(fetchHandler) {
      if (served) throw new Error("listenBeforeServing: serve() called twice");
      served = true;
      // node's bindings are what @hono/node-server passes: the app's own Env type describes them.
      // First in line, where the booting listener was (before listen's own "request" listener).
      server.prependListener("request", requestListener(fetchHandler as NodeFetchHandler, hostname, options.onRefused));
      server.off("request", booting);
    },
  };
}

/**
 * Serves on 127.0.0.1 and, where the machine has IPv6, on [::1] at the same port, for servers meant
 * for this machine's own apps and browser (the proxy, the web page): an app that resolves
 * "localhost" to ::1 then reaches this server, never another local process that bound [::1] on the
 * port (that is refused, EADDRINUSE, as for 127.0.0.1). The URL is the 127.0.0.1 one.
 */
export async function listenLoopback(
  fetchHandler: (request: Request) => Response | Promise<Response>,
  port: number,
): Promise<RunningServer> {
  // With port 0 ("any free port"), a port free on 127.0.0.1 but held on [::1] is tried again.
  for (let attempt = 0; ; attempt++) {
    const v4 = await listen(fetchHandler, "127.0.0.1", port);
    let v6: RunningServer | null = null;
    try {
      v6 = await listen(fetchHandler, "::1", v4.port);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // No IPv6 loopback on this machine: nobody can bind [::1] either.
      if (code !== "EADDRNOTAVAIL" && code !== "EAFNOSUPPORT") {
        await v4.close();
        if (port === 0 && code === "EADDRINUSE" && attempt < 8) continue;
        throw error; // listen's ListenError for [::1]
      }
    }
    return {
      url: v4.url,
      port: v4.port,
      address: v4.address,
      close: async (graceMs = 0, beforeCut) => {
        await Promise.all([v4.close(graceMs, beforeCut), v6?.close(graceMs, beforeCut)]);
      },
    };
  }
}

/** A media type as `type/subtype` (RFC 9110 tokens): shown in a refusal; any other header is not. */
const MEDIA_TYPE = /^[A-Za-z0-9!#$&^_.+-]{1,64}\/[A-Za-z0-9!#$&^_.+-]{1,64}$/;

/**
 * Why a POST's Content-Type `header` is not `expected` (its case and parameters aside), for a 415
 * CONTENT_TYPE_UNSUPPORTED that enclave and host word alike: `${route}: expected content-type …,
 * found …` (the media type quoted; a header that is none, by its length, as it may be anything).
 * Null when it is `expected`.
 */
export function contentTypeRefusal(header: string | undefined, expected: string, route: string): string | null {
  const mediaType = header?.split(";")[0]?.trim();
  if (mediaType?.toLowerCase() === expected) return null;
  const found =
    mediaType === undefined
      ? "none"
      : MEDIA_TYPE.test(mediaType)
        ? JSON.stringify(mediaType)
        : `a header of ${header?.length} characters`;
  return `${route}: expected content-type ${expected}, found ${found}`;
}

/**
 * Reads a request body from node's request, refusing more than `limit` bytes: `tooLarge` is
 * thrown for a declared or counted excess (the rest is left unread; the caller's 413 closes the
 * connection; a declared one is refused before `100 Continue` is sent, listen's checkContinue), `gone`
 * when the client goes away mid-body. When `timeout.ms` passes before the body
 * is whole, `timeout.error()` is called (once, then) and thrown, and the body is no longer kept:
 * what still comes is read and dropped, so the connection can carry the caller's answer (which must
 * close it: the request was not read to its end). One timer, cleared when the read ends.
 */
export function readBodyWithin(
  incoming: IncomingMessage,
  limit: number,
  errors: { tooLarge: (found: string) => Error; gone: (cause: Error) => Error },
  timeout?: { readonly ms: number; readonly error: () => Error },
): Promise<Uint8Array> {
  const declared = incoming.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(errors.tooLarge(declared));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stop = () => {
      clearTimeout(timer);
      incoming.off("data", onData);
      incoming.off("end", onEnd);
      incoming.off("error", onError);
      incoming.off("aborted", onAborted);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > limit) {
        stop();
        incoming.pause();
        reject(errors.tooLarge(`more than ${limit}`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      stop();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total));
    };
    const onError = (error: Error) => {
      stop();
      reject(errors.gone(error));
    };
    const onAborted = () => onError(new Error("aborted"));
    if (timeout !== undefined) {
      timer = setTimeout(() => {
        stop();
        chunks.length = 0;
        incoming.resume(); // flowing with no listener: dropped as it arrives
        reject(timeout.error());
      }, timeout.ms);
    }
    incoming.on("data", onData);
    incoming.once("end", onEnd);
    incoming.once("error", onError);
    incoming.once("aborted", onAborted);
  });
}

/**
 * Runs until SIGINT or SIGTERM, then shuts down within `graceMs` (a second signal cuts everything at
 * once): first `drain(deadline)` (the caller stops taking work and waits for what is under way,
 * e.g. the enclave's answers and the host's collection of its audit records), then `server.close`
 * with what is left of the grace period, then `after` (the caller's own cleanup). A drain may run
 * a bounded moment past `deadline` (the enclave's serves the audit records of the answers it cut,
 * enclave/run.ts drainEnclave); `server.close` then cuts at once whatever is left. How `cloister
 * enclave`, `host` and `kbs serve` shut down, losing no answer in progress. Resolves once stopped;
 * rejects with the error of a step that failed (the enclave's removal of its model copy, in
 * `after`), for the caller to report, rather than leaving it an unhandled rejection. `stopping` is
 * told the first stop's reason as it comes (the proxy says it stops); `beforeCut` is the server's
 * (RunningServer.close), at the end of the grace or at a second signal.
 */
export function closeOnSignal(
  server: RunningServer,
  options: {
    readonly graceMs?: number;
    readonly stopping?: (reason: StopReason) => void;
    readonly drain?: (deadline: number) => Promise<void>;
    readonly beforeCut?: () => void;
    readonly after?: () => Promise<void>;
  } = {},
): Promise<void> {
  const graceMs = options.graceMs ?? 0;
  return new Promise<void>((resolve, reject) => {
    let stopping = false;
    let hurry: () => void = () => {};
    // node calls a signal's listener with the signal's name; onOutputClosed calls it with none.
    const stop = (signal?: NodeJS.Signals) => {
      if (stopping) {
        // A second signal: stop waiting for work under way.
        hurry();
        void server.close(0, options.beforeCut);
        return;
      }
      stopping = true;
      options.stopping?.(signal === "SIGINT" || signal === "SIGTERM" ? signal : "output closed");
      const deadline = performance.now() + graceMs;
      const hurried = new Promise<void>((r) => {
        hurry = r;
      });
      (async () => {
        try {
          if (options.drain !== undefined) await Promise.race([options.drain(deadline), hurried]);
          await server.close(Math.max(0, deadline - performance.now()), options.beforeCut);
          await options.after?.();
        } finally {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          unregister();
        }
      })().then(resolve, reject);
    };
    // Output closed by its reader (`cloister host | head -1`): the same clean shutdown.
    const unregister = onOutputClosed(stop);
    // Under a supervisor (`cloister up`), Ctrl-C in the terminal reaches every process of the group:
    // the supervisor alone acts on it and stops its children in order (SIGTERM), so it is not a stop
    // here (bin/cloister.js ignores it in them from their first lines on).
    if (process.env.CLOISTER_SUPERVISED !== "1") process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}

/**
 * SIGINT, SIGTERM and output closed during a server's boot, before closeOnSignal takes over: the
 * first calls `stop` with its reason (the enclave abandons its boot, removing the model copy it
 * staged; the host, which stages nothing, exits), and the server then exits 0, as a stop after
 * boot does. A second calls `atOnce` with its reason, which must end the process at once (default
 * process.exit(); the enclave first removes its model copy and says what is left of it).
 * Supervised (CLOISTER_SUPERVISED), SIGINT is ignored, as after boot. Without this, a signal during
 * boot had its default action: the process died of it, with no word, and left the decrypted model
 * copy it was loading in /dev/shm. Returns the function that ends it: pass it to handOverSignals
 * with the closeOnSignal call, which removes these listeners only after the serving ones are added.
 *
 * `countOutputClosed: false` (a supervisor: `cloister up`, `demo`, which handle their stops so
 * from start to end) counts only signals: output closed calls `stop` when it is the first stop
 * (`cloister up | head -1`) and nothing otherwise, and the first signal after it calls `stop`
 * again (the caller says it is already stopping), the second `atOnce`. Under
 * `cloister up 2>&1 | tee log`, Ctrl-C reaches tee too: counted, the EPIPE of up's next line, after
 * or before its SIGINT is handled, was a second stop, which exited at once, and its children (the
 * enclave with its model copy) stopped on their own after it had gone, in no order.
 */
export function stopDuringBoot(
  stop: (reason: StopReason) => void,
  atOnce: (reason: StopReason) => void = () => process.exit(),
  options: { readonly countOutputClosed?: boolean } = {},
): () => void {
  const countOutputClosed = options.countOutputClosed ?? true;
  let stopping = false;
  let counted = 0;
  const on = (reason: StopReason) => () => {
    const wasStopping = stopping;
    stopping = true;
    if (!countOutputClosed && reason === "output closed") {
      if (!wasStopping) stop(reason);
      return;
    }
    counted++;
    if (counted === 1) stop(reason);
    else atOnce(reason);
  };
  const onSigint = on("SIGINT");
  const onSigterm = on("SIGTERM");
  if (process.env.CLOISTER_SUPERVISED !== "1") process.on("SIGINT", onSigint);
  process.on("SIGTERM", onSigterm);
  const unregister = onOutputClosed(on("output closed"));
  return () => {
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigterm);
    unregister();
  };
}

/**
 * Hands the process's signals from the start-up's handlers (`endBootStop`, from stopDuringBoot) to
 * the serving ones `serve` sets up (closeOnSignal), in that order: the serving listeners are added
 * before the start-up's are removed. Removing a signal's last listener closes node's handle for it,
 * and a signal node has received but not yet dispatched is dropped with it: a SIGTERM sent as the
 * start-up ended was lost, and the server served on. The start-up's listeners are removed even if
 * `serve` throws.
 */
export function handOverSignals<T>(endBootStop: () => void, serve: () => T): T {
  try {
    return serve();
  } finally {
    endBootStop();
  }
}

/** Resolves when `done()` holds (checked every 50 ms) or at `deadline` (performance.now() time). */
export async function waitUntil(done: () => boolean, deadline: number): Promise<void> {
  while (!done() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}
