/**
 * enclave/engine/chat-wrapper.ts: a kept shape worker that ends just after it answered a shape,
 * its answer still queued in the port when its end is told (its last message and its exit reach
 * this thread apart). The order is made on purpose: the answer is withheld from the port's listener
 * and left for receiveMessageOnPort (as a message not yet delivered is), and the worker ended then.
 * The shape rendered: it is vetted, not answered as a worker that ended while it rendered (which,
 * twice, refused the shape).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MessagePort, Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { EngineError, type InferenceEngine } from "../../enclave/engine.ts";
import { openTemplateEngine } from "./template-model.ts";

/** Messages withheld from a port's listener, left for receiveMessageOnPort. */
const withheld = vi.hoisted(() => new Map<unknown, unknown[]>());

vi.mock("node:worker_threads", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:worker_threads")>();
  const receiveMessageOnPort = (port: import("node:worker_threads").MessagePort) => {
    const queued = withheld.get(port);
    if (queued !== undefined && queued.length > 0) return { message: queued.shift() };
    return real.receiveMessageOnPort(port);
  };
  return { ...real, receiveMessageOnPort, default: { ...real, receiveMessageOnPort } };
});

const TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";

let dir: string;
let engine: InferenceEngine;
/** The shape answer to withhold (then the worker is ended), once set. */
const hold = { shapes: 0 };
const workers: Worker[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-shape-worker-exit-test-"));
  const path = join(dir, "plain-template.gguf");
  // Every worker kept for shapes (unreferenced once kept), and every port's message listener wrapped.
  const unref = Worker.prototype.unref;
  vi.spyOn(Worker.prototype, "unref").mockImplementation(function (this: Worker) {
    workers.push(this);
    return unref.call(this);
  });
  const on = MessagePort.prototype.on;
  vi.spyOn(MessagePort.prototype, "on").mockImplementation(function (
    this: MessagePort,
    event: string | symbol,
    listener: (...args: unknown[]) => void,
  ) {
    if (event !== "message") return on.call(this, event as string, listener);
    return on.call(this, event, (message: unknown, ...rest: unknown[]) => {
      if (hold.shapes > 0 && typeof message === "object" && message !== null && "rendered" in message) {
        hold.shapes--;
        withheld.set(this, [...(withheld.get(this) ?? []), message]);
        void workers.at(-1)?.terminate();
        return;
      }
      listener(message, ...rest);
    });
  });
  engine = await openTemplateEngine(path, TEMPLATE);
});

afterAll(async () => {
  vi.restoreAllMocks();
  await engine?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("a shape worker that ends with its answer for the shape still queued", () => {
  it("takes the answer: the shape is vetted, not answered ENGINE_BUSY (nor, twice, refused)", async () => {
    expect(workers).toHaveLength(1);
    const found: unknown[] = [];
    // The same shape twice, its worker ending each time it has been sent it (and answered).
    for (const content of ["Hello", "Again"]) {
      hold.shapes = 1;
      const answer = await engine.renderPrompt({ messages: [{ role: "user", content }] }).catch((e: unknown) => e);
      found.push(answer instanceof EngineError ? answer.code : "rendered");
    }
    // Vetted the first time, so not sent again (nothing withheld the second time).
    expect({ found, withholding: hold.shapes }).toEqual({ found: ["rendered", "rendered"], withholding: 1 });
    hold.shapes = 0;
    // Its worker ended: the next new shape starts another, kept.
    expect((await engine.renderPrompt({ messages: [{ role: "system", content: "Hi" }] })).tokenCount).toBeGreaterThan(
      0,
    );
    expect(workers).toHaveLength(2);
  });
});
