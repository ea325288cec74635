/**
 * `cloister up` stopped as its output closed just before a Ctrl-C (`up 2>&1 | tee log`, tee ended by
 * the Ctrl-C): the stop begins as "output closed", and up's own SIGINT, handled a moment later, turns
 * it into the Ctrl-C's (stopsAskedFor). A child the same Ctrl-C killed, seen gone as the stop began,
 * is checked for a model copy as after a plain Ctrl-C: it was skipped as "already gone", the stop's
 * reason read once when it began. Each event comes in the test's order (a fake child process).
 */
import { EventEmitter } from "node:events";
import { rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type DeploymentFiles, type RunningDeployment, startDeployment } from "../../client/cli/deploy.ts";
import { OUTPUT_CLOSED_SETTLE_MS, runUp, stopsAskedFor } from "../../client/cli/run-up.ts";
import { ownerTag, type ProcessOwner } from "../../models/process-owner.ts";
import { closeOutput, held } from "../helpers/held.ts";
import { endedProcessOwner } from "../helpers/processes.ts";
import { capture, stopListenersRemover } from "../helpers/stops.ts";

/** The children startDeployment spawns: fake processes the test makes exit, each with `pid.dead`. */
const spawned = vi.hoisted(() => [] as FakeChild[]);
const pid = vi.hoisted(() => ({ dead: 0, owner: null as ProcessOwner | null }));

class FakeChild extends EventEmitter {
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly signals: string[] = [];
  constructor(readonly pid: number) {
    super();
  }
  kill(signal: NodeJS.Signals): boolean {
    this.signals.push(signal);
    return true;
  }
  /** Killed by `signal`'s default action: it exits, its output ends. */
  die(signal: NodeJS.Signals): void {
    this.signalCode = signal;
    this.emit("exit", null, signal);
    this.stdout.destroy();
    this.stderr.destroy();
  }
}

vi.mock("node:child_process", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:child_process")>();
  return {
    ...actual,
    // A process that has ended: a copy it made is its own only if the owner the copy's name
    // records has ended too (a live process may have its pid now).
    spawn: () => {
      const child = new FakeChild(pid.dead);
      spawned.push(child);
      return child;
    },
  };
});

// The fake child stands for `dead` while it ran: startDeployment reads its owner as it spawns it
// (processOwner), when a real child is alive; the dead pid's own /proc entry is gone.
vi.mock("../../models/process-owner.ts", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../../models/process-owner.ts")>();
  return {
    ...actual,
    processOwner: async (of: number) => (of === pid.dead && pid.owner !== null ? pid.owner : actual.processOwner(of)),
  };
});

let dead: ProcessOwner;
beforeAll(async () => {
  dead = await endedProcessOwner();
  pid.dead = dead.pid;
  pid.owner = dead;
});

const removeStopListeners = stopListenersRemover();
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  removeStopListeners();
  spawned.length = 0;
  process.exitCode = undefined;
});

const FILES: DeploymentFiles = {
  dir: "/nonexistent",
  modelPath: "/nonexistent/tiny.gguf",
  manifestPath: "/nonexistent/manifest.jws",
  operatorPublicKeyPath: "/nonexistent/operator.jwk",
  apiKeysPath: "/nonexistent/api-keys.json",
  apiKeyPath: "/nonexistent/api-key",
  apiKey: "key",
  policyPath: "/nonexistent/policy.json",
  policy: {} as DeploymentFiles["policy"],
  kbs: null,
};

/**
 * startDeployment (a single enclave, no key broker) stopped by `stop`, the stop's Ctrl-C told by
 * `interrupted`; each child that failed as it stopped is added to `failures`.
 */
function deploy(stop: AbortController, interrupted: () => Promise<boolean>, failures: string[]) {
  return startDeployment({
    files: FILES,
    tee: "sim-snp",
    hostPort: 0,
    enclavePort: 0,
    log: () => {},
    signal: stop.signal,
    interrupted,
    onStopFailure: (who, how) => failures.push(`${who}: ${how}`),
  });
}

describe("startDeployment: a child killed by SIGINT, gone as a stop begun for its output closed begins", () => {
  it("is checked for a model copy once the stop turns out to be the Ctrl-C (interrupted)", async () => {
    const copy = join(tmpdir(), `cloister-model-${ownerTag(dead)}-AbCdEf`);
    // A file: only its name is looked at, and another test's staging removes the copy directories
    // of processes that have ended (removeStaleCopies) that it finds.
    await writeFile(copy, "");
    try {
      const stop = new AbortController();
      const ctrlC = held<boolean>();
      const failures: string[] = [];
      const booting = deploy(stop, () => ctrlC.promise, failures);
      const [enclave] = spawned;
      // The terminal's Ctrl-C kills the enclave in its first moments; the EPIPE of up's next line
      // (tee, ended by it too) is handled before up's own SIGINT: the stop begins as "output closed".
      enclave?.die("SIGINT");
      stop.abort("output closed");
      // Up's SIGINT, handled now: the stop was the Ctrl-C's.
      ctrlC.settle(true);
      await expect(booting).rejects.toBe("output closed");
      expect({ failures, signals: enclave?.signals }).toEqual({
        failures: [`enclave: SIGINT before it handled signals, leaving the model copy ${copy}: remove it by hand`],
        signals: [],
      });
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });

  it("is no failure when the stop stays its output closed (a SIGINT of no Ctrl-C of up's)", async () => {
    const stop = new AbortController();
    const failures: string[] = [];
    const booting = deploy(stop, async () => false, failures);
    spawned[0]?.die("SIGINT");
    stop.abort("output closed");
    await expect(booting).rejects.toBe("output closed");
    expect(failures).toEqual([]);
  });
});

describe("stopsAskedFor: settledReason, what a child killed by SIGINT is checked with", () => {
  it("its output closed, then a Ctrl-C: SIGINT, once the Ctrl-C is handled", async () => {
    capture();
    const stops = stopsAskedFor(() => false);
    closeOutput();
    const settled = stops.settledReason();
    process.emit("SIGINT", "SIGINT");
    expect(await settled).toBe("SIGINT");
  });

  it("its output closed, no Ctrl-C within OUTPUT_CLOSED_SETTLE_MS: output closed", async () => {
    capture();
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const stops = stopsAskedFor(() => false);
    closeOutput();
    const settled = stops.settledReason();
    vi.advanceTimersByTime(OUTPUT_CLOSED_SETTLE_MS);
    expect(await settled).toBe("output closed");
  });

  it("a plain Ctrl-C: SIGINT at once", async () => {
    capture();
    const stops = stopsAskedFor(() => false);
    process.emit("SIGINT", "SIGINT");
    expect(await stops.settledReason()).toBe("SIGINT");
  });
});

describe("cloister up: the boot step is given the stop's reason as it turns out", () => {
  it("output closed, then the Ctrl-C that closed it: the children are checked as after a Ctrl-C", async () => {
    capture();
    const booting = held();
    let interrupted: (() => Promise<boolean>) | undefined;
    const run = runUp({ tee: "sim-snp", corsOrigin: [] } as unknown as Parameters<typeof runUp>[0], async (...args) => {
      interrupted = args[4];
      booting.enter();
      await booting.promise;
      return { stop: async () => {} } as unknown as RunningDeployment;
    });
    await booting.entered;
    closeOutput();
    const answer = interrupted?.();
    process.emit("SIGINT", "SIGINT");
    booting.settle();
    await run.catch(() => {});
    expect(await answer).toBe(true);
  });
});
