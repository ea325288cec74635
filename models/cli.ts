/**
 * `cloister model …` sub-commands of the models/ party. Actions import their implementation
 * lazily. Other parties add their own `model` sub-commands through {@link modelCommand}.
 */
import type { Command } from "commander";
import { examples } from "../client/cli/help-examples.ts";
import { choiceOption } from "../client/cli/output.ts";
import { registerModelRunCommand } from "../enclave/run-cli.ts";

/** The `model` command group of `program`, created on first use (shared with `cloister model run`). */
export function modelCommand(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === "model");
  if (existing !== undefined) return existing;
  return program
    .command("model")
    .description("make, inspect, seal and run GGUF models")
    .addHelpText(
      "after",
      examples(
        "cloister model make tiny --out tiny.gguf",
        "cloister model inspect tiny.gguf",
        'cloister model run --model tiny.gguf --prompt "Once upon a time" --max-tokens 32',
      ),
    );
}

export function registerModelCommands(program: Command): void {
  const model = modelCommand(program);
  registerModelRunCommand(model); // `model run`: declared in enclave/run-cli.ts, engine loaded lazily
  // Before the engine loads: a sealed model is named as one, not reported as a model that does not load.
  model.commands
    .find((c) => c.name() === "run")
    ?.hook("preAction", async (run) => {
      const path = run.opts<{ model?: unknown }>().model;
      if (typeof path !== "string") return;
      const { refuseSealedModel } = await import("./sealed.ts");
      const { ModelIoError } = await import("./errors.ts");
      // A file that cannot be opened is left to `model run` to report, as before.
      await refuseSealedModel(path, "--model").catch((error: unknown) => {
        if (!(error instanceof ModelIoError)) throw error;
      });
    });
  const make = model
    .command("make")
    .addHelpText(
      "after",
      examples(
        "cloister model make tiny --out tiny.gguf",
        "cloister model make bench --preset small --out bench-small.gguf",
      ),
    )
    .description("write a deterministic model generated offline (same bytes on every machine)");

  make
    .command("tiny")
    .addHelpText(
      "after",
      examples("cloister model make tiny --out tiny.gguf", "cloister model make tiny --out tiny.gguf --force --json"),
    )
    .description("the tiny llama model that writes recognisable English (demo and tests)")
    .requiredOption("--out <file>", "where to write the GGUF file; an existing file is refused unless --force")
    .option("--force", "replace the --out file if it exists")
    .option("--json", "print the result as JSON")
    .action(async (opts: { out: string; force?: boolean; json?: boolean }) => {
      const { runMakeTiny } = await import("./cli-impl.ts");
      await runMakeTiny(opts.out, opts.force === true, opts.json === true);
    });

  make
    .command("bench")
    .addHelpText(
      "after",
      examples(
        "cloister model make bench --preset small --out bench-small.gguf",
        "cloister model make bench --preset medium --quant q8_0 --out bench-medium-q8.gguf",
      ),
    )
    .description("a synthetic llama-shaped model with pseudo-random weights for benchmarks")
    .requiredOption(
      "--preset <preset>",
      "small (~25M), medium (~127M) or large (~1.1B parameters)",
      choiceOption("--preset", ["small", "medium", "large"] as const),
    )
    .option("--quant <quant>", "tensor encoding: f16 or q8_0", choiceOption("--quant", ["f16", "q8_0"] as const), "f16")
    .requiredOption("--out <file>", "where to write the GGUF file; an existing file is refused unless --force")
    .option("--force", "replace the --out file if it exists")
    .option("--json", "print the result as JSON")
    .action(
      async (opts: {
        preset: "small" | "medium" | "large";
        quant: "f16" | "q8_0";
        out: string;
        force?: boolean;
        json?: boolean;
      }) => {
        const { runMakeBench } = await import("./cli-impl.ts");
        await runMakeBench(opts.out, opts.preset, opts.quant, opts.force === true, opts.json === true);
      },
    );

  model
    .command("inspect")
    .addHelpText("after", examples("cloister model inspect tiny.gguf", "cloister model inspect llama-8b.gguf --json"))
    .description("show architecture, parameters, tensor types, context, vocabulary and SHA-256 of a GGUF file")
    .argument("<file>", "GGUF model file")
    .option("--json", "print the summary as JSON")
    .action(async (file: string, opts: { json?: boolean }) => {
      const { runInspect } = await import("./cli-impl.ts");
      await runInspect(file, opts.json === true);
    });
}
