/**
 * docs/protocol.md's refusals of a sealed request ("Request envelope", "Order of checks", "Over
 * HTTP") against real servers: an enclave booted in the simulator on a scripted engine, and a host in
 * front of it, both on 127.0.0.1. Each row is a condition the page names, driven at the enclave's
 * `POST /sealed` and through the host's `POST /v1/sealed`: the answer's status, code and JSON body
 * (or, for a request that opened, its error frame), with the page checked to give that status for
 * that code. Rows the page says the host refuses itself are checked not to reach the enclave.
 */
import { createHash, randomBytes } from "node:crypto";
import nacl from "tweetnacl";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import { EngineBusyError, EngineError } from "../../enclave/engine/errors.ts";
import type { GenerateRequest, GenerationEvent } from "../../enclave/engine.ts";
import { MAX_SEALED_REQUEST_BYTES, type RunningServer } from "../../enclave/http.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import type { Enclave } from "../../enclave/service.ts";
import { createHostApp } from "../../host/app.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";
import { deriveResponseKey, hsalsa20SharedKey } from "../../sealed/crypto.ts";
import { ClientRequestContext } from "../../sealed/frames.ts";
import { openResponseFrames, ReplayGuard, type ResponseEvent } from "../../sealed/index.ts";
import { pageSection } from "../helpers/doc-pages.ts";
import { listenInRange } from "../helpers/listen-in-range.ts";
import { rawExchange } from "../helpers/raw-http.ts";
import { bootWith, ScriptedEngine, usage } from "./helpers.ts";

const KEY = "ck_refusals_table_0123456789";

/**
 * A scripted engine that answers "a", or refuses every generation as a full queue does (`busy`) or
 * as a closing engine does (`closed`).
 */
class BusyableEngine extends ScriptedEngine {
  refusing: "busy" | "closed" | null = null;
  override async *generate(request: GenerateRequest): AsyncGenerator<GenerationEvent, void, undefined> {
    if (this.refusing === "busy") throw new EngineBusyError(1, 0);
    if (this.refusing === "closed") throw new EngineError("ENGINE_CLOSED", "engine closed");
    yield* super.generate(request);
  }
}

const engine = new BusyableEngine(() => [
  { type: "text", text: "a" },
  { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: 1 } },
]);
let enclave: Enclave;
let enclaveServer: RunningServer;
let hostServer: RunningServer;
/** Sealed requests the enclave's service was handed (by either route). */
let reached = 0;

beforeAll(async () => {
  enclave = await bootWith(engine);
  const handle = enclave.handleSealed.bind(enclave);
  vi.spyOn(enclave, "handleSealed").mockImplementation((...args) => {
    reached++;
    return handle(...args);
  });
  enclaveServer = await listenInRange(createEnclaveApp(enclave));
  hostServer = await listenInRange(
    createHostApp({
      enclaveUrl: enclaveServer.url,
      apiKeys: new ApiKeyStore({
        version: 1,
        keys: [
          {
            id: "t",
            project: "p",
            sha256: hashApiKey(KEY),
            permissions: ["chat", "complete", "attest"],
            requestsPerMinute: 100_000,
          },
        ],
      }),
      limits: DEFAULT_HOST_LIMITS,
      accessLog: () => {},
    }),
  );
});

afterAll(async () => {
  await hostServer?.close();
  await enclaveServer?.close();
  await enclave?.close();
});

const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash("sha256").update(bytes).digest());
const utf8 = (text: string) => new TextEncoder().encode(text);

/** Little-endian u-coordinates: 9 (the base point) and 9 + p, its other encoding (p = 2^255 - 19). */
const NINE = new Uint8Array(32);
NINE[0] = 9;
const NINE_PLUS_P = new Uint8Array(32).fill(0xff);
NINE_PLUS_P[0] = 0xf6;
NINE_PLUS_P[31] = 0x7f;

interface Sealed {
  readonly envelope: Uint8Array;
  /** Opens the enclave's answer to it. */
  readonly context: ClientRequestContext;
}

/**
 * Seals `plaintext` (what follows the header digest) by hand to the enclave, as `kind` (1 chat, 2
 * complete). With `baseKey`, the client key is the base point (scalar 1): the shared X25519 output is
 * then the enclave's public key itself, which lets a test write that key in another encoding.
 */
function seal(plaintext: Uint8Array, options: { kind?: number; baseKey?: boolean } = {}): Sealed {
  const kind = options.kind ?? 2;
  const nonce = new Uint8Array(randomBytes(24));
  const prefix = new Uint8Array(78);
  prefix[0] = 1;
  prefix[1] = kind;
  prefix.set(sha256(enclave.publicKeys.sealing).subarray(0, 16), 2);
  new DataView(prefix.buffer).setUint32(18, 32 + plaintext.length + 16);
  const pair = nacl.box.keyPair();
  prefix.set(options.baseKey === true ? NINE : pair.publicKey, 22);
  prefix.set(nonce, 54);
  const shared =
    options.baseKey === true
      ? hsalsa20SharedKey(enclave.publicKeys.sealing.slice())
      : nacl.box.before(enclave.publicKeys.sealing, pair.secretKey);
  const message = new Uint8Array(32 + plaintext.length);
  message.set(sha256(prefix));
  message.set(plaintext, 32);
  const box = nacl.box.after(message, nonce, shared);
  const envelope = new Uint8Array(78 + box.length);
  envelope.set(prefix);
  envelope.set(box, 78);
  const json = new TextDecoder().decode(plaintext).replace(/ +$/, "");
  const context = new ClientRequestContext(
    "unused",
    kind === 1 ? "chat" : "complete",
    deriveResponseKey(shared, nonce),
    createHash("sha256").update(json).digest("hex"),
  );
  return { envelope, context };
}

/** A request's JSON text: a completion of "hi" sealed now, with `fields` changed. */
function requestJson(fields: Record<string, unknown> = {}): string {
  return JSON.stringify({
    v: 1,
    requestId: randomBytes(16).toString("hex"),
    timestamp: Date.now(),
    kind: "complete",
    body: { prompt: "hi" },
    ...fields,
  });
}

const sealJson = (text: string, options?: { kind?: number; baseKey?: boolean }) => seal(utf8(text), options);

/** `envelope` with `change` made to a copy. */
function edited(envelope: Uint8Array, change: (bytes: Uint8Array, view: DataView) => void): Uint8Array {
  const copy = envelope.slice();
  change(copy, new DataView(copy.buffer));
  return copy;
}

type Answer =
  | { readonly status: number; readonly code: string; readonly message: string; readonly connection: string | null }
  | { readonly status: 200; readonly frame: ResponseEvent };

/** POSTs `body` to `url` and reads the answer: its error, or the last event of its frames. */
async function post(
  url: string,
  body: Uint8Array,
  context: ClientRequestContext | null,
  contentType: string | null = "application/octet-stream",
): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${KEY}` };
  if (contentType !== null) headers["content-type"] = contentType;
  const response = await fetch(url, { method: "POST", headers, body: body as BodyInit });
  if (response.status === 200 && context !== null) {
    const events: ResponseEvent[] = [];
    for await (const event of openResponseFrames(context, response.body as ReadableStream<Uint8Array>)) {
      events.push(event);
    }
    return { status: 200, frame: events.at(-1) as ResponseEvent };
  }
  const json = (await response.json()) as { error: { code: string; message: string } };
  expect(Object.keys(json)).toEqual(["error"]);
  return {
    status: response.status,
    code: json.error.code,
    message: json.error.message,
    connection: response.headers.get("connection"),
  };
}

const toEnclave = (body: Uint8Array, context: ClientRequestContext | null = null, type?: string | null) =>
  post(`${enclaveServer.url}/sealed`, body, context, type);
const toHost = (body: Uint8Array, context: ClientRequestContext | null = null, type?: string | null) =>
  post(`${hostServer.url}/v1/sealed`, body, context, type);

interface Row {
  readonly name: string;
  readonly status: number;
  readonly code: string;
  /** The page says the host refuses it itself, without forwarding. */
  readonly hostOnly?: boolean;
  /** The request, sealed afresh for each server (a request id is spent once). */
  readonly request: () => { body: Uint8Array; context?: ClientRequestContext; type?: string | null };
}

const valid = () => sealJson(requestJson());
const ROWS: readonly Row[] = [
  {
    name: "a POST without Content-Type",
    status: 415,
    code: "CONTENT_TYPE_UNSUPPORTED",
    request: () => ({ body: valid().envelope, type: null }),
  },
  {
    name: "a POST of another type",
    status: 415,
    code: "CONTENT_TYPE_UNSUPPORTED",
    request: () => ({ body: valid().envelope, type: "text/plain" }),
  },
  {
    name: "93 bytes whose version byte is 2 (length first)",
    status: 400,
    code: "ENVELOPE_MALFORMED",
    hostOnly: true,
    request: () => ({ body: new Uint8Array(93).fill(2) }),
  },
  {
    name: "version byte 2",
    status: 400,
    code: "UNSUPPORTED_VERSION",
    hostOnly: true,
    request: () => ({ body: edited(valid().envelope, (b) => void (b[0] = 2)) }),
  },
  {
    name: "kind byte 3",
    status: 400,
    code: "ENVELOPE_MALFORMED",
    hostOnly: true,
    request: () => ({ body: edited(valid().envelope, (b) => void (b[1] = 3)) }),
  },
  {
    name: "N over 16 MiB",
    status: 400,
    code: "ENVELOPE_MALFORMED",
    hostOnly: true,
    request: () => ({ body: edited(valid().envelope, (_, v) => v.setUint32(18, 16 * 1024 * 1024 + 1)) }),
  },
  {
    name: "a length other than 78 + N",
    status: 400,
    code: "ENVELOPE_MALFORMED",
    hostOnly: true,
    request: () => ({ body: edited(valid().envelope, (_, v) => v.setUint32(18, v.getUint32(18) - 1)) }),
  },
  {
    name: "another enclave's key id",
    status: 409,
    code: "WRONG_ENCLAVE_KEY",
    request: () => ({ body: edited(valid().envelope, (b) => void (b[2] = (b[2] as number) ^ 1)) }),
  },
  {
    name: "a changed ciphertext",
    status: 400,
    code: "DECRYPTION_FAILED",
    request: () => ({ body: edited(valid().envelope, (b) => void (b[90] = (b[90] as number) ^ 1)) }),
  },
  {
    name: "a changed N_req",
    status: 400,
    code: "DECRYPTION_FAILED",
    request: () => ({ body: edited(valid().envelope, (b) => void (b[60] = (b[60] as number) ^ 1)) }),
  },
  {
    name: "a low-order client key (all zero)",
    status: 400,
    code: "DECRYPTION_FAILED",
    request: () => ({ body: edited(valid().envelope, (b) => b.fill(0, 22, 54)) }),
  },
  {
    name: "a changed kind byte",
    status: 400,
    code: "HEADER_MISMATCH",
    request: () => ({ body: edited(valid().envelope, (b) => void (b[1] = 1)) }),
  },
  {
    name: "the client key's top bit set (the same point)",
    status: 400,
    code: "HEADER_MISMATCH",
    request: () => ({ body: edited(valid().envelope, (b) => void (b[53] = (b[53] as number) | 0x80)) }),
  },
  {
    name: "the client key 9 written as 9 + p (the same point)",
    status: 400,
    code: "HEADER_MISMATCH",
    request: () => ({
      body: edited(sealJson(requestJson(), { baseKey: true }).envelope, (b) => b.set(NINE_PLUS_P, 22)),
    }),
  },
  {
    name: "a plaintext shorter than the header digest",
    status: 400,
    code: "REQUEST_MALFORMED",
    request: () => {
      // 10 bytes sealed with no digest at all: N = 26.
      const nonce = new Uint8Array(randomBytes(24));
      const pair = nacl.box.keyPair();
      const prefix = new Uint8Array(78);
      prefix[0] = 1;
      prefix[1] = 2;
      prefix.set(sha256(enclave.publicKeys.sealing).subarray(0, 16), 2);
      new DataView(prefix.buffer).setUint32(18, 26);
      prefix.set(pair.publicKey, 22);
      prefix.set(nonce, 54);
      const box = nacl.box(new Uint8Array(10), nonce, enclave.publicKeys.sealing, pair.secretKey);
      const body = new Uint8Array(78 + box.length);
      body.set(prefix);
      body.set(box, 78);
      return { body };
    },
  },
  {
    name: "white space before the JSON object",
    status: 400,
    code: "REQUEST_MALFORMED",
    request: () => ({ body: sealJson(` ${requestJson()}`).envelope }),
  },
  {
    name: "a tab in the padding",
    status: 400,
    code: "REQUEST_MALFORMED",
    request: () => ({ body: sealJson(`${requestJson()}  \t `).envelope }),
  },
  {
    name: 'a member named twice ("\\u0076" and "v")',
    status: 400,
    code: "REQUEST_MALFORMED",
    request: () => ({ body: sealJson(requestJson().replace("{", '{"\\u0076":1,')).envelope }),
  },
  {
    name: "a member named twice in the body",
    status: 400,
    code: "REQUEST_MALFORMED",
    request: () => ({
      body: sealJson(requestJson({ body: "B" }).replace('"B"', '{"prompt":"a","prompt":"b"}')).envelope,
    }),
  },
  {
    name: "another field",
    status: 400,
    code: "REQUEST_MALFORMED",
    request: () => ({ body: sealJson(requestJson({ extra: 1 })).envelope }),
  },
  {
    name: "a JSON kind other than the header's",
    status: 400,
    code: "REQUEST_MALFORMED",
    request: () => ({ body: sealJson(requestJson({ kind: "chat" })).envelope }),
  },
  {
    name: "a timestamp that is not an integer",
    status: 400,
    code: "REQUEST_MALFORMED",
    request: () => ({ body: sealJson(requestJson({ timestamp: Date.now() + 0.5 })).envelope }),
  },
  {
    name: "a timestamp 10 minutes old",
    status: 400,
    code: "REQUEST_STALE",
    request: () => ({ body: sealJson(requestJson({ timestamp: Date.now() - 600_000 })).envelope }),
  },
  {
    name: "a timestamp 10 minutes ahead",
    status: 400,
    code: "REQUEST_STALE",
    request: () => ({ body: sealJson(requestJson({ timestamp: Date.now() + 600_000 })).envelope }),
  },
  {
    name: "a body the pipeline refuses (opened: an error frame)",
    status: 200,
    code: "REQUEST_INVALID",
    request: () => {
      const { envelope, context } = sealJson(requestJson({ body: { prompt: 1 } }));
      return { body: envelope, context };
    },
  },
];

/** What a server answered, in the row's terms. */
function observed(answer: Answer): { status: number; code: string } {
  if ("frame" in answer) {
    return { status: answer.status, code: answer.frame.type === "error" ? answer.frame.code : answer.frame.type };
  }
  expect(answer.message.length).toBeGreaterThan(0);
  return { status: answer.status, code: answer.code };
}

/** The Request envelope section through "Over HTTP", each run of white space as one space. */
const requestSections = () => pageSection("docs/protocol.md", "## Request envelope", "## Attestation, as a client");
const orderOfChecks = () => pageSection("docs/protocol.md", "### Order of checks", "### Over HTTP");

/**
 * The statuses the page gives `code` in `text`: a number of three digits written right before it
 * ("413 `BODY_TOO_LARGE`") or right after it, past other codes joined by "and" or "or"
 * ("`WRONG_ENCLAVE_KEY` and `REQUEST_REPLAYED` 409").
 */
function statusesNear(text: string, code: string): number[] {
  const found: number[] = [];
  for (const match of text.matchAll(new RegExp(`\`${code}\``, "g"))) {
    const before = /(\d{3}) $/.exec(text.slice(0, match.index));
    const after = /^(?:,? (?:and|or) `[A-Z_]+`)* (\d{3})\b/.exec(text.slice(match.index + match[0].length));
    for (const m of [before, after]) if (m !== null) found.push(Number(m[1]));
  }
  return found;
}

/** Whether the page gives `code` the HTTP `status` (400: by "the other codes of the steps above"). */
function documented(code: string, status: number): boolean {
  if (statusesNear(requestSections(), code).includes(status)) return true;
  if (status === 400) {
    return (
      orderOfChecks().includes(`\`${code}\``) && requestSections().includes("the other codes of the steps above 400")
    );
  }
  if (status === 200) {
    // An opened request's refusal: a sentence that gives the code in an error frame.
    const sentences = requestSections().split(/\. (?=[A-Z])/);
    return sentences.some((sentence) => sentence.includes("error frame") && sentence.includes(`\`${code}\``));
  }
  return false;
}

describe("docs/protocol.md: the refusals of a sealed request, on real servers", () => {
  for (const row of ROWS) {
    it(`${row.name} → ${row.status} ${row.code}, at the enclave and through the host`, async () => {
      expect(documented(row.code, row.status), `docs/protocol.md gives ${row.code} ${row.status}`).toBe(true);
      const atEnclave = row.request();
      expect(observed(await toEnclave(atEnclave.body, atEnclave.context ?? null, atEnclave.type))).toEqual({
        status: row.status,
        code: row.code,
      });
      const before = reached;
      const atHost = row.request();
      expect(observed(await toHost(atHost.body, atHost.context ?? null, atHost.type))).toEqual({
        status: row.status,
        code: row.code,
      });
      if (row.hostOnly === true) expect(reached, "forwarded to the enclave").toBe(before);
    });
  }

  it("a request id accepted before → 409 REQUEST_REPLAYED; one refused at any step is not recorded", async () => {
    expect(documented("REQUEST_REPLAYED", 409)).toBe(true);
    const id = randomBytes(16).toString("hex");
    // Refused at step 5 (fields), then step 6 (stale), with the same id: neither records it.
    expect(observed(await toEnclave(sealJson(requestJson({ requestId: id, kind: "chat" })).envelope))).toEqual({
      status: 400,
      code: "REQUEST_MALFORMED",
    });
    const stale = requestJson({ requestId: id, timestamp: Date.now() - 600_000 });
    expect(observed(await toHost(sealJson(stale).envelope))).toEqual({ status: 400, code: "REQUEST_STALE" });
    const accepted = sealJson(requestJson({ requestId: id }));
    expect(observed(await toHost(accepted.envelope, accepted.context))).toEqual({ status: 200, code: "final" });
    // The same id again, in the same envelope or a new one, at either server.
    expect(observed(await toEnclave(accepted.envelope))).toEqual({ status: 409, code: "REQUEST_REPLAYED" });
    expect(observed(await toHost(sealJson(requestJson({ requestId: id })).envelope))).toEqual({
      status: 409,
      code: "REQUEST_REPLAYED",
    });
  });

  it("a body over the host's limit, or over the enclave's own, → 413 BODY_TOO_LARGE with Connection: close", async () => {
    expect(documented("BODY_TOO_LARGE", 413)).toBe(true);
    const before = reached;
    const answer = await toHost(new Uint8Array(DEFAULT_HOST_LIMITS.maxRequestBytes + 1));
    expect(answer).toMatchObject({ status: 413, code: "BODY_TOO_LARGE", connection: "close" });
    expect(reached).toBe(before);
    // The enclave's own limit, declared (a part of the body sent): refused unread.
    const raw = await rawExchange(
      enclaveServer.port,
      "POST /sealed HTTP/1.1\r\nHost: enclave\r\nContent-Type: application/octet-stream\r\n" +
        `Content-Length: ${MAX_SEALED_REQUEST_BYTES + 1}\r\n\r\n${"x".repeat(1024)}`,
    );
    expect(raw.split("\r\n")[0]).toBe("HTTP/1.1 413 Payload Too Large");
    expect(raw.toLowerCase()).toContain("\r\nconnection: close\r\n");
    expect(JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4))).toMatchObject({ error: { code: "BODY_TOO_LARGE" } });
  });

  it("a full replay cache → 503 REPLAY_CACHE_FULL with Retry-After, the request not recorded", async () => {
    expect(documented("REPLAY_CACHE_FULL", 503)).toBe(true);
    // The enclave's guard (100 000 live ids) swapped for one that holds a single id.
    const fields = enclave as unknown as { replayGuard: ReplayGuard };
    const kept = fields.replayGuard;
    fields.replayGuard = new ReplayGuard({ maxEntries: 1 });
    try {
      const first = valid();
      expect(observed(await toEnclave(first.envelope, first.context))).toEqual({ status: 200, code: "final" });
      for (const send of [toEnclave, toHost]) {
        const response = await fetch(
          send === toEnclave ? `${enclaveServer.url}/sealed` : `${hostServer.url}/v1/sealed`,
          {
            method: "POST",
            headers: { authorization: `Bearer ${KEY}`, "content-type": "application/octet-stream" },
            body: valid().envelope as BodyInit,
          },
        );
        expect(response.status).toBe(503);
        expect(response.headers.get("retry-after")).toBe("1");
        expect(((await response.json()) as { error: { code: string } }).error.code).toBe("REPLAY_CACHE_FULL");
      }
      expect(fields.replayGuard.size).toBe(1);
    } finally {
      fields.replayGuard = kept;
    }
  });

  for (const [refusing, code] of [
    ["busy", "ENGINE_BUSY"],
    ["closed", "ENGINE_CLOSED"],
  ] as const) {
    it(`an opened request the engine refuses (${refusing}) → 503 ${code} in plain HTTP, its id spent`, async () => {
      expect(documented(code, 503), `docs/protocol.md gives ${code} 503`).toBe(true);
      engine.refusing = refusing;
      try {
        const request = valid();
        const response = await fetch(`${hostServer.url}/v1/sealed`, {
          method: "POST",
          headers: { authorization: `Bearer ${KEY}`, "content-type": "application/octet-stream" },
          body: request.envelope as BodyInit,
        });
        expect(response.status).toBe(503);
        expect(response.headers.get("retry-after")).toBe("1");
        expect(((await response.json()) as { error: { code: string } }).error.code).toBe(code);
        // It was opened: the same envelope again is a replay, not another try.
        expect(observed(await toEnclave(request.envelope))).toEqual({ status: 409, code: "REQUEST_REPLAYED" });
      } finally {
        engine.refusing = null;
      }
    });
  }

  it("after every refusal, both servers still answer a sealed request", async () => {
    for (const send of [toEnclave, toHost]) {
      const request = valid();
      const before = reached;
      expect(observed(await send(request.envelope, request.context))).toEqual({ status: 200, code: "final" });
      // The count the host-only rows check does count what reaches the enclave.
      expect(reached).toBe(before + 1);
    }
  });
});

describe("docs/protocol.md: the refusals of a nonce question (POST /v1/attestation/challenge)", () => {
  const attestation = () => pageSection("docs/protocol.md", "## Attestation, as a client reads it", "## Replay rule");
  const nonce = (bytes: number) => JSON.stringify({ nonce: Buffer.alloc(bytes, 7).toString("base64url") });
  const cases = [
    { name: "a 15-byte nonce", body: nonce(15), status: 400, code: "CHALLENGE_MALFORMED" },
    { name: "a 65-byte nonce", body: nonce(65), status: 400, code: "CHALLENGE_MALFORMED" },
    { name: "no nonce member", body: "{}", status: 400, code: "CHALLENGE_MALFORMED" },
    {
      name: "a body over 1 KiB (a 16-byte nonce in it)",
      body: `${nonce(16)}${" ".repeat(1024)}`,
      status: 413,
      code: "BODY_TOO_LARGE",
    },
  ] as const;
  for (const c of cases) {
    it(`${c.name} → ${c.status} ${c.code}, at the enclave and through the host`, async () => {
      expect(statusesNear(attestation(), c.code), `docs/protocol.md gives ${c.code} ${c.status}`).toContain(c.status);
      for (const url of [`${enclaveServer.url}/attestation/challenge`, `${hostServer.url}/v1/attestation/challenge`]) {
        const response = await fetch(url, {
          method: "POST",
          headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
          body: c.body,
        });
        const json = (await response.json()) as { error: { code: string } };
        expect({ status: response.status, code: json.error.code }, url).toEqual({ status: c.status, code: c.code });
      }
    });
  }

  it("a 16-byte and a 64-byte nonce, in a body of 1 KiB, are answered", async () => {
    for (const bytes of [16, 64]) {
      const body = nonce(bytes).padEnd(1024, " ");
      for (const url of [`${enclaveServer.url}/attestation/challenge`, `${hostServer.url}/v1/attestation/challenge`]) {
        const response = await fetch(url, {
          method: "POST",
          headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
          body,
        });
        expect(response.status, `${url} ${bytes}`).toBe(200);
        expect(Object.keys((await response.json()) as object)).toEqual(["answer"]);
      }
    }
  });
});
