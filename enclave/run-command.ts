/**
 * `cloister model run`: load a model through the inference engine (digest checked first) and
 * print one completion, streamed to stdout, or as JSON with usage numbers.
 *
 * Without `--sha256` the file's digest is computed here and shown on stderr as not pinned; the
 * engine then checks the file against it like any pinned digest. The engine loads a private copy
 * it hashed as it wrote it (engine.ts), so the digest checked is the digest of the bytes loaded.
 */
import { sha256File } from "../models/hash.ts";
import { openInferenceEngine } from "./engine.ts";

export type RunCommandOptions = {
  model: string;
  sha256?: string;
  prompt: string;
  chat?: boolean;
  maxTokens?: number;
  seed?: number;
  temperature?: number;
  topP?: number;
  json?: boolean;
};

export async function runModelCommand(options: RunCommandOptions): Promise<void> {
  let expectedSha256 = options.sha256;
  if (expectedSha256 === undefined) {
    expectedSha256 = await sha256File(options.model);
    process.stderr.write(`model sha256 (not pinned, pass --sha256 to pin): ${expectedSha256}\n`);
  }
  const engine = await openInferenceEngine({ modelPath: options.model, expectedSha256, sequences: 1, maxQueue: 0 });
  const controller = new AbortController();
  const onSigint = (): void => controller.abort();
  process.once("SIGINT", onSigint);
  try {
    const request = {
      ...(options.chat === true
        ? { messages: [{ role: "user" as const, content: options.prompt }] }
        : { prompt: options.prompt }),
      ...(options.maxTokens === undefined ? {} : { maxTokens: options.maxTokens }),
      ...(options.seed === undefined ? {} : { seed: options.seed }),
      ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
      ...(options.topP === undefined ? {} : { topP: options.topP }),
      signal: controller.signal,
    };
    let text = "";
    for await (const event of engine.generate(request)) {
      if (event.type === "text") {
        text += event.text;
        if (options.json !== true) process.stdout.write(event.text);
        continue;
      }
      if (options.json === true) {
        process.stdout.write(
          `${JSON.stringify(
            {
              text,
              stopReason: event.stopReason,
              promptTokens: event.usage.promptTokens,
              completionTokens: event.usage.completionTokens,
              ttftMs: round(event.usage.ttftMs),
              tokensPerSecond: round(event.usage.tokensPerSecond),
            },
            null,
            2,
          )}\n`,
        );
      } else {
        process.stdout.write("\n");
      }
    }
  } finally {
    process.off("SIGINT", onSigint);
    await engine.close();
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
