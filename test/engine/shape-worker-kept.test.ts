/**
 * An engine whose wrapper is a pinned "jinjaTemplate" of an operator's template renders its
 * conversation shapes on the boot's worker (ChatWrapperPlan.keptRenderer): the engine's wrapper and
 * the worker's are described alike (chat-wrapper.ts describeJinjaWrapper: both built by
 * node-llama-cpp from the same options, metadata and tokenizer), so the boot's worker is used, not
 * ended for a second one (TemplateShapes.for ends a kept worker whose wrapper differs). Counted by
 * the workers kept (each unreferenced once kept) and ended (terminate).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterAll, describe, expect, it, vi } from "vitest";
import type { InferenceEngine } from "../../enclave/engine.ts";
import { openTemplateEngine } from "./template-model.ts";

const TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";

const dir = await mkdtemp(join(tmpdir(), "cloister-shape-worker-kept-test-"));
let engine: InferenceEngine | undefined;

afterAll(async () => {
  await engine?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("an engine with a pinned jinjaTemplate of an operator's template", () => {
  it("renders a new shape on the boot's kept worker: one worker kept, none ended", async () => {
    const path = join(dir, "operator-template.gguf");
    const kept = vi.spyOn(Worker.prototype, "unref");
    const ended = vi.spyOn(Worker.prototype, "terminate");
    engine = await openTemplateEngine(path, TEMPLATE);
    const rendering = await engine.renderPrompt({ messages: [{ role: "user", content: "Hi" }] });
    expect(rendering.tokenCount).toBeGreaterThan(0);
    expect({ kept: kept.mock.calls.length, ended: ended.mock.calls.length }).toEqual({ kept: 1, ended: 0 });
    vi.restoreAllMocks();
  });
});
