/**
 * The local proxy's duplicate-member scan (`npm run bench:json`): how long findDuplicateMember
 * (attestation/json-duplicates.ts) takes on a request body, next to the JSON.parse it follows
 * (parseJsonText runs both on every body the proxy takes). Bodies are chat completions requests as
 * apps send them: a 1 KiB chat, a 64 KiB chat, and the proxy's largest body (PROXY_MAX_BODY_BYTES,
 * 4 MiB) twice: one long conversation of many messages (many small objects and names), and one
 * message holding a pasted document (one long string). Message text has what prose and code
 * carry when JSON-encoded: line breaks, quotes, a backslash, non-ASCII. The median of `--rounds`
 * samples per body, each at least 5 ms of runs,
 * after a first 5 ms unmeasured.
 */
import { findDuplicateMember } from "../attestation/json-duplicates.ts";
import { PROXY_MAX_BODY_BYTES } from "../client/proxy.ts";
import { formatLoad, formatMachine, intArg, stats, table } from "./bench-common.ts";

const rounds = intArg("--rounds", 15, 1, 1000);

const PROSE =
  'Please review this function and say "why" it fails:\n\tconst re = /\\d+/;\nПожалуйста, кратко изложите отчёт — 3 риска. ';

/**
 * A chat completions body of `bytes` bytes (within a few), after a system message: user and
 * assistant messages of `perMessage` characters each, the last one cut or filled to the size.
 */
function chatBody(bytes: number, perMessage: number): string {
  const text = PROSE.repeat(Math.ceil(perMessage / PROSE.length)).slice(0, perMessage);
  const messages: { role: string; content: string }[] = [{ role: "system", content: "You are a careful reviewer." }];
  const body = () =>
    JSON.stringify({ model: "llama-3.2-1b", messages, stream: true, stream_options: { include_usage: true } });
  const size = () => Buffer.byteLength(body());
  do messages.push({ role: messages.length % 2 === 1 ? "user" : "assistant", content: text });
  while (size() <= bytes);
  const last = messages.at(-1) as { content: string };
  // Each character cut takes at least one byte off, each "a" added exactly one.
  for (let over = size() - bytes; over > 0; over = size() - bytes) last.content = last.content.slice(0, -over);
  last.content += "a".repeat(bytes - size());
  return body();
}

/** The median time of one `run`, in ms: each sample repeats it for at least 5 ms (a small body's run is µs). */
function time(run: () => unknown): number {
  let repeat = 1;
  for (let started = performance.now(); performance.now() - started < 5; repeat *= 2) {
    for (let r = 0; r < repeat; r++) run();
  }
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const started = performance.now();
    for (let k = 0; k < repeat; k++) run();
    times.push((performance.now() - started) / repeat);
  }
  return stats(times).median;
}

const BODIES: readonly (readonly [name: string, text: string])[] = [
  ["1 KiB chat", chatBody(1024, 300)],
  ["64 KiB chat", chatBody(64 * 1024, 2000)],
  ["4 MiB chat, many messages", chatBody(PROXY_MAX_BODY_BYTES, 2000)],
  ["4 MiB chat, one long message", chatBody(PROXY_MAX_BODY_BYTES, PROXY_MAX_BODY_BYTES)],
];

const ms = (n: number) => (n < 1 ? n.toFixed(4) : n.toFixed(2));
const rows: string[][] = [];
for (const [name, text] of BODIES) {
  if (findDuplicateMember(text) !== null) throw new Error(`${name}: a duplicate where there is none`);
  const parse = time(() => JSON.parse(text));
  const scan = time(() => findDuplicateMember(text));
  rows.push([name, String(Buffer.byteLength(text)), ms(parse), ms(scan), (scan / parse).toFixed(2)]);
}

process.stdout.write(formatMachine());
process.stdout.write(`median of ${rounds} samples, each at least 5 ms of runs; load ${formatLoad()}\n\n`);
process.stdout.write(`${table(["body", "bytes", "JSON.parse ms", "scan ms", "scan / parse"], rows)}\n`);
