/**
 * Model-factory benchmark: time to write each synthetic benchmark model (and the tiny model), its
 * size, throughput and peak RSS (constant-memory streaming), plus the time to read its GGUF header
 * and to hash it. Files go to a temporary directory and are deleted afterwards.
 *
 *   npx tsx scripts/bench-models.ts            # tiny, small, medium (f16 and q8_0)
 *   npx tsx scripts/bench-models.ts --large    # also large (~1.1B parameters, 1.2–2.2 GB on disk)
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BenchPreset, type BenchQuant, writeBenchModel } from "../models/bench.ts";
import { readGgufFile } from "../models/gguf.ts";
import { sha256File } from "../models/hash.ts";
import { writeTinyModel } from "../models/tiny.ts";

interface Row {
  model: string;
  parameters: number;
  bytes: number;
  writeSeconds: number;
  headerMs: number;
  hashSeconds: number;
  peakRssMb: number;
}

const withLarge = process.argv.includes("--large");
const presets: BenchPreset[] = withLarge ? ["small", "medium", "large"] : ["small", "medium"];
const quants: BenchQuant[] = ["f16", "q8_0"];

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 50);

async function measure(model: string, path: string, write: () => Promise<{ bytes: number; parameters?: number }>) {
  peakRss = process.memoryUsage().rss;
  const t0 = performance.now();
  const result = await write();
  const writeSeconds = (performance.now() - t0) / 1000;
  const rss = Math.max(peakRss, process.memoryUsage().rss);
  const t1 = performance.now();
  const file = await readGgufFile(path);
  const headerMs = performance.now() - t1;
  const t2 = performance.now();
  await sha256File(path);
  const hashSeconds = (performance.now() - t2) / 1000;
  const parameters = result.parameters ?? file.tensors.reduce((a, t) => a + t.elements, 0);
  await rm(path, { force: true });
  return { model, parameters, bytes: result.bytes, writeSeconds, headerMs, hashSeconds, peakRssMb: rss / 2 ** 20 };
}

const dir = await mkdtemp(join(tmpdir(), "cloister-bench-models-"));
const rows: Row[] = [];
try {
  rows.push(await measure("tiny", join(dir, "tiny.gguf"), () => writeTinyModel(join(dir, "tiny.gguf"))));
  for (const preset of presets) {
    for (const quant of quants) {
      const path = join(dir, `${preset}-${quant}.gguf`);
      rows.push(await measure(`${preset} ${quant}`, path, () => writeBenchModel(path, preset, { quant })));
    }
  }
} finally {
  clearInterval(sampler);
  await rm(dir, { recursive: true, force: true });
}

const header = ["model", "parameters", "MB", "write s", "MB/s", "header ms", "sha256 s", "peak RSS MB"];
const body = rows.map((r) => [
  r.model,
  r.parameters.toLocaleString("en-US"),
  (r.bytes / 1e6).toFixed(1),
  r.writeSeconds.toFixed(2),
  (r.bytes / 1e6 / r.writeSeconds).toFixed(0),
  r.headerMs.toFixed(1),
  r.hashSeconds.toFixed(2),
  r.peakRssMb.toFixed(0),
]);
const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
const line = (cells: string[]) =>
  cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
console.log(line(header));
console.log(widths.map((w) => "-".repeat(w)).join("  "));
for (const b of body) console.log(line(b));
