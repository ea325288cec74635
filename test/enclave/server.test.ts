/**
 * The enclave's HTTP server on a real loopback socket, with a scripted engine: sealed answers are
 * written frame by frame as they come, a host that goes away stops the answer (and the request is
 * still audited), and refusals before the request is open are plain HTTP errors.
 */
import { request as httpRequest } from "node:http";
import { base64url } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { listen, type RunningServer } from "../../enclave/http.ts";
import { type AuditRecord, auditRecordHash, verifyAuditCheckpoint } from "../../enclave/pipeline/audit.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import type { Enclave } from "../../enclave/service.ts";
import { openResponseFrames, type ResponseEvent, sealRequest } from "../../sealed/index.ts";
import { bootWith, ScriptedEngine, usage } from "./helpers.ts";

const servers: RunningServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function serve(enclave: Enclave): Promise<string> {
  const server = await listen(createEnclaveApp(enclave).fetch, "127.0.0.1", 0);
  servers.push(server);
  return server.url;
}

async function sealedRequest(enclave: Enclave) {
  return sealRequest({ enclavePublicKey: enclave.publicKeys.sealing, kind: "complete", body: { prompt: "hi" } });
}

const text = (t: string) => ({ type: "text", text: t }) as const;
const done = { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: 3 } } as const;

describe("enclave server: POST /sealed", () => {
  it("streams each frame as it is produced, then the final frame", async () => {
    const engine = new ScriptedEngine(() => [text("a"), { pauseMs: 200 }, text("b"), { pauseMs: 30 }, text("c"), done]);
    const enclave = await bootWith(engine);
    const url = await serve(enclave);
    const { envelope, context } = await sealedRequest(enclave);
    const response = await fetch(`${url}/sealed`, { method: "POST", body: envelope as Uint8Array<ArrayBuffer> });
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
      const req = httpRequest(`${url}/sealed`, { method: "POST", headers: { "content-length": envelope.length } });
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
    const req = httpRequest(`${url}/sealed`, { method: "POST", headers: { "content-length": envelope.length } });
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
    const wrongKey = await fetch(`${url}/sealed`, { method: "POST", body: envelope as Uint8Array<ArrayBuffer> });
    expect(wrongKey.status).toBe(409);
    expect(((await wrongKey.json()) as { error: { code: string } }).error.code).toBe("WRONG_ENCLAVE_KEY");

    const tooBig = await new Promise<{ status: number; connection: string | undefined; body: string }>(
      (resolve, reject) => {
        const req = httpRequest(`${url}/sealed`, { method: "POST", headers: { "content-length": 17 * 1024 * 1024 } });
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
});

describe("enclave server: POST /audit/checkpoint", () => {
  const checkpointRequest = (url: string, body: string) =>
    fetch(`${url}/audit/checkpoint`, { method: "POST", headers: { "content-type": "application/json" }, body });

  it("answers with the log's signed head bound to the asker's nonce", async () => {
    const enclave = await bootWith(new ScriptedEngine(() => [text("a"), done]));
    const url = await serve(enclave);
    const { envelope, context } = await sealedRequest(enclave);
    const answer = await fetch(`${url}/sealed`, { method: "POST", body: envelope as Uint8Array<ArrayBuffer> });
    for await (const _ of openResponseFrames(context, answer.body!)) {
      // read to the end
    }
    const deadline = Date.now() + 5000;
    while (enclave.collectAudit(0).lines.length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
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

describe("enclave server: draining (shutting down)", () => {
  it("refuses new sessions and sealed requests with 503 ENCLAVE_DRAINING, finishes the answer under way, keeps serving audit records", async () => {
    const engine = new ScriptedEngine(() => [text("a"), { pauseMs: 150 }, text("b"), done]);
    const enclave = await bootWith(engine);
    const state = { draining: false, active: 0 };
    const server = await listen(createEnclaveApp(enclave, state).fetch, "127.0.0.1", 0);
    servers.push(server);
    const { envelope, context } = await sealedRequest(enclave);
    const response = await fetch(`${server.url}/sealed`, { method: "POST", body: envelope as Uint8Array<ArrayBuffer> });
    expect(state.active).toBe(1);
    state.draining = true;

    const refused = await fetch(`${server.url}/sealed`, {
      method: "POST",
      body: (await sealedRequest(enclave)).envelope as Uint8Array<ArrayBuffer>,
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    expect(await refused.json()).toMatchObject({ error: { code: "ENCLAVE_DRAINING" } });
    expect((await fetch(`${server.url}/attestation`)).status).toBe(503);
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
    const req = request(`${server.url}/sealed`, { method: "POST", headers: { "content-length": envelope.length } });
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
