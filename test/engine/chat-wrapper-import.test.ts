/**
 * enclave/engine/chat-wrapper.ts: the worker's import of node-llama-cpp (begun before the model
 * loads) is under the resolution's limit too. Here that import never ends (the module the worker
 * is given keeps its thread busy as it is evaluated): the choice, auto's or a pinned
 * "jinjaTemplate"'s, is refused at the limit (CHAT_WRAPPER_TIMEOUT), the worker ended, nothing
 * resolved or rendered on this thread.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { getLlama, LlamaLogLevel, resolveChatWrapper } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { chooseChatWrapper } from "../../enclave/engine/chat-wrapper.ts";
import type { EngineError } from "../../enclave/engine/errors.ts";
import { writeGguf } from "../../models/gguf-write.ts";
import { llamaMetadata } from "../../models/llama-layout.ts";
import { buildTinyBigram, tinyShape } from "../../models/tiny.ts";

const stuck = vi.hoisted(() => ({ path: "" }));

// The worker is given node-llama-cpp's entry point as chat-wrapper.ts resolves it: here, a module
// whose evaluation never ends.
vi.mock("node:module", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:module")>();
  const createRequire = (from: string | URL) => {
    const required = real.createRequire(from);
    return Object.assign((id: string) => required(id), required, {
      resolve: (id: string, options?: { paths?: string[] }) =>
        id === "node-llama-cpp" ? stuck.path : required.resolve(id, options),
    });
  };
  return { ...real, createRequire, default: { ...real, createRequire } };
});

vi.mock("node-llama-cpp", async (importOriginal) => {
  const real = await importOriginal<typeof import("node-llama-cpp")>();
  return { ...real, resolveChatWrapper: vi.fn(real.resolveChatWrapper) };
});

const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + " +
  "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

let dir: string;
let modelPath: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-chat-wrapper-import-test-"));
  stuck.path = join(dir, "never-imported.mjs");
  await writeFile(stuck.path, "for (;;) {}\n");
  // An operator's model (a template Cloister did not make): the tiny vocabulary, no weights.
  const { vocab } = buildTinyBigram();
  modelPath = join(dir, "operator.gguf");
  await writeGguf(
    modelPath,
    llamaMetadata({ ...tinyShape(vocab.tokens.length), name: "operator-model" }, vocab).map(([key, value]) =>
      key === "tokenizer.chat_template" ? [key, { type: "STRING", value: CHATML }] : [key, value],
    ),
    [],
  );
});

afterAll(() => rm(dir, { recursive: true, force: true }));

describe("the chat wrapper worker's import", () => {
  it("is under the resolution's limit: an import that never ends is refused at the limit (CHAT_WRAPPER_TIMEOUT), its worker ended", async () => {
    const llama = await getLlama({ gpu: false, build: "never", progressLogs: false, logLevel: LlamaLogLevel.disabled });
    const model = await llama.loadModel({ modelPath, gpuLayers: 0, vocabOnly: true });
    const ended = vi.spyOn(Worker.prototype, "terminate");
    try {
      for (const choice of ["auto", "jinjaTemplate"] as const) {
        ended.mockClear();
        vi.mocked(resolveChatWrapper).mockClear();
        const error = await chooseChatWrapper(model, { choice, limitMs: 300 }).catch((e: unknown) => e);
        expect({
          choice,
          code: (error as EngineError).code,
          ended: ended.mock.calls.length,
          calls: vi.mocked(resolveChatWrapper).mock.calls.length,
        }).toEqual({ choice, code: "CHAT_WRAPPER_TIMEOUT", ended: 1, calls: 0 });
      }
    } finally {
      ended.mockRestore();
      await model.dispose();
      await llama.dispose();
    }
  }, 60_000);
});
