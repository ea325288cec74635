/**
 * The limit on a new shape's rendering (engine/template-shapes.ts) when this thread's event loop
 * was held past it (a long task: another request's tokenizing, a GC) while the worker answered in
 * time: node runs an expired timer before it delivers a message that waits on a port, so the limit
 * would fire first and the shape be refused for good though it rendered. The limit takes the
 * worker's answer waiting behind that task first. The worker here is a stand-in whose answer the
 * test puts in its port (ShapeRenderer.answered): the order is the test's, not the machine's.
 */
import { JinjaTemplateChatWrapper, type LlamaModel } from "node-llama-cpp";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ShapeRendering } from "../../enclave/engine/chat-wrapper.ts";
import { SHAPE_LIMIT_MS, TemplateShapes } from "../../enclave/engine/template-shapes.ts";
import { holdTimeouts } from "../helpers/held-timers.ts";

/** The stand-in worker: the shapes it was sent, and whether its answer waits in its port. */
const worker = vi.hoisted(() => ({
  sent: [] as string[],
  answer: null as ((rendering: ShapeRendering) => void) | null,
  waiting: false,
}));

vi.mock("../../enclave/engine/chat-wrapper.ts", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../../enclave/engine/chat-wrapper.ts")>()),
  startShapeRenderer: async () => ({
    render: (shape: string) =>
      new Promise<ShapeRendering>((resolve) => {
        worker.sent.push(shape);
        worker.answer = resolve;
      }),
    // Its answer, sent in time, waiting in the port behind the long task: taken now.
    answered: () => {
      if (worker.waiting) worker.answer?.({ rendered: true });
      return worker.waiting;
    },
    end: () => {},
  }),
}));

afterEach(() => {
  vi.restoreAllMocks();
  worker.sent = [];
  worker.answer = null;
  worker.waiting = false;
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

  it("refuses the shape when no answer waits at the limit (the worker is still rendering)", async () => {
    const shapes = shapesOf();
    const limits = holdTimeouts(SHAPE_LIMIT_MS);
    const shape = shapes.shapeOf(["user", "assistant", "user"]);
    const checking = shapes.check(shape);
    await vi.waitFor(() => expect(limits.held).toHaveLength(1), { timeout: 60_000 });
    expect(limits.held[0]?.fire()).toBe(true);
    await expect(checking).rejects.toMatchObject({ code: "CHAT_TEMPLATE_REFUSED" });
    expect(() => shapes.check(shape)).toThrow(expect.objectContaining({ code: "CHAT_TEMPLATE_REFUSED" }));
    shapes.close();
  });
});
