/**
 * Two bounds on what one client connection may hold, for a hono app served by node (enclave/http.ts
 * listen): shared by the host and the key broker. node's own limits time requests, never answers,
 * and read every request a client sends in one go:
 * - pipelining: node takes in every request sent at once, and holds back reading only once their
 *   answers fill its buffers; requests that wait on something slow answer nothing meanwhile, so
 *   one connection could make a server hold any number of them. Past `maxRequestsPerConnection`
 *   under way at once the connection is closed, nothing more read from it or answered on it
 *   (clients send one request at a time: browsers and fetch never pipeline);
 * - a client that stops reading: node never times out an answer, so a connection whose answers are
 *   never read stayed open for ever, and a few clients could take every connection a server allows
 *   (maxConnections). One that takes none of its answer for `clientStallTimeoutMs` is closed
 *   (StallWatch).
 * Requests without node's bindings (app.request() in tests) pass unguarded.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { Context, MiddlewareHandler } from "hono";
import { Sweep } from "./sweep.ts";

/** Requests under way on one connection at once (HTTP pipelining) by default; past it the connection is closed. */
export const MAX_REQUESTS_PER_CONNECTION = 16;

/** Time a client may take none of its answer by default (the host's and the key broker's); past it the connection is closed. */
export const DEFAULT_CLIENT_STALL_TIMEOUT_MS = 30_000;

export interface ConnectionGuardOptions {
  /** Requests under way on one connection at once; past it the connection is closed. */
  readonly maxRequestsPerConnection: number;
  /** Time a client may take none of its answer while the server waits on it; past it the connection is closed. */
  readonly clientStallTimeoutMs: number;
  /** Called for each request refused, its connection closed, with why (e.g. for a log). */
  readonly onRefused?: (c: Context, reason: GuardRefusal) => void;
}

/**
 * Why a request was refused: it was past `maxRequestsPerConnection`, or came on a connection the
 * guard had closed for that (sent in the same go); or its connection was closed before it came,
 * otherwise (by the client, or by the server for another reason). Either way nothing is answered.
 */
export type GuardRefusal = "too-many-requests" | "connection-closed";

/** What @hono/node-server passes as `c.env` (its HttpBindings). */
interface NodeBindings {
  readonly incoming: IncomingMessage;
  readonly outgoing: ServerResponse;
}

/** A middleware applying both bounds to each request's connection; first in line, before any route. */
export function guardConnections(options: ConnectionGuardOptions): MiddlewareHandler {
  // Each connection's requests under way. A pipelined request whose answer waits its turn has no
  // connection of its own yet: node emits no "close" for its answer when the connection goes, so
  // the connection's own "close" ends what is left (watchRequests). Counted here, not from
  // onConnectionClosed's watchers: the host's requests also watch their connection there while they
  // wait, and would count twice.
  const underway = new WeakMap<Socket, Set<GuardedRequest>>();
  // Connections closed past the bound: node still hands over every request read with the one that
  // closed it, and those are refused as it was.
  const closedForTooMany = new WeakSet<Socket>();
  const stalls = new StallWatch(options.clientStallTimeoutMs);
  return async (c, next) => {
    const node = c.env as Partial<NodeBindings> | undefined;
    if (node?.incoming === undefined || node.outgoing === undefined) return next();
    const socket = node.incoming.socket;
    if (socket.destroyed && !closedForTooMany.has(socket)) {
      options.onRefused?.(c, "connection-closed");
      return RESPONSE_ALREADY_SENT;
    }
    let requests = underway.get(socket);
    if (socket.destroyed || (requests !== undefined && requests.size >= options.maxRequestsPerConnection)) {
      closedForTooMany.add(socket);
      socket.destroy();
      options.onRefused?.(c, "too-many-requests");
      return RESPONSE_ALREADY_SENT;
    }
    if (requests === undefined) {
      requests = new Set();
      underway.set(socket, requests);
      watchRequests(socket, requests, stalls);
    }
    stalls.add(new GuardedRequest(node.outgoing, requests));
    await next();
  };
}

/**
 * Ends the requests still under way on `socket` when it closes: one watch per connection, however
 * many requests it carries (a keep-alive connection's), made in a function of its own so that it
 * holds only the connection's set, not the request that came first.
 */
function watchRequests(socket: Socket, requests: Set<GuardedRequest>, stalls: StallWatch): void {
  onConnectionClosed(socket, () => {
    for (const request of requests) stalls.end(request);
  });
}

/**
 * One request under way on its connection, among that connection's `requests`, with its stall
 * measure (StallWatch.visit): fields, not closures or a timer per request. Run through tsx (as the
 * host and the key broker are), esbuild gives each function assigned to a name its name with
 * Object.defineProperty (keepNames), about 0.3 µs and a 256-byte property table each; and a timer
 * and the closures around it were some 0.5 KB a request for the host's scavenges to copy.
 */
class GuardedRequest {
  /** What the client had taken at the last check, if the server was waiting on it then. */
  taken = "";
  /** When it was last checked (or came). */
  checked = performance.now();
  /** Checks in a row more than half a period late. */
  late = 0;

  constructor(
    readonly outgoing: ServerResponse,
    readonly requests: Set<GuardedRequest>,
  ) {
    requests.add(this);
  }
}
/** A listener or a stop that does nothing (host/app.ts uses it too). */
export function noop(): void {}

/**
 * Checks in a row more than half a period late that each start a client's stall measure again
 * (StallWatch); the next late one judges it, so under a lasting overload a client that takes
 * nothing is closed at the third late check in a row, not never.
 */
const LATE_CHECKS_FORGIVEN = 2;

/** Each connection's watchers of its close, as what each calls then (onConnectionClosed). */
const closeWatchers = new WeakMap<Socket, Set<() => void>>();

/**
 * Calls `gone` when the client's connection `socket` closes, or at once if it is closed (destroyed)
 * already; returns what stops the watch. The connection, not a request's answer: an answer
 * pipelined behind another waits for its turn with no socket, and node neither marks it destroyed
 * nor emits its "close" when the connection goes. One listener per connection however many watch
 * it (the guard's requests under way, up to MAX_REQUESTS_PER_CONNECTION, past node's warning at
 * ten, and the host's requests waiting on their client).
 */
export function onConnectionClosed(socket: Socket, gone: () => void): () => void {
  if (socket.destroyed) {
    gone();
    return noop;
  }
  const watchers = closeWatchers.get(socket) ?? watchClose(socket);
  watchers.add(gone);
  return () => watchers.delete(gone);
}

/**
 * The one "close" listener of a connection, and the set of its watchers it calls. Made in a
 * function of its own: a listener made in onConnectionClosed shared its scope with the first
 * watcher, which it then held (and its request's answer) for as long as the connection lived.
 */
function watchClose(socket: Socket): Set<() => void> {
  const watchers = new Set<() => void>();
  socket.once("close", () => {
    closeWatchers.delete(socket);
    for (const watcher of watchers) watcher();
  });
  closeWatchers.set(socket, watchers);
  return watchers;
}

/**
 * Closes the connection of a client that takes none of its answer for between `ms` and twice that
 * while the server waits on it: a streamed answer whose writes wait for room in the connection
 * (the host's pipeAnswer then ends it as aborted, stopping the enclave's request and freeing its
 * slot), or an answer handed over whole whose last bytes are not all sent. node times out
 * requests, never answers: without this a client that stops reading held its connection for ever
 * (pipelined requests whose answers are never read, anonymous ones included), so a few could take
 * every connection a server allows, and a streamed answer's slot until the enclave's idle timeout.
 * Progress is what the connection has handed to the kernel: what it passed to libuv (written, less
 * what waits in its buffer), and what of that libuv still holds (its write queue, the internal
 * `writeQueueSize` node's own socket timeout reads for the same purpose). A chunk is passed to
 * libuv whole, and a whole answer is one chunk: counted only as passed, an answer of megabytes
 * taken slowly but steadily showed no progress until its last byte, and was cut. What the kernel
 * itself buffers (up to a few MB) is still unseen: a client taking less than about half of that
 * per `ms` looks stalled. A node without `writeQueueSize` has no client closed. A stall of this
 * process itself (a check more than half a period late) starts the measure again: the bound is then
 * `ms` to twice that after the last such stall, or the third late check in a row under a lasting
 * overload.
 *
 * One timer for all the requests under way (a server's), set while there is any (Sweep): every
 * `ms` it checks each of them. A request that came just before a check is measured from it: the
 * client is still cut only after a whole period in which it took nothing, between `ms` and twice
 * that after it stopped, as with a timer of its own.
 */
class StallWatch extends Sweep<ServerResponse, GuardedRequest> {
  /** Each answer's "close" listener (`this` is the answer), made once. */
  readonly #answerClosed: (this: ServerResponse) => void;

  constructor(ms: number) {
    super(ms);
    const watch = this;
    this.#answerClosed = function (this: ServerResponse) {
      const request = watch.tracked(this);
      if (request !== undefined) watch.end(request);
    };
  }

  /** Watches `request` until its answer or its connection closes (end). */
  add(request: GuardedRequest): void {
    this.track(request.outgoing, request);
    // node emits an answer's "close" once; a second (another emitter's) finds it ended already.
    request.outgoing.on("close", this.#answerClosed);
  }

  /** Stops watching `request` and takes it from its connection's requests (once or more). */
  end(request: GuardedRequest): void {
    request.requests.delete(request);
    this.untrack(request.outgoing);
  }

  protected visit(request: GuardedRequest, at: number): void {
    // A check more than half a period late follows a stall of this process (a long GC pause, a
    // busy machine): the client may have had no turn to take anything since the last one, and a
    // client reading steadily was cut for it. Its measure starts again from here, unless the checks
    // before it were late too (LATE_CHECKS_FORGIVEN): under a lasting overload every check is late,
    // and a client that had stopped reading was never cut. From then on it is judged on what it took
    // since the last check, late as it was (the process had turns between them). Judged per request,
    // not once per sweep (as IdleAnswers does): a request's first check is measured from when it
    // came, so one that came just before a late sweep is not counted late; the sweep's lateness
    // would close a client that takes nothing one check sooner under a lasting overload.
    request.late = at - request.checked > this.periodMs * 1.5 ? request.late + 1 : 0;
    if (request.late > 0 && request.late <= LATE_CHECKS_FORGIVEN) request.taken = "";
    request.checked = at;
    const outgoing = request.outgoing;
    const socket = outgoing.socket;
    const waiting =
      socket !== null && (outgoing.writableNeedDrain || (outgoing.writableEnded && !outgoing.writableFinished));
    if (!waiting) {
      request.taken = "";
      return;
    }
    const queued = (socket as Socket & { _handle?: { writeQueueSize?: unknown } | null })._handle?.writeQueueSize;
    // Without it (a node that no longer has it) progress is unseen: a good client is not cut for that.
    if (typeof queued !== "number") return;
    const now = `${socket.bytesWritten - socket.writableLength} ${queued}`;
    if (now === request.taken) socket.destroy();
    else request.taken = now;
  }
}
