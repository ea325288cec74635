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
 * `model.chatWrapper`: manifests/schema.ts): it is then built by name, directly, but for a pinned
 * "jinjaTemplate" other than Cloister's own: the worker below renders it first (the wrapper's
 * sanity test), within the same limit, and this thread builds it only then (a template that keeps
 * node-llama-cpp's JavaScript Jinja engine looping would otherwise block this thread for good). No
 * other pinned wrapper renders a template (node-llama-cpp 3.22 builds them from their options
 * alone). Otherwise ("auto",
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
 *   hundred short calls, the worker keeping their answers, each a short task here: one longer than
 *   TOKENIZER_CALL_MAX, or one that fails, ends the choice without an answer).
 * - A template no Jinja wrapper can render: auto tries every specialized wrapper (none can match a
 *   template that does not render), fails its Jinja wrapper, then answers from the model's names,
 *   the template's marks and the model's tokens. The worker runs the trial and sees the failure;
 *   this thread runs only that last part (autoAfterTrial), the worker's class confirming it.
 * - A template only llama.cpp's own Jinja engine parses (not node-llama-cpp's JavaScript one): the
 *   worker, which has no llama.cpp, says so at the first render, and this thread takes auto's answer
 *   from the names, marks and tokens as above (autoAfterTrial), the one node-llama-cpp gives when no
 *   Jinja engine renders the template. Auto here would render it with llama.cpp's engine, on this
 *   thread, at boot and at every request, without a limit.
 *
 * The choice begins before the model loads (planChatWrapper, from the file's header read by
 * node-llama-cpp): a pinned "jinjaTemplate" without a template is refused then, and the worker
 * starts then, importing node-llama-cpp (about 0.4 s) while llama.cpp starts and loads the model; it
 * resolves (or renders the pinned template) once the model is loaded (it needs the tokenizer), while
 * the context is made. It has a limit (RESOLUTION_LIMIT_MS from the load, CHAT_WRAPPER_TIMEOUT after
 * it, the worker ended), which covers its import too (the worker answers nothing before it, and the
 * boot waits for nothing of it before the load): a template that keeps node-llama-cpp's JavaScript
 * Jinja engine looping would otherwise keep the boot waiting until stopped. Without the worker's
 * answer (it failed or ran out of memory, this thread's tokenizer failed, node-llama-cpp printed or
 * threw an error the enclave does not know, no thread could be started) the choice is refused,
 * CHAT_WRAPPER_FAILED: auto's trial or the pinned template is never run on this thread, where the
 * template that stopped the worker would block the event loop for good (no health answer, no SIGTERM
 * handled), and a pinned template is not replaced by anything else. Every path is bounded: on this
 * thread, only Cloister's own template (whose loops run over the conversation's messages), a
 * template the worker rendered (the same render, once more), or no template at all is rendered.
 * node-llama-cpp's console notices on the worker (its Jinja failure, with a stack) are not printed:
 * the worker's console records the one auto's answer depends on, and its output is dropped.
 *
 * What it checks: that a pinned "jinjaTemplate" has a template node-llama-cpp renders
 * (CHAT_WRAPPER_UNAVAILABLE otherwise); nothing else about the template: whether the chosen wrapper
 * suits the model is node-llama-cpp's judgement or the operator's, as before. The worker sees the
 * template, the model's metadata (less the vocabulary's arrays) and its tokenizer, never a prompt.
 * After the boot: a Jinja wrapper (a pinned "jinjaTemplate", or auto's choice of it for an
 * operator's template) renders the template again at every request, on the event loop
 * (engine.ts #render), where a template that renders the boot's conversations may loop on another:
 * each new conversation shape is rendered first on a worker of this module's kind, kept for it
 * (startShapeRenderer, engine/template-shapes.ts), and one that does not render there within a limit
 * is refused (docs/deploy.md, beside "jinjaTemplate").
 *
 * Relies on node-llama-cpp 3.22 internals, which test/engine/chat-wrapper.test.ts pins against
 * auto's own answers: each specialized wrapper's
 * `_getOptionConfigurationsToTestIfCanSupersedeJinjaTemplate` (the option configurations auto tries,
 * in order; auto builds the matching one's options; autoAfterTrial lists none to skip the trial), the
 * `llama` option being touched only to render a template with llama.cpp's Jinja engine, and auto's
 * console.error "Error creating Jinja template chat wrapper" when it falls back from that wrapper.
 */
import { createRequire } from "node:module";
import { basename } from "node:path";
import { pathToFileURL } from "node:url";
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from "node:worker_threads";
import {
  type ChatHistoryItem,
  type ChatWrapper,
  chatWrappers,
  type GgufFileInfo,
  type JinjaTemplateChatWrapper,
  type LlamaModel,
  readGgufFileInfo,
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
  /**
   * How long auto's resolution (or the pinned "jinjaTemplate"'s rendering) on the worker may take
   * once the model is loaded, in ms (default RESOLUTION_LIMIT_MS): past it the worker is ended and
   * the choice refused (CHAT_WRAPPER_TIMEOUT).
   */
  limitMs?: number;
};

/** startResolution's options: a shape worker's also the engine's wrapper's (describeJinjaWrapper's `options`). */
type ResolutionOptions = ChooseChatWrapperOptions & { wrapperOptions?: Record<string, unknown> };

/**
 * A Jinja wrapper as far as it decides how a conversation renders, as JSON: every public field the
 * wrapper holds (node-llama-cpp 3.22's JinjaTemplateChatWrapper: its template, reasoning, the role
 * names, the conversion of system messages to user ones, the joining of adjacent messages of one role,
 * the trimming of responses' leading white space, keepOnlyLastThought, additionalRenderParameters), in
 * the form its constructor takes them back (`options`). Every public field, not a list of 3.22's: one
 * a later node-llama-cpp adds is described (and handed to the worker) too, so an engine that sets it
 * is told apart, never described as one that does not (fail closed). Left out: what the wrapper
 * derives itself (its `_` fields, its name, its `settings`). The shape worker's wrapper is built from
 * the engine's `options` and its description compared with the engine's (TemplateShapes.for,
 * startShapeRenderer: wrapperDifference). Its source also runs on the worker (RESOLVE_WORKER): one
 * function describes both.
 *
 * Why the options suffice: the constructor derives everything else (its `settings`: function-call
 * syntax, thought segments, system-message support; its `_` fields) from its options, the template's
 * output and the tokenizer. The engine's wrapper is built with no option but the template and the
 * model's tokenizer (jinjaWrapper: resolveChatWrapper's `{tokenizer, template}`), the worker's with
 * the engine's public fields and the same model's tokenizer (answered by this thread): the same
 * inputs. The settings are not compared: the template's output may hold the time it was built at
 * (strftime_now, as Llama 3.x's write the date, lands in settings.functions.call.prefix), so two
 * wrappers built alike a minute apart differ there. What the constructor takes without keeping it
 * (`segments`, `functionCallMessageTemplate`) is not told apart: the enclave builds no wrapper with them.
 */
export function describeJinjaWrapper(wrapper: JinjaTemplateChatWrapper): string {
  const options: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(wrapper)) {
    if (!name.startsWith("_") && name !== "wrapperName" && name !== "settings") options[name] = value;
  }
  // As the constructor takes them back: no conversion is `false`, no parameters null (JSON keeps it).
  options.convertUnsupportedSystemMessagesToUserMessages =
    wrapper.convertUnsupportedSystemMessagesToUserMessages ?? false;
  options.additionalRenderParameters = wrapper.additionalRenderParameters ?? null;
  // JSON is the description, so a value it would describe as another (a Date as its text, a function,
  // a symbol or a symbol key left out, undefined or a hole in an array as null, a number not finite as
  // null, a Map or a class's object as its own fields) is refused, named by its path (never its value):
  // two wrappers that differ in it would be described alike. A bigint (JSON throws) and a cycle too.
  const faithful = (value: unknown, path: string, inArray: boolean, within: readonly object[]): void => {
    let found: string;
    if (value === null || typeof value === "string" || typeof value === "boolean") return;
    if (typeof value === "number") {
      if (Number.isFinite(value)) return;
      found = "a number not finite";
    } else if (value === undefined) {
      if (!inArray) return;
      found = "undefined";
    } else if (typeof value === "object") {
      const prototype = Object.getPrototypeOf(value);
      const array = Array.isArray(value) && prototype === Array.prototype;
      if (!array && prototype !== Object.prototype && prototype !== null) {
        found = `a ${prototype?.constructor?.name || "object of a class"}`;
      } else if (within.includes(value)) {
        found = "a cycle";
      } else if (Object.getOwnPropertySymbols(value).length > 0) {
        found = "a symbol key";
      } else {
        const inner = [...within, value];
        if (array) for (let i = 0; i < value.length; i++) faithful(value[i], `${path}[${i}]`, true, inner);
        else for (const [name, item] of Object.entries(value)) faithful(item, `${path}.${name}`, false, inner);
        return;
      }
    } else {
      found = `a ${typeof value}`;
    }
    const kinds = "null, a string, a boolean, a finite number, an array or a plain object of them";
    const expected = `a value JSON describes as it is (${kinds})`;
    throw new TypeError(`${path}: expected ${expected}, found ${found}`);
  };
  faithful(options, "options", false, []);
  return JSON.stringify({ options });
}

/**
 * A choice begun from the model file's metadata, before llama.cpp loads it: `choose` finishes it
 * with the loaded model (a wrapper built without the worker that cannot be built throws from the
 * call itself; a pinned "jinjaTemplate" the worker renders first rejects its promise); `dispose`
 * drops it (its worker, if any, is ended). Either may come first. `keptRenderer`: the worker of a
 * pinned "jinjaTemplate", or of auto that chose the Jinja wrapper, once choose has resolved, handed
 * over (once) to render the conversation shapes (TemplateShapes.for); null for any other plan.
 */
export type ChatWrapperPlan = {
  choose(model: LlamaModel): Promise<ChatWrapper>;
  dispose(): void;
  keptRenderer?(): ShapeRenderer | null;
};

/**
 * The default limit on auto's resolution on the worker: 1-2 s on an idle 2-core machine, up to 7 s
 * on a loaded one; one that runs for a minute is a template that keeps node-llama-cpp's JavaScript
 * Jinja engine busy (a loop), which auto on this thread would not end either.
 */
export const RESOLUTION_LIMIT_MS = 60_000;

/**
 * What the worker found auto to choose (or whether the pinned template rendered). "fallback": auto's
 * trial matched no specialized wrapper and its Jinja wrapper failed, so auto answered from the
 * model's names and tokens (`type`, or none: the general wrapper). "unrenderable": the pinned
 * template failed node-llama-cpp's Jinja engine (its error). "nativeJinja": auto
 * reached for llama.cpp's own Jinja engine (the template does not parse in node-llama-cpp's
 * JavaScript one), which the worker does not have. "none": no answer (`why`, words for the error's
 * message; `error`, what the worker caught): nothing is rendered on this thread instead.
 */
type WorkerAnswer =
  | { kind: "jinjaTemplate"; description?: string }
  | { kind: "unrenderable"; error: WorkerError }
  | { kind: "specialized"; type: string; configuration: number }
  | { kind: "fallback"; type: string | null }
  | { kind: "nativeJinja" }
  | { kind: "none"; why: string; error?: WorkerError };

/** An error thrown on the worker, as it crosses to this thread (a cause, never the message's words). */
type WorkerError = { name: string; message: string };

/** The shape worker's answer for one shape (renderShapes). */
type ShapeAnswer = { shape: string; rendered: true } | { shape: string; rendered: false; error: WorkerError };

/**
 * Whether a conversation shape rendered on the shape worker (startShapeRenderer); if not, why (words
 * for an error's message), what the worker threw (its name and message), and whether the shape
 * reached the worker (`sent`). Not sent: the worker had ended before. Sent: whether the worker has
 * ended since (it failed, ran out of memory, or was ended) or is there for the next shape, and
 * whether the failure is its own render's doing (`byRender`): the template threw on it, or the
 * worker's heap ran out while it rendered (the worker runs nothing else meanwhile). Any other end of
 * the worker (it failed otherwise, exited, or was ended) is not.
 */
export type ShapeRendering =
  | { rendered: true }
  | { rendered: false; why: string; cause?: Error; sent: false }
  | { rendered: false; why: string; cause?: Error; sent: true; workerEnded: boolean; byRender: boolean };

type TokenizerRequest = { op: "tokenize" | "detokenize" | "isSpecialToken" | "isEogToken"; args: unknown[] };

/**
 * The worker's heap (V8's old generation, in MB). Importing node-llama-cpp and auto's trial of a
 * real template (Qwen 2.5's, with tools) use about 30 MB. Without a limit of its own a worker's heap
 * may grow as large as this thread's (about 4 GB on a machine with 16 GB or more) before it is
 * stopped: a template that allocates without end (keeps copies of a list) takes that much memory
 * from the process. Past the limit the worker is ended (ERR_WORKER_OUT_OF_MEMORY), the choice refused.
 */
const WORKER_HEAP_MB = 256;

/**
 * The longest text (characters), or token list, one tokenizer call the worker asks this thread for
 * may carry. Auto tokenizes the template's renderings of short sample conversations (a few kB for
 * real templates); each call runs on this thread, in one task: a template that renders megabytes
 * would hold the event loop for seconds at each call (and its limit's timer with it). A longer call
 * ends the worker's resolution without an answer (CHAT_WRAPPER_FAILED).
 */
const TOKENIZER_CALL_MAX = 1 << 20;

const OPTION_CONFIGURATIONS = "_getOptionConfigurationsToTestIfCanSupersedeJinjaTemplate";

/**
 * The worker: auto resolution with this thread's tokenizer, watching which option configuration of
 * which specialized wrapper auto tries last (the one it builds when the wrapper matches), whether
 * auto reaches for llama.cpp's own Jinja engine (`llama`, which it only touches to render a template
 * its JavaScript engine cannot parse: the worker has no llama.cpp, and says so at once), and
 * whether auto's Jinja wrapper failed (auto then says so on console.error, and answers from the
 * model's names and tokens: this thread repeats only that part, autoAfterTrial).
 * It imports node-llama-cpp as soon as it starts (while the model loads), then waits for the
 * model's BOS text, sent once the model is loaded, before it resolves. For a pinned "jinjaTemplate"
 * (`pinned`) it only builds that wrapper as pinnedChatWrapper does (renderPinned), and answers
 * whether its template rendered.
 * Its console is its own: node-llama-cpp's notices (the Jinja failure, with its stack) are recorded
 * and not printed, and the thread's output is dropped by this one (startResolution).
 */
const RESOLVE_WORKER = `
const { workerData, receiveMessageOnPort } = require("node:worker_threads");
const { url, port, answered, input, callMax, optionConfigurations, pinned, shapes, wrapperOptions } = workerData;
${inlined("describeJinjaWrapper", describeJinjaWrapper)}
let jinjaFailed = false;
let otherError = false;
console.error = (first) => {
  if (String(first).includes("Error creating Jinja template chat wrapper")) jinjaFailed = true;
  else otherError = true;
};
console.log = console.info = console.warn = console.debug = console.trace = () => {};
let failed = false;
let oversized = false;
// Waits for this thread's next message, without a limit of its own: that thread answers each call at
// once, or ends this one (terminate() ends the wait).
function receive() {
  Atomics.wait(answered, 0, 0);
  return receiveMessageOnPort(port)?.message;
}
function ask(op, args) {
  if (failed) throw new Error("tokenizer: failed before");
  if ((args[0]?.length ?? 0) > callMax) {
    // No answer can follow: said at once, not after auto's trial has run on without a tokenizer.
    failed = oversized = true;
    port.postMessage({ answer: unsure() });
    throw new Error("tokenizer: call too long");
  }
  Atomics.store(answered, 0, 0);
  port.postMessage({ op, args });
  const reply = receive();
  if (reply === undefined || !("value" in reply)) {
    failed = true;
    throw new Error("tokenizer: no answer");
  }
  return reply.value;
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
    if (!nativeJinja) port.postMessage({ answer: { kind: "nativeJinja" } });
    nativeJinja = true;
    throw new Error("no llama.cpp on this thread");
  },
});
const described = (error) => ({ name: String(error?.name ?? "Error"), message: String(error?.message ?? error) });
const NOT_SENT = { kind: "none", why: "the worker was not sent the loaded model" };
function unsure() {
  if (oversized) {
    const why = "node-llama-cpp asked the enclave's thread to tokenize more than " + callMax + " characters or tokens at once";
    return { kind: "none", why };
  }
  if (failed) return { kind: "none", why: "the model's tokenizer failed on the enclave's thread" };
  if (nativeJinja) return { kind: "none", why: "node-llama-cpp reached for llama.cpp's Jinja engine" };
  if (otherError) return { kind: "none", why: "node-llama-cpp printed an error the enclave does not know" };
  return null;
}
async function resolve() {
  const { resolveChatWrapper, chatWrappers, specializedChatWrapperTypeNames, JinjaTemplateChatWrapper } = await import(url);
  if (pinned) return renderPinned(resolveChatWrapper);
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
  const model = receive();
  if (model === undefined || !("bosString" in model)) return NOT_SENT;
  let wrapper;
  try {
    wrapper = resolveChatWrapper({ ...input, bosString: model.bosString, tokenizer, llama, warningLogs: false });
  } catch (error) {
    return unsure() ?? { kind: "none", why: "node-llama-cpp's choice threw", error: described(error) };
  }
  const unknown = { kind: "none", why: "node-llama-cpp chose a wrapper the enclave does not know how to build" };
  if (unsure() !== null) return unsure();
  if (jinjaFailed) {
    const type =
      wrapper == null ? null : Object.keys(chatWrappers).find((name) => chatWrappers[name] === wrapper.constructor);
    return type === undefined ? unknown : { kind: "fallback", type };
  }
  if (wrapper == null) return unknown;
  if (wrapper.constructor === JinjaTemplateChatWrapper) {
    return shapes ? keptForShapes(resolveChatWrapper, model.bosString) : { kind: "jinjaTemplate" };
  }
  if (tried !== null && wrapper.constructor === chatWrappers[tried.type]) return { kind: "specialized", ...tried };
  return unknown;
}
function renderPinned(resolveChatWrapper) {
  const model = receive();
  if (model === undefined || !("bosString" in model)) return NOT_SENT;
  const { wrapper, error } = pinnedWrapper(resolveChatWrapper, model.bosString);
  if (unsure() !== null) return unsure();
  if (error !== null) return { kind: "unrenderable", error: described(error) };
  if (!shapes) return { kind: "jinjaTemplate" };
  renderShapes(wrapper);
  return { kind: "jinjaTemplate", description: describeJinjaWrapper(wrapper) };
}
// The model's Jinja wrapper as the enclave's thread builds a pinned "jinjaTemplate" (and auto's
// choice of it): node-llama-cpp's, without its fallback.
// A shape worker started for an engine's wrapper builds it from that wrapper's options
// (\`wrapperOptions\`, describeJinjaWrapper's), not from node-llama-cpp's defaults.
function pinnedWrapper(resolveChatWrapper, bosString) {
  const options = { type: "jinjaTemplate", fallbackToOtherWrappersOnJinjaError: false, warningLogs: false };
  if (wrapperOptions != null) options.customWrapperSettings = { jinjaTemplate: wrapperOptions };
  try {
    return { wrapper: resolveChatWrapper({ ...input, ...options, bosString, tokenizer, llama }), error: null };
  } catch (error) {
    return { wrapper: null, error };
  }
}
// Auto chose the Jinja wrapper: the wrapper the enclave's thread builds for that choice, built here
// as a pinned template's is, renders the conversation shapes (this worker kept for them, no second
// one started). One that fails here is no answer: the enclave's thread would fail it too.
function keptForShapes(resolveChatWrapper, bosString) {
  const { wrapper, error } = pinnedWrapper(resolveChatWrapper, bosString);
  if (unsure() !== null) return unsure();
  const why = "the Jinja wrapper it chose failed when built without its fallback";
  if (error !== null) return { kind: "none", why, error: described(error) };
  renderShapes(wrapper);
  return { kind: "jinjaTemplate", description: describeJinjaWrapper(wrapper) };
}
// Renders each conversation shape this thread sends, as the conversation this thread made of it
// (shapeHistory: placeholder text, as the engine renders a request), and answers whether it rendered.
// Its wrapper is built as this thread's (above), so its answers hold there; whether it joins adjacent
// messages of one role is the engine's wrapper's setting, sent with each shape (\`joined\`), not its own.
function renderShapes(wrapper) {
  port.on("message", ({ shape, chatHistory, joined }) => {
    try {
      wrapper.joinAdjacentMessagesOfTheSameType = joined;
      wrapper.generateContextState({ chatHistory });
      port.postMessage({ shape, rendered: true });
    } catch (error) {
      port.postMessage({ shape, rendered: false, error: described(error) });
    }
  });
}
resolve().then(
  (answer) => port.postMessage({ answer }),
  (error) => {
    const answer = { kind: "none", why: "node-llama-cpp failed on the worker", error: described(error) };
    port.postMessage({ answer });
  },
);
`;

/**
 * The plan for the model file at `path` from its header alone, before llama.cpp loads it: a pinned
 * "jinjaTemplate" the model has no template for is refused now (CHAT_WRAPPER_UNAVAILABLE), and the
 * worker that resolves auto's choice of an operator's template starts now, importing node-llama-cpp
 * while the model loads. null: node-llama-cpp could not read the header here (the load then says
 * why, or the plan is made from the loaded model, planChatWrapperFor).
 */
export async function planChatWrapper(
  path: string,
  options: ChooseChatWrapperOptions = {},
): Promise<ChatWrapperPlan | null> {
  let fileInfo: GgufFileInfo;
  try {
    fileInfo = await readGgufFileInfo(path, {
      sourceType: "filesystem",
      readTensorInfo: false,
      logWarnings: false,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  } catch {
    return null;
  }
  options.signal?.throwIfAborted();
  // The name llama.cpp's load gives the model (LlamaModel.filename), which auto reads.
  return planChatWrapperFor(fileInfo, basename(path), options);
}

/**
 * The plan from a model's metadata and file name (planChatWrapper's, and the engine's when the
 * header could not be read before the load): the pinned choice, built by name, or (choice "auto")
 * the one auto resolution chooses, without running auto's trial of every specialized wrapper on
 * this thread (see the module's comment).
 */
export function planChatWrapperFor(
  fileInfo: GgufFileInfo,
  filename: string | undefined,
  options: ChooseChatWrapperOptions = {},
): ChatWrapperPlan {
  const choice = options.choice ?? "auto";
  const template = fileInfo.metadata.tokenizer?.chat_template;
  const none = template === undefined || template.trim() === "";
  if (choice === "jinjaTemplate" && none) {
    throw new EngineError(
      "CHAT_WRAPPER_UNAVAILABLE",
      'manifest field model.chatWrapper: "jinjaTemplate" expected a Jinja chat template in the model (tokenizer.chat_template), found none; pin another chat wrapper, or "auto"',
    );
  }
  // Built when choose is called, and a wrapper that cannot be built throws from the call itself (the
  // engine calls it before making the context).
  const direct = (build: (model: LlamaModel) => ChatWrapper): ChatWrapperPlan => ({
    choose: (model) => Promise.resolve(build(model)),
    dispose: () => {},
  });
  if (choice === "jinjaTemplate" && template !== CHAT_TEMPLATE) {
    // Rendered on the worker first, within the limit: a template that keeps node-llama-cpp's
    // JavaScript Jinja engine looping would block this thread for good (no answer to health checks,
    // no SIGTERM handled). Then built here, where one the worker rendered renders alike (the same
    // template, engine and tokenizer). One it could not render is refused with its error, and
    // without the worker's answer the boot is refused: neither is rendered here.
    // Once it has rendered, the worker is kept for the conversation shapes (keptRenderer): it holds
    // what a shape worker would (startShapeRenderer builds the same wrapper from the same metadata,
    // file name, BOS text and tokenizer, the same way, and nothing else ran on it), so the engine
    // does not start a second one as it opens.
    const rendering = startResolution(resolutionInput(fileInfo, filename), options, "jinjaTemplate", true);
    const kept = new HandedOnce<ShapeRenderer>();
    return {
      choose: async (model) => {
        const answer = await rendering.answer(model);
        const renderer = shapeRendererOf(rendering, answer);
        if (renderer !== null) {
          const wrapper = pinnedChatWrapper(model, choice);
          kept.hold(renderer);
          return wrapper;
        }
        if (answer.kind === "unrenderable") throw unrenderable(workerError(answer.error));
        throw noAnswer("jinjaTemplate", answer);
      },
      dispose: () => rendering.end(),
      keptRenderer: () => kept.take(),
    };
  }
  if (choice !== "auto") return direct((model) => pinnedChatWrapper(model, choice));
  if (template === CHAT_TEMPLATE) return direct((model) => resolveChatWrapper(model, { type: "jinjaTemplate" }));
  // Without a template there is nothing to try: auto answers from the model's names and tokens.
  if (none) return direct((model) => resolveChatWrapper(model, { type: "auto" }));
  // Kept for the conversation shapes when auto chooses the Jinja wrapper (keptRenderer): its worker
  // then builds that wrapper as a pinned "jinjaTemplate"'s does, so the engine starts no second one.
  const resolution = startResolution(resolutionInput(fileInfo, filename), options, "auto", true);
  const kept = new HandedOnce<ShapeRenderer>();
  return {
    choose: async (model) => {
      const answer = await resolution.answer(model);
      const wrapper = buildAnswer(model, answer);
      const renderer = shapeRendererOf(resolution, answer);
      if (renderer !== null) kept.hold(renderer);
      return wrapper;
    },
    dispose: () => resolution.end(),
    keptRenderer: () => kept.take(),
  };
}

/** A value held until it is taken, once (a plan's kept shape renderer: the engine takes it). */
class HandedOnce<T> {
  #value: T | null = null;

  hold(value: T): void {
    this.#value = value;
  }

  take(): T | null {
    const value = this.#value;
    this.#value = null;
    return value;
  }
}

/** `resolution`'s worker as a shape renderer when it answered "jinjaTemplate" (kept for shapes then), else null. */
function shapeRendererOf(resolution: Resolution, answer: WorkerAnswer): ShapeRenderer | null {
  const { render, answered, end } = resolution;
  return answer.kind === "jinjaTemplate" &&
    answer.description !== undefined &&
    render !== undefined &&
    answered !== undefined
    ? { description: answer.description, render, answered, end }
    : null;
}

/**
 * The wrapper the manifest names. Without a fallback: a Jinja template that cannot be rendered is
 * refused, not replaced by auto's choice (which the operator did not sign). A model without a
 * template was refused from its metadata, and an operator's template has been rendered on the
 * worker first (planChatWrapperFor).
 */
function pinnedChatWrapper(model: LlamaModel, choice: Exclude<ChatWrapperChoice, "auto">): ChatWrapper {
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
  return jinjaWrapper(model, unrenderable);
}

/** The model's Jinja wrapper, without node-llama-cpp's fallback to auto: a failure is `refused`'s error. */
function jinjaWrapper(model: LlamaModel, refused: (error: unknown) => EngineError): ChatWrapper {
  try {
    return resolveChatWrapper(model, { type: "jinjaTemplate", fallbackToOtherWrappersOnJinjaError: false });
  } catch (error) {
    throw refused(error);
  }
}

function unrenderable(cause: unknown): EngineError {
  return new EngineError(
    "CHAT_WRAPPER_UNAVAILABLE",
    'manifest field model.chatWrapper: "jinjaTemplate" expected a chat template node-llama-cpp\'s Jinja engine renders, found one it fails; pin another chat wrapper, or "auto"',
    { cause },
  );
}

/**
 * The refusal of a choice the worker gave no answer for (CHAT_WRAPPER_FAILED). The choice is not
 * made on this thread instead, as it was before: there a template that keeps node-llama-cpp's Jinja
 * engine looping (the very template that may have stopped the worker) would block the event loop
 * for good, and a pinned template must not be replaced by anything else.
 */
function noAnswer(choice: "auto" | "jinjaTemplate", answer: WorkerAnswer): EngineError {
  const why =
    answer.kind === "none"
      ? answer.why
      : answer.kind === "nativeJinja"
        ? "node-llama-cpp reached for llama.cpp's Jinja engine"
        : `its answer (${answer.kind}) is not one the enclave builds`;
  const cause = answer.kind === "none" && answer.error !== undefined ? { cause: workerError(answer.error) } : {};
  return new EngineError(
    "CHAT_WRAPPER_FAILED",
    choice === "auto"
      ? `manifest field model.chatWrapper: "auto" expected node-llama-cpp's choice of chat wrapper for the model's chat template (tokenizer.chat_template) from its worker thread, found none (${why}); pin a chat wrapper`
      : `manifest field model.chatWrapper: "jinjaTemplate" expected the model's chat template (tokenizer.chat_template) rendered by node-llama-cpp's Jinja engine on its worker thread, found no answer (${why}); pin another chat wrapper`,
    cause,
  );
}

/** The worker's error, here (its name and message; its stack stays there). */
function workerError({ name, message }: WorkerError): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

/**
 * The wrapper the worker found auto to choose, built here. A template only llama.cpp's Jinja engine
 * parses gets auto's answer from the model's names and tokens (autoAfterTrial), the one node-llama-cpp
 * gives when no Jinja engine renders the template: llama.cpp's would render it on this thread, at
 * boot and at every request, without a limit. Without an answer, or one this thread cannot build, the
 * choice is refused (noAnswer), never made here.
 */
function buildAnswer(model: LlamaModel, answer: WorkerAnswer): ChatWrapper {
  if (answer.kind === "jinjaTemplate") return chosenJinjaWrapper(model);
  if (answer.kind === "nativeJinja") return autoAfterTrial(model);
  if (answer.kind === "fallback") {
    // auto's last part, here (its settings depend on the template, not on a configuration tried);
    // the worker's class confirms it.
    const wrapper = autoAfterTrial(model);
    const expected =
      answer.type === null ? chatWrappers.general : chatWrappers[answer.type as keyof typeof chatWrappers];
    if (wrapper.constructor !== expected) throw noAnswer("auto", answer);
    return wrapper;
  }
  if (answer.kind !== "specialized") throw noAnswer("auto", answer);
  const type = specializedType(answer.type);
  const settings = type === undefined ? null : appliedOptions(type, answer.configuration);
  if (type === undefined || settings === null) throw noAnswer("auto", answer);
  return resolveChatWrapper(model, { type, customWrapperSettings: { [type]: settings } });
}

/**
 * The Jinja wrapper auto's worker chose, built here. Without node-llama-cpp's fallback: a build
 * that fails here where the worker's did not (this thread's stack, about 1 MB, is a quarter of the
 * worker's) would run auto's whole trial, every specialized wrapper's renderings, on this thread
 * without a limit; it is refused instead (CHAT_WRAPPER_FAILED, its error the cause).
 *
 * The build renders the template again here (as pinnedChatWrapper does a pinned one): the wrapper's
 * constructor renders node-llama-cpp's sample conversations (its sanity test, the detection of its
 * function-call and thought syntax), and 3.22 has no way to build it without them. What they find
 * (settings holding LlamaText, the renderer, a dozen private fields) could come from the worker only
 * by writing the wrapper's private state field by field, which another version of node-llama-cpp
 * would break without a sign. These renderings are the last of those the worker ran within its
 * limit (the same template, engine, conversations and tokenizer's answers), once, at boot; the
 * wrapper renders the template on this thread at every request anyway (engine.ts #render).
 */
function chosenJinjaWrapper(model: LlamaModel): ChatWrapper {
  const why = "the Jinja wrapper it chose failed on the enclave's thread";
  return jinjaWrapper(model, (error) => noAnswer("auto", { kind: "none", why, error: asWorkerError(error) }));
}

/** Iterates as no option configuration, with a length that keeps auto from trying `{}` instead. */
const NO_CONFIGURATIONS = { length: 1, *[Symbol.iterator]() {} };

/**
 * auto's answer once its trial matched no specialized wrapper and its Jinja wrapper failed (the
 * worker saw both): from the model's names, the template's marks, its file name and tokens. The
 * trial is skipped by listing no option configuration for each specialized wrapper (3.22 reads the
 * list through OPTION_CONFIGURATIONS, as the worker's watch does), the Jinja wrapper by `noJinja`.
 * Synchronous, so nothing else on this thread sees the lists replaced; each is put back after.
 */
function autoAfterTrial(model: LlamaModel): ChatWrapper {
  const restore: (() => void)[] = [];
  try {
    for (const type of specializedChatWrapperTypeNames) {
      const wrapper = chatWrappers[type] as unknown as Record<string, unknown>;
      const own = Object.getOwnPropertyDescriptor(wrapper, OPTION_CONFIGURATIONS);
      Object.defineProperty(wrapper, OPTION_CONFIGURATIONS, {
        configurable: true,
        writable: true,
        value: () => NO_CONFIGURATIONS,
      });
      restore.push(() => {
        if (own === undefined) delete wrapper[OPTION_CONFIGURATIONS];
        else Object.defineProperty(wrapper, OPTION_CONFIGURATIONS, own);
      });
    }
    return resolveChatWrapper(model, { type: "auto", noJinja: true });
  } finally {
    for (const put of restore) put();
  }
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

/**
 * auto's resolution (or a pinned "jinjaTemplate"'s rendering) on a worker thread, begun before the
 * model loads (planChatWrapperFor).
 */
type Resolution = {
  /** Sends the loaded model's BOS text, answers the worker's tokenizer calls from it, and waits for its answer. */
  answer(model: LlamaModel): Promise<WorkerAnswer>;
  /** Ends the worker, if it has not answered (or, kept for shapes, whenever). */
  end(): void;
  /**
   * Kept for shapes (`shapes`), once it answered "jinjaTemplate": one shape at a time, never two.
   * Absent when no worker started (it never answers "jinjaTemplate").
   */
  render?(shape: string, joined: boolean): Promise<ShapeRendering>;
  /** ShapeRenderer.answered; absent as render is. */
  answered?(): boolean;
};

/**
 * `shapes`: a worker that, once it answers "jinjaTemplate" (a pinned template's wrapper built, or
 * auto's choice of the Jinja wrapper, then built as a pinned one's), is kept to render conversation
 * shapes (startShapeRenderer) rather than ended.
 */
function startResolution(
  input: Record<string, unknown>,
  options: ResolutionOptions,
  choice: "auto" | "jinjaTemplate",
  shapes = false,
): Resolution {
  const { port1, port2 } = new MessageChannel();
  const answered = new Int32Array(new SharedArrayBuffer(4));
  let worker: Worker;
  try {
    worker = new Worker(RESOLVE_WORKER, {
      eval: true,
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
      // Its output is node-llama-cpp's console notices only (the worker's console drops them):
      // never the enclave's stderr. Its failures come as its error and exit events.
      stdout: true,
      stderr: true,
      workerData: {
        url: nodeLlamaCppUrl(),
        port: port2,
        answered,
        input,
        callMax: TOKENIZER_CALL_MAX,
        optionConfigurations: OPTION_CONFIGURATIONS,
        pinned: choice === "jinjaTemplate",
        shapes,
        wrapperOptions: options.wrapperOptions ?? null,
      },
      transferList: [port2],
    });
  } catch (error) {
    // No worker (its data could not be copied to it, no thread to be had): no answer.
    port1.close();
    const answer: WorkerAnswer = {
      kind: "none",
      why: "no worker thread could be started",
      error: asWorkerError(error),
    };
    return { answer: async () => answer, end: () => {} };
  }
  worker.stdout.resume();
  worker.stderr.resume();
  const { signal } = options;
  let tokenizer: Tokenizer | null = null;
  let limit: NodeJS.Timeout | undefined;
  let settled = false;
  let settle!: { resolve: (answer: WorkerAnswer) => void; reject: (error: unknown) => void };
  const outcome = new Promise<WorkerAnswer>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // Handled where it is awaited (answer); an end before then has no one to tell.
  outcome.catch(() => {});
  // Kept for shapes: the render waiting for the worker's answer (one at a time), and the worker kept.
  let rendering: ((outcome: ShapeRendering) => void) | null = null;
  let renderingShape = "";
  let kept = false;
  const finish = (result: { answer: WorkerAnswer } | { error: unknown }, outOfMemory = false): void => {
    if (kept) {
      // The worker's answer for the render under way may wait in the port still (its last message
      // and its end reach this thread apart): taken first, as its event loop would have (a rendered
      // shape dropped here was answered "the worker ended", and twice, refused).
      takeQueued();
      // Taking it ended the worker (an answer for another shape): told already.
      if (!kept) return;
      // The kept worker ends (end(), its failure or exit): a render under way has no answer, and
      // is the end's cause only when the heap ran out (ShapeRendering's byRender).
      kept = false;
      const ended = "answer" in result && result.answer.kind === "none" ? result.answer : null;
      rendering?.({
        rendered: false,
        why: ended?.why ?? "the worker ended",
        workerEnded: true,
        sent: true,
        byRender: outOfMemory,
        ...(ended?.error === undefined ? {} : { cause: workerError(ended.error) }),
      });
      rendering = null;
      port1.close();
      worker.terminate().catch(() => {});
      return;
    }
    if (settled) return;
    settled = true;
    clearTimeout(limit);
    signal?.removeEventListener("abort", onAbort);
    if (shapes && "answer" in result && result.answer.kind === "jinjaTemplate") {
      // Kept, without holding the process open (a render under way has its own timer).
      kept = true;
      worker.unref();
      port1.unref();
      settle.resolve(result.answer);
      return;
    }
    port1.close();
    if ("answer" in result) settle.resolve(result.answer);
    else settle.reject(result.error);
    // Ended after the boot is told, not before: a worker stuck in a call that does not return to
    // JavaScript (llama.cpp's, the operating system's) holds terminate()'s promise until it does.
    worker.terminate().catch(() => {});
  };
  const onAbort = (): void => finish({ error: signal?.reason });
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  const wake = (): void => {
    Atomics.store(answered, 0, 1);
    Atomics.notify(answered, 0);
  };
  const onMessage = (message: { answer: WorkerAnswer } | TokenizerRequest | ShapeAnswer): void => {
    if ("rendered" in message) {
      if (message.shape !== renderingShape) {
        // The worker answered for another shape than the one under way: a bug, never a verdict on
        // either. The worker is ended; the render under way is answered not rendered (not its doing).
        const why = `the worker answered for another shape (${message.shape.length} letters) than the one sent (${renderingShape.length} letters): a bug`;
        finish({ answer: { kind: "none", why } });
        return;
      }
      const told = rendering;
      rendering = null;
      const why = "node-llama-cpp's Jinja engine failed it";
      told?.(
        message.rendered
          ? { rendered: true }
          : { rendered: false, why, cause: workerError(message.error), workerEnded: false, sent: true, byRender: true },
      );
      return;
    }
    if ("answer" in message) {
      finish({ answer: message.answer });
      return;
    }
    const reply = tokenizer === null ? { error: new Error("no tokenizer yet") } : answerTokenizer(tokenizer, message);
    if ("error" in reply) {
      // The worker's resolution has no answer after a failed call: refused now, not once it has run on.
      const why = "the model's tokenizer failed on the enclave's thread";
      finish({ answer: { kind: "none", why, error: asWorkerError(reply.error) } });
      return;
    }
    port1.postMessage(reply);
    wake();
  };
  port1.on("message", onMessage);
  // What the worker sent that this thread's event loop has not delivered yet, taken in order as that
  // loop would take it, until the render under way is answered.
  function takeQueued(): void {
    while (kept && rendering !== null) {
      const queued = receiveMessageOnPort(port1);
      if (queued === undefined) break;
      onMessage(queued.message as Parameters<typeof onMessage>[0]);
    }
  }
  // A worker that fails (out of memory: ERR_WORKER_OUT_OF_MEMORY) or ends without an answer: none.
  // Its answer may be queued still when its end is told (its last message and its exit reach this
  // thread apart).
  worker.on("error", (error) => {
    const outOfMemory = (error as { code?: unknown }).code === "ERR_WORKER_OUT_OF_MEMORY";
    const why = outOfMemory
      ? `the worker ran out of memory: its heap is limited to ${WORKER_HEAP_MB} MB`
      : "the worker failed";
    finish({ answer: { kind: "none", why, error: asWorkerError(error) } }, outOfMemory);
  });
  worker.on("exit", (code) => {
    const ended: WorkerAnswer = { kind: "none", why: `the worker ended (exit code ${code})` };
    // Kept, its queued messages are shape answers, which finish takes (queuedAnswer would drop them).
    finish({ answer: kept ? ended : (queuedAnswer(port1) ?? ended) });
  });
  return {
    answer(model) {
      if (!settled) {
        tokenizer = model.tokenizer;
        port1.postMessage({ bosString: model.tokens.bosString });
        wake();
        const limitMs = options.limitMs ?? RESOLUTION_LIMIT_MS;
        limit = setTimeout(() => finish({ error: resolutionTimeout(choice, limitMs) }), limitMs);
      }
      return outcome;
    },
    end: () => finish({ answer: { kind: "none", why: "the choice was dropped" } }),
    render: (shape, joined) =>
      new Promise((resolve, reject) => {
        if (!kept) {
          resolve({ rendered: false, why: "the worker has ended", sent: false });
          return;
        }
        if (rendering !== null) {
          // ShapeRenderer.render's rule broken (TemplateShapes sends one shape at a time): a bug,
          // rejected (the caller's to handle), the render under way left to its answer.
          reject(new Error("shape worker: expected one shape rendering at a time, found another under way"));
          return;
        }
        rendering = resolve;
        renderingShape = shape;
        port1.postMessage({ shape, chatHistory: shapeHistory(shape), joined });
      }),
    answered: () => {
      takeQueued();
      return rendering === null;
    },
  };
}

function resolutionTimeout(choice: "auto" | "jinjaTemplate", limitMs: number): EngineError {
  return new EngineError(
    "CHAT_WRAPPER_TIMEOUT",
    choice === "auto"
      ? `manifest field model.chatWrapper: "auto" expected node-llama-cpp's choice of chat wrapper for the model's chat template (tokenizer.chat_template) within ${limitMs} ms, found it still running; pin a chat wrapper`
      : `manifest field model.chatWrapper: "jinjaTemplate" expected the model's chat template (tokenizer.chat_template) rendered by node-llama-cpp's Jinja engine within ${limitMs} ms, found it still rendering; pin another chat wrapper`,
  );
}

function asWorkerError(error: unknown): WorkerError {
  const { name, message } = error instanceof Error ? error : { name: "Error", message: String(error) };
  return { name, message };
}

function queuedAnswer(port: MessagePort): WorkerAnswer | null {
  for (let message = receiveMessageOnPort(port); message !== undefined; message = receiveMessageOnPort(port)) {
    const body = message.message as { answer?: WorkerAnswer };
    if (body.answer !== undefined) return body.answer;
  }
  return null;
}

function answerTokenizer(
  tokenizer: Tokenizer,
  { op, args }: TokenizerRequest,
): { value: unknown } | { error: unknown } {
  // The worker asks for no longer call; this thread checks again before it runs one.
  const length = (args[0] as { length?: number } | undefined)?.length ?? 0;
  if (length > TOKENIZER_CALL_MAX) {
    return {
      error: new Error(`tokenizer call: expected at most ${TOKENIZER_CALL_MAX} characters or tokens, found ${length}`),
    };
  }
  try {
    const [first, second, third] = args as [never, never, never];
    if (op === "tokenize") return { value: tokenizer(first, second, third) };
    if (op === "detokenize") return { value: tokenizer.detokenize(first, second, third) };
    if (op === "isSpecialToken") return { value: tokenizer.isSpecialToken(first) };
    return { value: tokenizer.isEogToken(first) };
  } catch (error) {
    return { error };
  }
}

/**
 * What auto reads of a model besides its tokenizer and BOS text (sent once the model is loaded), as
 * resolveChatWrapper(model) gathers it: its architecture, file name and metadata. The metadata goes
 * without the vocabulary's arrays (tokenizer.ggml's tokens, scores, merges…), which auto does not
 * read and which can hold hundreds of thousands of entries to copy.
 */
function resolutionInput(fileInfo: GgufFileInfo, filename: string | undefined): Record<string, unknown> {
  const { tokenizer, ...metadata } = fileInfo.metadata;
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
  const leanInfo: Partial<GgufFileInfo> = { metadata: lean as GgufFileInfo["metadata"] };
  return { architecture: fileInfo.metadata.general?.architecture, filename, fileInfo: leanInfo };
}

/** node-llama-cpp's entry point, for the worker to import (an eval'd worker resolves no package names). */
function nodeLlamaCppUrl(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve("node-llama-cpp")).href;
}

/**
 * The conversation the shape worker renders for `shape` (TemplateShapes.shapeOf: a letter per message
 * as the template sees it, s system, u user, a assistant, the last letter the model's turn), with
 * placeholder text: its messages, then the model's empty turn, as the engine renders a request
 * (engine.ts #renderChat: the request's messages, then the model's empty turn). The shape's last
 * letter is that turn, not a message before it: so the wrapper passes the template the same messages
 * here as for the request, whether it joins adjacent messages of one role or not
 * (test/engine/template-shapes-history.test.ts compares them).
 */
export function shapeHistory(shape: string): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [...shape.slice(0, -1)].map((letter) =>
    letter === "s"
      ? { type: "system", text: "x" }
      : letter === "u"
        ? { type: "user", text: "x" }
        : { type: "model", response: ["x"] },
  );
  history.push({ type: "model", response: [] });
  return history;
}

/** A worker holding the model's Jinja wrapper that renders conversation shapes (startShapeRenderer). */
export type ShapeRenderer = {
  /** Its wrapper's describeJinjaWrapper, as the worker built it: compared with the engine's (TemplateShapes.for). */
  readonly description: string;
  /**
   * One shape at a time: the next only once this one's promise has settled (a render begun while
   * another is under way rejects, a bug; every other outcome resolves). `joined`: whether the
   * engine's wrapper joins adjacent messages of one role (the shape is made so, TemplateShapes.shapeOf),
   * which the worker's wrapper then does too: the engine's setting decides both, not two defaults
   * that happen to agree (test/engine/template-shapes-joining.test.ts).
   */
  render(shape: string, joined: boolean): Promise<ShapeRendering>;
  /**
   * Whether the render under way has been answered (true when none is under way), once what the
   * worker has sent that this thread's event loop has not delivered yet is taken. A long task that
   * held this thread past a render's limit leaves the worker's timely answer waiting in the port,
   * and node runs the expired timer before it delivers the message.
   */
  answered(): boolean;
  /** Ends the worker; a render under way is answered not rendered. */
  end(): void;
};

/**
 * A worker thread that holds the model's Jinja wrapper, built as this thread's was (a pinned
 * "jinjaTemplate", or auto's choice of the Jinja wrapper: both are node-llama-cpp's Jinja wrapper
 * without its fallback, from the same metadata, BOS text and tokenizer answers) with the same heap
 * limit as the boot's, and renders conversation shapes for engine/template-shapes.ts. Resolves once
 * the wrapper is built there (its sample conversations rendered again, within RESOLUTION_LIMIT_MS);
 * rejects as the boot's rendering of a pinned template would (CHAT_WRAPPER_TIMEOUT,
 * CHAT_WRAPPER_UNAVAILABLE, CHAT_WRAPPER_FAILED), the worker ended. Aborting `signal` (the engine
 * closes) ends a start under way at once, rejecting with its reason. `engine`: the engine's wrapper's
 * describeJinjaWrapper, whose options the worker's wrapper is built from (required: no worker starts
 * without the wrapper it is compared with); a worker whose wrapper is then described otherwise is
 * ended, and the start rejects (CHAT_WRAPPER_FAILED, naming the field that differs).
 */
export async function startShapeRenderer(
  model: LlamaModel,
  signal: AbortSignal,
  engine: string,
): Promise<ShapeRenderer> {
  const input = resolutionInput(model.fileInfo, model.filename);
  const worker = startResolution(input, { signal, wrapperOptions: JSON.parse(engine).options }, "jinjaTemplate", true);
  const answer = await worker.answer(model);
  const renderer = shapeRendererOf(worker, answer);
  const difference = renderer === null ? null : wrapperDifference(engine, renderer.description);
  if (renderer !== null && difference === null) return renderer;
  if (renderer !== null) {
    renderer.end();
    throw new WrapperMismatchError(difference as string);
  }
  throw answer.kind === "unrenderable" ? unrenderable(workerError(answer.error)) : noAnswer("jinjaTemplate", answer);
}

/**
 * Where two describeJinjaWrapper descriptions differ, for a message, or null when they are alike: the
 * first option that differs (`option NAME`). Never its value: an option may hold the template.
 * Equal texts (the usual case: both built from the same options) are alike without parsing either.
 */
export function wrapperDifference(expected: string, found: string): string | null {
  if (expected === found) return null;
  type Described = { options?: Record<string, unknown> };
  const [a, b] = [JSON.parse(expected), JSON.parse(found)] as Described[];
  const names = [...new Set([...Object.keys(a?.options ?? {}), ...Object.keys(b?.options ?? {})])];
  const option = names.find((name) => JSON.stringify(a?.options?.[name]) !== JSON.stringify(b?.options?.[name]));
  return option === undefined ? null : `option ${option}`;
}

/**
 * A shape worker whose Jinja wrapper is not the engine's (`difference`: wrapperDifference's words, no
 * value): no worker built from the engine's options will be (the same code, options and inputs), so
 * the engine's template shapes take it as permanent (TemplateShapes), not as a busy worker to retry.
 */
export class WrapperMismatchError extends EngineError {
  readonly difference: string;

  constructor(difference: string) {
    super("CHAT_WRAPPER_FAILED", `shape worker's Jinja wrapper: expected the engine's, found another ${difference}`);
    this.difference = difference;
  }
}

/**
 * `fn`'s source as a declaration of `name` in a worker's source: bound to `name` whatever `fn` is
 * called here (a bundler that renames identifiers renames the function, not the worker's calls of
 * it, which are text). `fn` must use nothing outside itself but `__name`: tsx (the enclave runs
 * through it, bin/cloister.js) keeps function names, compiling a named inner function (the
 * describeJinjaWrapper's `faithful`) to `__name(fn, "faithful")`, a helper of the module's that the
 * worker lacks ("__name is not defined": no Jinja wrapper booted). Given here, as esbuild's is.
 */
export function inlined(name: string, fn: (...args: never[]) => unknown): string {
  const keepName = '(target, value) => Object.defineProperty(target, "name", { value, configurable: true })';
  return `const ${name} = (() => { const __name = ${keepName}; return (${fn.toString()}); })();`;
}
