/**
 * `cloister model run`: load a model through the inference engine (digest checked first) and
 * print one completion, streamed to stdout (on a terminal, with escape sequences and bidirectional
 * controls written visibly: client/cli/terminal-text.ts), or as JSON with usage numbers.
 *
 * Without `--sha256` the file's digest is computed here and shown on stderr as not pinned; the
 * engine then checks the file against it like any pinned digest. The engine loads a private copy
 * it hashed as it wrote it (engine.ts), so the digest checked is the digest of the bytes loaded.
 *
 * Ctrl-C, SIGTERM, or its output closed by its reader (`| head -1`), during the copy and load as
 * during the generation: the load is abandoned or the engine closed, either of which removes the
 * private copy, and it exits as the signal would have: 130, 143, or 141 (nothing more is written, but
 * the lines below). A load that failed on its own while the stop was pending is a failure, not a stop
 * (stoppedBy, as `cloister enclave`): its error and exit 1 — unless the stop is Ctrl-C, which also
 * reaches the load's helper process: then the failure is said and taken as the stop (takenAsStop).
 * A copy it could not remove is named, with exit 1.
 */
import { errorText, onOutputClosed, printJson, STOPPED_EXIT_CODE, type StopReason } from "../client/cli/output.ts";
import { untrustedTextWriter } from "../client/cli/terminal-text.ts";
import { sha256File } from "../models/hash.ts";
import { type InferenceEngine, openInferenceEngine } from "./engine.ts";
import { closeFailureBesidesCopies, copiesLeftText, modelCopiesLeft, settledFailure } from "./model-staging.ts";
import { stoppedBy, takenAsStop } from "./stop.ts";

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
  const controller = new AbortController();
  // A second signal has its default action (should closing hang).
  const stop = (reason: StopReason) => (): void => {
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigterm);
    if (!controller.signal.aborted) controller.abort(reason);
  };
  const onSigint = stop("SIGINT");
  const onSigterm = stop("SIGTERM");
  process.on("SIGINT", onSigint);
  process.on("SIGTERM", onSigterm);
  const unregister = onOutputClosed(stop("output closed"));
  let engine: InferenceEngine | undefined;
  let failure: { readonly error: unknown } | null = null;
  try {
    try {
      engine = await openInferenceEngine({
        modelPath: options.model,
        expectedSha256,
        sequences: 1,
        maxQueue: 0,
        signal: controller.signal,
      });
    } catch (error) {
      // Only the stop's own abort of the load is a stop; a load that failed on its own meanwhile
      // (a wrong digest, ENOSPC) is the command's error, as `cloister enclave` tells them apart.
      // After Ctrl-C (SIGINT to the whole process group, the load's helper process included), a
      // failed load is taken as the stop, its failure said (takenAsStop).
      if (!stoppedBy(error, controller.signal)) {
        if (controller.signal.reason !== "SIGINT") throw error;
        process.stderr.write(`${takenAsStop("cloister model run", errorText(error))}\n`);
      }
    }
    if (engine !== undefined && !controller.signal.aborted) await printCompletion(engine, options, controller.signal);
  } catch (error) {
    failure = { error };
  }
  const closing = engine === undefined ? null : await settledFailure(engine.close(), "the engine's close");
  process.off("SIGINT", onSigint);
  process.off("SIGTERM", onSigterm);
  unregister();
  if (controller.signal.aborted) process.exitCode = STOPPED_EXIT_CODE[controller.signal.reason as StopReason];
  // A private copy that could not be removed (EBUSY, EIO), by a failed or stopped load or by the
  // engine's close, is named and fails the command (exit 1, whatever the stop's status), as
  // `cloister enclave` does: checked, not assumed (modelCopiesLeft). The error the run failed with
  // stays its error; a close's failure the line does not say is the command's error, or, when the
  // run already failed, said on stderr.
  const left = modelCopiesLeft();
  if (left.length > 0) {
    process.stderr.write(`cloister model run: ${copiesLeftText(left)}\n`);
    process.exitCode = 1;
  }
  const unsaid = closeFailureBesidesCopies(closing, left);
  if (failure === null && unsaid !== null) throw unsaid;
  if (unsaid !== null) {
    process.stderr.write(`cloister model run: closing the engine failed too: ${errorText(unsaid)}\n`);
  }
  if (failure !== null) throw failure.error;
}

/** Generates the completion and prints it: streamed text, or with --json one object at its end. */
async function printCompletion(
  engine: InferenceEngine,
  options: RunCommandOptions,
  signal: AbortSignal,
): Promise<void> {
  const request = {
    ...(options.chat === true
      ? { messages: [{ role: "user" as const, content: options.prompt }] }
      : { prompt: options.prompt }),
    ...(options.maxTokens === undefined ? {} : { maxTokens: options.maxTokens }),
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
    ...(options.topP === undefined ? {} : { topP: options.topP }),
    signal,
  };
  let text = "";
  // The model's text, which its prompt can steer: visibly on a terminal, exactly to a pipe or a file.
  const shown = untrustedTextWriter(process.stdout);
  for await (const event of engine.generate(request)) {
    if (signal.reason === "output closed") continue; // no one reads it: end quietly
    if (event.type === "text") {
      text += event.text;
      if (options.json !== true) shown.write(event.text);
      continue;
    }
    if (options.json === true) {
      // The answer is the model's: its invisible characters escaped for a terminal (printJson).
      printJson({
        text,
        stopReason: event.stopReason,
        promptTokens: event.usage.promptTokens,
        completionTokens: event.usage.completionTokens,
        ttftMs: round(event.usage.ttftMs),
        tokensPerSecond: round(event.usage.tokensPerSecond),
      });
    } else {
      shown.end();
      process.stdout.write("\n");
    }
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
