/**
 * describeJinjaWrapper fails closed on a setting it was not written for: every public field of the
 * wrapper is in its `options` (those the shape worker's wrapper is built from), not a list of
 * node-llama-cpp 3.22's, so a field a later node-llama-cpp adds (and an engine sets) makes the
 * descriptions differ, and reaches the worker, instead of being left out of both.
 */
import { JinjaTemplateChatWrapper } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { describeJinjaWrapper, inlined, wrapperDifference } from "../../enclave/engine/chat-wrapper.ts";
import { EngineError } from "../../enclave/engine/errors.ts";
import { TemplateShapes } from "../../enclave/engine/template-shapes.ts";

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

  // A value JSON would describe as another (a Date as its text, a function left out, undefined in an
  // array as null, a Map as {}) would let two wrappers that differ be described alike: refused, by path.
  it.each([
    { what: "a Date", value: { when: new Date(0) }, path: "options.additionalRenderParameters.when", found: "a Date" },
    {
      what: "a function",
      value: { now: () => "x" },
      path: "options.additionalRenderParameters.now",
      found: "a function",
    },
    {
      what: "undefined in an array",
      value: { days: ["mon", undefined] },
      path: "options.additionalRenderParameters.days[1]",
      found: "undefined",
    },
    {
      what: "a hole in an array",
      value: { days: Object.assign(new Array<string>(2), { 1: "tue" }) },
      path: "options.additionalRenderParameters.days[0]",
      found: "undefined",
    },
    { what: "a bigint", value: { limit: 10n }, path: "options.additionalRenderParameters.limit", found: "a bigint" },
    {
      what: "a number JSON makes null",
      value: { limit: Number.NaN },
      path: "options.additionalRenderParameters.limit",
      found: "a number not finite",
    },
    {
      what: "a Map",
      value: { names: new Map([["a", "b"]]) },
      path: "options.additionalRenderParameters.names",
      found: "a Map",
    },
  ])("refuses an option holding $what, naming its path, never its value", ({ value, path, found }) => {
    // Set after it is built: node-llama-cpp's own trial of the template refuses some (a function, a bigint).
    const wrapper = Object.assign(new JinjaTemplateChatWrapper({ template: TEMPLATE }), {
      additionalRenderParameters: value,
    });
    expect(() => describeJinjaWrapper(wrapper)).toThrow(new RegExp(`^${path.replace(/[.[\]]/g, "\\$&")}: expected `));
    expect(() => describeJinjaWrapper(wrapper)).toThrow(new RegExp(`found ${found}$`));
  });

  it("describes an option of plain values (an undefined property left out, as the constructor takes it)", () => {
    const value = { days: ["mon", 1, true, null, { nested: "x" }], unset: undefined };
    const wrapper = new JinjaTemplateChatWrapper({ template: TEMPLATE, additionalRenderParameters: value });
    expect(JSON.parse(describeJinjaWrapper(wrapper)).options.additionalRenderParameters).toEqual({
      days: ["mon", 1, true, null, { nested: "x" }],
    });
  });

  it("has the engine's shapes check refuse such a wrapper at the boot (CHAT_WRAPPER_FAILED)", () => {
    const wrapper = new JinjaTemplateChatWrapper({
      template: TEMPLATE,
      additionalRenderParameters: { when: new Date(0) },
    });
    let error: unknown;
    try {
      TemplateShapes.for(wrapper, {} as never, 1_000, null);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(EngineError);
    expect(error).toMatchObject({
      code: "CHAT_WRAPPER_FAILED",
      message: expect.stringMatching(/options\.additionalRenderParameters\.when: expected .* found a Date/),
    });
  });
});
