/**
 * A shape worker whose Jinja wrapper is not the engine's (here the engine's wrapper holds a public
 * field node-llama-cpp 3.22's constructor does not take back, as a later version's option would be:
 * the worker's wrapper, built from the engine's options, lacks it) will never be: every worker is built
 * by the same code from the same options. So the mismatch is kept, said once on stderr (naming the
 * option, never its value), and every new conversation shape is refused with CHAT_WRAPPER_FAILED (not
 * ENGINE_BUSY, "retry"), without a new worker (about 0.5 s and up to 256 MB each) started per shape.
 * Counted by the workers built (each unreferenced once its wrapper is built).
 */
import { Worker } from "node:worker_threads";
import { JinjaTemplateChatWrapper } from "node-llama-cpp";
import { afterEach, describe, expect, it, vi } from "vitest";
import { TemplateShapes } from "../../enclave/engine/template-shapes.ts";
import { MAX_ERROR_DETAIL_LENGTH } from "../../sealed/frames.ts";
import { useTemplateModel } from "./template-model.ts";

const TEMPLATE =
  "{% for message in messages %}" +
  "{% if message['role'] == 'assistant' and message['tool_calls'] is defined and message['tool_calls'] %}" +
  "{{ 'assistant: ' + (message['content'] or '') }}" +
  "{% for call in message['tool_calls'] %}" +
  "{{ '<call>' + call['function']['name'] + '(' + (call['function']['arguments'] | tojson) + ')</call>' }}" +
  "{% endfor %}{{ '\\n' }}" +
  "{% elif message['role'] == 'tool' %}{{ 'result: ' + message['content'] + '\\n' }}" +
  "{% else %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";

const model = useTemplateModel(TEMPLATE);

afterEach(() => {
  vi.restoreAllMocks();
});

/** Settles `check` (a new shape's), to its error. */
async function refusal(check: Promise<void> | null): Promise<unknown> {
  return Promise.resolve(check).then(
    () => null,
    (error: unknown) => error,
  );
}

describe("a shape worker whose Jinja wrapper is not the engine's", () => {
  it("is said once, and every new shape is refused for good (CHAT_WRAPPER_FAILED), no worker started per shape", async () => {
    const built = vi.spyOn(Worker.prototype, "unref");
    const said: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      said.push(String(chunk));
      return true;
    });
    const wrapper = Object.assign(new JinjaTemplateChatWrapper({ template: TEMPLATE }), { toolCallIdFormat: "secret" });
    const shapes = TemplateShapes.for(wrapper, model(), 30_000, null);
    if (shapes === null) throw new Error("expected a shapes check for an operator's Jinja template");
    try {
      const errors = [];
      for (const roles of [["user"], ["system", "user"], ["user"], ["user", "assistant", "user"]] as const) {
        errors.push(await refusal(shapes.check(shapes.shapeOf([...roles]))));
      }
      for (const error of errors) {
        expect(error).toMatchObject({
          code: "CHAT_WRAPPER_FAILED",
          message: expect.stringMatching(/option toolCallIdFormat/),
        });
        // The error frame's detail: longer is cut with "…" before the client sees it.
        expect((error as Error).message.length).toBeLessThanOrEqual(MAX_ERROR_DETAIL_LENGTH);
      }
      expect(built.mock.calls.length).toBe(1);
      const lines = said.filter((line) => line.includes("Jinja wrapper"));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/option toolCallIdFormat/);
      expect(lines.join("")).not.toMatch(/secret/);
      expect(errors.map((error) => String(error)).join("")).not.toMatch(/secret/);
    } finally {
      shapes.close();
    }
  });

  it("once closed, refuses a new shape with ENGINE_CLOSED, not the mismatch's CHAT_WRAPPER_FAILED", async () => {
    vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const wrapper = Object.assign(new JinjaTemplateChatWrapper({ template: TEMPLATE }), { toolCallIdFormat: "secret" });
    const shapes = TemplateShapes.for(wrapper, model(), 30_000, null);
    if (shapes === null) throw new Error("expected a shapes check for an operator's Jinja template");
    try {
      expect(await refusal(shapes.check(shapes.shapeOf(["user"])))).toMatchObject({ code: "CHAT_WRAPPER_FAILED" });
    } finally {
      shapes.close();
    }
    expect(await refusal(shapes.check(shapes.shapeOf(["system", "user"])))).toMatchObject({ code: "ENGINE_CLOSED" });
  });
});
