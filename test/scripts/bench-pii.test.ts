/**
 * scripts/bench-pii.ts (`npm run bench:pii`) on a small prompt: it runs, and its table lines up in
 * a terminal. A cell of Chinese letters, each two columns wide, once pushed its row's later cells
 * out of line; the units repeated are shown in printable ASCII (bench-common.ts, asciiCell), so
 * every line's length is its width.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const SCRIPT = new URL("../../scripts/bench-pii.ts", import.meta.url).pathname;
const TSX = new URL("../../node_modules/.bin/tsx", import.meta.url).pathname;

it("prints a table whose lines are ASCII and equally long", async () => {
  const { stdout } = await promisify(execFile)(TSX, [SCRIPT, "--bytes", "1000", "--rounds", "1"], {
    timeout: 60_000,
  });
  const lines = stdout.split("\n").filter((line) => line.startsWith("|"));
  // A header, its rule and a row per shape (15 or more).
  expect(lines.length).toBeGreaterThanOrEqual(17);
  expect(lines.filter((line) => !/^[\x20-\x7e]*$/.test(line))).toEqual([]);
  expect(new Set(lines.map((line) => line.length)).size).toBe(1);
  expect(lines.some((line) => line.includes("Chinese prose"))).toBe(true);
}, 90_000);
