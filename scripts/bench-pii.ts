/**
 * PII detection on adversarial prompts (`npm run bench:pii`): the time redactPii takes, every
 * entity enabled, on a prompt of `--bytes` characters (default 1,000,000, the most one chat message
 * holds) made of one short shape repeated: shapes that make a detector match and its check refuse
 * at every token, so the search goes on inside each refused match (enclave/pipeline/pii.ts,
 * acceptedMatches), and an ordinary English and Russian text for scale. The median of `--rounds`
 * runs per shape. It runs on the enclave's event loop before the first token, so this is how long
 * one such prompt holds every answer under way in that enclave.
 */
import { redactPii } from "../enclave/pipeline/pii.ts";
import { PII_ENTITIES } from "../manifests/schema.ts";
import { asciiCell, formatLoad, formatMachine, intArg, stats, table } from "./bench-common.ts";

const bytes = intArg("--bytes", 1_000_000, 1000, 1_000_000);
const rounds = intArg("--rounds", 5, 1, 50);

const SHAPES: readonly (readonly [name: string, prefix: string, unit: string])[] = [
  ["IBAN-shaped groups behind a zero-width space", "\u200b", "AA00 "],
  ["IBAN-shaped groups", "", "AB12 "],
  ["4-digit groups (card-shaped)", "", "1234 "],
  ["card numbers failing Luhn", "", "4111 1111 1111 1112 "],
  // The widest separators: a line break behind a quote prefix of 4 levels, tabs, two spaces.
  ["IBAN-shaped groups wrapped behind quote prefixes, behind a zero-width space", "\u200b", "AA00\n> > > > "],
  ["4-digit groups wrapped behind quote prefixes", "", "1234\n>> "],
  ["4-digit groups separated by tabs", "", "1234\t"],
  ["IBAN-shaped groups separated by two spaces", "", "AB12  "],
  ["IPv6-shaped colons", "", "a:b:"],
  ["e-mail-shaped runs", "", "a@b."],
  // E-mail local parts in scripts without spaces between words are read back from each `@` for up
  // to 64 characters; a run longer than that, then `@`, costs the most per `@`.
  ["e-mail-shaped runs in Chinese", "", "张@例."],
  ["Chinese letters, 65 then an at sign", "", `${"张".repeat(65)}@`],
  // Domains: a dot between two Chinese letters separates labels once, a Latin label any number of
  // times; a Chinese top-level domain is one of a list, tried at each label.
  ["e-mail-shaped runs, Chinese and Latin labels", "", "a@例.b."],
  ["e-mail addresses with a Chinese top-level domain", "", "a@例.中国"],
  // After the first dot before a Chinese letter, any labels up to a top-level domain that ends the
  // run of letters: read after each `@`, and through the whole prompt after a single one.
  ["e-mail-shaped runs, two Chinese labels", "", "a@例.例."],
  ["e-mail-shaped runs, Chinese labels in ideographic full stops", "", "a@例。例。"],
  ["Chinese labels after a single at sign", "a@", "例."],
  // Before a Latin name, the Chinese letters are read back to a dot.
  ["Chinese, a dot, Chinese and Latin, an at sign", "", "张.请wei@"],
  ["English prose", "", "Please summarise the attached quarterly report and name three risks. "],
  ["Russian prose", "", "Пожалуйста, кратко изложите приложенный отчёт и назовите три риска. "],
  ["Chinese prose", "", "请简要总结所附的季度报告，并指出三个主要风险。"],
];

const rows: string[][] = [];
for (const [name, prefix, unit] of SHAPES) {
  const text = (prefix + unit.repeat(Math.ceil(bytes / unit.length))).slice(0, bytes);
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const started = performance.now();
    redactPii(text, PII_ENTITIES);
    times.push(performance.now() - started);
  }
  const { median } = stats(times);
  rows.push([name, asciiCell(unit, 40), (median / 1000).toFixed(3)]);
}

process.stdout.write(formatMachine());
process.stdout.write(`prompt: ${bytes} characters, every entity, median of ${rounds} runs; load ${formatLoad()}\n\n`);
process.stdout.write(`${table(["shape", "unit repeated", "seconds"], rows)}\n`);
