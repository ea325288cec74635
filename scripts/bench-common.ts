/** What the benchmark scripts share: sample statistics, integer options, the machine's load. */
import { cpus, loadavg, totalmem } from "node:os";

export type Stats = { n: number; median: number; p90: number; p99: number };

/** The nearest-rank `p` percentile (0..1) of ascending `sorted` samples. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] as number;
}

/** Count, median, p90 and p99 (nearest rank) of `samples`. */
export function stats(samples: readonly number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, median: percentile(s, 0.5), p90: percentile(s, 0.9), p99: percentile(s, 0.99) };
}

/** The integer command-line option `name` (in min..max), or `fallback` when it is not given. */
export function intArg(name: string, fallback: number, min: number, max: number): number {
  const i = process.argv.indexOf(name);
  if (i === -1) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name} expects an integer in ${min}..${max}, found ${String(process.argv[i + 1])}`);
  }
  return n;
}

/** The 1, 5 and 15 minute load averages, as "a, b, c". */
export function formatLoad(): string {
  return loadavg()
    .map((n) => n.toFixed(2))
    .join(", ");
}

/**
 * A Markdown table: the first column left-aligned, the others right-aligned (numbers). Cells are
 * padded by the columns they take in a terminal (displayWidth), so rows line up with wide letters.
 */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(displayWidth(h), ...rows.map((r) => displayWidth(r[i] as string))));
  const line = (c: readonly string[]) =>
    `| ${c
      .map((v, i) => {
        const padding = " ".repeat((widths[i] as number) - displayWidth(v));
        return i === 0 ? v + padding : padding + v;
      })
      .join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `${"-".repeat(w + 1)}-` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(headers), rule, ...rows.map(line)].join("\n");
}

/**
 * The columns `text` takes in a terminal: two for each East Asian wide or full-width character
 * (the main blocks of Unicode's East_Asian_Width W and F, UAX #11: CJK, kana, Hangul syllables,
 * full-width forms, common emoji), none for combining marks and invisible format characters, one
 * for any other.
 */
export function displayWidth(text: string): number {
  let width = 0;
  for (const char of text) {
    if (ZERO_WIDTH.test(char)) continue;
    width += WIDE.test(char) ? 2 : 1;
  }
  return width;
}

const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}]$/u;
const WIDE =
  /^[\u1100-\u115F\u2E80-\u303E\u3041-\u33FF\u3400-\u4DBF\u4E00-\u9FFF\uA000-\uA4CF\uAC00-\uD7A3\uF900-\uFAFF\uFE30-\uFE4F\uFF00-\uFF60\uFFE0-\uFFE6\u{1F300}-\u{1F64F}\u{1F900}-\u{1F9FF}\u{20000}-\u{3FFFD}]$/u;

/**
 * `text` quoted, in printable ASCII (other characters as `\uXXXX`, so invisible ones and line
 * breaks show and the cell reads the same in any terminal), cut to at most `max` characters with
 * `...`, between two escapes or characters, never inside an escape.
 */
export function asciiCell(text: string, max: number): string {
  const quoted = JSON.stringify(text).replace(
    /[^\x20-\x7e]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  if (quoted.length <= max) return quoted;
  let cut = "";
  for (const piece of quoted.match(/\\u[0-9a-f]{4}|\\.|[^\\]/g) ?? []) {
    if (cut.length + piece.length > max - 3) break;
    cut += piece;
  }
  return `${cut}...`;
}

/** The machine line every benchmark prints first: CPUs and their model, memory, Node.js. */
export function formatMachine(): string {
  return `machine: ${cpus().length} cpus (${cpus()[0]?.model ?? "unknown"}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}\n`;
}

/**
 * Runs a benchmark's `main`, then names the private model copies the engine could not remove
 * (EBUSY, EIO), as `cloister model run` does ("<script>: could not remove the model copy … (EBUSY):
 * remove it by hand", exit 1), whether `main` ended or failed (its error stays its error). Imported
 * only then, so scripts that load no model do not load the staging code.
 */
export async function runNamingCopiesLeft(script: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } finally {
    const { copiesLeftText, modelCopiesLeft } = await import("../enclave/model-staging.ts");
    const left = modelCopiesLeft();
    if (left.length > 0) {
      process.stderr.write(`${script}: ${copiesLeftText(left)}\n`);
      process.exitCode = 1;
    }
  }
}
