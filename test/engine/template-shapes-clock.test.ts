/**
 * The shape worker's Jinja wrapper is compared with the engine's (chat-wrapper.ts describeJinjaWrapper,
 * wrapperDifference) by the options both are built from, not by the settings a wrapper derives, which
 * can hold the template's output at the time it was built: here the template writes the time
 * (strftime_now, as Llama 3.x templates write the date) into its function-call syntax, which lands in
 * settings.functions.call.prefix. A worker started at another time (another minute, another day after
 * the boot) builds the same wrapper from the same options: it must be taken as the engine's, not
 * refused for good.
 */
import { JinjaTemplateChatWrapper } from "node-llama-cpp";
import { afterEach, describe, expect, it, vi } from "vitest";
import { describeJinjaWrapper, startShapeRenderer, wrapperDifference } from "../../enclave/engine/chat-wrapper.ts";
import { useTemplateModel } from "./template-model.ts";

const TEMPLATE =
  "{% for message in messages %}" +
  "{% if message['role'] == 'assistant' and message['tool_calls'] is defined and message['tool_calls'] %}" +
  "{{ 'assistant: ' + (message['content'] or '') }}" +
  "{% for call in message['tool_calls'] %}" +
  "{{ '<call at=' + strftime_now('%d %b %Y %H:%M') + '>' + call['function']['name'] + '(' + (call['function']['arguments'] | tojson) + ')</call>' }}" +
  "{% endfor %}{{ '\\n' }}" +
  "{% elif message['role'] == 'tool' %}{{ 'result: ' + message['content'] + '\\n' }}" +
  "{% else %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";

const model = useTemplateModel(TEMPLATE);

/** The engine's wrapper as built at `time` (its thread's clock faked, as at a boot on that day). */
function builtAt(time: string) {
  vi.useFakeTimers({ toFake: ["Date"], now: new Date(time) });
  try {
    return new JinjaTemplateChatWrapper({ template: TEMPLATE });
  } finally {
    vi.useRealTimers();
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe("a Jinja wrapper whose settings hold the time it was built at", () => {
  it("holds it (the case is real), and two builds at two times are described alike", () => {
    const [a, b] = [builtAt("2001-02-03T04:05:00Z"), builtAt("2002-03-04T05:06:00Z")];
    expect(a.usingJinjaFunctionCallTemplate).toBe(true);
    expect(JSON.stringify(a.settings)).not.toBe(JSON.stringify(b.settings));
    expect(describeJinjaWrapper(a)).toBe(describeJinjaWrapper(b));
  });

  it("has a shape worker started at another time taken as the engine's", async () => {
    const engine = describeJinjaWrapper(builtAt("2001-02-03T04:05:00Z"));
    const renderer = await startShapeRenderer(model(), new AbortController().signal, engine);
    try {
      expect(wrapperDifference(engine, renderer.description)).toBeNull();
    } finally {
      renderer.end();
    }
  });
});
