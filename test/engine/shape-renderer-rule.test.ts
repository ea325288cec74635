/**
 * enclave/engine/chat-wrapper.ts startShapeRenderer: the real shape worker's rule, one shape at a
 * time. A render begun while another is under way (which engine/template-shapes.ts never does: its
 * queue sends one at a time) rejects, a bug the caller handles (template-shapes-render-rejects.test.ts:
 * the worker ended, the shape's requests ENGINE_BUSY), and leaves the render under way to its answer;
 * once the worker has ended, a render resolves "not sent". The order is made on purpose: both
 * renders are begun in one synchronous run, before the worker can answer the first.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startShapeRenderer } from "../../enclave/engine/chat-wrapper.ts";
import { writeTemplateModel } from "./template-model.ts";

const TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";

let dir: string;
let llama: Llama;
let model: LlamaModel;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-shape-renderer-rule-test-"));
  const path = join(dir, "plain-template.gguf");
  await writeTemplateModel(path, TEMPLATE);
  llama = await getLlama({ gpu: false, build: "never", progressLogs: false, logLevel: LlamaLogLevel.disabled });
  model = await llama.loadModel({ modelPath: path, gpuLayers: 0, vocabOnly: true });
});

afterAll(async () => {
  // Disposing llama.cpp's instance disposes its model too.
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe("the shape worker asked for a second shape while one renders", () => {
  it("rejects the second (a bug), answers the first, and answers a render after its end as not sent", async () => {
    const renderer = await startShapeRenderer(model, new AbortController().signal);
    try {
      const first = renderer.render("ua");
      const second = renderer.render("sua");
      await expect(second).rejects.toThrow(/expected one shape rendering at a time/);
      expect(await first).toEqual({ rendered: true });
      // The rule held again: the next shape renders on the same worker.
      expect(await renderer.render("sua")).toEqual({ rendered: true });
    } finally {
      renderer.end();
    }
    expect(await renderer.render("ua")).toEqual({ rendered: false, why: "the worker has ended", sent: false });
  });
});
