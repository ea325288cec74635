/**
 * `cloister up` and `demo` stopped during a boot that still completes (its last step done as the
 * stop came): what it started is stopped at once, `shutting down` said once, and neither up's
 * "Cloister is up … Stop with Ctrl-C." nor the demo is shown. Up printed its banner after
 * `shutting down (SIGINT during boot)`, then `shutting down (SIGINT)` again; demo said it twice
 * and began its demo on a stopped signal. Each runs its command's own steps on a deployment the
 * test holds, so the stop comes in the order the test gives it.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { ChildExitedError, type RunningDeployment } from "../../client/cli/deploy.ts";
import { runDemo, runUp } from "../../client/cli/run-up.ts";
import { closeOutput, held } from "../helpers/held.ts";
import { capture, stopListenersRemover } from "../helpers/stops.ts";

const removeStopListeners = stopListenersRemover();
afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
  removeStopListeners();
});

/**
 * A boot step that, entered, waits for the test's stop, then completes anyway: a deployment whose
 * `stop()` is counted.
 */
function bootCompletingAfterStop() {
  const booting = held();
  const stops: string[] = [];
  const deployment = {
    hostUrl: "http://127.0.0.1:1",
    enclaveUrls: ["http://127.0.0.1:2"],
    kbsUrl: null,
    files: {
      policy: {},
      policyPath: "policy.json",
      apiKeyPath: "api-key",
      apiKey: "key",
      dir: "/nonexistent",
      kbs: null,
    },
    exited: new Promise<string>(() => {}),
    stop: async () => {
      stops.push("stop");
    },
  } as unknown as RunningDeployment;
  const boot = async () => {
    booting.enter();
    await booting.promise;
    return deployment;
  };
  return { boot, booting, stops };
}

const OPTIONS = { tee: "sim-snp", corsOrigin: [] } as unknown as Parameters<typeof runUp>[0];

describe("cloister up and demo: a stop during a boot that completes", () => {
  it("up stops what it started, says `shutting down` once and prints no banner (exit 0)", async () => {
    const { boot, booting, stops } = bootCompletingAfterStop();
    const written = capture();
    const run = runUp(OPTIONS, boot);
    await booting.entered;
    process.emit("SIGINT", "SIGINT");
    booting.settle();
    await run;
    vi.restoreAllMocks();
    expect({ ...written, stops, exitCode: process.exitCode }).toEqual({
      stdout: [],
      stderr: ["shutting down (SIGINT during boot) …\n", "stopped: every process it started has exited\n"],
      stops: ["stop"],
      exitCode: undefined,
    });
  });

  it("demo stops what it started, says `shutting down` once and shows no demo (exit 130)", async () => {
    const { boot, booting, stops } = bootCompletingAfterStop();
    const written = capture();
    let shown = false;
    const run = runDemo(
      { ...OPTIONS, prompt: "p" },
      {
        boot,
        show: async () => {
          shown = true;
        },
      },
    );
    await booting.entered;
    process.emit("SIGINT", "SIGINT");
    booting.settle();
    await run;
    vi.restoreAllMocks();
    expect({ ...written, stops, shown, exitCode: process.exitCode }).toEqual({
      stdout: [],
      stderr: ["shutting down (SIGINT during boot) …\n", "stopped: every process it started has exited\n"],
      stops: ["stop"],
      shown: false,
      exitCode: 130,
    });
  });
});

describe("cloister demo: Ctrl-C during boot under `demo 2>&1 | tee log`, its output closed first", () => {
  it("a child the Ctrl-C killed is stopped, not a boot failure, and demo exits 130", async () => {
    const booting = held();
    const written = capture();
    const run = runDemo(
      { ...OPTIONS, prompt: "p" },
      {
        boot: async () => {
          booting.enter();
          // The enclave, killed by the terminal's SIGINT before it ignored it (bin/cloister.js).
          await booting.promise;
          throw new ChildExitedError("enclave", null, "SIGINT", null);
        },
        show: async () => {},
      },
    );
    await booting.entered;
    // Ctrl-C ended tee too: the EPIPE of a line written meanwhile is handled before up's SIGINT.
    closeOutput();
    process.emit("SIGINT", "SIGINT");
    booting.settle();
    const outcome = await run.then(
      () => "stopped",
      (error: unknown) => (error as Error).message,
    );
    vi.restoreAllMocks();
    expect({ outcome, stderr: written.stderr, exitCode: process.exitCode }).toEqual({
      outcome: "stopped",
      stderr: ["shutting down (output closed during boot) …\n", "stopped: every process it started has exited\n"],
      exitCode: 130,
    });
  });
});
