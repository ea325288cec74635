/**
 * The template-shape check's queue (engine/template-shapes.ts #pump) when rendering a shape rejects
 * (the real worker's render does when begun while another shape renders, a bug: the rule
 * test/engine/shape-renderer-rule.test.ts shows): the requests waiting for that shape, also those
 * without an abort signal, are answered ENGINE_BUSY (retry; the shape not kept), the worker it was
 * sent to is ended (its state unknown: kept, it would reject every later shape, ENGINE_BUSY for
 * good) and its limit's
 * timer cleared, the shapes queued behind it are still rendered, on a new worker, and no rejection
 * is left unhandled (vitest fails a run that has one). The workers are fake ShapeRenderers.
 */
import { JinjaTemplateChatWrapper, type LlamaModel } from "node-llama-cpp";
import { afterEach, describe, expect, it, vi } from "vitest";
import { describeJinjaWrapper, type ShapeRenderer } from "../../enclave/engine/chat-wrapper.ts";
import { EngineError } from "../../enclave/engine/errors.ts";
import { TemplateShapes } from "../../enclave/engine/template-shapes.ts";

type FakeRenderer = ShapeRenderer & { sent: string[]; ended: number };

/** The workers started for the shapes (startShapeRenderer), each a fake that renders every shape. */
const started: FakeRenderer[] = [];

vi.mock("../../enclave/engine/chat-wrapper.ts", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../../enclave/engine/chat-wrapper.ts")>();
  return {
    ...actual,
    startShapeRenderer: async () => {
      const worker = renderer(new Set());
      started.push(worker);
      return worker;
    },
  };
});

afterEach(() => {
  vi.useRealTimers();
});

/**
 * A worker whose render of `failing` rejects (once per shape in `failing`), leaving it as the real
 * one is when its rule is broken (a render under way: its later renders reject); what it was sent.
 */
function renderer(failing: Set<string>, description = ""): FakeRenderer {
  let stuck = false;
  const worker: FakeRenderer = {
    description,
    sent: [],
    ended: 0,
    render: async (shape) => {
      worker.sent.push(shape);
      if (stuck) throw new Error("expected one shape rendering at a time (a stand-in)");
      if (failing.delete(shape)) {
        stuck = true;
        throw new Error("the worker's wrapper failed (a stand-in)");
      }
      return { rendered: true };
    },
    answered: () => !stuck,
    end: () => {
      worker.ended++;
    },
  };
  return worker;
}

function code(error: unknown): unknown {
  return error instanceof EngineError ? error.code : error;
}

describe("a shape whose rendering rejects", () => {
  it("answers its waiters ENGINE_BUSY (with or without a signal), ends its worker, renders the shapes behind it on a new one, and retries it later", async () => {
    vi.useFakeTimers();
    const wrapper = new JinjaTemplateChatWrapper({ template: "{% for m in messages %}{{ m['content'] }}{% endfor %}" });
    const worker = renderer(new Set(["ua"]), describeJinjaWrapper(wrapper));
    const shapes = TemplateShapes.for(wrapper, {} as LlamaModel, 60_000, worker);
    if (shapes === null) throw new Error("expected a shapes check for an operator's Jinja template");
    const unsignalled = shapes.check("ua")?.catch((e: unknown) => e);
    const signalled = shapes.check("ua", new AbortController().signal)?.catch((e: unknown) => e);
    const behind = shapes.check("sua")?.catch((e: unknown) => e);
    const [first, second, third] = await Promise.all([unsignalled, signalled, behind]);
    expect({ first: code(first), second: code(second), third }).toEqual({
      first: "ENGINE_BUSY",
      second: "ENGINE_BUSY",
      third: undefined,
    });
    // What happened, for an operator (the rejection's name, a bug, the worker ended), not the error's words.
    expect((first as Error).message).toMatch(
      /its render on that worker rejected \(Error\), a bug: that worker was ended/,
    );
    expect((first as Error).message).not.toContain("stand-in");
    // The failed render's limit is not left running, nor its worker: "sua" went to a new one.
    expect({ timers: vi.getTimerCount(), ended: worker.ended, sent: worker.sent, started: started.length }).toEqual({
      timers: 0,
      ended: 1,
      sent: ["ua"],
      started: 1,
    });
    // Not kept: the next request of the shape renders it again (and now it renders).
    await expect(shapes.check("ua") ?? Promise.resolve()).resolves.toBeUndefined();
    expect(started[0]?.sent).toEqual(["sua", "ua"]);
    shapes.close();
  });
});
