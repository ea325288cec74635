/**
 * Which models/ errors are bad input (the CLI exits 2) and which are failures (exit 1): a path that
 * is not a regular file is bad input by its own class (ModelNotRegularFileError, code MODEL_IO), not
 * because a MODEL_IO has no cause; a MODEL_IO without a cause from anywhere else is a failure.
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isBadInput } from "../../client/cli/program.ts";
import { isModelBadInput, ModelError, ModelNotRegularFileError } from "../../models/errors.ts";
import { openModelInput } from "../../models/hash.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-model-bad-input-");

describe("isModelBadInput", () => {
  it("a MODEL_IO without a cause that is not the not-a-regular-file refusal is a failure (exit 1)", () => {
    const error = new ModelError("MODEL_IO", "model file /x.gguf: cannot write (short write)");
    expect(error.cause).toBeUndefined();
    expect(isModelBadInput(error)).toBe(false);
    expect(isBadInput(error)).toBe(false);
  });

  it("openModelInput's refusal of a directory is ModelNotRegularFileError, MODEL_IO, bad input (exit 2)", async () => {
    const path = join(dir, "model.gguf");
    await mkdir(path);
    const error = await openModelInput(path).then(
      () => null,
      (caught: unknown) => caught as ModelError,
    );
    expect(error).toBeInstanceOf(ModelNotRegularFileError);
    expect(error?.code).toBe("MODEL_IO");
    expect(error?.message).toBe(`model file ${path}: expected a regular file, found a directory`);
    expect((error as ModelNotRegularFileError).found).toBe("a directory");
    expect(isModelBadInput(error as ModelError)).toBe(true);
    expect(isBadInput(error)).toBe(true);
  });
});
