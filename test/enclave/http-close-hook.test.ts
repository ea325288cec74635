/**
 * RunningServer.close's `beforeCut` (enclave/http.ts): called just before the server cuts what is
 * still open at the end of its grace, while the answers it cuts are still under way, and not at all
 * when everything ended within the grace; closeOnSignal passes it on, to the cut at the grace's end
 * and to a second stop's cut at once. The proxy logs its streams cut there as `cut_at_stop`.
 */
import { EventEmitter } from "node:events";
import { Hono } from "hono";
import { afterEach, describe, expect, it } from "vitest";
import { onOutputClosed, stopWhenOutputCloses } from "../../client/cli/output.ts";
import { closeOnSignal, listen, type RunningServer } from "../../enclave/http.ts";
import { holdTimeouts } from "../helpers/held-timers.ts";

/** A server whose /stream answer sends one chunk and then nothing (until cut); `cancelled` once cut. */
async function streaming(): Promise<{ server: RunningServer; cancelled: () => boolean }> {
  let cancelled = false;
  const app = new Hono();
  app.get("/stream", (c) =>
    c.newResponse(
      new ReadableStream<Uint8Array>({
        start(out) {
          out.enqueue(new TextEncoder().encode("first\n"));
        },
        cancel() {
          cancelled = true;
        },
      }),
      200,
    ),
  );
  app.get("/short", (c) => c.text("ok"));
  return { server: await listen(app.fetch, "127.0.0.1", 0), cancelled: () => cancelled };
}

/** Starts a GET of /stream and resolves once its first chunk has come: the answer is under way. */
async function underWay(server: RunningServer): Promise<ReadableStreamDefaultReader<Uint8Array>> {
  const response = await fetch(`${server.url}/stream`);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  await reader.read();
  return reader;
}

/** Reads `reader` to its end or its error (the cut). */
const drained = async (reader: ReadableStreamDefaultReader<Uint8Array>) => {
  try {
    while (!(await reader.read()).done) {}
  } catch {}
};

// Should a test fail midway, the shutdown closeOnSignal registered is not left for the next.
afterEach(() => onOutputClosed(() => {})());

describe("RunningServer.close's beforeCut", () => {
  it("is called at the grace's end, before the answer still under way is cut", async () => {
    const { server, cancelled } = await streaming();
    const reader = await underWay(server);
    const calls: boolean[] = [];
    // The grace's timer is held: nothing calls beforeCut before it fires, however long that is.
    const grace = holdTimeouts(150);
    let closing: Promise<void>;
    try {
      closing = server.close(150, () => calls.push(cancelled()));
      // Ten sweeps of idle connections (every 25 ms) go by: the answer under way is not idle.
      await new Promise((resolve) => setTimeout(resolve, 250));
      expect({ calls, grace: grace.held.map((t) => t.cleared) }).toEqual({ calls: [], grace: [false] });
      expect(grace.held[0]?.fire()).toBe(true);
    } finally {
      grace.restore();
    }
    await closing;
    // Once, at the grace's end, with the answer not cut yet; then it was.
    expect(calls).toEqual([false]);
    await drained(reader);
    await expect.poll(cancelled, { timeout: 2_000 }).toBe(true);
  });

  it("is not called when every connection closed within the grace", async () => {
    const { server } = await streaming();
    expect(await (await fetch(`${server.url}/short`)).text()).toBe("ok");
    const calls: number[] = [];
    await server.close(5_000, () => calls.push(1));
    expect(calls).toEqual([]);
  });

  it("is called at once with no grace (close(0))", async () => {
    const { server, cancelled } = await streaming();
    const reader = await underWay(server);
    const calls: boolean[] = [];
    await server.close(0, () => calls.push(cancelled()));
    expect(calls).toEqual([false]);
    await drained(reader);
  });
});

describe("closeOnSignal's stopping and beforeCut", () => {
  /** A stop as closeOnSignal takes one without a signal: output closed (an EPIPE on a stream it watches). */
  const closeOutput = () => {
    const stream = new EventEmitter();
    stopWhenOutputCloses([stream as NodeJS.WriteStream]);
    stream.emit("error", Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
  };

  it("tells the first stop's reason, and a second stop cuts at once through beforeCut", async () => {
    const { server, cancelled } = await streaming();
    const reader = await underWay(server);
    const reasons: string[] = [];
    const cuts: boolean[] = [];
    const closed = closeOnSignal(server, {
      graceMs: 60_000,
      stopping: (reason) => reasons.push(reason),
      beforeCut: () => cuts.push(cancelled()),
    });
    closeOutput();
    expect(reasons).toEqual(["output closed"]);
    // The grace is a minute: the answer goes on.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect({ cuts, cancelled: cancelled() }).toEqual({ cuts: [], cancelled: false });
    closeOutput();
    await closed;
    expect(reasons).toEqual(["output closed"]);
    expect(cuts[0]).toBe(false);
    await drained(reader);
    await expect.poll(cancelled, { timeout: 2_000 }).toBe(true);
  });
});
