/**
 * The limit on a new shape's rendering (engine/template-shapes.ts) when this thread's event loop
 * was held past it (a long task: another request's tokenizing, a GC) while the worker answered in
 * time: node runs an expired timer before it delivers a message that waits on a port, so the limit
 * would fire first and the shape be refused for good though it rendered. The limit takes the
 * worker's answer waiting behind that task first. The worker here is a stand-in whose answer the
 * test puts in its port (ShapeRenderer.answered): the order is the test's, not the machine's.
 * Also a worker that cannot start, or that ended for a cause not the shape's own render: the
 * engine's want (ENGINE_BUSY, or a new worker at once), not a refusal of the shape.
 */
import { JinjaTemplateChatWrapper, type LlamaModel } from "node-llama-cpp";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ShapeRendering } from "../../enclave/engine/chat-wrapper.ts";
import { SHAPE_LIMIT_MS, SHAPES_WAITING, TemplateShapes } from "../../enclave/engine/template-shapes.ts";
import { holdTimeouts } from "../helpers/held-timers.ts";

/** The stand-in worker: the shapes it was sent, and whether its answer waits in its port. */
const worker = vi.hoisted(() => ({
  sent: [] as string[],
  answer: null as ((rendering: ShapeRendering) => void) | null,
  waiting: false,
  /** Starts so far; while `startFails`, each start fails (no thread could be had). */
  starts: 0,
  startFails: false,
  /** The next worker started has ended already (for a cause of its own): its render is not sent. */
  endedAtStart: false,
  /** Its answer reaches the port only after the limit's look, when its end takes it (end()). */
  answersAtEnd: false,
}));

vi.mock("../../enclave/engine/chat-wrapper.ts", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../../enclave/engine/chat-wrapper.ts")>()),
  startShapeRenderer: async () => {
    worker.starts++;
    if (worker.startFails) throw new Error("no worker thread could be started");
    const ended = worker.endedAtStart;
    worker.endedAtStart = false;
    return standIn(ended);
  },
}));

function standIn(ended = false) {
  return {
    render: (shape: string) =>
      new Promise<ShapeRendering>((resolve) => {
        if (ended) {
          resolve({ rendered: false, why: "the worker has ended", sent: false });
          return;
        }
        worker.sent.push(shape);
        worker.answer = resolve;
      }),
    // Its answer, sent in time, waiting in the port behind the long task: taken now.
    answered: () => {
      if (worker.waiting) worker.answer?.({ rendered: true });
      return worker.waiting;
    },
    // As the real one: what waits in the port is taken first (a render's answer), then it ends.
    end: () => {
      if (worker.answersAtEnd) worker.answer?.({ rendered: true });
    },
  };
}

afterEach(() => {
  vi.restoreAllMocks();
  worker.sent = [];
  worker.answer = null;
  worker.waiting = false;
  worker.starts = 0;
  worker.startFails = false;
  worker.endedAtStart = false;
  worker.answersAtEnd = false;
});

/** A Jinja wrapper as the engine holds one (its template is not Cloister's own). */
function shapesOf(): TemplateShapes {
  const wrapper = Object.assign(Object.create(JinjaTemplateChatWrapper.prototype), {
    template: "{{ messages }}",
    joinAdjacentMessagesOfTheSameType: true,
  });
  const shapes = TemplateShapes.for(wrapper, {} as LlamaModel);
  if (shapes === null) throw new Error("expected the Jinja wrapper's check");
  return shapes;
}

describe("a new shape's limit while this thread's event loop was held", () => {
  it("takes the worker's answer that waits behind the long task: the shape is vetted, not refused", async () => {
    const shapes = shapesOf();
    const limits = holdTimeouts(SHAPE_LIMIT_MS);
    const shape = shapes.shapeOf(["system", "user"]);
    const checking = shapes.check(shape);
    await vi.waitFor(() => expect(limits.held).toHaveLength(1), { timeout: 60_000 });
    expect(worker.sent).toEqual([shape]);
    worker.waiting = true;
    expect(limits.held[0]?.fire()).toBe(true);
    await expect(checking).resolves.toBeUndefined();
    // Vetted: answered at once from now on, with no new rendering.
    expect(shapes.check(shape)).toBeNull();
    expect(worker.sent).toEqual([shape]);
    shapes.close();
  });

  it.each([
    { answersAtEnd: false, when: "no answer waits at the limit (the worker is still rendering)" },
    {
      answersAtEnd: true,
      when: "its answer comes only after the limit's look (taken as the worker ends): not within the limit",
    },
  ])("refuses the shape when $when", async ({ answersAtEnd }) => {
    const shapes = shapesOf();
    const limits = holdTimeouts(SHAPE_LIMIT_MS);
    const shape = shapes.shapeOf(["user", "assistant", "user"]);
    const checking = shapes.check(shape);
    await vi.waitFor(() => expect(limits.held).toHaveLength(1), { timeout: 60_000 });
    worker.answersAtEnd = answersAtEnd;
    expect(limits.held[0]?.fire()).toBe(true);
    await expect(checking).rejects.toMatchObject({ code: "CHAT_TEMPLATE_REFUSED" });
    expect(() => shapes.check(shape)).toThrow(expect.objectContaining({ code: "CHAT_TEMPLATE_REFUSED" }));
    shapes.close();
  });
});

describe("a new shape when the worker cannot start", () => {
  it("is refused for now as the engine's want of a worker (ENGINE_BUSY, retry), not as its shape: the next request tries again", async () => {
    worker.startFails = true;
    const shapes = shapesOf();
    const shape = shapes.shapeOf(["user"]);
    const error = await shapes.check(shape)?.catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ENGINE_BUSY" });
    expect((error as Error).message).not.toMatch(/refused/);
    const startsBefore = worker.starts;
    worker.startFails = false;
    // Not kept: tried again (a new start), and vetted.
    const checking = shapes.check(shape);
    await vi.waitFor(() => expect(worker.sent).toEqual([shape]), { timeout: 60_000 });
    worker.answer?.({ rendered: true });
    await expect(checking).resolves.toBeUndefined();
    expect(worker.starts).toBe(startsBefore + 1);
    shapes.close();
  });
});

describe("a new shape whose worker ended while it rendered", () => {
  /** The worker's end as its render's answer: `byRender`, its own render's doing (the heap ran out). */
  const ended = (byRender: boolean): ShapeRendering => ({
    rendered: false,
    why: byRender ? "the worker ran out of memory: its heap is limited to 256 MB" : "the worker ended (exit code 1)",
    workerEnded: true,
    sent: true,
    byRender,
  });

  it("for a cause not its own: the request is ENGINE_BUSY (retry), the shape not kept; tried once more on a new worker, a second end of it is its refusal", async () => {
    const shapes = shapesOf();
    const shape = shapes.shapeOf(["user", "assistant", "user"]);
    const first = shapes.check(shape)?.catch((e: unknown) => e);
    await vi.waitFor(() => expect(worker.sent).toEqual([shape]), { timeout: 60_000 });
    worker.answer?.(ended(false));
    const error = await first;
    expect(error).toMatchObject({ code: "ENGINE_BUSY" });
    expect((error as Error).message).not.toMatch(/refused/);
    const startsBefore = worker.starts;
    // Not kept: the next request renders it again, on a new worker; it ends that one too: its cause.
    const second = shapes.check(shape)?.catch((e: unknown) => e);
    await vi.waitFor(() => expect(worker.sent).toEqual([shape, shape]), { timeout: 60_000 });
    expect(worker.starts).toBe(startsBefore + 1);
    worker.answer?.(ended(false));
    expect(await second).toMatchObject({ code: "CHAT_TEMPLATE_REFUSED" });
    expect(() => shapes.check(shape)).toThrow(expect.objectContaining({ code: "CHAT_TEMPLATE_REFUSED" }));
    expect(worker.sent).toEqual([shape, shape]);
    shapes.close();
  });

  it("two shapes that each end their worker, alternated: each refused at its second end (the marks are per shape)", async () => {
    const shapes = shapesOf();
    const [a, b] = [shapes.shapeOf(turns(8)), shapes.shapeOf(turns(9))];
    const sends: string[] = [];
    for (const shape of [a, b, a, b]) {
      sends.push(shape);
      const outcome = shapes.check(shape)?.catch((e: unknown) => e);
      await vi.waitFor(() => expect(worker.sent).toEqual(sends), { timeout: 60_000 });
      worker.answer?.(ended(false));
      const seen = sends.filter((s) => s === shape).length;
      expect(await outcome).toMatchObject({ code: seen === 1 ? "ENGINE_BUSY" : "CHAT_TEMPLATE_REFUSED" });
    }
    for (const shape of [a, b]) {
      expect(() => shapes.check(shape)).toThrow(expect.objectContaining({ code: "CHAT_TEMPLATE_REFUSED" }));
    }
    shapes.close();
  });

  it("for a cause not its own, then rendered on the next worker: vetted", async () => {
    const shapes = shapesOf();
    const shape = shapes.shapeOf(["system", "user", "assistant", "user"]);
    const first = shapes.check(shape)?.catch((e: unknown) => e);
    await vi.waitFor(() => expect(worker.sent).toEqual([shape]), { timeout: 60_000 });
    worker.answer?.(ended(false));
    expect(await first).toMatchObject({ code: "ENGINE_BUSY" });
    const second = shapes.check(shape);
    await vi.waitFor(() => expect(worker.sent).toEqual([shape, shape]), { timeout: 60_000 });
    worker.answer?.({ rendered: true });
    await expect(second).resolves.toBeUndefined();
    expect(shapes.check(shape)).toBeNull();
    shapes.close();
  });

  it("by its own render (the worker's heap ran out): refused at once, and kept", async () => {
    const shapes = shapesOf();
    const shape = shapes.shapeOf(["user", "assistant"]);
    const checking = shapes.check(shape)?.catch((e: unknown) => e);
    await vi.waitFor(() => expect(worker.sent).toEqual([shape]), { timeout: 60_000 });
    worker.answer?.(ended(true));
    expect(await checking).toMatchObject({ code: "CHAT_TEMPLATE_REFUSED" });
    expect(() => shapes.check(shape)).toThrow(expect.objectContaining({ code: "CHAT_TEMPLATE_REFUSED" }));
    shapes.close();
  });

  it("before it was sent (the worker had ended meanwhile): rendered at once on a new worker, not refused", async () => {
    worker.endedAtStart = true;
    const shapes = shapesOf();
    const shape = shapes.shapeOf(["user"]);
    const checking = shapes.check(shape);
    await vi.waitFor(() => expect(worker.sent).toEqual([shape]), { timeout: 60_000 });
    expect(worker.starts).toBe(2);
    worker.answer?.({ rendered: true });
    await expect(checking).resolves.toBeUndefined();
    shapes.close();
  });
});

/** Whether `promise` has settled once the tasks queued now have run: its value ("resolved" for none) or error, or "waiting". */
async function outcomeNow(promise: Promise<unknown>): Promise<unknown> {
  let outcome: unknown = "waiting";
  promise.then(
    (value: unknown) => (outcome = value ?? "resolved"),
    (error: unknown) => (outcome = error),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return outcome;
}

/** A conversation of `n` user messages with the assistant's between (its shape differs for each n). */
function turns(n: number): ("user" | "assistant")[] {
  return Array.from({ length: 2 * n - 1 }, (_, i) => (i % 2 === 0 ? "user" : "assistant"));
}

describe("a request aborted while its new shape waits for the worker (its limit held: never reached)", () => {
  it("stops waiting at once; its shape, queued with no other request waiting for it, is dropped and never sent", async () => {
    const shapes = shapesOf();
    holdTimeouts(SHAPE_LIMIT_MS);
    const [first, dropped, next] = [1, 2, 3].map((n) => shapes.shapeOf(turns(n))) as [string, string, string];
    const rendering = shapes.check(first);
    await vi.waitFor(() => expect(worker.sent).toEqual([first]), { timeout: 60_000 });
    const gone = new AbortController();
    const waiting = shapes.check(dropped, gone.signal) ?? Promise.resolve();
    const after = shapes.check(next);
    gone.abort(new Error("client went away"));
    expect(await outcomeNow(waiting)).toMatchObject({ code: "ENGINE_ABORTED" });
    // The one before renders; the dropped shape is skipped, the next one sent.
    worker.answer?.({ rendered: true });
    await expect(rendering).resolves.toBeUndefined();
    await vi.waitFor(() => expect(worker.sent).toEqual([first, next]), { timeout: 60_000 });
    worker.answer?.({ rendered: true });
    await expect(after).resolves.toBeUndefined();
    // Not kept: a later request of it renders it.
    expect(await outcomeNow(shapes.check(dropped) ?? Promise.resolve())).toBe("waiting");
    shapes.close();
  });

  it("frees its place among the shapes waiting: one more new shape may wait", async () => {
    const shapes = shapesOf();
    holdTimeouts(SHAPE_LIMIT_MS);
    const gone = new AbortController();
    const checks = Array.from({ length: SHAPES_WAITING }, (_, i) =>
      (shapes.check(shapes.shapeOf(turns(i + 1)), i === 1 ? gone.signal : undefined) ?? Promise.resolve()).catch(
        (e: unknown) => e,
      ),
    );
    const extra = shapes.shapeOf(turns(SHAPES_WAITING + 1));
    expect(await shapes.check(extra)?.catch((e: unknown) => e)).toMatchObject({ code: "ENGINE_BUSY" });
    gone.abort(new Error("client went away"));
    expect(await outcomeNow(checks[1] as Promise<unknown>)).toMatchObject({ code: "ENGINE_ABORTED" });
    expect(await outcomeNow(shapes.check(extra) ?? Promise.resolve())).toBe("waiting");
    shapes.close();
  });

  it("whose shape is rendering, or that another request waits for too: its render goes on and its verdict is kept", async () => {
    const shapes = shapesOf();
    holdTimeouts(SHAPE_LIMIT_MS);
    const shape = shapes.shapeOf(turns(4));
    const gone = new AbortController();
    const leaving = shapes.check(shape, gone.signal) ?? Promise.resolve();
    const staying = shapes.check(shape);
    await vi.waitFor(() => expect(worker.sent).toEqual([shape]), { timeout: 60_000 });
    gone.abort(new Error("client went away"));
    expect(await outcomeNow(leaving)).toMatchObject({ code: "ENGINE_ABORTED" });
    worker.answer?.({ rendered: true });
    await expect(staying).resolves.toBeUndefined();
    expect(shapes.check(shape)).toBeNull();
    // Alone and rendering: it finishes, and is kept.
    const alone = shapes.shapeOf(turns(5));
    const lone = new AbortController();
    const leavingAlone = shapes.check(alone, lone.signal) ?? Promise.resolve();
    await vi.waitFor(() => expect(worker.sent).toEqual([shape, alone]), { timeout: 60_000 });
    lone.abort(new Error("client went away"));
    expect(await outcomeNow(leavingAlone)).toMatchObject({ code: "ENGINE_ABORTED" });
    worker.answer?.({ rendered: true });
    await vi.waitFor(() => expect(shapes.check(alone)).toBeNull(), { timeout: 60_000 });
    expect(worker.sent).toEqual([shape, alone]);
    shapes.close();
  });

  it("aborted just before its limit while its looping shape renders alone: still refused at the limit, and kept", async () => {
    const shapes = shapesOf();
    const limits = holdTimeouts(SHAPE_LIMIT_MS);
    const shape = shapes.shapeOf(turns(7));
    const gone = new AbortController();
    const leaving = shapes.check(shape, gone.signal) ?? Promise.resolve();
    await vi.waitFor(() => expect(limits.held).toHaveLength(1), { timeout: 60_000 });
    gone.abort(new Error("client went away"));
    expect(await outcomeNow(leaving)).toMatchObject({ code: "ENGINE_ABORTED" });
    // The render was not dropped nor restarted: a request of it after the abort shares it, and the
    // limit still ends it, its refusal kept.
    const later = shapes.check(shape)?.catch((e: unknown) => e);
    expect(limits.held[0]?.fire()).toBe(true);
    expect(await later).toMatchObject({ code: "CHAT_TEMPLATE_REFUSED" });
    expect(() => shapes.check(shape)).toThrow(expect.objectContaining({ code: "CHAT_TEMPLATE_REFUSED" }));
    expect(worker.sent).toEqual([shape]);
    shapes.close();
  });

  it("already aborted: refused at once, nothing queued", async () => {
    const shapes = shapesOf();
    holdTimeouts(SHAPE_LIMIT_MS);
    const gone = new AbortController();
    gone.abort(new Error("client went away"));
    const shape = shapes.shapeOf(turns(6));
    expect(await outcomeNow(shapes.check(shape, gone.signal) ?? Promise.resolve())).toMatchObject({
      code: "ENGINE_ABORTED",
    });
    await new Promise((resolve) => setImmediate(resolve));
    expect(worker.sent).toEqual([]);
    shapes.close();
  });
});
