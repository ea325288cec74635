/**
 * Frame coalescing and pacing in the enclave's answer stream, with a scripted engine: text chunks
 * that are already waiting when the consumer asks for a frame go out together in one data frame;
 * after the first frame, data frames are at least the frame interval apart; the first chunk and
 * the end are never held back; the enclave decodes a bounded number of chunks ahead of a consumer
 * that does not read; failures after text still end in an error frame and an audit record; no
 * frame ends in half a surrogate pair, so the receipt hashes exactly the text the frames carry.
 */
import { describe, expect, it, vi } from "vitest";
import type { GenerationEvent } from "../../enclave/engine.ts";
import { auditCommitment } from "../../enclave/pipeline/audit.ts";
import type { Enclave } from "../../enclave/service.ts";
import { openResponseFrames, type ResponseEvent, sealRequest, textHash, verifyReceipt } from "../../sealed/index.ts";
import { watchTimeouts } from "../helpers/held-timers.ts";
import { bootWith, openCompletion, type Pause, ScriptedEngine, usage } from "./helpers.ts";

/** Reads every frame as soon as it is offered, with the time each one came. */
async function readAll(iterator: AsyncIterator<Uint8Array>) {
  const frames: Uint8Array[] = [];
  const at: number[] = [];
  for (;;) {
    const { done: ended, value } = await iterator.next();
    if (ended === true) return { frames, at };
    frames.push(value);
    at.push(performance.now());
  }
}

async function open(enclave: Enclave) {
  const { envelope, context } = await sealRequest({
    enclavePublicKey: enclave.publicKeys.sealing,
    kind: "complete",
    body: { prompt: "hello" },
  });
  const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
  return { context, iterator: answer.frames[Symbol.asyncIterator]() };
}

const texts = (n: number, prefix = "t"): GenerationEvent[] =>
  Array.from({ length: n }, (_, i) => ({ type: "text", text: `${prefix}${i} ` }));
const done: GenerationEvent = { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: 6 } };
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 20));

async function decode(context: Awaited<ReturnType<typeof open>>["context"], frames: Uint8Array[]) {
  async function* replay() {
    yield* frames;
  }
  const events: ResponseEvent[] = [];
  for await (const event of openResponseFrames(context, replay())) events.push(event);
  return events;
}

describe("enclave answer stream: frame coalescing", () => {
  it("sends the first chunk alone and merges chunks that waited, in order, with nothing lost", async () => {
    const engine = new ScriptedEngine(() => [...texts(6), done]);
    const enclave = await bootWith(engine);
    const { context, iterator } = await open(enclave);
    const frames: Uint8Array[] = [];
    const first = await iterator.next();
    frames.push(first.value as Uint8Array);
    await settle(); // every remaining chunk is decoded while this consumer is not reading
    for (;;) {
      const { done: ended, value } = await iterator.next();
      if (ended === true) break;
      frames.push(value);
    }
    const events = await decode(context, frames);
    const data = events.flatMap((e) => (e.type === "data" ? [e.text] : []));
    expect(data).toEqual(["t0 ", "t1 t2 t3 t4 t5 "]);
    expect(events.at(-1)).toMatchObject({ type: "final", finishReason: "stop", frameCount: 3 });
    const audit = enclave.collectAudit(0);
    expect(audit.lines).toHaveLength(1);
    expect(JSON.parse(audit.lines[0] as string).record).toMatchObject({ decision: "allow", error: null });
  });

  it("decodes at most 256 chunks ahead of a consumer that stops reading", async () => {
    const engine = new ScriptedEngine(() => [...texts(400), done]);
    const enclave = await bootWith(engine);
    const { context, iterator } = await open(enclave);
    const first = await iterator.next();
    await settle();
    // The first chunk was taken; 256 more wait; the engine has been asked for exactly those.
    expect(engine.pulls).toBe(257);
    const second = await iterator.next();
    await iterator.return?.(undefined);
    const events = await decode(context, [first.value as Uint8Array, second.value as Uint8Array]).catch(
      (error: unknown) => error,
    );
    // The stream was cut by the consumer: the client sees a truncation, and the text it got is whole.
    expect(events).toMatchObject({ code: "STREAM_TRUNCATED" });
    expect(engine.pulls).toBeLessThanOrEqual(2 * 257);
    const record = JSON.parse(enclave.collectAudit(0).lines.at(-1) as string).record;
    expect(record).toMatchObject({ error: "CLIENT_ABORTED" });
  });

  it("delivers the text before an engine failure, then an error frame, and audits the failure", async () => {
    const engine = new ScriptedEngine(() => [...texts(3), new Error("native failure")]);
    const enclave = await bootWith(engine);
    const { context, iterator } = await open(enclave);
    const frames: Uint8Array[] = [];
    for (;;) {
      const { done: ended, value } = await iterator.next();
      if (ended === true) break;
      frames.push(value);
    }
    const events: ResponseEvent[] = [];
    const error = await (async () => {
      async function* replay() {
        yield* frames;
      }
      for await (const event of openResponseFrames(context, replay())) events.push(event);
    })().catch((e: unknown) => e);
    expect(events.flatMap((e) => (e.type === "data" ? [e.text] : [])).join("")).toBe("t0 t1 t2 ");
    expect(events.at(-1) ?? error).toMatchObject({ code: "GENERATION_FAILED" });
    const record = JSON.parse(enclave.collectAudit(0).lines.at(-1) as string).record;
    expect(record).toMatchObject({ decision: "allow", error: "GENERATION_FAILED" });
    // The error frame opens the failed request's record, as a final frame would.
    const opening = (events.at(-1) as { auditOpening?: string | null }).auditOpening ?? "";
    expect(opening).toMatch(/^[0-9a-f]{64}$/);
    expect(auditCommitment(Buffer.from(opening, "hex"), "prompt", "hello")).toBe(record.promptHmac);
  });

  it("paces data frames at least the frame interval apart and loses no text", async () => {
    // 30 chunks, one every 4 ms (120 ms of decoding), read eagerly, frames at least 40 ms apart. The
    // clock is a fake one (performance.now, setTimeout) that only this test moves: the service's
    // pacing reads it (lastFrameAt, the wait it sets) and the engine's pauses run on it, so a frame's
    // time below is the one the service gave it, not one a GC pause or a late timer could stretch or
    // squeeze. The clock moves only between tasks (each fired timer is followed by a real one), and a
    // frame reaches readAll in microtasks after the service stamped it, so both read the same time.
    const engine = new ScriptedEngine(() => [...texts(30).flatMap((t) => [t, { pauseMs: 4 }]), done]);
    const enclave = await bootWith(engine, 40);
    // Opened on the real clock: its engine has handed out the first chunk and waits to be asked for
    // the next (the first pause) until the stream is read.
    const { context, iterator } = await open(enclave);
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    /** Each timer the stream sets for the frame interval's wait (the engine's pauses are 4 ms): its delay. */
    const waits: number[] = [];
    // Watched after the fake clock is on: the timers it sets are the fake clock's.
    watchTimeouts(
      (ms) => {
        if (ms !== 4) waits.push(ms ?? 0);
        return undefined; // recorded only
      },
      () => {},
    );
    let frames: Uint8Array[];
    /** Each frame's time on the fake clock, from the stream's start. */
    let at: number[];
    try {
      const start = performance.now();
      let finished = false;
      const reading = readAll(iterator).finally(() => (finished = true));
      // One fake millisecond at a time, for at most 10 fake seconds (the answer needs about 160 ms).
      for (let step = 0; step < 10_000 && !finished; step++) await vi.advanceTimersByTimeAsync(1);
      const result = await reading;
      frames = result.frames;
      at = result.at.map((t) => t - start);
    } finally {
      vi.restoreAllMocks(); // first: the spy's original is the fake setTimeout
      vi.useRealTimers();
    }
    const events = await decode(context, frames);
    const data = events.flatMap((e) => (e.type === "data" ? [e.text] : []));
    expect(data.join("")).toBe(
      texts(30)
        .map((e) => (e.type === "text" ? e.text : ""))
        .join(""),
    );
    expect(data[0]).toBe("t0 ");
    expect(at[0]).toBe(0);
    // 120 ms at one data frame per 40 ms: a handful of frames, not one per chunk. The last data frame
    // may follow its predecessor closely: the end of the answer flushes what is left without waiting;
    // every earlier gap is a paced one, at least the interval on the service's clock.
    const paced = at.slice(0, data.length - 1);
    expect(data.length).toBeGreaterThanOrEqual(3);
    expect(data.length).toBeLessThan(30);
    const gaps = paced.slice(1).map((t, i) => t - (paced[i] as number));
    expect(gaps.length).toBeGreaterThanOrEqual(2);
    // At least the interval; and no more, as text was waiting all along (a chunk every 4 ms).
    for (const gap of gaps) expect(gap).toBe(40);
    // Each paced frame waited on a timer the stream set for what was left of the interval (0..40 ms).
    expect(waits.length).toBeGreaterThanOrEqual(gaps.length);
    for (const ms of waits) {
      expect(ms).toBeGreaterThan(0);
      expect(ms).toBeLessThanOrEqual(40);
    }
    expect(events.at(-1)).toMatchObject({ type: "final", frameCount: data.length + 1 });
  });

  it("never holds back the end of an answer for the frame interval: the end cuts the wait short", async () => {
    let releaseB = (): void => {};
    let releaseEnd = (): void => {};
    const bCame = new Promise((resolve) => (releaseB = () => resolve(undefined)));
    const endCame = new Promise((resolve) => (releaseEnd = () => resolve(undefined)));
    const engine = new ScriptedEngine(() => [
      { type: "text", text: "a" },
      { until: bCame },
      { type: "text", text: "b" },
      { until: endCame },
      done,
    ]);
    const enclave = await bootWith(engine, 1000);
    // Each timer the stream sets, and whether it fired: the frame interval's wait is one of 1000 ms
    // at most, set once "b" waits behind "a".
    const timers: { ms: number; fired: boolean }[] = [];
    let onIntervalWait = (): void => {};
    const intervalWaitSet = new Promise<void>((resolve) => (onIntervalWait = resolve));
    const spy = watchTimeouts(
      (ms) => {
        const timer = { ms: ms ?? 0, fired: false };
        timers.push(timer);
        if (timer.ms > 0 && timer.ms <= 1000) onIntervalWait();
        return timer;
      },
      (timer) => {
        timer.fired = true;
      },
    );
    try {
      const { context, iterator } = await open(enclave);
      const frames: Uint8Array[] = [];
      const first = await iterator.next();
      frames.push(first.value as Uint8Array);
      const rest = readAll(iterator);
      releaseB();
      // "b" now waits out the interval after "a"; then the answer ends.
      await intervalWaitSet;
      releaseEnd();
      frames.push(...(await rest).frames);
      // The end went out when it came: the interval's wait was cut short, its timer never fired.
      expect(timers.filter((t) => t.ms > 0 && t.ms <= 1000).map((t) => t.fired)).toEqual([false]);
      const events = await decode(context, frames);
      expect(events.map((e) => (e.type === "data" ? e.text : e.type))).toEqual(["a", "b", "final"]);
    } finally {
      spy.restore();
    }
  });

  it("refuses a frame interval outside 0..1000 ms at boot", async () => {
    await expect(bootWith(new ScriptedEngine(() => [done]), -1)).rejects.toThrow(/frameIntervalMs/);
    await expect(bootWith(new ScriptedEngine(() => [done]), 5000)).rejects.toThrow(/frameIntervalMs/);
  });

  it("abandon() before any frame was read still frees the generation and audits CLIENT_ABORTED, once", async () => {
    const engine = new ScriptedEngine(() => [...texts(3), done]);
    const enclave = await bootWith(engine);
    const answer = await openCompletion(enclave, "hello");
    await answer.abandon();
    await answer.abandon();
    expect(engine.finished).toBe(1);
    const lines = enclave.collectAudit(0).lines;
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string).record).toMatchObject({ error: "CLIENT_ABORTED" });
    // The frames are gone with it: nothing is produced after abandoning.
    const rest: Uint8Array[] = [];
    for await (const frame of answer.frames) rest.push(frame);
    expect(rest).toHaveLength(0);
  });

  it("abandon() after the whole answer was read changes nothing (one record, not aborted)", async () => {
    const engine = new ScriptedEngine(() => [...texts(2), done]);
    const enclave = await bootWith(engine);
    const { envelope, context } = await sealRequest({
      enclavePublicKey: enclave.publicKeys.sealing,
      kind: "complete",
      body: { prompt: "hello" },
    });
    const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
    const { frames } = await readAll(answer.frames[Symbol.asyncIterator]());
    expect((await decode(context, frames)).at(-1)).toMatchObject({ type: "final" });
    await answer.abandon();
    const lines = enclave.collectAudit(0).lines;
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string).record).toMatchObject({ error: null });
    expect(engine.finished).toBe(1);
  });

  // Each data frame is UTF-8-encoded on its own: a surrogate pair cut between two frames would
  // reach the client as two U+FFFD while the enclave's joined answer (and its receipt) held the pair.
  const surrogates: { name: string; script: (GenerationEvent | Pause)[]; frames: string[] }[] = [
    {
      name: "a surrogate pair split between two chunks travels whole in the later frame",
      script: [{ type: "text", text: "a\uD83D" }, { pauseMs: 50 }, { type: "text", text: "\uDE00b" }],
      frames: ["a", "\uD83D\uDE00b"],
    },
    {
      name: "a chunk of only a high surrogate waits for the next",
      script: [
        { type: "text", text: "a" },
        { pauseMs: 50 },
        { type: "text", text: "\uD83D" },
        { pauseMs: 50 },
        { type: "text", text: "\uDE00" },
      ],
      frames: ["a", "\uD83D\uDE00"],
    },
    {
      name: "a lone high surrogate at the end goes out last, as U+FFFD",
      script: [{ type: "text", text: "x" }, { pauseMs: 50 }, { type: "text", text: "y\uD83D" }],
      frames: ["x", "y", "\uFFFD"],
    },
    {
      name: "a high surrogate followed by no low one becomes U+FFFD in the next frame",
      script: [{ type: "text", text: "a\uD83D" }, { pauseMs: 50 }, { type: "text", text: "b" }],
      frames: ["a", "\uFFFDb"],
    },
    {
      name: "a lone low surrogate at a chunk's start is U+FFFD in frame and hash",
      script: [{ type: "text", text: "a" }, { pauseMs: 50 }, { type: "text", text: "\uDE00b" }],
      frames: ["a", "\uFFFDb"],
    },
  ];
  for (const { name, script, frames } of surrogates) {
    it(`hashes in the receipt exactly the text the frames carry: ${name}`, async () => {
      const enclave = await bootWith(new ScriptedEngine(() => [...script, done]));
      const { context, iterator } = await open(enclave);
      const events = await decode(context, (await readAll(iterator)).frames);
      const data = events.flatMap((e) => (e.type === "data" ? [e.text] : []));
      expect(data).toEqual(frames);
      const final = events.at(-1);
      if (final?.type !== "final") throw new Error(`expected a final event, found ${final?.type}`);
      const receipt = await verifyReceipt(final.receipt, enclave.publicKeys.signing);
      expect(receipt.answerHash).toBe(textHash(data.join("")));
    });
  }
});
