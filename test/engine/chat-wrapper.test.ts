/**
 * enclave/engine/chat-wrapper.ts, the chat wrapper's choice as the engine makes it (planChatWrapperFor,
 * through chooseFor): the chat wrapper is the one node-llama-cpp's
 * "auto" resolution chooses (the same class and settings, formatting the same bytes), without auto's
 * trial of every specialized wrapper on this thread (seconds of blocked event loop):
 * - for each model models/ makes (the tiny model, every benchmark preset and quantisation), built
 *   directly;
 * - for an operator's model (the tiny vocabulary under other templates: one no specialized wrapper
 *   matches, one a specialized wrapper matches as it is, one it matches with options of its own),
 *   resolved on a worker thread and built here by name;
 * - for a template node-llama-cpp's Jinja engine cannot render, auto's answer from the model's names
 *   and tokens, built here without its trial; without a template, resolved here by auto, as before;
 * - a worker whose tokenizer call fails here, or would be longer than its bound, gives no answer
 *   (the choice is refused, nothing run here), and an abort while it waits for one ends it;
 * - a worker that allocates without end is stopped at its own heap's limit (refused);
 * - a Jinja wrapper the worker chose that fails here is refused, not replaced by auto's trial here;
 * - a choice past its limit is refused at once, even while its worker's end is still under way.
 * The models are loaded from their header alone (vocabulary only): the wrapper depends on the
 * metadata, not on the weights.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import {
  type ChatHistoryItem,
  type ChatWrapper,
  chatWrappers,
  getLlama,
  type Llama,
  LlamaLogLevel,
  type LlamaModel,
  resolvableChatWrapperTypeNames,
  resolveChatWrapper,
  specializedChatWrapperTypeNames,
} from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { ChooseChatWrapperOptions } from "../../enclave/engine/chat-wrapper.ts";
import type { EngineError } from "../../enclave/engine/errors.ts";
import { CHAT_WRAPPERS, type ChatWrapperChoice } from "../../manifests/schema.ts";
import { BENCH_PRESETS, type BenchPreset, type BenchQuant, benchShape, buildBenchVocab } from "../../models/bench.ts";
import type { GgufMetadata } from "../../models/gguf-write.ts";
import { writeGguf } from "../../models/gguf-write.ts";
import { llamaMetadata } from "../../models/llama-layout.ts";
import { buildTinyBigram, tinyShape, writeTinyModel } from "../../models/tiny.ts";
import { TokenType } from "../../models/tiny-vocab.ts";
import { chooseFor } from "./chat-wrapper-choose.ts";

const OPTION_CONFIGURATIONS = "_getOptionConfigurationsToTestIfCanSupersedeJinjaTemplate";

// resolveChatWrapper as the engine calls it, watched: which resolution it asked for.
vi.mock("node-llama-cpp", async (importOriginal) => {
  const real = await importOriginal<typeof import("node-llama-cpp")>();
  return { ...real, resolveChatWrapper: vi.fn(real.resolveChatWrapper) };
});

const HISTORIES: readonly (readonly ChatHistoryItem[])[] = [
  [
    { type: "user", text: "The enclave" },
    { type: "model", response: [] },
  ],
  [
    { type: "system", text: "Answer briefly." },
    { type: "user", text: "What is sealed?" },
    { type: "model", response: ["The prompt, to the attested key."] },
    { type: "user", text: "And the answer?\nSealed too." },
    { type: "model", response: [] },
  ],
];

/**
 * An operator's model: the tiny model's vocabulary (with `special` added as control tokens) under a
 * chat template written for this test in a well-known format (null: none), what node-llama-cpp's
 * auto resolution makes of it (checked below, so a node-llama-cpp that changes it is seen here), and
 * what this thread is asked to resolve: a wrapper built by name (never auto's trial of every
 * wrapper), or auto itself where the worker cannot decide as this thread would.
 */
type OperatorModel = {
  name: string;
  template: string | null;
  special?: readonly string[];
  auto: string;
  calls: unknown[];
};

const UNRENDERABLE =
  "{% for message in messages %}{% for part in message.parts %}{{ part }}{% endfor %}" +
  "{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}";

/** A template node-llama-cpp's Jinja engine renders for hours (10^10 turns of an empty loop). */
const ENDLESS =
  "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}" +
  "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}";

/**
 * A template that allocates without end (each turn keeps another array of a million entries, 8 MB):
 * its worker grows until its heap's limit stops it.
 */
const ALLOCATING =
  "{% set ns = namespace(big=[0], keep=[]) %}{% for i in range(20) %}{% set ns.big = ns.big + ns.big %}{% endfor %}" +
  "{% for i in range(1000000) %}{% set ns.keep = ns.keep + [ns.big + [i]] %}{% endfor %}" +
  "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}";

/** A template whose every rendering is 2 Mi characters long (16 characters doubled 17 times), cheaply. */
const LONG_OUTPUT =
  "{% set ns = namespace(text='0123456789abcdef') %}{% for i in range(17) %}{% set ns.text = ns.text ~ ns.text %}" +
  "{% endfor %}{{ ns.text }}" +
  "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}";

const OPERATOR_MODELS: readonly OperatorModel[] = [
  {
    // No specialized wrapper formats it: auto tries every one, then takes the Jinja wrapper.
    name: "question-reply",
    template:
      "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}" +
      "{{ message['content'] + '\\n\\n' }}{% elif message['role'] == 'user' %}" +
      "{{ '### Question:\\n' + message['content'] + '\\n\\n' }}{% else %}" +
      "{{ '### Reply:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}{% endfor %}" +
      "{% if add_generation_prompt %}{{ '### Reply:\\n' }}{% endif %}",
    auto: "JinjaTemplateChatWrapper",
    calls: [{ type: "jinjaTemplate", fallbackToOtherWrappersOnJinjaError: false }],
  },
  {
    // ChatML: the ChatML wrapper, which has no options.
    name: "chatml",
    template:
      "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + " +
      "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    auto: "ChatMLChatWrapper",
    calls: [{ type: "chatML", customWrapperSettings: { chatML: {} } }],
  },
  {
    // Llama 2's [INST] format with a space before the end of each answer: the Llama 2 wrapper with
    // its option addSpaceBeforeEos set (unset by default).
    name: "inst-space-eos",
    template:
      "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}" +
      "{% set turns = messages[1:] %}{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}" +
      "{% for message in turns %}{% if message['role'] == 'user' %}" +
      "{% if loop.first and system != '' %}" +
      "{% set text = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
      "{% else %}{% set text = message['content'] %}{% endif %}" +
      "{{ bos_token + '[INST] ' + text | trim + ' [/INST]' }}" +
      "{% else %}{{ ' ' + message['content'] | trim + ' ' + eos_token }}{% endif %}{% endfor %}",
    auto: "Llama2ChatWrapper",
    calls: [{ type: "llama2Chat", customWrapperSettings: { llama2Chat: { addSpaceBeforeEos: true } } }],
  },
  {
    // Llama 3.1's header format, dated by the renderer's date_string: the Llama 3.1 wrapper, matched
    // by the configuration that passes that date, built with the knowledge date it applies.
    name: "llama-3.1",
    special: ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"],
    template:
      "{{ bos_token + '<|start_header_id|>system<|end_header_id|>\\n\\n' }}" +
      "{{ 'Cutting Knowledge Date: December 2023\\nToday Date: ' + date_string + '\\n\\n' }}" +
      "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] | trim }}" +
      "{% set turns = messages[1:] %}{% else %}{% set turns = messages %}{% endif %}{{ '<|eot_id|>' }}" +
      "{% for message in turns %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + " +
      "message['content'] | trim + '<|eot_id|>' }}{% endfor %}" +
      "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
    auto: "Llama3_1ChatWrapper",
    calls: [
      {
        type: "llama3.1",
        customWrapperSettings: { "llama3.1": { cuttingKnowledgeDate: new Date("2023-12-01T00:00:00Z") } },
      },
    ],
  },
  {
    // Iterates a field no message has: node-llama-cpp's Jinja engine fails it, so auto tries every
    // specialized wrapper, fails the Jinja one, and answers from the model's tokens (its BOS). The
    // worker runs that trial; this thread only the answer from the names and tokens (noJinja, no trial).
    name: "unrenderable",
    template: UNRENDERABLE,
    auto: "Llama2ChatWrapper",
    calls: [{ type: "auto", noJinja: true }],
  },
  // Without a template auto has nothing to try: it answers from the model's tokens, here.
  { name: "no template", template: null, auto: "Llama2ChatWrapper", calls: [{ type: "auto" }] },
];

let dir: string;
let llama: Llama;
const ownModels: { name: string; path: string }[] = [];
const operatorPaths = new Map<string, string>();

/** An operator's model's header (vocabulary, no weights): see OperatorModel. */
function operatorMetadata({ template, special = [] }: OperatorModel): GgufMetadata {
  const { vocab: tiny } = buildTinyBigram();
  const vocab = {
    tokens: [...tiny.tokens, ...special],
    scores: [...tiny.scores, ...special.map(() => 0)],
    types: [...tiny.types, ...special.map(() => TokenType.CONTROL)],
    index: tiny.index,
  };
  return llamaMetadata({ ...tinyShape(vocab.tokens.length), name: "operator-model" }, vocab).flatMap(
    ([key, value]): GgufMetadata =>
      key !== "tokenizer.chat_template"
        ? [[key, value]]
        : template === null
          ? []
          : [[key, { type: "STRING", value: template }]],
  );
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-chat-wrapper-test-"));
  const tiny = join(dir, "tiny.gguf");
  await writeTinyModel(tiny);
  ownModels.push({ name: "tiny", path: tiny });
  for (const preset of Object.keys(BENCH_PRESETS) as BenchPreset[]) {
    for (const quant of ["f16", "q8_0"] as BenchQuant[]) {
      const path = join(dir, `bench-${preset}-${quant}.gguf`);
      const vocab = buildBenchVocab(BENCH_PRESETS[preset].vocab);
      await writeGguf(path, llamaMetadata(benchShape(preset, quant), vocab), []);
      ownModels.push({ name: `bench ${preset} ${quant}`, path });
    }
  }
  for (const [i, operator] of OPERATOR_MODELS.entries()) {
    const path = join(dir, `operator-${i}.gguf`);
    await writeGguf(path, operatorMetadata(operator), []);
    operatorPaths.set(operator.name, path);
  }
  // Templates auto never chooses for (their choice is refused): loaded by the tests that use them.
  for (const [name, template] of [
    ["endless", ENDLESS],
    ["allocating", ALLOCATING],
    ["long output", LONG_OUTPUT],
  ] as const) {
    const path = join(dir, `operator-${name.replace(/ /g, "-")}.gguf`);
    await writeGguf(path, operatorMetadata({ name, template, auto: "none", calls: [] }), []);
    operatorPaths.set(name, path);
  }
  // Silent: llama.cpp logs a "missing tensor" error for a header-only file, then loads its vocabulary.
  llama = await getLlama({ gpu: false, build: "never", progressLogs: false, logLevel: LlamaLogLevel.disabled });
}, 120_000);

afterAll(async () => {
  await llama?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** What auto chose and what was chosen are the same: class, name, settings, and the bytes they format. */
function expectSameWrapper(name: string, model: LlamaModel, chosen: ChatWrapper, auto: ChatWrapper): void {
  expect({ name, class: chosen.constructor.name, wrapperName: chosen.wrapperName }).toEqual({
    name,
    class: auto.constructor.name,
    wrapperName: auto.wrapperName,
  });
  expect(chosen.settings).toEqual(auto.settings);
  for (const chatHistory of HISTORIES) {
    const expected = auto.generateContextState({ chatHistory: [...chatHistory] });
    const found = chosen.generateContextState({ chatHistory: [...chatHistory] });
    expect(found.contextText.toJSON()).toEqual(expected.contextText.toJSON());
    expect(found.contextText.toString()).toBe(expected.contextText.toString());
    expect(found.stopGenerationTriggers.map((t) => t.toJSON())).toEqual(
      expected.stopGenerationTriggers.map((t) => t.toJSON()),
    );
    expect(model.tokenize(found.contextText.toString(), true)).toEqual(
      model.tokenize(expected.contextText.toString(), true),
    );
  }
}

/** The second argument of each resolveChatWrapper call on this thread since the last clear. */
function resolutionsAskedFor(): unknown[] {
  return vi.mocked(resolveChatWrapper).mock.calls.map((call) => (call as unknown[])[1]);
}

/**
 * `model` whose tokenizer (each of its calls) runs `before` first, given the call's first argument:
 * what the worker asks this thread for.
 */
function watchedTokenizer(model: LlamaModel, before: (first: unknown) => void): LlamaModel {
  const real = model.tokenizer;
  const watched =
    <A extends unknown[], R>(call: (...args: A) => R) =>
    (...args: A): R => {
      before(args[0]);
      return call(...args);
    };
  const tokenizer = Object.assign(watched(real), {
    detokenize: watched(real.detokenize),
    isSpecialToken: watched(real.isSpecialToken),
    isEogToken: watched(real.isEogToken),
  });
  return new Proxy(model, {
    get: (target, key) => (key === "tokenizer" ? tokenizer : Reflect.get(target, key, target)),
  });
}

/** Runs `use` on the operator's model `name` (OPERATOR_MODELS), loaded from its header, then disposes of it. */
async function withOperatorModel(name: string, use: (model: LlamaModel) => Promise<void>): Promise<void> {
  const model = await llama.loadModel({ modelPath: operatorPaths.get(name) as string, gpuLayers: 0, vocabOnly: true });
  try {
    await use(model);
  } finally {
    await model.dispose();
  }
}

/** The choice's refusal of a choice that runs past its limit: its code, message, the workers ended, what ran here. */
async function endedByLimit(model: LlamaModel, options: ChooseChatWrapperOptions) {
  const ended = vi.spyOn(Worker.prototype, "terminate");
  try {
    vi.mocked(resolveChatWrapper).mockClear();
    const error = await chooseFor(model, options).catch((e: unknown) => e);
    return {
      code: (error as EngineError).code,
      message: (error as Error).message,
      ended: ended.mock.calls.length,
      calls: resolutionsAskedFor(),
    };
  } finally {
    ended.mockRestore();
  }
}

describe("the chat wrapper's choice", () => {
  it("chooses auto's wrapper for every model models/ makes, formatting the same bytes, without auto's trial of every wrapper", async () => {
    expect(ownModels).toHaveLength(7);
    for (const { name, path } of ownModels) {
      const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, vocabOnly: true });
      try {
        const auto = resolveChatWrapper(model);
        vi.mocked(resolveChatWrapper).mockClear();
        const chosen = await chooseFor(model);
        // auto tries each specialized wrapper (seconds of blocked event loop); the known template
        // asks for the Jinja wrapper directly. What was asked for, not a time: the machine is shared.
        expect({ name, calls: resolutionsAskedFor() }).toEqual({ name, calls: [{ type: "jinjaTemplate" }] });
        expect(chosen.constructor.name).toBe("JinjaTemplateChatWrapper");
        expectSameWrapper(name, model, chosen, auto);
      } finally {
        await model.dispose();
      }
    }
  }, 300_000);

  it("chooses auto's wrapper for an operator's model, resolving on another thread what auto would try on this one", async () => {
    const quiet = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      for (const operator of OPERATOR_MODELS) {
        const { name } = operator;
        const model = await llama.loadModel({
          modelPath: operatorPaths.get(name) as string,
          gpuLayers: 0,
          vocabOnly: true,
        });
        try {
          const auto = resolveChatWrapper(model);
          vi.mocked(resolveChatWrapper).mockClear();
          const chosen = await chooseFor(model);
          expect({ name, auto: auto.constructor.name, calls: resolutionsAskedFor() }).toEqual({
            name,
            auto: operator.auto,
            calls: operator.calls,
          });
          expectSameWrapper(name, model, chosen, auto);
        } finally {
          await model.dispose();
        }
      }
    } finally {
      quiet.mockRestore();
    }
  }, 300_000);

  it("builds the chat wrapper a manifest pins by name, whatever auto would choose, and refuses a Jinja template it cannot have", async () => {
    const load = (name: string) =>
      llama.loadModel({ modelPath: operatorPaths.get(name) as string, gpuLayers: 0, vocabOnly: true });
    const pinned = async (name: string, choice: ChatWrapperChoice) => {
      const model = await load(name);
      try {
        vi.mocked(resolveChatWrapper).mockClear();
        const wrapper = await chooseFor(model, { choice }).catch((error: unknown) => error);
        return {
          found: wrapper instanceof Error ? (wrapper as EngineError).code : (wrapper as ChatWrapper).constructor.name,
          calls: resolutionsAskedFor(),
        };
      } finally {
        await model.dispose();
      }
    };
    // auto: the Jinja wrapper (no specialized one matches); pinned, the one named.
    expect(await pinned("question-reply", "chatML")).toEqual({
      found: "ChatMLChatWrapper",
      calls: [{ type: "chatML" }],
    });
    // auto: the ChatML wrapper; pinned, the model's own template, rendered as written.
    const jinja = { type: "jinjaTemplate", fallbackToOtherWrappersOnJinjaError: false };
    expect(await pinned("chatml", "jinjaTemplate")).toEqual({ found: "JinjaTemplateChatWrapper", calls: [jinja] });
    // Refused, not replaced by what auto would choose (which the operator did not sign), and not
    // rendered again here: the worker's failure is the refusal's cause.
    expect(await pinned("unrenderable", "jinjaTemplate")).toEqual({ found: "CHAT_WRAPPER_UNAVAILABLE", calls: [] });
    expect(await pinned("no template", "jinjaTemplate")).toEqual({ found: "CHAT_WRAPPER_UNAVAILABLE", calls: [] });
  }, 120_000);

  it("offers node-llama-cpp's chat wrappers by their names, but the one that needs a template of its own", () => {
    expect(CHAT_WRAPPERS).toEqual(["auto", "jinjaTemplate", ...specializedChatWrapperTypeNames]);
    expect(
      resolvableChatWrapperTypeNames.filter((name) => !(CHAT_WRAPPERS as readonly string[]).includes(name)),
    ).toEqual(["template"]);
  });

  it(
    "stops a resolution under way on the worker when its signal aborts, with the signal's reason",
    () =>
      withOperatorModel("question-reply", async (model) => {
        vi.mocked(resolveChatWrapper).mockClear();
        const stop = new AbortController();
        const choosing = chooseFor(model, { signal: stop.signal });
        stop.abort("SIGTERM");
        await expect(choosing).rejects.toBe("SIGTERM");
        expect(resolutionsAskedFor()).toEqual([]);
        const stopped = new AbortController();
        stopped.abort("SIGINT");
        await expect(chooseFor(model, { signal: stopped.signal })).rejects.toBe("SIGINT");
      }),
    120_000,
  );

  it(
    "a tokenizer call that fails on this thread ends the worker's resolution without an answer: refused (CHAT_WRAPPER_FAILED), not made here",
    () =>
      withOperatorModel("chatml", async (model) => {
        let failed = false;
        const failingOnce = watchedTokenizer(model, () => {
          if (failed) return;
          failed = true;
          throw new Error("tokenizer failed");
        });
        vi.mocked(resolveChatWrapper).mockClear();
        const error = await chooseFor(failingOnce).catch((e: unknown) => e);
        // The worker's first call failed; auto did not run here (with a template that loops, it
        // would block this thread for good).
        expect({
          failed,
          code: (error as EngineError).code,
          message: (error as Error).message,
          calls: resolutionsAskedFor(),
        }).toEqual({
          failed: true,
          code: "CHAT_WRAPPER_FAILED",
          message:
            "manifest field model.chatWrapper: \"auto\" expected node-llama-cpp's choice of chat wrapper for the model's chat template (tokenizer.chat_template) from its worker thread, found none (the model's tokenizer failed on the enclave's thread); pin a chat wrapper",
          calls: [],
        });
      }),
    120_000,
  );

  it(
    "stops a resolution when its signal aborts while the worker waits for this thread's tokenizer",
    () =>
      withOperatorModel("chatml", async (model) => {
        const stop = new AbortController();
        let asked = 0;
        const aborting = watchedTokenizer(model, () => {
          asked += 1;
          stop.abort("SIGTERM");
        });
        vi.mocked(resolveChatWrapper).mockClear();
        await expect(chooseFor(aborting, { signal: stop.signal })).rejects.toBe("SIGTERM");
        // The worker was asked one call's answer, then ended: nothing resolved here, nothing asked again.
        expect({ asked, calls: resolutionsAskedFor() }).toEqual({ asked: 1, calls: [] });
      }),
    120_000,
  );
  it(
    "a template node-llama-cpp's Jinja engine cannot render: auto's trial runs once (on the worker), and nothing is printed here",
    () =>
      withOperatorModel("unrenderable", async (model) => {
        // Each specialized wrapper's option configurations, asked for once per trial of that wrapper.
        const trials = specializedChatWrapperTypeNames.flatMap((type) =>
          Object.hasOwn(chatWrappers[type], OPTION_CONFIGURATIONS)
            ? [vi.spyOn(chatWrappers[type] as unknown as Record<string, () => unknown>, OPTION_CONFIGURATIONS)]
            : [],
        );
        const printed = vi.spyOn(console, "error").mockImplementation(() => {});
        const written = vi.spyOn(process.stderr, "write");
        try {
          expect(trials.length).toBeGreaterThan(5);
          vi.mocked(resolveChatWrapper).mockClear();
          const chosen = await chooseFor(model);
          expect({
            calls: resolutionsAskedFor(),
            trialsHere: trials.reduce((sum, trial) => sum + trial.mock.calls.length, 0),
            printed: printed.mock.calls.length,
            written: written.mock.calls.filter(([chunk]) => String(chunk).includes("Jinja")),
          }).toEqual({ calls: [{ type: "auto", noJinja: true }], trialsHere: 0, printed: 0, written: [] });
          const auto = resolveChatWrapper(model);
          // auto itself, on this thread, prints node-llama-cpp's notice (so the check above can fail).
          expect(printed.mock.calls.length).toBeGreaterThan(0);
          expectSameWrapper("unrenderable", model, chosen, auto);
        } finally {
          written.mockRestore();
          printed.mockRestore();
          for (const trial of trials) trial.mockRestore();
        }
      }),
    120_000,
  );

  it(
    "a resolution that does not end within its limit is refused (CHAT_WRAPPER_TIMEOUT), its worker ended, nothing run here",
    () =>
      withOperatorModel("endless", async (model) => {
        expect(await endedByLimit(model, { limitMs: 200 })).toEqual({
          code: "CHAT_WRAPPER_TIMEOUT",
          message:
            "manifest field model.chatWrapper: \"auto\" expected node-llama-cpp's choice of chat wrapper for the model's chat template (tokenizer.chat_template) within 200 ms, found it still running; pin a chat wrapper",
          ended: 1,
          calls: [],
        });
      }),
    120_000,
  );

  it(
    'a pinned "jinjaTemplate" is rendered first on the worker, within the same limit: one that never ends is refused (CHAT_WRAPPER_TIMEOUT), its worker ended, nothing rendered here',
    () =>
      withOperatorModel("endless", async (model) => {
        expect(await endedByLimit(model, { choice: "jinjaTemplate", limitMs: 200 })).toEqual({
          code: "CHAT_WRAPPER_TIMEOUT",
          message:
            "manifest field model.chatWrapper: \"jinjaTemplate\" expected the model's chat template (tokenizer.chat_template) rendered by node-llama-cpp's Jinja engine within 200 ms, found it still rendering; pin another chat wrapper",
          ended: 1,
          calls: [],
        });
      }),
    // Before the worker rendered it, the template was rendered here, blocking this thread for hours.
    60_000,
  );

  it(
    "a choice past its limit is refused at once, while its worker's end is still under way (terminate() not settled)",
    () =>
      withOperatorModel("endless", async (model) => {
        const terminate = Worker.prototype.terminate;
        let release!: () => void;
        const released = new Promise<void>((resolve) => {
          release = resolve;
        });
        let asked!: () => void;
        const terminating = new Promise<void>((resolve) => {
          asked = resolve;
        });
        // A worker whose end does not come until released (as one stuck in native code): ended then.
        const held = vi.spyOn(Worker.prototype, "terminate").mockImplementation(function (this: Worker) {
          asked();
          return released.then(() => terminate.call(this));
        });
        try {
          const choosing = chooseFor(model, { limitMs: 200 }).then(
            () => "chosen",
            (error: unknown) => (error as EngineError).code,
          );
          await terminating;
          // Ordered, not timed: the refusal's promise chain has run by the next turn of the loop.
          const turn = new Promise<string>((resolve) => setImmediate(() => resolve("still waiting for terminate()")));
          expect({ first: await Promise.race([choosing, turn]), ended: held.mock.calls.length }).toEqual({
            first: "CHAT_WRAPPER_TIMEOUT",
            ended: 1,
          });
        } finally {
          release();
          held.mockRestore();
        }
      }),
    60_000,
  );

  it(
    "a template that allocates without end stops its worker at the worker's heap limit: refused (CHAT_WRAPPER_FAILED), the process not grown to its own heap's size",
    () =>
      withOperatorModel("allocating", async (model) => {
        vi.mocked(resolveChatWrapper).mockClear();
        // The process's peak memory (KiB): a count, not a time. Without a limit of its own, the
        // worker grows to the process's heap limit (about 4 GiB here) before it is stopped.
        const before = process.resourceUsage().maxRSS;
        const error = await chooseFor(model).catch((e: unknown) => e);
        const grownKiB = process.resourceUsage().maxRSS - before;
        expect({
          code: (error as EngineError).code,
          message: (error as Error).message,
          cause: ((error as Error).cause as Error | undefined)?.message,
          calls: resolutionsAskedFor(),
          grownUnder1GiB: grownKiB < 1024 * 1024,
        }).toEqual({
          code: "CHAT_WRAPPER_FAILED",
          message:
            "manifest field model.chatWrapper: \"auto\" expected node-llama-cpp's choice of chat wrapper for the model's chat template (tokenizer.chat_template) from its worker thread, found none (the worker ran out of memory: its heap is limited to 256 MB); pin a chat wrapper",
          cause: "Worker terminated due to reaching memory limit: JS heap out of memory",
          calls: [],
          grownUnder1GiB: true,
        });
      }),
    120_000,
  );

  it(
    "a tokenizer call longer than its bound is not made on this thread: refused (CHAT_WRAPPER_FAILED), the worker's rendering not tokenized here",
    () =>
      withOperatorModel("long output", async (model) => {
        // The longest text (or token list) this thread's tokenizer was asked for.
        let longest = 0;
        const measured = watchedTokenizer(model, (first) => {
          longest = Math.max(longest, (first as { length?: number }).length ?? 0);
        });
        vi.mocked(resolveChatWrapper).mockClear();
        const error = await chooseFor(measured).catch((e: unknown) => e);
        expect({
          code: (error as EngineError).code,
          message: (error as Error).message,
          calls: resolutionsAskedFor(),
          longestUnderBound: longest <= 1024 * 1024,
        }).toEqual({
          code: "CHAT_WRAPPER_FAILED",
          message:
            "manifest field model.chatWrapper: \"auto\" expected node-llama-cpp's choice of chat wrapper for the model's chat template (tokenizer.chat_template) from its worker thread, found none (node-llama-cpp asked the enclave's thread to tokenize more than 1048576 characters or tokens at once); pin a chat wrapper",
          calls: [],
          longestUnderBound: true,
        });
      }),
    120_000,
  );

  it(
    "a Jinja wrapper the worker chose that fails on this thread is refused (CHAT_WRAPPER_FAILED), not replaced by auto's trial here",
    () =>
      withOperatorModel("question-reply", async (model) => {
        // The worker's calls succeed; once this thread builds the wrapper, the tokenizer fails (as
        // the build can where the worker's did not: this thread's stack is a quarter of the worker's).
        let building = false;
        const failingHere = watchedTokenizer(model, () => {
          if (building) throw new Error("tokenizer failed");
        });
        const actual = await vi.importActual<typeof import("node-llama-cpp")>("node-llama-cpp");
        const trials = specializedChatWrapperTypeNames.flatMap((type) =>
          Object.hasOwn(chatWrappers[type], OPTION_CONFIGURATIONS)
            ? [vi.spyOn(chatWrappers[type] as unknown as Record<string, () => unknown>, OPTION_CONFIGURATIONS)]
            : [],
        );
        const printed = vi.spyOn(console, "error").mockImplementation(() => {});
        try {
          vi.mocked(resolveChatWrapper).mockClear();
          vi.mocked(resolveChatWrapper).mockImplementationOnce((...args) => {
            building = true;
            return actual.resolveChatWrapper(...args);
          });
          const error = await chooseFor(failingHere).catch((e: unknown) => e);
          expect({
            code: (error as EngineError).code,
            message: (error as Error).message,
            cause: ((error as Error).cause as Error | undefined)?.message,
            calls: resolutionsAskedFor(),
            trialsHere: trials.reduce((sum, trial) => sum + trial.mock.calls.length, 0),
          }).toEqual({
            code: "CHAT_WRAPPER_FAILED",
            message:
              "manifest field model.chatWrapper: \"auto\" expected node-llama-cpp's choice of chat wrapper for the model's chat template (tokenizer.chat_template) from its worker thread, found none (the Jinja wrapper it chose failed on the enclave's thread); pin a chat wrapper",
            cause: "tokenizer failed",
            calls: [{ type: "jinjaTemplate", fallbackToOtherWrappersOnJinjaError: false }],
            trialsHere: 0,
          });
        } finally {
          printed.mockRestore();
          for (const trial of trials) trial.mockRestore();
        }
      }),
    120_000,
  );
});
