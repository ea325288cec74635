/**
 * `cloister enclave` (enclave/run.ts) stopped during boot or after it, in process: what it says about
 * the private model copy must be true, and its exit status too. A removal of the copy that fails
 * (EBUSY, EIO: not producible for real by a test run as root) is made by stand-ins for
 * node:fs/promises' rm and node:fs's rmSync, and the stop (SIGTERM) is emitted the moment the copy's
 * directory exists, so the boot is stopped while it stages the model, or the moment the "ready"
 * line is written, every run; twice, for a second signal, once the copy is recorded.
 */
import { existsSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { basename } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type DeploymentFiles, prepareDeployment } from "../../client/cli/deploy.ts";
import { testDirectory } from "../helpers/test-directory.ts";

/** What the stand-ins do: stop the boot once a model copy's directory is made; fail removing it. */
const fs = vi.hoisted(() => ({
  stopAtCopy: false,
  /** Two SIGTERMs in a row once a copy's directory is made and recorded (the next turn of the event loop). */
  stopTwiceAtCopy: false,
  failRemoval: null as string | null,
  /** An error code making a copy's directory fails with, just after the stop (SIGTERM) arrived. */
  failCopy: null as string | null,
  /**
   * What arrives as the copy's directory fails (failCopy): SIGTERM (a stop), or the terminal's Ctrl-C
   * (SIGINT) — supervised, `cloister up`'s SIGTERM follows a moment later, after the failure.
   */
  failCopyAfter: "SIGTERM" as "SIGTERM" | "Ctrl-C" | "Ctrl-C, then up's SIGTERM",
  copies: [] as string[],
}));

vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs/promises")>();
  const isCopy = (path: unknown) => typeof path === "string" && basename(path).startsWith("cloister-model-");
  const stubs = {
    mkdtemp: async (prefix: string) => {
      if (fs.failCopy !== null && isCopy(prefix)) {
        if (fs.failCopyAfter === "SIGTERM") process.emit("SIGTERM", "SIGTERM");
        else process.emit("SIGINT", "SIGINT");
        if (fs.failCopyAfter === "Ctrl-C, then up's SIGTERM") {
          setTimeout(() => process.emit("SIGTERM", "SIGTERM"), 50);
        }
        throw Object.assign(new Error(`${fs.failCopy}: cannot make '${prefix}XXXXXX'`), { code: fs.failCopy });
      }
      const made = await actual.mkdtemp(prefix);
      if (isCopy(made)) {
        fs.copies.push(made);
        if (fs.stopAtCopy) process.emit("SIGTERM", "SIGTERM");
        if (fs.stopTwiceAtCopy) {
          setImmediate(() => {
            process.emit("SIGTERM", "SIGTERM");
            process.emit("SIGTERM", "SIGTERM");
          });
        }
      }
      return made;
    },
    rm: async (path: string, options?: Parameters<typeof actual.rm>[1]) => {
      if (fs.failRemoval !== null && fs.copies.includes(path)) {
        throw Object.assign(new Error(`${fs.failRemoval}: cannot remove '${path}'`), { code: fs.failRemoval });
      }
      return actual.rm(path, options);
    },
  };
  return { ...actual, ...stubs, default: { ...actual, ...stubs } };
});

vi.mock("node:fs", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs")>();
  const rmSync = (path: string, options?: Parameters<typeof actual.rmSync>[1]) => {
    if (fs.failRemoval !== null && fs.copies.includes(path)) {
      throw Object.assign(new Error(`${fs.failRemoval}: cannot remove '${path}'`), { code: fs.failRemoval });
    }
    return actual.rmSync(path, options);
  };
  return { ...actual, rmSync, default: { ...actual, rmSync } };
});

const dir = await testDirectory("cloister-enclave-run-");
let files: DeploymentFiles;

beforeAll(async () => {
  files = await prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {} });
});

afterAll(async () => {
  fs.failRemoval = null;
  for (const copy of fs.copies) await rm(copy, { recursive: true, force: true });
});

/** What `cloister enclave` had done when it called process.exit: the code, its stderr so far, and whether its copy was still there. */
interface AtExit {
  readonly code: number | string | null | undefined;
  readonly stderr: string;
  readonly copyThere: boolean;
}

/**
 * Runs `cloister enclave`, stopped (SIGTERM) as it stages the model (twice in a row: "staging
 * twice") or once it said it is ready, until it returns, removing its model copy failing with the
 * error code `failRemoval` (null: not failing); its stderr, the exit status it set (undefined: 0),
 * the copy it made, the error it failed with, and what it had done when it called process.exit
 * (which does not exit here; null: not called).
 */
async function stoppedWhen(
  when: "staging" | "staging twice" | "ready",
  failRemoval: string | null = null,
  engineCloseFails = false,
  failCopy: string | null = null,
  failCopyAfter: typeof fs.failCopyAfter = "SIGTERM",
): Promise<{ stderr: string; exitCode: typeof process.exitCode; copy: string; error: unknown; atExit: AtExit | null }> {
  const lines: string[] = [];
  let atExit: AtExit | null = null;
  vi.spyOn(process, "exit").mockImplementation((code) => {
    atExit ??= { code, stderr: lines.join(""), copyThere: existsSync(fs.copies.at(-1) as string) };
    return undefined as never;
  });
  const exitCodeBefore = process.exitCode;
  process.exitCode = undefined;
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    if (when === "ready" && String(chunk).includes('"event":"ready"')) process.emit("SIGTERM", "SIGTERM");
    return true;
  });
  fs.stopAtCopy = when === "staging";
  fs.stopTwiceAtCopy = when === "staging twice";
  fs.failRemoval = failRemoval;
  fs.failCopy = failCopy;
  fs.failCopyAfter = failCopyAfter;
  const supervisedBefore = process.env.CLOISTER_SUPERVISED;
  if (failCopyAfter === "Ctrl-C, then up's SIGTERM") process.env.CLOISTER_SUPERVISED = "1";
  // Fresh modules, as a process of its own has: model-staging's record of the copies not removed
  // must not carry a copy another test left (and removed by hand) into this run.
  vi.resetModules();
  const { runEnclaveCommand } = await import("../../enclave/run.ts");
  if (engineCloseFails) {
    // The engine is freed (llama.cpp's memory), then its close fails as a dispose may.
    const { InferenceEngine } = await import("../../enclave/engine.ts");
    const close = InferenceEngine.prototype.close;
    vi.spyOn(InferenceEngine.prototype, "close").mockImplementationOnce(async function (
      this: InstanceType<typeof InferenceEngine>,
    ) {
      await close.call(this);
      throw new Error("the engine's close failed (a stand-in)");
    });
  }
  let error: unknown = null;
  try {
    await runEnclaveCommand({
      manifest: files.manifestPath,
      operatorKey: [files.operatorPublicKeyPath],
      model: files.modelPath,
      tee: "sim-snp",
      listen: "127.0.0.1",
      port: 0,
      frameIntervalMs: 100,
      shutdownGraceMs: 100,
    }).catch((e: unknown) => {
      error = e;
    });
    return { stderr: lines.join(""), exitCode: process.exitCode, copy: fs.copies.at(-1) as string, error, atExit };
  } finally {
    vi.restoreAllMocks();
    fs.stopAtCopy = false;
    fs.stopTwiceAtCopy = false;
    fs.failRemoval = null;
    fs.failCopy = null;
    fs.failCopyAfter = "SIGTERM";
    if (supervisedBefore === undefined) delete process.env.CLOISTER_SUPERVISED;
    else process.env.CLOISTER_SUPERVISED = supervisedBefore;
    process.exitCode = exitCodeBefore; // the test worker's own exit status is not this command's
  }
}

async function exists(path: string): Promise<boolean> {
  return readdir(path).then(
    () => true,
    () => false,
  );
}

describe("cloister enclave: stopped while it stages the model", () => {
  it("says no copy is left when it removed the copy, and exits 0", async () => {
    const { stderr, exitCode, copy } = await stoppedWhen("staging");
    expect(exitCode).toBeUndefined();
    expect(await exists(copy)).toBe(false);
    expect(stderr).toMatch(
      /cloister enclave: shutting down \(SIGTERM during boot\) …\ncloister enclave: stopped before serving; no copy of the model is left\n$/,
    );
  });

  it("names the copy it could not remove, never says no copy is left, and exits 1 so a supervisor sees it", async () => {
    const { stderr, exitCode, copy } = await stoppedWhen("staging", "EBUSY");
    expect(exitCode).toBe(1);
    expect(await exists(copy)).toBe(true);
    expect(stderr).not.toContain("no copy of the model is left");
    expect(stderr).toMatch(/cloister enclave: shutting down \(SIGTERM during boot\) …\n/);
    expect(stderr.split("\n").at(-2)).toBe(
      `cloister enclave: stopped before serving; could not remove the model copy ${copy} (EBUSY): remove it by hand`,
    );
    await rm(copy, { recursive: true, force: true });
  });
});

describe("cloister enclave: a second signal during boot", () => {
  it("exits at once (process.exit), having removed the model copy, and says so: exit 0", async () => {
    const { atExit, copy } = await stoppedWhen("staging twice");
    expect(atExit).toEqual({
      code: 0,
      copyThere: false,
      stderr: expect.stringMatching(
        /cloister enclave: shutting down \(SIGTERM during boot\) …\ncloister enclave: stopped at once \(a second SIGTERM during boot\); no copy of the model is left\n$/,
      ),
    });
    expect(await exists(copy)).toBe(false);
  });

  it("names the copy it could not remove, and exits 1", async () => {
    const { atExit, copy } = await stoppedWhen("staging twice", "EBUSY");
    expect(atExit).toEqual({
      code: 1,
      copyThere: true,
      stderr: expect.stringMatching(/cloister enclave: shutting down \(SIGTERM during boot\) …\n/),
    });
    expect(atExit?.stderr.split("\n").at(-2)).toBe(
      `cloister enclave: stopped at once (a second SIGTERM during boot); could not remove the model copy ${copy} (EBUSY): remove it by hand`,
    );
    await rm(copy, { recursive: true, force: true });
  });
});

describe("cloister enclave: a boot error while a stop is pending", () => {
  it("is the command's error (exit 1), not a clean stop", async () => {
    const { stderr, error } = await stoppedWhen("staging", null, false, "ENOSPC");
    expect(stderr).toContain("cloister enclave: shutting down (SIGTERM during boot) …\n");
    expect(stderr).not.toContain("stopped before serving");
    expect(error).toMatchObject({ code: "ENOSPC" });
  });
});

describe("cloister enclave: a boot step failing after Ctrl-C reached its process group", () => {
  // Ctrl-C reaches the boot's helper processes too (node-llama-cpp's binary test), failing their step.
  it("run alone (the SIGINT is its stop): a clean stop that says the failure, exit 0", async () => {
    const { stderr, error, exitCode } = await stoppedWhen("staging", null, false, "ENOSPC", "Ctrl-C");
    expect(error).toBeNull();
    expect(exitCode).toBeUndefined();
    expect(stderr).toContain("cloister enclave: shutting down (SIGINT during boot) …\n");
    expect(stderr).toContain(
      "cloister enclave: a step failed after Ctrl-C reached its process group, taken as the stop: ENOSPC: ENOSPC: cannot make",
    );
    expect(stderr).toMatch(/stopped before serving; no copy of the model is left\n$/);
  });

  it("supervised (SIGINT ignored): waits for up's SIGTERM, then a clean stop that says the failure, exit 0", async () => {
    const { stderr, error, exitCode } = await stoppedWhen(
      "staging",
      null,
      false,
      "ENOSPC",
      "Ctrl-C, then up's SIGTERM",
    );
    expect(error).toBeNull();
    expect(exitCode).toBeUndefined();
    expect(stderr).not.toContain("(SIGINT during boot)");
    expect(stderr).toMatch(
      /shutting down \(SIGTERM during boot\) …\n(.|\n)*a step failed after Ctrl-C reached its process group, taken as the stop: ENOSPC(.|\n)*stopped before serving; no copy of the model is left\n$/,
    );
  });
});

describe("cloister enclave: stopped after it said it is ready", () => {
  it("says nothing of the copy when it removed it, and exits 0", async () => {
    const { stderr, exitCode, copy } = await stoppedWhen("ready");
    expect(exitCode).toBeUndefined();
    expect(await exists(copy)).toBe(false);
    expect(stderr).not.toContain("model cop");
  });

  it("names the copy it could not remove, and exits 1 so a supervisor sees it", async () => {
    const { stderr, exitCode, copy } = await stoppedWhen("ready", "EBUSY");
    expect(exitCode).toBe(1);
    expect(await exists(copy)).toBe(true);
    expect(stderr.split("\n").at(-2)).toBe(
      `cloister enclave: stopped; could not remove the model copy ${copy} (EBUSY): remove it by hand`,
    );
    await rm(copy, { recursive: true, force: true });
  });
});

describe("cloister enclave: stopped after it said it is ready, its engine failing to close", () => {
  it("still removes the model copy, and fails with the engine's error", async () => {
    const { stderr, exitCode, copy, error } = await stoppedWhen("ready", null, true);
    expect(await exists(copy)).toBe(false);
    expect(stderr).not.toContain("model cop");
    expect(exitCode).toBeUndefined();
    expect((error as Error | null)?.message).toBe("the engine's close failed (a stand-in)");
  });

  it("names the copy it could not remove, exits 1, and fails with the engine's error too", async () => {
    const { stderr, exitCode, copy, error } = await stoppedWhen("ready", "EBUSY", true);
    expect(await exists(copy)).toBe(true);
    expect(exitCode).toBe(1);
    expect(stderr.split("\n").at(-2)).toBe(
      `cloister enclave: stopped; could not remove the model copy ${copy} (EBUSY): remove it by hand`,
    );
    expect((error as Error | null)?.message).toBe("the engine's close failed (a stand-in)");
    await rm(copy, { recursive: true, force: true });
  });
});
