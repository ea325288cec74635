/**
 * What the template-shape check holds for new shapes queued behind a rendering that does not end
 * (engine/template-shapes.ts): requests that queue a new shape and then abort hold nothing once gone,
 * however many come, so memory is bounded by SHAPES_WAITING, not by the request rate. Counted with
 * V8's own count of live objects (after a full garbage collection), not timed. The worker is a fake
 * ShapeRenderer whose first render never answers; the limit's timer is held, never fired.
 */
import { queryObjects } from "node:v8";
import { JinjaTemplateChatWrapper, type LlamaModel } from "node-llama-cpp";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { ShapeRenderer, ShapeRendering } from "../../enclave/engine/chat-wrapper.ts";
import { EngineError } from "../../enclave/engine/errors.ts";
import { QueuedShape, SHAPES_WAITING, TemplateShapes } from "../../enclave/engine/template-shapes.ts";
import { holdTimeouts } from "../helpers/held-timers.ts";

const LIMIT_MS = 4321;

afterEach(() => {
  vi.restoreAllMocks();
});

/** A worker whose renders never answer (a template that loops on every shape), counted. */
function stuckRenderer(): ShapeRenderer & { sent: string[] } {
  const sent: string[] = [];
  let under: ((outcome: ShapeRendering) => void) | null = null;
  return {
    sent,
    render: (shape) => {
      sent.push(shape);
      return new Promise<ShapeRendering>((resolve) => {
        under = resolve;
      });
    },
    answered: () => under === null,
    // As the real one: a render under way is answered not rendered.
    end: () => {
      under?.({ rendered: false, why: "the worker ended", workerEnded: true, sent: true, byRender: false });
      under = null;
    },
  };
}

function newShapes(): { shapes: TemplateShapes; renderer: ReturnType<typeof stuckRenderer> } {
  const wrapper = new JinjaTemplateChatWrapper({ template: "{% for m in messages %}{{ m['content'] }}{% endfor %}" });
  const renderer = stuckRenderer();
  const shapes = TemplateShapes.for(wrapper, {} as LlamaModel, LIMIT_MS, renderer);
  if (shapes === null) throw new Error("expected a shapes check for an operator's Jinja template");
  return { shapes, renderer };
}

function code(error: unknown): unknown {
  return error instanceof EngineError ? error.code : error;
}

describe("new shapes queued behind a rendering that does not end, each request aborted", () => {
  it("hold nothing once their requests are gone, however many came (not one entry per request)", async () => {
    holdTimeouts(LIMIT_MS);
    const { shapes, renderer } = newShapes();
    const ahead = shapes.check("ua")?.catch((e: unknown) => e);
    await vi.waitFor(() => expect(renderer.sent).toEqual(["ua"]));
    const before = queryObjects(QueuedShape, { format: "count" });
    const requests = 4 * SHAPES_WAITING;
    for (let i = 0; i < requests; i++) {
      const gone = new AbortController();
      const waiting = shapes.check(`${"su".repeat(i + 1)}a`, gone.signal)?.catch((e: unknown) => e);
      gone.abort(new Error("client went away"));
      expect(code(await waiting)).toBe("ENGINE_ABORTED");
    }
    // The one rendering ahead is held; each aborted shape's entry is not.
    expect(queryObjects(QueuedShape, { format: "count" })).toBe(before);
    expect(renderer.sent).toEqual(["ua"]);
    shapes.close();
    expect(code(await ahead)).toBe("ENGINE_CLOSED");
  });
});

describe("a worker that answers a shape was not sent because another is rendering (never, by construction)", () => {
  it("is not asked again for it: ENGINE_BUSY (retry), the shape not kept, the worker kept", async () => {
    holdTimeouts(LIMIT_MS);
    const wrapper = new JinjaTemplateChatWrapper({ template: "{% for m in messages %}{{ m['content'] }}{% endfor %}" });
    const sent: string[] = [];
    const ended = vi.fn();
    const busyRenderer: ShapeRenderer = {
      render: async (shape) => {
        sent.push(shape);
        if (sent.length === 1) {
          return {
            rendered: false,
            why: "another shape is rendering",
            workerEnded: false,
            sent: false,
            byRender: false,
          };
        }
        return { rendered: true };
      },
      answered: () => true,
      end: ended,
    };
    const shapes = TemplateShapes.for(wrapper, {} as LlamaModel, LIMIT_MS, busyRenderer);
    const error = await shapes?.check("ua")?.catch((e: unknown) => e);
    expect({ code: code(error), sent, ended: ended.mock.calls.length }).toEqual({
      code: "ENGINE_BUSY",
      sent: ["ua"],
      ended: 0,
    });
    // Not kept: the next request of the shape renders it (on the same worker).
    await shapes?.check("ua");
    expect(sent).toEqual(["ua", "ua"]);
    shapes?.close();
  });
});
