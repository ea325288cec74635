/**
 * handOverSignals (enclave/http.ts), as `cloister host` and `cloister enclave` use it when their
 * start-up ends: a SIGTERM node has received but not yet dispatched as the start-up's handlers give
 * way to the serving ones is taken by the serving handler (the server drains and stops). Removing
 * the start-up's listeners first closed node's handle for the signal and dropped it: the process
 * served on (seen failing so: { by: "none", code: 1 }). A real process sends itself the signal just
 * before the hand-over.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const SCRIPT = fileURLToPath(new URL("../helpers/signal-handover.mjs", import.meta.url));

async function takenBy(): Promise<{ by: string; code: number }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", SCRIPT]);
    return { by: stdout.trim(), code: 0 };
  } catch (error) {
    const failed = error as { stdout?: string; code?: number };
    return { by: String(failed.stdout ?? "").trim(), code: failed.code ?? -1 };
  }
}

describe("handOverSignals", () => {
  it("a SIGTERM received as the start-up ends is taken by the serving handler", async () => {
    expect(await takenBy()).toEqual({ by: "serving", code: 0 });
  });
});
