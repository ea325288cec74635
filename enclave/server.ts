/**
 * The enclave's HTTP server, meant to be reachable by the host only (it binds to loopback by
 * default). Routes: GET /attestation, POST /attestation/challenge, POST /sealed (streamed frames),
 * GET /audit (the host collects records), POST /audit/checkpoint, GET /healthz. Errors are mapped
 * to HTTP here and only here; once a sealed request is open, failures travel inside sealed error
 * frames instead. Each POST route takes one content type (POST /sealed application/octet-stream,
 * the nonce questions application/json) and refuses any other, or none, with 415
 * CONTENT_TYPE_UNSUPPORTED before reading the body (requireContentType).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { Hono } from "hono";
import { fromBase64url } from "../attestation/bytes.ts";
import { TENANT_HEADER } from "../sealed/envelope.ts";
import { EnclaveError } from "./errors.ts";
import { contentTypeRefusal, MAX_SEALED_REQUEST_BYTES, readBodyWithin } from "./http.ts";
import type { Enclave, StreamedAnswer } from "./service.ts";

/** Largest nonce question (`{"nonce": base64url}` of at most 64 bytes, with room for white space). */
const MAX_NONCE_BODY_BYTES = 1024;

/**
 * Refuses a POST whose Content-Type is not `expected` (its case and parameters aside), or that has
 * none, before its body is read. Security: neither type is one a web page may send without a CORS
 * preflight (text/plain, form encodings are), and the enclave answers no preflight, so a page open
 * in a browser on the enclave's machine cannot make it open sealed requests or sign nonces through
 * its loopback port. The host refuses the same types with the same code (host/app.ts).
 */
function requireContentType(header: string | undefined, expected: string, route: string): void {
  const refusal = contentTypeRefusal(header, expected, route);
  if (refusal !== null) throw new EnclaveError("CONTENT_TYPE_UNSUPPORTED", 415, refusal);
}

function errorJson(code: string, message: string) {
  return { error: { code, message } };
}

/** What @hono/node-server passes as `c.env` (its HttpBindings). */
type Env = { Bindings: { incoming: IncomingMessage; outgoing: ServerResponse } };

/**
 * What the enclave's process knows about its server: sealed answers being written, and whether it
 * is draining (shutting down: new sealed requests and new sessions are refused with 503
 * ENCLAVE_DRAINING, while answers under way finish and the host keeps collecting audit records).
 */
export interface EnclaveServerState {
  draining: boolean;
  active: number;
}

const draining = () =>
  new EnclaveError("ENCLAVE_DRAINING", 503, "the enclave is shutting down: re-attest (to another enclave)");

/**
 * What the enclave's server answers while the enclave boots (it listens before it boots): 503
 * ENCLAVE_BOOTING, nothing is attested yet (a pool host sends the request to another member, as for
 * ENCLAVE_DRAINING); GET /healthz `{"status": "booting"}`. The connection is closed after the
 * answer: a request body is not read.
 */
export function bootingAnswer(request: Request): Response {
  const headers = { "retry-after": "5", connection: "close" };
  if (request.method === "GET" && new URL(request.url).pathname === "/healthz") {
    return Response.json({ status: "booting" }, { status: 503, headers });
  }
  return Response.json(errorJson("ENCLAVE_BOOTING", "the enclave is booting: nothing is attested yet; retry"), {
    status: 503,
    headers,
  });
}

export function createEnclaveApp(
  enclave: Enclave,
  state: EnclaveServerState = { draining: false, active: 0 },
): Hono<Env> {
  const app = new Hono<Env>();

  app.onError((error, c) => {
    if (error instanceof EnclaveError) {
      // Overload (engine queue full, audit backlog): tell the client when to retry; the host passes it on.
      // Not for AUDIT_FAILED, which lasts until a restart: a retry here would be refused again.
      if (error.status === 503 && error.code !== "AUDIT_FAILED") c.header("Retry-After", "1");
      // An oversize body, or one of another type, is left unread: this connection cannot carry another request.
      if (error.status === 413 || error.status === 415) c.header("Connection", "close");
      return c.json(errorJson(error.code, error.message), error.status);
    }
    return c.json(errorJson("INTERNAL", "internal error in the enclave"), 500);
  });
  app.notFound((c) => c.json(errorJson("NOT_FOUND", "no such route"), 404));

  // Down while draining, or once an audit record could not be written (new sealed requests are
  // refused with AUDIT_FAILED until a restart): a host with this one enclave then says so on its
  // own /healthz.
  app.get("/healthz", (c) => {
    if (state.draining) return c.json({ status: "draining" }, 503);
    if (enclave.auditFailed) return c.json({ status: "audit-failed" }, 503);
    return c.json({ status: "ok" });
  });

  app.get("/attestation", async (c) => {
    if (state.draining) throw draining();
    enclave.refuseIfAuditFailed();
    const collateral = await enclave.collateral();
    return c.json({ document: enclave.document, ...(collateral === null ? {} : { collateral }) });
  });

  // Answered while draining, unlike GET /attestation: a client that read the document just before
  // the drain began finishes attesting, and its first sealed request is then refused, which a pool
  // host turns into WRONG_ENCLAVE_KEY, so the client re-attests once to another member (host/app.ts).
  // Refused here, the host would pass the 503 on and the client's attestation fail with no second
  // try. The answer is one signature over the asker's nonce and discloses nothing.
  app.post("/attestation/challenge", async (c) => {
    requireContentType(c.req.header("content-type"), "application/json", "/attestation/challenge");
    const nonce = await nonceFromBody(c.env.incoming, "challenge", "CHALLENGE_MALFORMED");
    return c.json({ answer: await enclave.answerNonce(nonce) });
  });

  // A signed head of the audit log bound to the asker's nonce: clients use it to check that the
  // log the host stores is complete (no records cut from its end). Served while draining, as /audit
  // is: the head of a boot about to end is the last a client can get of its log, and answers that
  // end during the drain are in it.
  app.post("/audit/checkpoint", async (c) => {
    requireContentType(c.req.header("content-type"), "application/json", "/audit/checkpoint");
    const nonce = await nonceFromBody(c.env.incoming, "audit checkpoint", "AUDIT_CHECKPOINT_MALFORMED");
    return c.json({ checkpoint: enclave.auditCheckpoint(nonce) });
  });

  // The host collects audit records here (hashes and decisions only) and stores them; asking for
  // `from` acknowledges every earlier line.
  app.get("/audit", (c) => {
    const from = auditFrom(auditParameter(c.req.queries("from"), "from"));
    // `boot` names the enclave boot whose records `from` acknowledges (absent: nothing is acknowledged).
    return c.json(enclave.collectAudit(from, auditBoot(auditParameter(c.req.queries("boot"), "boot"))));
  });

  // The boot's attestation document for the host's collector, which checks the records it collects
  // under the key it names (host/audit-record-check.ts; the boot id is its SHA-256). Served while
  // draining and after AUDIT_FAILED, as /audit is (GET /attestation is not): a host (re)started then
  // must still learn the key to store that boot's records. No collateral: the collector needs none.
  app.get("/audit/document", (c) => c.json({ document: enclave.document }));

  // Sealed requests work on node's own request and response (no Request/Response objects or web
  // streams per request or frame): the body is read from the socket, frames are written to it.
  app.post("/sealed", async (c) => {
    requireContentType(c.req.header("content-type"), "application/octet-stream", "/sealed");
    // Refused before the request is read or opened: the host may send it elsewhere.
    if (state.draining) throw draining();
    enclave.refuseIfAuditFailed();
    const { incoming, outgoing } = c.env;
    // Counted from here, while its body is still arriving: a drain that starts meanwhile waits for it.
    state.active++;
    let body: Uint8Array;
    try {
      body = await readBodyWithin(incoming, MAX_SEALED_REQUEST_BYTES, {
        tooLarge: () =>
          new EnclaveError("BODY_TOO_LARGE", 413, `sealed request: expected at most ${MAX_SEALED_REQUEST_BYTES} bytes`),
        gone: (cause) => new EnclaveError("CLIENT_CLOSED", 400, "the host went away mid-request", { cause }),
      });
    } catch (error) {
      state.active--;
      throw error;
    }
    const controller = new AbortController();
    const onClose = () => {
      if (!outgoing.writableFinished) controller.abort();
    };
    outgoing.once("close", onClose);
    let answer: Awaited<ReturnType<Enclave["handleSealed"]>>;
    try {
      answer = await enclave.handleSealed(body, c.req.header(TENANT_HEADER) ?? null, controller.signal);
    } catch (error) {
      state.active--;
      outgoing.off("close", onClose);
      throw error;
    }
    void writeFrames(answer, outgoing, controller.signal).finally(() => {
      state.active--;
    });
    return RESPONSE_ALREADY_SENT;
  });

  return app;
}

/** The one form of `from` taken: decimal digits, no sign, exponent, leading zero or white space. */
const CANONICAL_DECIMAL = /^(?:0|[1-9][0-9]*)$/;

/** The boot id the enclave issues (its attestation document's SHA-256, `collectAudit`'s `boot`). */
const BOOT_ID = /^[0-9a-f]{64}$/;

/**
 * GET /audit's parameter `name` (undefined when absent). A repeated one is refused rather than read
 * by its first value: which of two values a proxy or a parser keeps differs, and both parameters
 * decide which records are dropped.
 */
function auditParameter(values: string[] | undefined, name: "from" | "boot"): string | undefined {
  if (values === undefined || values.length === 0) return undefined;
  if (values.length === 1) return values[0];
  throw new EnclaveError("AUDIT_QUERY_INVALID", 400, `audit: ${name} expected once, found it ${values.length} times`);
}

/** A refused query value: shown when it is short and plain (a host may send anything), else by its length. */
function queryValueShape(query: string): string {
  if (query === "") return "an empty value";
  if (/^[\w.+-]{1,32}$/.test(query)) return JSON.stringify(query);
  return `a value of ${query.length} character${query.length === 1 ? "" : "s"}`;
}

/**
 * GET /audit's `from` (0 when absent). Security: it acknowledges, so drops, every earlier record,
 * so only the form the host's collector writes is taken; Number() also read "" and " " as 0, "1e3"
 * as 1000 and "0x10" as 16.
 */
function auditFrom(query: string | undefined): number {
  if (query === undefined) return 0;
  const from = Number(query);
  if (CANONICAL_DECIMAL.test(query) && Number.isSafeInteger(from)) return from;
  throw new EnclaveError(
    "AUDIT_QUERY_INVALID",
    400,
    `audit: from expected a non-negative decimal integer of at most ${Number.MAX_SAFE_INTEGER} (digits only: no sign, exponent, leading zero or white space), found ${queryValueShape(query)}`,
  );
}

/**
 * GET /audit's `boot` (null when absent: nothing is acknowledged). Only the form the enclave issues
 * (and the host's collector sends back) is taken; it is compared with this boot's id only for
 * equality, but a value of any other form is a caller's mistake, named rather than ignored.
 */
function auditBoot(query: string | undefined): string | null {
  if (query === undefined) return null;
  if (BOOT_ID.test(query)) return query;
  throw new EnclaveError(
    "AUDIT_QUERY_INVALID",
    400,
    `audit: boot expected the enclave boot id its /audit answer names (64 lower-case hex digits), found ${queryValueShape(query)}`,
  );
}

/**
 * Reads `{"nonce": base64url}` with 16..64 nonce bytes, the base64url in its one spelling (no
 * padding, white space or unused bits set), or refuses with `code`; a body over
 * MAX_NONCE_BODY_BYTES is refused unread (413), should anything but the host (which caps it too)
 * reach this port.
 */
async function nonceFromBody(incoming: IncomingMessage, what: string, code: string): Promise<Uint8Array> {
  const raw = await readBodyWithin(incoming, MAX_NONCE_BODY_BYTES, {
    tooLarge: (found) =>
      new EnclaveError(
        "BODY_TOO_LARGE",
        413,
        `${what}: expected at most ${MAX_NONCE_BODY_BYTES} bytes, found ${found}`,
      ),
    gone: (cause) => new EnclaveError("CLIENT_CLOSED", 400, "the host went away mid-request", { cause }),
  });
  // What was found is named by its kind and a string by its length, never quoted: the body holds
  // the asker's nonce, which the host sends in clear.
  const malformed = (found: string, options?: { cause: unknown }) =>
    new EnclaveError(code, 400, `${what}: expected JSON {"nonce": base64url}, found ${found}`, options);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch (cause) {
    throw malformed("a body that is not UTF-8", { cause }); // the decoder's message quotes none of the body
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    // No `cause`: JSON.parse's message quotes the body (the asker's nonce, or whatever was sent).
    throw malformed(text === "" ? "an empty body" : "no JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw malformed(jsonKind(body));
  if (!Object.hasOwn(body, "nonce")) throw malformed("an object without nonce");
  const found = (body as { nonce: unknown }).nonce;
  if (typeof found !== "string") throw malformed(`${jsonKind(found)} at nonce`);
  let nonce: Uint8Array;
  try {
    // In base64url's one spelling (fromBase64url), as the SDK writes it (jose's encoder) and as
    // every JWS part is read: jose's decoder alone takes padding, white space and unused bits set.
    nonce = fromBase64url(found, "nonce");
  } catch {
    // No `cause`: its message may show a character of the string, which is the asker's text.
    const characters = `${found.length} character${found.length === 1 ? "" : "s"}`;
    throw malformed(`a non-base64url string of ${characters} at nonce`);
  }
  if (nonce.length < 16 || nonce.length > 64) {
    throw new EnclaveError(code, 400, `${what} nonce: expected 16..64 bytes, found ${nonce.length}`);
  }
  return nonce;
}

/** A JSON value's kind, for a message that must not quote it: "null", "an array", "a string"… */
function jsonKind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/**
 * Writes the answer's frames as they come: the headers go out with the first frame. A frame is
 * taken from the answer only when the socket has room (the answer's producer decodes a bounded
 * amount ahead and coalesces what waited, enclave/service.ts); a host that goes away stops the
 * answer, which frees its sequence and still writes its audit record. Gone, it is not waited for
 * the next frame: an engine slow to see its request aborted (or deaf to it) would hold the answer,
 * and its record, until it decodes again. abandon() then ends the answer at once, its record
 * written; it resolves (and the answer stops counting as active) once the engine has stopped, so
 * a draining enclave frees the engine only after that (enclave/run.ts drainEnclave, bounded).
 */
async function writeFrames(answer: StreamedAnswer, outgoing: ServerResponse, gone: AbortSignal) {
  const iterator = answer.frames[Symbol.asyncIterator]();
  // The wait for the frame under way ends at the abort too. (Not Promise.race with one promise of
  // the abort: each race would leave a reaction on it until the answer ends, one per frame.)
  let waiting: ((gone: typeof GONE) => void) | null = null;
  const onGone = () => waiting?.(GONE);
  gone.addEventListener("abort", onGone, { once: true });
  try {
    outgoing.writeHead(200, { "content-type": "application/vnd.cloister.frames" });
    for (;;) {
      if (gone.aborted) return;
      const next = await new Promise<IteratorResult<Uint8Array> | typeof GONE>((resolve, reject) => {
        waiting = resolve;
        iterator.next().then(resolve, reject);
      });
      waiting = null;
      if (next === GONE) return;
      const { done, value } = next;
      if (done === true) break;
      if (!outgoing.write(value)) await roomOrGone(outgoing, gone);
    }
    outgoing.end();
  } catch {
    outgoing.destroy();
  } finally {
    gone.removeEventListener("abort", onGone);
    // Also when the host left before the first frame was taken: the answer is ended and audited.
    await answer.abandon();
  }
}

/** What writeFrames's wait for a frame ends with when the host has gone. */
const GONE = Symbol("the host has gone");

function roomOrGone(outgoing: ServerResponse, gone: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    // Already gone (a write after the host left returns false and never drains): do not wait.
    if (gone.aborted || outgoing.destroyed) {
      resolve();
      return;
    }
    const done = () => {
      outgoing.off("drain", done);
      gone.removeEventListener("abort", done);
      resolve();
    };
    outgoing.once("drain", done);
    gone.addEventListener("abort", done, { once: true });
  });
}
