/**
 * The --model refusals (ModelNotAFileError, modelNotFound, ModelDigestMismatchError) write the path
 * as fileMessage does: a path holding a line feed or an escape sequence is one quoted shell word
 * with those characters escaped, so the message never carries them raw to an operator's terminal
 * or log.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ModelDigestMismatchError, ModelNotAFileError, modelNotFound } from "../../enclave/engine/errors.ts";
import { openInferenceEngine } from "../../enclave/engine.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const NAME = "model\nline2\x1b[2J.gguf";
/** The C0 and C1 control characters (and DEL) `text` holds. */
const controls = (text: string) => [...text].filter((c) => c.charCodeAt(0) < 0x20 || (c >= "\x7f" && c <= "\x9f"));

describe("--model refusals of a path with a line feed and an escape sequence", () => {
  it("ModelNotAFileError writes it quoted, escaped", () => {
    const parent = mkdtempSync(join(tmpdir(), "cloister-model-path-"));
    dirs.push(parent);
    const path = join(parent, NAME);
    mkdirSync(path);
    const error = new ModelNotAFileError(path, statSync(path));
    expect(controls(error.message)).toEqual([]);
    expect(error.message).toBe(
      `--model file $'${parent}/model\\nline2\\033[2J.gguf': expected a regular file, found a directory; give the model file's path`,
    );
  });

  it("modelNotFound writes it quoted, escaped, for a missing file and an unreadable one", async () => {
    const parent = mkdtempSync(join(tmpdir(), "cloister-model-path-"));
    dirs.push(parent);
    const path = join(parent, NAME);
    const missing = await stat(path).catch((error: unknown) => error);
    const notFound = modelNotFound(path, missing);
    expect(controls(notFound.message)).toEqual([]);
    expect(notFound.message).toBe(
      `--model file $'${parent}/model\\nline2\\033[2J.gguf': not found; check the path, or put the model file there`,
    );
    const denied = modelNotFound(path, Object.assign(new Error("denied"), { code: "EACCES" }));
    expect(controls(denied.message)).toEqual([]);
    expect(denied.message).toContain(`$'${parent}/model\\nline2\\033[2J.gguf': cannot be read (EACCES)`);
  });

  it("ModelDigestMismatchError writes the file the operator gave (modelName) quoted, escaped", async () => {
    const parent = mkdtempSync(join(tmpdir(), "cloister-model-path-"));
    dirs.push(parent);
    const copy = join(parent, "private-copy.gguf");
    writeFileSync(copy, "not a model");
    const [found, expected] = ["ab".repeat(32), "cd".repeat(32)];
    const error = await openInferenceEngine({
      modelPath: copy,
      modelSha256: found,
      modelName: join(parent, NAME),
      expectedSha256: expected,
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ModelDigestMismatchError);
    const message = (error as Error).message;
    expect(controls(message)).toEqual([]);
    expect(message).toBe(
      `model file $'${parent}/model\\nline2\\033[2J.gguf': sha256 expected ${expected}, found ${found}; refusing to load`,
    );
  });

  it("writes a plain path as given", () => {
    const error = modelNotFound("/models/tiny.gguf", Object.assign(new Error("gone"), { code: "ENOENT" }));
    expect(error.message).toBe(
      "--model file /models/tiny.gguf: not found; check the path, or put the model file there",
    );
  });
});
