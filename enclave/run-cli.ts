/**
 * Declares `cloister model run` on the `model` command group. Only options live here; the action
 * imports the engine lazily so other commands never load node-llama-cpp.
 */
import type { Command } from "commander";
import { examples } from "../client/cli/help-examples.ts";
import { intOption, numberOption, optionsUsageError } from "../client/cli/output.ts";
import type { InlinePromptNames } from "../client/cli/run-client.ts";

/** How `model run` names its prompt in the refusals it shares with chat (readPromptOptions). */
const MODEL_RUN_PROMPT: InlinePromptNames = {
  command: "model run",
  both: "--prompt",
  where: "--prompt",
  remedy: "give the prompt as --prompt TEXT, or use --prompt-file FILE",
};

export function registerModelRunCommand(model: Command): void {
  model
    .command("run")
    .addHelpText(
      "after",
      [
        "",
        "Before loading, it copies the model file into a private directory and hashes the copy as it",
        "writes it, so the bytes checked against --sha256 are the bytes loaded: in /dev/shm when it has",
        "room (memory), else the temp directory (TMPDIR: disk space). That costs one read and one write",
        "of the whole model per run, and needs free space there the size of the model (MODEL_NO_ROOM",
        "otherwise; set TMPDIR to a directory with room). The copy is removed when it ends, by Ctrl-C",
        "or a closed output (| head) too; a copy it could not remove is named on stderr (remove it by",
        "hand), with exit 1.",
      ].join("\n"),
    )
    .addHelpText(
      "after",
      examples(
        'cloister model run --model tiny.gguf --prompt "Once upon a time" --max-tokens 32',
        'cloister model run --model tiny.gguf --chat --prompt "What is a cloister?" --seed 7 --json',
        "cloister model run --model tiny.gguf --chat --prompt-file question.txt",
      ),
    )
    .description("run one completion on a GGUF model (digest checked before loading), streamed to stdout")
    .requiredOption("--model <file>", "GGUF model file")
    .option("--sha256 <hex>", "pinned SHA-256 of the model file; refused when it differs")
    .option("--prompt <text>", "prompt text (visible to other users in the process list: use --prompt-file)")
    .option("--prompt-file <file>", "read the prompt from FILE (UTF-8), or from standard input with -")
    .option("--chat", "render the prompt as one user message through the model's chat template")
    .option("--max-tokens <n>", "maximum tokens to generate (default: 256)", intOption("--max-tokens", 1, 1_000_000))
    .option("--seed <n>", "sampling seed", intOption("--seed", 0, 2 ** 32 - 1))
    .option("--temperature <t>", "sampling temperature, 0 = greedy (default: 0)", numberOption("--temperature", 0, 2))
    .option("--top-p <p>", "nucleus sampling threshold (default: 1)", numberOption("--top-p", 0, 1))
    .option("--json", "print {text, stopReason, promptTokens, completionTokens, ttftMs, tokensPerSecond} as JSON")
    .action(async (options: Record<string, unknown>) => {
      const sha256 = options.sha256 as string | undefined;
      if (sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(sha256)) {
        throw optionsUsageError(`--sha256 expects 64 hex digits, found "${sha256}"`);
      }
      if (options.topP === 0) throw optionsUsageError("--top-p expects a number in (0, 1], found 0");
      // Checked and read as chat's (not both; an inline one not empty and within the limit; a file
      // bounded and UTF-8 checked), before the model is copied and loaded.
      const { readPromptOptions } = await import("../client/cli/run-client.ts");
      const prompt = await readPromptOptions(
        MODEL_RUN_PROMPT,
        options.prompt as string | undefined,
        options.promptFile as string | undefined,
      );
      if (prompt === undefined) {
        throw optionsUsageError("model run: expected a prompt (--prompt TEXT or --prompt-file FILE), found neither");
      }
      const { runModelCommand } = await import("./run-command.ts");
      await runModelCommand({
        model: options.model as string,
        prompt,
        ...(sha256 === undefined ? {} : { sha256 }),
        ...(options.chat === true ? { chat: true } : {}),
        ...(options.maxTokens === undefined ? {} : { maxTokens: options.maxTokens as number }),
        ...(options.seed === undefined ? {} : { seed: options.seed as number }),
        ...(options.temperature === undefined ? {} : { temperature: options.temperature as number }),
        ...(options.topP === undefined ? {} : { topP: options.topP as number }),
        ...(options.json === true ? { json: true } : {}),
      });
    });
}
