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

/** A Markdown table: the first column left-aligned, the others right-aligned (numbers). */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (c: readonly string[]) =>
    `| ${c.map((v, i) => (i === 0 ? v.padEnd(widths[i] as number) : v.padStart(widths[i] as number))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `${"-".repeat(w + 1)}-` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(headers), rule, ...rows.map(line)].join("\n");
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
