/**
 * Declares `cloister model run` on the `model` command group. Only options live here; the action
 * imports the engine lazily so other commands never load node-llama-cpp.
 */
import type { Command } from "commander";
import { examples } from "../client/cli/help-examples.ts";
import { intOption, numberOption, optionsUsageError, UsageError } from "../client/cli/output.ts";

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
      const promptFile = options.promptFile as string | undefined;
      if (options.prompt !== undefined && promptFile !== undefined) {
        throw optionsUsageError("model run: expected the prompt once, found both --prompt and --prompt-file");
      }
      if (options.prompt === undefined && promptFile === undefined) {
        throw optionsUsageError("model run: expected a prompt (--prompt TEXT or --prompt-file FILE), found neither");
      }
      // Refused as chat refuses an empty PROMPT argument (never quoted); --prompt-file's is refused as it is read.
      const inline = options.prompt as string | undefined;
      if (inline !== undefined && inline.trim() === "") {
        const found = inline === "" ? "an empty argument" : `only white space (${inline.length} characters)`;
        throw new UsageError(
          `model run: expected a prompt in --prompt, found ${found}; give the prompt as --prompt TEXT, or use --prompt-file FILE`,
        );
      }
      // Read as chat reads its --prompt-file (bounded, UTF-8 checked), before the model is copied and loaded.
      const prompt =
        promptFile === undefined
          ? (inline as string)
          : await (await import("../client/cli/run-client.ts")).readPromptFile(promptFile);
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
