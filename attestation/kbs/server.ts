/**
 * The key broker's HTTP API (protocol.ts): `POST /v1/kbs/challenge`, `POST /v1/kbs/release`,
 * `GET /healthz`. Every answer is JSON; refusals are `{error: {code, message}}` with the
 * BrokerError's status. One log line per release attempt, with public values only (key id,
 * outcome, code, the refusal's reason, TEE, measurement, for a release (and a refusal after the
 * document verified) the digests of the manifest and of the document, the TCP peer's address,
 * timing): never a key, wrapped or not. One log line, too, for every other fault (500 INTERNAL) it
 * answers, on any route, and for every request refused before any route; each names its TCP peer.
 */
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { loopbackHostOnly } from "../../client/loopback.ts";
import {
  DEFAULT_CLIENT_STALL_TIMEOUT_MS,
  guardConnections,
  MAX_REQUESTS_PER_CONNECTION,
} from "../../enclave/connection-guards.ts";
import { bodyRefusal, listenBeforeServing, type RunningServer } from "../../enclave/http.ts";
import { KEY_ID_PATTERN } from "../../models/key-id.ts";
import { DuplicateMemberError, parseJsonText } from "../json-text.ts";
import {
  asBrokerError,
  BrokerError,
  CLIENT_LIMITS,
  type KeyBroker,
  type ReleaseRecord,
  releasesAdmittedWithin,
} from "./broker.ts";

/** Largest release request accepted (an attestation document with its certificate chains). */
export const MAX_RELEASE_BYTES = 1024 * 1024;
/**
 * Connections `kbs serve` holds open at once from one client (limitBucket); past it a new one from
 * that client is closed as it comes, so no single address takes all the server holds (1 024).
 */
export const MAX_CONNECTIONS_PER_CLIENT = 64;
/** Release requests under way at once, and from one client, by default (BrokerAppOptions.maxReleasesAtOnce…). */
export const MAX_RELEASES_AT_ONCE = 64;
export const MAX_RELEASES_AT_ONCE_PER_CLIENT = 8;
/** Longest reason in a log line: a malformed request's may quote a field name the caller chose. */
const MAX_REASON_CHARS = 1000;

export interface ReleaseLogEntry {
  readonly event: "release";
  readonly outcome: "released" | "refused";
  readonly keyId: string | null;
  readonly code: string | null;
  readonly stage: string | null;
  /**
   * A refusal's reason (BrokerError.detail, at most MAX_REASON_CHARS): for KBS_ATTESTATION_FAILED
   * the verifier's message, which names what the release policy expects and so is not sent to the
   * caller; for INTERNAL (a fault of the broker, 500) what failed and its error (brokerFault). Null
   * for a release.
   */
  readonly reason: string | null;
  readonly tee: string | null;
  readonly simulated: boolean | null;
  readonly measurement: string | null;
  /**
   * SHA-256 of the attested manifest (its compact JWS) and of the attestation document, in hex, as
   * the enclave's audit records and documents name them: a release's, and a refusal's after the
   * whole document verified (KBS_KEY_NOT_IN_MANIFEST). Null for any other refusal.
   */
  readonly manifestDigest: string | null;
  readonly documentDigest: string | null;
  /**
   * Who asked: the TCP peer's address and port as the broker's socket reports them (`192.0.2.7:51234`,
   * `[2001:db8::7]:51234`), never a header the client chose (X-Forwarded-For). Behind a proxy or TLS
   * terminator it is the proxy's. Null when there is no socket (a request made in process).
   */
  readonly peer: string | null;
  readonly ms: number;
}

/**
 * A fault of the broker (500 INTERNAL) that no release attempt's line names: on another route (a
 * challenge, /healthz), or on the release route before its handler ran. One line each.
 */
export interface FaultLogEntry {
  readonly event: "fault";
  readonly code: "INTERNAL";
  /**
   * What failed (brokerFault's detail: the request being answered, the error's class, its code when
   * it has one, and its message; never key material), at most MAX_REASON_CHARS.
   */
  readonly reason: string;
  /** The TCP peer, as ReleaseLogEntry.peer names it; null without a socket (a request made in process). */
  readonly peer: string | null;
}

/**
 * A request refused before any route saw it, which no release attempt's line names: one the server
 * could not read or did not receive in time (enclave/http.ts Refusal: answered with its JSON error,
 * 400 REQUEST_UNREADABLE, 431 HEADERS_TOO_LARGE or 408 REQUEST_TIMEOUT), or one the connection
 * guards refused unanswered, closing its connection (enclave/connection-guards.ts: 429 past the
 * bound on requests under way on one connection, 499 on a connection closed before it came; these
 * statuses are the log's only, as in the host's access log). Status, code and sizes: nothing the
 * client sent, not even the path.
 */
export interface RequestRefusedLogEntry {
  readonly event: "request-refused";
  readonly status: number;
  /** The code answered; null when nothing was (the connection guards'). */
  readonly code: string | null;
  /** Why, in the broker's own fixed words (the answer's message, when there was one). */
  readonly reason: string;
  /** The method as node parsed it (one of a fixed list); null when the request line was not read. */
  readonly method: string | null;
  /** The answer's body, in bytes (0 when nothing was answered). */
  readonly responseBytes: number;
  /**
   * The TCP peer, as ReleaseLogEntry.peer names it, for a request refused while the broker was not
   * serving yet or by the connection guards; null for one the server could not read or receive in
   * time (enclave/http.ts's Refusal names no socket) and without a socket (a request made in process).
   */
  readonly peer: string | null;
}

/**
 * A line of the broker's log: a release attempt, a fault no release attempt's line names, or a
 * request refused before any route.
 */
export type BrokerLogEntry = ReleaseLogEntry | FaultLogEntry | RequestRefusedLogEntry;

function errorJson(code: string, message: string) {
  return { error: { code, message } };
}

/**
 * Limits per client, counted per limitBucket of the connection's address in one-minute windows
 * (defaults: CLIENT_LIMITS, broker.ts). Challenges cost the broker nothing to keep (broker.ts,
 * "Challenges"), but each release attempt spends one, which the broker keeps until it expires, and
 * makes it verify a document: both are bounded per client. The address is the TCP peer's: behind a
 * reverse proxy or TLS terminator every client shares the proxy's address, and so one budget
 * (docs/deploy.md, step 3).
 */
export interface BrokerAppOptions {
  /** Challenges one client may take per minute (default 60). */
  readonly challengesPerMinute?: number;
  /** Release attempts one client may make per minute (default 20). */
  readonly releasesPerMinute?: number;
  /**
   * Clients counted at once (default 5 000): past it a new client is refused (503 KBS_BUSY) until
   * a window ends. With releasesPerMinute it bounds the challenges spent in one lifetime, which the
   * broker must have room for (createBrokerApp checks).
   */
  readonly maxClients?: number;
  /** Milliseconds for the windows; by default a monotonic clock (performance.now()). */
  readonly now?: () => number;
  /**
   * Release requests under way at once (default 64: its body being read, its document verified);
   * past it a new one is refused (503 KBS_BUSY) before its body is read. With MAX_RELEASE_BYTES it
   * bounds the bodies held at once (64 MiB by default): the per-minute limits count a release
   * attempt only once its body is read.
   */
  readonly maxReleasesAtOnce?: number;
  /** Release requests under way at once from one client (limitBucket; default 8), within maxReleasesAtOnce. */
  readonly maxReleasesAtOncePerClient?: number;
  /**
   * Answer only requests whose Host names this machine (isLoopbackHost); any other is refused with
   * 421 KBS_HOST_NOT_LOOPBACK before any route. `kbs serve` sets it when it serves a key released to
   * the simulator on loopback: anyone can forge the simulator's evidence, so loopback is what keeps
   * such a key on this machine, and a web page whose own name an attacker rebinds to 127.0.0.1 (DNS
   * rebinding) reaches a loopback server from the user's browser, naming its own host. Not set by
   * default: for keys that need genuine evidence the Host decides nothing, and a proxy in front may
   * pass on its own.
   */
  readonly loopbackHostOnly?: boolean;
  /**
   * Requests under way on one connection at once (pipelined; default MAX_REQUESTS_PER_CONNECTION,
   * 16): past it the connection is closed, nothing more read or answered on it.
   */
  readonly maxRequestsPerConnection?: number;
  /**
   * Time a client may take none of its answers (default 30 s): past it the connection is closed.
   * Without it a client that stopped reading held its connection for ever, so a few addresses
   * (MAX_CONNECTIONS_PER_CLIENT each) could take every connection and keep enclaves from their keys.
   */
  readonly clientStallTimeoutMs?: number;
}

/** What a request gets while `kbs serve` has not yet checked where it listens (listenBroker). */
export const NOT_SERVING_YET = "key broker: not serving yet (checking the address it listens on); retry later";

/**
 * Serves a broker app (createBrokerApp's, with its `log`) on `hostname:port` as `kbs serve` does:
 * at most MAX_CONNECTIONS_PER_CLIENT connections from one client (limitBucket: one address cannot
 * hold every connection the server takes, and an enclave's boot needs one), and each request the
 * server refuses itself, before the app sees it, logged as a RequestRefusedLogEntry. The app is
 * `appFor` the server once it listens, so it may depend on the address bound (a name is bound where
 * it resolves): until it is served every request is refused (503 KBS_BUSY, NOT_SERVING_YET, logged
 * as refused), so none is answered by an app before that check. When `appFor` throws the server
 * stops listening and listenBroker rejects with its error. Rejects with enclave/http.ts's
 * ListenError when it cannot listen there. `listenFirst` is enclave/http.ts's listenBeforeServing,
 * or a test's (one that reports another bound address).
 */
export async function listenBroker(
  appFor: (bound: RunningServer) => Hono<BrokerEnv> | Promise<Hono<BrokerEnv>>,
  log: (entry: BrokerLogEntry) => void,
  hostname: string,
  port: number,
  listenFirst = listenBeforeServing,
): Promise<RunningServer> {
  // The one answer until then, its text and size found once (a Response's body is read once, so
  // each request gets its own, of the same text).
  const notYet = JSON.stringify(errorJson("KBS_BUSY", NOT_SERVING_YET));
  const notYetBytes = Buffer.byteLength(notYet);
  // node's bindings are what @hono/node-server passes a handler, as to the app's (BrokerEnv).
  const meanwhile = (request: Request, env?: BrokerEnv["Bindings"]) => {
    log({
      event: "request-refused",
      status: 503,
      code: "KBS_BUSY",
      reason: NOT_SERVING_YET,
      method: request.method,
      responseBytes: notYetBytes,
      peer: socketPeer(env?.incoming?.socket),
    });
    return new Response(notYet, {
      status: 503,
      headers: { "content-type": "application/json", "retry-after": "1" },
    });
  };
  const server = await listenFirst(meanwhile, hostname, port, {
    maxConnectionsPerClient: { max: MAX_CONNECTIONS_PER_CLIENT, clientOf: limitBucket },
    onRefused: (refusal) =>
      log({
        event: "request-refused",
        status: refusal.status,
        code: refusal.code,
        reason: refusal.message,
        method: refusal.method,
        responseBytes: refusal.responseBytes,
        peer: null,
      }),
  });
  let app: Hono<BrokerEnv>;
  try {
    app = await appFor(server);
  } catch (error) {
    await server.close();
    throw error;
  }
  server.serve(app.fetch);
  return server;
}

/**
 * The bucket an address is limited in. IPv4: the address, also when written IPv4-mapped
 * (::ffff:192.0.2.1, as a dual-stack socket reports it). IPv6: its /64, the block a single
 * subscriber or host is usually given whole; per address, one machine would have 2^64 budgets.
 * Anything else (no socket address) is a bucket of its own.
 */
export function limitBucket(address: string): string {
  const groups = ipv6Groups((address.split("%")[0] as string).toLowerCase());
  if (groups === null) return address;
  const [g6, g7] = [groups[6] as number, groups[7] as number];
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${g6 >> 8}.${g6 & 0xff}.${g7 >> 8}.${g7 & 0xff}`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(":")}::/64`;
}

/** The eight 16-bit groups of an IPv6 address (zone id removed), or null if it is not one. */
function ipv6Groups(text: string): number[] | null {
  if (!text.includes(":")) return null;
  // A dotted IPv4 tail (::ffff:192.0.2.1) is two groups.
  const dotted = /^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (dotted !== null) {
    const [a, b, c, d] = dotted.slice(2).map(Number) as [number, number, number, number];
    if (Math.max(a, b, c, d) > 255) return null;
    text = `${dotted[1]}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const parsed = halves.map((half) => (half === "" ? [] : half.split(":")));
  if (!parsed.every((part) => part.every((g) => /^[0-9a-f]{1,4}$/.test(g)))) return null;
  const [head = [], tail = []] = parsed;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  return [...head, ...Array<string>(missing).fill("0"), ...tail].map((g) => Number.parseInt(g, 16));
}

const WINDOW_MS = CLIENT_LIMITS.windowMs;

type LimitedRequest = "challenge" | "release";

/** A request the limiter refuses: the status, code and message to answer, and Retry-After. */
interface LimitRefusal {
  readonly status: 429 | 503;
  readonly code: "KBS_RATE_LIMITED" | "KBS_BUSY";
  readonly message: string;
  readonly retryAfterSeconds: number;
}

/**
 * Fixed one-minute windows per bucket, counting challenges and release attempts apart, at most
 * `maxClients` remembered. A new bucket first drops the windows that have ended (they are at the
 * front: the map is in window-start order); if every one left is live, the new bucket is refused
 * (503 KBS_BUSY) until the oldest ends. A live window is never dropped: dropping one would give
 * its client a fresh budget, so a client with more than `maxClients` addresses (an IPv6 /51 is 2^13
 * /64s) would never be limited, and the release attempts admitted in a challenge lifetime, which
 * size the broker's spent set, would have no bound.
 */
class ClientLimiter {
  readonly #windows = new Map<string, { start: number; challenge: number; release: number }>();

  constructor(
    private readonly perMinute: Readonly<Record<LimitedRequest, number>>,
    private readonly maxClients: number,
    private readonly now: () => number,
  ) {}

  /**
   * Null when this request from `address` is allowed (and counted, unless `count` is false: a look
   * that changes no budget), else why it is refused.
   */
  take(address: string, kind: LimitedRequest, count = true): LimitRefusal | null {
    const now = this.now();
    const secondsUntilEnd = (start: number) => Math.max(1, Math.ceil((start + WINDOW_MS - now) / 1000));
    const bucket = limitBucket(address);
    let window = this.#windows.get(bucket);
    if (window === undefined || now - window.start >= WINDOW_MS) {
      this.#windows.delete(bucket);
      for (const [key, w] of this.#windows) {
        if (now - w.start < WINDOW_MS) break;
        this.#windows.delete(key);
      }
      const oldest = this.#windows.values().next().value;
      if (oldest !== undefined && this.#windows.size >= this.maxClients) {
        return {
          status: 503,
          code: "KBS_BUSY",
          message:
            `key broker: already counting ${this.maxClients} client addresses within their minute, ` +
            "the most it counts at once; retry later",
          retryAfterSeconds: secondsUntilEnd(oldest.start),
        };
      }
      if (!count) return null;
      window = { start: now, challenge: 0, release: 0 };
      this.#windows.set(bucket, window);
    }
    if (window[kind] >= this.perMinute[kind]) {
      return {
        status: 429,
        code: "KBS_RATE_LIMITED",
        message:
          `key broker: over ${this.perMinute[kind]} ${kind === "challenge" ? "challenges" : "release attempts"} ` +
          "a minute from this address; retry later",
        retryAfterSeconds: secondsUntilEnd(window.start),
      };
    }
    if (count) window[kind]++;
    return null;
  }
}

/**
 * Release requests under way, in all and per bucket, each from before its body is read until it
 * is answered. A new one past either bound is refused; nothing is queued.
 */
class ReleasesUnderWay {
  readonly #byBucket = new Map<string, number>();
  #total = 0;

  constructor(
    private readonly max: number,
    private readonly perClient: number,
  ) {}

  /** Null when one more from `bucket` may start (it is then counted until `end`), else why not. */
  start(bucket: string): string | null {
    const mine = this.#byBucket.get(bucket) ?? 0;
    if (mine >= this.perClient) {
      return (
        `key broker: already reading ${this.perClient} release requests from this address at once, ` +
        "the most it reads from one; retry later"
      );
    }
    if (this.#total >= this.max) {
      return (
        `key broker: already reading ${this.max} release requests at once, ` +
        "the most it reads at a time; retry later"
      );
    }
    this.#byBucket.set(bucket, mine + 1);
    this.#total++;
    return null;
  }

  end(bucket: string): void {
    const mine = this.#byBucket.get(bucket) ?? 0;
    if (mine <= 1) this.#byBucket.delete(bucket);
    else this.#byBucket.set(bucket, mine - 1);
    this.#total--;
  }
}

type BrokerEnv = {
  /** node's request, as @hono/node-server passes it (none under app.request() in tests). */
  Bindings: { incoming?: IncomingMessage };
  /** When the release attempt began (performance.now()), for its log line's `ms`. */
  Variables: { started: number };
};

export function createBrokerApp(
  broker: KeyBroker,
  log: (entry: BrokerLogEntry) => void = () => {},
  options: BrokerAppOptions = {},
): Hono<BrokerEnv> {
  const limits = {
    challenge: options.challengesPerMinute ?? CLIENT_LIMITS.challengesPerMinute,
    release: options.releasesPerMinute ?? CLIENT_LIMITS.releasesPerMinute,
  };
  const maxClients = options.maxClients ?? CLIENT_LIMITS.maxClients;
  // Every challenge a release attempt spends is kept for a lifetime (broker.ts, "Challenges"): the
  // broker must have room for all that these limits admit in one, or strangers with many addresses
  // could fill it and have every enclave refused.
  const admitted = releasesAdmittedWithin(broker.challengeTtlMs, { releasesPerMinute: limits.release, maxClients });
  if (broker.maxSpentChallenges < admitted) {
    throw new RangeError(
      `key broker maxSpentChallenges: expected at least ${admitted} (${maxClients} clients, ` +
        `${limits.release} release attempts a minute each, over a ${broker.challengeTtlMs} ms challenge lifetime), ` +
        `found ${broker.maxSpentChallenges}`,
    );
  }
  const app = new Hono<BrokerEnv>();
  const maxRequestsPerConnection = options.maxRequestsPerConnection ?? MAX_REQUESTS_PER_CONNECTION;
  // First in line, before any limit is counted (enclave/connection-guards.ts).
  app.use(
    "*",
    guardConnections({
      maxRequestsPerConnection,
      clientStallTimeoutMs: options.clientStallTimeoutMs ?? DEFAULT_CLIENT_STALL_TIMEOUT_MS,
      onRefused: (c, why) =>
        log({
          event: "request-refused",
          status: why === "too-many-requests" ? 429 : 499,
          code: null,
          reason:
            why === "too-many-requests"
              ? `connection: more than ${maxRequestsPerConnection} requests under way on it at once (pipelined); ` +
                "closed, this one unanswered"
              : "connection: closed before this request came; unanswered",
          method: c.req.method,
          responseBytes: 0,
          peer: peerOf(c),
        }),
    }),
  );
  const limiter = new ClientLimiter(limits, maxClients, options.now ?? (() => performance.now()));
  const underWay = new ReleasesUnderWay(
    options.maxReleasesAtOnce ?? MAX_RELEASES_AT_ONCE,
    options.maxReleasesAtOncePerClient ?? MAX_RELEASES_AT_ONCE_PER_CLIENT,
  );
  const addressOf = (c: Context<BrokerEnv>) => c.env?.incoming?.socket?.remoteAddress ?? "unknown";
  /** The limiter's refusal of this request as an answer (with Retry-After), or null when allowed. */
  const overLimit = (c: Context<BrokerEnv>, kind: LimitedRequest, count = true) => {
    const refusal = limiter.take(addressOf(c), kind, count);
    if (refusal === null) return null;
    c.header("Retry-After", String(refusal.retryAfterSeconds));
    return { refusal, response: c.json(errorJson(refusal.code, refusal.message), refusal.status) };
  };
  const refusedForLimit = (
    c: Context<BrokerEnv>,
    limited: NonNullable<ReturnType<typeof overLimit>>,
    started: number,
  ) => {
    log(entry(peerOf(c), "refused", null, limited.refusal.code, null, limited.refusal.message, null, started));
    return limited.response;
  };
  /** Errors the release route has logged with its attempt: not logged again as faults. */
  const logged = new WeakSet<BrokerError>();
  const during = (c: Context<BrokerEnv>) => `answering ${c.req.method} ${c.req.path}`;
  // The one place an error becomes an answer: a BrokerError with its status, code and message (an
  // attestation failure's and a fault's message say little; their detail is for the log), anything
  // else as a fault (500 INTERNAL), which is logged here unless the release route logged it with
  // its attempt: a fault on any route writes one line naming what failed.
  app.onError((error, c) => {
    const refusal = asBrokerError(error, during(c));
    if (refusal.status === 500 && !logged.has(refusal)) {
      log({ event: "fault", code: "INTERNAL", reason: cut(refusal.detail), peer: peerOf(c) });
    }
    if (refusal.status === 503) c.header("Retry-After", "1");
    return c.json(errorJson(refusal.code, refusal.message), refusal.status);
  });
  // A thrown value that is not an Error passes hono's onError by (it would reject the request
  // unanswered and unlogged): made a fault here, before every route, and so answered above.
  app.use("*", async (c, next) => {
    try {
      await next();
    } catch (error) {
      throw asBrokerError(error, during(c));
    }
  });
  app.notFound((c) => c.json(errorJson("NOT_FOUND", "no such route"), 404));
  if (options.loopbackHostOnly === true) {
    // Before any route (and so before any limit is counted): a rebound page names its own host.
    // client/loopback.ts's rule and words, as cloister proxy and web refuse such a request.
    app.use(
      "*",
      loopbackHostOnly<BrokerEnv>((c, message) => {
        if (c.req.path === "/v1/kbs/release") {
          log(entry(peerOf(c), "refused", null, "KBS_HOST_NOT_LOOPBACK", null, message, null, performance.now()));
        }
        return c.json(errorJson("KBS_HOST_NOT_LOOPBACK", message), 421);
      }, "this broker releases a key to the INSECURE simulator, so it answers this machine only"),
    );
  }

  const limitBody = bodyLimit({
    maxSize: MAX_RELEASE_BYTES,
    // Answered before the handler below runs, so its log line is written here (no body content:
    // the key id is not read from a body that was not accepted).
    onError: (c: Context<BrokerEnv>) => {
      const message = `release request: expected at most ${MAX_RELEASE_BYTES} bytes`;
      log(entry(peerOf(c), "refused", null, "KBS_REQUEST_TOO_LARGE", null, message, null, c.get("started")));
      return c.json(errorJson("KBS_REQUEST_TOO_LARGE", message), 413);
    },
  });

  app.get("/healthz", (c) => c.json({ status: "ok", keys: broker.keyIds.length }));

  app.post("/v1/kbs/challenge", (c) => overLimit(c, "challenge")?.response ?? c.json(broker.challenge()));

  app.post(
    "/v1/kbs/release",
    async (c, next) => {
      const started = performance.now();
      c.set("started", started);
      // A client already over its limit is refused before its body is read (not counted: the
      // attempt is counted when it would spend, below).
      const limited = overLimit(c, "release", false);
      if (limited !== null) return refusedForLimit(c, limited, started);
      // Nor is a body read past the bound on those under way, in all and from this client.
      const bucket = limitBucket(addressOf(c));
      const busy = underWay.start(bucket);
      if (busy !== null) {
        log(entry(peerOf(c), "refused", null, "KBS_BUSY", null, busy, null, started));
        c.header("Retry-After", "1");
        return c.json(errorJson("KBS_BUSY", busy), 503);
      }
      try {
        await next();
      } finally {
        underWay.end(bucket);
      }
    },
    async (c, next) => {
      // A body without a Content-Length is read here, before the handler below: one whose stream
      // fails is answered, and logged, here. (The handler's own errors never reach this catch: hono
      // answers them with onError inside `next`.)
      try {
        return await limitBody(c, next);
      } catch (error) {
        const refusal = incompleteBody(error, c);
        log(entry(peerOf(c), "refused", null, refusal.code, null, refusal.detail, null, c.get("started")));
        throw refusal;
      }
    },
    async (c) => {
      const started = c.get("started");
      let keyId: string | null = null;
      try {
        let text: string;
        try {
          text = await c.req.text();
        } catch (error) {
          // The body's stream failing (the client went away mid-body): not a malformed request, and
          // not the broker's.
          throw incompleteBody(error, c);
        }
        let body: unknown;
        try {
          // Each member once (parseJsonText), as the proxy reads request bodies: JSON.parse keeps the
          // last of two `challenge`s (or key ids), which would be spent while a reader of the body
          // (a proxy, a capture) sees the first. Refused before the challenge is looked at.
          body = parseJsonText(text);
        } catch (error) {
          // A member twice is named by its path; other text that does not parse is not quoted.
          const detail = error instanceof DuplicateMemberError ? error.message : "body is not JSON";
          throw new BrokerError("KBS_REQUEST_MALFORMED", 400, `release request: ${detail}`);
        }
        // Counted here, the moment it spends: broker.release spends the challenge before its first
        // await, so each challenge spent is counted in the window it is spent in, which the bound
        // on spent challenges (releasesAdmittedWithin) needs. Counted when the request arrived, a
        // body sent slowly could spend long after its window ended.
        const limited = overLimit(c, "release");
        if (limited !== null) return refusedForLimit(c, limited, started);
        const named = (body as { keyId?: unknown } | null)?.keyId;
        keyId = typeof named === "string" && KEY_ID_PATTERN.test(named) ? named : null;
        const { wrapped, record } = await broker.release(body);
        log(entry(peerOf(c), "released", keyId, null, null, null, record, started));
        return c.json({ wrapped });
      } catch (error) {
        // A fault (not a BrokerError) is logged as answered: INTERNAL, its cause in the reason. Also
        // a value that is not an Error, which hono's onError would not see.
        const refusal = asBrokerError(error, "answering a release request");
        log(
          entry(
            peerOf(c),
            "refused",
            keyId,
            refusal.code,
            refusal.stage ?? null,
            refusal.detail,
            refusal.evidence ?? null,
            started,
          ),
        );
        logged.add(refusal);
        throw refusal;
      }
    },
  );
  return app;
}

/**
 * A release body whose stream failed before its end (the client went away mid-body, a proxy cut
 * it): not malformed, and no fault of the broker. The stream's error goes to the log only. When the
 * server itself answered the request, as a body node could not read (a bad chunk, 400) or did not
 * receive in time (408; enclave/http.ts bodyRefusal), the client got that answer and nothing of the
 * broker's: the error, and so the attempt's log line, has the server's status, code and message.
 */
function incompleteBody(error: unknown, c: Context<BrokerEnv>): BrokerError {
  const stream = error instanceof Error ? `${error.name}: ${error.message}` : typeof error;
  const answered = c.env?.incoming === undefined ? undefined : bodyRefusal(c.env.incoming);
  if (answered !== undefined) {
    return new BrokerError(answered.code, answered.status === 408 ? 408 : 400, answered.message, {
      detail: `${answered.message}, answered by the server (the body's stream: ${stream})`,
      cause: error,
    });
  }
  const message = "release request: the body could not be read whole (the connection closed or failed before its end)";
  return new BrokerError("KBS_REQUEST_INCOMPLETE", 400, message, { detail: `${message}: ${stream}`, cause: error });
}

function entry(
  peer: string | null,
  outcome: ReleaseLogEntry["outcome"],
  keyId: string | null,
  code: string | null,
  stage: string | null,
  reason: string | null,
  record: ReleaseRecord | NonNullable<BrokerError["evidence"]> | null,
  started: number,
): ReleaseLogEntry {
  return {
    event: "release",
    outcome,
    keyId,
    code,
    stage,
    reason: reason === null ? null : cut(reason),
    tee: record?.tee ?? null,
    simulated: record?.simulated ?? null,
    measurement: record?.measurement ?? null,
    manifestDigest: record !== null && "manifestDigest" in record ? record.manifestDigest : null,
    documentDigest: record !== null && "documentDigest" in record ? record.documentDigest : null,
    peer,
    ms: Math.round((performance.now() - started) * 100) / 100,
  };
}

/** A reason as a log line holds it: at most MAX_REASON_CHARS characters, and … when cut. */
function cut(reason: string): string {
  return reason.length <= MAX_REASON_CHARS ? reason : `${reason.slice(0, MAX_REASON_CHARS)}…`;
}

/**
 * The TCP peer of `c`'s connection as its socket reports it, `address:port` (an IPv6 address in
 * brackets), or null without a socket. Not a header: a client chooses those.
 */
function peerOf(c: Context<BrokerEnv>): string | null {
  return socketPeer(c.env?.incoming?.socket);
}

/** `socket`'s TCP peer as peerOf names it; null without one. */
function socketPeer(socket: Socket | undefined): string | null {
  const address = socket?.remoteAddress;
  if (address === undefined) return null;
  const host = address.includes(":") ? `[${address}]` : address;
  return socket?.remotePort === undefined ? host : `${host}:${socket.remotePort}`;
}
