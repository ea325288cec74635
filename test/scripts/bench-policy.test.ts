/**
 * scripts/bench-policy.ts (`npm run bench:policy`) on small prompts: it runs with every rule and
 * prompt (no prompt matches a rule, or it refuses to measure), prints each rule's counted work (the
 * two largest rules and the policy of several rules at MAX_POLICY_PATTERN_WORK), and reads its
 * options: `--help`, and a value out of range named with what it expects.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { expect, it } from "vitest";
import { MAX_POLICY_PATTERN_WORK } from "../../enclave/pipeline/policy.ts";

const SCRIPT = new URL("../../scripts/bench-policy.ts", import.meta.url).pathname;
const TSX = new URL("../../node_modules/.bin/tsx", import.meta.url).pathname;
const run = (args: string[]) => promisify(execFile)(TSX, [SCRIPT, ...args], { timeout: 60_000 });

it("prints a row per rule and prompt, with the counted work and the bound for it", async () => {
  const { stdout } = await run(["--chars", "1000", "--runs", "1"]);
  const rows = stdout
    .split("\n")
    .filter((line) => line.startsWith("|"))
    .slice(2)
    // A `|` inside a cell (a pattern's alternation) is written `\|`.
    .map((line) => line.split(/(?<!\\)\|/).map((cell) => cell.trim()));
  // 8 rules × 5 prompts; cells: "", rule, prompt, work, median, p99, bound, "".
  expect(rows).toHaveLength(40);
  const work = (rule: string) => new Set(rows.filter((r) => r[1]?.startsWith(rule)).map((r) => r[3]));
  expect(work("password")).toEqual(new Set(["50"]));
  for (const rule of ["\\bсор[a-z]{58}", ".{56}(?:сор", "7 rules at the budget"]) {
    expect(work(rule)).toEqual(new Set([String(MAX_POLICY_PATTERN_WORK)]));
  }
  // The bound: work × characters × 45 ns, in ms (1216 × 1000 × 45 ns = 55 ms).
  expect(rows.find((r) => r[1] === "7 rules at the budget")?.[6]).toBe("55");
  expect(new Set(rows.map((r) => r[2])).size).toBe(5);
  expect(stdout).toMatch(/^worst p99: \d+\.\d ms \(/m);
}, 90_000);

it("prints its options with --help and names an option out of range", async () => {
  const { stdout } = await run(["--help"]);
  expect(stdout).toContain("--runs N");
  expect(stdout).toContain("--chars N");
  await expect(run(["--chars", "70000"])).rejects.toThrow("--chars expects an integer in 1000..65536, found 70000");
}, 90_000);
