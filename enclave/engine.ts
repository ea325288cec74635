/**
 * The local inference engine: one GGUF model loaded with node-llama-cpp, serving concurrent
 * requests on a fixed number of context sequences behind a bounded FIFO queue.
 *
 * What it checks:
 * - The bytes loaded are the bytes hashed. llama.cpp opens (and maps) a model by path, so hashing
 *   the path and then loading it would let anyone who can write the path swap bytes in between
 *   (and swap them back, or restore the mtime, before any later look). So a model given by path is
 *   first copied into a private directory (model-staging.ts stageModel: /dev/shm when it has room,
 *   else the OS temp directory, a fresh 0700 directory), hashed as it is written, and that copy is
 *   loaded and removed again on close or failure. The caller that staged its own copy (the enclave)
 *   passes `modelSha256` instead. The digest must equal the pinned one before anything is loaded:
 *   a mismatch is refused with MODEL_DIGEST_MISMATCH naming both digests. The copy's identity
 *   (device, inode, size, mtime) is compared again after loading (MODEL_CHANGED_DURING_LOAD).
 *   Cost: one extra sequential read and write of the model at load (a few seconds per GiB), and the
 *   copy's space for as long as the engine runs. In /dev/shm that is memory, but llama.cpp maps the
 *   copy's pages rather than reading the model again, so the model is held in memory once, as it
 *   would be without the copy. In the temp directory (no /dev/shm, or too little room in it) it is
 *   disk space the size of the model, on top of the model file; where neither has room, the model
 *   is refused (MODEL_NO_ROOM: set TMPDIR to a directory with room), though llama.cpp could have
 *   loaded it from its path. The copy is removed on close, on a failed or aborted load
 *   (`signal`), and, as a last resort, synchronously when the process exits (model-staging.ts).
 * - Requests are validated field by field (ENGINE_REQUEST); prompts that do not fit the context are
 *   refused (PROMPT_TOO_LONG); when every sequence is busy and the queue is full a request is refused
 *   at once with ENGINE_BUSY.
 * - An operator's Jinja chat template (a pinned "jinjaTemplate", or auto's choice of node-llama-cpp's
 *   Jinja wrapper) renders a conversation on this thread only once its shape (its roles) has
 *   rendered on a worker thread within a limit; another shape is refused (CHAT_TEMPLATE_REFUSED):
 *   engine/template-shapes.ts.
 * - KV-cache isolation (DESIGN.md, "Sealed protocol"): a sequence's cached state is reused only for a
 *   request of the same `tenant`; a request without a tenant, or of another tenant, starts from an
 *   empty sequence, so prefix-cache timing cannot reveal another tenant's prompt.
 *
 * What it does not do: it never logs or puts into an error any prompt or generated text; it does not
 * decide who may call it (the enclave's pipeline does), and it does not support function calling or
 * the "thought" segments of reasoning templates (their text is returned as ordinary output). An
 * abort takes effect after the token being evaluated, so a long prompt's prefill is not interrupted.
 */
import { randomInt, timingSafeEqual } from "node:crypto";
import { stat } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import {
  type ChatHistoryItem,
  type ChatWrapper,
  getLlama,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  LlamaLogLevel,
  type LlamaModel,
  type LlamaOptions,
  type LlamaText,
  SpecialToken,
  SpecialTokensText,
  type Token,
} from "node-llama-cpp";
import { fileMessage } from "../attestation/bounded-read.ts";
import { type ChatWrapperChoice, MAX_SEQUENCES } from "../manifests/schema.ts";
import { REQUEST_LIMITS } from "../sealed/request-limits.ts";
import { type ChatWrapperPlan, planChatWrapper, planChatWrapperFor } from "./engine/chat-wrapper.ts";
import { EngineError, ModelDigestMismatchError, ModelNotAFileError, modelNotFound } from "./engine/errors.ts";
import { OutputText, type StopRules } from "./engine/output-text.ts";
import { SlotPool } from "./engine/slot-pool.ts";
import { TemplateShapes } from "./engine/template-shapes.ts";
import { closeThenRemoveCopy, localCopyRoot, type StagedModel, stageModel } from "./model-staging.ts";
import { throwIfStoppedBy } from "./stop.ts";

export { EngineBusyError, EngineError, type EngineErrorCode, ModelDigestMismatchError } from "./engine/errors.ts";

export type ChatRole = "system" | "user" | "assistant";
export type ChatMessage = { role: ChatRole; content: string };

/** Sampling and limits of one request. Defaults: greedy (temperature 0), topP 1, maxTokens 256. */
export type GenerationParameters = {
  maxTokens?: number;
  /** 0 = greedy; up to 2. */
  temperature?: number;
  /** Nucleus sampling threshold in (0, 1]. */
  topP?: number;
  /** Sampling seed (0..2^32-1); with temperature > 0 the same seed reproduces the same output. */
  seed?: number;
  /** Extra plain-text stop strings (not emitted). */
  stop?: readonly string[];
  /** Aborting ends the generation after the current token; the sequence is freed. */
  signal?: AbortSignal;
  /**
   * The request's cache scope (the value the client sealed: random per session, or derived from
   * its `cacheScope`; never the API key or the host's tenant header). Cached KV state is reused only
   * between requests of the same tenant; without a tenant nothing is reused.
   */
  tenant?: string;
};

export type CompletionRequest = GenerationParameters & { prompt: string };
export type ChatRequest = GenerationParameters & { messages: readonly ChatMessage[] };
export type GenerateRequest = CompletionRequest | ChatRequest;

export type StopReason = "eog" | "stop" | "maxTokens" | "contextFull" | "abort";

export type GenerationUsage = {
  /** Tokens of the rendered prompt. */
  promptTokens: number;
  /** Of those, tokens whose KV state was reused from the same tenant's previous request. */
  cachedPromptTokens: number;
  /** Tokens generated (stop tokens included, end-of-generation token not). */
  completionTokens: number;
  /** Time waiting for a free sequence. */
  queueMs: number;
  /** From the call to the first generated token (queue and prompt evaluation included). */
  ttftMs: number;
  /** From the call to the end. */
  totalMs: number;
  /**
   * Decode rate: tokens after the first divided by the time after the first token (with fewer than
   * two tokens: tokens divided by the time from getting a sequence to the end).
   */
  tokensPerSecond: number;
};

export type GenerationEvent =
  | { type: "text"; text: string }
  | { type: "done"; stopReason: StopReason; usage: GenerationUsage };

export type GenerationResult = { text: string; stopReason: StopReason; usage: GenerationUsage };

export type EngineOptions = {
  modelPath: string;
  /** Pinned SHA-256 of the model file (64 hex digits). Required: the engine never loads an unpinned model. */
  expectedSha256: string;
  /** Concurrent context sequences (default 2). */
  sequences?: number;
  /** Requests allowed to wait for a sequence before ENGINE_BUSY (default 16). */
  maxQueue?: number;
  /** Context size of each sequence in tokens (default 2048, at most the model's training context). */
  contextSize?: number;
  /** "off" (default): CPU only. "auto": use a GPU when one is present. */
  gpu?: "off" | "auto";
  /** CPU threads for evaluation (default: the math cores llama.cpp counts, minus one, at least 1). */
  threads?: number;
  /** Show model-load progress on stderr (default: only when stderr is a TTY). */
  progress?: boolean;
  /** The chat wrapper (the manifest's model.chatWrapper; default "auto"): engine/chat-wrapper.ts. */
  chatWrapper?: ChatWrapperChoice;
  /**
   * How long an operator's Jinja template may take to render a new conversation shape on its worker
   * thread before the shape is refused, in ms (default SHAPE_LIMIT_MS: engine/template-shapes.ts).
   */
  chatTemplateLimitMs?: number;
  /**
   * The SHA-256 of `modelPath`, computed by the caller as it wrote that file (the enclave's private
   * copy, model-staging.ts): compared with `expectedSha256`, and `modelPath` is then loaded as it
   * is. Only for a file no one else can write; without it the engine makes its own private copy.
   */
  modelSha256?: string;
  /**
   * The model file as the engine's errors name it (default `modelPath`): the file the operator gave,
   * where `modelPath` is the enclave's private copy of it (with `modelSha256`).
   */
  modelName?: string;
  /**
   * Aborting stops the copy or the load where it is (llama.cpp's load at its next progress step),
   * removes the private copy, and rejects with the signal's reason: `cloister model run` on Ctrl-C,
   * SIGTERM or its output closed. After the engine is open it has no effect (close() it).
   */
  signal?: AbortSignal;
};

/** Test seams: the loader and the private copy can be observed or replaced. */
export type EngineDependencies = {
  getLlama: (options: LlamaOptions) => Promise<Llama>;
  /** Copies a model given by path into a private directory, hashing it as written (stageModel); stops when `signal` aborts. */
  stageModel: (path: string, signal?: AbortSignal) => Promise<StagedModel>;
};

export type EngineInfo = {
  modelPath: string;
  modelSha256: string;
  modelBytes: number;
  sequences: number;
  maxQueue: number;
  contextSize: number;
  gpu: string | false;
  chatTemplate: string;
};

export type EngineStats = { sequences: number; busy: number; queued: number };

type Slot = {
  readonly sequence: LlamaContextSequence;
  /** Tenant whose state the sequence holds; undefined = empty sequence. */
  tenant: string | undefined;
};

type RenderedPrompt = { tokens: Token[]; rules: StopRules };

/**
 * A request's prompt rendered (chat template) and tokenized once (InferenceEngine.renderPrompt),
 * to count its tokens and then generate from it without rendering it again.
 */
export class PromptRendering {
  /** @internal */
  constructor(
    /** @internal */ readonly rendered: RenderedPrompt,
    /** @internal the request it was rendered from: generate() only takes it for that request. */
    readonly request: GenerateRequest,
  ) {}

  get tokenCount(): number {
    return this.rendered.tokens.length;
  }
}

const DEFAULT_SEQUENCES = 2;
const DEFAULT_MAX_QUEUE = 16;
const DEFAULT_CONTEXT_SIZE = 2048;
const DEFAULT_MAX_TOKENS = 256;
const MAX_STOP_STRINGS = 8;
const CLOSE_GRACE_MS = 5_000;

const defaultDependencies: EngineDependencies = {
  getLlama: (options) => getLlama(options),
  stageModel: (path, signal) =>
    stageModel(path, null, { privateRoot: localCopyRoot, ...(signal === undefined ? {} : { signal }) }),
};

/**
 * Verify the model file against its pinned digest, then load it and create the sequences. A model
 * given without `modelSha256` is loaded from a private copy hashed as it was written.
 */
export async function openInferenceEngine(
  options: EngineOptions,
  dependencies: Partial<EngineDependencies> = {},
): Promise<InferenceEngine> {
  const deps = { ...defaultDependencies, ...dependencies };
  const settings = checkOptions(options);
  const staged = options.modelSha256 === undefined ? await deps.stageModel(options.modelPath, options.signal) : null;
  try {
    return await loadEngine(options, settings, deps, staged);
  } catch (error) {
    // The load's own error (or, stopped, the stop's reason) whatever the removal does: a copy it
    // could not remove is recorded (modelCopiesLeft), and `cloister model run` names it.
    await staged?.remove().catch(() => {});
    throw error;
  }
}

async function loadEngine(
  options: EngineOptions,
  settings: ReturnType<typeof checkOptions>,
  deps: EngineDependencies,
  staged: StagedModel | null,
): Promise<InferenceEngine> {
  const loadPath = staged?.path ?? options.modelPath;
  const named = options.modelName ?? options.modelPath;
  const before = await statModel(loadPath);
  const found = (staged?.sha256 ?? (options.modelSha256 as string)).toLowerCase();
  if (!digestsEqual(found, settings.expectedSha256)) {
    throw new ModelDigestMismatchError(named, settings.expectedSha256, found);
  }

  const progress = options.progress ?? process.stderr.isTTY === true;
  const wrapperOptions = {
    ...(options.chatWrapper === undefined ? {} : { choice: options.chatWrapper }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
  // The chat wrapper's choice begins from the model's header while llama.cpp starts: a pinned
  // "jinjaTemplate" the model cannot have is refused before anything loads, and auto's resolution
  // of an operator's template starts its worker now (engine/chat-wrapper.ts). Each is awaited
  // below. Another pinned wrapper reads no template: its plan is made from the loaded model's
  // header (a second read here costs 0.1-0.3 s of CPU at a 32k-128k vocabulary).
  const choice = options.chatWrapper ?? "auto";
  const planning =
    choice === "auto" || choice === "jinjaTemplate" ? planChatWrapper(loadPath, wrapperOptions) : Promise.resolve(null);
  // (Asynchronous even if getLlama threw at once: the planned worker is then ended below.)
  const starting = Promise.resolve().then(() =>
    deps.getLlama({
      gpu: settings.gpu === "off" ? false : "auto",
      build: "never",
      progressLogs: false,
      logLevel: LlamaLogLevel.error,
      // llama.cpp's own error lines (never prompt text) go to stderr; everything else is dropped.
      logger: (level, message) => {
        if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) {
          process.stderr.write(`llama.cpp: ${message.trimEnd()}\n`);
        }
      },
    }),
  );
  starting.catch(() => {});
  let plan: ChatWrapperPlan | null = null;
  let llama: Llama | undefined;
  let model: LlamaModel | undefined;
  let context: LlamaContext | undefined;
  try {
    plan = await planning;
    llama = await starting;
    options.signal?.throwIfAborted();
    model = await llama.loadModel({
      modelPath: loadPath,
      gpuLayers: settings.gpu === "off" ? 0 : "auto",
      ...(progress ? { onLoadProgress: progressPrinter() } : {}),
      ...(options.signal === undefined ? {} : { loadSignal: options.signal }),
    });
    options.signal?.throwIfAborted();
    if (progress) process.stderr.write("\n");
    const after = await statModel(loadPath);
    if (!sameFile(before, after)) {
      throw new EngineError(
        "MODEL_CHANGED_DURING_LOAD",
        fileMessage(named, "model file", "changed between hashing and loading (size/inode/mtime differ); refusing it"),
      );
    }
    const trainContext = model.trainContextSize;
    const contextSize = Math.min(settings.contextSize, trainContext > 0 ? trainContext : settings.contextSize);
    plan ??= planChatWrapperFor(model.fileInfo, model.filename, wrapperOptions);
    // auto's resolution on the worker runs while the context is made; awaited after it. A pinned
    // wrapper is had first: one the model's template cannot give (a pinned "jinjaTemplate" its Jinja
    // engine fails, rendered on the worker then here) is refused before the context's memory is taken.
    const choosing = plan.choose(model);
    choosing.catch(() => {});
    if (choice !== "auto") await choosing;
    context = await model.createContext({
      sequences: settings.sequences,
      contextSize,
      // ggml threads spin at every barrier, so when any other thread wants a core (the event loop
      // sealing and streaming, another process) decoding collapses: on the 2-core benchmark
      // machine 2 threads ran 5-100x slower than 1 (BENCHMARKS.md). Leave one core free.
      threads: settings.threads ?? Math.max(1, llama.cpuMathCores - 1),
    });
    const slots: Slot[] = [];
    for (let i = 0; i < settings.sequences; i++) slots.push({ sequence: context.getSequence(), tenant: undefined });
    const chatWrapper = await choosing;
    const info: EngineInfo = {
      modelPath: options.modelPath,
      modelSha256: found,
      modelBytes: before.size,
      sequences: settings.sequences,
      maxQueue: settings.maxQueue,
      contextSize: context.contextSize,
      gpu: llama.gpu,
      chatTemplate: chatWrapper.wrapperName,
    };
    // An operator's Jinja template renders each new conversation shape on a worker first (#render).
    const shapes = TemplateShapes.for(chatWrapper, model, settings.chatTemplateLimitMs, plan.keptRenderer?.() ?? null);
    return new InferenceEngine(llama, model, context, slots, { chatWrapper, shapes }, settings.maxQueue, info, staged);
  } catch (error) {
    // The plan's worker ends; a Llama still starting when the plan failed is freed once it has.
    plan?.dispose();
    llama ??= await starting.catch(() => undefined);
    await context?.dispose().catch(() => {});
    await model?.dispose().catch(() => {});
    await llama?.dispose().catch(() => {});
    throwIfStoppedBy(error, options.signal);
    if (error instanceof EngineError) throw error;
    throw new EngineError("MODEL_LOAD_FAILED", fileMessage(named, "model file", "could not be loaded"), {
      cause: error,
    });
  }
}

export class InferenceEngine {
  readonly info: EngineInfo;
  readonly #llama: Llama;
  readonly #model: LlamaModel;
  readonly #context: LlamaContext;
  readonly #pool: SlotPool<Slot>;
  readonly #chatWrapper: ChatWrapper;
  /** The shapes an operator's Jinja template has rendered on its worker; null: a wrapper that needs no check. */
  readonly #shapes: TemplateShapes | null;
  /** Aborted by close(): ends every running generation after its current token. */
  readonly #closing = new AbortController();
  readonly #running = new Set<Promise<void>>();
  /** Edits of a sequence's cached tokens under way (#editSequence). */
  readonly #edits = new Set<Promise<unknown>>();
  /** The private copy the engine made and loaded (removed on close), or null: the caller's file. */
  readonly #staged: StagedModel | null;
  #closed = false;

  /** @internal use openInferenceEngine */
  constructor(
    llama: Llama,
    model: LlamaModel,
    context: LlamaContext,
    slots: Slot[],
    { chatWrapper, shapes }: { chatWrapper: ChatWrapper; shapes: TemplateShapes | null },
    maxQueue: number,
    info: EngineInfo,
    staged: StagedModel | null,
  ) {
    this.#staged = staged;
    this.#llama = llama;
    this.#model = model;
    this.#context = context;
    this.#pool = new SlotPool(slots, maxQueue);
    this.#chatWrapper = chatWrapper;
    this.#shapes = shapes;
    this.info = info;
  }

  get stats(): EngineStats {
    return {
      sequences: this.#pool.size,
      busy: this.#pool.size - this.#pool.freeCount,
      queued: this.#pool.queued,
    };
  }

  /**
   * Renders and tokenizes `request`'s prompt once: count it, then pass it to generate(). Rejects
   * with ENGINE_CLOSED once close() has begun, with CHAT_TEMPLATE_REFUSED for a conversation an
   * operator's Jinja template did not render on its worker (#render).
   */
  async renderPrompt(request: GenerateRequest): Promise<PromptRendering> {
    // As generate(): refused before anything close() freed (the model, the shape worker) is reached.
    if (this.#closed) throw new EngineError("ENGINE_CLOSED", "engine is closed");
    checkPromptOrMessages(request);
    if ("messages" in request) checkMessages(request);
    // The rendering's stop rules are made from it (#render).
    checkStop(request);
    return new PromptRendering(await this.#render(request), request);
  }

  /**
   * Stream a generation: zero or more `text` events, then one `done` event with the stop reason and
   * usage. The request is validated and admitted on the first `next()`: a full queue rejects it
   * with ENGINE_BUSY, an abort while queued with ENGINE_ABORTED. Ending the iteration early (break,
   * `return()`) or aborting frees the sequence. `rendering`: this request's prompt from
   * renderPrompt(request), so it is not rendered again.
   */
  async *generate(
    request: GenerateRequest,
    rendering?: PromptRendering,
  ): AsyncGenerator<GenerationEvent, void, undefined> {
    const start = performance.now();
    if (this.#closed) throw new EngineError("ENGINE_CLOSED", "engine is closed");
    // Its prompt or messages checked once: by renderPrompt when it made `rendering`, else here, before
    // #render. Not again with a rendering: renderPrompt refused this very request (the identity is
    // checked below) unless it passed, and generate reads neither its prompt nor its messages then
    // (the tokens and the template's stop rules are the rendering's); a caller's later edit of them
    // would change nothing generated.
    if (rendering === undefined) checkPromptOrMessages(request);
    const params = checkParameters(request, this.info.contextSize);
    // Its stop strings likewise: with a rendering, its stop rules were made from them (renderPrompt).
    if (rendering === undefined) checkStop(request);
    if (rendering !== undefined && rendering.request !== request) {
      throw new EngineError("ENGINE_REQUEST", "generate: the prompt rendering belongs to another request");
    }
    if (rendering === undefined && "messages" in request) checkMessages(request);
    // Rendered at once, but for a new shape of an operator's Jinja template (#render). Not a plain
    // `await`: a prompt rendered at once reaches the sequence queue in the same turn as this first
    // next(), so requests queue (or are refused ENGINE_BUSY) in their order of arrival, before what
    // the caller does next: a stats read, an abort, another request (test/engine/engine.test.ts
    // "one sequence": four of its tests fail with a plain await).
    const rendered = rendering?.rendered ?? this.#render(request);
    const prompt = rendered instanceof Promise ? await rendered : rendered;
    if (prompt.tokens.length >= this.info.contextSize) {
      throw new EngineError(
        "PROMPT_TOO_LONG",
        `prompt: expected fewer than ${this.info.contextSize} tokens (context size), found ${prompt.tokens.length}`,
      );
    }
    const signal = anySignal(request.signal, this.#closing.signal);
    const slot = await this.#pool.acquire(signal, (free) => pickSlot(free, request.tenant));
    const acquired = performance.now();
    let finished!: () => void;
    const running = new Promise<void>((resolve) => (finished = resolve));
    this.#running.add(running);
    let reusable = false;
    try {
      const cachedPromptTokens = await this.#editSequence(() => prepareSequence(slot, prompt.tokens, request.tenant));
      const output = new OutputText(
        (tokens, lastTokens) => this.#model.detokenize(tokens, false, lastTokens),
        prompt.rules,
        prompt.tokens,
      );
      const limit = Math.min(params.maxTokens, this.info.contextSize - prompt.tokens.length);
      let completionTokens = 0;
      let firstTokenAt: number | undefined;
      let stopReason: StopReason = "eog";
      if (!signal.aborted) {
        const tokens = slot.sequence.evaluate(prompt.tokens.slice(cachedPromptTokens), {
          temperature: params.temperature,
          topP: params.topP,
          ...(params.seed === undefined ? {} : { seed: params.seed }),
        });
        for await (const token of tokens) {
          completionTokens++;
          firstTokenAt ??= performance.now();
          const step = output.push(token);
          if (step.text !== "") yield { type: "text", text: step.text };
          if (step.stop) {
            stopReason = "stop";
            break;
          }
          if (signal.aborted) {
            stopReason = "abort";
            break;
          }
          if (completionTokens >= limit) {
            stopReason = limit === params.maxTokens ? "maxTokens" : "contextFull";
            break;
          }
          // Another request's edit waits for the batch loop to end: asking for the next token only
          // after it lets the loop end (#editSequence). An abort during that wait is seen before the
          // next token is asked for, not after it.
          if (this.#edits.size > 0) {
            await Promise.allSettled(this.#edits);
            if (signal.aborted) {
              stopReason = "abort";
              break;
            }
          }
        }
      } else {
        stopReason = "abort";
      }
      const rest = output.finish();
      if (rest !== "") yield { type: "text", text: rest };
      const end = performance.now();
      reusable = stopReason !== "abort";
      yield {
        type: "done",
        stopReason,
        usage: {
          promptTokens: prompt.tokens.length,
          cachedPromptTokens,
          completionTokens,
          queueMs: acquired - start,
          ttftMs: (firstTokenAt ?? end) - start,
          totalMs: end - start,
          tokensPerSecond: decodeRate(completionTokens, acquired, firstTokenAt, end),
        },
      };
    } catch (error) {
      if (error instanceof EngineError) throw error;
      // The native error text cannot contain the prompt, but keep it as the cause, not the message.
      throw new EngineError("GENERATION_FAILED", "generation failed in the model runtime", { cause: error });
    } finally {
      await this.#releaseSlot(slot, reusable ? request.tenant : undefined);
      this.#running.delete(running);
      finished();
    }
  }

  /** Run a generation to its end and collect the text. */
  async complete(request: GenerateRequest): Promise<GenerationResult> {
    let text = "";
    for await (const event of this.generate(request)) {
      if (event.type === "text") text += event.text;
      else return { text, stopReason: event.stopReason, usage: event.usage };
    }
    throw new EngineError("GENERATION_FAILED", "generation ended without a final event");
  }

  /**
   * Refuse new requests, end running ones after their current token, free the model and remove its
   * private copy (tried whatever freeing does; both failing: an AggregateError, closeThenRemoveCopy).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#pool.close();
    this.#shapes?.close();
    this.#closing.abort(new EngineError("ENGINE_CLOSED", "engine is closing"));
    // Running generations end at their next token; one whose consumer stopped pulling is not
    // waited for forever: after the grace period its sequence is disposed under it.
    await Promise.race([Promise.all(this.#running), sleep(CLOSE_GRACE_MS)]);
    // The copy is removed whatever freeing the model does; when both fail, neither error is lost.
    await closeThenRemoveCopy(
      async () => {
        await this.#context.dispose();
        await this.#model.dispose();
        await this.#llama.dispose();
      },
      this.#staged,
      "closing the engine",
      "freeing the model",
    );
  }

  /**
   * Run an edit of a sequence's cached tokens (clear it, or erase what follows a reused prefix).
   * node-llama-cpp edits under the context's lock, which its batch loop holds for as long as any
   * decode is queued; with two or more sequences generating one nearly always is (the one sampled
   * last asks for its next token while the next batch is decoded), so an edit waited for their
   * whole generations: a request arriving while two others generated got its first token when they
   * had ended (test/engine/engine.test.ts, "a request arriving while two others generate"). So while
   * an edit is pending, running generations ask for their next token only after it: the loop ends
   * after the batch in flight, the edit runs, and they go on in the next batch, together with the
   * request that made the edit.
   */
  async #editSequence<T>(edit: () => Promise<T>): Promise<T> {
    const pending = edit();
    this.#edits.add(pending);
    try {
      return await pending;
    } finally {
      this.#edits.delete(pending);
    }
  }

  async #releaseSlot(slot: Slot, keepForTenant: string | undefined): Promise<void> {
    try {
      if (keepForTenant === undefined && !this.#context.disposed) {
        await this.#editSequence(() => slot.sequence.clearHistory());
      }
      slot.tenant = keepForTenant;
    } catch {
      slot.tenant = undefined;
    } finally {
      this.#pool.release(slot);
    }
  }

  /**
   * `request`'s prompt, rendered and tokenized: at once, or, for a conversation whose shape an
   * operator's Jinja template has not rendered on its worker yet, once it has (a promise).
   */
  #render(request: GenerateRequest): RenderedPrompt | Promise<RenderedPrompt> {
    if ("messages" in request) {
      // Its messages checked by the caller (checkMessages: renderPrompt, generate).
      // On this thread: a named wrapper runs no template, and Cloister's own template loops over the
      // messages only (at most 256, checkMessages). An operator's Jinja template (pinned, or auto's choice) may loop
      // on some conversation the boot's trial did not try; it sees the conversation's shape only (its
      // roles, as placeholders: engine/template-shapes.ts), so each new shape is rendered first on a
      // worker within a limit (one round trip per new shape), and one that did not render there is
      // refused (CHAT_TEMPLATE_REFUSED) rather than rendered here (docs/deploy.md, "jinjaTemplate").
      const shape = this.#shapes?.shapeOf(request.messages.map((message) => message.role));
      const checking = shape === undefined ? null : this.#shapes?.check(shape, request.signal);
      if (checking != null) return checking.then(() => this.#renderChat(request, shape));
      return this.#renderChat(request, shape);
    }
    const stopTexts = request.stop ?? [];
    const bos = this.#model.tokens.bos;
    const prependBos = this.#model.tokens.shouldPrependBosToken && bos !== null;
    const tokens = this.#model.tokenize(request.prompt, false, prependBos ? "trimLeadingSpace" : undefined);
    if (prependBos && tokens[0] !== bos) tokens.unshift(bos);
    return { tokens, rules: stopRules(this.#model, [], stopTexts) };
  }

  /** A chat request's prompt; `shape`: its shape, which the operator's Jinja template rendered on its worker. */
  #renderChat(request: ChatRequest, shape: string | undefined): RenderedPrompt {
    const history: ChatHistoryItem[] = request.messages.map(toHistoryItem);
    history.push({ type: "model", response: [] });
    let state: ReturnType<ChatWrapper["generateContextState"]>;
    try {
      state = this.#chatWrapper.generateContextState({ chatHistory: history });
    } catch (error) {
      if (shape === undefined || this.#shapes === null) throw error;
      // The same rendering as the worker's but for this thread's smaller stack (V8's stack overflow):
      // refused, this request and its shape from now on, never thrown as a crash.
      if (isStackOverflow(error)) throw this.#shapes.refuse(shape, error);
      // Anything else (another RangeError too: a string or array too long, from this request's
      // huge text) is not the shape's (the template sees placeholders; the worker rendered this
      // shape) but this request's, whose text node-llama-cpp places after the template has run:
      // this request only, not the shape for every tenant, and without the error's message, which
      // may quote the text.
      throw new EngineError(
        "CHAT_TEMPLATE_REFUSED",
        `messages: expected a conversation the model's chat template (tokenizer.chat_template) renders, found one whose text it failed on (${error instanceof Error ? error.name : typeof error}); this request is refused, its shape is not`,
      );
    }
    const tokens = state.contextText.tokenize(this.#model.tokenizer);
    return { tokens, rules: stopRules(this.#model, state.stopGenerationTriggers, request.stop ?? []) };
  }
}

/**
 * V8's message for a stack overflow: node-llama-cpp and its JavaScript Jinja engine rethrow a render's
 * error as it was thrown. A constant of V8's (the same on the main thread, in a worker, under any
 * --stack-size), so not taken from an overflow of this thread's own at load: that took ~1.4 ms (~19 ms
 * with a 4 MB stack), and under a --stack-size larger than the thread's real stack it overran that
 * stack (a segfault) before the enclave had started.
 */
const STACK_OVERFLOW_MESSAGE = "Maximum call stack size exceeded";

/** Whether `error` is V8's stack overflow: a RangeError with V8's message (not "Invalid string length"). */
function isStackOverflow(error: unknown): boolean {
  return error instanceof RangeError && error.message === STACK_OVERFLOW_MESSAGE;
}

type Settings = {
  expectedSha256: string;
  sequences: number;
  maxQueue: number;
  contextSize: number;
  gpu: "off" | "auto";
  threads: number | undefined;
  chatTemplateLimitMs: number | undefined;
};

function checkOptions(options: EngineOptions): Settings {
  const expected = options.expectedSha256.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(expected)) {
    throw new EngineError(
      "ENGINE_OPTIONS",
      `expectedSha256: expected 64 hex digits, found "${options.expectedSha256}"`,
    );
  }
  const sequences = intIn("sequences", options.sequences ?? DEFAULT_SEQUENCES, 1, MAX_SEQUENCES);
  const maxQueue = intIn("maxQueue", options.maxQueue ?? DEFAULT_MAX_QUEUE, 0, 100_000);
  const contextSize = intIn("contextSize", options.contextSize ?? DEFAULT_CONTEXT_SIZE, 16, 1 << 20);
  const threads = options.threads === undefined ? undefined : intIn("threads", options.threads, 1, 1024);
  const gpu = options.gpu ?? "off";
  if (gpu !== "off" && gpu !== "auto") {
    throw new EngineError("ENGINE_OPTIONS", `gpu: expected "off" or "auto", found "${String(gpu)}"`);
  }
  const chatTemplateLimitMs =
    options.chatTemplateLimitMs === undefined
      ? undefined
      : intIn("chatTemplateLimitMs", options.chatTemplateLimitMs, 1, 600_000);
  return { expectedSha256: expected, sequences, maxQueue, contextSize, gpu, threads, chatTemplateLimitMs };
}

type CheckedParameters = { maxTokens: number; temperature: number; topP: number; seed: number | undefined };

/**
 * The request's sampling and limits (its prompt or messages and its stop strings are checked apart:
 * checkPromptOrMessages, checkMessages, checkStop).
 */
function checkParameters(request: GenerateRequest, contextSize: number): CheckedParameters {
  const maxTokens = intIn("maxTokens", request.maxTokens ?? DEFAULT_MAX_TOKENS, 1, contextSize, "ENGINE_REQUEST");
  const temperature = numberIn("temperature", request.temperature ?? 0, 0, 2);
  const topP = numberIn("topP", request.topP ?? 1, Number.MIN_VALUE, 1);
  let seed = request.seed === undefined ? undefined : intIn("seed", request.seed, 0, 2 ** 32 - 1, "ENGINE_REQUEST");
  // node-llama-cpp's default seed is the current second: two requests in the same second would
  // sample identically. Without an explicit seed, draw one from the CSPRNG.
  if (seed === undefined && temperature > 0) seed = randomInt(0, 2 ** 31);
  if (request.tenant !== undefined && (typeof request.tenant !== "string" || request.tenant === "")) {
    throw new EngineError("ENGINE_REQUEST", "tenant: expected a non-empty string when present");
  }
  return { maxTokens, temperature, topP, seed };
}

/** At most MAX_STOP_STRINGS non-empty strings: generate's, and renderPrompt's, whose stop rules hold them. */
function checkStop(request: GenerateRequest): void {
  const stop = request.stop ?? [];
  if (!Array.isArray(stop) || stop.length > MAX_STOP_STRINGS) {
    throw new EngineError("ENGINE_REQUEST", `stop: expected at most ${MAX_STOP_STRINGS} strings`);
  }
  stop.forEach((s: unknown, i: number) => {
    if (typeof s !== "string" || s.length === 0) {
      throw new EngineError("ENGINE_REQUEST", `stop[${i}]: expected a non-empty string`);
    }
  });
}

/**
 * Exactly one of prompt or messages, and a prompt that is a string: the service's schema's check, for
 * the engine's in-process callers too (renderPrompt, generate), who would otherwise get a TypeError.
 */
function checkPromptOrMessages(request: GenerateRequest): void {
  const has = (key: string): boolean => Object.hasOwn(request, key);
  if (has("prompt") === has("messages")) {
    throw new EngineError("ENGINE_REQUEST", "request: expected exactly one of prompt or messages");
  }
  if ("prompt" in request && typeof request.prompt !== "string") {
    throw new EngineError("ENGINE_REQUEST", `prompt: expected a string, found ${typeof request.prompt}`);
  }
}

/** A chat request's messages: a non-empty array of messages of the three roles, each with text. */
function checkMessages(request: ChatRequest): void {
  if (!Array.isArray(request.messages) || request.messages.length === 0) {
    throw new EngineError("ENGINE_REQUEST", "messages: expected a non-empty array");
  }
  // The service's schema's bound, for the engine's in-process callers too: the shapes' keys
  // (engine/template-shapes.ts) and Cloister's own template's loop (#render) rest on it.
  if (request.messages.length > REQUEST_LIMITS.maxMessages) {
    throw new EngineError(
      "ENGINE_REQUEST",
      `messages: expected 1..${REQUEST_LIMITS.maxMessages} messages, found ${request.messages.length}`,
    );
  }
  // By index, not forEach, which skips a sparse array's holes (an in-process caller's [m, <hole>]).
  for (let i = 0; i < request.messages.length; i++) {
    const message = request.messages[i] as ChatMessage;
    if (typeof message !== "object" || message === null) {
      throw new EngineError(
        "ENGINE_REQUEST",
        `messages[${i}]: expected an object with role and content, found ${message === null ? "null" : typeof message}`,
      );
    }
    if (message.role !== "system" && message.role !== "user" && message.role !== "assistant") {
      throw new EngineError(
        "ENGINE_REQUEST",
        `messages[${i}].role: expected system, user or assistant, found ${roleFound(message.role)}`,
      );
    }
    if (typeof message.content !== "string") {
      throw new EngineError(
        "ENGINE_REQUEST",
        `messages[${i}].content: expected a string, found ${typeof message.content}`,
      );
    }
  }
}

/**
 * A refused role as a message shows it: its type, and a string's length, never its text (a message's
 * text passed by mistake as its role would be shown; String() may throw besides).
 */
function roleFound(role: unknown): string {
  return typeof role === "string" ? `a string of ${role.length} characters` : typeof role;
}

function intIn(
  name: string,
  value: number,
  min: number,
  max: number,
  code: "ENGINE_OPTIONS" | "ENGINE_REQUEST" = "ENGINE_OPTIONS",
): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new EngineError(code, `${name}: expected an integer in ${min}..${max}, found ${String(value)}`);
  }
  return value;
}

function numberIn(name: string, value: number, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new EngineError("ENGINE_REQUEST", `${name}: expected a number in ${min}..${max}, found ${String(value)}`);
  }
  return value;
}

function toHistoryItem(message: ChatMessage): ChatHistoryItem {
  switch (message.role) {
    case "system":
      return { type: "system", text: message.content };
    case "user":
      return { type: "user", text: message.content };
    case "assistant":
      return { type: "model", response: [message.content] };
  }
}

/**
 * Sort the chat template's stop triggers: a trigger made of one special token becomes a stop token,
 * one made only of plain text a stop text, anything else a token sequence.
 */
function stopRules(model: LlamaModel, triggers: readonly LlamaText[], extraTexts: readonly string[]): StopRules {
  const tokens = new Set<Token>();
  const tokenSequences: Token[][] = [];
  const texts = [...extraTexts];
  for (const trigger of triggers) {
    const plain = trigger.values.every((value) => typeof value === "string");
    if (plain) {
      const text = trigger.toString();
      if (text !== "") texts.push(text);
      continue;
    }
    const hasSpecial = trigger.values.some(
      (value) => value instanceof SpecialToken || value instanceof SpecialTokensText,
    );
    const sequence = trigger.tokenize(model.tokenizer);
    if (sequence.length === 1 && hasSpecial) tokens.add(sequence[0]!);
    else if (sequence.length > 0) tokenSequences.push(sequence);
  }
  return { tokens, tokenSequences, texts };
}

/**
 * Prefer a free sequence that already holds this tenant's state, then an empty one, then any (it
 * is cleared before use).
 */
function pickSlot(free: readonly Slot[], tenant: string | undefined): Slot {
  if (tenant !== undefined) {
    const own = free.find((slot) => slot.tenant === tenant);
    if (own !== undefined) return own;
  }
  return free.find((slot) => slot.tenant === undefined) ?? free[0]!;
}

/**
 * Make the sequence ready for `tokens`: keep the common prefix only when it holds the same tenant's
 * state, otherwise start empty. Returns how many prompt tokens are already evaluated.
 */
async function prepareSequence(slot: Slot, tokens: Token[], tenant: string | undefined): Promise<number> {
  const sequence = slot.sequence;
  if (tenant === undefined || slot.tenant !== tenant) {
    slot.tenant = undefined;
    if (sequence.nextTokenIndex > 0) await sequence.clearHistory();
    return 0;
  }
  // At least the last prompt token must be evaluated to get logits for the first new token.
  const keep = Math.min(sequence.compareContextTokens(tokens).firstDifferentIndex, tokens.length - 1);
  if (keep < sequence.nextTokenIndex) {
    await sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
  }
  return Math.min(keep, sequence.nextTokenIndex);
}

function decodeRate(tokens: number, acquired: number, firstTokenAt: number | undefined, end: number): number {
  if (tokens >= 2 && firstTokenAt !== undefined && end > firstTokenAt) {
    return ((tokens - 1) * 1000) / (end - firstTokenAt);
  }
  return end > acquired ? (tokens * 1000) / (end - acquired) : 0;
}

function anySignal(request: AbortSignal | undefined, engine: AbortSignal): AbortSignal {
  return request === undefined ? engine : AbortSignal.any([request, engine]);
}

type FileIdentity = { dev: number; ino: number; size: number; mtimeMs: number };

async function statModel(path: string): Promise<FileIdentity> {
  const info = await stat(path).catch((error: unknown) => {
    throw modelNotFound(path, error);
  });
  if (!info.isFile()) throw new ModelNotAFileError(path, info);
  return { dev: info.dev, ino: info.ino, size: info.size, mtimeMs: info.mtimeMs };
}

function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/** Constant-time comparison of two lowercase hex digests (equal length is checked first). */
function digestsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, "utf8");
  const y = Buffer.from(b, "utf8");
  return x.length === y.length && timingSafeEqual(x, y);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function progressPrinter(): (progress: number) => void {
  let last = -1;
  return (progress) => {
    const percent = Math.floor(progress * 100);
    if (percent === last) return;
    last = percent;
    process.stderr.write(`\rloading model ${percent}%`);
  };
}
