/** Implementations of `cloister model make|inspect` (loaded lazily by models/cli.ts). */
import { shellWord } from "../attestation/bounded-read.ts";
import { printJson, refuseExistingOutput } from "../client/cli/output.ts";
import { type BenchPreset, type BenchQuant, writeBenchModel } from "./bench.ts";
import { printableField } from "./errors.ts";
import { inspectModel } from "./inspect.ts";
import { TINY_MODEL_SHA256, writeTinyModel } from "./tiny.ts";

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

export async function runMakeTiny(path: string, force: boolean, json: boolean): Promise<void> {
  await refuseExistingOutput(path, "--out", force ? "replace" : "refuse");
  const result = await writeTinyModel(path);
  const pinned = result.sha256 === TINY_MODEL_SHA256;
  if (json) {
    printJson({ path, bytes: result.bytes, sha256: result.sha256, matchesPinned: pinned });
    return;
  }
  out(`wrote   ${shellWord(path)}`);
  out(`bytes   ${result.bytes}`);
  out(`sha256  ${result.sha256}${pinned ? " (matches the pinned digest)" : " (DIFFERS from the pinned digest)"}`);
}

export async function runMakeBench(
  path: string,
  preset: BenchPreset,
  quant: BenchQuant,
  force: boolean,
  json: boolean,
): Promise<void> {
  await refuseExistingOutput(path, "--out", force ? "replace" : "refuse");
  const started = performance.now();
  const result = await writeBenchModel(path, preset, { quant });
  const seconds = Math.round((performance.now() - started) / 10) / 100;
  if (json) {
    printJson({ path, preset, quant, ...result, seconds });
    return;
  }
  out(`wrote       ${shellWord(path)}`);
  out(`preset      ${preset} (${quant})`);
  out(`parameters  ${result.parameters}`);
  out(`bytes       ${result.bytes}`);
  out(`sha256      ${result.sha256}`);
  out(`seconds     ${seconds}`);
}

export async function runInspect(path: string, json: boolean): Promise<void> {
  const s = await inspectModel(path);
  if (json) {
    printJson(s);
    return;
  }
  const types = Object.entries(s.tensorTypes)
    .map(([t, n]) => `${t}×${n}`)
    .join(", ");
  // name, architecture and tokenizer are the file's own (untrusted) strings: escaped and cut, so a
  // downloaded GGUF cannot move the cursor, recolour or forge a line (a false "sha256") on screen.
  const show = (v: string | number | null) =>
    v === null ? "(not set)" : typeof v === "string" ? printableField(v) : String(v);
  out(`file           ${shellWord(s.path)}`);
  out(`bytes          ${s.bytes}`);
  out(`sha256         ${s.sha256}`);
  out(`gguf version   ${s.ggufVersion}`);
  out(`architecture   ${show(s.architecture)}`);
  out(`name           ${show(s.name)}`);
  out(`parameters     ${s.parameters}`);
  out(`tensors        ${s.tensorCount} (${types})`);
  out(`context        ${show(s.contextLength)}`);
  out(`embedding      ${show(s.embeddingLength)}`);
  out(`blocks         ${show(s.blockCount)}`);
  out(`vocabulary     ${show(s.vocabularySize)} (${show(s.tokenizer)} tokenizer)`);
  out(`chat template  ${s.hasChatTemplate ? "yes" : "no"}`);
}
