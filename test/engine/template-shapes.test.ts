/**
 * An operator's Jinja template that loops, or fails, only on conversation shapes the boot never
 * tries (engine/template-shapes.ts): the engine boots, answers a conversation of another shape,
 * refuses the looping shape at its own limit (CHAT_TEMPLATE_REFUSED) while it serves other requests
 * meanwhile (the template never runs on its event loop), and renders each shape on the worker once:
 * a second request of a refused or a vetted shape makes no new worker rendering. The limit's timer
 * is held (test/helpers/held-timers.ts): each worker rendering sets one, so they are counted, and the
 * test, not the clock, decides when the limit is reached.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MessagePort, Worker } from "node:worker_threads";
import { JinjaTemplateChatWrapper } from "node-llama-cpp";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type ChatMessage, EngineError, type InferenceEngine, openInferenceEngine } from "../../enclave/engine.ts";
import { holdTimeouts } from "../helpers/held-timers.ts";
import { writeTemplateModel } from "./template-model.ts";

/** The engine's limit on one shape's rendering on the worker here: only its timers are held. */
const LIMIT_MS = 4321;

/**
 * Question/reply, but it loops for hours (10^10 turns of an empty loop) once a user message has
 * followed an assistant's twice, and fails (calls what is not a function) on a conversation that
 * begins with the assistant. node-llama-cpp's boot renders neither shape (its sample conversations
 * have at most one user message after an assistant's, and begin with the system or the user).
 */
const TEMPLATE =
  "{% set ns = namespace(turns=0, last='') %}{% for message in messages %}" +
  "{% if message['role'] == 'user' and ns.last == 'assistant' %}{% set ns.turns = ns.turns + 1 %}{% endif %}" +
  "{% set ns.last = message['role'] %}{% endfor %}" +
  "{% if ns.turns >= 2 %}{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}{% endif %}" +
  "{% if messages[0]['role'] == 'assistant' %}{{ not_a_function() }}{% endif %}" +
  "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}" +
  "{{ message['content'] + '\\n\\n' }}{% elif message['role'] == 'user' %}" +
  "{{ '### Question:\\n' + message['content'] + '\\n\\n' }}{% else %}" +
  "{{ '### Reply:\\n' + message['content'] + eos_token + '\\n\\n' }}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '### Reply:\\n' }}{% endif %}";

const user = (content: string): ChatMessage => ({ role: "user", content });
const assistant = (content: string): ChatMessage => ({ role: "assistant", content });
/** A user message after an assistant's twice: the template loops. */
const looping = (word: string): ChatMessage[] => [user(word), assistant(word), user(word), assistant(word), user(word)];

let dir: string;
let engine: InferenceEngine;
/** The model file under the template, and the options the engine is opened with. */
let opened: Parameters<typeof openInferenceEngine>[0];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-template-shapes-test-"));
  // The tiny model's shape and vocabulary, zero weights, under the template above.
  const path = join(dir, "looping-template.gguf");
  const { sha256 } = await writeTemplateModel(path, TEMPLATE);
  opened = {
    modelPath: path,
    expectedSha256: sha256,
    threads: 1,
    sequences: 2,
    contextSize: 256,
    chatWrapper: "jinjaTemplate",
    chatTemplateLimitMs: LIMIT_MS,
  };
  engine = await openInferenceEngine(opened);
});

afterAll(async () => {
  await engine?.close();
  await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  vi.restoreAllMocks();
});

function code(error: unknown): unknown {
  return error instanceof EngineError ? error.code : error;
}

describe("an operator's Jinja template that loops on a shape the boot never tried", () => {
  it("answers a conversation of another shape, rendering its shape on the worker once", async () => {
    const limits = holdTimeouts(LIMIT_MS);
    const first = await engine.complete({ messages: [user("What does the enclave do?")], maxTokens: 2 });
    expect(first.usage.promptTokens).toBeGreaterThan(0);
    // One rendering on the worker, its limit cleared once it had rendered.
    expect(limits.held.map(({ cleared, fired }) => ({ cleared, fired }))).toEqual([{ cleared: true, fired: false }]);
    // The same shape, other text: vetted already, no worker round trip.
    const again = await engine.renderPrompt({ messages: [user("And the host?")] });
    expect(again.tokenCount).toBeGreaterThan(0);
    expect(limits.held).toHaveLength(1);
  });

  it("refuses the looping shape at the engine's limit, serving other requests meanwhile, and refuses it again without rendering it", async () => {
    await engine.renderPrompt({ messages: [user("vetted before the test")] });
    const limits = holdTimeouts(LIMIT_MS);
    const ended = vi.spyOn(Worker.prototype, "terminate");
    const refused = engine.renderPrompt({ messages: looping("one") }).catch((error: unknown) => error);
    // The worker renders it (and loops): its limit's timer is set, and held.
    // (A bound on a hang only, as vitest's own: the render starts within milliseconds.)
    await vi.waitFor(() => expect(limits.held).toHaveLength(1), { timeout: 60_000 });
    // Meanwhile the event loop is free: a vetted shape is answered, a plain prompt too, and a new
    // shape waits for the worker (one shape at a time), its check started only after the looping one's.
    const answered = await engine.complete({ messages: [user("Still there?")], maxTokens: 2 });
    expect(answered.usage.promptTokens).toBeGreaterThan(0);
    expect((await engine.complete({ prompt: "The enclave", maxTokens: 2 })).usage.promptTokens).toBeGreaterThan(0);
    const queued = engine.renderPrompt({ messages: [{ role: "system", content: "Be brief." }, user("Hello")] });
    expect(limits.held).toHaveLength(1);
    expect(engine.stats).toEqual({ sequences: 2, busy: 0, queued: 0 });
    // The limit: the looping shape is refused, its worker ended; the queued shape gets a new one.
    expect(limits.held[0]?.fire()).toBe(true);
    const error = await refused;
    expect({ code: code(error), message: (error as Error).message }).toEqual({
      code: "CHAT_TEMPLATE_REFUSED",
      message:
        "messages: expected a conversation the model's chat template (tokenizer.chat_template) renders on its worker thread within the limit, found one whose shape (6 messages with the model's turn, roles uauaua (s system, u user, a assistant)) was still rendering after 4321 ms (stopped); this shape is refused",
    });
    expect(ended).toHaveBeenCalled();
    expect((await queued).tokenCount).toBeGreaterThan(0);
    expect(limits.held).toHaveLength(2);
    // The refused shape again, other text: refused at once, with no rendering on the worker.
    const again = await engine.renderPrompt({ messages: looping("two") }).catch((e: unknown) => e);
    expect(code(again)).toBe("CHAT_TEMPLATE_REFUSED");
    const generated = engine.generate({ messages: looping("three"), maxTokens: 2 });
    await expect(generated.next()).rejects.toMatchObject({ code: "CHAT_TEMPLATE_REFUSED" });
    expect(limits.held).toHaveLength(2);
  });

  it("refuses a shape the template fails on the worker, with its error, and again without rendering it", async () => {
    const limits = holdTimeouts(LIMIT_MS);
    const error = await engine.renderPrompt({ messages: [assistant("Hello."), user("Hi")] }).catch((e: unknown) => e);
    expect({ code: code(error), cause: ((error as Error).cause as Error | undefined)?.message }).toMatchObject({
      code: "CHAT_TEMPLATE_REFUSED",
      cause: expect.stringMatching(/function/),
    });
    expect(limits.held.map(({ cleared }) => cleared)).toEqual([true]);
    const again = await engine.renderPrompt({ messages: [assistant("Hi."), user("Hey")] }).catch((e: unknown) => e);
    expect(code(again)).toBe("CHAT_TEMPLATE_REFUSED");
    expect(limits.held).toHaveLength(1);
  });

  it("refuses a shape the worker rendered but the event loop's smaller stack fails (a RangeError), as a request error, and again without rendering it", async () => {
    const limits = holdTimeouts(LIMIT_MS);
    // This thread's wrapper only (the worker's is another thread's): its stack overflows.
    const rendered = vi.spyOn(JinjaTemplateChatWrapper.prototype, "generateContextState").mockImplementation(() => {
      throw new RangeError("Maximum call stack size exceeded");
    });
    const messages = [user("Hello"), assistant("Hi."), user("Again")];
    const error = await engine.renderPrompt({ messages }).catch((e: unknown) => e);
    expect({ code: code(error), cause: (error as Error).cause }).toEqual({
      code: "CHAT_TEMPLATE_REFUSED",
      cause: new RangeError("Maximum call stack size exceeded"),
    });
    expect({ worker: limits.held.length, here: rendered.mock.calls.length }).toEqual({ worker: 1, here: 1 });
    // Again, other text: refused at once, rendered neither on the worker nor here.
    const again = engine.generate({ messages: [user("a"), assistant("b"), user("c")], maxTokens: 2 });
    await expect(again.next()).rejects.toMatchObject({ code: "CHAT_TEMPLATE_REFUSED" });
    expect({ worker: limits.held.length, here: rendered.mock.calls.length }).toEqual({ worker: 1, here: 1 });
  });
});

describe("a vetted shape whose rendering on the event loop fails on one request's text (not a RangeError)", () => {
  it("refuses that request only, naming no text, and keeps the shape vetted for the next request", async () => {
    const messages = [{ role: "system", content: "Be brief." } as ChatMessage, user("One"), assistant("Two")];
    // Vetted on the worker first (with placeholder text).
    expect((await engine.renderPrompt({ messages })).tokenCount).toBeGreaterThan(0);
    // This thread's rendering fails on this request's text only, its error quoting it (a fault of
    // node-llama-cpp's placing of the text, say: the template itself sees placeholders).
    const rendered = vi.spyOn(JinjaTemplateChatWrapper.prototype, "generateContextState").mockImplementationOnce(() => {
      throw new Error("content 'my secret plan' is not allowed");
    });
    const error = await engine
      .renderPrompt({ messages: [...messages.slice(0, 2), assistant("my secret plan")] })
      .catch((e: unknown) => e);
    expect(code(error)).toBe("CHAT_TEMPLATE_REFUSED");
    expect(`${(error as Error).message} ${String((error as Error).cause ?? "")}`).not.toContain("secret");
    // Another tenant's request of the same shape renders: one request's text refuses no shape.
    expect(
      (await engine.renderPrompt({ messages: [...messages.slice(0, 2), assistant("Three")] })).tokenCount,
    ).toBeGreaterThan(0);
    expect(rendered.mock.calls.length).toBe(2);
  });
});

describe("a vetted shape whose rendering on the event loop throws a RangeError other than a stack overflow", () => {
  it("refuses that request only (its huge text, say), naming no text, and keeps the shape vetted", async () => {
    const messages = [user("One"), { role: "system" as const, content: "Be brief." }, user("Two")];
    expect((await engine.renderPrompt({ messages })).tokenCount).toBeGreaterThan(0);
    const limits = holdTimeouts(LIMIT_MS);
    // V8's own RangeError for a string too long to build (as one request's huge text may cause).
    const rendered = vi.spyOn(JinjaTemplateChatWrapper.prototype, "generateContextState").mockImplementationOnce(() => {
      "x".repeat(2 ** 31);
      throw new Error("unreachable");
    });
    const error = await engine
      .renderPrompt({ messages: [user("my secret plan"), ...messages.slice(1)] })
      .catch((e) => e);
    expect({ code: code(error), name: ((error as Error).cause as Error | undefined)?.name }).toEqual({
      code: "CHAT_TEMPLATE_REFUSED",
      name: undefined,
    });
    expect((error as Error).message).toMatch(/its shape is not/);
    expect((error as Error).message).not.toContain("secret");
    // Another request of that shape renders, with no new rendering on the worker.
    expect((await engine.renderPrompt({ messages: [user("Three"), ...messages.slice(1)] })).tokenCount).toBeGreaterThan(
      0,
    );
    expect({ worker: limits.held.length, here: rendered.mock.calls.length }).toEqual({ worker: 0, here: 2 });
  });

  it("refuses the shape for a real stack overflow on this thread (V8's own RangeError)", async () => {
    const messages = [user("One"), assistant("Two"), { role: "system" as const, content: "Be brief." }];
    expect((await engine.renderPrompt({ messages })).tokenCount).toBeGreaterThan(0);
    const deeper = (depth: number): number => deeper(depth + 1) + 1;
    vi.spyOn(JinjaTemplateChatWrapper.prototype, "generateContextState").mockImplementationOnce(() => {
      deeper(0);
      throw new Error("unreachable");
    });
    const error = await engine.renderPrompt({ messages }).catch((e: unknown) => e);
    expect({ code: code(error), cause: ((error as Error).cause as Error | undefined)?.name }).toEqual({
      code: "CHAT_TEMPLATE_REFUSED",
      cause: "RangeError",
    });
    const again = await engine.renderPrompt({ messages }).catch((e: unknown) => e);
    expect(code(again)).toBe("CHAT_TEMPLATE_REFUSED");
  });
});

describe("a request aborted while its new shape waits behind another's rendering", () => {
  it("stops waiting at once (ENGINE_ABORTED), before the rendering ahead of it ends", async () => {
    await engine.renderPrompt({ messages: [user("vetted before the test")] });
    const limits = holdTimeouts(LIMIT_MS);
    const ahead = [{ role: "system" as const, content: "Be brief." }, ...looping("ahead")];
    const refused = engine.renderPrompt({ messages: ahead }).catch((e: unknown) => e);
    await vi.waitFor(() => expect(limits.held).toHaveLength(1), { timeout: 60_000 });
    const gone = new AbortController();
    const messages = [{ role: "system" as const, content: "Be brief." }, user("Hi"), assistant("Hello."), user("Bye")];
    const waiting = engine.renderPrompt({ messages, signal: gone.signal }).catch((e: unknown) => e);
    gone.abort(new Error("client went away"));
    expect(code(await waiting)).toBe("ENGINE_ABORTED");
    // The looping shape was still rendering all along: only now does its limit come.
    expect(limits.held[0]?.fire()).toBe(true);
    expect(code(await refused)).toBe("CHAT_TEMPLATE_REFUSED");
  });
});

describe("a template-shape worker's answer for another shape than the one sent", () => {
  it("does not vet the shape sent: ENGINE_BUSY (a bug), the worker ended", async () => {
    await engine.renderPrompt({ messages: [user("vetted before the test")] });
    // What reaches the worker is another shape than the one this thread waits for (as a bug would).
    const send = MessagePort.prototype.postMessage;
    vi.spyOn(MessagePort.prototype, "postMessage").mockImplementation(function (this: MessagePort, message, ...rest) {
      const other = typeof message === "object" && message !== null && "shape" in message ? { shape: "sua" } : message;
      return send.call(this, other, ...(rest as []));
    });
    const ended = vi.spyOn(Worker.prototype, "terminate");
    const messages = [
      user("Hi"),
      assistant("Hello."),
      user("And?"),
      assistant("Yes."),
      { role: "system" as const, content: "Be brief." },
    ];
    const error = await engine.renderPrompt({ messages }).catch((e: unknown) => e);
    expect({ code: code(error), message: (error as Error).message }).toMatchObject({
      code: "ENGINE_BUSY",
      message: expect.stringMatching(/answered for another shape/),
    });
    expect(ended).toHaveBeenCalled();
  });
});

describe("a pinned template's boot worker", () => {
  it("is kept for the shapes: an engine that opens and checks its first shapes starts one worker, not two", async () => {
    // The fixture engine's worker, started before the count below begins.
    await engine.renderPrompt({ messages: [user("vetted before the test")] });
    const watched = vi.spyOn(Worker.prototype, "on");
    const ended = vi.spyOn(Worker.prototype, "terminate");
    const reused = await openInferenceEngine(opened);
    try {
      expect((await reused.renderPrompt({ messages: [user("Hello")] })).tokenCount).toBeGreaterThan(0);
      const workers = new Set(watched.mock.contexts.filter((context) => context instanceof Worker));
      expect({ workers: workers.size, ended: ended.mock.calls.length }).toEqual({ workers: 1, ended: 0 });
    } finally {
      await reused.close();
    }
  });
});

describe("auto's boot worker, when auto chooses the Jinja wrapper for the operator's template", () => {
  it("is kept for the shapes: an engine that opens and checks its first shapes starts one worker, not two", async () => {
    await engine.renderPrompt({ messages: [user("vetted before the test")] });
    const watched = vi.spyOn(Worker.prototype, "on");
    const ended = vi.spyOn(Worker.prototype, "terminate");
    const auto = await openInferenceEngine({ ...opened, chatWrapper: "auto" });
    try {
      expect(auto.info.chatTemplate).toBe("JinjaTemplate");
      expect((await auto.renderPrompt({ messages: [user("Hello")] })).tokenCount).toBeGreaterThan(0);
      // Its looping shape is still refused, on that worker (the check works on it).
      const limits = holdTimeouts(LIMIT_MS);
      const refused = auto.renderPrompt({ messages: looping("auto") }).catch((e: unknown) => e);
      await vi.waitFor(() => expect(limits.held).toHaveLength(1), { timeout: 60_000 });
      const workers = new Set(watched.mock.contexts.filter((context) => context instanceof Worker));
      expect({ workers: workers.size, ended: ended.mock.calls.length }).toEqual({ workers: 1, ended: 0 });
      expect(limits.held[0]?.fire()).toBe(true);
      expect(code(await refused)).toBe("CHAT_TEMPLATE_REFUSED");
    } finally {
      await auto.close();
    }
  });
});

describe("an engine closed while its template-shape worker is still starting", () => {
  it("answers the shape waiting for it ENGINE_CLOSED (not a refusal of its shape), its worker's start ended at once", async () => {
    const kept = vi.spyOn(Worker.prototype, "unref");
    const closing = await openInferenceEngine(opened);
    // The boot's worker, kept for the shapes, ends while idle: the next new shape starts another,
    // which is importing node-llama-cpp (about 0.5 s) when the engine closes.
    const boot = kept.mock.contexts.filter((context): context is Worker => context instanceof Worker);
    expect(boot).toHaveLength(1);
    await boot[0]?.terminate();
    const ended = vi.spyOn(Worker.prototype, "terminate");
    const waiting = closing.renderPrompt({ messages: [user("Hello"), assistant("Hi.")] }).catch((e: unknown) => e);
    await new Promise((resolve) => setImmediate(resolve));
    await closing.close();
    // Ended by the close, not once it had started (or failed for want of the closed model's tokenizer).
    expect(ended).toHaveBeenCalled();
    expect(code(await waiting)).toBe("ENGINE_CLOSED");
  });
});

describe("a template-shape worker that ended while idle (a cause not a shape's own render)", () => {
  it("renders the next new shape on a new worker: vetted, not refused", async () => {
    // The other engine's worker, kept before the count below begins.
    await engine.renderPrompt({ messages: [user("vetted before the test")] });
    const kept = vi.spyOn(Worker.prototype, "unref");
    const idle = await openInferenceEngine(opened);
    try {
      // Its worker, kept once its wrapper is built (unreferenced), renders a first shape.
      expect((await idle.renderPrompt({ messages: [user("Hello")] })).tokenCount).toBeGreaterThan(0);
      const workers = kept.mock.contexts.filter((context): context is Worker => context instanceof Worker);
      expect(workers).toHaveLength(1);
      // It ends, as a worker may for a cause of its own, with no shape rendering on it.
      await workers[0]?.terminate();
      const answer = await idle.renderPrompt({ messages: [user("Hello"), assistant("Hi."), user("Again")] });
      expect(answer.tokenCount).toBeGreaterThan(0);
      expect(kept.mock.contexts.filter((context) => context instanceof Worker)).toHaveLength(2);
    } finally {
      await idle.close();
    }
  });
});
