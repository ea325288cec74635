/**
 * Inference-engine benchmark: decode tokens/s and time to first token for the tiny model and the
 * synthetic benchmark models, at 1 and 4 concurrent sequences, next to the memory-bandwidth bound
 * (measured read bandwidth ÷ bytes of weights read per decode step).
 *
 *   npm run bench:engine                 # tiny, small, medium
 *   npm run bench:engine -- --large      # also the large preset (q8_0, ~1.1B parameters)
 *   npm run bench:engine -- --tokens 64  # tokens generated per request (default 48)
 *   npm run bench:engine -- --threads 2  # CPU threads, comma-separated list (default: 1 and all cores)
 *
 * Models are generated into a temporary directory (deterministic bytes) and deleted afterwards.
 * Greedy decoding; a request may end early at an end-of-generation token, so rates are computed
 * from the tokens actually generated.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { type GenerationUsage, type InferenceEngine, openInferenceEngine } from "../enclave/engine.ts";
import { writeBenchModel } from "../models/bench.ts";
import { readGgufFile } from "../models/gguf.ts";
import { writeTinyModel } from "../models/tiny.ts";
import { runNamingCopiesLeft } from "./bench-common.ts";

type ModelCase = {
  name: string;
  write: (path: string) => Promise<{ sha256: string; bytes: number; parameters?: number }>;
};

type Row = {
  model: string;
  parameters: string;
  fileMiB: number;
  readMiBPerStep: number;
  threads: number;
  concurrency: number;
  tokens: number;
  aggregateTps: number;
  perSequenceTps: number;
  ttftMs: number;
  cpuMsPerToken: number;
  boundTps: number;
};

const PROMPT = "Once upon a time, in a quiet village by the sea, there lived";

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const large = args.includes("--large");
  const tokensArg = args.indexOf("--tokens");
  const maxTokens = tokensArg >= 0 ? Number(args[tokensArg + 1]) : 48;
  if (!Number.isInteger(maxTokens) || maxTokens < 2 || maxTokens > 1024) {
    throw new Error(`--tokens expects an integer in 2..1024, found ${String(args[tokensArg + 1])}`);
  }
  const threadsArg = args.indexOf("--threads");
  const threadList =
    threadsArg >= 0
      ? String(args[threadsArg + 1])
          .split(",")
          .map(Number)
      : [...new Set([1, cpus().length])];
  if (threadList.some((n) => !Number.isInteger(n) || n < 1 || n > 256)) {
    throw new Error(`--threads expects a comma-separated list of integers, found ${String(args[threadsArg + 1])}`);
  }

  const cases: ModelCase[] = [
    { name: "tiny (q8_0/f16)", write: (path) => writeTinyModel(path) },
    { name: "small f16", write: (path) => writeBenchModel(path, "small", { quant: "f16" }) },
    { name: "small q8_0", write: (path) => writeBenchModel(path, "small", { quant: "q8_0" }) },
    { name: "medium f16", write: (path) => writeBenchModel(path, "medium", { quant: "f16" }) },
    { name: "medium q8_0", write: (path) => writeBenchModel(path, "medium", { quant: "q8_0" }) },
  ];
  if (large) cases.push({ name: "large q8_0", write: (path) => writeBenchModel(path, "large", { quant: "q8_0" }) });

  const cpu = cpus()[0]?.model ?? "unknown";
  process.stdout.write(
    `machine: ${cpus().length} cpus (${cpu}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}\n`,
  );
  // Best of three: the peak the machine can deliver (other processes only ever lower a sample).
  let bandwidth = 0;
  for (let i = 0; i < 3; i++) bandwidth = Math.max(bandwidth, await measureReadBandwidth(cpus().length));
  process.stdout.write(
    `memory read bandwidth: ${(bandwidth / 1e9).toFixed(2)} GB/s (${cpus().length} threads, memcmp of 2×64 MiB per thread, best of 3)\n`,
  );
  process.stdout.write(`decode: greedy, up to ${maxTokens} tokens per request, CPU only\n`);
  process.stdout.write(`load average at start: ${formatLoad()}\n\n`);

  const dir = await mkdtemp(join(tmpdir(), "cloister-bench-engine-"));
  const rows: Row[] = [];
  try {
    for (const c of cases) {
      const path = join(dir, `${c.name.replace(/[^a-z0-9_]+/g, "-")}.gguf`);
      const made = await c.write(path);
      const readBytes = await bytesReadPerDecodeStep(path);
      try {
        for (const threads of threadList) {
          const engine = await openInferenceEngine({
            modelPath: path,
            expectedSha256: made.sha256,
            sequences: 4,
            maxQueue: 0,
            contextSize: 256,
            threads,
            progress: false,
          });
          try {
            await engine.complete({ prompt: PROMPT, maxTokens: 4 }); // warm-up
            for (const concurrency of [1, 4]) {
              const run = await runConcurrent(engine, concurrency, maxTokens);
              rows.push({
                model: c.name,
                parameters: made.parameters === undefined ? "-" : formatCount(made.parameters),
                fileMiB: made.bytes / 2 ** 20,
                readMiBPerStep: readBytes / 2 ** 20,
                threads,
                concurrency,
                tokens: run.tokens,
                aggregateTps: run.aggregateTps,
                perSequenceTps: run.perSequenceTps,
                ttftMs: run.ttftMs,
                cpuMsPerToken: run.cpuMsPerToken,
                // One decode step reads the weights once and yields one token per active sequence.
                boundTps: (bandwidth / readBytes) * concurrency,
              });
              process.stderr.write(`done: ${c.name}, ${threads} threads, ${concurrency} sequences\n`);
            }
          } finally {
            await engine.close();
          }
        }
      } finally {
        await rm(path, { force: true });
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  process.stdout.write(formatTable(rows));
  process.stdout.write(`\nload average at end: ${formatLoad()} (other processes share these cores)\n`);
}

type RunResult = {
  tokens: number;
  aggregateTps: number;
  perSequenceTps: number;
  ttftMs: number;
  cpuMsPerToken: number;
};

async function runConcurrent(engine: InferenceEngine, concurrency: number, maxTokens: number): Promise<RunResult> {
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const firstTokens: number[] = [];
  const results = await Promise.all(
    Array.from({ length: concurrency }, async (_, i) => {
      const r = await engine.complete({ prompt: `${PROMPT} ${i}`, maxTokens, temperature: 0 });
      firstTokens.push(start + r.usage.ttftMs);
      return { usage: r.usage, end: performance.now() };
    }),
  );
  // Aggregate decode rate: tokens after each sequence's first, over the span from the first
  // first-token to the last end (prompt evaluation excluded, as in GenerationUsage.tokensPerSecond).
  const cpu = process.cpuUsage(cpuStart);
  const decodeStart = Math.min(...firstTokens);
  const decodeEnd = Math.max(...results.map((r) => r.end));
  const decoded = results.reduce((n, r) => n + Math.max(0, r.usage.completionTokens - 1), 0);
  const tokens = results.reduce((n, r) => n + r.usage.completionTokens, 0);
  return {
    tokens,
    aggregateTps: decodeEnd > decodeStart ? (decoded * 1000) / (decodeEnd - decodeStart) : 0,
    perSequenceTps: mean(results.map((r: { usage: GenerationUsage }) => r.usage.tokensPerSecond)),
    ttftMs: mean(results.map((r) => r.usage.ttftMs)),
    // CPU time of this process (all its threads, prompt evaluation included) per generated token:
    // unlike wall-clock rates it barely moves when other processes compete for the cores.
    cpuMsPerToken: tokens > 0 ? (cpu.user + cpu.system) / 1000 / tokens : 0,
  };
}

/**
 * Bytes of weights read for one decode step: every tensor once, except the token embedding table,
 * of which only one row per token is read (unless it doubles as the output head).
 */
async function bytesReadPerDecodeStep(path: string): Promise<number> {
  const gguf = await readGgufFile(path);
  const tensors = gguf.tensors;
  const total = tensors.reduce((n, t) => n + t.byteSize, 0);
  const embedding = tensors.find((t) => t.name === "token_embd.weight");
  const tiedOutput = !tensors.some((t) => t.name === "output.weight");
  if (embedding === undefined || tiedOutput) return total;
  const rows = embedding.dims[1] ?? 1;
  return total - embedding.byteSize + embedding.byteSize / rows;
}

/** Aggregate read bandwidth: `threads` workers each memcmp two equal 64 MiB buffers repeatedly. */
async function measureReadBandwidth(threads: number): Promise<number> {
  const source = `
    const { parentPort } = require("node:worker_threads");
    const size = 64 * 1024 * 1024;
    const a = Buffer.alloc(size, 7);
    const b = Buffer.alloc(size, 7);
    a.compare(b); // touch the pages
    parentPort.once("message", () => {
      const rounds = 12;
      const t0 = performance.now();
      for (let i = 0; i < rounds; i++) if (a.compare(b) !== 0) throw new Error("buffers differ");
      const ms = performance.now() - t0;
      parentPort.postMessage({ bytes: 2 * size * rounds, ms });
    });
    parentPort.postMessage("ready");
  `;
  const workers = Array.from({ length: threads }, () => new Worker(source, { eval: true }));
  try {
    await Promise.all(workers.map((w) => new Promise((resolve) => w.once("message", resolve))));
    const results = await Promise.all(
      workers.map(
        (w) =>
          new Promise<{ bytes: number; ms: number }>((resolve, reject) => {
            w.once("message", resolve);
            w.once("error", reject);
            w.postMessage("go");
          }),
      ),
    );
    const bytes = results.reduce((n, r) => n + r.bytes, 0);
    const ms = Math.max(...results.map((r) => r.ms));
    return (bytes * 1000) / ms;
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function formatTable(rows: readonly Row[]): string {
  const header = [
    "model",
    "params",
    "file MiB",
    "read MiB/step",
    "threads",
    "seqs",
    "tokens",
    "tok/s total",
    "tok/s per seq",
    "TTFT ms",
    "CPU ms/token",
    "bound tok/s",
    "% of bound",
  ];
  const body = rows.map((r) => [
    r.model,
    r.parameters,
    r.fileMiB.toFixed(1),
    r.readMiBPerStep.toFixed(1),
    String(r.threads),
    String(r.concurrency),
    String(r.tokens),
    r.aggregateTps.toFixed(1),
    r.perSequenceTps.toFixed(1),
    r.ttftMs.toFixed(0),
    r.cpuMsPerToken.toFixed(2),
    r.boundTps.toFixed(0),
    `${((100 * r.aggregateTps) / r.boundTps).toFixed(1)}%`,
  ]);
  const lines = [header, header.map(() => "---"), ...body];
  return `${lines.map((cells) => `| ${cells.join(" | ")} |`).join("\n")}\n`;
}

function formatLoad(): string {
  return loadavg()
    .map((n) => n.toFixed(2))
    .join(" ");
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

await runNamingCopiesLeft("bench-engine", main);
