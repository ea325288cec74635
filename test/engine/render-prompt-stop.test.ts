/**
 * renderPrompt makes the rendering's stop rules from the request's `stop`, so it checks `stop` as
 * generate does (ENGINE_REQUEST naming the field), not a TypeError from spreading a non-array.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineError, type InferenceEngine, openInferenceEngine } from "../../enclave/engine.ts";
import { writeTinyModel } from "../../models/tiny.ts";

let dir: string;
let engine: InferenceEngine;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-render-stop-"));
  const path = join(dir, "tiny.gguf");
  const { sha256 } = await writeTinyModel(path);
  engine = await openInferenceEngine({ modelPath: path, expectedSha256: sha256, threads: 1, contextSize: 64 });
});

afterAll(async () => {
  await engine?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("renderPrompt's stop", () => {
  it.each([
    { what: "a number", stop: 5, message: "stop: expected at most 8 strings" },
    { what: "an empty string in it", stop: ["end", ""], message: "stop[1]: expected a non-empty string" },
    { what: "nine strings", stop: Array.from({ length: 9 }, () => "x"), message: "stop: expected at most 8 strings" },
  ])("refuses $what with ENGINE_REQUEST, as generate does", async ({ stop, message }) => {
    for (const request of [
      { prompt: "The enclave", stop },
      { messages: [{ role: "user", content: "hi" }], stop },
    ]) {
      const error = await engine.renderPrompt(request as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(EngineError);
      expect(error).toMatchObject({ code: "ENGINE_REQUEST", message });
      expect(await engine.complete(request as never).catch((e: unknown) => e)).toMatchObject({ message });
    }
  });
});
