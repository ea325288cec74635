/**
 * enclave/engine/chat-wrapper.ts startShapeRenderer: the real shape worker's rule, one shape at a
 * time. A render begun while another is under way (which engine/template-shapes.ts never does: its
 * queue sends one at a time) rejects, a bug the caller handles (template-shapes-render-rejects.test.ts:
 * the worker ended, the shape's requests ENGINE_BUSY), and leaves the render under way to its answer;
 * once the worker has ended, a render resolves "not sent". The order is made on purpose: both
 * renders are begun in one synchronous run, before the worker can answer the first.
 */

import { JinjaTemplateChatWrapper } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { describeJinjaWrapper, startShapeRenderer } from "../../enclave/engine/chat-wrapper.ts";
import { useTemplateModel } from "./template-model.ts";

const TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";

const model = useTemplateModel(TEMPLATE);

/** The boot's wrapper (a pinned "jinjaTemplate" or auto's choice: node-llama-cpp's defaults), described. */
const BOOT_WRAPPER = describeJinjaWrapper(new JinjaTemplateChatWrapper({ template: TEMPLATE }));

describe("the shape worker asked for a second shape while one renders", () => {
  it("rejects the second (a bug), answers the first, and answers a render after its end as not sent", async () => {
    const renderer = await startShapeRenderer(model(), new AbortController().signal, BOOT_WRAPPER);
    try {
      const first = renderer.render("ua", true);
      const second = renderer.render("sua", true);
      await expect(second).rejects.toThrow(/expected one shape rendering at a time/);
      expect(await first).toEqual({ rendered: true });
      // The rule held again: the next shape renders on the same worker.
      expect(await renderer.render("sua", true)).toEqual({ rendered: true });
    } finally {
      renderer.end();
    }
    expect(await renderer.render("ua", true)).toEqual({ rendered: false, why: "the worker has ended", sent: false });
  });
});
