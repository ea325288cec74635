/**
 * The boot's opens of the --model file (enclave/model-staging.ts: checkModelFile, stageModel),
 * watched through node:fs/promises (wrapped: test/helpers/watched-opens.ts): a path
 * that is not a regular file is refused by its stat, never opened (opening a device may act: a tape
 * rewinds, a terminal becomes the controlling one), with the boot's MODEL_NOT_FOUND message; a regular
 * file is opened non-blocking and without taking a terminal (O_NOCTTY); a name swapped between that
 * stat and the open is refused by the fstat of what was opened; every handle opened is closed, and a
 * close that fails then does not replace the refusal (closeModelInput). A read
 * of a sealed file's header that fails is MODEL_IO naming the file, as unsealing's reads are.
 */
import { execFileSync } from "node:child_process";
import { constants } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type EngineError, ModelNotAFileError } from "../../enclave/engine/errors.ts";
import { checkModelFile, stageModel } from "../../enclave/model-staging.ts";
import { ModelIoError } from "../../models/errors.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { clearOpenWatch, type OpenWatch } from "../helpers/watched-opens.ts";

/**
 * Every open made (path, flags, closed), what to do to a path right after its stat returned, and the
 * paths whose handle's fstat or reads fail (EIO).
 */
const watch = vi.hoisted(
  (): OpenWatch => ({
    opens: [],
    afterStat: new Map(),
    fstatFails: new Set(),
    readFails: new Set(),
    closeFails: new Set(),
  }),
);

/** Paths whose handles' close closes, then fails (EBADF), as a close whose descriptor went bad would. */
const closeFails = watch.closeFails as Set<string>;

vi.mock("node:fs/promises", async (importOriginal) => {
  const { watchOpens } = await import("../helpers/watched-opens.ts");
  return watchOpens(await importOriginal(), watch);
});

const dir = await testDirectory("cloister-model-source-open-");
const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

afterEach(() => {
  clearOpenWatch(watch);
});

/** The two opens under test, each given a path and the size it expects. */
const opens = {
  checkModelFile: (path: string, sizeBytes: number) =>
    checkModelFile(path, { sizeBytes, keyId: null }, { privateRoot: async () => dir }),
  stageModel: async (path: string, sizeBytes: number) => {
    const root = await mkdtemp(join(dir, "root-"));
    const staged = await stageModel(path, sizeBytes, { privateRoot: async () => root });
    await staged.remove();
  },
} as const;

async function refusal(run: Promise<void>): Promise<EngineError> {
  return run.then(
    () => {
      throw new Error("expected a refusal, found the model file taken");
    },
    (error: unknown) => error as EngineError,
  );
}

describe.each(Object.entries(opens))("%s's open of the --model file", (_name, take) => {
  it("refuses a character device by its stat, without opening it (MODEL_NOT_FOUND)", async () => {
    const error = await refusal(take("/dev/null", 4));
    expect(error).toBeInstanceOf(ModelNotAFileError);
    expect(error.code).toBe("MODEL_NOT_FOUND");
    expect(error.message).toBe(
      "--model file /dev/null: expected a regular file, found a character device; give the model file's path",
    );
    expect(watch.opens.map((call) => call.path)).not.toContain("/dev/null");
  });

  it("refuses a FIFO by its stat, without opening it", async () => {
    const fifo = join(dir, `fifo-${_name}.gguf`);
    execFileSync("mkfifo", [fifo]);
    const error = await refusal(take(fifo, 4));
    expect(error.code).toBe("MODEL_NOT_FOUND");
    expect(error.message).toBe(
      `--model file ${fifo}: expected a regular file, found a FIFO; give the model file's path`,
    );
    expect(watch.opens.map((call) => call.path)).not.toContain(fifo);
  });

  it("names a missing file as before (MODEL_NOT_FOUND, not found), opening nothing", async () => {
    const missing = join(dir, "missing.gguf");
    const error = await refusal(take(missing, 4));
    expect(error.code).toBe("MODEL_NOT_FOUND");
    expect(error.message).toBe(`--model file ${missing}: not found; check the path, or put the model file there`);
    expect((error.cause as { code?: unknown }).code).toBe("ENOENT");
    expect(watch.opens.map((call) => call.path)).not.toContain(missing);
  });

  it("quotes a path that would not read back as itself in MODEL_SIZE_MISMATCH, as in MODEL_NOT_FOUND", async () => {
    const file = join(dir, `size: ${_name}.gguf`);
    await writeFile(file, "GGUF");
    const wrongSize = await refusal(take(file, 5));
    expect(wrongSize.code).toBe("MODEL_SIZE_MISMATCH");
    expect(wrongSize.message).toBe(
      `model file '${file}': expected 5 bytes (the manifest's model.sizeBytes), found 4; not loaded`,
    );
    const missing = join(dir, `missing: ${_name}.gguf`);
    const notFound = await refusal(take(missing, 4));
    expect(notFound.message).toBe(`--model file '${missing}': not found; check the path, or put the model file there`);
  });

  it("keeps its MODEL_SIZE_MISMATCH when the close of the file fails too (closeModelInput)", async () => {
    const file = join(dir, `close-fails-${_name}.gguf`);
    await writeFile(file, "GGUF");
    closeFails.add(file);
    try {
      const error = await refusal(take(file, 5));
      expect(`${error.code}: ${error.message}`).toBe(
        `MODEL_SIZE_MISMATCH: model file ${file}: expected 5 bytes (the manifest's model.sizeBytes), found 4; not loaded`,
      );
      expect(watch.opens).toEqual([{ path: file, flags: READ_FLAGS, closed: true }]);
    } finally {
      closeFails.clear();
    }
  });

  it("opens a regular file read-only, non-blocking and without taking a terminal (O_NOCTTY)", async () => {
    const file = join(dir, `model-${_name}.gguf`);
    await writeFile(file, "GGUF");
    await take(file, 4);
    expect(watch.opens.filter((call) => call.path === file)).toEqual([{ path: file, flags: READ_FLAGS, closed: true }]);
  });

  it("refuses, by the fstat of what it opened, a file swapped for a FIFO after its stat", async () => {
    const path = join(dir, `swapped-${_name}.gguf`);
    await writeFile(path, "GGUF");
    let swapped = false;
    watch.afterStat.set(path, async () => {
      await rm(path);
      execFileSync("mkfifo", [path]);
      swapped = true;
    });
    const error = await refusal(take(path, 4));
    expect(swapped).toBe(true);
    expect(error).toBeInstanceOf(ModelNotAFileError);
    expect(error.message).toBe(
      `--model file ${path}: expected a regular file, found a FIFO; give the model file's path`,
    );
    // Opened (non-blocking: not waited on), then refused, its handle closed.
    expect(watch.opens).toEqual([{ path, flags: READ_FLAGS, closed: true }]);
  });

  it("reports an fstat of the opened file that fails as MODEL_NOT_FOUND naming the errno, and closes it", async () => {
    const path = join(dir, `fstat-fails-${_name}.gguf`);
    await writeFile(path, "GGUF");
    watch.fstatFails.add(path);
    const error = await refusal(take(path, 4));
    expect(error.code).toBe("MODEL_NOT_FOUND");
    expect(error.message).toBe(`--model file ${path}: cannot be read (EIO); check that this user may read it`);
    expect((error.cause as { code?: unknown }).code).toBe("EIO");
    expect(watch.opens).toEqual([{ path, flags: READ_FLAGS, closed: true }]);
  });
});

describe("checkModelFile's read of a sealed --model file's header", () => {
  it("reports a read that fails as MODEL_IO naming the file and errno (as unsealing does), and closes it", async () => {
    const path = join(dir, "header-read-fails.gguf.sealed");
    await writeFile(path, "CLSM");
    watch.readFails?.add(path);
    const error = await checkModelFile(path, { sizeBytes: 4, keyId: "k" }, { privateRoot: async () => dir }).then(
      () => null,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ModelIoError);
    expect((error as ModelIoError).message).toBe(`model file ${path}: cannot read (EIO)`);
    expect((error as ModelIoError).cause).toMatchObject({ code: "EIO" });
    expect(watch.opens).toEqual([{ path, flags: READ_FLAGS, closed: true }]);
  });
});
