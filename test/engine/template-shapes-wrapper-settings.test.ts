/**
 * The shape worker's Jinja wrapper is the engine's, not one built with node-llama-cpp's defaults that
 * happens to agree: it is built from the engine's wrapper's options (chat-wrapper.ts
 * describeJinjaWrapper), and its description is compared with the engine's. The template here fails
 * when a conversation of nine messages or more (past node-llama-cpp's sanity test's) has the role
 * node-llama-cpp's defaults name ("assistant") at its eighth: an engine whose wrapper names it "bot" renders that
 * conversation, so the worker must vet its shape too; one that keeps the default fails it, so the
 * worker must refuse it. A worker kept from the boot (built
 * with the defaults) is not used for an engine's wrapper that differs.
 */
import { type ChatHistoryItem, JinjaTemplateChatWrapper } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { describeJinjaWrapper, startShapeRenderer, wrapperDifference } from "../../enclave/engine/chat-wrapper.ts";
import { TemplateShapes } from "../../enclave/engine/template-shapes.ts";
import { useTemplateModel } from "./template-model.ts";

const TEMPLATE =
  "{% if messages | length > 8 and messages[7]['role'] == 'assistant' %}{{ raise_exception('default role') }}{% endif %}" +
  "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'bot: ' }}{% endif %}";

/** Nine messages of alternating roles (past node-llama-cpp's sanity test's), and the model's turn, as the engine renders them. */
const ROLES = ["user", "assistant", "user", "assistant", "user", "assistant", "user", "assistant", "user"] as const;
const CONVERSATION: ChatHistoryItem[] = [
  ...ROLES.map(
    (role): ChatHistoryItem =>
      role === "user" ? { type: "user", text: "question" } : { type: "model", response: ["answer"] },
  ),
  { type: "model", response: [] },
];

const model = useTemplateModel(TEMPLATE);

/** The boot's wrapper (a pinned "jinjaTemplate" or auto's choice: node-llama-cpp's defaults), described. */
const BOOT_WRAPPER = describeJinjaWrapper(new JinjaTemplateChatWrapper({ template: TEMPLATE }));

/** Whether `wrapper` renders CONVERSATION, as the engine would on its thread. */
function engineRenders(wrapper: JinjaTemplateChatWrapper): boolean {
  try {
    wrapper.generateContextState({ chatHistory: CONVERSATION });
    return true;
  } catch {
    return false;
  }
}

/** Whether the shapes check for `wrapper` (its worker kept from the boot or started for it) vets CONVERSATION's shape. */
async function vetted(wrapper: JinjaTemplateChatWrapper, keptFromBoot: boolean): Promise<boolean> {
  const kept = keptFromBoot ? await startShapeRenderer(model(), new AbortController().signal, BOOT_WRAPPER) : null;
  const shapes = TemplateShapes.for(wrapper, model(), 30_000, kept);
  if (shapes === null) throw new Error("expected a shapes check for an operator's Jinja template");
  try {
    return await Promise.resolve(shapes.check(shapes.shapeOf(ROLES))).then(
      () => true,
      (error: unknown) => {
        expect(error).toMatchObject({ code: "CHAT_TEMPLATE_REFUSED" });
        return false;
      },
    );
  } finally {
    shapes.close();
  }
}

describe.each([
  { roles: "node-llama-cpp's defaults", options: {}, renders: false },
  { roles: "bot and human", options: { modelRoleName: "bot", userRoleName: "human" }, renders: true },
])("an engine's Jinja wrapper with role names $roles", ({ options, renders }) => {
  const wrapper = () => new JinjaTemplateChatWrapper({ template: TEMPLATE, ...options });

  it("has a worker started for it vet a conversation's shape as its own rendering goes", async () => {
    expect(engineRenders(wrapper())).toBe(renders);
    expect(await vetted(wrapper(), false)).toBe(renders);
  });

  it("has the boot's kept worker (default settings) used only when it is alike, the verdict the engine's", async () => {
    expect(await vetted(wrapper(), true)).toBe(renders);
  });
});

describe("startShapeRenderer for an engine's wrapper", () => {
  it("builds the worker's wrapper from the engine's options: described alike, also for reasoning and system messages", async () => {
    const engine = new JinjaTemplateChatWrapper({
      template: TEMPLATE,
      modelRoleName: "bot",
      reasoning: false,
      convertUnsupportedSystemMessagesToUserMessages: { use: "always", format: "[{{message}}]" },
      joinAdjacentMessagesOfTheSameType: false,
      trimLeadingWhitespaceInResponses: false,
    });
    const description = describeJinjaWrapper(engine);
    const renderer = await startShapeRenderer(model(), new AbortController().signal, description);
    try {
      expect(wrapperDifference(description, renderer.description)).toBeNull();
    } finally {
      renderer.end();
    }
  });

  it("names the option in which two wrappers differ, never its value", () => {
    const a = describeJinjaWrapper(new JinjaTemplateChatWrapper({ template: TEMPLATE }));
    const b = describeJinjaWrapper(new JinjaTemplateChatWrapper({ template: TEMPLATE, systemRoleName: "sys" }));
    expect(wrapperDifference(a, b)).toBe("option systemRoleName");
    expect(wrapperDifference(a, a)).toBeNull();
  });
});
