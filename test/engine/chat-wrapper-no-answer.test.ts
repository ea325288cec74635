/**
 * enclave/engine/chat-wrapper.ts: the chat wrapper's choice when its worker gives no answer. The
 * worker is given another module in node-llama-cpp's place (as chat-wrapper.ts resolves its entry
 * point): one whose import never ends, fails, ends the thread, crashes it, prints an error the
 * enclave does not know, or reaches for llama.cpp's Jinja engine (which the worker does not have).
 * The model's template loops node-llama-cpp's Jinja engine for hours where it can be rendered: on
 * this thread, resolveChatWrapper refuses to render it (it throws instead, so the test ends either
 * way). The choice, auto's or a pinned "jinjaTemplate"'s, is refused at the limit
 * (CHAT_WRAPPER_TIMEOUT) or at once (CHAT_WRAPPER_FAILED), or (auto, llama.cpp's engine) made from
 * the model's names and tokens without the template: never rendered here.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { getLlama, type Llama, LlamaLogLevel, type LlamaModel, resolveChatWrapper } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { EngineError } from "../../enclave/engine/errors.ts";
import { writeGguf } from "../../models/gguf-write.ts";
import { llamaMetadata } from "../../models/llama-layout.ts";
import { buildTinyBigram, tinyShape } from "../../models/tiny.ts";
import { chooseFor } from "./chat-wrapper-choose.ts";

const stub = vi.hoisted(() => ({ path: "", real: "" }));

// The worker is given node-llama-cpp's entry point as chat-wrapper.ts resolves it: here, `stub.path`.
vi.mock("node:module", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:module")>();
  const { pathToFileURL } = await import("node:url");
  stub.real = pathToFileURL(real.createRequire(import.meta.url).resolve("node-llama-cpp")).href;
  const createRequire = (from: string | URL) => {
    const required = real.createRequire(from);
    return Object.assign((id: string) => required(id), required, {
      resolve: (id: string, options?: { paths?: string[] }) =>
        id === "node-llama-cpp" ? stub.path : required.resolve(id, options),
    });
  };
  return { ...real, createRequire, default: { ...real, createRequire } };
});

/** A template node-llama-cpp's Jinja engine renders for hours (10^10 turns of an empty loop). */
const ENDLESS =
  "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}" +
  "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}";

const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + " +
  "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// resolveChatWrapper on this thread, watched: what it was asked for. It never renders the endless
// template here (that would block this thread for hours, the test with it): it throws instead. Only
// auto without its trial and Jinja wrapper (noJinja, no option configuration: see chat-wrapper.ts
// autoAfterTrial) leaves the template unrendered.
vi.mock("node-llama-cpp", async (importOriginal) => {
  const real = await importOriginal<typeof import("node-llama-cpp")>();
  const resolve = ((model: LlamaModel, options?: { type?: string; noJinja?: boolean }) => {
    const rendersNothing = options?.type === "auto" && options.noJinja === true;
    if (model.fileInfo.metadata.tokenizer?.chat_template === ENDLESS && !rendersNothing) {
      throw new Error("the endless template was about to be rendered on this thread");
    }
    return real.resolveChatWrapper(model, options as never);
  }) as typeof real.resolveChatWrapper;
  return { ...real, resolveChatWrapper: vi.fn(resolve) };
});

/** The modules the worker is given in node-llama-cpp's place (`real`: its entry point's URL). */
const MODULES = {
  "never imported": () => "for (;;) {}\n",
  failing: () => 'throw new Error("not this time");\n',
  ending: () => "process.exit(3);\n",
  crashing: () => 'setTimeout(() => { throw new Error("crashed"); });\nawait new Promise(() => {});\n',
  // node-llama-cpp, whose choice prints an error the enclave does not know before it chooses.
  printing: (real: string) =>
    `import * as real from ${JSON.stringify(real)};\nexport * from ${JSON.stringify(real)};\n` +
    'export function resolveChatWrapper(...args) { console.error("something else"); return real.resolveChatWrapper(...args); }\n',
  // node-llama-cpp, whose Jinja engine reaches for llama.cpp's (as for a template only it parses).
  "native Jinja": (real: string) =>
    `import * as real from ${JSON.stringify(real)};\nexport * from ${JSON.stringify(real)};\n` +
    "export function resolveChatWrapper(options, ...rest) {\n" +
    "  try { void options.llama?._bindings; } catch {}\n" +
    "  return real.resolveChatWrapper(options, ...rest);\n}\n",
} as const;

let dir: string;
let llama: Llama;
const models = new Map<string, LlamaModel>();
const modulePaths = new Map<string, string>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-chat-wrapper-no-answer-test-"));
  for (const [name, source] of Object.entries(MODULES)) {
    const path = join(dir, `${name.replace(/ /g, "-")}.mjs`);
    await writeFile(path, source(stub.real));
    modulePaths.set(name, path);
  }
  // Operators' models (templates Cloister did not make): the tiny vocabulary, no weights.
  llama = await getLlama({ gpu: false, build: "never", progressLogs: false, logLevel: LlamaLogLevel.disabled });
  const { vocab } = buildTinyBigram();
  for (const [name, template] of [
    ["endless", ENDLESS],
    ["chatml", CHATML],
  ]) {
    const path = join(dir, `operator-${name}.gguf`);
    await writeGguf(
      path,
      llamaMetadata({ ...tinyShape(vocab.tokens.length), name: "operator-model" }, vocab).map(([key, value]) =>
        key === "tokenizer.chat_template" ? [key, { type: "STRING", value: template as string }] : [key, value],
      ),
      [],
    );
    models.set(name as string, await llama.loadModel({ modelPath: path, gpuLayers: 0, vocabOnly: true }));
  }
}, 120_000);

afterAll(async () => {
  for (const model of models.values()) await model.dispose();
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/**
 * The choice with the worker given `module`: its wrapper or error's code, the workers ended, what
 * was asked here. Its limit is short for a module that never ends, and otherwise long enough for
 * the worker to import node-llama-cpp on a loaded machine.
 */
async function chosenWith(module: keyof typeof MODULES, model: string, choice: "auto" | "jinjaTemplate") {
  stub.path = modulePaths.get(module) as string;
  const ended = vi.spyOn(Worker.prototype, "terminate");
  try {
    vi.mocked(resolveChatWrapper).mockClear();
    const limitMs = module === "never imported" ? 300 : 60_000;
    const found = await chooseFor(models.get(model) as LlamaModel, { choice, limitMs }).then(
      (wrapper) => wrapper.constructor.name,
      (error: unknown) => (error as EngineError).code ?? (error as Error).message,
    );
    const calls = vi.mocked(resolveChatWrapper).mock.calls.map((call) => (call as unknown[])[1]);
    return { module, choice, found, ended: ended.mock.calls.length, calls };
  } finally {
    ended.mockRestore();
  }
}

describe("the chat wrapper's worker without an answer", () => {
  it("an import that never ends is under the resolution's limit: refused at the limit (CHAT_WRAPPER_TIMEOUT), its worker ended", async () => {
    for (const choice of ["auto", "jinjaTemplate"] as const) {
      expect(await chosenWith("never imported", "chatml", choice)).toEqual({
        module: "never imported",
        choice,
        found: "CHAT_WRAPPER_TIMEOUT",
        ended: 1,
        calls: [],
      });
    }
  }, 60_000);

  it("a worker that fails, ends, crashes or prints an unknown error: refused at once (CHAT_WRAPPER_FAILED), nothing rendered here", async () => {
    const cases = [
      ["failing", "endless"],
      ["ending", "endless"],
      ["crashing", "endless"],
      // A template that renders: with the endless one, the worker would be stopped by the limit first.
      ["printing", "chatml"],
    ] as const;
    for (const [module, model] of cases) {
      for (const choice of ["auto", "jinjaTemplate"] as const) {
        expect(await chosenWith(module, model, choice)).toEqual({
          module,
          choice,
          found: "CHAT_WRAPPER_FAILED",
          ended: 1,
          calls: [],
        });
      }
    }
  }, 120_000);

  it("says which, in its message, and keeps the worker's error as its cause", async () => {
    stub.path = modulePaths.get("ending") as string;
    const ended = await chooseFor(models.get("endless") as LlamaModel).catch((e: unknown) => e);
    expect((ended as Error).message).toBe(
      "manifest field model.chatWrapper: \"auto\" expected node-llama-cpp's choice of chat wrapper for the model's chat template (tokenizer.chat_template) from its worker thread, found none (the worker ended (exit code 3)); pin a chat wrapper",
    );
    stub.path = modulePaths.get("failing") as string;
    const failed = await chooseFor(models.get("endless") as LlamaModel, { choice: "jinjaTemplate" }).catch(
      (e: unknown) => e,
    );
    expect({ message: (failed as Error).message, cause: ((failed as Error).cause as Error).message }).toEqual({
      message:
        "manifest field model.chatWrapper: \"jinjaTemplate\" expected the model's chat template (tokenizer.chat_template) rendered by node-llama-cpp's Jinja engine on its worker thread, found no answer (node-llama-cpp failed on the worker); pin another chat wrapper",
      cause: "not this time",
    });
  }, 60_000);

  it("a template only llama.cpp's Jinja engine would render: auto chooses from the model's names and tokens, as without a Jinja engine, without rendering it", async () => {
    expect(await chosenWith("native Jinja", "endless", "auto")).toEqual({
      module: "native Jinja",
      choice: "auto",
      found: "Llama2ChatWrapper",
      ended: 1,
      calls: [{ type: "auto", noJinja: true }],
    });
  }, 60_000);
});
