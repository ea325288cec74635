/**
 * A second client for Cloister, written from docs/protocol.md alone, over HTTP: tweetnacl and
 * node:crypto directly, nothing of sealed/ or attestation/. It reads the enclave's attestation
 * document and asks its nonce question ("Attestation, as a client reads it"), seals requests byte by
 * byte ("Request envelope"), sends them through a real host to a simulated enclave on 127.0.0.1, and
 * opens and checks every response frame ("Response frames", "Receipts"). Then the refusals the page
 * lists, from this encoder, with their HTTP status and code; and what the host's access log holds
 * ("What the host sees"). test/docs/protocol-doc.test.ts checks the page's numbers against
 * openRequest in process, and test/sealed/known-answer.test.ts the real client's bytes; this file
 * checks the wire as a stranger meets it: routes, content types, statuses and the document.
 */
import { createHash, createPublicKey, verify as verifySignature } from "node:crypto";
import nacl from "tweetnacl";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import { ListenError, listen, type RunningServer } from "../../enclave/http.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import type { AccessLogEntry } from "../../host/access-log.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { startHost } from "../../host/server.ts";
import { bootWith, ScriptedEngine, usage } from "../enclave/helpers.ts";
import { TEST_PORTS } from "../helpers/test-ports.ts";

// ---- The page's constants (docs/protocol.md), by section ------------------------------------------

/** "Request envelope": version 0x01; kind 0x01 chat, 0x02 complete; the prefix is bytes 0..78. */
const VERSION = 0x01;
const KIND = { chat: 0x01, complete: 0x02 } as const;
const PREFIX = 78;
const MiB = 1024 * 1024;
/** "never past 1 MiB − 78 bytes ... when the unpadded N fits under that". */
const SOFT_LIMIT = MiB - PREFIX;
/** "Response frames": types, marker, terminal size, the frame limit. */
const TYPE = { data: 0x01, final: 0x02, error: 0x03 } as const;
const MARKER = 0x80;
const TERMINAL_P = 1536;
const FRAME_LIMIT = MiB;
/** "Replay rule": the default window. */
const WINDOW_MS = 120_000;

const API_KEY = "ck_independent_client_0123456789";
const utf8 = new TextEncoder();
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const concat = (...parts: Uint8Array[]) => Uint8Array.from(Buffer.concat(parts));
const sha = (algorithm: "sha256" | "sha512", ...parts: Uint8Array[]) => {
  const hash = createHash(algorithm);
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
};
const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");
const fromB64url = (text: string) => new Uint8Array(Buffer.from(text, "base64url"));

/** Padmé as the page states it: L with ⌊log₂ L⌋ = E rounded up to a multiple of 2^(E − ⌊log₂ E⌋ − 1). */
function padme(length: number): number {
  const e = Math.floor(Math.log2(length));
  const step = 2 ** (e - Math.floor(Math.log2(e)) - 1);
  return Math.ceil(length / step) * step;
}

/**
 * "N is a padded length: a multiple of 256 bytes, and at least the Padmé length of the unpadded N",
 * never past 16 MiB, and never past 1 MiB − 78 when the unpadded N fits under that.
 */
function paddedN(unpadded: number): number {
  const limit = unpadded <= SOFT_LIMIT ? SOFT_LIMIT : 16 * MiB;
  return Math.min(Math.max(Math.ceil(unpadded / 256) * 256, padme(unpadded)), limit);
}

/** A data frame's P: "the larger of the next multiple of 32 bytes and its Padmé length", within the limit. */
function dataP(content: number): number {
  return Math.min(Math.max(Math.ceil(content / 32) * 32, padme(content)), FRAME_LIMIT - 24);
}

/** `N_resp(seq) = 0x01 ‖ 15 zero bytes ‖ seq (u64)`. */
function responseNonce(seq: number): Uint8Array {
  const nonce = new Uint8Array(24);
  nonce[0] = 0x01;
  new DataView(nonce.buffer).setBigUint64(16, BigInt(seq));
  return nonce;
}

/** An Ed25519 public key (32 raw bytes) for node:crypto. */
function ed25519Key(raw: Uint8Array) {
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: b64url(raw) }, format: "jwk" });
}

// ---- The client -------------------------------------------------------------------------------------

interface Sealed {
  readonly envelope: Uint8Array;
  readonly responseKey: Uint8Array;
  readonly requestId: string;
  /** SHA-256 (hex) of the plaintext after its digest, less trailing 0x20 bytes (the receipt's requestHash). */
  readonly requestHash: string;
}

interface SealOptions {
  readonly kind?: "chat" | "complete";
  readonly timestamp?: number;
  readonly requestId?: string;
  /** The padding byte (the page's 0x20 unless given); null: no padding at all. */
  readonly padByte?: number | null;
  readonly version?: number;
  readonly keyId?: Uint8Array;
}

function seal(enclavePublicKey: Uint8Array, body: unknown, options: SealOptions = {}): Sealed {
  const kind = options.kind ?? "chat";
  const client = nacl.box.keyPair();
  const nonce = nacl.randomBytes(24);
  const requestId = options.requestId ?? hex(nacl.randomBytes(16));
  const json = utf8.encode(JSON.stringify({ v: 1, requestId, timestamp: options.timestamp ?? Date.now(), kind, body }));
  // N = MAC (16) ‖ XSalsa20(SHA-256(prefix) (32) ‖ JSON ‖ padding)
  const unpadded = 16 + 32 + json.length;
  const padByte = options.padByte === undefined ? 0x20 : options.padByte;
  const n = padByte === null ? unpadded : paddedN(unpadded);
  const prefix = new Uint8Array(PREFIX);
  const view = new DataView(prefix.buffer);
  prefix[0] = options.version ?? VERSION;
  prefix[1] = KIND[kind];
  prefix.set(options.keyId ?? sha("sha256", enclavePublicKey).subarray(0, 16), 2);
  view.setUint32(18, n);
  prefix.set(client.publicKey, 22);
  prefix.set(nonce, 54);
  const padded = new Uint8Array(n - 48).fill(padByte ?? 0x20);
  padded.set(json);
  const sharedKey = nacl.box.before(enclavePublicKey, client.secretKey);
  const ciphertext = nacl.box.after(concat(sha("sha256", prefix), padded), nonce, sharedKey);
  let end = padded.length;
  while (end > 0 && padded[end - 1] === 0x20) end--;
  return {
    envelope: concat(prefix, ciphertext),
    responseKey: sha("sha512", utf8.encode("cloister/response/v1"), sharedKey, nonce).subarray(0, 32),
    requestId,
    requestHash: hex(sha("sha256", padded.subarray(0, end))),
  };
}

interface TerminalFrame {
  type: "final" | "error";
  seq: number;
  json: Record<string, unknown>;
  size: number;
}
type Frame = { type: "data"; seq: number; text: string; size: number } | TerminalFrame;

/** Splits a whole response body into frames and opens each by the page's rules. */
function openFrames(stream: Uint8Array, key: Uint8Array): Frame[] {
  const frames: Frame[] = [];
  const view = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  let offset = 0;
  for (let expected = 0; offset < stream.length; expected++) {
    expect(frames.at(-1)?.type ?? "data", "nothing after the final or error frame").toBe("data");
    const length = view.getUint32(offset);
    expect(length).toBeGreaterThanOrEqual(26);
    expect(length).toBeLessThanOrEqual(FRAME_LIMIT);
    const seq = Number(view.getBigUint64(offset + 4));
    expect(seq).toBe(expected);
    const plaintext = nacl.secretbox.open(stream.subarray(offset + 12, offset + 4 + length), responseNonce(seq), key);
    expect(plaintext, `frame ${seq} opens under R and N_resp(seq)`).not.toBeNull();
    const p = plaintext as Uint8Array;
    expect(p.length).toBe(length - 24);
    let end = p.length - 1;
    while (p[end] === 0) end--;
    expect(p[end]).toBe(MARKER);
    const payload = new TextDecoder("utf-8", { fatal: true }).decode(p.subarray(1, end));
    if (p[0] === TYPE.data) {
      expect(p.length).toBe(dataP(end + 1));
      frames.push({ type: "data", seq, text: payload, size: 4 + length });
    } else {
      expect([TYPE.final, TYPE.error]).toContain(p[0]);
      expect(p.length).toBe(TERMINAL_P);
      const json = JSON.parse(payload) as Record<string, unknown>;
      frames.push({ type: p[0] === TYPE.final ? "final" : "error", seq, json, size: 4 + length });
    }
    offset += 4 + length;
  }
  expect(offset).toBe(stream.length);
  return frames;
}

// ---- The deployment: a simulated enclave behind a real host, on the tests' ports ---------------------

/** Listens `fetch` on a free port of the tests' range (each tried once from a random start). */
async function onTestPort(fetch: (request: Request) => Response | Promise<Response>): Promise<RunningServer> {
  const start = Math.floor(Math.random() * TEST_PORTS.count);
  for (let i = 0; i < TEST_PORTS.count; i++) {
    const port = TEST_PORTS.first + ((start + i) % TEST_PORTS.count);
    try {
      return await listen(fetch, "127.0.0.1", port);
    } catch (error) {
      if (!(error instanceof ListenError && error.code === "EADDRINUSE")) throw error;
    }
  }
  throw new Error("no free port in the tests' range");
}

const ANSWER = ["The host ", "sees sizes", " only. ⚗️"];
const log: AccessLogEntry[] = [];
let enclaveServer: RunningServer;
let host: Awaited<ReturnType<typeof startHost>>;
let hostUrl: string;
let document: string;
let enclavePublicKey: Uint8Array;
let signingKey: Uint8Array;

beforeAll(async () => {
  const engine = new ScriptedEngine(() => [
    ...ANSWER.map((text) => ({ type: "text", text }) as const),
    { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: ANSWER.length } } as const,
  ]);
  const enclave = await bootWith(engine);
  enclaveServer = await onTestPort(createEnclaveApp(enclave).fetch);
  const apiKeys = new ApiKeyStore({
    version: 1,
    keys: [
      {
        id: "k",
        project: "p",
        sha256: hashApiKey(API_KEY),
        permissions: ["attest", "chat", "complete"],
        requestsPerMinute: 1000,
      },
    ],
  });
  for (let i = 0; i < TEST_PORTS.count && host === undefined; i++) {
    const port = TEST_PORTS.first + ((Math.floor(Math.random() * TEST_PORTS.count) + i) % TEST_PORTS.count);
    try {
      host = await startHost({
        enclaveUrls: [enclaveServer.url],
        apiKeys,
        hostname: "127.0.0.1",
        port,
        accessLog: (entry) => log.push(entry),
        auditDir: null,
      });
    } catch (error) {
      if (!(error instanceof ListenError && error.code === "EADDRINUSE")) throw error;
    }
  }
  hostUrl = host.url.replace(/\/$/, "");
});

afterAll(async () => {
  await host?.close();
  await enclaveServer?.close();
});

const AUTH = { authorization: `Bearer ${API_KEY}` };

async function post(path: string, body: Uint8Array | string, type: string) {
  const response = await fetch(`${hostUrl}${path}`, {
    method: "POST",
    headers: { ...AUTH, "content-type": type },
    body: typeof body === "string" ? body : (body as Uint8Array<ArrayBuffer>),
  });
  return {
    status: response.status,
    type: response.headers.get("content-type"),
    body: new Uint8Array(await response.arrayBuffer()),
  };
}

/** POST /v1/sealed; for a refusal, its code (the page's `{"error": {"code", "message"}}`). */
async function send(envelope: Uint8Array) {
  const answer = await post("/v1/sealed", envelope, "application/octet-stream");
  const code =
    answer.status === 200
      ? null
      : (JSON.parse(Buffer.from(answer.body).toString()) as { error: { code: string } }).error.code;
  return { ...answer, code };
}

const BODY = { messages: [{ role: "user", content: "What does the host see?" }], maxTokens: 8 };

describe("a client written from docs/protocol.md alone, over HTTP through a host", () => {
  it("reads E_pub and the signing key from the document, and checks the nonce answer", async () => {
    const got = await fetch(`${hostUrl}/v1/attestation`, { headers: AUTH });
    expect(got.status).toBe(200);
    document = ((await got.json()) as { document: string }).document;
    const [header, payload, signature] = document.split(".") as [string, string, string];
    expect(JSON.parse(Buffer.from(header, "base64url").toString())).toMatchObject({
      alg: "EdDSA",
      typ: "cloister-attestation+jwt",
    });
    const fields = JSON.parse(Buffer.from(payload, "base64url").toString()) as {
      cnf: { jwk: { kty: string; crv: string; x: string } };
      sig_jwk: { kty: string; crv: string; x: string };
    };
    expect(fields.cnf.jwk).toMatchObject({ kty: "OKP", crv: "X25519" });
    expect(fields.sig_jwk).toMatchObject({ kty: "OKP", crv: "Ed25519" });
    enclavePublicKey = fromB64url(fields.cnf.jwk.x);
    signingKey = fromB64url(fields.sig_jwk.x);
    expect(enclavePublicKey).toHaveLength(32);
    // The document verifies under the key it carries (its evidence binds that key: docs/platforms.md).
    expect(
      verifySignature(null, utf8.encode(`${header}.${payload}`), ed25519Key(signingKey), fromB64url(signature)),
    ).toBe(true);

    const nonce = nacl.randomBytes(32);
    const asked = await post("/v1/attestation/challenge", JSON.stringify({ nonce: b64url(nonce) }), "application/json");
    expect(asked.status).toBe(200);
    const answer = (JSON.parse(Buffer.from(asked.body).toString()) as { answer: string }).answer;
    const [aHeader, aPayload, aSignature] = answer.split(".") as [string, string, string];
    expect(JSON.parse(Buffer.from(aHeader, "base64url").toString())).toMatchObject({
      alg: "EdDSA",
      typ: "cloister-nonce-answer+jwt",
    });
    expect(
      verifySignature(null, utf8.encode(`${aHeader}.${aPayload}`), ed25519Key(signingKey), fromB64url(aSignature)),
    ).toBe(true);
    const said = JSON.parse(Buffer.from(aPayload, "base64url").toString()) as Record<string, unknown>;
    expect(said).toEqual({
      eat_nonce: b64url(nonce),
      doc: hex(sha("sha256", utf8.encode(document))),
      iat: expect.any(Number),
    });
    expect(Number.isSafeInteger(said.iat)).toBe(true);
    // Nonces out of 16..64 bytes: CHALLENGE_MALFORMED.
    for (const size of [15, 65]) {
      const refused = await post(
        "/v1/attestation/challenge",
        JSON.stringify({ nonce: b64url(new Uint8Array(size)) }),
        "application/json",
      );
      expect(refused.status).toBe(400);
      expect(Buffer.from(refused.body).toString()).toContain('"CHALLENGE_MALFORMED"');
    }
  });

  it("finds the page's REPORT_DATA formula in the document's SNP report, at offset 0x50 (AMD's layout)", () => {
    const fields = JSON.parse(Buffer.from(document.split(".")[1] as string, "base64url").toString()) as {
      evidence: { type: string; report: string };
      manifest: string;
    };
    // The simulated enclave's evidence is an SNP attestation report (docs/platforms.md), base64url
    // in the document; REPORT_DATA is its 64 bytes at offset 0x50 (AMD SEV-SNP ABI, ATTESTATION_REPORT).
    expect(fields.evidence.type).toBe("sev-snp");
    const report = fromB64url(fields.evidence.report);
    const reportData = report.subarray(0x50, 0x50 + 64);
    // "SHA-512("cloister/report-data/v1" ‖ 0x00 ‖ Ed25519 key (32) ‖ E_pub (32) ‖ SHA-256(manifest JWS))".
    const expected = sha(
      "sha512",
      utf8.encode("cloister/report-data/v1"),
      Uint8Array.of(0x00),
      signingKey,
      enclavePublicKey,
      sha("sha256", utf8.encode(fields.manifest)),
    );
    expect(hex(reportData)).toBe(hex(expected));
  });

  it("seals a request the enclave answers, and opens every frame, the final frame and the receipt as the page says", async () => {
    const sealed = seal(enclavePublicKey, BODY);
    expect(sealed.envelope.length).toBe(PREFIX + paddedN(sealed.envelope.length - PREFIX));
    const answer = await send(sealed.envelope);
    expect(answer.status).toBe(200);
    expect(answer.type).toBe("application/vnd.cloister.frames");
    const frames = openFrames(answer.body, sealed.responseKey);
    expect(
      frames
        .filter((f) => f.type === "data")
        .map((f) => (f as { text: string }).text)
        .join(""),
    ).toBe(ANSWER.join(""));
    const final = frames.at(-1) as TerminalFrame;
    expect(final.type).toBe("final");
    expect(final.json).toMatchObject({
      promptTokens: usage.promptTokens,
      completionTokens: ANSWER.length,
      finishReason: "stop",
      frameCount: final.seq + 1,
      redacted: null,
    });
    // The members the page names, and no others (a later enclave may add some: "Versioning").
    expect(Object.keys(final.json).sort()).toEqual([
      "auditOpening",
      "completionTokens",
      "finishReason",
      "frameCount",
      "promptTokens",
      "receipt",
      "redacted",
      "ttftMs",
    ]);
    expect(typeof final.json.ttftMs).toBe("number");
    expect(final.json.auditOpening === null || /^[0-9a-f]{64}$/.test(final.json.auditOpening as string)).toBe(true);
    // The receipt: the fields in order, no white space, signed under the document's sig_jwk.
    const line = final.json.receipt as string;
    expect(line.length).toBeLessThanOrEqual(900);
    const receipt = JSON.parse(line) as Record<string, unknown>;
    expect(Object.keys(receipt)).toEqual([
      "v",
      "requestHash",
      "answerHash",
      "finishReason",
      "promptTokens",
      "completionTokens",
      "modelSha256",
      "manifestDigest",
      "documentDigest",
      "time",
      "sig",
    ]);
    expect(JSON.stringify(receipt)).toBe(line);
    expect(receipt).toMatchObject({
      v: 1,
      requestHash: sealed.requestHash,
      answerHash: hex(sha("sha256", utf8.encode(ANSWER.join("")))),
      finishReason: "stop",
      completionTokens: ANSWER.length,
      documentDigest: hex(sha("sha256", utf8.encode(document))),
    });
    expect(new Date(receipt.time as string).toISOString()).toBe(receipt.time);
    const unsigned = line.replace(/,"sig":"[A-Za-z0-9_-]+"\}$/, "}");
    const message = concat(utf8.encode("cloister/receipt/v1"), new Uint8Array([0]), utf8.encode(unsigned));
    expect(verifySignature(null, message, ed25519Key(signingKey), fromB64url(receipt.sig as string))).toBe(true);
  });

  it("a body the pipeline refuses is answered 200 with one error frame of the terminal size", async () => {
    const sealed = seal(enclavePublicKey, { messages: [] });
    const answer = await send(sealed.envelope);
    expect(answer.status).toBe(200);
    const frames = openFrames(answer.body, sealed.responseKey);
    expect(frames).toHaveLength(1);
    // "A request whose body was invalid ... is recorded without its prompt and gets no opening."
    expect(frames[0]).toMatchObject({
      type: "error",
      seq: 0,
      json: { code: "REQUEST_INVALID", auditOpening: null },
      size: 4 + 8 + 16 + TERMINAL_P,
    });
    const detail = (frames[0] as TerminalFrame).json.detail;
    expect(detail === null || (typeof detail === "string" && detail.length <= 200)).toBe(true);
  });

  it("pads with 0x20 or not at all; the receipt hashes the object's text, without the padding", async () => {
    const sealed = seal(enclavePublicKey, BODY);
    const answer = await send(sealed.envelope);
    expect(answer.status).toBe(200);
    const final = openFrames(answer.body, sealed.responseKey).at(-1) as TerminalFrame;
    const receipt = JSON.parse(final.json.receipt as string) as { requestHash: string };
    expect(receipt.requestHash).toBe(sealed.requestHash);
    const unpadded = seal(enclavePublicKey, BODY, { padByte: null });
    expect((unpadded.envelope.length - PREFIX) % 256).not.toBe(0);
    expect((await send(unpadded.envelope)).status).toBe(200);
  });
});

describe("the refusals the page lists, from the independent encoder", () => {
  it("each refusal before the request opens is an HTTP error with the documented status and code", async () => {
    const cases: [string, Uint8Array, number, string][] = [
      ["unknown version", seal(enclavePublicKey, BODY, { version: 2 }).envelope, 400, "UNSUPPORTED_VERSION"],
      [
        "another key id",
        seal(enclavePublicKey, BODY, { keyId: new Uint8Array(16) }).envelope,
        409,
        "WRONG_ENCLAVE_KEY",
      ],
      [
        "stale, past the window",
        seal(enclavePublicKey, BODY, { timestamp: Date.now() - WINDOW_MS - 60_000 }).envelope,
        400,
        "REQUEST_STALE",
      ],
      [
        "from the future, past the window",
        seal(enclavePublicKey, BODY, { timestamp: Date.now() + WINDOW_MS + 60_000 }).envelope,
        400,
        "REQUEST_STALE",
      ],
      ["padded with zero bytes", seal(enclavePublicKey, BODY, { padByte: 0x00 }).envelope, 400, "REQUEST_MALFORMED"],
      // "... nothing else: ... a tab, line feed, carriage return or 0x00 in the padding, is REQUEST_MALFORMED".
      ["padded with tabs", seal(enclavePublicKey, BODY, { padByte: 0x09 }).envelope, 400, "REQUEST_MALFORMED"],
      ["padded with line feeds", seal(enclavePublicKey, BODY, { padByte: 0x0a }).envelope, 400, "REQUEST_MALFORMED"],
      [
        "a request id in upper case",
        seal(enclavePublicKey, BODY, { requestId: "A".repeat(32) }).envelope,
        400,
        "REQUEST_MALFORMED",
      ],
    ];
    for (const [what, envelope, status, code] of cases) {
      const answer = await send(envelope);
      expect({ what, status: answer.status, code: answer.code }).toEqual({ what, status, code });
    }
  });

  it("a replayed request id is 409 REQUEST_REPLAYED, whether the envelope is resent or resealed", async () => {
    const first = seal(enclavePublicKey, BODY);
    expect((await send(first.envelope)).status).toBe(200);
    expect(await send(first.envelope)).toMatchObject({ status: 409, code: "REQUEST_REPLAYED" });
    const resealed = seal(enclavePublicKey, BODY, { requestId: first.requestId });
    expect(await send(resealed.envelope)).toMatchObject({ status: 409, code: "REQUEST_REPLAYED" });
  });

  it("oversize: N over 16 MiB is ENVELOPE_MALFORMED, a body over the host's 1 MiB limit is 413 BODY_TOO_LARGE", async () => {
    const header = seal(enclavePublicKey, BODY).envelope;
    new DataView(header.buffer).setUint32(18, 16 * MiB + 1);
    expect(await send(header)).toMatchObject({ status: 400, code: "ENVELOPE_MALFORMED" });
    // Unpadded N over the soft limit: padded up, past the host's default limit.
    const large = seal(enclavePublicKey, { prompt: "x".repeat(SOFT_LIMIT) }, { kind: "complete" });
    expect(large.envelope.length).toBeGreaterThan(MiB);
    expect(await send(large.envelope)).toMatchObject({ status: 413, code: "BODY_TOO_LARGE" });
    // A type other than application/octet-stream: 415, unread.
    const typed = await post("/v1/sealed", seal(enclavePublicKey, BODY).envelope, "application/json");
    expect(typed.status).toBe(415);
    expect(Buffer.from(typed.body).toString()).toContain('"CONTENT_TYPE_UNSUPPORTED"');
  });
});

describe("what the host sees, as its access log keeps it", () => {
  it("sizes only: the padded envelope's length in, the frames' lengths out; final and error frames one size", async () => {
    // Two prompts of different lengths within one 256-byte block: one size on the wire.
    const short = seal(enclavePublicKey, { messages: [{ role: "user", content: "a" }] });
    const longer = seal(enclavePublicKey, { messages: [{ role: "user", content: "a".repeat(20) }] });
    expect(short.envelope.length).toBe(longer.envelope.length);
    const refused = seal(enclavePublicKey, { messages: [] });
    const sizes: number[] = [];
    for (const sealed of [short, longer, refused]) {
      const before = log.length;
      const answer = await send(sealed.envelope);
      const frames = openFrames(answer.body, sealed.responseKey);
      sizes.push((frames.at(-1) as Frame).size);
      // The access log line is written as the answer ends (bounded wait, a few turns of the loop).
      for (let i = 0; i < 1000 && log.length === before; i++) await new Promise((r) => setImmediate(r));
      const entry = log.at(-1) as AccessLogEntry;
      expect(entry).toMatchObject({ method: "POST", path: "/v1/sealed", status: 200, keyId: "k" });
      expect(entry.requestBytes).toBe(sealed.envelope.length);
      expect(entry.responseBytes).toBe(answer.body.length);
      expect(Object.keys(entry).sort()).toEqual([
        "durationMs",
        "headersMs",
        "keyId",
        "member",
        "method",
        "outcome",
        "path",
        "requestBytes",
        "responseBytes",
        "status",
        "time",
      ]);
    }
    expect(new Set(sizes)).toEqual(new Set([4 + 8 + 16 + TERMINAL_P]));
  });
});
