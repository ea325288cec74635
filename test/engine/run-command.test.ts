/** `cloister model run` as a real process on the tiny model. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeTinyModel } from "../../models/tiny.ts";
import { runCloister } from "../helpers/cli.ts";

let dir: string;
let modelPath: string;
let sha256: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-run-test-"));
  modelPath = join(dir, "tiny.gguf");
  ({ sha256 } = await writeTinyModel(modelPath));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cloister = (args: string[]) => runCloister(args);

describe("cloister model run", () => {
  it("prints {text, stopReason, promptTokens, completionTokens, ttftMs, tokensPerSecond} with --json, as --help says", async () => {
    const result = await cloister([
      "model",
      "run",
      "--model",
      modelPath,
      "--sha256",
      sha256,
      "--prompt",
      "The enclave",
      "--max-tokens",
      "6",
      "--json",
    ]);
    expect(result.code).toBe(0);
    const out = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(Object.keys(out).sort()).toEqual(
      ["completionTokens", "promptTokens", "stopReason", "text", "tokensPerSecond", "ttftMs"].sort(),
    );
    expect(out.completionTokens).toBe(6);
    expect(out.stopReason).toBe("maxTokens");
    expect(out.promptTokens).toBeGreaterThan(0);
    expect(typeof out.text).toBe("string");
    expect((out.text as string).length).toBeGreaterThan(0);
    expect(result.stderr).not.toContain("The enclave");
    // --help names exactly these fields.
    const help = (await cloister(["model", "run", "--help"])).stdout.replace(/\s+/g, " ");
    const listed = /--json print \{([^}]*)\} as JSON/.exec(help)?.[1]?.split(", ");
    expect(listed?.sort()).toEqual(Object.keys(out).sort());
  });

  it("streams plain text and refuses a wrong digest with exit 1 and one line naming both digests", async () => {
    const plain = await cloister(["model", "run", "--model", modelPath, "--sha256", sha256, "--prompt", "The host"]);
    expect(plain.code).toBe(0);
    expect(plain.stdout.trim().length).toBeGreaterThan(0);
    const wrong = "0".repeat(64);
    const refused = await cloister(["model", "run", "--model", modelPath, "--sha256", wrong, "--prompt", "x"]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe("");
    expect(refused.stderr.trim()).toBe(
      `cloister: MODEL_DIGEST_MISMATCH: model file ${modelPath}: sha256 expected ${wrong}, found ${sha256}; refusing to load`,
    );
  });
});
