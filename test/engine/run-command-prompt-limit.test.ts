/**
 * `cloister model run --prompt TEXT` is held to the limit its --prompt-file is (and chat's PROMPT):
 * REQUEST_LIMITS.maxTextChars. Run in process: one argument that long cannot pass through argv
 * (Linux caps one at 128 KiB), and the refusal comes before the model file is ever opened.
 */
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { UsageError } from "../../client/cli/output.ts";
import { registerModelRunCommand } from "../../enclave/run-cli.ts";
import { REQUEST_LIMITS } from "../../sealed/request-limits.ts";

async function modelRun(args: string[]): Promise<void> {
  const program = new Command().exitOverride();
  registerModelRunCommand(program);
  await program.parseAsync(["run", "--model", "/nonexistent/cloister-tiny.gguf", ...args], { from: "user" });
}

describe("cloister model run --prompt length", () => {
  it("refuses a --prompt longer than REQUEST_LIMITS.maxTextChars, naming --prompt, before the model is read", async () => {
    const tooLong = "a".repeat(REQUEST_LIMITS.maxTextChars + 1);
    const refused = modelRun(["--prompt", tooLong]);
    await expect(refused).rejects.toBeInstanceOf(UsageError);
    await expect(refused).rejects.toMatchObject({
      message: `model run: --prompt: expected a prompt of at most ${REQUEST_LIMITS.maxTextChars} characters (UTF-16 code units), found ${REQUEST_LIMITS.maxTextChars + 1}`,
    });
  });

  it("takes a --prompt at the limit (then fails on the missing model, not on the prompt)", async () => {
    const atLimit = "a".repeat(REQUEST_LIMITS.maxTextChars);
    const outcome = await modelRun(["--prompt", atLimit]).then(
      () => "ran",
      (error: unknown) => error,
    );
    expect(outcome).not.toBe("ran");
    expect(String((outcome as Error).message)).not.toContain("expected a prompt");
    expect(String((outcome as Error).message)).toContain("cloister-tiny.gguf");
  });
});
