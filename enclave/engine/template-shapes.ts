/**
 * The conversation shapes an operator's Jinja chat template may be rendered for on the enclave's
 * event loop (engine.ts #render), each rendered first on a worker thread within a limit.
 *
 * A Jinja wrapper (a pinned "jinjaTemplate", or auto's choice of node-llama-cpp's Jinja wrapper for
 * an operator's template) renders the template at every chat request, on the enclave's thread. What
 * the template sees there (node-llama-cpp 3.22's JinjaTemplateChatWrapper, with the history alone,
 * as the engine calls it: no functions, no system prompt of its own) is the conversation's shape and
 * nothing of its text: the list of messages after adjacent messages of one role are joined, each
 * with its role (named by the wrapper's fixed role names) and a placeholder for its content (a random
 * id of the form W…W, which node-llama-cpp swaps for the text only after rendering), the same kind
 * of placeholders as bos_token, eos_token and eot_token, the wrapper's fixed enable_thinking, and
 * add_generation_prompt (node-llama-cpp tries without it, then with it). So the template's work
 * depends on the shape only: a shape that rendered on the worker renders alike here. Two things
 * besides the shape reach it: the placeholders' characters, drawn afresh at each rendering and never
 * chosen by a caller, and the time (the template's strftime_now): a template that branches on either
 * (not on a message's role or count) could take another path here than it took on the worker.
 *
 * That holds for the worker's wrapper only if it is the engine's: not two wrappers built with
 * node-llama-cpp's defaults that happen to agree, since every option of the wrapper (its role names,
 * reasoning, the conversion of system messages, the joining of adjacent messages…) changes what the
 * template sees. So the engine's wrapper is described (chat-wrapper.ts describeJinjaWrapper: its
 * public options, from which it derives the rest), a worker started for it builds its wrapper from
 * those options and is refused unless described alike, and the boot's kept worker is used only when described alike
 * (else ended, said on stderr, and one started for the engine's wrapper). A worker started for the
 * engine's wrapper that holds another will not be followed by one that does not (the same code, options
 * and inputs): said once on stderr (the option named, never its value), and every new shape is refused
 * from then on, CHAT_WRAPPER_FAILED, without starting a worker (the shapes vetted before still render).
 *
 * What it checks: before a shape is first rendered here, the worker (the boot's, kept: a pinned
 * "jinjaTemplate"'s, or auto's when it chose the Jinja wrapper; or startShapeRenderer's, one at a
 * time, with the engine's wrapper and the boot's heap limit) renders it with placeholder text, within
 * `limitMs` (SHAPE_LIMIT_MS): a shape that rendered is kept (vetted), at most SHAPES_KEPT of them, the
 * least recently used dropped; one that did not (it timed out: the worker is ended, and the next
 * shape gets a new one; or the template failed on it, or the worker's heap ran out while it
 * rendered) is refused at once from then on, CHAT_TEMPLATE_REFUSED, without rendering it again. A
 * worker that could not start, or ended for another cause, refuses no shape (the first time: see
 * #render): the request is ENGINE_BUSY, and the next new shape starts another. Requests of one shape waiting for it
 * share its rendering; at most SHAPES_WAITING shapes wait for the worker (more: ENGINE_BUSY).
 * Cost: one worker round trip per new shape; a vetted shape costs a lookup in a Map.
 *
 * What it does not check: it does not bound a named wrapper or Cloister's own template (which run no
 * operator's template: TemplateShapes.for gives none for them); it does not look at the text.
 */
import { type ChatWrapper, JinjaTemplateChatWrapper, type LlamaModel } from "node-llama-cpp";
import { CHAT_TEMPLATE } from "../../models/llama-layout.ts";
import {
  describeJinjaWrapper,
  type ShapeRenderer,
  type ShapeRendering,
  startShapeRenderer,
  WrapperMismatchError,
  wrapperDifference,
} from "./chat-wrapper.ts";
import { EngineError } from "./errors.ts";

/**
 * How long the worker may take to render one new shape, in ms. Measured on a 2-core machine at a
 * load of 10 (a Qwen 2.5-style ChatML template, conversations of 2 to 121 messages): the round trip
 * with the worker's rendering took 3-6 ms (median), 18 ms at the 90th percentile, the rendering
 * itself on the event loop 2.5-5 ms. The limit is some 50 times the slow end, so that a loaded
 * machine does not refuse a real template's shape (a refusal is kept), while a template that loops
 * on a shape holds only the checks of new shapes (never the event loop) for that long.
 */
export const SHAPE_LIMIT_MS = 1_000;

/**
 * Shapes kept (vetted or refused), least recently used dropped: a key of at most 257 letters (256
 * messages, REQUEST_LIMITS.maxMessages, as the engine's checkMessages bounds them; and the model's
 * turn) each, and for a refused one its error (with the cause's message).
 */
export const SHAPES_KEPT = 4096;

/** New shapes that may wait for the one worker; one more is refused with ENGINE_BUSY. */
export const SHAPES_WAITING = 64;

type Verdict = { refused: false } | { refused: true; error: EngineError };

/**
 * A new shape queued for the worker: its verdict (settled by the queue once it has rendered), the
 * requests waiting for it, and whether its rendering has begun. Held by the queue (#waiting) and the
 * requests waiting for it only: one dropped from the queue (every request waiting for it gone before
 * it began) is held by nothing.
 */
class QueuedShape {
  readonly verdict: Promise<Verdict>;
  readonly settle: (verdict: Verdict) => void;
  waiters = 0;
  started = false;
  constructor() {
    let settle!: (verdict: Verdict) => void;
    this.verdict = new Promise<Verdict>((resolve) => {
      settle = resolve;
    });
    this.settle = settle;
  }
}

/** A message's role, as the engine's requests have them (checked before their shape is taken). */
type Role = "system" | "user" | "assistant";

const ROLE_LETTERS: Readonly<Record<Role, string>> = { system: "s", user: "u", assistant: "a" };

export class TemplateShapes {
  readonly #model: LlamaModel;
  readonly #limitMs: number;
  /**
   * Whether the engine's wrapper joins adjacent messages of one role (node-llama-cpp's default): the
   * template sees them as one. Decides the shapes (shapeOf) and the worker's rendering of them (sent
   * with each: its wrapper is built apart, and would otherwise join by its own setting).
   */
  readonly #joined: boolean;
  /**
   * The engine's wrapper, described (chat-wrapper.ts describeJinjaWrapper): the shape worker's is built
   * from its options, and used only when described alike, so its verdicts are the engine's rendering's.
   */
  readonly #wrapper: string;
  readonly #kept = new Map<string, Verdict>();
  /**
   * The shapes queued for the worker, in their order of arrival (a Map keeps it), the one rendering
   * first: each rendered after the one before it has ended (#pump), one dropped removed at once.
   */
  readonly #waiting = new Map<string, QueuedShape>();
  /** Shapes whose worker ended for a cause not their own while they rendered, once (#render). */
  readonly #struck = new Set<string>();
  /** Whether #pump is rendering the queue's shapes (it stops when none is left). */
  #pumping = false;
  #renderer: Promise<ShapeRenderer> | null = null;
  /**
   * Set when a worker started for the engine's wrapper was found to hold another (WrapperMismatchError):
   * every worker is built by the same code from the same options, so none will hold the engine's. Every
   * new shape is then refused with it, for good (the enclave restarts to try again), and none starts a
   * worker; the shapes vetted before are still served.
   */
  #mismatch: EngineError | null = null;
  /** Aborted by close(): a worker still starting is ended at once. */
  readonly #closing = new AbortController();
  #closed = false;

  /**
   * The shapes' check for `wrapper`, or null when it needs none: a wrapper other than node-llama-cpp's
   * Jinja wrapper runs no template, and Cloister's own template loops over the messages only (`kept`,
   * a worker handed over, is then ended).
   */
  static for(
    wrapper: ChatWrapper,
    model: LlamaModel,
    limitMs = SHAPE_LIMIT_MS,
    kept: ShapeRenderer | null = null,
  ): TemplateShapes | null {
    if (!(wrapper instanceof JinjaTemplateChatWrapper) || wrapper.template === CHAT_TEMPLATE) {
      kept?.end();
      return null;
    }
    const shapes = new TemplateShapes(model, limitMs, wrapper);
    // `kept`: the boot's worker for a pinned "jinjaTemplate" or auto's choice of the Jinja wrapper
    // (ChatWrapperPlan.keptRenderer), used when its wrapper is described as this one is (both built
    // with node-llama-cpp's defaults: the boot's are), else ended. Else its worker starts now, its
    // wrapper built from this one's options (importing node-llama-cpp and building the wrapper take
    // about 0.5 s), not at the first request; one that fails to start is started again for the next shape.
    const difference = kept === null ? null : wrapperDifference(shapes.#wrapper, kept.description);
    if (kept !== null && difference !== null) {
      // Said (not an error: the boot's is built with node-llama-cpp's defaults, the engine's may not
      // be), since the boot's worker is ended and the one started for the engine's wrapper costs another
      // 0.5 s. The difference is named, never its value.
      say(
        `the boot's template worker holds another Jinja wrapper than the engine's (${difference}): ended, another started for the engine's`,
      );
      kept.end();
    }
    shapes.#renderer = kept !== null && difference === null ? Promise.resolve(kept) : shapes.#startRenderer();
    // One that does not hold the engine's wrapper is said now, at the boot, not at the first request.
    shapes.#renderer.catch((cause: unknown) => shapes.#mismatched(cause));
    return shapes;
  }

  private constructor(model: LlamaModel, limitMs: number, wrapper: JinjaTemplateChatWrapper) {
    this.#model = model;
    this.#limitMs = limitMs;
    this.#joined = wrapper.joinAdjacentMessagesOfTheSameType;
    try {
      this.#wrapper = describeJinjaWrapper(wrapper);
    } catch (cause) {
      // An option JSON cannot describe as it is (its path named, never its value): no worker could be
      // compared with this wrapper, so none is trusted with its shapes (fail closed, at the boot).
      const found = cause instanceof Error ? cause.message : typeof cause;
      throw new EngineError("CHAT_WRAPPER_FAILED", `chat wrapper: ${found}`, { cause });
    }
  }

  /**
   * Keeps `cause` when it is a worker's wrapper not the engine's (and not a close's end of its start),
   * said once on stderr: the refusal of every new shape from now on, or null when it is not.
   */
  #mismatched(cause: unknown): EngineError | null {
    if (!(cause instanceof WrapperMismatchError) || this.#closed) return null;
    if (this.#mismatch === null) {
      say(
        `the template worker holds another Jinja wrapper than the engine's (${cause.difference}): every new conversation shape is refused (CHAT_WRAPPER_FAILED) until the enclave restarts`,
      );
      // The client sees it as an error frame's detail, cut past 200 characters (MAX_ERROR_DETAIL_LENGTH):
      // 192 with the longest option name of node-llama-cpp 3's Jinja wrapper.
      this.#mismatch = new EngineError(
        "CHAT_WRAPPER_FAILED",
        `chat template: expected a shape worker with the engine's Jinja wrapper, found another (${cause.difference}); new shapes are refused until the enclave restarts`,
        { cause },
      );
    }
    return this.#mismatch;
  }

  /** A shape worker whose wrapper is the engine's (startShapeRenderer checks its description). */
  #startRenderer(): Promise<ShapeRenderer> {
    return startShapeRenderer(this.#model, this.#closing.signal, this.#wrapper);
  }

  /**
   * The shape of a conversation of `roles` (the engine's checkMessages refuses any other role first)
   * as the template sees it: a letter per message (s, u, a), the model's turn the engine adds at the
   * end included, adjacent messages of one role as one when the wrapper joins them. Its last letter
   * is that turn: the worker renders the shape as its messages then the model's empty turn
   * (chat-wrapper.ts shapeHistory), as the engine renders the request.
   */
  shapeOf(roles: readonly Role[]): string {
    let shape = "";
    for (const role of [...roles, "assistant" as const]) {
      const letter = ROLE_LETTERS[role];
      if (!this.#joined || !shape.endsWith(letter)) shape += letter;
    }
    return shape;
  }

  /**
   * Whether `shape` may be rendered on the enclave's thread. A shape seen before is answered at once,
   * synchronously: null when it rendered on the worker, CHAT_TEMPLATE_REFUSED thrown when it did not
   * (so the engine's requests keep their order of arrival in its queue). A new shape gives a promise
   * that resolves once it has rendered on the worker, or rejects with CHAT_TEMPLATE_REFUSED when it
   * did not, ENGINE_BUSY when too many shapes wait, ENGINE_CLOSED once closed, ENGINE_ABORTED at
   * once when `signal` (the request's) aborts: its shape's rendering, if not begun and no other
   * request waits for it, is then dropped from the queue (and its place among SHAPES_WAITING freed);
   * one under way goes on, and its verdict is kept.
   */
  check(shape: string, signal?: AbortSignal): Promise<void> | null {
    const known = this.#kept.get(shape);
    if (known === undefined) return this.#wait(shape, signal);
    // Most recently used last: the first in the Map is the one dropped.
    this.#kept.delete(shape);
    this.#kept.set(shape, known);
    if (known.refused) throw known.error;
    return null;
  }

  /** Refuses `shape` from now on: it failed on the enclave's thread (`cause`), where the worker rendered it. */
  refuse(shape: string, cause: unknown): EngineError {
    const error = refusal(shape, "failed on the enclave's thread (its stack is smaller than the worker's)", cause);
    this.#keep(shape, { refused: true, error });
    return error;
  }

  /** Ends the worker (one still starting at once); shapes still waiting are refused (ENGINE_CLOSED). */
  close(): void {
    this.#closed = true;
    this.#closing.abort(closed());
    const renderer = this.#renderer;
    this.#renderer = null;
    renderer?.then((r) => r.end()).catch(() => {});
  }

  async #wait(shape: string, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) throw aborted(signal);
    // Closed first: the mismatch is the refusal of an open engine's new shapes, not a closed one's.
    if (this.#closed) throw closed();
    if (this.#mismatch !== null) throw this.#mismatch;
    const entry = this.#queued(shape);
    entry.waiters++;
    let onAbort = (): void => {};
    const gone = new Promise<never>((_, reject) => {
      onAbort = () => reject(aborted(signal as AbortSignal));
    });
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const verdict = await (signal === undefined ? entry.verdict : Promise.race([entry.verdict, gone]));
      if (verdict.refused) throw verdict.error;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      entry.waiters--;
      if (entry.waiters === 0 && !entry.started && this.#waiting.get(shape) === entry) {
        // No one waits for it any more: dropped from the queue, its place freed; nothing holds it.
        this.#waiting.delete(shape);
      }
    }
  }

  #queued(shape: string): QueuedShape {
    let waiting = this.#waiting.get(shape);
    if (waiting === undefined) {
      if (this.#waiting.size >= SHAPES_WAITING) {
        throw new EngineError(
          "ENGINE_BUSY",
          `chat template: expected at most ${SHAPES_WAITING} new conversation shapes waiting for its check, found ${SHAPES_WAITING} waiting; retry`,
        );
      }
      waiting = new QueuedShape();
      this.#waiting.set(shape, waiting);
      if (!this.#pumping) void this.#pump();
    }
    return waiting;
  }

  /**
   * Renders the queue's shapes one after another, in order, until none is left: so one shape at a
   * time reaches the worker (ShapeRenderer.render's rule), and a shape dropped from the queue is
   * simply not there when its turn would have come. #render resolves every outcome of the worker;
   * should it reject all the same (the worker's render does when that rule is broken: a bug), that
   * shape's requests are answered ENGINE_BUSY (retry; not kept), also those with no signal to stop
   * waiting by, and the queue goes on: never a rejection left unhandled (`void this.#pump()`), which
   * would end the process.
   */
  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      for (let next = this.#next(); next !== undefined; next = this.#next()) {
        const [shape, entry] = next;
        let verdict: Verdict;
        try {
          verdict = await this.#render(shape, entry);
        } catch (cause) {
          // Named by the rejection's kind, not its words; the cause is attached.
          const what = cause instanceof Error ? cause.name : typeof cause;
          const found = `found its render on that worker rejected (${what}), a bug: that worker was ended`;
          verdict = this.#closed ? { refused: true, error: closed() } : busy(found, cause);
        }
        entry.settle(verdict);
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** The first queued shape whose rendering has not begun. */
  #next(): [string, QueuedShape] | undefined {
    for (const queued of this.#waiting) if (!queued[1].started) return queued;
    return undefined;
  }

  /**
   * Renders `shape` on the worker (a new one if there is none), within the limit; rejects only when
   * the worker's render does (a bug: see the catch below), that worker ended first.
   *
   * Which failures refuse the shape for good (kept): only those of its own render, the one thing
   * the worker runs meanwhile: it was still rendering at the limit (the worker is ended), the
   * template threw on it, or the worker's heap ran out while it rendered. Any other end of the
   * worker is not the shape's, the first time: one that had ended before the shape was sent (it
   * failed or exited while idle, after another shape's render) renders it at once on a new worker;
   * one that failed or exited while it rendered, for a cause other than its heap (which the render,
   * synchronous and caught on the worker, does not cause that we know of), is answered ENGINE_BUSY
   * (retry: not kept) and the shape marked: the next request of it renders it on a new worker, and
   * if that worker ends alike while it renders, the shape is taken as the cause and refused.
   */
  async #render(shape: string, entry: QueuedShape): Promise<Verdict> {
    entry.started = true;
    try {
      for (let attempt = 0; ; attempt++) {
        if (this.#closed) return { refused: true, error: closed() };
        if (this.#mismatch !== null) return { refused: true, error: this.#mismatch };
        let renderer: ShapeRenderer;
        try {
          this.#renderer ??= this.#startRenderer();
          renderer = await this.#renderer;
        } catch (cause) {
          // Its start was ended by close(): the engine's refusal, not the shape's.
          if (this.#closed) return { refused: true, error: closed() };
          // Its wrapper is not the engine's: nor will the next worker's be (kept, not the shape's).
          const mismatch = this.#mismatched(cause);
          if (mismatch !== null) return { refused: true, error: mismatch };
          // Not kept, and not the shape's refusal: it was not tried, and the next request of it
          // starts a new worker (ENGINE_BUSY: retry, as a client does with a busy engine).
          this.#renderer = null;
          return busy("found none that started", cause);
        }
        let limit: NodeJS.Timeout | undefined;
        const outOfTime = new Promise<null>((resolve) => {
          // Set just before the shape is sent, it runs no sooner than the limit after (node's timer
          // clock, in ms). The worker's answer may have come in time but wait behind a long task that
          // held this thread past the limit (node runs the expired timer first): taken before the shape
          // is refused (answered()). An answer the worker sends after this look (in the microtasks
          // before #end ends it, whose end() takes it from the port and drops it) is refused with the
          // shape, rightly: it was not there at the look, so the worker was still rendering the limit's
          // time after the shape was sent (its render took the limit, less the port's delivery of the
          // shape, microseconds). Taking it would let those microtasks, not the limit, decide.
          limit = setTimeout(() => {
            if (!renderer.answered()) resolve(null);
          }, this.#limitMs);
        });
        let outcome: ShapeRendering | null;
        try {
          outcome = await Promise.race([renderer.render(shape, this.#joined), outOfTime]);
        } catch (cause) {
          // render rejects only when begun while another shape renders on its worker (its rule
          // broken, a bug: #pump sends one shape at a time; test/engine/shape-renderer-rule.test.ts):
          // the worker's state is then unknown, so it is ended and the next shape gets a new one;
          // #pump answers this shape's requests ENGINE_BUSY (template-shapes-render-rejects.test.ts).
          await this.#end(renderer);
          throw cause;
        } finally {
          clearTimeout(limit);
        }
        if (this.#closed) return { refused: true, error: closed() };
        if (outcome === null || (!outcome.rendered && (!outcome.sent || outcome.workerEnded))) {
          // Stopped (or it stopped, or had): the next shape gets a new worker.
          await this.#end(renderer);
        }
        let verdict: Verdict;
        if (outcome === null) {
          verdict = { refused: true, error: refusal(shape, `was still rendering after ${this.#limitMs} ms (stopped)`) };
        } else if (outcome.rendered) {
          verdict = { refused: false };
        } else if (!outcome.sent) {
          // Its worker had ended before (another cause): a new one, now; twice, the engine's want.
          if (attempt === 0) continue;
          return busy(`found none that stayed (${outcome.why})`, outcome.cause);
        } else if (outcome.byRender) {
          verdict = { refused: true, error: refusal(shape, `failed (${outcome.why})`, outcome.cause) };
        } else if (!this.#struck.has(shape)) {
          this.#strike(shape);
          return busy(`found its worker ended while the shape rendered (${outcome.why})`, outcome.cause);
        } else {
          const what = `ended its worker twice while it rendered (${outcome.why})`;
          verdict = { refused: true, error: refusal(shape, what, outcome.cause) };
        }
        this.#keep(shape, verdict);
        return verdict;
      }
    } finally {
      if (this.#waiting.get(shape) === entry) this.#waiting.delete(shape);
    }
  }

  /** Ends `renderer`, and forgets it if it is still the one shapes go to: the next shape gets a new worker. */
  async #end(renderer: ShapeRenderer): Promise<void> {
    renderer.end();
    if (this.#renderer !== null && (await this.#renderer.catch(() => null)) === renderer) this.#renderer = null;
  }

  /** Marks `shape` as rendering when its worker ended for another cause (at most SHAPES_KEPT marked). */
  #strike(shape: string): void {
    this.#struck.add(shape);
    if (this.#struck.size > SHAPES_KEPT) this.#struck.delete(this.#struck.values().next().value as string);
  }

  #keep(shape: string, verdict: Verdict): void {
    this.#struck.delete(shape);
    this.#kept.delete(shape);
    this.#kept.set(shape, verdict);
    if (this.#kept.size > SHAPES_KEPT) this.#kept.delete(this.#kept.keys().next().value as string);
  }
}

/** One line on the enclave's stderr about its template worker (names and reasons only, never a value). */
function say(line: string): void {
  process.stderr.write(`cloister enclave: chat template: ${line}\n`);
}

function aborted(signal: AbortSignal): EngineError {
  return new EngineError("ENGINE_ABORTED", "request aborted while its conversation's new shape waited for its check", {
    cause: signal.reason,
  });
}

function closed(): EngineError {
  return new EngineError("ENGINE_CLOSED", "engine is closed");
}

/** The engine's want of a worker for a new shape (`found`): not kept, not the shape's refusal. */
function busy(found: string, cause?: unknown): Verdict {
  const message = `chat template: expected a worker thread to check a new conversation shape on, ${found}; retry`;
  return { refused: true, error: new EngineError("ENGINE_BUSY", message, cause === undefined ? undefined : { cause }) };
}

function refusal(shape: string, what: string, cause?: unknown): EngineError {
  return new EngineError(
    "CHAT_TEMPLATE_REFUSED",
    `messages: expected a conversation the model's chat template (tokenizer.chat_template) renders on its worker thread within the limit, found one whose shape (${describe(shape)}) ${what}; this shape is refused`,
    cause === undefined ? undefined : { cause },
  );
}

/** The shape in words: its number of messages and its first roles (never any text). */
function describe(shape: string): string {
  const shown = shape.length > 24 ? `${shape.slice(0, 24)}…` : shape;
  return `${shape.length} messages with the model's turn, roles ${shown} (s system, u user, a assistant)`;
}
