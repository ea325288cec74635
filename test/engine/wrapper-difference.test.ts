/**
 * wrapperDifference (TemplateShapes.for's check of a kept worker, startShapeRenderer's of a new one)
 * decides equal descriptions by their text, parsing neither, and parses only descriptions that differ
 * as text: the same answer either way (null for equal texts, the first differing option otherwise,
 * null for texts that differ only in form).
 */
import { JinjaTemplateChatWrapper } from "node-llama-cpp";
import { afterEach, describe, expect, it, vi } from "vitest";
import { describeJinjaWrapper, wrapperDifference } from "../../enclave/engine/chat-wrapper.ts";

const TEMPLATE =
  "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";

afterEach(() => {
  vi.restoreAllMocks();
});

describe("wrapperDifference", () => {
  it("takes equal texts as alike without parsing them", () => {
    const engine = describeJinjaWrapper(new JinjaTemplateChatWrapper({ template: TEMPLATE }));
    const worker = describeJinjaWrapper(new JinjaTemplateChatWrapper({ template: TEMPLATE }));
    expect(worker).toBe(engine);
    const parse = vi.spyOn(JSON, "parse");
    expect(wrapperDifference(engine, worker)).toBeNull();
    expect(parse).not.toHaveBeenCalled();
  });

  it("parses texts that differ: the first differing option, or null when only their form differs", () => {
    const engine = describeJinjaWrapper(new JinjaTemplateChatWrapper({ template: TEMPLATE }));
    const later = describeJinjaWrapper(
      Object.assign(new JinjaTemplateChatWrapper({ template: TEMPLATE }), { toolCallIdFormat: "short" }),
    );
    const reindented = JSON.stringify(JSON.parse(engine), null, 2);
    const parse = vi.spyOn(JSON, "parse");
    expect(wrapperDifference(engine, later)).toBe("option toolCallIdFormat");
    expect(parse).toHaveBeenCalledTimes(2);
    expect(reindented).not.toBe(engine);
    expect(wrapperDifference(engine, reindented)).toBeNull();
    expect(parse).toHaveBeenCalledTimes(4);
  });
});
