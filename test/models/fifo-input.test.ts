/**
 * `cloister model inspect FIFO` / `model seal FIFO OUT`: the input is refused, by its stat before any
 * open (openModelInput), as not a regular file, where a blocking open waited, silently, for a writer
 * (`model run --model FIFO`'s sealed-model check passes it unread, to the run's own MODEL_NOT_FOUND;
 * without `--sha256`, the run's own digest of the file, `sha256File`, refuses it the same way).
 * Each test opens the FIFO's writer itself (a blocking open, met by any reader), so every wait ends:
 * before the fix the command's own open meets it (and the command fails otherwise); after it, the
 * test's own non-blocking reader does, once the command has returned.
 */
import { execFileSync } from "node:child_process";
import { constants } from "node:fs";
import { access, open } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isModelBadInput, type ModelError } from "../../models/errors.ts";
import { sha256File } from "../../models/hash.ts";
import { inspectModel } from "../../models/inspect.ts";
import { generateModelKey, refuseSealedModel, sealModelFile } from "../../models/sealed.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-model-fifo-");

/** What `run` does with a fresh FIFO as its input, its writer opened meanwhile and every wait ended. */
async function refusalOf(name: string, run: (fifo: string) => Promise<unknown>): Promise<ModelError> {
  const fifo = join(dir, name);
  execFileSync("mkfifo", [fifo]);
  const writer = open(fifo, "w");
  const outcome = await run(fifo).then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  // Ends the writer's wait if the command did not open the FIFO (a reader that opens at once).
  const reader = await open(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  await (await writer).close();
  await reader.close();
  if (!("error" in outcome)) throw new Error(`expected a refusal, found ${JSON.stringify(outcome.value)}`);
  return outcome.error as ModelError;
}

describe("model commands given a FIFO", () => {
  it("inspect refuses it as not a regular file, without waiting for a writer", async () => {
    const error = await refusalOf("inspect.gguf", (fifo) => inspectModel(fifo));
    expect(error.code).toBe("MODEL_IO");
    expect(error.message).toBe(`model file ${join(dir, "inspect.gguf")}: expected a regular file, found a FIFO`);
    expect(isModelBadInput(error)).toBe(true);
  });

  it("seal refuses it as not a regular file, without waiting for a writer, and writes nothing", async () => {
    const out = join(dir, "sealed.cmodel");
    const error = await refusalOf("seal.gguf", (fifo) => sealModelFile(fifo, out, generateModelKey("tiny-v1")));
    expect(error.code).toBe("MODEL_IO");
    expect(error.message).toBe(`model file ${join(dir, "seal.gguf")}: expected a regular file, found a FIFO`);
    expect(isModelBadInput(error)).toBe(true);
    await expect(access(out)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("model run's digest of an unpinned --model (sha256File) refuses it as not a regular file, without waiting", async () => {
    const fifo = join(dir, "digest.gguf");
    execFileSync("mkfifo", [fifo]);
    // The writer closes as soon as a reader meets it: a blocking open by sha256File (before the fix)
    // then reads an empty file to its end at once (a digest, not a refusal), never waits.
    const writer = open(fifo, "w").then((handle) => handle.close());
    const outcome = await sha256File(fifo).then(
      (digest) => ({ digest }),
      (error: unknown) => ({ error: error as ModelError }),
    );
    const reader = await open(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    await writer;
    await reader.close();
    if (!("error" in outcome)) throw new Error(`expected a refusal, found the digest ${outcome.digest}`);
    const { error } = outcome;
    expect(error.code).toBe("MODEL_IO");
    expect(error.message).toBe(`model file ${join(dir, "digest.gguf")}: expected a regular file, found a FIFO`);
    expect(isModelBadInput(error)).toBe(true);
  });

  it("model run's sealed-model check passes it unread, to the run's own refusal, without waiting for a writer", async () => {
    const fifo = join(dir, "run.gguf");
    execFileSync("mkfifo", [fifo]);
    const writer = open(fifo, "w");
    // A blocking open meets the writer, and the read at offset 0 then fails (ESPIPE): MODEL_IO.
    const outcome = await refuseSealedModel(fifo, "--model").then(
      () => "passed",
      (error: unknown) => (error as ModelError).code,
    );
    const reader = await open(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    await (await writer).close();
    await reader.close();
    expect(outcome).toBe("passed");
  });
});
