/**
 * The key-making examples of --help run as a newcomer pastes them, in an empty directory: they need
 * no input file, so each must work there as written. `--out keys/…` into a directory that does not
 * exist is refused (USAGE, "create it first"), so an example writing under keys/ makes it first
 * (`mkdir -p keys && cloister …`). test/client/cli-help-examples.test.ts checks the options; this runs
 * the lines. verify-evidence's examples run as pasted from the repository root (the captured
 * hardware evidence under test/fixtures/attestation), but one that says the files are your own.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runCloister } from "../helpers/cli.ts";
import { examplesOf } from "../helpers/help-examples.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs one example line in a fresh empty directory: its `mkdir -p D &&` steps, then its cloister
 * command (plain words only: these examples quote nothing). Resolves with the directory and the run.
 */
async function runAsPasted(line: string): Promise<{ dir: string; code: number; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), "cloister-paste-"));
  dirs.push(dir);
  const steps = line.replace(/\s+#\s.*$/, "").split(/\s*&&\s*/);
  for (const step of steps.slice(0, -1)) {
    const mkdir = /^mkdir -p (\S+)$/.exec(step);
    expect(mkdir, `a step other than mkdir -p before the command: ${step}`).not.toBeNull();
    mkdirSync(join(dir, mkdir?.[1] as string), { recursive: true });
  }
  const words = (steps.at(-1) as string).split(/\s+/);
  expect(words[0], line).toBe("cloister");
  const { code, stderr } = await runCloister(words.slice(1), { cwd: dir });
  return { dir, code, stderr };
}

describe("--help examples that make keys, pasted into an empty directory", () => {
  it.each(["manifest", "manifest keygen", "kbs", "kbs keygen"])(
    "%s --help: each keygen example runs and writes its files",
    async (command) => {
      const { code, stdout } = await runCloister([...command.split(" "), "--help"]);
      expect(code).toBe(0);
      const keygens = examplesOf(stdout).filter((line) => / keygen /.test(line));
      expect(keygens.length, stdout).toBeGreaterThan(0);
      for (const line of keygens) {
        const { dir, code: exit, stderr } = await runAsPasted(line);
        expect({ line, exit, stderr }).toEqual({ line, exit: 0, stderr: "" });
        for (const out of [...line.matchAll(/--out(?:-private|-public)? (\S+)/g)].map((m) => m[1] as string)) {
          expect(statSync(join(dir, out)).isFile(), `${line}: ${out}`).toBe(true);
        }
      }
    },
  );
});

describe("verify-evidence --help examples, pasted from the repository root", () => {
  it("each runs and finds its evidence valid, but the one that says its files are your own", async () => {
    // They used report.bin, vcek.pem, quote.bin: files no one has, refused as pasted.
    const { code, stdout } = await runCloister(["verify-evidence", "--help"]);
    expect(code).toBe(0);
    const lines = examplesOf(stdout);
    const own = lines.filter((line) => /\s#\syour own\b/.test(line));
    const pasted = lines.filter((line) => !own.includes(line));
    expect({ pasted: pasted.length, own: own.length }).toEqual({ pasted: 3, own: 1 });
    for (const line of pasted) {
      const words = line.split(/\s+/);
      expect(words[0], line).toBe("cloister");
      const run = await runCloister(words.slice(1));
      expect({ line, exit: run.code, stderr: run.stderr }).toEqual({ line, exit: 0, stderr: "" });
    }
  });
});
