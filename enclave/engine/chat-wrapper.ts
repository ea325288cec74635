/**
 * The chat wrapper of a loaded model: how a conversation is written into its prompt (its chat
 * template), chosen without blocking the event loop for seconds.
 *
 * node-llama-cpp's "auto" resolution (resolveChatWrapper) tries each of its specialized wrappers
 * against the model's Jinja template, rendering test conversations through several Jinja wrappers
 * for each, synchronously: a template that none of them matches pays for every try, and one that a
 * wrapper matches pays for the tries before it. At the end of every boot that blocked the enclave's
 * event loop (1-2 s on an idle 2-core machine, 2-7 s on a loaded one), the enclave answering nothing
 * meanwhile (health checks, /audit, attestation). A manifest can pin the wrapper (its
 * `model.chatWrapper`: manifests/schema.ts): it is then built by name, directly. Otherwise ("auto",
 * and every manifest without the field) the choice is made as follows:
 * - The template of the models Cloister makes (models/llama-layout.ts) gets the Jinja wrapper
 *   directly (about 0.1 s): the class auto chooses for it, formatting the same bytes
 *   (test/engine/chat-wrapper.test.ts checks both for each model models/ makes).
 * - A model without a template is resolved by auto here: without a template there is nothing to
 *   try, only its names and tokens to look at.
 * - Any other template is resolved by auto on a worker thread, which answers which wrapper auto
 *   chose and, for a specialized one, which of that wrapper's own option configurations matched the
 *   template; this thread then builds that wrapper by name with those options, which is what auto
 *   builds (the same class and settings). The worker does not load llama.cpp: its addon keeps
 *   process-wide state (the backend, the logger) that a second instance on another thread would
 *   replace or free. It asks this thread for the model's tokenizer instead, synchronously (about a
 *   hundred short calls, the worker keeping their answers, each a short task here). Where it cannot
 *   decide as auto on this thread would (a template that only llama.cpp's own Jinja engine renders,
 *   one no Jinja wrapper can render, after which auto answers from the model's names and tokens; or
 *   any failure of the worker), auto runs here, as before.
 *
 * What it checks: that a pinned "jinjaTemplate" has a template node-llama-cpp renders
 * (CHAT_WRAPPER_UNAVAILABLE otherwise); nothing else about the template: whether the chosen wrapper
 * suits the model is node-llama-cpp's judgement or the operator's, as before. The worker sees the
 * template, the model's metadata (less the vocabulary's arrays) and its tokenizer, never a prompt.
 *
 * Relies on node-llama-cpp 3.22 internals, which test/engine/chat-wrapper.test.ts pins against
 * auto's own answers: each specialized wrapper's
 * `_getOptionConfigurationsToTestIfCanSupersedeJinjaTemplate` (the option configurations auto tries,
 * in order; auto builds the matching one's options), and the `llama` option being touched only to
 * render a template with llama.cpp's Jinja engine.
 */
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from "node:worker_threads";
import {
  type ChatWrapper,
  chatWrappers,
  type GgufFileInfo,
  type LlamaModel,
  resolveChatWrapper,
  type SpecializedChatWrapperTypeName,
  specializedChatWrapperTypeNames,
  type Tokenizer,
} from "node-llama-cpp";
import type { ChatWrapperChoice } from "../../manifests/schema.ts";
import { CHAT_TEMPLATE } from "../../models/llama-layout.ts";
import { EngineError } from "./errors.ts";

export type ChooseChatWrapperOptions = {
  /**
   * The manifest's `model.chatWrapper` (manifests/schema.ts CHAT_WRAPPERS; default "auto"): any
   * other is built directly, by name, or refused (CHAT_WRAPPER_UNAVAILABLE) when it cannot be.
   */
  choice?: ChatWrapperChoice;
  /** Aborting stops a resolution under way on the worker and rejects with the signal's reason. */
  signal?: AbortSignal;
};

/** What the worker found auto to choose. "here": auto must run on this thread to know. */
type WorkerAnswer =
  | { kind: "jinjaTemplate" }
  | { kind: "specialized"; type: string; configuration: number }
  | { kind: "here" };

type TokenizerRequest = { op: "tokenize" | "detokenize" | "isSpecialToken" | "isEogToken"; args: unknown[] };

/** How long the worker waits for one tokenizer answer before it gives up (auto then runs here). */
const TOKENIZER_ANSWER_MS = 60_000;

const OPTION_CONFIGURATIONS = "_getOptionConfigurationsToTestIfCanSupersedeJinjaTemplate";

/**
 * The worker: auto resolution with this thread's tokenizer, watching which option configuration of
 * which specialized wrapper auto tries last (the one it builds when the wrapper matches), and whether
 * auto reaches for llama.cpp's own Jinja engine (`llama`, which it only touches to render a template
 * its JavaScript engine cannot: auto here would render it, the worker cannot).
 * `fallbackToOtherWrappersOnJinjaError: false`: a template no Jinja wrapper can render then throws
 * instead of falling back to the model's names, so a specialized answer always comes from the trial.
 */
const RESOLVE_WORKER = `
const { workerData, receiveMessageOnPort } = require("node:worker_threads");
const { url, port, answered, input, answerMs, optionConfigurations } = workerData;
let failed = false;
function ask(op, args) {
  if (failed) throw new Error("tokenizer: failed before");
  Atomics.store(answered, 0, 0);
  port.postMessage({ op, args });
  const waited = Atomics.wait(answered, 0, 0, answerMs);
  const reply = waited === "timed-out" ? undefined : receiveMessageOnPort(port);
  if (reply === undefined || !("value" in reply.message)) {
    failed = true;
    throw new Error("tokenizer: no answer");
  }
  return reply.message.value;
}
const tokenized = new Map();
const tokenizer = Object.assign(
  (text, specialTokens, options) => {
    const key = String(specialTokens) + "\\u0000" + String(options) + "\\u0000" + text;
    let tokens = tokenized.get(key);
    if (tokens === undefined) {
      tokens = ask("tokenize", [text, specialTokens, options]);
      tokenized.set(key, tokens);
    }
    return tokens.slice();
  },
  {
    detokenize: (tokens, specialTokens, lastTokens) => ask("detokenize", [tokens, specialTokens, lastTokens]),
    isSpecialToken: (token) => ask("isSpecialToken", [token]),
    isEogToken: (token) => ask("isEogToken", [token]),
  },
);
let nativeJinja = false;
const llama = new Proxy({}, {
  get() {
    nativeJinja = true;
    throw new Error("no llama.cpp on this thread");
  },
});
async function resolve() {
  const { resolveChatWrapper, chatWrappers, specializedChatWrapperTypeNames, JinjaTemplateChatWrapper } = await import(url);
  let tried = null;
  for (const type of specializedChatWrapperTypeNames) {
    const Wrapper = chatWrappers[type];
    const configurations = Wrapper[optionConfigurations];
    Object.defineProperty(Wrapper, optionConfigurations, {
      configurable: true,
      writable: true,
      value() {
        const list = configurations?.call(Wrapper) ?? [];
        return new Proxy(list, {
          get(target, key, receiver) {
            if (typeof key === "string" && /^(0|[1-9][0-9]*)$/.test(key)) tried = { type, configuration: Number(key) };
            return Reflect.get(target, key, receiver);
          },
        });
      },
    });
  }
  let wrapper;
  try {
    wrapper = resolveChatWrapper({
      ...input,
      tokenizer,
      llama,
      warningLogs: false,
      fallbackToOtherWrappersOnJinjaError: false,
    });
  } catch {
    return { kind: "here" };
  }
  if (failed || nativeJinja || wrapper == null) return { kind: "here" };
  if (wrapper.constructor === JinjaTemplateChatWrapper) return { kind: "jinjaTemplate" };
  if (tried !== null && wrapper.constructor === chatWrappers[tried.type]) return { kind: "specialized", ...tried };
  return { kind: "here" };
}
resolve().then(
  (answer) => port.postMessage({ answer }),
  () => port.postMessage({ answer: { kind: "here" } }),
);
`;

/**
 * The chat wrapper of `model`: the pinned choice, built by name, or (choice "auto") the one auto
 * resolution chooses, without running auto's trial of every specialized wrapper on this thread
 * where it can be avoided (see the module's comment).
 */
export async function chooseChatWrapper(
  model: LlamaModel,
  options: ChooseChatWrapperOptions = {},
): Promise<ChatWrapper> {
  options.signal?.throwIfAborted();
  const choice = options.choice ?? "auto";
  const template = model.fileInfo.metadata.tokenizer?.chat_template;
  if (choice !== "auto") return pinnedChatWrapper(model, choice, template);
  if (template === CHAT_TEMPLATE) return resolveChatWrapper(model, { type: "jinjaTemplate" });
  if (template === undefined || template.trim() === "") return resolveChatWrapper(model, { type: "auto" });
  const answer = await resolveOnWorker(model, options.signal);
  return buildAnswer(model, answer) ?? resolveChatWrapper(model, { type: "auto" });
}

/**
 * The wrapper the manifest names. Without a fallback: a Jinja template that cannot be rendered is
 * refused, not replaced by auto's choice (which the operator did not sign).
 */
function pinnedChatWrapper(
  model: LlamaModel,
  choice: Exclude<ChatWrapperChoice, "auto">,
  template: string | undefined,
): ChatWrapper {
  if (choice !== "jinjaTemplate") {
    const type = specializedType(choice);
    if (type === undefined) {
      throw new EngineError(
        "ENGINE_OPTIONS",
        `chatWrapper: expected one of node-llama-cpp's chat wrappers, found ${JSON.stringify(choice)}`,
      );
    }
    return resolveChatWrapper(model, { type });
  }
  if (template === undefined || template.trim() === "") {
    throw new EngineError(
      "CHAT_WRAPPER_UNAVAILABLE",
      'manifest field model.chatWrapper: "jinjaTemplate" expected a Jinja chat template in the model (tokenizer.chat_template), found none; pin another chat wrapper, or "auto"',
    );
  }
  try {
    return resolveChatWrapper(model, { type: "jinjaTemplate", fallbackToOtherWrappersOnJinjaError: false });
  } catch (error) {
    throw new EngineError(
      "CHAT_WRAPPER_UNAVAILABLE",
      'manifest field model.chatWrapper: "jinjaTemplate" expected a chat template node-llama-cpp\'s Jinja engine renders, found one it fails; pin another chat wrapper, or "auto"',
      { cause: error },
    );
  }
}

/** The wrapper the worker found, built here; null when it found none (auto must run here). */
function buildAnswer(model: LlamaModel, answer: WorkerAnswer): ChatWrapper | null {
  if (answer.kind === "jinjaTemplate") return resolveChatWrapper(model, { type: "jinjaTemplate" });
  if (answer.kind !== "specialized") return null;
  const type = specializedType(answer.type);
  if (type === undefined) return null;
  const settings = appliedOptions(type, answer.configuration);
  if (settings === null) return null;
  return resolveChatWrapper(model, { type, customWrapperSettings: { [type]: settings } });
}

/** `name` as node-llama-cpp's name of a specialized wrapper; undefined when it names none. */
function specializedType(name: string): SpecializedChatWrapperTypeName | undefined {
  return specializedChatWrapperTypeNames.find((type) => type === name);
}

/**
 * The options auto builds `type`'s wrapper with when its option configuration `index` matches the
 * template, as resolveChatWrapper takes them (3.22): a configuration is the options themselves or a
 * [tried, applied, Jinja options] triple; none listed means one, `{}`.
 */
function appliedOptions(type: SpecializedChatWrapperTypeName, index: number): Record<string, unknown> | null {
  const wrapper = chatWrappers[type] as unknown as Record<string, unknown>;
  const listed = wrapper[OPTION_CONFIGURATIONS];
  const configurations: unknown[] = typeof listed === "function" ? ((listed.call(wrapper) as unknown[]) ?? []) : [];
  if (configurations.length === 0) configurations.push({});
  const configuration = configurations[index];
  if (configuration === undefined) return null;
  const applied: unknown = Array.isArray(configuration) ? (configuration[1] ?? {}) : configuration;
  return { ...(applied as Record<string, unknown>) };
}

/** Runs auto resolution on a worker thread, answering its tokenizer calls from `model`. */
function resolveOnWorker(model: LlamaModel, signal: AbortSignal | undefined): Promise<WorkerAnswer> {
  const { port1, port2 } = new MessageChannel();
  const answered = new Int32Array(new SharedArrayBuffer(4));
  let worker: Worker;
  try {
    worker = new Worker(RESOLVE_WORKER, {
      eval: true,
      workerData: {
        url: nodeLlamaCppUrl(),
        port: port2,
        answered,
        input: resolutionInput(model),
        answerMs: TOKENIZER_ANSWER_MS,
        optionConfigurations: OPTION_CONFIGURATIONS,
      },
      transferList: [port2],
    });
  } catch {
    // No worker (its data could not be copied to it, no thread to be had): auto runs here.
    port1.close();
    return Promise.resolve({ kind: "here" });
  }
  const tokenizer = model.tokenizer;
  return new Promise<WorkerAnswer>((resolve, reject) => {
    let settled = false;
    const finish = (settle: () => void): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      port1.close();
      worker.terminate().then(settle, settle);
    };
    const onAbort = (): void => finish(() => reject(signal?.reason));
    signal?.addEventListener("abort", onAbort, { once: true });
    port1.on("message", (message: { answer: WorkerAnswer } | TokenizerRequest) => {
      if ("answer" in message) {
        finish(() => resolve(message.answer));
        return;
      }
      port1.postMessage(answerTokenizer(tokenizer, message));
      Atomics.store(answered, 0, 1);
      Atomics.notify(answered, 0);
    });
    // A worker that fails or ends without an answer: auto runs here, as before. Its answer may be
    // queued still when its end is told (its last message and its exit reach this thread apart).
    worker.on("error", () => finish(() => resolve({ kind: "here" })));
    worker.on("exit", () => {
      const answer = queuedAnswer(port1);
      finish(() => resolve(answer ?? { kind: "here" }));
    });
  });
}

function queuedAnswer(port: MessagePort): WorkerAnswer | null {
  for (let message = receiveMessageOnPort(port); message !== undefined; message = receiveMessageOnPort(port)) {
    const body = message.message as { answer?: WorkerAnswer };
    if (body.answer !== undefined) return body.answer;
  }
  return null;
}

function answerTokenizer(tokenizer: Tokenizer, { op, args }: TokenizerRequest): { value: unknown } | { failed: true } {
  try {
    const [first, second, third] = args as [never, never, never];
    if (op === "tokenize") return { value: tokenizer(first, second, third) };
    if (op === "detokenize") return { value: tokenizer.detokenize(first, second, third) };
    if (op === "isSpecialToken") return { value: tokenizer.isSpecialToken(first) };
    return { value: tokenizer.isEogToken(first) };
  } catch {
    return { failed: true };
  }
}

/**
 * What auto reads of a model besides its tokenizer, as resolveChatWrapper(model) gathers it: its BOS
 * text, architecture, file name and metadata. The metadata goes without the vocabulary's arrays
 * (tokenizer.ggml's tokens, scores, merges…), which auto does not read and which can hold hundreds of
 * thousands of entries to copy.
 */
function resolutionInput(model: LlamaModel): Record<string, unknown> {
  const { tokenizer, ...metadata } = model.fileInfo.metadata;
  const lean: Record<string, unknown> = { ...metadata };
  if (tokenizer !== undefined) {
    const { ggml, ...rest } = tokenizer;
    lean.tokenizer = {
      ...rest,
      ...(ggml === undefined
        ? {}
        : { ggml: Object.fromEntries(Object.entries(ggml).filter(([, v]) => !Array.isArray(v))) }),
    };
  }
  const fileInfo: Partial<GgufFileInfo> = { metadata: lean as GgufFileInfo["metadata"] };
  return {
    bosString: model.tokens.bosString,
    architecture: model.fileInfo.metadata.general?.architecture,
    filename: model.filename,
    fileInfo,
  };
}

/** node-llama-cpp's entry point, for the worker to import (an eval'd worker resolves no package names). */
function nodeLlamaCppUrl(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve("node-llama-cpp")).href;
}
