/**
 * What the template-shape check holds for new shapes queued behind a rendering that does not end
 * (engine/template-shapes.ts): requests that queue a new shape and then abort free its place in the
 * queue once gone, however many come, so the queue stays bounded by SHAPES_WAITING (its ENGINE_BUSY),
 * not by the request rate: after four times SHAPES_WAITING of them, exactly SHAPES_WAITING shapes
 * wait again (the one rendering among them), and one more is refused. Not timed. The worker is a
 * fake ShapeRenderer whose first render never answers; the limit's timer is held, never fired.
 */
import { JinjaTemplateChatWrapper, type LlamaModel } from "node-llama-cpp";
import { afterEach, describe, expect, it, vi } from "vitest";
import { describeJinjaWrapper, type ShapeRenderer, type ShapeRendering } from "../../enclave/engine/chat-wrapper.ts";
import { EngineError } from "../../enclave/engine/errors.ts";
import { SHAPES_WAITING, TemplateShapes } from "../../enclave/engine/template-shapes.ts";
import { holdTimeouts } from "../helpers/held-timers.ts";

const LIMIT_MS = 4321;

afterEach(() => {
  vi.restoreAllMocks();
});

/** A worker (of the engine's wrapper: `description`) whose renders never answer (a template that loops on every shape), counted. */
function stuckRenderer(description: string): ShapeRenderer & { sent: string[] } {
  const sent: string[] = [];
  let under: ((outcome: ShapeRendering) => void) | null = null;
  return {
    description,
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
  const renderer = stuckRenderer(describeJinjaWrapper(wrapper));
  const shapes = TemplateShapes.for(wrapper, {} as LlamaModel, LIMIT_MS, renderer);
  if (shapes === null) throw new Error("expected a shapes check for an operator's Jinja template");
  return { shapes, renderer };
}

function code(error: unknown): unknown {
  return error instanceof EngineError ? error.code : error;
}

describe("new shapes queued behind a rendering that does not end, each request aborted", () => {
  it("free their places in the queue once their requests are gone, however many came (not one entry per request)", async () => {
    holdTimeouts(LIMIT_MS);
    const { shapes, renderer } = newShapes();
    const ahead = shapes.check("ua")?.catch((e: unknown) => e);
    await vi.waitFor(() => expect(renderer.sent).toEqual(["ua"]));
    const requests = 4 * SHAPES_WAITING;
    for (let i = 0; i < requests; i++) {
      const gone = new AbortController();
      const waiting = shapes.check(`${"su".repeat(i + 1)}a`, gone.signal)?.catch((e: unknown) => e);
      gone.abort(new Error("client went away"));
      expect(code(await waiting)).toBe("ENGINE_ABORTED");
    }
    // The one rendering ahead keeps its place; each aborted shape's is free: SHAPES_WAITING - 1 new
    // shapes wait behind it, and one more is refused.
    const waiting = Array.from({ length: SHAPES_WAITING - 1 }, (_, i) =>
      shapes.check(`${"us".repeat(i + 1)}a`)?.catch((e: unknown) => e),
    );
    expect(code(await shapes.check("sa")?.catch((e: unknown) => e))).toBe("ENGINE_BUSY");
    expect(renderer.sent).toEqual(["ua"]);
    shapes.close();
    expect((await Promise.all([ahead, ...waiting])).map(code)).toEqual(
      Array.from({ length: SHAPES_WAITING }, () => "ENGINE_CLOSED"),
    );
  });
});
