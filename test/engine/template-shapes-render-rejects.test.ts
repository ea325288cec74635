/**
 * The template-shape check's queue (engine/template-shapes.ts #pump) when rendering a shape rejects
 * (a fault of the worker's wrapper, never seen: ShapeRenderer.render resolves every outcome): the
 * requests waiting for that shape, also those without an abort signal, are answered ENGINE_BUSY
 * (retry; the shape not kept), the shapes queued behind it are still rendered, and no rejection is
 * left unhandled (vitest fails a run that has one). The worker is a fake ShapeRenderer.
 */
import { JinjaTemplateChatWrapper, type LlamaModel } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import type { ShapeRenderer } from "../../enclave/engine/chat-wrapper.ts";
import { EngineError } from "../../enclave/engine/errors.ts";
import { TemplateShapes } from "../../enclave/engine/template-shapes.ts";

/** A worker whose render of `failing` rejects (once per shape in `failing`), the others rendered; what it was sent. */
function renderer(failing: Set<string>): ShapeRenderer & { sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    render: async (shape) => {
      sent.push(shape);
      if (failing.delete(shape)) throw new Error("the worker's wrapper failed (a stand-in)");
      return { rendered: true };
    },
    answered: () => true,
    end: () => {},
  };
}

function code(error: unknown): unknown {
  return error instanceof EngineError ? error.code : error;
}

describe("a shape whose rendering rejects", () => {
  it("answers its waiters ENGINE_BUSY (with or without a signal), renders the shapes behind it, and retries it later", async () => {
    const wrapper = new JinjaTemplateChatWrapper({ template: "{% for m in messages %}{{ m['content'] }}{% endfor %}" });
    const worker = renderer(new Set(["ua"]));
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
    expect((first as Error).message).not.toContain("stand-in");
    // Not kept: the next request of the shape renders it again (and now it renders).
    await expect(shapes.check("ua") ?? Promise.resolve()).resolves.toBeUndefined();
    expect(worker.sent).toEqual(["ua", "sua", "ua"]);
    shapes.close();
  });
});
