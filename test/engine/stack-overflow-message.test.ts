/**
 * The engine's test for V8's stack overflow (enclave/engine.ts isStackOverflow) compares a render's
 * RangeError with V8's constant message. Two things hold it up: the engine module loads under a
 * --stack-size larger than the thread's real stack (no overflow of its own at load, which would run
 * past that stack: a segfault), and V8 words an overflow alike on the main thread, in a worker with
 * a small stack, and under a smaller --stack-size. Run in child processes, each bounded.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Runs node with `args` in the repository, killed after 60 s; how it ended and its output. */
function runNode(args: string[]): Promise<{ code: number | null; signal: string | null; stdout: string }> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr.resume();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout });
    });
  });
}

const OVERFLOW = `(() => { const deeper = (d) => deeper(d + 1) + 1; try { deeper(0); } catch (e) { return \`\${e.name}: \${e.message}\`; } })()`;

describe("V8's stack overflow, as the engine tells it", () => {
  it("the engine module loads under a --stack-size far above the thread's real stack (no overflow at load)", async () => {
    // 64 MB asked of V8 on the 8 MB (or smaller) stack node's main thread has: any overflow at load
    // runs off the real stack before V8's limit is reached.
    const run = await runNode([
      "--stack-size=65500",
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      'await import("./enclave/engine.ts"); console.log("loaded");',
    ]);
    expect(run).toEqual({ code: 0, signal: null, stdout: "loaded\n" });
  });

  it("is worded alike on the main thread, in a worker with a small stack, and under a smaller --stack-size", async () => {
    const script = `
      const { Worker } = require("node:worker_threads");
      console.log(${OVERFLOW});
      const worker = new Worker("const { parentPort } = require('node:worker_threads'); parentPort.postMessage(${OVERFLOW.replaceAll("`", "\\`").replaceAll("${", "\\${")});", { eval: true, resourceLimits: { stackSizeMb: 1 } });
      worker.once("message", (m) => { console.log(m); worker.terminate(); });
    `;
    const expected = "RangeError: Maximum call stack size exceeded\n";
    expect(await runNode(["-e", script])).toEqual({ code: 0, signal: null, stdout: expected.repeat(2) });
    expect(await runNode(["--stack-size=500", "-e", `console.log(${OVERFLOW})`])).toEqual({
      code: 0,
      signal: null,
      stdout: expected,
    });
  });
});
