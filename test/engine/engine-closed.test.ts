/**
 * A closed engine says so first: renderPrompt (the service's first call of a request) refuses with
 * ENGINE_CLOSED, for a prompt and for a conversation of an operator's Jinja template, as generate
 * does, not another code from what close() freed or ended (the model, the shape worker).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineError, openInferenceEngine } from "../../enclave/engine.ts";
import { writeTinyModel } from "../../models/tiny.ts";
import { openTemplateEngine } from "./template-model.ts";

const TEMPLATE =
  "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-engine-closed-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The code `promise` rejects with (or what it rejects with when not an EngineError; "resolved"). */
async function codeOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => "resolved",
    (error: unknown) => (error instanceof EngineError ? error.code : error),
  );
}

describe("a closed engine", () => {
  it("refuses renderPrompt of a prompt with ENGINE_CLOSED", async () => {
    const path = join(dir, "tiny.gguf");
    const { sha256 } = await writeTinyModel(path);
    const engine = await openInferenceEngine({ modelPath: path, expectedSha256: sha256, threads: 1, contextSize: 64 });
    await engine.close();
    expect(await codeOf(engine.renderPrompt({ prompt: "The enclave" }))).toBe("ENGINE_CLOSED");
  });

  it("refuses renderPrompt of a conversation (an operator's Jinja template, a new shape) with ENGINE_CLOSED", async () => {
    const engine = await openTemplateEngine(join(dir, "template.gguf"), TEMPLATE);
    await engine.close();
    const messages = [{ role: "user" as const, content: "hello" }];
    expect(await codeOf(engine.renderPrompt({ messages }))).toBe("ENGINE_CLOSED");
  });
});
