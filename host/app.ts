/**
 * The untrusted host: a hono app that authenticates callers, applies limits and forwards bytes to
 * one enclave or a pool of them (host/pool.ts). It can read a sealed envelope's routing header
 * (version, kind, enclave key id, sizes) and nothing else: it never imports the code that opens
 * sealed messages (a test checks the import graph). Responses stream through as they come; the
 * host never buffers an answer.
 *
 * Routes: GET /healthz, GET /v1/attestation, POST /v1/attestation/challenge, POST /v1/sealed,
 * POST /v1/audit/checkpoint; CORS preflights (OPTIONS) for the origins in `corsOrigins` (browser
 * clients, host/cors.ts).
 *
 * The app runs under @hono/node-server (host/server.ts) and works on node's own request and
 * response objects (`c.env.incoming` / `c.env.outgoing`): bodies are read from the socket, the
 * enclave is reached over node:http on a keep-alive agent, and a sealed answer is written from
 * the enclave's socket straight into the client's, with no web streams or Request/Response
 * objects per request or per frame. Tests run it on a real loopback server.
 */
import {
  Agent,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
  type ServerResponse,
} from "node:http";
import type { Socket } from "node:net";
import { urlToHttpOptions } from "node:url";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { type Context, Hono } from "hono";
import { METHOD_NAME_ALL } from "hono/router";
import { TrieRouter } from "hono/router/trie-router";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { DOCUMENT_MAX_LENGTH } from "../attestation/document-key.ts";
import { describeUntrusted } from "../attestation/untrusted-text.ts";
import {
  guardConnections,
  MAX_REQUESTS_PER_CONNECTION,
  noop,
  onConnectionClosed,
} from "../enclave/connection-guards.ts";
import { bodyRefusal, closeAfterLinger, contentTypeRefusal, readBodyWithin } from "../enclave/http.ts";
import { Sweep } from "../enclave/sweep.ts";
import { ENCLAVE_KEY_ID_HEX, parseEnvelope, TENANT_HEADER } from "../sealed/envelope.ts";
import type { AccessLogEntry, AccessLogSink } from "./access-log.ts";
import { CorsPolicy } from "./cors.ts";
import { bodyTooLarge, errorResponse, HostError, hostBusy } from "./errors.ts";
import type { ApiKeyRecord, ApiKeyStore, Caller, Permission } from "./identity.ts";
import { ConcurrencyLimiter, type LimiterOptions } from "./limiter.ts";
import {
  documentReadReason,
  EnclavePool,
  type MemberReason,
  memberReasonText,
  NOT_SERVING,
  notServingCodeOf,
  type PoolMember,
} from "./pool.ts";

export interface HostOptions {
  /** Base URL of the enclave's internal server (http:), e.g. http://127.0.0.1:8443 */
  readonly enclaveUrl?: string;
  /** A pool of enclaves instead (host/pool.ts), not with `enclaveUrl`: requests are routed by enclave key id. */
  readonly pool?: EnclavePool;
  readonly apiKeys: ApiKeyStore;
  readonly limits: {
    /** Largest sealed request accepted, in bytes. */
    readonly maxRequestBytes: number;
    /** Time allowed for the enclave to send response headers. */
    readonly upstreamHeadersTimeoutMs: number;
    /**
     * Pause between two chunks of a streamed answer past which the answer is cut: found by one sweep
     * every eighth of it (IdleAnswers), so a pause of up to 1.25 times it can pass before the cut.
     * Time the host spends waiting for a slow client to take what came (backpressure) is not counted.
     */
    readonly upstreamIdleTimeoutMs: number;
    /**
     * Sealed request bodies read at once (each up to maxRequestBytes), across all keys and per key:
     * more is HOST_BUSY, so slow senders cannot make the host buffer without bound, nor one key
     * take every reading slot from the others.
     */
    readonly maxBodiesReading: number;
    readonly maxBodiesReadingPerKey: number;
    /**
     * Sealed requests of one API key forwarded or waiting for a slot at once (of `maxInFlight` +
     * `maxQueued` in all): more is HOST_BUSY for that key, so one key cannot take every slot.
     * Default: defaultMaxInFlightPerKey(maxInFlight).
     */
    readonly maxInFlightPerKey?: number;
    /** Time allowed for a client to send its whole request body; past it the connection is closed. */
    readonly requestBodyTimeoutMs: number;
    /**
     * Time a client may take none of the answer the host has for it (a streamed answer waiting for
     * room in the connection, or any answer handed over whole and not yet all sent); past it the
     * connection is closed (enclave/connection-guards.ts).
     */
    readonly clientStallTimeoutMs: number;
  } & LimiterOptions;
  readonly accessLog: AccessLogSink;
  /** Called when a sealed response has ended (e.g. to collect that enclave's audit records). */
  readonly onSealedResponseEnd?: (member: PoolMember) => void;
  /** Origins whose pages may call the API from a browser (exact `scheme://host[:port]`); default none. */
  readonly corsOrigins?: readonly string[];
}

export { TENANT_HEADER };

/** Connections to one enclave beyond `maxInFlight`, for requests the limiter does not count. */
const UPSTREAM_EXTRA_SOCKETS = 64;
const CHALLENGE_MAX_BYTES = 1024;
const CHALLENGE_ANSWER_MAX_BYTES = 64 * 1024;
/** The permissions of which a key needs one before the host reads a sealed request's body. */
const SEALED_PERMISSIONS: readonly Permission[] = ["chat", "complete"];

/**
 * A pool member's failures to serve its document after which a new session is offered the next
 * member (the member is marked unreachable until a refresh reads it again).
 */
const DOCUMENT_FAILOVER_CODES: ReadonlySet<string> = new Set([
  "ENCLAVE_UNREACHABLE",
  "ENCLAVE_TIMEOUT",
  "ENCLAVE_RESPONSE_TOO_LARGE",
]);

/** Headers of the enclave's answer the host passes on; nothing else the enclave sends is copied. */
const PASSED_HEADERS = ["content-type", "retry-after"] as const;

/** What @hono/node-server passes as `c.env` (its HttpBindings). */
type Env = { Bindings: { incoming: IncomingMessage; outgoing: ServerResponse } };
type Variables = {
  caller: Caller | null;
  requestBytes: number;
  /** The pool member a sealed request was forwarded to (its index), for the access log. */
  member: number | null;
  sent: ResponseMeter | null;
  /** CORS headers for this response (empty unless the request's Origin is listed). */
  cors: Record<string, string>;
};

type Outcome = AccessLogEntry["outcome"];

/** nginx's "client closed request": only the access log ever sees it, the client has gone. */
const CLIENT_CLOSED_STATUS = 499 as ContentfulStatusCode;

/** ENCLAVE_UNREACHABLE's words when the enclave could not be reached at all. */
const UNREACHABLE_WORDS = "enclave is unreachable from the host";

/** What the access log says of a request past that bound: only the log sees it, the connection is closed. */
const TOO_MANY_REQUESTS_STATUS = 429;

export function createHostApp(options: HostOptions): Hono<Env & { Variables: Variables }> {
  const app = new Hono<Env & { Variables: Variables }>();
  const limiter = new ConcurrencyLimiter(options.limits);
  /** Sealed request bodies being read, in all and by API key id. */
  let bodiesReading = 0;
  const bodiesReadingByKey = new Map<string, number>();
  /** Sealed requests forwarded or waiting for a slot, by API key id, and how many one key may have. */
  const forwardingByKey = new Map<string, number>();
  const maxInFlightPerKey = options.limits.maxInFlightPerKey ?? defaultMaxInFlightPerKey(options.limits.maxInFlight);
  /** What a sealed request's slot given back (HeldSlot) ends beyond the slot itself. */
  const forwardEnded = (held: HeldSlot) => {
    countDown(forwardingByKey, held.keyId);
    options.onSealedResponseEnd?.(held.member);
  };
  // Connections to an enclave: one per request forwarded, and a few for documents, nonce questions
  // and health checks; more wait in the agent, so a host never opens more than the enclave takes
  // (enclave/run.ts: ENCLAVE_MAX_CONNECTIONS). Audit collection (host/audit-collector.ts) uses one
  // connection of its own.
  const agent = new Agent({ keepAlive: true, maxSockets: options.limits.maxInFlight + UPSTREAM_EXTRA_SOCKETS });
  const upstreamOptions = { agent, limits: options.limits };
  // Given with a pool, an enclaveUrl was dropped, unchecked: a caller may believe it the host's enclave.
  if (options.pool !== undefined && options.enclaveUrl !== undefined) {
    throw new RangeError("enclaveUrl: expected none with a pool (its members are the host's enclaves), found one");
  }
  const pool =
    options.pool ??
    new EnclavePool(options.enclaveUrl === undefined ? [] : [options.enclaveUrl], {
      fetchText: (url) => fetchBounded(upstreamOptions, url),
    });
  // Each member's routes as node:http takes them, made here once: its URL is the host's for its life
  // (parsing one per request took about 20 µs of the host's path before forwarding).
  const memberTargets = new Map<PoolMember, MemberRoutes>();
  // Their URLs were checked as the pool was made (EnclavePool's constructor, checkEnclaveUrl).
  for (const member of pool.members) memberTargets.set(member, memberRoutes(member.url));
  const routeTo = (member: PoolMember, route: UpstreamRoute) => (memberTargets.get(member) as MemberRoutes)[route];

  // Where a refusal of a name (`?enclave=`) tells an operator to look (unknownEnclave).
  const namedIn = pool.isPool ? "pool" : "single enclave";
  /** No member can be asked: retry after the host's Retry-After. */
  const noEnclave = () =>
    new HostError("NO_ENCLAVE_AVAILABLE", 503, "no enclave of this host's pool is ready; retry later", {
      retryAfterSeconds: options.limits.retryAfterSeconds,
    });

  /**
   * The member a nonce question, a checkpoint or a named document (`GET /v1/attestation?enclave=`)
   * goes to: the one the client names (`?enclave=<key id>`, the enclave whose document it is
   * verifying, or the boot an operator asks for), else the best candidate. A single enclave is held
   * to a name as a pool is: a key id other than the one the host knows for it is refused, not
   * answered by the one enclave there is. The host knows the key id of the last document it handed
   * out or read (and reads the document again, at most once a second, for a name it does not know:
   * EnclavePool.findKeyId); a name equal to that one is answered unchecked, so after a restart the
   * host has not yet seen, the old boot's id reaches the new boot, whose answer the client refuses
   * (not signed by the key it verified). No document is read per question to close that.
   */
  const namedMember = async (named: string | undefined): Promise<PoolMember> => {
    if (named !== undefined && !ENCLAVE_KEY_ID_HEX.test(named)) {
      throw new HostError("ENCLAVE_ID_MALFORMED", 400, "enclave: expected a key id of 32 lower-case hex digits");
    }
    const only = pool.members[0] as PoolMember;
    if (!pool.isPool && (named === undefined || named === only.keyId)) return only;
    if (named === undefined) {
      const best = pool.candidates()[0];
      if (best === undefined) throw noEnclave();
      return best;
    }
    const member = await pool.findKeyId(named);
    // A single enclave whose document could not be read just now to learn its key id is down (or
    // booting), as the client would have been told had the host known the name: not another boot.
    // The failed read is named by the pool's reason (EnclavePool.#check: the host's own refusal
    // text, the HTTP status or why the answer held no document; no URL, key or secret). The pool
    // keeps no error object, so there is no cause to pass.
    // The reason's own code, the refusal's, is not told twice, nor are its words when they are the
    // refusal's too (memberReasonText).
    if (!pool.isPool && member === undefined && only.state === "unreachable") {
      const why = only.reason;
      const told = why?.code === "ENCLAVE_UNREACHABLE" && why.words === UNREACHABLE_WORDS;
      const detail = why === null ? "no reason kept" : memberReasonText(why, "ENCLAVE_UNREACHABLE");
      const read = told ? "its document was not read" : `its document was not read; ${detail}`;
      throw new HostError("ENCLAVE_UNREACHABLE", 502, `${UNREACHABLE_WORDS} (${read})`);
    }
    if (member === undefined || member.state === "unreachable") throw unknownEnclave(named, member, namedIn);
    return member;
  };
  const cors = new CorsPolicy(options.corsOrigins ?? []);
  const idleAnswers = new IdleAnswers(options.limits.upstreamIdleTimeoutMs);

  // A single enclave's health (a pool's members are read by its refresh): its own /healthz, asked
  // at most once per HEALTH_CHECK_INTERVAL_MS however often anyone asks the host, and one at a time.
  let health: { at: number; up: Promise<boolean>; done: boolean } | null = null;
  const singleEnclaveUp = (): Promise<boolean> => {
    const now = performance.now();
    if (health !== null && (!health.done || now - health.at < HEALTH_CHECK_INTERVAL_MS)) return health.up;
    const check = {
      at: now,
      done: false,
      up: enclaveAnswers(upstreamOptions, routeTo(pool.members[0] as PoolMember, "/healthz")),
    };
    void check.up.then(() => {
      check.done = true;
    });
    health = check;
    return check.up;
  };

  // The route a path is logged as, whatever the method: its pattern as hono matches it (`/x/:id`
  // for `/x/1`); a path no route has is logged as NO_ROUTE, so the access log holds none of the text
  // a client puts in a path (up to node's 16 KiB of headers, anonymous: a key given in a URL by
  // mistake, or lines made to fill the log). Built at the first request, every route registered;
  // the middleware's `*` (registered as `/*`) is no route: every path has it. A router of its own,
  // every route under ALL: the app's own match is by method (for a route's path asked with another
  // method, c.req.matchedRoutes has the middleware alone), and a set of paths matches no parameter.
  // The routes' own paths (every path a request to the host's own routes has) are answered from a
  // map of what the router says of them: in the host, at the start of 64 requests at once, the
  // router's match took 7-8 µs a request, the lookup under 1 µs. The map holds the routes' paths only.
  let routes: { known: ReadonlyMap<string, string>; match: (path: string) => string } | null = null;
  const routeOf = (path: string): string => {
    if (routes === null) {
      const router = new TrieRouter<string>();
      const paths = app.routes.map((route) => route.path).filter((p) => p !== "/*");
      for (const p of paths) router.add(METHOD_NAME_ALL, p, p);
      const match = (p: string) => router.match(METHOD_NAME_ALL, p)[0][0]?.[0] ?? NO_ROUTE;
      routes = { known: new Map(paths.map((p) => [p, match(p)])), match };
    }
    return routes.known.get(path) ?? routes.match(path);
  };

  // Access log: sizes and timings only, written when the last byte has gone out.
  app.use("*", async (c, next) => {
    const started = performance.now();
    c.set("caller", null);
    c.set("requestBytes", 0);
    c.set("member", null);
    c.set("sent", null);
    c.set("cors", {});
    await next();
    const headersMs = round2(performance.now() - started);
    const sent = c.get("sent");
    // A body node could not read: the server answered it itself, and the app's answer went nowhere.
    const incoming = (c.env as Partial<Env["Bindings"]> | undefined)?.incoming;
    const refused = incoming === undefined ? undefined : bodyRefusal(incoming);
    const status = refused?.status ?? sent?.status ?? c.res.status;
    const base = {
      time: new Date().toISOString(),
      method: c.req.method,
      path: routeOf(c.req.path),
      status,
      keyId: c.get("caller")?.keyId ?? null,
      member: c.get("member"),
      requestBytes: c.get("requestBytes"),
      headersMs,
    };
    if (refused !== undefined) {
      logAccess(options.accessLog, base, started, refused.responseBytes, "error");
      return;
    }
    // A sealed answer is written straight to the socket; its meter writes the line when it has ended.
    if (sent !== null) {
      sent.attach(options.accessLog, base, started);
      return;
    }
    // Everything else is small and whole (JSON, the document): its length is known or cheap to take.
    const length = c.res.headers.get("content-length");
    const responseBytes = length === null ? (await c.res.clone().arrayBuffer()).byteLength : Number(length);
    logAccess(options.accessLog, base, started, responseBytes, "ok");
  });

  // Each request's connection: at most MAX_REQUESTS_PER_CONNECTION under way on it at once, and a
  // client that stops taking its answers loses it (enclave/connection-guards.ts). Past the first
  // bound the access log says 429 of the request: only the log sees it, the connection is closed.
  // One whose connection was closed before it came is logged as any whose client went away (499).
  app.use(
    "*",
    guardConnections({
      maxRequestsPerConnection: MAX_REQUESTS_PER_CONNECTION,
      clientStallTimeoutMs: options.limits.clientStallTimeoutMs,
      onRefused: (c, reason) =>
        c.set(
          "sent",
          ResponseMeter.aborted(reason === "too-many-requests" ? TOO_MANY_REQUESTS_STATUS : CLIENT_CLOSED_STATUS),
        ),
    }),
  );

  // Browsers: a listed origin's preflight is answered here; its responses (errors included) carry
  // the CORS headers; an unlisted origin's preflight is refused, its other requests get none.
  app.use("*", async (c, next) => {
    const origin = c.req.header("origin");
    const allowed = cors.allows(origin);
    if (c.req.method === "OPTIONS" && origin !== undefined) {
      if (!allowed) {
        return c.json(
          {
            error: {
              code: "CORS_ORIGIN_NOT_ALLOWED",
              message: `Origin: expected one of the host's allowed origins (cloister host --cors-origin), found ${describeUntrusted(origin)}`,
            },
          },
          403,
          { vary: "Origin" },
        );
      }
      return c.body(null, 204, cors.preflightHeaders(origin));
    }
    c.set("cors", allowed && origin !== undefined ? cors.responseHeaders(origin) : {});
    await next();
    if (c.get("sent") !== null) return; // written to the socket with the headers (pipeAnswer)
    for (const [name, value] of Object.entries(c.get("cors"))) c.res.headers.set(name, value);
    if (cors.enabled) c.res.headers.append("vary", "Origin");
  });

  app.onError((error, c) => errorResponse(c, error));
  app.notFound((c) => c.json({ error: { code: "NOT_FOUND", message: "no such route" } }, 404));

  // Identity comes first: anonymous or unknown keys are refused before anything else. From then on
  // the access log names the key, so a refusal (rate, permission, busy, body) says whose it was.
  const identify = (c: Context<Env & { Variables: Variables }>): ApiKeyRecord => {
    const record = options.apiKeys.authenticate(c.req.header("authorization"));
    c.set("caller", { keyId: record.id, project: record.project });
    return record;
  };
  /**
   * A POST's body must be of the type its enclave route takes, as the enclave itself requires
   * (enclave/server.ts): refused with the enclave's code and wording, after the caller is known and
   * before a token is taken or the body read (415, Connection: close). The host forwards with that
   * type whatever it is given, so without this a caller's wrong type would pass here and fail only
   * against an enclave reached directly.
   */
  const requireContentType = (c: Context<Env & { Variables: Variables }>, expected: string): void => {
    const refusal = contentTypeRefusal(c.req.header("content-type"), expected, c.req.path);
    if (refusal !== null) throw new HostError("CONTENT_TYPE_UNSUPPORTED", 415, refusal);
  };

  // For load balancers, whoever asks: up or not. The load (in flight, queued) and the pool's members
  // (key ids, states) only to a caller whose API key may attest: they show traffic and routing. No
  // rate-limit token is taken, as for a probe.
  app.get("/healthz", async (c) => {
    let detailed = false;
    try {
      const record = options.apiKeys.authenticate(c.req.header("authorization"));
      detailed = record.permissions.includes("attest");
      // The access log attributes a detailed read to its key.
      if (detailed) c.set("caller", { keyId: record.id, project: record.project });
    } catch {
      // anonymous or unknown key: the status alone
    }
    // A pool none of whose members answered cannot serve, nor a host whose one enclave does not
    // answer: 503, so a load balancer turns away.
    const down = pool.isPool ? pool.members.every((m) => m.state === "unreachable") : !(await singleEnclaveUp());
    const status = down ? ("unavailable" as const) : ("ok" as const);
    if (!detailed) return c.json({ status }, down ? 503 : 200);
    return c.json(
      {
        status,
        inFlight: limiter.active,
        queued: limiter.queued,
        ...(pool.isPool ? { enclaves: pool.status() } : {}),
      },
      down ? 503 : 200,
    );
  });

  // A new session: the least busy member's document (one that does not answer, answers too late or
  // too much, is marked and the next one tried). The client then names that enclave's key id in its
  // nonce question. With `?enclave=<key id>` (an operator checking one boot: cloister attest
  // --enclave), that member's document only, refused as a nonce question naming it would be: no
  // other member is tried, and a document of another key id (it restarted meanwhile) is refused.
  app.get("/v1/attestation", async (c) => {
    const record = identify(c);
    options.apiKeys.authorize(record, "attest");
    // Whether a member tried before the last was reached or waited for: the token is then kept
    // whatever the last one did (outageAtNoCost).
    let reached = false;
    try {
      const named = c.req.query("enclave");
      const candidates =
        named !== undefined
          ? [await namedMember(named)]
          : pool.isPool
            ? pool.candidates()
            : [pool.members[0] as PoolMember];
      if (candidates.length === 0) throw noEnclave();
      for (const [i, member] of candidates.entries()) {
        // Numbered before it is sent: what it finds is not taken over what a read started later found.
        const read = pool.readStarted(member);
        let answer: Awaited<ReturnType<typeof readBounded>>;
        try {
          const upstream = await upstreamRequest(upstreamOptions, routeTo(member, "/attestation"), { method: "GET" });
          answer = await readBounded(upstream, DOCUMENT_MAX_LENGTH, upstreamOptions.limits.upstreamHeadersTimeoutMs);
        } catch (error) {
          if (!outageAtNoCost(error)) reached = true;
          if (!pool.isPool || !(error instanceof HostError) || !DOCUMENT_FAILOVER_CODES.has(error.code)) throw error;
          pool.mark(member, "unreachable", documentReadReason(error), read);
          if (i === candidates.length - 1) throw error;
          continue;
        }
        // A member that is shutting down (or still booting) offers no new sessions: the next one is asked.
        const idle = pool.isPool && answer.status === 503 ? notServing(answer.body) : null;
        if (idle !== null && i < candidates.length - 1) {
          reached = true;
          pool.mark(member, "unreachable", idle, read);
          continue;
        }
        // The host learns the member's current key id from the document it hands out: a pool routes by
        // it, and a single enclave is held to it when a client names one (namedMember).
        if (answer.status === 200) {
          // The key id of the document handed on, not the member's: a read started later may have set
          // that one (and this document was then not taken).
          let served = member.keyId;
          try {
            const document = (JSON.parse(answer.body.toString("utf8")) as { document?: unknown }).document;
            if (typeof document === "string") served = pool.noteDocument(member, document, read);
          } catch {
            // not JSON: passed on as it is; the client reports it
          }
          if (named !== undefined && served !== named) throw unknownEnclave(named, undefined, namedIn);
        }
        return passedOn(answer);
      }
      throw noEnclave();
    } catch (error) {
      if (!reached && outageAtNoCost(error)) options.apiKeys.refund(record);
      throw error;
    }
  });

  // Small nonce questions to the enclave, answered with a signed value: the nonce answer (part of
  // attestation) and the audit log's signed head (clients check the stored log is complete).
  for (const [route, upstreamPath, step] of [
    ["/v1/attestation/challenge", "/attestation/challenge", "challenge"],
    ["/v1/audit/checkpoint", "/audit/checkpoint", "checkpoint"],
  ] as const) {
    app.post(route, async (c) => {
      const record = identify(c);
      requireContentType(c, "application/json");
      options.apiKeys.authorize(record, "attest");
      let member: PoolMember | undefined;
      try {
        member = await namedMember(c.req.query("enclave"));
        const body = await readRequestBody(c.env.incoming, CHALLENGE_MAX_BYTES, options.limits.requestBodyTimeoutMs);
        c.set("requestBytes", body.length);
        const upstream = await upstreamRequest(upstreamOptions, routeTo(member, upstreamPath), {
          method: "POST",
          body,
          headers: { "content-type": "application/json" },
        });
        return passedOn(
          await readBounded(upstream, CHALLENGE_ANSWER_MAX_BYTES, upstreamOptions.limits.upstreamHeadersTimeoutMs),
        );
      } catch (error) {
        if (outageAtNoCost(error)) {
          // Refused at connect (no member to ask comes before one is chosen): in a pool, marked as a
          // sealed request's refusal marks it, so the token given back does not send the next question
          // to it again, free, until the next refresh; a later one naming it is WRONG_ENCLAVE_KEY at
          // its token. A single enclave is not marked (the sealed route says why).
          if (pool.isPool && member !== undefined) {
            pool.mark(member, "unreachable", { step, words: "connection refused" });
          }
          options.apiKeys.refund(record);
        }
        throw error;
      }
    });
  }

  app.post("/v1/sealed", async (c) => {
    const record = identify(c);
    requireContentType(c, "application/octet-stream");
    // Before the body is read: a key that may not send sealed requests, or is past its rate, is
    // refused without buffering anything, and only so many bodies are read at once.
    options.apiKeys.admit(record, SEALED_PERMISSIONS);
    const readingForKey = bodiesReadingByKey.get(record.id) ?? 0;
    if (bodiesReading >= options.limits.maxBodiesReading || readingForKey >= options.limits.maxBodiesReadingPerKey) {
      options.apiKeys.refund(record);
      throw hostBusy(options.limits.retryAfterSeconds);
    }
    const { incoming, outgoing } = c.env;
    let body: Uint8Array;
    bodiesReading++;
    bodiesReadingByKey.set(record.id, readingForKey + 1);
    try {
      body = await readRequestBody(incoming, options.limits.maxRequestBytes, options.limits.requestBodyTimeoutMs);
    } finally {
      bodiesReading--;
      countDown(bodiesReadingByKey, record.id);
    }
    c.set("requestBytes", body.length);
    // The routing header is all the host may read: check its structure, then forward the bytes.
    let kind: Permission;
    let keyIdBytes: Uint8Array;
    try {
      const { header } = parseEnvelope(body);
      kind = header.kind;
      keyIdBytes = header.keyId;
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      throw new HostError(
        typeof code === "string" ? code : "ENVELOPE_MALFORMED",
        400,
        error instanceof Error ? error.message : "malformed envelope",
      );
    }
    const caller = options.apiKeys.permit(record, kind);
    c.set("caller", caller);
    // Routed by the envelope's key id: the one enclave boot that can open it. In a pool, a key id no
    // member has now (it restarted or went away) is refused before forwarding, so the client
    // re-attests (to another member) and reseals; a single enclave answers that itself.
    // Hex only in a pool (the single-enclave path does no routing work per request).
    const keyId = pool.isPool ? Buffer.from(keyIdBytes).toString("hex") : "";
    const member = pool.isPool ? await pool.findKeyId(keyId) : (pool.members[0] as PoolMember);
    // A single enclave's state is only what its last on-demand read (namedMember) found, and it is read
    // again only for a name it does not know (no timer, no read for its own key id): a refusal here
    // could last, and would be WRONG_ENCLAVE_KEY for the key it serves.
    if (member === undefined || (pool.isPool && member.state === "unreachable")) {
      // Costs its token like a request: the host has read the body, and the key id is the caller's
      // choice, a member that went away included (their key ids are public: given back, a key past
      // its rate could make the host read bodies for as long as one member is down). A client
      // whose member went away re-attests and resends once.
      throw unknownEnclave(keyId, member);
    }
    // One key's requests, forwarded or waiting for a slot, are bounded too: it cannot hold every
    // slot and the queue while other keys get HOST_BUSY. Its own excess keeps its token.
    const forwardingForKey = forwardingByKey.get(record.id) ?? 0;
    if (forwardingForKey >= maxInFlightPerKey) {
      throw keyBusy(maxInFlightPerKey, options.limits.retryAfterSeconds);
    }
    forwardingByKey.set(record.id, forwardingForKey + 1);
    // A request the host refuses before forwarding it (queue full) costs no rate token. One whose
    // client goes away while it waits leaves the queue then (its place is another's at once), and
    // keeps its token (going away is its choice, and the host has read the body).
    // The client's connection, not its answer, says it has gone (onConnectionClosed).
    // A free slot is taken at once, with no watch of the connection: an AbortController costs about
    // 9 µs to make on Node 20 (a loaded 2-vCPU VM), against about 85 µs of all the host does before forwarding.
    const connection = incoming.socket;
    if (!limiter.tryAcquire()) {
      const clientGone = new AbortController();
      const stopWatching = onConnectionClosed(connection, () => clientGone.abort());
      try {
        await limiter.acquire(clientGone.signal);
      } catch (error) {
        countDown(forwardingByKey, record.id);
        if (error !== clientGone.signal.reason) {
          options.apiKeys.refund(record);
          throw error;
        }
        c.set("sent", ResponseMeter.aborted(CLIENT_CLOSED_STATUS));
        return RESPONSE_ALREADY_SENT;
      } finally {
        stopWatching();
      }
    }
    member.inFlight++;
    const held = new HeldSlot(member, record.id, limiter, forwardEnded);
    // A client that went away before its slot came, or as it came (while queued, it left the queue
    // above), is not forwarded at all; its token is kept too.
    if (connection.destroyed) {
      held.release();
      c.set("sent", ResponseMeter.aborted(CLIENT_CLOSED_STATUS));
      return RESPONSE_ALREADY_SENT;
    }
    c.set("member", member.index);
    try {
      const upstream = await upstreamRequest(upstreamOptions, routeTo(member, "/sealed"), {
        method: "POST",
        body,
        headers: { "content-type": "application/octet-stream", [TENANT_HEADER]: caller.keyId },
        client: connection,
      });
      // A member that is shutting down, booting or failing its audit (notServing) refused the request
      // before opening it (one whose audit failed may have read its bytes: enclave/service.ts
      // answerSealed): in a pool, the client re-attests to another member and reseals.
      if (pool.isPool && upstream.statusCode === 503) {
        const refusal = await readBounded(
          upstream,
          CHALLENGE_ANSWER_MAX_BYTES,
          upstreamOptions.limits.upstreamHeadersTimeoutMs,
        );
        const idle = notServing(refusal.body);
        if (idle !== null) {
          pool.mark(member, "unreachable", idle);
          options.apiKeys.refund(record);
          held.release();
          throw unknownEnclave(keyId, member);
        }
        held.release();
        return passedOn(refusal);
      }
      // Not spread (upstreamRequest says why).
      const headers: Record<string, string> = Object.assign({}, c.get("cors"));
      if (cors.enabled) headers.vary = "Origin";
      c.set("sent", pipeAnswer(upstream, outgoing, connection, idleAnswers, held, headers));
      return RESPONSE_ALREADY_SENT;
    } catch (error) {
      held.release();
      // Connection refused: the request was certainly not delivered (outageAtNoCost). In a pool, the
      // member is marked, the token given back and the client told to re-attest to another one (it
      // reseals; nothing was opened); the mark makes a later request naming it WRONG_ENCLAVE_KEY at
      // its token. A single enclave keeps the token: nothing marks it, so a refund would let a key
      // have the host read bodies past its rate for as long as its enclave refuses connections.
      if (pool.isPool && outageAtNoCost(error)) {
        pool.mark(member, "unreachable", { step: "sealed", words: "connection refused" });
        options.apiKeys.refund(record);
        throw unknownEnclave(keyId, member);
      }
      throw error;
    }
  });

  return app;
}

/**
 * Writes a request's access-log line once its answer has ended (`started`: when the request came).
 * A function of the module, not a closure made per request (AnswerPipe says why).
 */
function logAccess(
  sink: AccessLogSink,
  base: LogLineStart,
  started: number,
  responseBytes: number,
  outcome: Outcome,
): void {
  const ok = base.status >= 200 && base.status < 300;
  // Written out, not spread (upstreamRequest says why).
  sink({
    time: base.time,
    method: base.method,
    path: base.path,
    status: base.status,
    keyId: base.keyId,
    member: base.member,
    requestBytes: base.requestBytes,
    headersMs: base.headersMs,
    responseBytes,
    durationMs: round2(performance.now() - started),
    outcome: outcome === "ok" && !ok ? "error" : outcome,
  });
}

/** Takes one from `key`'s count in `counts`, deleting it at zero. */
function countDown(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left === 0) counts.delete(key);
  else counts.set(key, left);
}

/**
 * A forwarding slot held by one sealed request for its member, given back once however the request
 * ends (release; a request can reach two, e.g. a pool member's 503 released before the throw its
 * catch releases again): the member's count, the limiter's slot (which counts on this guard: it
 * has none of its own), then what the app counts (`ended`). An object, not a closure made per
 * request (AnswerPipe says why).
 */
class HeldSlot {
  #held = true;

  constructor(
    readonly member: PoolMember,
    readonly keyId: string,
    readonly limiter: ConcurrencyLimiter,
    readonly ended: (held: HeldSlot) => void,
  ) {}

  release(): void {
    if (!this.#held) return;
    this.#held = false;
    this.member.inFlight--;
    this.limiter.release();
    this.ended(this);
  }
}

/** The access log's path for a request to a path no route has. */
const NO_ROUTE = "(no route)";

/**
 * One API key's share of the forwarding slots by default: half of them (at least one), so with
 * every slot wanted, one key holds at most half and the others are served from the queue.
 */
export function defaultMaxInFlightPerKey(maxInFlight: number): number {
  return Math.max(1, Math.floor(maxInFlight / 2));
}

const keyBusy = (max: number, retryAfterSeconds: number) =>
  new HostError(
    "HOST_BUSY",
    503,
    `this API key has ${max} sealed requests in flight or queued, the most the host takes from one key at once; retry later`,
    { retryAfterSeconds },
  );

/**
 * The code the SDK answers by re-attesting once and resealing (for a sealed request to a single
 * enclave, the enclave sends it itself; the host sends it for a name that is not its boot's).
 * `namedIn`: the key id came from `?enclave=`, which an operator's `--enclave` sends too: for that
 * reader the message also says where the enclave's state and current key id are: a pool's in
 * /healthz and the host's log, a single enclave's in what `cloister attest` prints (neither /healthz
 * nor the log shows it); the host cannot tell whether the enclave restarted (a new key id) or is down.
 */
const unknownEnclave = (keyId: string, member: PoolMember | undefined, namedIn?: "pool" | "single enclave") => {
  const found = member === undefined ? "no enclave of this host has it now" : "that enclave is unreachable";
  const look =
    member !== undefined
      ? "see its state in /healthz or the host's log"
      : namedIn === "pool"
        ? "take a member's current key id from /healthz or the host's log (a restarted member has a new one)"
        : "take the enclave's current key id from cloister attest without --enclave (a restart makes a new one)";
  return new HostError(
    "WRONG_ENCLAVE_KEY",
    409,
    `enclave key id ${keyId}: ${found}; re-attest${namedIn === undefined ? "" : ` (a client's session), or ${look}`}`,
  );
};

/** Why an enclave's 503 says it takes no new sessions or requests (its word); null for any other answer. */
function notServing(body: Uint8Array): MemberReason | null {
  const words = NOT_SERVING.get(notServingCodeOf(Buffer.from(body).toString("utf8")));
  return words === undefined ? null : { words };
}

function refused(error: HostError): boolean {
  return (error.cause as { code?: unknown } | undefined)?.code === "ECONNREFUSED";
}

/**
 * The rate rule of the attestation routes (a document, a nonce answer, a checkpoint), whose token
 * `authorize` took before any enclave is asked: it is given back when the host served nothing for
 * an outage of its own that cost it no enclave's time, that is no member could be asked
 * (NO_ENCLAVE_AVAILABLE) or the connection was refused (ENCLAVE_UNREACHABLE, nothing delivered; for
 * a new session, by every member it asked). A caller retrying after Retry-After is not rate-limited
 * for the host's outage, and a key past its rate gets no enclave's work from it, only refused
 * connects, which cost the host little. Kept: an answer of the enclave, whatever its status (a
 * booting or draining one's 503 included), one cut or too large, ENCLAVE_TIMEOUT (the host waited
 * its whole headers timeout), and refusals of what the caller chose (ENCLAVE_ID_MALFORMED,
 * WRONG_ENCLAVE_KEY, a single enclave's ENCLAVE_UNREACHABLE for a `?enclave=` it did not know,
 * whose document the host read to learn it). A sealed request, whose body the host has read by
 * then, is given its token back by this rule in a pool only, where the refused member is marked
 * (the sealed route says why).
 */
function outageAtNoCost(error: unknown): boolean {
  if (!(error instanceof HostError)) return false;
  return error.code === "NO_ENCLAVE_AVAILABLE" || (error.code === "ENCLAVE_UNREACHABLE" && refused(error));
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}

/**
 * A request body, at most `limit` bytes (else 413), received within `timeoutMs`. Past that it is
 * no longer read (what still comes is dropped) and BODY_TIMEOUT (408) is thrown, which the client
 * receives with `Connection: close` (errorResponse); node closes the connection once that answer
 * is written, and the socket is destroyed UNREADABLE_LINGER_MS later at the latest (closeAfterLinger,
 * as after the server's own refusals), so a client that stops reading cannot keep it open.
 */
function readRequestBody(incoming: IncomingMessage, limit: number, timeoutMs: number): Promise<Uint8Array> {
  return readBodyWithin(
    incoming,
    limit,
    // Methods, not arrows: no name given per request (AnswerPipe says why).
    {
      tooLarge(found) {
        return bodyTooLarge(limit, found);
      },
      gone(cause) {
        return new HostError("CLIENT_CLOSED", CLIENT_CLOSED_STATUS, "the client went away while sending its request", {
          cause,
        });
      },
    },
    {
      ms: timeoutMs,
      error() {
        closeAfterLinger(incoming.socket);
        return new HostError("BODY_TIMEOUT", 408, `request body: not received within ${timeoutMs} ms`);
      },
    },
  );
}

type UpstreamOptions = { readonly agent: Agent; readonly limits: HostOptions["limits"] };

/**
 * Sends one request to the enclave (`target`: its URL as node:http takes it) and resolves with its
 * response once the headers are in.
 * Connection failures become ENCLAVE_UNREACHABLE (502), no headers within the limit
 * ENCLAVE_TIMEOUT (504). When the `client`'s connection closes before the headers, the request is
 * aborted.
 */
function upstreamRequest(
  { agent, limits }: UpstreamOptions,
  target: UpstreamTarget,
  init: {
    method: "GET" | "POST";
    body?: Uint8Array;
    headers?: Record<string, string>;
    client?: Socket;
  },
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    let timedOut = false;
    let clientGone = false;
    // Written out, not spread: on Node 20 an object literal that spreads an object and adds to it
    // (`{ ...a, b }`, `{ ...a, ...b }`) took 0.8-3 µs each, its properties written out some 20 ns;
    // a sealed request made four of them before its first frame was written.
    // As a list of names and values: node:http stores an object's headers one by one in an object
    // of its own (setHeader), kept with the request for as long as its answer streams (some 0.6 KB
    // a live stream); a list it writes out at once. The same headers, in the same order.
    const headers: string[] = [];
    if (init.headers !== undefined) for (const name in init.headers) headers.push(name, init.headers[name] as string);
    if (init.body !== undefined) headers.push("content-length", String(init.body.length));
    headers.push(...target.urlHeaders);
    const req = httpRequest({
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      path: target.path,
      method: init.method,
      agent,
      headers,
      // Strict whatever node's own options say (--insecure-http-parser, in NODE_OPTIONS too): the
      // lenient parser takes header values with control characters, which pipeAnswer's writeHead
      // then refused (a 500 with the enclave's request left open). The strict one takes exactly the
      // bytes writeHead does in a value (tab, 0x20-0x7e, 0x80-0xff), so what it passes can be passed on.
      insecureHTTPParser: false,
    });
    const timer = setTimeout(() => {
      timedOut = true;
      req.destroy(new Error("headers timeout"));
    }, limits.upstreamHeadersTimeoutMs);
    // No function made per request is given a name (AnswerPipe says why) but onError, dropped with
    // the headers: the watch is stopped, and the timer cleared, where each ends.
    const stopWatching =
      init.client === undefined
        ? noop
        : onConnectionClosed(init.client, () => {
            clientGone = true;
            req.destroy(new Error("client went away"));
          });
    const onError = (error: Error) => {
      clearTimeout(timer);
      stopWatching();
      if (timedOut && !clientGone) {
        reject(
          new HostError("ENCLAVE_TIMEOUT", 504, `enclave did not answer within ${limits.upstreamHeadersTimeoutMs} ms`, {
            cause: error,
          }),
        );
      } else if (clientGone) {
        reject(
          new HostError("CLIENT_CLOSED", CLIENT_CLOSED_STATUS, "the client went away before the enclave answered"),
        );
      } else {
        reject(new HostError("ENCLAVE_UNREACHABLE", 502, UNREACHABLE_WORDS, { cause: error }));
      }
    };
    req.on("error", onError);
    // Once, and onError swapped for a listener holding nothing: after the headers nothing of this
    // call (its timer, watch, body, promise) is kept for the answer's life by the request's listeners.
    req.once("response", (res) => {
      clearTimeout(timer);
      stopWatching();
      // A failure after the headers ends the answer; the consumer sees it through `res` events.
      req.off("error", onError);
      req.on("error", noop);
      // A status no client can be given (node's client parses any three digits; below 200 its
      // server's writeHead throws, a Response refuses past 599): the enclave's answer is stopped
      // here, for every route, before any of it is read (a pool's document route then tries the
      // next member, as for an enclave that does not answer).
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 599) {
        res.destroy();
        reject(
          new HostError("ENCLAVE_UNREACHABLE", 502, `enclave response status: expected 200 to 599, found ${status}`),
        );
        return;
      }
      resolve(res);
    });
    req.end(init.body);
  });
}

/** The enclave's routes the host asks (enclave/server.ts). */
const UPSTREAM_ROUTES = ["/sealed", "/attestation", "/attestation/challenge", "/audit/checkpoint", "/healthz"] as const;
type UpstreamRoute = (typeof UPSTREAM_ROUTES)[number];
type MemberRoutes = Readonly<Record<UpstreamRoute, UpstreamTarget>>;

/** An enclave URL as node:http reads it (urlToHttpOptions's fields that a request uses). */
type UpstreamTarget = Readonly<Pick<RequestOptions, "protocol" | "hostname" | "port" | "path">> & {
  /**
   * The request's first header, as node:http would add it from the URL: Host (the URL has no
   * credentials, checkEnclaveUrl). Given a list of headers, node:http adds none.
   */
  readonly urlHeaders: readonly string[];
};

function upstreamTarget(url: string): UpstreamTarget {
  const parsed = new URL(url);
  const { protocol, hostname, port, path } = urlToHttpOptions(parsed);
  // What node:http adds for an object of headers (the URL's host and port as written, an IPv6
  // address in brackets; the default port left out), made once.
  return { protocol, hostname, port, path, urlHeaders: ["Host", parsed.host] };
}

/** Each route of the enclave at `url` (no trailing slash, as the pool keeps it) as node:http takes it. */
function memberRoutes(url: string): MemberRoutes {
  return Object.fromEntries(UPSTREAM_ROUTES.map((route) => [route, upstreamTarget(`${url}${route}`)])) as MemberRoutes;
}

function passedHeaders(from: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of PASSED_HEADERS) {
    const value = from.headers[name];
    if (typeof value === "string") headers[name] = value;
  }
  return headers;
}

/**
 * A whole enclave answer (readBounded: document, nonce answer, refusal) as the client's, with the passed
 * headers (its status checked by upstreamRequest).
 */
function passedOn(answer: Awaited<ReturnType<typeof readBounded>>): Response {
  return new Response(answer.body, { status: answer.status, headers: answer.headers });
}

/**
 * The pool of enclaves behind `urls` (host/pool.ts), reading members' documents over its own
 * keep-alive agent with the host's limits; `start()` it to re-read them on a timer.
 */
export function createEnclavePool(
  urls: readonly string[],
  options: { limits: HostOptions["limits"]; refreshMs?: number; onChange?: (member: PoolMember) => void },
): EnclavePool {
  const upstreamOptions = { agent: new Agent({ keepAlive: true }), limits: options.limits };
  return new EnclavePool(urls, {
    fetchText: (url) => fetchBounded(upstreamOptions, url),
    ...(options.refreshMs === undefined ? {} : { refreshMs: options.refreshMs }),
    ...(options.onChange === undefined ? {} : { onChange: options.onChange }),
  });
}

/** How often a host with one enclave asks it whether it is up, at most (`/healthz`). */
const HEALTH_CHECK_INTERVAL_MS = 1000;
/** How long the enclave has to answer that (load balancers' own health checks wait a few seconds). */
const HEALTH_CHECK_TIMEOUT_MS = 2000;

/** Whether the enclave answers `target` with 200 within HEALTH_CHECK_TIMEOUT_MS; never throws. */
async function enclaveAnswers({ agent, limits }: UpstreamOptions, target: UpstreamTarget): Promise<boolean> {
  try {
    const upstream = await upstreamRequest(
      { agent, limits: { ...limits, upstreamHeadersTimeoutMs: HEALTH_CHECK_TIMEOUT_MS } },
      target,
      {
        method: "GET",
      },
    );
    const answer = await readBounded(upstream, 1024, HEALTH_CHECK_TIMEOUT_MS);
    return answer.status === 200;
  } catch {
    return false;
  }
}

/** GETs a member's document for the pool's checks (bounded like every answer). */
async function fetchBounded(upstreamOptions: UpstreamOptions, url: string): Promise<{ status: number; text: string }> {
  // Asked every few seconds per member (host/pool.ts): its URL is parsed each time.
  const upstream = await upstreamRequest(upstreamOptions, upstreamTarget(url), { method: "GET" });
  const answer = await readBounded(upstream, DOCUMENT_MAX_LENGTH, upstreamOptions.limits.upstreamHeadersTimeoutMs);
  return { status: answer.status, text: answer.body.toString("utf8") };
}

/**
 * Reads a whole bounded enclave answer (document, nonce answer, refusal): at most `limit` bytes and
 * at most `timeoutMs` (the headers timeout, for the whole body too), so a member that stalls
 * mid-answer holds up neither the caller nor the pool's refresh nor the host's shutdown.
 */
async function readBounded(
  upstream: IncomingMessage,
  limit: number,
  timeoutMs: number,
): Promise<{ status: number; headers: Record<string, string>; body: Buffer<ArrayBuffer> }> {
  const chunks: Buffer[] = [];
  let total = 0;
  const timer = setTimeout(() => upstream.destroy(new Error(`no whole answer within ${timeoutMs} ms`)), timeoutMs);
  try {
    for await (const chunk of upstream as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) {
        upstream.destroy();
        // Read no further, so only "more" is known of its size.
        throw new HostError(
          "ENCLAVE_RESPONSE_TOO_LARGE",
          502,
          `enclave response: expected at most ${limit} bytes, found more`,
        );
      }
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof HostError) throw error;
    throw new HostError("ENCLAVE_UNREACHABLE", 502, "enclave response was cut", { cause: error });
  } finally {
    clearTimeout(timer);
  }
  if (!upstream.complete) throw new HostError("ENCLAVE_UNREACHABLE", 502, "enclave response was cut");
  return {
    status: upstream.statusCode ?? 502,
    headers: { ...passedHeaders(upstream), "content-length": String(total) },
    body: Buffer.concat(chunks, total),
  };
}

/**
 * Writes the enclave's answer to the client as it arrives: status and the passed headers, then
 * every chunk straight from the enclave's socket into the client's (paused while the client's
 * buffer is full), counting bytes. `held.release()` runs exactly once, when the answer has ended:
 * on the end, an upstream error or an idle gap longer than `idle.ms` (the client's response is
 * destroyed, so the client sees the truncation), or the client going away (the upstream answer is
 * dropped).
 */
function pipeAnswer(
  upstream: IncomingMessage,
  outgoing: ServerResponse,
  connection: Socket,
  idle: IdleAnswers,
  held: { release(): void },
  extraHeaders: Record<string, string>,
): ResponseMeter {
  // Not flushed: the headers leave with the first chunk, in one write (the enclave sends its own
  // headers with its first frame, so nothing waits for them), which saves a write here and a
  // wake-up in the client before the first text. It cannot throw: upstreamRequest has checked the
  // status (200-599) and read the headers with the strict parser, whose values writeHead takes.
  const status = upstream.statusCode as number;
  outgoing.writeHead(status, Object.assign(passedHeaders(upstream), extraHeaders)); // not spread (upstreamRequest)
  const pipe = new AnswerPipe(status, upstream, outgoing, idle, held);
  if (pipe.watch(connection)) return pipe; // the client had gone
  // The first frame came with the enclave's headers and waits in the answer's buffer: forwarded
  // now (read() hands it to the "data" listener), in a write made here (the connection corked
  // around it), not once the handler has returned through the app's middleware and node's next tick.
  const socket = outgoing.socket;
  socket?.cork();
  try {
    upstream.read();
  } finally {
    socket?.uncork();
  }
  return pipe;
}

/** What an access-log line has before its answer has ended (logAccess). */
type LogLineStart = Omit<AccessLogEntry, "responseBytes" | "durationMs" | "outcome">;

/**
 * Byte count and end of a streamed answer, whose access-log line is written once the stream is over.
 * The line's start is attached after the handler returned (kept in fields, not a closure made per
 * answer: AnswerPipe says why); an end seen before that is kept.
 */
class ResponseMeter {
  bytes = 0;
  #ended: Outcome | null = null;
  #sink: AccessLogSink | null = null;
  #base: LogLineStart | null = null;
  #started = 0;

  /** `status`: what was written to the client (499: nothing, the client had gone away). */
  constructor(readonly status: number) {}

  /** The meter of a request that ended before anything was written: `status` is for the log only. */
  static aborted(status: number): ResponseMeter {
    const meter = new ResponseMeter(status);
    meter.end("aborted");
    return meter;
  }

  attach(sink: AccessLogSink, base: LogLineStart, started: number): void {
    this.#sink = sink;
    this.#base = base;
    this.#started = started;
    if (this.#ended !== null) logAccess(sink, base, started, this.bytes, this.#ended);
  }

  end(outcome: Outcome): void {
    if (this.#ended !== null) return;
    this.#ended = outcome;
    if (this.#sink !== null && this.#base !== null) {
      logAccess(this.#sink, this.#base, this.#started, this.bytes, outcome);
    }
  }
}

/**
 * One answer in flight (pipeAnswer): its meter, and what ends it. Methods and fields, not closures
 * made per answer: `cloister host` runs through tsx, whose esbuild gives every function assigned to
 * a name its name with Object.defineProperty (keepNames), about 0.3 µs and a 256-byte property
 * table each; those tables were the largest part of what the host's scavenges copied per stream.
 */
class AnswerPipe extends ResponseMeter {
  /** Times the client has drained its buffers (progress, as `bytes` is): counted, not timed. */
  #drains = 0;
  /** `bytes + #drains` at the last sweep (cutIfIdle); -1 before the first, which notes progress. */
  #seen = -1;
  /** The last sweep that found progress since the one before it, or the client's buffers full. */
  #quietSince = 0;
  #stopWatching = noop;
  #finished = false;
  readonly #onDrain: () => void;

  constructor(
    status: number,
    readonly upstream: IncomingMessage,
    readonly outgoing: ServerResponse,
    readonly idle: IdleAnswers,
    readonly held: { release(): void },
  ) {
    super(status);
    idle.add(this);
    // Idle is no progress on either side: while the host has stopped reading the enclave for a
    // client whose buffers are full, the enclave can send nothing (cutIfIdle), and its idle time
    // starts again once the client has taken them. A client that takes nothing is bounded by its
    // own timeout (enclave/connection-guards.ts, clientStallTimeoutMs), not by the enclave's.
    this.#onDrain = () => {
      this.#drains++;
      upstream.resume();
    };
    outgoing.on("drain", this.#onDrain);
    upstream.on("data", (chunk: Buffer) => {
      this.bytes += chunk.length;
      // Corked here and uncorked at once: the chunk's size line, bytes and CRLF leave in one write
      // now, and node skips the process.nextTick it queues to uncork a write it corked itself.
      const socket = outgoing.socket;
      socket?.cork();
      const room = outgoing.write(chunk);
      socket?.uncork();
      if (!room) upstream.pause();
    });
    // The last bytes first: end() writes them at once (it uncorks the connection), and only then the
    // slot is freed and the access-log line written (a synchronous write, slow on a slow log pipe).
    upstream.on("end", () => {
      try {
        outgoing.end();
      } finally {
        this.#finish("ok");
      }
    });
    upstream.on("error", noop);
    upstream.on("close", () => {
      if (this.#finished) return;
      this.#finish("aborted");
      outgoing.destroy();
    });
  }

  /** Ends the answer when the client's connection closes (at once if it has): then true. */
  watch(connection: Socket): boolean {
    this.#stopWatching = onConnectionClosed(connection, () => {
      if (this.outgoing.writableFinished) return;
      this.#finish("aborted");
      this.upstream.destroy();
    });
    return this.#finished;
  }

  /**
   * Cuts the answer if nothing has come from the enclave for `idleMs` by `at` (IdleAnswers), the
   * host reading it all that time (not waiting for the client to take what came): then true.
   * Progress is seen by the sweep, from the counters (`bytes`, drains) as they were at the last
   * one, not timed as it comes: a clock read per chunk was a call per frame. The idle time is
   * counted from the last sweep that saw progress, after it came: never more than the silence of
   * what the host has read. The enclave's own silence may be shorter: bytes it sent during a stall
   * of the host wait unread past the next sweep (a sweep runs before node reads its sockets), and
   * no threshold of lateness tells all of them (a stall that ends as a sweep is due makes it on
   * time). With sweeps at most half a period late (later ones forgive, IdleAnswers) the enclave has
   * been silent for at least `idleMs` less 1.5 periods (13/16 of it) when its answer is cut; under a
   * lasting overload, `idleMs` less the gap before the judging sweep.
   * `mayCut` false (a sweep late after a stall of the host, IdleAnswers): progress is noted, no cut.
   */
  cutIfIdle(at: number, idleMs: number, mayCut: boolean): boolean {
    const progress = this.bytes + this.#drains;
    if (progress !== this.#seen || this.outgoing.writableNeedDrain) {
      this.#seen = progress;
      this.#quietSince = at;
      return false;
    }
    if (!mayCut || at - this.#quietSince < idleMs) return false;
    this.upstream.destroy(new Error("idle timeout"));
    return true;
  }

  #finish(outcome: Outcome): void {
    if (this.#finished) return;
    this.#finished = true;
    this.idle.delete(this);
    this.#stopWatching();
    this.outgoing.off("drain", this.#onDrain);
    this.held.release();
    this.end(outcome);
  }
}

/** Sweeps of the answers in flight per idle timeout (IdleAnswers). */
export const IDLE_SWEEPS_PER_TIMEOUT = 8;

/**
 * The idle timeout of the answers in flight (AnswerPipe): one timer for all of them (Sweep, which
 * says why its timer is unreferenced), checking each every eighth of `ms`; an answer from which
 * nothing has come for `ms` is cut then, with sweeps on time at most a quarter of `ms` late: a sweep
 * sees progress up to a period after it came, and the cut comes up to a period after `ms` from that
 * sweep. A sweep more than half a period late forgives (began), never two in a row: an idle answer
 * is cut at most `ms` and two of the longest gaps between sweeps after the last that saw progress
 * (test/host/app.test.ts, under a lasting overload); how early a cut may be: AnswerPipe.cutIfIdle.
 */
class IdleAnswers extends Sweep<AnswerPipe> {
  /**
   * When the sweep under way (or the last) began; null before the first since the timer was set
   * (with the first answer, or again after the last had ended): that one is on time.
   */
  #sweepAt: number | null = null;
  /** Whether the sweep under way cuts nothing: late after one that was not forgiven (began). */
  #forgiving = false;

  constructor(readonly ms: number) {
    super(ms / IDLE_SWEEPS_PER_TIMEOUT);
  }

  add(pipe: AnswerPipe): void {
    this.track(pipe, pipe);
  }

  delete(pipe: AnswerPipe): void {
    // With the last answer the timer stops: the first sweep once it is set again is judged as the
    // very first, not late against the last one before (which may be long ago).
    if (this.untrack(pipe) && this.size === 0) this.#sweepAt = null;
  }

  protected override began(at: number): void {
    // A sweep runs before node reads its sockets: one more than half a period late follows a
    // stall of the host, and the enclave's bytes may be waiting unread, so it cuts nothing (it
    // still notes progress); the next, after node has read them, judges. Under a lasting
    // overload every sweep is late: one in two judges, so an idle answer is still cut.
    const late = this.#sweepAt !== null && at - this.#sweepAt > this.periodMs * 1.5;
    this.#forgiving = late && !this.#forgiving;
    this.#sweepAt = at;
  }

  protected visit(pipe: AnswerPipe, at: number): void {
    if (pipe.cutIfIdle(at, this.ms, !this.#forgiving)) this.delete(pipe);
  }
}
