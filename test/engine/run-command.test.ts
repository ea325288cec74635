/** `cloister model run` as a real process on the tiny model. */
import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { writeTinyModel } from "../../models/tiny.ts";
import { CLI, runCloister } from "../helpers/cli.ts";
import { modelCopiesOf } from "../helpers/processes.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-run-test-");
let modelPath: string;
let sha256: string;

beforeAll(async () => {
  modelPath = join(dir, "tiny.gguf");
  ({ sha256 } = await writeTinyModel(modelPath));
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

  it("a private copy it cannot remove is named on stderr with exit 1, after a refusal (its own error kept) and after a completion", async () => {
    const failRemoval = join(import.meta.dirname, "..", "helpers", "fail-model-copy-removal.mjs");
    const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${failRemoval}` };
    const wrong = "0".repeat(64);
    const args = ["model", "run", "--model", modelPath, "--prompt", "The host", "--max-tokens", "4"];
    const refused = await runCloister([...args, "--sha256", wrong], { env, cwd: dir });
    const done = await runCloister([...args, "--sha256", sha256], { env, cwd: dir });
    const copyLine = /^cloister model run: could not remove the model copy (\S+) \(EBUSY\): remove it by hand$/;
    const copies = [refused, done].map((run) => run.stderr.split("\n").find((line) => copyLine.test(line)));
    for (const line of copies) {
      const copy = line === undefined ? undefined : copyLine.exec(line)?.[1];
      if (copy !== undefined) await rm(copy, { recursive: true, force: true });
    }
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe("");
    // The copy named, then the refusal: the load's own error, not the removal's.
    expect(refused.stderr.trimEnd().split("\n")).toEqual([
      expect.stringMatching(copyLine),
      `cloister: MODEL_DIGEST_MISMATCH: model file ${modelPath}: sha256 expected ${wrong}, found ${sha256}; refusing to load`,
    ]);
    expect(copies[0]).toMatch(/\/cloister-model-/);
    // Answered, then its copy could not be removed: named as its last line, and no other error.
    expect(done.code).toBe(1);
    expect(done.stdout.trim().length).toBeGreaterThan(0);
    expect(done.stderr.trimEnd().split("\n")).toEqual([expect.stringMatching(copyLine)]);
  });

  it("--help says it copies the model first: where (/dev/shm, else TMPDIR), what that costs, and when it is removed", async () => {
    const help = (await cloister(["model", "run", "--help"])).stdout.replace(/\s+/g, " ");
    expect(help).toContain("copies the model file into a private directory");
    expect(help).toContain("/dev/shm when it has room (memory), else the temp directory (TMPDIR: disk space)");
    expect(help).toContain("needs free space there the size of the model (MODEL_NO_ROOM otherwise; set TMPDIR");
    expect(help).toContain("removed when it ends");
    expect(help).toContain("a copy it could not remove is named on stderr (remove it by hand), with exit 1");
    // Still the last section, as on every command.
    expect(help.indexOf("Examples:")).toBeGreaterThan(help.indexOf("/dev/shm"));
  });

  it("Ctrl-C while the model loads stops with 130 and removes the private copy", async () => {
    const run = await interruptDuringLoad(process.env);
    // Nothing generated: the signal came during the load, and it stopped there.
    expect(run).toEqual({ code: 130, signal: null, stdout: "", stderr: "", left: [] });
  });

  it("Ctrl-C while the model loads, its copy not removable: names the copy and exits 1", async () => {
    const failRemoval = join(import.meta.dirname, "..", "helpers", "fail-model-copy-removal.mjs");
    const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${failRemoval}` };
    const run = await interruptDuringLoad(env);
    expect(run.left).toHaveLength(1);
    expect(run).toEqual({
      code: 1,
      signal: null,
      stdout: "",
      stderr: `cloister model run: could not remove the model copy ${run.left[0]} (EBUSY): remove it by hand\n`,
      left: run.left,
    });
  });
});

/**
 * Runs `cloister model run` with `env` and sends it SIGINT as soon as its private copy appears (in
 * the load: llama.cpp's start takes far longer than a poll); resolves with how it ended, what it
 * printed and the copies it left (removed here).
 */
async function interruptDuringLoad(env: NodeJS.ProcessEnv) {
  const child = spawn(
    process.execPath,
    [CLI, "model", "run", "--model", modelPath, "--sha256", sha256, "--prompt", "The enclave", "--max-tokens", "200"],
    { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
  // The copy exists from the start of the load (staging) until the engine is closed.
  const pid = child.pid as number;
  let seen = false;
  for (let i = 0; i < 1500 && !seen && child.exitCode === null; i++) {
    seen = (await modelCopiesOf(pid)).length > 0;
    if (!seen) await new Promise((r) => setTimeout(r, 10));
  }
  expect(seen).toBe(true);
  child.kill("SIGINT");
  const run = await exited;
  const left = await modelCopiesOf(pid);
  for (const path of left) await rm(path, { recursive: true, force: true });
  return { ...run, stdout, stderr, left };
}
