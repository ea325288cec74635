/**
 * The enclave's drain at shutdown (enclave/run.ts drainEnclave) when an answer is still under way as
 * the grace ends: the answer is cut, and its audit record (written as the cut answer ends) is either
 * collected by the host or counted in what the enclave says it leaves uncollected, never lost
 * without a word. The answer is held by a scripted engine until the request's signal aborts, as the
 * real engine ends a generation its reader left (enclave/engine.ts, stopReason "abort").
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { type ListeningServer, listenBeforeServing, waitUntil } from "../../enclave/http.ts";
import { closeEnclaveOnSignal, drainEnclave } from "../../enclave/run.ts";
import { bootingAnswer, createEnclaveApp, type EnclaveServerState } from "../../enclave/server.ts";
import type { Enclave } from "../../enclave/service.ts";
import { openResponseFrames, sealRequest } from "../../sealed/index.ts";
import { bootWith, openCompletion, ScriptedEngine, usage } from "./helpers.ts";

const servers: ListeningServer[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const s of servers.splice(0)) await s.close();
});

const text = (t: string) => ({ type: "text", text: t }) as const;

/**
 * An enclave whose answers send "a", then wait until their request is aborted (the reader is gone),
 * then end; or, `until` given, until it resolves, whatever the abort (an engine that ignores it).
 */
async function enclaveHoldingAnswers(until?: Promise<unknown>): Promise<{
  enclave: Enclave;
  state: EnclaveServerState;
  server: ListeningServer;
}> {
  const engine: ScriptedEngine = new ScriptedEngine(() => {
    const signal = engine.requests.at(-1)?.signal as AbortSignal;
    const aborted = new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    return [
      text("a"),
      { until: until ?? aborted },
      { type: "done", stopReason: "abort", usage: { ...usage, completionTokens: 1 } },
    ];
  });
  const enclave = await bootWith(engine);
  const state: EnclaveServerState = { draining: false, active: 0 };
  const server = await listenBeforeServing(bootingAnswer, "127.0.0.1", 0);
  servers.push(server);
  server.serve(createEnclaveApp(enclave, state).fetch);
  return { enclave, state, server };
}

/** Starts an answer and reads its first frame: it is then under way, held by the engine. */
async function answerUnderWay(enclave: Enclave, url: string): Promise<void> {
  const { envelope, context } = await sealRequest({
    enclavePublicKey: enclave.publicKeys.sealing,
    kind: "complete",
    body: { prompt: "hi" },
  });
  const response = await fetch(`${url}/sealed`, {
    method: "POST",
    headers: { "content-type": "application/octet-stream" },
    body: envelope as Uint8Array<ArrayBuffer>,
  });
  const frames = openResponseFrames(context, response.body!)[Symbol.asyncIterator]();
  expect((await frames.next()).value).toMatchObject({ type: "data", text: "a" });
  // The rest is cut: the reader sees the stream end early (STREAM_TRUNCATED at a client).
  void (async () => {
    try {
      for (;;) if ((await frames.next()).done === true) return;
    } catch {}
  })();
}

/** What the enclave writes on stderr meanwhile. */
function stderrLines(): string[] {
  const lines: string[] = [];
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  return lines;
}

/** A host's collector: asks for the enclave's records every 10 ms, acknowledging what it took, until stopped. */
function collecting(url: string, boot: string): { lines: string[]; stop: () => Promise<void> } {
  const lines: string[] = [];
  let stopped = false;
  const loop = (async () => {
    let from = 0;
    while (!stopped) {
      try {
        const batch = (await (await fetch(`${url}/audit?from=${from}&boot=${boot}`)).json()) as {
          lines: string[];
          next: number;
        };
        lines.push(...batch.lines);
        from = batch.next;
      } catch {
        // The cut closed the connection under this request: asked again on a new one.
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    lines,
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/** Stops the enclave as `cloister enclave` does (SIGTERM, `times` of them at once), with a grace of `graceMs`, until it has stopped. */
async function stopped(
  { enclave, state, server }: Awaited<ReturnType<typeof enclaveHoldingAnswers>>,
  graceMs: number,
  times = 1,
): Promise<void> {
  const closed = closeEnclaveOnSignal(server, enclave, state, graceMs);
  for (let i = 0; i < times; i++) process.emit("SIGTERM", "SIGTERM");
  await closed;
}

describe("enclave drain: an answer under way when the grace ends", () => {
  it("cuts it, and counts its audit record in what it says the host has not collected (no host collecting)", async () => {
    const serving = await enclaveHoldingAnswers();
    await answerUnderWay(serving.enclave, serving.server.url);
    expect(serving.state.active).toBe(1);
    const lines = stderrLines();
    await stopped(serving, 50);
    expect(lines).toEqual(["cloister enclave: shutting down with 1 audit record(s) the host has not collected\n"]);
    // The record is the cut answer's own, written before the count.
    expect(serving.state.active).toBe(0);
    expect(serving.enclave.auditPending).toBe(1);
  });

  it("lets the host collect the record the cut answer wrote, still serving /audit for a moment; then says nothing", async () => {
    const serving = await enclaveHoldingAnswers();
    const { enclave, state, server } = serving;
    await answerUnderWay(enclave, server.url);
    const host = collecting(server.url, enclave.documentDigest);
    const lines = stderrLines();
    // The drain alone, so that the server is still there to ask after it.
    await drainEnclave(server, enclave, state, performance.now() + 50);
    // Everything but the audit routes is still refused meanwhile (draining).
    expect((await fetch(`${server.url}/attestation`)).status).toBe(503);
    await host.stop();
    expect(host.lines).toHaveLength(1);
    expect(enclave.auditPending).toBe(0);
    await stopped(serving, 50);
    expect(lines).toEqual([]);
  });

  it("counts the record of an answer a second signal cut, too", async () => {
    const serving = await enclaveHoldingAnswers();
    await answerUnderWay(serving.enclave, serving.server.url);
    const lines = stderrLines();
    await stopped(serving, 60_000, 2);
    expect(lines).toEqual(["cloister enclave: shutting down with 1 audit record(s) the host has not collected\n"]);
  });
});

describe("enclave drain: the count of what the host has not collected is exact", () => {
  it("an answer that has written its record and waits for its engine to stop is counted once", async () => {
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    const engine = new ScriptedEngine(() => [
      text("a"),
      { until: released },
      { type: "done", stopReason: "abort", usage },
    ]);
    const enclave = await bootWith(engine);
    const answer = await openCompletion(enclave, "hi");
    await answer.frames[Symbol.asyncIterator]().next();
    // The reader gone: the record is written at once, then the engine (holding its next event) is awaited.
    const abandoning = answer.abandon();
    await waitUntil(() => enclave.auditPending === 1, performance.now() + 5000);
    expect(enclave.auditPending).toBe(1);
    // The server counts the answer active until it is abandoned (enclave/server.ts writeFrames).
    const state: EnclaveServerState = { draining: false, active: 1 };
    const server = { close: async () => {}, cutConnections: () => {} } as unknown as ListeningServer;
    const lines = stderrLines();
    const closed = closeEnclaveOnSignal(server, enclave, state, 0);
    for (let i = 0; i < 2; i++) process.emit("SIGTERM", "SIGTERM");
    await closed;
    expect(lines).toEqual(["cloister enclave: shutting down with 1 audit record(s) the host has not collected\n"]);
    release();
    await abandoning;
  });
});

describe("enclave drain: an answer whose engine ignores the abort", () => {
  it("writes its record at the cut, and the host collects it", async () => {
    let release = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    const serving = await enclaveHoldingAnswers(released);
    const { enclave, state, server } = serving;
    await answerUnderWay(enclave, server.url);
    const host = collecting(server.url, enclave.documentDigest);
    await drainEnclave(server, enclave, state, performance.now() + 50);
    await host.stop();
    expect(host.lines).toHaveLength(1);
    expect(enclave.auditPending).toBe(0);
    release();
    await waitUntil(() => state.active === 0, performance.now() + 5000);
    expect(state.active).toBe(0);
  });
});
