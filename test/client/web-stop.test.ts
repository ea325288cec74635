/**
 * `cloister web` stopped (Ctrl-C, SIGTERM, its output closed) closes its page server and exits 0, as
 * the other servers and `up` do, whatever order its stops come in: under `cloister web 2>&1 | tee log`
 * the Ctrl-C ends tee too, and the EPIPE of its `shutting down` line exited 141 at once, before its
 * server was closed. Its output closed first (`web | head -1`), a Ctrl-C as it stops is handled, and
 * a second exits at once; it died of the first.
 */
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { runWeb } from "../../client/cli/run-web.ts";
import { CLI } from "../helpers/cli.ts";
import { closeOutput, held } from "../helpers/held.ts";
import { stopListenersRemover } from "../helpers/stops.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { devPolicy } from "./helpers.ts";

const dir = await testDirectory("cloister-web-stop-");
let policyFile: string;
beforeAll(async () => {
  policyFile = join(dir, "policy.json");
  await writeFile(policyFile, JSON.stringify(await devPolicy()));
});

const removeStopListeners = stopListenersRemover();
afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
  removeStopListeners();
});

/** `cloister web`'s arguments: a host nothing listens on (the page says so), any free port. */
const webArgs = () => ["web", "--url", "http://127.0.0.1:9", "--policy", policyFile, "--port", "0"];

describe("cloister web: Ctrl-C under `cloister web 2>&1 | tee log` (the reader of its output goes too)", () => {
  it("closes its server and exits 0, though its `shutting down` line meets a closed pipe", async () => {
    const child = spawn(process.execPath, [CLI, ...webArgs()], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    let stdout = "";
    const listening = new Promise<void>((resolve) => {
      child.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk.toString("utf8");
        if (stdout.includes("Stop with Ctrl-C.")) resolve();
      });
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    await Promise.race([listening, exited]);
    expect(stdout).toContain("Stop with Ctrl-C.");
    // The Ctrl-C reached tee as well: gone, every line web writes from now on meets a closed pipe.
    child.stdout.destroy();
    child.stderr.destroy();
    child.kill("SIGINT");
    const outcome = await exited;
    clearTimeout(timer);
    expect(outcome).toEqual({ code: 0, signal: null });
  }, 90_000);
});

describe("cloister web: its output closed first (`cloister web | head -1`)", () => {
  it("a Ctrl-C as it stops is handled (it died of it): the next exits at once (130)", async () => {
    const said: string[] = [];
    const shuttingDown = held();
    const banner = held();
    let sigintAt: string | null = null;
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      if (String(chunk).includes("Stop with Ctrl-C.")) banner.enter();
      return true;
    });
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      said.push(String(chunk));
      // The Ctrl-C comes as it starts closing its server, after it said it shuts down.
      if (String(chunk).startsWith("shutting down") && sigintAt === null) {
        sigintAt = String(chunk);
        shuttingDown.enter();
        process.emit("SIGINT", "SIGINT");
      }
      return true;
    });
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    const run = runWeb({ url: "http://127.0.0.1:9", policy: policyFile, port: 0, maxTokens: 64 });
    await banner.entered;
    closeOutput();
    await shuttingDown.entered;
    process.emit("SIGINT", "SIGINT");
    await run;
    vi.restoreAllMocks();
    expect({ said, exit: exit.mock.calls, exitCode: process.exitCode }).toEqual({
      // The first Ctrl-C, so soon after, is taken for the one that closed its output (stopsAskedFor).
      said: ["shutting down (output closed) …\n", "SIGINT while stopping: exiting at once\n"],
      exit: [[130]],
      exitCode: undefined,
    });
  }, 60_000);
});
