/**
 * openModelInput (models/hash.ts), the open of every model command's input, watched through
 * node:fs/promises (wrapped: test/helpers/watched-opens.ts): a path that is not a regular file is
 * refused by its stat, never
 * opened (opening a device may act: a tape rewinds, a terminal becomes the controlling one); a regular
 * file is opened non-blocking and without taking a terminal (O_NOCTTY); a name swapped between that
 * stat and the open is refused by the fstat of what was opened, and an fstat that fails is MODEL_IO;
 * every handle opened is closed, and a close that fails then does not replace the refusal (nor,
 * closeModelInput, the error of a model command that read through it). That
 * fstat's size is returned, and
 * sha256File hashes it without asking again. unsealModelFile opens the sealed model it reads the same way.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { appendFile, open, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type ModelError, ModelIoError, ModelNotRegularFileError } from "../../models/errors.ts";
import { readGgufFile } from "../../models/gguf-read.ts";
import { encodeGgufHeader } from "../../models/gguf-write.ts";
import { openModelInput, sha256File } from "../../models/hash.ts";
import { inspectModel } from "../../models/inspect.ts";
import { generateModelKey, refuseSealedModel, sealModelFile, unsealModelFile } from "../../models/sealed.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { clearOpenWatch, type OpenWatch } from "../helpers/watched-opens.ts";

/** Every open made (path, flags, closed), and what to do to a path right after its stat returned. */
const watch = vi.hoisted(
  (): OpenWatch => ({ opens: [], afterStat: new Map(), fstatFails: new Set(), closeFails: new Set() }),
);
/** Paths whose handles' close closes, then fails (EBADF), as a close whose descriptor went bad would. */
const closeFails = watch.closeFails as Set<string>;

vi.mock("node:fs/promises", async (importOriginal) => {
  const { watchOpens } = await import("../helpers/watched-opens.ts");
  return watchOpens(await importOriginal(), watch);
});

const dir = await testDirectory("cloister-model-input-");

const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

afterEach(() => {
  clearOpenWatch(watch);
});

async function refusal(path: string): Promise<ModelError> {
  return openModelInput(path).then(
    async (opened) => {
      await opened.handle.close();
      throw new Error(`expected a refusal of ${path}, found it opened`);
    },
    (error: unknown) => error as ModelError,
  );
}

describe("openModelInput", () => {
  it("refuses a character device by its stat, without opening it", async () => {
    const error = await refusal("/dev/null");
    expect(error).toBeInstanceOf(ModelNotRegularFileError);
    expect(error.code).toBe("MODEL_IO");
    expect(error.message).toBe("model file /dev/null: expected a regular file, found a character device");
    expect(watch.opens.map((call) => call.path)).not.toContain("/dev/null");
  });

  it("refuses a FIFO by its stat, without opening it", async () => {
    const fifo = join(dir, "fifo.gguf");
    execFileSync("mkfifo", [fifo]);
    const error = await refusal(fifo);
    expect(error.message).toBe(`model file ${fifo}: expected a regular file, found a FIFO`);
    expect(watch.opens.map((call) => call.path)).not.toContain(fifo);
  });

  it("opens a regular file read-only, non-blocking and without taking a terminal (O_NOCTTY)", async () => {
    const file = join(dir, "model.gguf");
    await writeFile(file, "GGUF");
    const opened = await openModelInput(file);
    await opened.handle.close();
    expect(opened.size).toBe(4);
    expect(watch.opens).toEqual([{ path: file, flags: READ_FLAGS, closed: true }]);
  });

  it("refuses, by the fstat of what it opened, a file swapped for a FIFO after its stat", async () => {
    const path = join(dir, "swapped.gguf");
    await writeFile(path, "GGUF");
    let swapped = false;
    watch.afterStat.set(path, async () => {
      await rm(path);
      execFileSync("mkfifo", [path]);
      swapped = true;
    });
    const error = await refusal(path);
    expect(swapped).toBe(true);
    expect(error).toBeInstanceOf(ModelNotRegularFileError);
    expect(error.message).toBe(`model file ${path}: expected a regular file, found a FIFO`);
    // Opened (non-blocking: not waited on), then refused, its handle closed.
    expect(watch.opens).toEqual([{ path, flags: READ_FLAGS, closed: true }]);
  });

  it("reports an fstat of the opened file that fails as MODEL_IO naming the errno, and closes it", async () => {
    const path = join(dir, "fstat-fails.gguf");
    await writeFile(path, "GGUF");
    watch.fstatFails.add(path);
    const error = await refusal(path);
    expect(error).toBeInstanceOf(ModelIoError);
    expect(error.code).toBe("MODEL_IO");
    expect(error.message).toBe(`model file ${path}: cannot read (EIO)`);
    expect((error.cause as { code?: unknown }).code).toBe("EIO");
    expect(watch.opens).toEqual([{ path, flags: READ_FLAGS, closed: true }]);
  });

  it("keeps its refusal (an fstat that failed, what was swapped in) when the close of what it opened fails too", async () => {
    const failing = join(dir, "fstat-and-close-fail.gguf");
    await writeFile(failing, "GGUF");
    watch.fstatFails.add(failing);
    const swapped = join(dir, "swapped-close-fails.gguf");
    await writeFile(swapped, "GGUF");
    watch.afterStat.set(swapped, async () => {
      await rm(swapped);
      execFileSync("mkfifo", [swapped]);
    });
    closeFails.add(failing).add(swapped);
    try {
      const refusals = [await refusal(failing), await refusal(swapped)];
      expect(refusals.map((error) => `${error.constructor.name}: ${error.message}`)).toEqual([
        `ModelIoError: model file ${failing}: cannot read (EIO)`,
        `ModelNotRegularFileError: model file ${swapped}: expected a regular file, found a FIFO`,
      ]);
      expect(watch.opens.map((call) => [call.path, call.closed])).toEqual([
        [failing, true],
        [swapped, true],
      ]);
    } finally {
      closeFails.clear();
    }
  });

  it("sha256File hashes the size openModelInput's fstat found: the file's size is asked once", async () => {
    const file = join(dir, "hashed.gguf");
    const bytes = Buffer.from("GGUF and some more bytes");
    await writeFile(file, bytes);
    const probe = await open(file, "r");
    const fileHandle = Object.getPrototypeOf(probe) as { stat: () => Promise<unknown> };
    await probe.close();
    const fstat = vi.spyOn(fileHandle, "stat");
    try {
      expect(await sha256File(file)).toBe(createHash("sha256").update(bytes).digest("hex"));
      expect(fstat).toHaveBeenCalledTimes(1);
    } finally {
      fstat.mockRestore();
    }
  });
});

describe("readGgufFile's open of the model (openModelInput's)", () => {
  it("refuses a FIFO and a character device by their stat, without opening (nor waiting on) them", async () => {
    const fifo = join(dir, "gguf-fifo.gguf");
    execFileSync("mkfifo", [fifo]);
    const errors = await Promise.all(
      [fifo, "/dev/null"].map((path) =>
        readGgufFile(path).then(
          () => null,
          (caught: unknown) => caught as ModelError,
        ),
      ),
    );
    expect(errors.map((error) => `${error?.constructor.name} ${error?.code}: ${error?.message}`)).toEqual([
      `ModelNotRegularFileError MODEL_IO: model file ${fifo}: expected a regular file, found a FIFO`,
      "ModelNotRegularFileError MODEL_IO: model file /dev/null: expected a regular file, found a character device",
    ]);
    expect(watch.opens).toEqual([]);
  });

  it("opens a model read-only, non-blocking and without taking a terminal (O_NOCTTY), and closes it", async () => {
    const file = join(dir, "read-gguf.gguf");
    await writeFile(file, encodeGgufHeader([], []).header);
    expect((await readGgufFile(file)).tensors).toEqual([]);
    expect(watch.opens).toEqual([{ path: file, flags: READ_FLAGS, closed: true }]);
  });

  it("keeps its GGUF refusal when the close of the model fails too", async () => {
    const file = join(dir, "read-gguf-close-fails.gguf");
    await writeFile(file, "not a model at all");
    closeFails.add(file);
    try {
      const error = await readGgufFile(file).then(
        () => null,
        (caught: unknown) => caught as ModelError,
      );
      expect(error?.code).toBe("GGUF_BAD_MAGIC");
      expect(watch.opens).toEqual([{ path: file, flags: READ_FLAGS, closed: true }]);
    } finally {
      closeFails.clear();
    }
  });
});

describe("a model input's close that fails (closeModelInput) never replaces the error on its way", () => {
  const key = generateModelKey("close-v1");

  /** What `run` rejects with, `path`'s handles' close failing meanwhile (the close itself done). */
  async function whenCloseFails(path: string, run: () => Promise<unknown>): Promise<string> {
    closeFails.add(path);
    watch.opens.length = 0;
    try {
      const error = await run().then(
        () => null,
        (caught: unknown) => caught as ModelError,
      );
      expect(watch.opens.filter((call) => call.path === path).map((call) => call.closed)).toEqual([true]);
      return `${error?.code}: ${error?.message}`;
    } finally {
      closeFails.clear();
    }
  }

  it("sha256File's read that fails, inspect's and seal's refusals, unseal's: theirs, not the close's", async () => {
    const notGguf = join(dir, "not-gguf.bin");
    await writeFile(notGguf, "not a model at all");
    expect(await whenCloseFails(notGguf, () => inspectModel(notGguf))).toMatch(/^GGUF_BAD_MAGIC: /);
    const hashed = join(dir, "read-fails.gguf");
    await writeFile(hashed, "GGUF");
    const probe = await open(hashed, "r");
    const fileHandle = Object.getPrototypeOf(probe) as { read: () => Promise<unknown> };
    await probe.close();
    const read = vi
      .spyOn(fileHandle, "read")
      .mockRejectedValue(Object.assign(new Error("EIO (a stand-in)"), { code: "EIO" }));
    try {
      expect(await whenCloseFails(hashed, () => sha256File(hashed))).toBe(
        `MODEL_IO: model file ${hashed}: cannot read (EIO)`,
      );
    } finally {
      read.mockRestore();
    }
    // Sealing: `check`'s refusal, and a file grown after its open (refused after both passes).
    const plain = join(dir, "close-plain.gguf");
    await writeFile(plain, "GGUF and the rest of a model");
    const refused = new Error("check refused it");
    const sealedOut = join(dir, "close.sealed");
    const check = async () => {
      throw refused;
    };
    expect(await whenCloseFails(plain, () => sealModelFile(plain, sealedOut, key, { check }))).toBe(
      "undefined: check refused it",
    );
    const grow = () => appendFile(plain, "more");
    expect(await whenCloseFails(plain, () => sealModelFile(plain, sealedOut, key, { check: grow }))).toBe(
      `MODEL_CHANGED: model file ${plain}: changed while being sealed`,
    );
    // Unsealing: a size that is not the manifest's, and a chunk that another key does not open.
    const info = await sealModelFile(plain, sealedOut, key);
    expect(await whenCloseFails(sealedOut, () => refuseSealedModel(sealedOut, "--model"))).toMatch(/^MODEL_SEALED: /);
    const expected = { sha256: info.sha256, sizeBytes: info.sizeBytes, keyId: key.keyId };
    const wrongSize = { ...expected, sizeBytes: info.sizeBytes + 1 };
    expect(
      await whenCloseFails(sealedOut, () => unsealModelFile(sealedOut, join(dir, "u1.gguf"), key, wrongSize)),
    ).toMatch(/^MODEL_SIZE_MISMATCH: /);
    const remade = generateModelKey(key.keyId);
    expect(
      await whenCloseFails(sealedOut, () => unsealModelFile(sealedOut, join(dir, "u2.gguf"), remade, expected)),
    ).toMatch(/^SEALED_MODEL_AUTH_FAILED: sealed model chunk 0 of 1: /);
  });

  it("is not reported after all went well: nothing was written through the handle", async () => {
    const file = join(dir, "close-after-hash.gguf");
    await writeFile(file, "GGUF");
    closeFails.add(file);
    try {
      expect(await sha256File(file)).toBe(createHash("sha256").update("GGUF").digest("hex"));
      expect(watch.opens.filter((call) => call.path === file).map((call) => call.closed)).toEqual([true]);
    } finally {
      closeFails.clear();
    }
  });
});

describe("unsealModelFile's open of the sealed model (openModelInput's)", () => {
  const key = generateModelKey("input-v1");

  it("refuses a character device by its stat, without opening it (MODEL_SIZE_MISMATCH: not a regular file)", async () => {
    const plain = join(dir, "plain-for-device.gguf");
    await writeFile(plain, "GGUF");
    const sealed = join(dir, "for-device.sealed");
    const info = await sealModelFile(plain, sealed, key);
    const expected = { sha256: info.sha256, sizeBytes: info.sizeBytes, keyId: key.keyId };
    watch.opens.length = 0;
    const error = await unsealModelFile("/dev/null", join(dir, "never.gguf"), key, expected).then(
      () => null,
      (caught: unknown) => caught as ModelError,
    );
    expect(error?.code).toBe("MODEL_SIZE_MISMATCH");
    expect(error?.message).toBe(
      `sealed model /dev/null: expected ${info.sizeBytes} bytes (the manifest's model.sizeBytes), found not a regular file`,
    );
    expect(error?.cause).toBeInstanceOf(ModelNotRegularFileError);
    expect(watch.opens.map((call) => call.path)).not.toContain("/dev/null");
  });

  it("opens a sealed model read-only, non-blocking and without taking a terminal (O_NOCTTY)", async () => {
    const plain = join(dir, "plain.gguf");
    await writeFile(plain, "GGUF and the rest of a model");
    const sealed = join(dir, "model.sealed");
    const info = await sealModelFile(plain, sealed, key);
    const expected = { sha256: info.sha256, sizeBytes: info.sizeBytes, keyId: key.keyId };
    watch.opens.length = 0;
    const target = join(dir, "unsealed.gguf");
    await unsealModelFile(sealed, target, key, expected);
    expect(watch.opens.filter((call) => call.path === sealed)).toEqual([
      { path: sealed, flags: READ_FLAGS, closed: true },
    ]);
  });
});
