/**
 * `cloister model run` in process, its engine a stand-in (openInferenceEngine mocked): the failures
 * a real model does not make on demand. A load that fails on its own while a stop (SIGTERM) is
 * pending is a failure, not a stop, as `cloister enclave` tells them apart (enclave/stop.ts
 * stoppedBy); a run that failed and whose engine's close failed too says the close's error on
 * stderr and fails with its own. No model copy is made, so none is named.
 */
import { describe, expect, it, vi } from "vitest";
import { EngineError, type InferenceEngine } from "../../enclave/engine.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";

/** What the stand-in openInferenceEngine does: resolve with an engine, or reject. */
const stand = vi.hoisted(() => ({ open: null as null | (() => Promise<unknown>) }));

vi.mock("../../enclave/engine.ts", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../../enclave/engine.ts")>();
  return { ...actual, openInferenceEngine: () => (stand.open as () => Promise<unknown>)() };
});

const cloister = inProcessCli();
const args = ["model", "run", "--model", "tiny.gguf", "--sha256", "ab".repeat(32), "--prompt", "The host"];

describe("cloister model run: failures besides the model copy", () => {
  it("a load failing on its own while a stop is pending is its error (exit 1); the stop's own abort still exits 143", async () => {
    stand.open = async () => {
      process.emit("SIGTERM", "SIGTERM");
      throw new EngineError("MODEL_LOAD_FAILED", "model file tiny.gguf: could not be loaded (a stand-in)");
    };
    const failed = await cloister(args);
    expect(failed).toEqual({
      code: 1,
      stdout: "",
      stderr: "cloister: MODEL_LOAD_FAILED: model file tiny.gguf: could not be loaded (a stand-in)\n",
    });
    stand.open = async () => {
      process.emit("SIGTERM", "SIGTERM");
      throw "SIGTERM"; // the stop's reason, as openInferenceEngine rejects when stopped
    };
    expect(await cloister(args)).toEqual({ code: 143, stdout: "", stderr: "" });
  });

  it("a load failing after Ctrl-C (SIGINT, which reaches its helper process too) is taken as the stop, its failure said: exit 130", async () => {
    stand.open = async () => {
      process.emit("SIGINT", "SIGINT");
      throw new EngineError("MODEL_LOAD_FAILED", "model file tiny.gguf: could not be loaded (a stand-in)");
    };
    expect(await cloister(args)).toEqual({
      code: 130,
      stdout: "",
      stderr:
        "cloister model run: a step failed after Ctrl-C reached its process group, taken as the stop: MODEL_LOAD_FAILED: model file tiny.gguf: could not be loaded (a stand-in)\n",
    });
  });

  it("a generation that failed, then a close that failed too: the close's error on stderr, the run's as its error", async () => {
    const closes: string[] = [];
    stand.open = async () =>
      ({
        // biome-ignore lint/correctness/useYield: fails before its first event, as a failed generation does
        generate: async function* () {
          throw new EngineError("GENERATION_FAILED", "generation failed (a stand-in)");
        },
        close: async () => {
          closes.push("close");
          // Its message as formatCliError writes any other error's: its code first, and a line
          // break or an escape sequence (a native library's text) made visible on the one line.
          throw Object.assign(new Error("llama dispose failed\n\u001b[2J(a stand-in)"), { code: "A_STAND_IN" });
        },
      }) as unknown as InferenceEngine;
    const run = await cloister(args);
    expect(closes).toEqual(["close"]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr.split("\n")).toEqual([
      "cloister model run: closing the engine failed too: A_STAND_IN: llama dispose failed\\u000a\\u001b[2J(a stand-in)",
      "cloister: GENERATION_FAILED: generation failed (a stand-in)",
      "",
    ]);
  });
});
