/**
 * The request policy's pattern rules (`npm run bench:policy`): milliseconds per
 * `compileRequestPolicy(policy).evaluate(request)` (median and p99, nearest rank, of `--runs` runs
 * after 2 warm-up runs), for rule shapes × prompt kinds of `--chars` characters (default 64,000,
 * under the 65,536 a pattern rule evaluates). Prompts are generated from a seeded generator (the
 * same text every run) and match no rule (checked: a match would stop the search early), so a
 * block rule searches every form of the prompt it reads (enclave/pipeline/policy.ts: as sent,
 * normalized, look-alike folded, accent-folded and its folded form, and for a rule with `\b`, `\W`
 * or a negated class the precomposed view and its folded form; the look-alike-folded programs only
 * where the prompt has a non-ASCII letter). Each row also shows the rule's counted work
 * (MAX_POLICY_PATTERN_WORK's unit, read from the budget refusal) and the bound policy.ts claims for
 * it: work × characters × 45 ns (≈ 3.6 s at the budget, 1216, and 65,536 characters).
 */
import { PolicyPatternBudgetError } from "../enclave/pipeline/errors.ts";
import {
  compileRequestPolicy,
  DEFAULT_MAX_PATTERN_INPUT_CHARS,
  MAX_POLICY_PATTERN_WORK,
  type PolicyRequest,
  type RequestPolicy,
} from "../enclave/pipeline/policy.ts";
import type { RequestRule } from "../manifests/schema.ts";
import { formatLoad, formatMachine, intArg, stats, table } from "./bench-common.ts";

const USAGE = `usage: npm run bench:policy -- [--runs N] [--chars N]
  --runs N   evaluate runs per rule and prompt, after 2 warm-up runs (1..1000, default 10)
  --chars N  characters per prompt (1000..${DEFAULT_MAX_PATTERN_INPUT_CHARS}, default 64000)
`;
if (process.argv.includes("--help")) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const runs = intArg("--runs", 10, 1, 1000);
const chars = intArg("--chars", 64_000, 1000, DEFAULT_MAX_PATTERN_INPUT_CHARS);
const WARM_UP = 2;
/** policy.ts's measured cost per instruction and character, the bound's factor. */
const NS_PER_INSTRUCTION_CHAR = 45;

const block = (id: string, pattern: string, caseInsensitive = false): RequestRule => ({
  id,
  kind: "pattern",
  action: "block",
  pattern,
  caseInsensitive,
});

/**
 * The rules, each a policy of its own but the last. The two of 1216 are the largest one rule may
 * cost: 64 instructions as written and look-alike folded (`сор` reads `cop`), with a boundary. The
 * test's (test/pipeline/accent-folding.test.ts) starts with a literal, so RE2 threads start only
 * at `сор`; the other starts with `.`, which keeps a thread on each of its instructions at every
 * character, and has no literal RE2's prefilter could require (a class of symbols is one choice).
 */
const WORST = ".{56}(?:сор|[\\u2600-\\u26ff])\\b";
const RULES: readonly (readonly [name: string, rules: readonly RequestRule[]])[] = [
  ["password", [block("plain", "password")]],
  ["\\bbomb\\b", [block("boundary", "\\bbomb\\b")]],
  ["contraseña", [block("accented", "contraseña")]],
  ["\\bсор\\b (Cyrillic)", [block("cyrillic", "\\bсор\\b")]],
  ["password, case-insensitive", [block("ci", "password", true)]],
  ["\\bсор[a-z]{58} (largest, literal first)", [block("largest-literal", "\\bсор[a-z]{58}")]],
  [`${WORST} (largest, worst)`, [block("largest-worst", WORST)]],
  [
    "7 rules at the budget",
    [
      block("plain", "password"),
      block("boundary", "\\bbomb\\b"),
      block("ci", "password", true),
      block("cyrillic", "\\bсор\\b"),
      block("any-a", ".{59}[\\u2600-\\u26ff]\\b"),
      block("any-b", ".{59}[\\u2700-\\u27bf]\\b"),
      block("rare", "qzxqzxq"),
    ],
  ],
];

/** A seeded generator (mulberry32): the same numbers in [0, 1) for the same seed. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Words picked at random (seeded), a full stop after one in ten, cut to `length`. */
function prose(seed: number, words: readonly string[], length: number, spell = (w: string) => w): string {
  const next = seeded(seed);
  const parts: string[] = [];
  let total = 0;
  // Each word adds at least 2 characters: at most length / 2 + 1 words.
  for (let i = 0; i <= length / 2 && total < length; i++) {
    const word = spell(words[Math.floor(next() * words.length)] as string) + (next() < 0.1 ? ". " : " ");
    parts.push(word);
    total += word.length;
  }
  return parts.join("").slice(0, length);
}

const ENGLISH =
  "please summarise the attached quarterly report and name three risks for our company growth revenue in each market with its costs".split(
    " ",
  );
const FRENCH =
  "résumez le rapport trimestriel ci-joint et nommez trois risques pour la société élevée où été très forêt hôtel garçon naïf à déjà reçu".split(
    " ",
  );
const RUSSIAN =
  "пожалуйста кратко изложите приложенный отчёт и назовите три риска для компании рост выручки на каждом рынке расходы".split(
    " ",
  );
/** Latin letters with a Cyrillic look-alike (normalize.ts folds them back). */
const LOOK_ALIKES: Readonly<Record<string, string>> = { a: "а", c: "с", e: "е", o: "о", p: "р", x: "х", y: "у" };

/** English words with look-alike letters, zero-width spaces and combining marks (seeded). */
function adversarial(seed: number, length: number): string {
  const next = seeded(seed + 1000);
  const spell = (word: string) =>
    [...word]
      .map((c) => {
        let out = next() < 0.3 ? (LOOK_ALIKES[c] ?? c) : c;
        if (next() < 0.05) out += "\u0301";
        if (next() < 0.03) out += "\u0336";
        if (next() < 0.05) out += "\u200b";
        return out;
      })
      .join("");
  return prose(seed, ENGLISH, length, spell);
}

const PROMPTS: readonly (readonly [name: string, text: string])[] = [
  ["ASCII English", prose(1, ENGLISH, chars)],
  ["French, precomposed", prose(2, FRENCH, chars)],
  [
    "French, NFD",
    prose(2, FRENCH, chars * 2)
      .normalize("NFD")
      .slice(0, chars),
  ],
  ["Russian", prose(3, RUSSIAN, chars)],
  ["look-alikes, zero-width, marks", adversarial(4, chars)],
];

const policyOf = (rules: readonly RequestRule[]): RequestPolicy => ({
  rules: [...rules],
  defaultAction: "allow",
  pii: { mode: "off", entities: [], reason: "bench:policy measures the pattern rules alone" },
});

/**
 * The work compileRequestPolicy counts for `rules`: compiled with an input limit that leaves a
 * budget of 0, the refusal names it (POLICY_PATTERN_BUDGET, "found N").
 */
function countedWork(rules: readonly RequestRule[]): number {
  try {
    compileRequestPolicy(policyOf(rules), {
      maxPatternInputChars: MAX_POLICY_PATTERN_WORK * DEFAULT_MAX_PATTERN_INPUT_CHARS + 1,
    });
  } catch (error) {
    const found = error instanceof PolicyPatternBudgetError ? /found (\d+) /.exec(error.message) : null;
    if (found !== null) return Number(found[1]);
    throw error;
  }
  throw new Error("countedWork: expected a POLICY_PATTERN_BUDGET refusal at a budget of 0, found none");
}

const rows: string[][] = [];
let worst = { ms: 0, rule: "", prompt: "" };
for (const [ruleName, rules] of RULES) {
  const policy = compileRequestPolicy(policyOf(rules));
  const work = countedWork(rules);
  const boundMs = (work * chars * NS_PER_INSTRUCTION_CHAR) / 1e6;
  for (const [promptName, text] of PROMPTS) {
    const request: PolicyRequest = { kind: "chat", model: "bench", text, estimatedTokens: 1, metadata: {} };
    const times: number[] = [];
    for (let r = 0; r < WARM_UP + runs; r++) {
      const started = performance.now();
      const decision = policy.evaluate(request);
      const elapsed = performance.now() - started;
      if (decision.decision !== "allow") {
        throw new Error(`prompt "${promptName}": expected no rule of "${ruleName}" to match, found ${decision.ruleId}`);
      }
      if (r >= WARM_UP) times.push(elapsed);
    }
    const { median, p99 } = stats(times);
    if (p99 > worst.ms) worst = { ms: p99, rule: ruleName, prompt: promptName };
    // A `|` in a pattern is written `\|`, as a Markdown table cell needs it.
    rows.push([
      ruleName.replaceAll("|", "\\|"),
      promptName,
      String(work),
      median.toFixed(1),
      p99.toFixed(1),
      boundMs.toFixed(0),
    ]);
  }
}

process.stdout.write(formatMachine());
process.stdout.write(
  `prompts: ${chars} characters, no match; ${runs} runs after ${WARM_UP} warm-up; load ${formatLoad()}\n` +
    `bound: counted work × ${chars} characters × ${NS_PER_INSTRUCTION_CHAR} ns (policy.ts; budget ${MAX_POLICY_PATTERN_WORK})\n\n`,
);
process.stdout.write(`${table(["rule", "prompt", "work", "median ms", "p99 ms", "bound ms"], rows)}\n`);
process.stdout.write(`\nworst p99: ${worst.ms.toFixed(1)} ms (${worst.rule}, ${worst.prompt})\n`);
