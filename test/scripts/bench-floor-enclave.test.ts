/**
 * bench-e2e.ts's floor enclave (--floor-enclave: the engine behind a bare HTTP server) on the tiny
 * model: stopped by SIGTERM (the benchmark's stopProcess) or SIGINT (Ctrl-C reaches the whole
 * process group), it closes its engine, which removes its private model copy, rather than leaving
 * it for the next run's sweep.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeTinyModel } from "../../models/tiny.ts";
import { modelCopiesOf } from "../helpers/processes.ts";

const SCRIPT = new URL("../../scripts/bench-e2e.ts", import.meta.url).pathname;
let dir = "";
let modelPath = "";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-floor-"));
  modelPath = join(dir, "tiny.gguf");
  await writeTinyModel(modelPath);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The test's own deadlines, under its 120 s: a vitest timeout would not run the finally below. */
const READY_MS = 80_000;
const EXIT_MS = 20_000;

/** `promise`, or a rejection naming `what` once `ms` have passed. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`floor enclave: ${what} not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/**
 * Starts the floor enclave, waits for its ready line, then stops it with `signal`. Whatever
 * happens (no ready line, no exit), the child is killed and its model copies removed.
 */
async function stopFloorEnclave(
  signal: NodeJS.Signals,
): Promise<{ copiesWhileReady: number; left: string[]; code: number | null }> {
  const child = spawn(process.execPath, ["--import", "tsx", SCRIPT, "--floor-enclave", modelPath], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const pid = child.pid as number;
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  try {
    const ready = new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout }).on("line", (line) => {
        if (line.includes('"event":"ready"')) resolve();
      });
      child.once("exit", (code, sig) => reject(new Error(`floor enclave exited (${sig ?? code}) before ready`)));
    });
    await within(ready, READY_MS, "ready line");
    const copiesWhileReady = (await modelCopiesOf(pid)).length;
    child.kill(signal);
    const code = await within(exited, EXIT_MS, `exit on ${signal}`);
    return { copiesWhileReady, left: await modelCopiesOf(pid), code };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
    for (const copy of await modelCopiesOf(pid)) await rm(copy, { recursive: true, force: true });
  }
}

describe("bench-e2e --floor-enclave", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`closes its engine on ${signal}: exits 0 and leaves no model copy`, async () => {
      const result = await stopFloorEnclave(signal);
      // The copy was there while it served (else this test would prove nothing), and is gone.
      expect(result).toEqual({ copiesWhileReady: 1, left: [], code: 0 });
    }, 120_000);
  }
});
