/**
 * describeJinjaWrapper fails closed on a setting it was not written for: every public field of the
 * wrapper is in its `options` (those the shape worker's wrapper is built from), not a list of
 * node-llama-cpp 3.22's, so a field a later node-llama-cpp adds (and an engine sets) makes the
 * descriptions differ, and reaches the worker, instead of being left out of both.
 */
import { JinjaTemplateChatWrapper } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { describeJinjaWrapper, inlined, wrapperDifference } from "../../enclave/engine/chat-wrapper.ts";

const TEMPLATE =
  "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";

describe("describeJinjaWrapper", () => {
  it("describes a public field it does not know (a later node-llama-cpp's option), so a wrapper that sets it differs", () => {
    const plain = new JinjaTemplateChatWrapper({ template: TEMPLATE });
    const later = Object.assign(new JinjaTemplateChatWrapper({ template: TEMPLATE }), { toolCallIdFormat: "short" });
    const description = describeJinjaWrapper(later);
    expect(JSON.parse(description).options).toMatchObject({ toolCallIdFormat: "short" });
    expect(description).not.toBe(describeJinjaWrapper(plain));
    expect(wrapperDifference(describeJinjaWrapper(plain), description)).toBe("option toolCallIdFormat");
  });

  it("leaves out what the wrapper derived itself (its _ fields, its name): the options its constructor takes back", () => {
    const options = JSON.parse(describeJinjaWrapper(new JinjaTemplateChatWrapper({ template: TEMPLATE }))).options;
    expect(Object.keys(options).filter((name) => name.startsWith("_") || name === "wrapperName")).toEqual([]);
    expect(options).toMatchObject({
      template: TEMPLATE,
      convertUnsupportedSystemMessagesToUserMessages: { format: expect.any(String) },
      additionalRenderParameters: null,
    });
  });

  it("runs on the worker under its own name when a bundler has renamed it (inlined: its source bound to the name the worker calls)", () => {
    // As a bundler that renames identifiers leaves it: the same source, declared under another name.
    const source = describeJinjaWrapper.toString();
    expect(source).toMatch(/^function describeJinjaWrapper\(/);
    const renamed = new Function(`return (${source.replace(/^function describeJinjaWrapper\(/, "function a(")});`)();
    expect(renamed.name).toBe("a");
    // The worker's source calls it by the name given (text: a bundler does not rename it).
    const onWorker = new Function(`${inlined("describeJinjaWrapper", renamed)}\nreturn describeJinjaWrapper;`)();
    const wrapper = new JinjaTemplateChatWrapper({ template: TEMPLATE });
    expect(onWorker(wrapper)).toBe(describeJinjaWrapper(wrapper));
  });
});
