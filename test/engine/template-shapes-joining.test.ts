/**
 * The shape worker renders a shape joined or not as the engine's wrapper joins adjacent messages of
 * one role (TemplateShapes sends the engine's setting with every shape: one place decides), so its
 * verdict is the one the engine's own rendering would give. The template fails on two adjacent
 * messages of one role: a conversation of a user message then an assistant one (prefill) is one
 * assistant message with the model's turn when joined, two adjacent ones when not. The worker's own
 * wrapper is built with node-llama-cpp's default (joined); an engine's wrapper that keeps them apart
 * must have the shape refused, as its rendering on the event loop fails.
 */
import { type ChatHistoryItem, JinjaTemplateChatWrapper } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { describeJinjaWrapper, startShapeRenderer } from "../../enclave/engine/chat-wrapper.ts";
import { TemplateShapes } from "../../enclave/engine/template-shapes.ts";
import { useTemplateModel } from "./template-model.ts";

const TEMPLATE =
  "{% for message in messages %}" +
  "{% if not loop.first and message['role'] == messages[loop.index0 - 1]['role'] %}{{ raise_exception('adjacent') }}{% endif %}" +
  "{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";

/** A user message then an assistant one, and the model's turn, as the engine renders it (engine.ts #renderChat). */
const PREFILL: ChatHistoryItem[] = [
  { type: "user", text: "question" },
  { type: "model", response: ["the answer begins"] },
  { type: "model", response: [] },
];

const model = useTemplateModel(TEMPLATE);

/** The boot's wrapper (a pinned "jinjaTemplate" or auto's choice: node-llama-cpp's defaults), described. */
const BOOT_WRAPPER = describeJinjaWrapper(new JinjaTemplateChatWrapper({ template: TEMPLATE }));

describe.each([
  { joined: true, renders: true },
  { joined: false, renders: false },
])("an engine's Jinja wrapper with joinAdjacentMessagesOfTheSameType $joined", ({ joined, renders }) => {
  it("has the worker vet a prefilled conversation's shape as its own rendering goes", async () => {
    const wrapper = new JinjaTemplateChatWrapper({ template: TEMPLATE, joinAdjacentMessagesOfTheSameType: joined });
    const engineRenders = (() => {
      try {
        wrapper.generateContextState({ chatHistory: PREFILL });
        return true;
      } catch {
        return false;
      }
    })();
    expect(engineRenders).toBe(renders);
    const renderer = await startShapeRenderer(model(), new AbortController().signal, BOOT_WRAPPER);
    const shapes = TemplateShapes.for(wrapper, model(), 30_000, renderer);
    if (shapes === null) throw new Error("expected a shapes check for an operator's Jinja template");
    try {
      const checking = shapes.check(shapes.shapeOf(["user", "assistant"]));
      const vetted = await Promise.resolve(checking).then(
        () => true,
        (error: unknown) => {
          expect(error).toMatchObject({ code: "CHAT_TEMPLATE_REFUSED" });
          return false;
        },
      );
      expect(vetted).toBe(engineRenders);
    } finally {
      shapes.close();
    }
  });
});
