/**
 * The conversation the shape worker renders for a request's shape (shapeHistory, sent to the worker
 * by its render) passes the operator's Jinja template the same messages, role by role, as the
 * engine's own rendering of that request on the event loop (engine.ts #renderChat: its messages,
 * then the model's empty turn), for every conversation of up to five messages, whether the wrapper
 * joins adjacent messages of one role (node-llama-cpp's default, as Cloister builds it) or not.
 * Otherwise the worker would vet another shape than the one the event loop then renders. The
 * template writes each message's role, so the rendered texts show what it was given. Every other
 * wrapper the engine may choose (the named ones, Cloister's own template) runs no operator's template
 * and gets no check (TemplateShapes.for gives none).
 */
import {
  type ChatHistoryItem,
  type ChatWrapper,
  chatWrappers,
  JinjaTemplateChatWrapper,
  type LlamaModel,
  specializedChatWrapperTypeNames,
} from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { describeJinjaWrapper, shapeHistory } from "../../enclave/engine/chat-wrapper.ts";
import { TemplateShapes } from "../../enclave/engine/template-shapes.ts";
import { CHAT_TEMPLATE } from "../../models/llama-layout.ts";

type Role = "system" | "user" | "assistant";

/** Each message as `<role>` and its content, and the model's turn after them. */
const TEMPLATE =
  "{% for message in messages %}{{ '<' + message['role'] + '>' + message['content'] }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<assistant>' }}{% endif %}";

/** Every conversation of 1 to `most` messages. */
function conversations(most: number): Role[][] {
  const all: Role[][] = [];
  let level: Role[][] = [[]];
  for (let n = 1; n <= most; n++) {
    level = level.flatMap((roles) => (["system", "user", "assistant"] as const).map((role) => [...roles, role]));
    all.push(...level);
  }
  return all;
}

/** The engine's history for a request of `roles` (engine.ts #renderChat and toHistoryItem). */
function engineHistory(roles: readonly Role[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = roles.map((role, i) =>
    role === "system"
      ? { type: "system", text: `system ${i}` }
      : role === "user"
        ? { type: "user", text: `user ${i}` }
        : { type: "model", response: [`assistant ${i}`] },
  );
  history.push({ type: "model", response: [] });
  return history;
}

/** The roles the template was given, in order, as its rendering shows them. */
function rolesRendered(wrapper: ChatWrapper, chatHistory: ChatHistoryItem[]): string {
  const text = wrapper.generateContextState({ chatHistory }).contextText.toString();
  return [...text.matchAll(/<(system|user|assistant)>/g)].map((match) => match[1]).join(" ");
}

describe.each([
  { joined: true, how: "joins adjacent messages of one role (the default)" },
  { joined: false, how: "keeps adjacent messages of one role apart" },
])("a Jinja wrapper that $how", ({ joined }) => {
  it("gets the same messages from the worker's conversation of the shape as from the engine's of the request", () => {
    const wrapper = new JinjaTemplateChatWrapper({ template: TEMPLATE, joinAdjacentMessagesOfTheSameType: joined });
    const shapes = TemplateShapes.for(wrapper, {} as LlamaModel, 1_000, {
      description: describeJinjaWrapper(wrapper),
      render: async () => ({ rendered: true }),
      answered: () => true,
      end: () => {},
    });
    if (shapes === null) throw new Error("expected a shapes check for an operator's Jinja template");
    const differing: string[] = [];
    for (const roles of conversations(5)) {
      const shape = shapes.shapeOf(roles);
      const engine = rolesRendered(wrapper, engineHistory(roles));
      const worker = rolesRendered(wrapper, shapeHistory(shape));
      if (worker !== engine) differing.push(`${roles.join(" ")}: engine [${engine}], worker (${shape}) [${worker}]`);
    }
    expect(differing).toEqual([]);
    shapes.close();
  });
});

describe("the wrappers that run no operator's template", () => {
  it("get no shapes check: each named wrapper, and Cloister's own template", () => {
    const named: ChatWrapper[] = [...specializedChatWrapperTypeNames, "general" as const].map(
      (type) => new chatWrappers[type](),
    );
    const own = new JinjaTemplateChatWrapper({ template: CHAT_TEMPLATE });
    expect([...named, own].map((wrapper) => TemplateShapes.for(wrapper, {} as LlamaModel))).toEqual(
      [...named, own].map(() => null),
    );
  });
});
