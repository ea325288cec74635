/**
 * `cloister demo` stopped (Ctrl-C, SIGTERM) once it has booted: the demo under way is abandoned,
 * its request aborted, and nothing more of it is written after `shutting down`; a Ctrl-C as it stops
 * after a demo that finished is said, as during its other stops. Each runs demo's own steps on a
 * deployment and a session the test holds, so every event comes in the order the test gives it.
 */
import { getEventListeners } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { RunningDeployment } from "../../client/cli/deploy.ts";
import { runDemo, showDemo } from "../../client/cli/run-up.ts";
import type { ChatEvent, GenerationOptions, Session } from "../../client/sdk.ts";
import { closeOutput, held } from "../helpers/held.ts";
import { capture, stopListenersRemover } from "../helpers/stops.ts";
import { madeUpEnclave } from "../helpers/verified-enclave.ts";
import { closeServers, devPolicy, serveDeployment } from "./helpers.ts";

const removeStopListeners = stopListenersRemover();
afterEach(async () => {
  await closeServers();
  vi.restoreAllMocks();
  process.exitCode = undefined;
  removeStopListeners();
});

const enclave = madeUpEnclave("sev-snp");

const deployment = {
  hostUrl: "http://127.0.0.1:1",
  files: { policy: {}, apiKey: "key", dir: "/nonexistent" },
} as unknown as RunningDeployment;

/** demo's boot step: `deployment`, whose stop is held (`stopped.entered`) until the test settles `stopped`. */
function bootStoppedWhen(stopped: ReturnType<typeof held<void>>) {
  return async () => ({
    ...deployment,
    stop: () => {
      stopped.enter();
      return stopped.promise;
    },
  });
}

/** showDemo asking "What does the enclave do?" of `session`, with the stop the test aborts. */
function startDemo(session: Session): { stop: AbortController; shown: Promise<void> } {
  const stop = new AbortController();
  const shown = showDemo({
    deployment,
    prompt: "What does the enclave do?",
    logs: [],
    started: performance.now(),
    signal: stop.signal,
    connectTo: async () => session,
  });
  return { stop, shown };
}

describe("cloister demo: a stop while the demo runs", () => {
  it("ends a part of the answer already written with a newline, so what follows starts on its own line", async () => {
    const rest = held();
    const session = {
      enclave,
      async *chat(): AsyncGenerator<ChatEvent> {
        yield { type: "text", text: "The enclave keeps" };
        rest.enter();
        await rest.promise;
      },
    } as unknown as Session;
    const written = capture();
    const { stop, shown } = startDemo(session);
    await rest.entered;
    stop.abort("SIGINT");
    rest.settle();
    await shown.catch(() => {});
    vi.restoreAllMocks();
    expect(written.stdout.join("")).toMatch(/> What does the enclave do\?\nThe enclave keeps\n$/);
  });

  it("ends a part of the answer with a newline when it fails too, and leaves no listener on the stop's signal", async () => {
    const session = {
      enclave,
      async *chat(): AsyncGenerator<ChatEvent> {
        yield { type: "text", text: "The enclave keeps" };
        throw new Error("the stream was cut");
      },
    } as unknown as Session;
    const written = capture();
    const { stop, shown } = startDemo(session);
    const error = await shown.catch((e: unknown) => e);
    const listeners = getEventListeners(stop.signal, "abort").length;
    const atFailure = written.stdout.join("");
    // A stop after it failed (demo stops what it started, and a Ctrl-C comes) writes nothing more.
    stop.abort("SIGINT");
    vi.restoreAllMocks();
    expect({ error: (error as Error).message, listeners, atFailure, after: written.stdout.join("") }).toEqual({
      error: "the stream was cut",
      listeners: 0,
      // Its error (stderr) starts on its own line.
      atFailure: expect.stringMatching(/> What does the enclave do\?\nThe enclave keeps\n$/),
      after: atFailure,
    });
  });

  it("aborts its request (chat's signal), and writes nothing of it after the stop, though an answer comes", async () => {
    const answer = held();
    let chatSignal: AbortSignal | undefined;
    let audited = false;
    const session = {
      enclave,
      async *chat(_messages: unknown, options: GenerationOptions = {}): AsyncGenerator<ChatEvent> {
        chatSignal = options.signal;
        answer.enter();
        await answer.promise;
        // An answer that came as the stop was asked for (the SDK's own abort, at once, is not relied on).
        yield { type: "text", text: " the answer" };
        yield { type: "done", usage: { promptTokens: 1, completionTokens: 1, ttftMs: 1 } } as ChatEvent;
      },
      auditCheckpoint: async () => {
        audited = true;
        throw new Error("no audit checkpoint here");
      },
    } as unknown as Session;
    const written = capture();
    const { stop, shown } = startDemo(session);
    await answer.entered;
    expect(written.stdout.join("")).toMatch(/> What does the enclave do\?\n$/);
    const writtenBefore = written.stdout.length;
    stop.abort("SIGINT");
    answer.settle();
    await shown.catch(() => {});
    vi.restoreAllMocks();
    expect({ aborted: chatSignal?.aborted, audited, after: written.stdout.slice(writtenBefore) }).toEqual({
      aborted: true,
      audited: false,
      after: [],
    });
  });

  it("stops waiting for the host to store the audit records at the stop (it went on polling, up to 5 s)", async () => {
    let stop: AbortController | undefined;
    const session = {
      enclave,
      async *chat(): AsyncGenerator<ChatEvent> {
        yield { type: "done", usage: { promptTokens: 1, completionTokens: 1, ttftMs: 1 } } as ChatEvent;
      },
      // The stop comes as the checkpoint is answered: the host (stopped) will store no record now.
      auditCheckpoint: async () => {
        stop?.abort("SIGINT");
        return { count: 1, lastRecordHash: "0".repeat(64), time: 0, line: "", signingPublicKey: "" };
      },
    } as unknown as Session;
    const written = capture();
    const demo = startDemo(session);
    stop = demo.stop;
    const outcome = await demo.shown.catch((e: unknown) => e);
    vi.restoreAllMocks();
    // The stop's own reason, not "the host stored fewer within 5.0 s" after polling on past the stop.
    expect(outcome).toBe("SIGINT");
    expect(written.stdout.join("")).not.toMatch(/audit|demo finished/);
  });

  it("runDemo aborts the demo's signal at the first Ctrl-C, with SIGINT as its reason, and says it is shutting down", async () => {
    const demo = held();
    let demoSignal: AbortSignal | undefined;
    const written = capture();
    const run = runDemo({ prompt: "p" } as Parameters<typeof runDemo>[0], {
      boot: async () => ({ ...deployment, stop: async () => {} }),
      show: (options) => {
        demoSignal = options.signal;
        demo.enter();
        return demo.promise; // never settled: the stop comes while it runs
      },
    });
    await demo.entered;
    process.emit("SIGINT", "SIGINT");
    await run;
    vi.restoreAllMocks();
    expect({ aborted: demoSignal?.aborted, reason: demoSignal?.reason, exitCode: process.exitCode }).toEqual({
      aborted: true,
      reason: "SIGINT",
      exitCode: 130,
    });
    expect(written.stderr.join("")).toBe("shutting down (SIGINT) …\nstopped: every process it started has exited\n");
  });
});

describe("cloister demo: a stop while it verifies the enclave", () => {
  it("ends the verification at once (connect's signal): nothing more is asked of the host, nothing written", async () => {
    const answer = held();
    const { url, paths } = await serveDeployment({
      hold: (path) => {
        if (path !== "/v1/attestation") return undefined;
        answer.enter();
        return answer.promise;
      },
    });
    const files = { policy: await devPolicy(), apiKey: "key", dir: "/nonexistent" };
    const written = capture();
    const stop = new AbortController();
    const shown = showDemo({
      deployment: { hostUrl: url, files } as unknown as RunningDeployment,
      prompt: "What does the enclave do?",
      logs: [],
      started: performance.now(),
      signal: stop.signal,
    });
    await answer.entered;
    stop.abort("SIGINT");
    // The host's answer comes after the stop: without connect's signal, the verification went on
    // with it and asked for the enclave's signed nonce, its output only suppressed.
    answer.settle();
    const error = await shown.catch((e: unknown) => e);
    vi.restoreAllMocks();
    expect(error).toMatchObject({ kind: "transport", code: "ABORTED" });
    expect({ paths, stdout: written.stdout }).toEqual({ paths: ["/v1/attestation"], stdout: [] });
  });
});

describe("cloister demo: a Ctrl-C as it stops after a demo that finished", () => {
  it("is said, with how to exit at once (it said nothing), and the demo's exit status stays 0", async () => {
    const stopped = held();
    const written = capture();
    const run = runDemo({ prompt: "p" } as Parameters<typeof runDemo>[0], {
      boot: bootStoppedWhen(stopped),
      show: async () => {},
    });
    await stopped.entered;
    process.emit("SIGINT", "SIGINT");
    stopped.settle();
    await run;
    vi.restoreAllMocks();
    expect(written.stderr.join("")).toBe("SIGINT while stopping (demo finished): Ctrl-C again to exit at once\n");
    expect(process.exitCode ?? 0).toBe(0);
  });
});

describe("cloister demo: Ctrl-C under `cloister demo 2>&1 | tee log` (the reader of its output goes too)", () => {
  it("its output closed after the Ctrl-C is no second stop: it still stops what it started, and exits 130", async () => {
    const demo = held();
    const stopped = held();
    const written = capture();
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    const run = runDemo({ prompt: "p" } as Parameters<typeof runDemo>[0], {
      boot: bootStoppedWhen(stopped),
      show: () => {
        demo.enter();
        return demo.promise; // never settled: the stop comes while it runs
      },
    });
    await demo.entered;
    process.emit("SIGINT", "SIGINT");
    await stopped.entered;
    // Ctrl-C killed tee too: its next line (a child's, or its own) meets a closed pipe (EPIPE).
    closeOutput();
    stopped.settle();
    await run;
    vi.restoreAllMocks();
    expect({ exit: exit.mock.calls, exitCode: process.exitCode }).toEqual({ exit: [], exitCode: 130 });
    expect(written.stderr.join("")).toBe("shutting down (SIGINT) …\nstopped: every process it started has exited\n");
  });
});
