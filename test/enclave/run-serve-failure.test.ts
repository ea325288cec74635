/**
 * `cloister enclave` (enclave/run.ts) when serving the booted enclave fails (createEnclaveApp or
 * server.serve throwing, never seen): the command fails with that error, having closed what the boot
 * opened, as a stop during boot does: the enclave (engine and model) closed, the server no longer
 * listening, and the boot's SIGINT/SIGTERM handlers removed, so the process can exit; a second stop
 * while it closes exits 1 at once, saying that error (not 0, not lost), each signal worded for the
 * close, not for a boot; a model copy it could not remove is named. In process; the app factory is a
 * stand-in that throws, and removing the copy fails (EBUSY) through stand-ins for node:fs/promises'
 * rm and node:fs's rmSync when a test asks.
 */
import { rm } from "node:fs/promises";
import { connect } from "node:net";
import { basename } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type DeploymentFiles, prepareDeployment } from "../../client/cli/deploy.ts";
import type { EnclaveCommandOptions } from "../../enclave/cli.ts";
import type { Enclave as EnclaveInstance } from "../../enclave/service.ts";
import { testDirectory } from "../helpers/test-directory.ts";

/** The model copies the enclave made; whether removing them fails (EBUSY), as a test asks. */
const fs = vi.hoisted(() => ({ copies: [] as string[], failRemoval: false }));

const isCopy = (path: unknown) => typeof path === "string" && basename(path).startsWith("cloister-model-");
const removalFailure = (path: string) => Object.assign(new Error(`EBUSY: cannot remove '${path}'`), { code: "EBUSY" });

vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs/promises")>();
  const stubs = {
    mkdtemp: async (prefix: string) => {
      const made = await actual.mkdtemp(prefix);
      if (isCopy(made)) fs.copies.push(made);
      return made;
    },
    rm: async (path: string, options?: Parameters<typeof actual.rm>[1]) => {
      if (fs.failRemoval && fs.copies.includes(path)) throw removalFailure(path);
      return actual.rm(path, options);
    },
  };
  return { ...actual, ...stubs, default: { ...actual, ...stubs } };
});

vi.mock("node:fs", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs")>();
  const rmSync = (path: string, options?: Parameters<typeof actual.rmSync>[1]) => {
    if (fs.failRemoval && fs.copies.includes(path)) throw removalFailure(path);
    return actual.rmSync(path, options);
  };
  return { ...actual, rmSync, default: { ...actual, rmSync } };
});

vi.mock("../../enclave/server.ts", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../../enclave/server.ts")>();
  return {
    ...actual,
    createEnclaveApp: () => {
      throw new Error("the app factory failed (a stand-in)");
    },
  };
});

const dir = await testDirectory("cloister-enclave-serve-failure-");
let files: DeploymentFiles;

beforeAll(async () => {
  files = await prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {} });
});

afterAll(async () => {
  fs.failRemoval = false;
  for (const copy of fs.copies) await rm(copy, { recursive: true, force: true });
});

/** `cloister enclave` for the deployment, on a free loopback port. */
function options(): EnclaveCommandOptions {
  const { manifestPath, operatorPublicKeyPath, modelPath } = files;
  return {
    manifest: manifestPath,
    operatorKey: [operatorPublicKeyPath],
    model: modelPath,
    tee: "sim-snp",
    listen: "127.0.0.1",
    port: 0,
    frameIntervalMs: 100,
    shutdownGraceMs: 100,
  };
}

/** Whether something accepts a TCP connection at `url` (loopback). */
function accepts(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** What the command writes on stderr, kept (stdout muted) until vi.restoreAllMocks. */
function capturedStderr(): string[] {
  const stderr: string[] = [];
  vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
    stderr.push(String(chunk));
    return true;
  });
  vi.spyOn(process.stdout, "write").mockImplementation(() => true);
  return stderr;
}

/** The process's SIGINT and SIGTERM listeners: the boot's are removed once the command ends. */
function signalListeners(): { readonly SIGINT: number; readonly SIGTERM: number } {
  return { SIGINT: process.listenerCount("SIGINT"), SIGTERM: process.listenerCount("SIGTERM") };
}

/** The booted server's close, made to reject with `reason` once it has closed. */
async function serverCloseRejecting(reason: unknown): Promise<void> {
  const http = await import("../../enclave/http.ts");
  const listen = http.listenBeforeServing;
  vi.spyOn(http, "listenBeforeServing").mockImplementation(async (...args) => {
    const server = await listen(...args);
    return {
      ...server,
      close: async () => {
        await server.close();
        return Promise.reject(reason);
      },
    };
  });
}

/**
 * Runs the command with the server's close rejecting with `reason` (serverCloseRejecting): the
 * command's error (the serving error, expected) and what it wrote on stderr. Mocks restored after.
 */
async function servingFailedThenClose(reason: unknown): Promise<{ readonly error: unknown; readonly stderr: string }> {
  await serverCloseRejecting(reason);
  const stderr = capturedStderr();
  const { runEnclaveCommand } = await import("../../enclave/run.ts");
  try {
    const error = await runEnclaveCommand(options()).catch((e: unknown) => e);
    return { error, stderr: stderr.join("") };
  } finally {
    vi.restoreAllMocks();
  }
}

describe("cloister enclave: serving the booted enclave fails", () => {
  it("fails with that error, the enclave closed, the server closed and the boot's signal handlers removed", async () => {
    const { Enclave } = await import("../../enclave/service.ts");
    const http = await import("../../enclave/http.ts");
    const closed = vi.spyOn(Enclave.prototype, "close");
    const listening: string[] = [];
    const listen = http.listenBeforeServing;
    vi.spyOn(http, "listenBeforeServing").mockImplementation(async (...args) => {
      const server = await listen(...args);
      listening.push(server.url);
      return server;
    });
    vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    const before = signalListeners();
    const { runEnclaveCommand } = await import("../../enclave/run.ts");
    try {
      const error = await runEnclaveCommand(options()).catch((e: unknown) => e);
      expect((error as Error | null)?.message).toBe("the app factory failed (a stand-in)");
      expect(listening).toHaveLength(1);
      expect({
        enclaveClosed: closed.mock.calls.length,
        listening: await accepts(listening[0] as string),
        signals: signalListeners(),
      }).toEqual({ enclaveClosed: 1, listening: false, signals: before });
    } finally {
      vi.restoreAllMocks();
    }
  });

  it("a second signal while it closes stops at once with status 1, the serving error said (not lost, not 0)", async () => {
    const { Enclave } = await import("../../enclave/service.ts");
    const close = Enclave.prototype.close;
    // Two stops arrive while the enclave closes (a supervisor's SIGTERM, then another).
    vi.spyOn(Enclave.prototype, "close").mockImplementation(function (this: EnclaveInstance) {
      process.emit("SIGTERM", "SIGTERM");
      process.emit("SIGTERM", "SIGTERM");
      return close.call(this);
    });
    const exits: (string | number | null | undefined)[] = [];
    vi.spyOn(process, "exit").mockImplementation((code) => {
      exits.push(code);
      return undefined as never;
    });
    const stderr = capturedStderr();
    const { runEnclaveCommand } = await import("../../enclave/run.ts");
    try {
      await runEnclaveCommand(options()).catch(() => {});
      expect(exits).toEqual([1]);
      expect(stderr.join("")).toContain("cloister: the app factory failed (a stand-in)");
      // Worded for the close that is under way, not for a boot that has ended.
      expect(stderr.join("")).toContain("cloister enclave: SIGTERM while closing (it could not serve) …\n");
      expect(stderr.join("")).toContain("cloister enclave: stopped at once (a second SIGTERM while closing); ");
      expect(stderr.join("")).not.toContain("during boot");
    } finally {
      vi.restoreAllMocks();
    }
  });

  it("the server's close failing too: the serving error is still the command's, the close's said, the handlers removed", async () => {
    const before = signalListeners();
    const { error, stderr } = await servingFailedThenClose(new Error("the server's close failed (a stand-in)"));
    expect((error as Error | null)?.message).toBe("the app factory failed (a stand-in)");
    // Said before the serving error (main writes the command's error last): worded as such.
    expect(stderr).toContain(
      "cloister enclave: while stopping after the error below, closing failed: the server's close failed (a stand-in)\n",
    );
    expect(signalListeners()).toEqual(before);
  });

  it("the server's close rejecting with undefined: said, not dropped", async () => {
    const { error, stderr } = await servingFailedThenClose(undefined);
    expect((error as Error | null)?.message).toBe("the app factory failed (a stand-in)");
    expect(stderr).toContain(
      "cloister enclave: while stopping after the error below, closing failed: the server's close failed without a reason (it rejected with undefined)\n",
    );
  });

  it("the enclave's close rejecting with null: said, not dropped (as the server's)", async () => {
    const { Enclave } = await import("../../enclave/service.ts");
    const close = Enclave.prototype.close;
    vi.spyOn(Enclave.prototype, "close").mockImplementation(async function (this: EnclaveInstance) {
      await close.call(this);
      throw null;
    });
    const stderr = capturedStderr();
    const { runEnclaveCommand } = await import("../../enclave/run.ts");
    try {
      const error = await runEnclaveCommand(options()).catch((e: unknown) => e);
      expect((error as Error | null)?.message).toBe("the app factory failed (a stand-in)");
      expect(stderr.join("")).toContain(
        "cloister enclave: while stopping after the error below, closing failed: the enclave's close failed without a reason (it rejected with null)\n",
      );
    } finally {
      vi.restoreAllMocks();
    }
  });

  it("a model copy it could not remove is named, and the command still fails with the serving error", async () => {
    const stderr = capturedStderr();
    // Fresh modules: model-staging's record of the copies left must hold this run's copy only.
    vi.resetModules();
    const { runEnclaveCommand } = await import("../../enclave/run.ts");
    fs.failRemoval = true;
    try {
      const error = await runEnclaveCommand(options()).catch((e: unknown) => e);
      const copy = fs.copies.at(-1) as string;
      expect((error as Error | null)?.message).toBe("the app factory failed (a stand-in)");
      expect(stderr.join("")).toContain(
        `cloister enclave: could not serve; could not remove the model copy ${copy} (EBUSY): remove it by hand\n`,
      );
      // The removal's failure is the line above, not a second error of the close.
      expect(stderr.join("")).not.toContain("closing failed");
    } finally {
      fs.failRemoval = false;
      vi.restoreAllMocks();
    }
  });
});
