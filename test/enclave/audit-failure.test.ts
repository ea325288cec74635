/**
 * Auditing fails closed. The audit record of a complete answer is written just after its final
 * frame (off the answer's path): if that write fails, the client still gets its whole answer and a
 * normal end of stream, and the enclave then refuses every new sealed request (AUDIT_FAILED, 503,
 * before the request is opened or the engine asked) until it is restarted, offers no new session
 * (GET /attestation: AUDIT_FAILED, so a pool host asks another member; GET /audit/document still
 * answers, for the host's collector), says so on /healthz,
 * and logs the failure once, by its code only. A write that fails before the end (a refusal, an
 * engine failure, a reader that went away) is tried once and ends in an AUDIT_FAILED error frame
 * or a quiet abandon, never a crash.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { EnclaveError } from "../../enclave/errors.ts";
import { listen, type RunningServer } from "../../enclave/http.ts";
import type { AuditWriter } from "../../enclave/pipeline/audit.ts";
import { AuditRecordInvalidError } from "../../enclave/pipeline/errors.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import type { Enclave } from "../../enclave/service.ts";
import { openResponseFrames, type ResponseEvent, sealRequest } from "../../sealed/index.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { bootWith, ScriptedEngine, usage } from "./helpers.ts";

const PROMPT = "the secret prompt text";
const ANSWER = ["alpha ", "beta ", "gamma"];
const text = (t: string) => ({ type: "text", text: t }) as const;
const done = { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: 3 } } as const;

const servers: RunningServer[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const s of servers.splice(0)) await s.close();
});

/** Makes the enclave's audit writer fail on every record from now on (as a broken clock would). */
function breakAuditWriter(enclave: Enclave) {
  const writer = (enclave as unknown as { audit: AuditWriter }).audit;
  return vi.spyOn(writer, "record").mockImplementation(() => {
    throw new AuditRecordInvalidError("time", "a valid Date from the clock", new Date(Number.NaN));
  });
}

/** Lines the enclave writes to stderr while the test runs (the enclave's log). */
function captureLog(): string[] {
  const lines: string[] = [];
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: unknown) => {
    lines.push(String(chunk));
    return true;
  });
  return lines;
}

async function seal(enclave: Enclave, body: unknown = { prompt: PROMPT }) {
  return sealRequest({ enclavePublicKey: enclave.publicKeys.sealing, kind: "complete", body });
}

/** Opens a sealed request: its answer, not read yet. */
async function open(enclave: Enclave, body?: unknown) {
  const { envelope, context } = await seal(enclave, body);
  const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
  return { context, answer };
}

async function readAll(enclave: Enclave, body?: unknown) {
  return decode(await open(enclave, body));
}

/** Reads every frame of an answer (a failing read fails the test), then opens them. */
async function decode({ context, answer }: Awaited<ReturnType<typeof open>>) {
  const frames: Uint8Array[] = [];
  const iterator = answer.frames[Symbol.asyncIterator]();
  for (;;) {
    const { done: ended, value } = await iterator.next();
    if (ended === true) break;
    frames.push(value);
  }
  const events: ResponseEvent[] = [];
  for await (const event of openResponseFrames(
    context,
    (async function* () {
      yield* frames;
    })(),
  ))
    events.push(event);
  return events;
}

/** An enclave whose audit writer fails, with two answers opened and not read yet. */
async function twoUnderWay() {
  const enclave = await bootWith(new ScriptedEngine(() => [...ANSWER.map(text), done]));
  const log = captureLog();
  const record = breakAuditWriter(enclave);
  return { enclave, log, record, first: await open(enclave), second: await open(enclave) };
}

describe("enclave: an audit write that fails after the final frame", () => {
  it("leaves the answer whole: every data frame, the final frame, and a normal end", async () => {
    const engine = new ScriptedEngine(() => [...ANSWER.map(text), done]);
    const enclave = await bootWith(engine);
    captureLog();
    const record = breakAuditWriter(enclave);
    const events = await readAll(enclave);
    expect(events.flatMap((e) => (e.type === "data" ? [e.text] : [])).join("")).toBe(ANSWER.join(""));
    expect(events.at(-1)).toMatchObject({ type: "final", finishReason: "stop" });
    expect(record).toHaveBeenCalledTimes(1);
  });

  it("over HTTP: the client reads the final frame and a clean end (no destroyed connection)", async () => {
    const engine = new ScriptedEngine(() => [...ANSWER.map(text), done]);
    const enclave = await bootWith(engine);
    captureLog();
    breakAuditWriter(enclave);
    const server = await listen(createEnclaveApp(enclave).fetch, "127.0.0.1", 0);
    servers.push(server);
    const { envelope, context } = await seal(enclave);
    const response = await fetch(`${server.url}/sealed`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: envelope as Uint8Array<ArrayBuffer>,
    });
    expect(response.status).toBe(200);
    const events: ResponseEvent[] = [];
    for await (const event of openResponseFrames(context, response.body!)) events.push(event);
    expect(events.at(-1)).toMatchObject({ type: "final" });
    // …and from then on the enclave is down for new work, which its health check says.
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ status: "audit-failed" });
    const next = await seal(enclave);
    const refused = await fetch(`${server.url}/sealed`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: next.envelope as Uint8Array<ArrayBuffer>,
    });
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("AUDIT_FAILED");
    // Not a passing overload: no Retry-After (clients and the proxy's callers would retry in vain).
    expect(refused.headers.get("retry-after")).toBeNull();
    // No new session is offered either: a pool host sends it to another member (host/app.ts).
    const document = await fetch(`${server.url}/attestation`);
    expect(document.status).toBe(503);
    expect(((await document.json()) as { error: { code: string } }).error.code).toBe("AUDIT_FAILED");
    // But the host's collector still reads it on its audit route, to check the records it collects.
    const forAudit = await fetch(`${server.url}/audit/document`);
    expect({ status: forAudit.status, body: await forAudit.json() }).toEqual({
      status: 200,
      body: { document: enclave.document },
    });
  });

  it("refuses every later sealed request with AUDIT_FAILED (503) before the engine is asked", async () => {
    const engine = new ScriptedEngine(() => [...ANSWER.map(text), done]);
    const enclave = await bootWith(engine);
    captureLog();
    const record = breakAuditWriter(enclave);
    await readAll(enclave);
    expect(enclave.auditFailed).toBe(true);
    const pulls = engine.pulls;
    for (let i = 0; i < 3; i++) {
      const { envelope } = await seal(enclave);
      const error = await rejectionOf(
        enclave.handleSealed(envelope, "host-tenant", new AbortController().signal),
        EnclaveError,
      );
      expect(error).toMatchObject({ code: "AUDIT_FAILED", status: 503 });
      expect((error as Error).message).toContain("restart");
    }
    // Even once the writer works again: only a restart (a new boot, a new chain) serves again.
    record.mockRestore();
    const { envelope } = await seal(enclave);
    await expect(enclave.handleSealed(envelope, null, new AbortController().signal)).rejects.toMatchObject({
      code: "AUDIT_FAILED",
    });
    expect(engine.pulls).toBe(pulls);
  });

  it("logs the failure once, by its code, with no prompt, answer, opening or key", async () => {
    // Two answers under way when the writer breaks: both fail to record, one log line.
    const { log, first, second } = await twoUnderWay();
    await decode(first);
    await decode(second);
    const lines = log.filter((l) => l.includes("audit"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("AUDIT_RECORD_INVALID");
    const all = log.join("");
    for (const secret of [PROMPT, ...ANSWER.map((a) => a.trim())]) expect(all).not.toContain(secret);
    expect(all).not.toMatch(/[0-9a-f]{32}/);
  });

  it("an answer still under way when auditing fails sends no more text: it ends in AUDIT_FAILED, no final frame", async () => {
    const { record, first, second } = await twoUnderWay();
    expect((await decode(first)).at(-1)).toMatchObject({ type: "final" });
    const events = await decode(second);
    // Opened before the failure, read after it: none of its text, no receipt, its record tried once.
    expect(events.filter((e) => e.type === "data")).toEqual([]);
    expect(events.at(-1)).toMatchObject({ type: "error", code: "AUDIT_FAILED", auditOpening: null });
    expect(events.some((e) => e.type === "final")).toBe(false);
    expect(record).toHaveBeenCalledTimes(2);
  });

  it("an answer cut short mid-stream by another request's failure sends no text after it", async () => {
    // The answer opened first has its later text only after a pause, by which time the other
    // answer's record has failed: the text before the failure went out, none after it.
    let n = 0;
    const enclave = await bootWith(
      new ScriptedEngine(() =>
        n++ === 0 ? [text("before "), { pauseMs: 200 }, text("after the failure"), done] : [text("A"), done],
      ),
    );
    captureLog();
    breakAuditWriter(enclave);
    const paused = await open(enclave);
    const iterator = paused.answer.frames[Symbol.asyncIterator]();
    const firstFrame = await iterator.next();
    await decode(await open(enclave)); // its final frame goes out, then its record fails
    expect(enclave.auditFailed).toBe(true);
    const rest: Uint8Array[] = [];
    for (let r = await iterator.next(); r.done !== true; r = await iterator.next()) rest.push(r.value);
    const events: ResponseEvent[] = [];
    for await (const event of openResponseFrames(
      paused.context,
      (async function* () {
        yield firstFrame.value as Uint8Array;
        yield* rest;
      })(),
    ))
      events.push(event);
    expect(events.flatMap((e) => (e.type === "data" ? [e.text] : [])).join("")).toBe("before ");
    expect(events.at(-1)).toMatchObject({ type: "error", code: "AUDIT_FAILED" });
  });

  it("an answer under way whose record can still be written ends in AUDIT_FAILED too, and its record says so", async () => {
    const { enclave, record, first, second } = await twoUnderWay();
    await decode(first);
    record.mockRestore(); // the writer works again (a passing fault): the enclave still answers no more
    const events = await decode(second);
    expect(events.filter((e) => e.type === "data")).toEqual([]);
    expect(events.at(-1)).toMatchObject({ type: "error", code: "AUDIT_FAILED" });
    const lines = enclave.collectAudit(0).lines;
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string).record).toMatchObject({ seq: 0, error: "AUDIT_FAILED" });
  });
});

describe("enclave: an audit write that fails before the end of the answer", () => {
  it("a refusal: one write tried, then an AUDIT_FAILED error frame (not the refusal's own)", async () => {
    const engine = new ScriptedEngine(() => [done]);
    const enclave = await bootWith(engine);
    captureLog();
    const record = breakAuditWriter(enclave);
    const events = await readAll(enclave, { prompt: "store this -----BEGIN RSA PRIVATE KEY----- please" });
    expect(events).toEqual([expect.objectContaining({ type: "error", code: "AUDIT_FAILED", auditOpening: null })]);
    expect(record).toHaveBeenCalledTimes(1);
    expect(enclave.auditFailed).toBe(true);
  });

  it("an engine failure mid-answer: one write tried, then an AUDIT_FAILED error frame", async () => {
    const engine = new ScriptedEngine(() => [text("partial "), new Error("native failure")]);
    const enclave = await bootWith(engine);
    captureLog();
    const record = breakAuditWriter(enclave);
    const events = await readAll(enclave);
    expect(events.at(-1)).toMatchObject({ type: "error", code: "AUDIT_FAILED", auditOpening: null });
    expect(record).toHaveBeenCalledTimes(1);
  });

  it("a reader that goes away: abandon resolves (no unhandled rejection), one write tried", async () => {
    const engine = new ScriptedEngine(() => [text("a"), { pauseMs: 50 }, text("b"), done]);
    const enclave = await bootWith(engine);
    captureLog();
    const record = breakAuditWriter(enclave);
    const { envelope } = await seal(enclave);
    const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
    const iterator = answer.frames[Symbol.asyncIterator]();
    await iterator.next();
    await expect(answer.abandon()).resolves.toBeUndefined();
    expect(record).toHaveBeenCalledTimes(1);
    expect(enclave.auditFailed).toBe(true);
  });

  it("a reader that goes away before the first frame: abandon resolves, one write tried", async () => {
    const engine = new ScriptedEngine(() => [text("a"), done]);
    const enclave = await bootWith(engine);
    captureLog();
    const record = breakAuditWriter(enclave);
    const { envelope } = await seal(enclave);
    const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
    await expect(answer.abandon()).resolves.toBeUndefined();
    expect(record).toHaveBeenCalledTimes(1);
    expect(enclave.auditFailed).toBe(true);
  });
});
