/**
 * `cloister model run --prompt-file FILE` (and `-`, standard input): the prompt kept out of the
 * process list, read as chat reads its --prompt-file (bounded, UTF-8 checked), and the same answer
 * as --prompt gives for the same text (greedy by default).
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { writeTinyModel } from "../../models/tiny.ts";
import { runCloister } from "../helpers/cli.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-run-prompt-file-");
let base: string[];

beforeAll(async () => {
  const modelPath = join(dir, "tiny.gguf");
  const { sha256 } = await writeTinyModel(modelPath);
  base = ["model", "run", "--model", modelPath, "--sha256", sha256, "--max-tokens", "6", "--json"];
});

const answer = (stdout: string) => (JSON.parse(stdout) as { text: string; promptTokens: number }).text;

describe("cloister model run --prompt-file", () => {
  it("answers a prompt from a file and from standard input (-) as it answers the same --prompt", async () => {
    const prompt = "The enclave keeps";
    const file = join(dir, "prompt.txt");
    await writeFile(file, prompt);
    const [inline, fromFile, fromStdin] = await Promise.all([
      runCloister([...base, "--prompt", prompt]),
      runCloister([...base, "--prompt-file", file]),
      runCloister([...base, "--prompt-file", "-"], { input: prompt }),
    ]);
    for (const run of [inline, fromFile, fromStdin])
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(answer(fromFile.stdout)).toBe(answer(inline.stdout));
    expect(answer(fromStdin.stdout)).toBe(answer(inline.stdout));
    expect(JSON.parse(fromFile.stdout).promptTokens).toBe(JSON.parse(inline.stdout).promptTokens);
  });

  it("refuses an empty or white-space-only --prompt as chat refuses its PROMPT (exit 2, nothing run)", async () => {
    const [empty, blank] = await Promise.all([
      runCloister([...base, "--prompt", ""]),
      runCloister([...base, "--prompt", " \t\n"]),
    ]);
    expect({ code: empty.code, stdout: empty.stdout }).toEqual({ code: 2, stdout: "" });
    expect(empty.stderr).toContain(
      "model run: expected a prompt in --prompt, found an empty argument; give the prompt as --prompt TEXT, or use --prompt-file FILE",
    );
    expect({ code: blank.code, stdout: blank.stdout }).toEqual({ code: 2, stdout: "" });
    expect(blank.stderr).toContain("model run: expected a prompt in --prompt, found only white space (3 characters);");
  });

  it("refuses both, neither, and a file that is not UTF-8 (exit 2, naming the option, never the content)", async () => {
    const file = join(dir, "latin1.txt");
    await writeFile(file, Uint8Array.from([0x73, 0x65, 0x63, 0x72, 0x65, 0x74, 0xe9]));
    const [both, neither, latin1] = await Promise.all([
      runCloister([...base, "--prompt", "x", "--prompt-file", file]),
      runCloister(base),
      runCloister([...base, "--prompt-file", file]),
    ]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("model run: expected the prompt once, found both --prompt and --prompt-file");
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain(
      "model run: expected a prompt (--prompt TEXT or --prompt-file FILE), found neither",
    );
    expect(latin1.code).toBe(2);
    expect(latin1.stderr).toContain(`--prompt-file ${file}: `);
    expect(latin1.stderr).toContain("UTF-8");
    expect(latin1.stderr).not.toContain("secret");
  });

  it("--help offers --prompt-file and says --prompt is visible in the process list", async () => {
    const help = (await runCloister(["model", "run", "--help"])).stdout.replace(/\s+/g, " ");
    expect(help).toContain("--prompt-file <file>");
    expect(help).toMatch(/--prompt <text> .*visible to other users in the process list/);
  });
});
