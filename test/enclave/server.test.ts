/**
 * The enclave's HTTP server on a real loopback socket, with a scripted engine: sealed answers are
 * written frame by frame as they come, a host that goes away stops the answer (and the request is
 * still audited), and refusals before the request is open are plain HTTP errors.
 */
import { createPublicKey } from "node:crypto";
import { request as httpRequest } from "node:http";
import { base64url, compactVerify } from "jose";
import nacl from "tweetnacl";
import { afterEach, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { listen, MAX_SEALED_REQUEST_BYTES, type RunningServer } from "../../enclave/http.ts";
import { type AuditRecord, auditRecordHash, verifyAuditCheckpoint } from "../../enclave/pipeline/audit.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import type { Enclave } from "../../enclave/service.ts";
import { encodeEnvelopePrefix, MAX_REQUEST_CIPHERTEXT_LENGTH, TENANT_HEADER } from "../../sealed/envelope.ts";
import { enclaveKeyId, openResponseFrames, type ResponseEvent, sealRequest } from "../../sealed/index.ts";
import { contentTypeRefusalMessage, wrongContentTypes } from "../helpers/content-types.ts";
import { bootWith, ScriptedEngine, usage } from "./helpers.ts";

const servers: RunningServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

/** The content types the enclave's POST routes take (anything else is 415). */
const OCTETS = { "content-type": "application/octet-stream" };
const JSON_TYPE = { "content-type": "application/json" };

async function serve(enclave: Enclave): Promise<string> {
  const server = await listen(createEnclaveApp(enclave).fetch, "127.0.0.1", 0);
  servers.push(server);
  return server.url;
}

async function sealedRequest(enclave: Enclave) {
  return sealRequest({ enclavePublicKey: enclave.publicKeys.sealing, kind: "complete", body: { prompt: "hi" } });
}

/** Sends one sealed request, reads its answer to the end, and waits for its audit record. */
async function answerOne(enclave: Enclave, url: string): Promise<void> {
  const { envelope, context } = await sealedRequest(enclave);
  const answer = await fetch(`${url}/sealed`, {
    method: "POST",
    headers: OCTETS,
    body: envelope as Uint8Array<ArrayBuffer>,
  });
  for await (const _ of openResponseFrames(context, answer.body!)) {
    // read to the end
  }
  const deadline = Date.now() + 5000;
  while (enclave.auditPending === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

/**
 * POSTs `body` with node's client, with its Content-Length or streamed (chunked, no length), 1 MiB
 * at a time, and stops sending once the server answers (a 413 comes before the body is whole).
 */
function post(
  url: string,
  body: Uint8Array,
  options: { declareLength: boolean; headers?: Record<string, string> },
): Promise<{ status: number; connection: string | undefined; json: { error?: { code: string; message: string } } }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const headers = { ...options.headers, ...(options.declareLength ? { "content-length": body.length } : {}) };
    const req = httpRequest(url, { method: "POST", headers });
    req.on("response", (res) => {
      answered = true;
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString()));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, json: JSON.parse(text) }),
      );
    });
    req.on("error", (error) => {
      // Writing into a connection the server closed after answering is expected.
      if (!answered) reject(error);
    });
    const next = (at: number) => {
      if (answered || req.destroyed) return;
      if (at >= body.length) {
        req.end();
        return;
      }
      req.write(body.subarray(at, at + (1 << 20)), () => next(at + (1 << 20)));
    };
    next(0);
  });
}

const text = (t: string) => ({ type: "text", text: t }) as const;
const done = { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: 3 } } as const;

describe("enclave server: POST /sealed", () => {
  it("streams each frame as it is produced, then the final frame", async () => {
    const engine = new ScriptedEngine(() => [text("a"), { pauseMs: 200 }, text("b"), { pauseMs: 30 }, text("c"), done]);
    const enclave = await bootWith(engine);
    const url = await serve(enclave);
    const { envelope, context } = await sealedRequest(enclave);
    const response = await fetch(`${url}/sealed`, {
      method: "POST",
      headers: OCTETS,
      body: envelope as Uint8Array<ArrayBuffer>,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/vnd.cloister.frames");
    const events: { event: ResponseEvent; at: number }[] = [];
    for await (const event of openResponseFrames(context, response.body!))
      events.push({ event, at: performance.now() });
    expect(events.map((e) => (e.event.type === "data" ? e.event.text : e.event.type))).toEqual([
      "a",
      "b",
      "c",
      "final",
    ]);
    // "a" reached the client before the engine had even produced "b": nothing waited for the end.
    expect(events[0]?.at ?? Number.POSITIVE_INFINITY).toBeLessThan(engine.emittedAt[1] ?? 0);
  });

  it("stops the answer when the host goes away, and audits the request as CLIENT_ABORTED", async () => {
    const script = [text("first"), ...Array.from({ length: 200 }, () => [{ pauseMs: 5 }, text("x")]).flat(), done];
    const engine = new ScriptedEngine(() => script);
    const enclave = await bootWith(engine);
    const url = await serve(enclave);
    const { envelope } = await sealedRequest(enclave);
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${url}/sealed`, {
        method: "POST",
        headers: { ...OCTETS, "content-length": envelope.length },
      });
      req.on("response", (res) => {
        res.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", () => {});
      req.end(envelope);
      setTimeout(() => reject(new Error("no first frame")), 5000);
    });
    const deadline = Date.now() + 5000;
    while (enclave.collectAudit(0).lines.length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    const record = JSON.parse(enclave.collectAudit(0).lines[0] as string).record;
    expect(record).toMatchObject({ error: "CLIENT_ABORTED" });
    // The engine was not driven to the end of its 200 chunks.
    expect(engine.pulls).toBeLessThan(150);
  });

  it("ends and audits an answer whose host left before its first frame (e.g. during a long prefill)", async () => {
    // The first token comes 300 ms after the request; the host goes away at 50 ms.
    const engine = new ScriptedEngine(() => [{ pauseMs: 300 }, text("late"), text("more"), done]);
    const enclave = await bootWith(engine);
    const url = await serve(enclave);
    const { envelope } = await sealedRequest(enclave);
    const req = httpRequest(`${url}/sealed`, {
      method: "POST",
      headers: { ...OCTETS, "content-length": envelope.length },
    });
    req.on("error", () => {});
    req.end(envelope);
    await new Promise((r) => setTimeout(r, 50));
    req.destroy();
    const deadline = Date.now() + 5000;
    while ((enclave.collectAudit(0).lines.length === 0 || engine.finished === 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(JSON.parse(enclave.collectAudit(0).lines[0] as string).record).toMatchObject({ error: "CLIENT_ABORTED" });
    expect(engine.finished).toBe(1);
  });

  it("refuses an envelope for another key (409) and an oversize body (413, connection closed) before opening anything", async () => {
    const enclave = await bootWith(new ScriptedEngine(() => [done]));
    const other = await bootWith(new ScriptedEngine(() => [done]));
    const url = await serve(enclave);
    const { envelope } = await sealedRequest(other);
    const wrongKey = await fetch(`${url}/sealed`, {
      method: "POST",
      headers: OCTETS,
      body: envelope as Uint8Array<ArrayBuffer>,
    });
    expect(wrongKey.status).toBe(409);
    expect(((await wrongKey.json()) as { error: { code: string } }).error.code).toBe("WRONG_ENCLAVE_KEY");

    const tooBig = await new Promise<{ status: number; connection: string | undefined; body: string }>(
      (resolve, reject) => {
        const req = httpRequest(`${url}/sealed`, {
          method: "POST",
          headers: { ...OCTETS, "content-length": 17 * 1024 * 1024 },
        });
        req.on("response", (res) => {
          let body = "";
          res.on("data", (c: Buffer) => (body += c.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
        });
        req.on("error", reject);
        req.write(Buffer.alloc(1024));
      },
    );
    expect(tooBig.status).toBe(413);
    expect(tooBig.connection).toBe("close");
    expect(tooBig.body).toContain("BODY_TOO_LARGE");
    expect(enclave.collectAudit(0).lines).toHaveLength(0);
  });

  it("reads a body of exactly its limit and the largest envelope the protocol allows; one byte more is 413, declared or streamed", async () => {
    const enclave = await bootWith(new ScriptedEngine(() => [done]));
    const state = { draining: false, active: 0 };
    const server = await listen(createEnclaveApp(enclave, state).fetch, "127.0.0.1", 0);
    servers.push(server);
    for (const declareLength of [true, false]) {
      // Read whole, then refused by the envelope checks (version 0), not for its size.
      const atLimit = await post(`${server.url}/sealed`, new Uint8Array(MAX_SEALED_REQUEST_BYTES), {
        declareLength,
        headers: OCTETS,
      });
      expect({ status: atLimit.status, code: atLimit.json.error?.code }).toEqual({
        status: 400,
        code: "UNSUPPORTED_VERSION",
      });
      const past = await post(`${server.url}/sealed`, new Uint8Array(MAX_SEALED_REQUEST_BYTES + 1), {
        declareLength,
        headers: OCTETS,
      });
      expect({ status: past.status, code: past.json.error?.code, connection: past.connection }).toEqual({
        status: 413,
        code: "BODY_TOO_LARGE",
        connection: "close",
      });
    }
    // A prefix declaring the most ciphertext a request may have, and that much: opened (and refused
    // as a box that does not open), so the limit leaves room for every envelope a client can seal.
    const ephemeral = nacl.box.keyPair();
    const prefix = encodeEnvelopePrefix(
      "complete",
      await enclaveKeyId(enclave.publicKeys.sealing),
      MAX_REQUEST_CIPHERTEXT_LENGTH,
      ephemeral.publicKey,
      new Uint8Array(24),
    );
    const largest = new Uint8Array(prefix.length + MAX_REQUEST_CIPHERTEXT_LENGTH);
    largest.set(prefix);
    const opened = await post(`${server.url}/sealed`, largest, { declareLength: true, headers: OCTETS });
    expect({ status: opened.status, code: opened.json.error?.code }).toEqual({
      status: 400,
      code: "DECRYPTION_FAILED",
    });
    // Every refused request was counted out again: a drain would not wait for them.
    expect(state.active).toBe(0);
    expect(enclave.collectAudit(0).lines).toHaveLength(0);
  });

  it("labels the audit record with the host's tenant header (unknown without one) and refuses a label it could not record", async () => {
    const enclave = await bootWith(new ScriptedEngine(() => [text("a"), done]));
    const url = await serve(enclave);
    const ask = async (headers: Record<string, string>) => {
      const { envelope, context } = await sealedRequest(enclave);
      const response = await fetch(`${url}/sealed`, {
        method: "POST",
        headers: { ...OCTETS, ...headers },
        body: envelope as Uint8Array<ArrayBuffer>,
      });
      if (response.status !== 200) return { status: response.status, body: await response.json() };
      for await (const _ of openResponseFrames(context, response.body!)) {
        // read to the end
      }
      return { status: response.status, body: null };
    };
    expect(await ask({ [TENANT_HEADER]: "team-a" })).toEqual({ status: 200, body: null });
    expect(await ask({})).toEqual({ status: 200, body: null });
    expect(await ask({ [TENANT_HEADER]: "team a" })).toMatchObject({
      status: 400,
      body: { error: { code: "TENANT_HEADER_INVALID" } },
    });
    const deadline = Date.now() + 5000;
    while (enclave.collectAudit(0).lines.length < 2 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    const tenants = enclave.collectAudit(0).lines.map((line) => JSON.parse(line).record.tenant);
    expect(tenants).toEqual(["team-a", "unknown"]);
  });
});

describe("enclave server: POST /attestation/challenge", () => {
  const challenge = (url: string, nonce: Uint8Array) =>
    fetch(`${url}/attestation/challenge`, {
      method: "POST",
      headers: JSON_TYPE,
      body: JSON.stringify({ nonce: base64url.encode(nonce) }),
    });

  it("answers a nonce of 16 to 64 bytes with the attested key over that nonce and this document", async () => {
    const enclave = await bootWith(new ScriptedEngine(() => [done]));
    const url = await serve(enclave);
    const key = createPublicKey({
      key: { kty: "OKP", crv: "Ed25519", x: base64url.encode(enclave.publicKeys.signing) },
      format: "jwk",
    });
    for (const length of [16, 64]) {
      const nonce = new Uint8Array(length).fill(length);
      const response = await challenge(url, nonce);
      expect(response.status).toBe(200);
      const { answer } = (await response.json()) as { answer: string };
      const payload = JSON.parse(new TextDecoder().decode((await compactVerify(answer, key)).payload));
      expect(payload).toMatchObject({ eat_nonce: base64url.encode(nonce), doc: enclave.documentDigest });
    }
    for (const length of [15, 65]) {
      const response = await challenge(url, new Uint8Array(length));
      expect({ status: response.status, body: await response.json() }).toEqual({
        status: 400,
        body: {
          error: { code: "CHALLENGE_MALFORMED", message: `challenge nonce: expected 16..64 bytes, found ${length}` },
        },
      });
    }
  });

  it("reads a question of exactly 1024 bytes; one byte more is 413, declared or streamed", async () => {
    const url = await serve(await bootWith(new ScriptedEngine(() => [done])));
    const question = (bytes: number) => {
      const json = JSON.stringify({ nonce: base64url.encode(new Uint8Array(32)) });
      return new TextEncoder().encode(json.padEnd(bytes, " "));
    };
    for (const declareLength of [true, false]) {
      const atLimit = await post(`${url}/attestation/challenge`, question(1024), { declareLength, headers: JSON_TYPE });
      expect(atLimit.status).toBe(200);
      const past = await post(`${url}/attestation/challenge`, question(1025), { declareLength, headers: JSON_TYPE });
      expect({ status: past.status, body: past.json }).toEqual({
        status: 413,
        body: {
          error: {
            code: "BODY_TOO_LARGE",
            message: `challenge: expected at most 1024 bytes, found ${declareLength ? "1025" : "more than 1024"}`,
          },
        },
      });
    }
  });
});

describe("enclave server: GET /audit", () => {
  /** An enclave served with one audit record written, and GET /audit with a query on it. */
  const oneRecordServed = async () => {
    const enclave = await bootWith(new ScriptedEngine(() => [text("a"), done]));
    const url = await serve(enclave);
    await answerOne(enclave, url);
    const collect = async (query: string) => {
      const response = await fetch(`${url}/audit${query}`);
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    return { enclave, collect };
  };

  it("takes from as a non-negative integer (0 when absent) and drops lines only for an acknowledgement naming this boot", async () => {
    const { enclave, collect } = await oneRecordServed();
    expect(await collect("")).toMatchObject({ status: 200, body: { from: 0, next: 1, lines: [expect.any(String)] } });
    // No boot named: nothing is acknowledged; this boot named without from: nothing either (from 0).
    expect(await collect("?from=1")).toMatchObject({ status: 200, body: { from: 0, lines: [expect.any(String)] } });
    expect(await collect(`?boot=${enclave.documentDigest}`)).toMatchObject({
      status: 200,
      body: { from: 0, lines: [expect.any(String)] },
    });
    expect(enclave.auditPending).toBe(1);
    // Only the canonical decimal form: Number() took "", " ", "0x10", "1e3" (1000: it would have
    // acknowledged, so dropped, records the host never stored), "+3", "-0", "01" as numbers.
    const expected =
      "audit: from expected a non-negative decimal integer of at most 9007199254740991 (digits only: no sign, exponent, leading zero or white space)";
    const long = "1".repeat(40);
    for (const [from, found] of [
      ["", "an empty value"],
      ["%20", "a value of 1 character"],
      ["%201", "a value of 2 characters"],
      ["0x10", '"0x10"'],
      ["1e3", '"1e3"'],
      ["1.5", '"1.5"'],
      ["-1", '"-1"'],
      ["-0", '"-0"'],
      ["%2B3", '"+3"'],
      ["01", '"01"'],
      ["abc", '"abc"'],
      ["1e300", '"1e300"'],
      ["9007199254740992", '"9007199254740992"'],
      [long, "a value of 40 characters"],
      ["1%0A", "a value of 2 characters"],
      ["%E2%80%AE1", "a value of 2 characters"],
    ]) {
      expect(await collect(`?from=${from}&boot=${enclave.documentDigest}`)).toEqual({
        status: 400,
        body: { error: { code: "AUDIT_QUERY_INVALID", message: `${expected}, found ${found}` } },
      });
    }
    expect(enclave.auditPending).toBe(1);
    // The largest safe integer is taken (and acknowledges everything before it).
    expect(await collect("?from=9007199254740991")).toMatchObject({ status: 200, body: { from: 0 } });
    expect(await collect("?from=0")).toMatchObject({ status: 200, body: { from: 0 } });
    expect(enclave.auditPending).toBe(1);
  });
  it("takes boot only as the boot id it issues (64 lower-case hex digits) and refuses a repeated from or boot", async () => {
    const { enclave, collect } = await oneRecordServed();
    const boot = enclave.documentDigest;
    const expected = "audit: boot expected the enclave boot id its /audit answer names (64 lower-case hex digits)";
    for (const [value, found] of [
      ["", "an empty value"],
      ["abc", '"abc"'],
      [boot.toUpperCase(), "a value of 64 characters"],
      [boot.slice(0, 63), "a value of 63 characters"],
      [`${boot}0`, "a value of 65 characters"],
      [`%20${boot}`, "a value of 65 characters"],
      [`${boot.slice(0, 63)}g`, "a value of 64 characters"],
    ]) {
      expect(await collect(`?from=1&boot=${value}`)).toEqual({
        status: 400,
        body: { error: { code: "AUDIT_QUERY_INVALID", message: `${expected}, found ${found}` } },
      });
    }
    // A repeated parameter is refused, not read by its first value (which one a proxy or a parser
    // keeps differs, and `from` drops every record before it).
    for (const [query, name] of [
      [`?from=1&from=0&boot=${boot}`, "from"],
      [`?from=1&from=1&boot=${boot}`, "from"],
      [`?from=1&boot=${boot}&boot=${boot}`, "boot"],
      [`?boot=${boot}&from=1&boot=${"0".repeat(64)}`, "boot"],
    ] as const) {
      expect(await collect(query)).toEqual({
        status: 400,
        body: {
          error: { code: "AUDIT_QUERY_INVALID", message: `audit: ${name} expected once, found it 2 times` },
        },
      });
    }
    expect(enclave.auditPending).toBe(1);
    // Another boot's id (well formed) is taken and acknowledges nothing; this boot's acknowledges.
    expect(await collect(`?from=1&boot=${"0".repeat(64)}`)).toMatchObject({ status: 200, body: { from: 0 } });
    expect(enclave.auditPending).toBe(1);
    expect(await collect(`?from=1&boot=${boot}`)).toMatchObject({ status: 200, body: { from: 1, lines: [] } });
    expect(enclave.auditPending).toBe(0);
  });
});

describe("enclave server: POST /audit/checkpoint", () => {
  const checkpointRequest = (url: string, body: string) =>
    fetch(`${url}/audit/checkpoint`, { method: "POST", headers: JSON_TYPE, body });

  it("answers with the log's signed head bound to the asker's nonce", async () => {
    const enclave = await bootWith(new ScriptedEngine(() => [text("a"), done]));
    const url = await serve(enclave);
    await answerOne(enclave, url);
    const [line] = enclave.collectAudit(0).lines;
    const nonce = new Uint8Array(32).fill(7);
    const response = await checkpointRequest(url, JSON.stringify({ nonce: base64url.encode(nonce) }));
    expect(response.status).toBe(200);
    const { checkpoint } = (await response.json()) as { checkpoint: string };
    const verified = verifyAuditCheckpoint(checkpoint, enclave.publicKeys.signing, { nonce });
    expect(verified).toMatchObject({ count: 1, nonce: toHex(nonce) });
    const record = JSON.parse(line as string).record as AuditRecord;
    expect(verified?.lastRecordHash).toBe(auditRecordHash(record));
  });

  it("refuses a malformed or out-of-range nonce (400) and answers 409 when the manifest disables auditing", async () => {
    const url = await serve(await bootWith(new ScriptedEngine(() => [done])));
    for (const body of ["not json", "{}", JSON.stringify({ nonce: 5 }), JSON.stringify({ nonce: "AAAA" })]) {
      const response = await checkpointRequest(url, body);
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe("AUDIT_CHECKPOINT_MALFORMED");
    }
    const tooLong = await checkpointRequest(url, JSON.stringify({ nonce: base64url.encode(new Uint8Array(65)) }));
    expect(((await tooLong.json()) as { error: { message: string } }).error.message).toBe(
      "audit checkpoint nonce: expected 16..64 bytes, found 65",
    );

    const unaudited = await serve(
      await bootWith(new ScriptedEngine(() => [done]), 0, { audit: { enabled: false, reason: "test: no audit" } }),
    );
    const disabled = await checkpointRequest(
      unaudited,
      JSON.stringify({ nonce: base64url.encode(new Uint8Array(32)) }),
    );
    expect(disabled.status).toBe(409);
    expect(((await disabled.json()) as { error: { code: string } }).error.code).toBe("AUDIT_DISABLED");
  });
});

describe("enclave server: request content types", () => {
  const nonceQuestion = JSON.stringify({ nonce: base64url.encode(new Uint8Array(32)) });
  const routes = [
    { path: "/sealed", type: "application/octet-stream" },
    { path: "/attestation/challenge", type: "application/json" },
    { path: "/audit/checkpoint", type: "application/json" },
  ] as const;
  it.each(routes)(
    "refuses POST $path of another content type than $type with 415, before reading it",
    async ({ path, type }) => {
      const enclave = await bootWith(new ScriptedEngine(() => [text("a"), done]));
      const state = { draining: false, active: 0 };
      const server = await listen(createEnclaveApp(enclave, state).fetch, "127.0.0.1", 0);
      servers.push(server);
      const body =
        path === "/sealed" ? (await sealedRequest(enclave)).envelope : new TextEncoder().encode(nonceQuestion);
      for (const found of wrongContentTypes(type)) {
        const headers = found === undefined ? {} : { "content-type": found };
        const refused = await post(`${server.url}${path}`, body, { declareLength: true, headers });
        expect({ status: refused.status, connection: refused.connection, body: refused.json }).toEqual({
          status: 415,
          connection: "close",
          body: {
            error: { code: "CONTENT_TYPE_UNSUPPORTED", message: contentTypeRefusalMessage(path, type, found) },
          },
        });
      }
      expect(state.active).toBe(0);
      expect(enclave.collectAudit(0).lines).toHaveLength(0);
    },
  );

  it("takes its own type whatever its case and parameters", async () => {
    const enclave = await bootWith(new ScriptedEngine(() => [text("a"), done]));
    const url = await serve(enclave);
    for (const type of ["Application/JSON", "application/json; charset=utf-8"]) {
      const headers = { "content-type": type };
      const answer = await fetch(`${url}/attestation/challenge`, { method: "POST", headers, body: nonceQuestion });
      expect(answer.status).toBe(200);
      const checkpoint = await fetch(`${url}/audit/checkpoint`, { method: "POST", headers, body: nonceQuestion });
      expect(checkpoint.status).toBe(200);
    }
    const { envelope, context } = await sealedRequest(enclave);
    const sealed = await fetch(`${url}/sealed`, {
      method: "POST",
      headers: { "content-type": "APPLICATION/octet-stream ; x=1" },
      body: envelope as Uint8Array<ArrayBuffer>,
    });
    expect(sealed.status).toBe(200);
    for await (const _ of openResponseFrames(context, sealed.body!)) {
      // read to the end
    }
  });
});

describe("enclave server: draining (shutting down)", () => {
  it("refuses new sessions and sealed requests with 503 ENCLAVE_DRAINING, finishes the answer under way, keeps serving audit records", async () => {
    const engine = new ScriptedEngine(() => [text("a"), { pauseMs: 150 }, text("b"), done]);
    const enclave = await bootWith(engine);
    const state = { draining: false, active: 0 };
    const server = await listen(createEnclaveApp(enclave, state).fetch, "127.0.0.1", 0);
    servers.push(server);
    const { envelope, context } = await sealedRequest(enclave);
    const response = await fetch(`${server.url}/sealed`, {
      method: "POST",
      headers: OCTETS,
      body: envelope as Uint8Array<ArrayBuffer>,
    });
    expect(state.active).toBe(1);
    state.draining = true;

    const refused = await fetch(`${server.url}/sealed`, {
      method: "POST",
      headers: OCTETS,
      body: (await sealedRequest(enclave)).envelope as Uint8Array<ArrayBuffer>,
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(await refused.json()).toMatchObject({ error: { code: "ENCLAVE_DRAINING" } });
    expect((await fetch(`${server.url}/attestation`)).status).toBe(503);
    // Its document stays on its audit route: a host (re)started now learns the boot's key from it.
    const served = await fetch(`${server.url}/audit/document`);
    expect({ status: served.status, body: await served.json() }).toEqual({
      status: 200,
      body: { document: enclave.document },
    });
    // The nonce questions are still answered (enclave/server.ts says why): an attestation begun just
    // before the drain ends, and the audit log's signed head is the last a client gets of this boot's.
    const nonce = JSON.stringify({ nonce: base64url.encode(new Uint8Array(32).fill(3)) });
    const challenge = await fetch(`${server.url}/attestation/challenge`, {
      method: "POST",
      headers: JSON_TYPE,
      body: nonce,
    });
    expect(challenge.status).toBe(200);
    const checkpoint = await fetch(`${server.url}/audit/checkpoint`, {
      method: "POST",
      headers: JSON_TYPE,
      body: nonce,
    });
    expect(checkpoint.status).toBe(200);
    // Its health says so too (a host with one enclave passes that on to its load balancer).
    const health = await fetch(`${server.url}/healthz`);
    expect({ status: health.status, body: await health.json() }).toEqual({ status: 503, body: { status: "draining" } });

    const events: string[] = [];
    for await (const event of openResponseFrames(context, response.body!)) {
      events.push(event.type === "data" ? event.text : event.type);
    }
    expect(events).toEqual(["a", "b", "final"]);
    await new Promise((r) => setTimeout(r, 20));
    expect(state.active).toBe(0);
    // The host still collects the records, including the answer that finished while draining.
    const batch = (await (await fetch(`${server.url}/audit?from=0`)).json()) as { lines: string[] };
    expect(batch.lines.length).toBe(1);
    expect(enclave.auditPending).toBe(1);
    await fetch(`${server.url}/audit?from=1&boot=${enclave.documentDigest}`);
    expect(enclave.auditPending).toBe(0);
  });

  it("counts a request whose body is still arriving, so a drain that starts meanwhile waits for it", async () => {
    const enclave = await bootWith(new ScriptedEngine(() => [text("a"), done]));
    const state = { draining: false, active: 0 };
    const server = await listen(createEnclaveApp(enclave, state).fetch, "127.0.0.1", 0);
    servers.push(server);
    const { envelope } = await sealedRequest(enclave);
    const { request } = await import("node:http");
    const req = request(`${server.url}/sealed`, {
      method: "POST",
      headers: { ...OCTETS, "content-length": envelope.length },
    });
    req.on("error", () => {});
    req.write(envelope.subarray(0, 10));
    const deadline = Date.now() + 5000;
    while (state.active === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(state.active).toBe(1); // counted before its body was read whole
    req.destroy(); // the host goes away mid-body: no longer counted
    while (state.active !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(state.active).toBe(0);
  });
});
