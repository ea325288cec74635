/**
 * The template worker's source holds describeJinjaWrapper's own text (chat-wrapper.ts inlined), taken
 * from the module as it runs. The enclave runs through tsx (bin/cloister.js), whose esbuild keeps
 * function names: a named inner function is compiled to `__name(…)`, a helper of the module's that the
 * worker (eval'd source) lacks. vitest's transform keeps no names, so only a run through tsx shows it:
 * a pinned "jinjaTemplate" boots there, its worker describing its wrapper (no "__name is not defined").
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeTemplateModel } from "./template-model.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

const TEMPLATE =
  "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-template-worker-tsx-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Runs the ES module file `script` under tsx in the repository, killed after 120 s; how it ended and its
 * output. A file, not `-e`: node-llama-cpp tests its binary in a child given this process's arguments.
 */
function runTsx(script: string): Promise<{ code: number | null; signal: string | null; stdout: string }> {
  const args = ["--no-warnings", "--import", "tsx", script];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr.resume();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout });
    });
  });
}

describe("the template worker under tsx (as the enclave runs)", () => {
  // "auto" too: its worker describes the Jinja wrapper it chose (an operator's Llama, Qwen or Mistral
  // model; the project's own template needs no worker's description).
  it.each(["jinjaTemplate", "auto"])(
    "boots chatWrapper %s and renders a new shape on its worker",
    async (choice) => {
      const path = join(dir, `template-${choice}.gguf`);
      const { sha256 } = await writeTemplateModel(path, TEMPLATE);
      const script = join(dir, `boot-${choice}.mjs`);
      const engineUrl = pathToFileURL(join(ROOT, "enclave/engine.ts")).href;
      await writeFile(
        script,
        `
      const { openInferenceEngine } = await import(${JSON.stringify(engineUrl)});
      try {
        const engine = await openInferenceEngine({ modelPath: ${JSON.stringify(path)}, expectedSha256: "${sha256}",
          threads: 1, sequences: 1, contextSize: 256, chatWrapper: "${choice}" });
        const messages = [{ role: "user", content: "hi" }, { role: "assistant", content: "a" }, { role: "user", content: "b" }];
        const rendering = await engine.renderPrompt({ messages });
        console.log(engine.info.chatTemplate, rendering.tokenCount > 0);
        await engine.close();
      } catch (error) {
        console.log(error.code, error.message, error.cause?.message);
      }
    `,
      );
      expect(await runTsx(script)).toEqual({ code: 0, signal: null, stdout: "JinjaTemplate true\n" });
    },
    150_000,
  );
});
