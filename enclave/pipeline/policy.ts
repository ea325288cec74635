/**
 * Request policy (DESIGN.md "The zero-trust pipeline", step 2): the manifest's `requestPolicy.rules`
 * evaluated in order over one decrypted request. The first rule that matches decides — a `block`
 * ends the request, an `allow` admits it without looking further; when no rule matches,
 * `defaultAction` decides. PII handling (`requestPolicy.pii`) is the next step, in pii.ts.
 *
 * What it checks: every rule kind of manifests/schema.ts — `maxPromptTokens` (estimated tokens
 * strictly above `limit`), `pattern` (Unicode regular expression over the prompt text, optionally
 * case-insensitive), `allowModels` (a model outside the list is blocked), `metadataEquals` (exact,
 * own-property string equality) and `requestKind`.
 * What it does not check: the caller's identity and rate limits (the host did that), PII (pii.ts),
 * and the accuracy of `estimatedTokens` (the caller's estimate is trusted as given).
 *
 * Regular expressions come from an operator-signed manifest but run over attacker-chosen text, so
 * they run on RE2 (re2js), whose time is linear in the text whatever the pattern. Patterns are
 * written (and read by clients) as JavaScript Unicode-mode expressions; toRe2Syntax gives each
 * construct its JavaScript meaning in RE2 or refuses it (POLICY_PATTERN_UNSAFE at enclave boot and
 * in `cloister manifest check`): backreferences and lookarounds, which need backtracking, `\cX`,
 * `[^]`. RE2's work per character grows with the pattern's compiled size, so a rule may compile to
 * at most MAX_PATTERN_PROGRAM_SIZE instructions, all pattern rules together may cost at most
 * MAX_POLICY_PATTERN_WORK per request (POLICY_PATTERN_BUDGET; evaluation is synchronous, on the
 * enclave's event loop), and a rule looks at most `maxPatternInputChars` characters
 * (default 65,536 UTF-16 code units, as sent and normalized): a longer prompt is never truncated and
 * matched partially: a `block` pattern rule treats it as a match (the request is blocked, the
 * reason says why), an `allow` pattern rule as no match.
 *
 * A pattern sees the prompt as sent and its normalized form (normalize.ts: NFKC, invisible
 * characters removed, dashes and digits of every script in ASCII), so `ｂｏｍｂ` or `bo\u200bmb`
 * does not pass a `bomb` block rule: a `block` rule matches when either form matches, an `allow`
 * rule only when both do. A `block` rule also sees the normalized form with look-alike letters of
 * other scripts folded to ASCII (normalize.ts: Cyrillic `а`, Greek `ρ`, … from Unicode's
 * confusables), so `pаsswоrd` with Cyrillic `а` and `о` does not pass a `password` rule; an
 * `allow` rule does not (it must match the text as written anyway, and a rule written in Cyrillic
 * or Greek letters would no longer match its own language). A prompt in Russian or Greek is
 * therefore also read by block rules partly in Latin letters (`Пожалуйста` as `Пoжaлyйcтa`): a
 * rule for an English word matches it only where one of its words is made of look-alikes alone
 * and folds to that word (Russian `сор` reads as `cop`). A block rule written in those letters is
 * matched against the folded form with its own literal look-alikes folded too (`пароль` as
 * `пapoль`), so a prompt writing them in Latin (`пaрoль`) does not pass it either, where the
 * matched text has a letter of another script (plain English `cop` does not meet a rule `сор`);
 * look-alikes inside a character class (`[оó]`) are not folded. A block rule also sees one
 * accent-folded form (normalize.ts `unmarkedForDetection`): the normalized form decomposed, every
 * combining mark on a Latin or look-alike letter dropped, composed again, so `passwörd` (U+00F6),
 * `pa\u0301ssword`, `ｐａ\u0301ｓｓｗｏｒｄ` and `pa\u0336ssword` read `password`; marks on other
 * scripts' letters stay (Hindi vowel signs, Japanese `パ`). There the rule is searched with its
 * literal letters folded the same way (`contraseña` as `contrasena`, `\u00f1` as `n`, Cyrillic `ё`
 * as `е`; inside a class member by member, and a range such as `[à-ÿ]` with the bare letters of
 * the accented ones it holds added, `[à-ÿaceinouy]`; case-insensitively with the bare letter of
 * each case, where the view reads a letter's cases apart: `ѓ` as `[гѓ]`, since `ѓ` reads `г` and
 * `Ѓ` as written), as written and look-alike-folded. This
 * over-matches, which a block rule may (fail-closed): plain `contrasena` meets a rule `contraseña`,
 * `passwörd` one `password`, `ax` one `[à-ÿ]x`. Not folded: look-alikes of several characters (`rn`
 * for `m`) and letters that do not decompose (`ß`, `ø`, `ł`, `æ`, `đ`). What tells an accented
 * letter from its bare one reads the bare one there: a word boundary (`\b`, `\B`), `\W` or a
 * negated class (`[^a-z]`, which stays as written) next to such a letter (`bo\u0301mbé` reads
 * `bombe`, where `\bbomb\b` finds no boundary after `b`), and the titlecase category (`\p{Lt}`,
 * `\P{Lu}`: Greek `ᾈ` reads `Α`). A block rule that writes one of those
 * therefore also runs the unmarked stage of the code before tidy66 exactly as it was, on the
 * precomposed form (normalize.ts `precomposedForDetection`): the marks written decomposed and those
 * NFKC keeps dropped, the letters written precomposed kept (`bo\u0301mbé` and `bo\u0336mbé` read
 * `bombé`); for a rule that writes a Latin or look-alike letter with a diacritic or a mark
 * (writesComposedLetter, as before tidy66), the marks NFKC composes left composed and those it
 * keeps dropped, on accented letters too (`señ\u0336oré` reads `señoré`). There the rule is
 * searched as written, and the folded form as written and by the rule with its look-alikes folded
 * when it has them (`\bсёстра\b` meets `сё\u0336страé`), MAX_ASCII_MATCHES (4) all-ASCII matches
 * looked past before any letter of another script in the prompt counts (fail-closed), as on the
 * other folded forms. So such a rule blocks every prompt the code before tidy66 blocked. Not
 * searched where the precomposed form is the normalized one, nor where it is the accent-folded one
 * and the rule's accent-folded programs are its programs as written (`bo\u0336mb` with no accented
 * letter anywhere, for `\bbomb\b`): the searches there repeat those the rule made already. Still
 * passing: `bömbé` passes a rule `\bbomb\b`, since every form reads it either with `ö` or as
 * `bombe`, which is also the French word `bombe` that the rule does not meet.
 *
 * Reasons name rule ids, rule kinds and numbers only; they never contain the prompt, the model
 * name asked for, or metadata values.
 */
import { RE2JS } from "re2js";
import type { Manifest, RequestRule } from "../../manifests/schema.ts";
import { PolicyPatternBudgetError, PolicyPatternUnsafeError, PolicyRequestInvalidError } from "./errors.ts";
import {
  foldLookAlikes,
  normalizeCharacters,
  precomposedForDetection,
  unmarkedForDetection,
  withoutMarksOnLatin,
} from "./normalize.ts";

export type RequestPolicy = Manifest["requestPolicy"];

export interface PolicyRequest {
  readonly kind: "chat" | "complete";
  /** The model the request names. */
  readonly model: string;
  /** All message contents (chat) or the prompt (complete), joined. */
  readonly text: string;
  readonly estimatedTokens: number;
  readonly metadata: Readonly<Record<string, string>>;
}

export interface PolicyDecision {
  readonly decision: "allow" | "block";
  /** The rule that decided; null when `defaultAction` decided. */
  readonly ruleId: string | null;
  /** Rule id, kind and numbers only; never request content. */
  readonly reason: string;
}

export interface CompileOptions {
  /** Longest prompt text (UTF-16 code units, as sent and normalized) a pattern rule evaluates. Default 65,536. */
  readonly maxPatternInputChars?: number;
}

export const DEFAULT_MAX_PATTERN_INPUT_CHARS = 65_536;

/**
 * Largest RE2 program (about one instruction per character, class or repeated copy) a pattern rule
 * may compile to: RE2's work per prompt character grows with it. `x{1000}` is 1000 copies of `x`.
 */
export const MAX_PATTERN_PROGRAM_SIZE = 64;

/**
 * Most RE2 work all pattern rules together may cost for one request, in instruction-searches: a
 * search of the longest prompt a rule evaluates by a program of n instructions counts n. A block
 * rule searches up to 5 forms of the prompt (as sent, normalized, folded; unmarked and unmarked
 * folded by its accent-folded program) and, when it has look-alike-folded programs, up to
 * MAX_ASCII_MATCHES more searches by one on each of the 2 folded forms; a block rule with a word
 * boundary, `\W`, a negated class, `\p{Lt}` or `\P{Lu}` up to 2 + MAX_ASCII_MATCHES more (the
 * precomposed form and its folded form by the rule as written, and MAX_ASCII_MATCHES searches of
 * that by the look-alike-folded program); an allow rule searches 2 forms. re2js costs about
 * 30-45 ns per instruction and character when no literal prefix lets it skip ahead (measured: a
 * 63-instruction rule 136 ms per search of 64,800 characters), so at the default 65,536
 * characters this budget bounds the pattern rules of one request at about
 * 1216 × 65,536 × 45 ns ≈ 3.6 s of synchronous work (twice when PII redaction changed the prompt
 * and the rules run again). One rule at MAX_PATTERN_PROGRAM_SIZE with a folded program
 * (5 × 64 + 2 × 4 × 64 = 832; with a word boundary 7 × 64 + 3 × 4 × 64 = 1216 = 19 × 64, exactly
 * the budget, as it fit the budget before its precomposed searches grew to these) fits; a policy
 * over it is refused at boot and by `cloister manifest check` (POLICY_PATTERN_BUDGET).
 */
export const MAX_POLICY_PATTERN_WORK = 1216;

export interface CompiledRequestPolicy {
  evaluate(request: PolicyRequest): PolicyDecision;
}

/** The request and, computed once per request when a pattern rule asks for them, its normalized texts. */
interface RuleInput {
  readonly request: PolicyRequest;
  /** normalizeCharacters: letters as written. */
  normalizedText(): string;
  /** That with look-alike letters folded (same length). */
  foldedText(): string;
  /** Whether the normalized text has a letter outside ASCII. */
  hasNonAsciiLetter(): boolean;
  /** The normalized text without the combining marks on Latin or look-alike letters (unmarkedForDetection). */
  unmarkedText(): string;
  /** That with look-alike letters folded (same length). */
  unmarkedFoldedText(): string;
  /** The normalized text with its letters written precomposed kept (precomposedForDetection). */
  precomposedText(composeMarks: boolean): string;
  /** That with look-alike letters folded (same length). */
  precomposedFoldedText(composeMarks: boolean): string;
}

type RuleMatcher = (input: RuleInput) => { matched: boolean; detail: string };

/** Compiles the manifest's rules once (regular expressions included); throws on an unsafe pattern. */
export function compileRequestPolicy(policy: RequestPolicy, options: CompileOptions = {}): CompiledRequestPolicy {
  const maxInput = options.maxPatternInputChars ?? DEFAULT_MAX_PATTERN_INPUT_CHARS;
  if (!Number.isSafeInteger(maxInput) || maxInput < 1) {
    throw new PolicyRequestInvalidError("maxPatternInputChars", "a positive integer");
  }
  let work = 0;
  const rules = policy.rules.map((rule) => {
    const compiled = compileRule(rule, maxInput);
    work += compiled.work;
    return { id: rule.id, kind: rule.kind, action: rule.action, match: compiled.match };
  });
  // The budget is stated for the default input limit; a longer limit leaves fewer instruction-searches.
  const limit = Math.floor((MAX_POLICY_PATTERN_WORK * DEFAULT_MAX_PATTERN_INPUT_CHARS) / maxInput);
  if (work > limit) {
    throw new PolicyPatternBudgetError(work, limit, policy.rules.filter((r) => r.kind === "pattern").length);
  }
  const defaultAction = policy.defaultAction;

  return {
    evaluate(request: PolicyRequest): PolicyDecision {
      checkRequest(request);
      let normalized: string | undefined;
      let folded: string | undefined;
      let nonAsciiLetter: boolean | undefined;
      let unmarked: string | undefined;
      let unmarkedFolded: string | undefined;
      // By composeMarks (0 false, 1 true): the precomposed view and its folded form.
      const precomposed: (string | undefined)[] = [undefined, undefined];
      const precomposedFolded: (string | undefined)[] = [undefined, undefined];
      const input: RuleInput = {
        request,
        normalizedText: () => {
          normalized ??= normalizeCharacters(request.text);
          return normalized;
        },
        foldedText: () => {
          folded ??= foldLookAlikes(input.normalizedText());
          return folded;
        },
        hasNonAsciiLetter: () => {
          nonAsciiLetter ??= NON_ASCII_LETTER.test(input.normalizedText());
          return nonAsciiLetter;
        },
        unmarkedText: () => {
          unmarked ??= unmarkedForDetection(input.normalizedText());
          return unmarked;
        },
        unmarkedFoldedText: () => {
          unmarkedFolded ??= foldLookAlikes(input.unmarkedText());
          return unmarkedFolded;
        },
        precomposedText: (composeMarks) => {
          const at = composeMarks ? 1 : 0;
          precomposed[at] ??= precomposedForDetection(request.text, input.normalizedText(), composeMarks);
          return precomposed[at];
        },
        precomposedFoldedText: (composeMarks) => {
          const at = composeMarks ? 1 : 0;
          precomposedFolded[at] ??= foldLookAlikes(input.precomposedText(composeMarks));
          return precomposedFolded[at];
        },
      };
      for (const rule of rules) {
        const { matched, detail } = rule.match(input);
        if (matched) {
          return {
            decision: rule.action,
            ruleId: rule.id,
            reason: `rule "${rule.id}" (${rule.kind}, ${rule.action}): ${detail}`,
          };
        }
      }
      return { decision: defaultAction, ruleId: null, reason: `no rule matched; defaultAction is "${defaultAction}"` };
    },
  };
}

/**
 * Whether `folded` (the look-alike-folded form of `base`, same length) matches: the rule as
 * written when it differs from `base`, and the rule with its own look-alike letters folded
 * (`foldedTest`, null when it has none) always, since a rule written in Cyrillic meets a prompt in
 * Latin look-alikes only there.
 */
function foldedMatches(
  base: string,
  folded: string,
  test: (text: string) => boolean,
  foldedTest: ((folded: string, normalized: string) => boolean) | null,
  input: RuleInput,
): boolean {
  if (folded !== base && test(folded)) return true;
  // A folded rule counts only with a non-ASCII letter in the prompt: plain ASCII text skips it.
  return foldedTest !== null && input.hasNonAsciiLetter() && foldedTest(folded, base);
}

/**
 * Whether the unmarked text (unmarkedForDetection) matches the rule's accent-folded form (`test`,
 * `foldedTest` for its look-alikes folded too), as read and folded. Where the unmarked text is the
 * normalized one, only a rule whose accent-folded form differs from it as written (`contrasena` for
 * `contraseña`) has anything left to find.
 */
function unmarkedMatches(
  input: RuleInput,
  normalized: string,
  test: (text: string) => boolean,
  foldedTest: ((folded: string, normalized: string) => boolean) | null,
  foldsAccents: boolean,
): boolean {
  const unmarked = input.unmarkedText();
  if (unmarked === normalized && !foldsAccents) return false;
  return test(unmarked) || foldedMatches(unmarked, input.unmarkedFoldedText(), test, foldedTest, input);
}

/**
 * The unmarked stage of the code before tidy66, as it was: whether the precomposed text
 * (precomposedForDetection), which keeps the accented letters the unmarked text reads bare, matches
 * the rule as written (`test`), or its look-alike-folded form does (foldedMatches: the rule as
 * written, and the rule with its own look-alikes folded, `foldedTest`, when it has them). Not where
 * it is the normalized text, which the rule has searched already, nor, with `repeatsUnmarked` (the
 * rule's accent-folded programs are its programs as written and it composes no marks), where it is
 * the unmarked text: unmarkedMatches made exactly these searches there.
 */
function precomposedMatches(
  input: RuleInput,
  normalized: string,
  test: (text: string) => boolean,
  foldedTest: ((folded: string, precomposed: string) => boolean) | null,
  composeMarks: boolean,
  repeatsUnmarked: boolean,
): boolean {
  const precomposed = input.precomposedText(composeMarks);
  if (precomposed === normalized || (repeatsUnmarked && precomposed === input.unmarkedText())) return false;
  return (
    test(precomposed) || foldedMatches(precomposed, input.precomposedFoldedText(composeMarks), test, foldedTest, input)
  );
}

/**
 * Whether a JavaScript pattern may tell an accented letter from its bare one: a word boundary
 * (`\b`, `\B`), `\W` or a negated class (`[^a-z]`), written anywhere (after an escaped backslash,
 * `\\b`, it is text). Next to an accented letter the unmarked text reads bare, each reads an ASCII
 * word letter. A property, `\p{…}` or `\P{…}`, holds an accented letter and its bare one alike,
 * but for the titlecase letter category: Greek `ᾈ` (Lt) reads `Α` (Lu), so `\p{Lt}` and `\P{Lu}`
 * (`gc=` or `General_Category=` written or not) tell them apart too.
 */
function readsAccentApart(pattern: string): boolean {
  return /(?:^|[^\\])(?:\\\\)*(?:\\[bBW]|\[\^|\\p\{(?:gc=|General_Category=)?Lt\}|\\P\{(?:gc=|General_Category=)?Lu\})/.test(
    pattern,
  );
}

/**
 * Whether an RE2 source (toRe2Syntax) writes a Latin or look-alike letter with a diacritic or a
 * combining mark, as a character or as a `\x{…}` / `\xHH` escape (`ñ`, `\x{f1}`, Cyrillic `ё`): the
 * test the code before tidy66 chose a rule's unmarked view by, kept as it was for the precomposed
 * view (a rule's accent-folded form may differ without it: a range such as `[Ɓ-ɏ]` gains letters).
 * Marks on letters of other scripts (Hindi `पा`, Japanese `パ`) do not count, nor an escaped
 * backslash before `x` (`\\xe1`), nor marks on a symbol or digit (`≠` is `=` and U+0338, keycap
 * `1️⃣` is `1`, U+FE0F and U+20E3), nor a variation selector (`ℹ️`, `Ⓜ️`).
 */
function writesComposedLetter(source: string): boolean {
  // Escapes read left to right, each whole, so `\\` is one escape and the `xe1` after it is text.
  const written = source.replace(
    /\\(?:x\{([0-9A-Fa-f]{1,6})\}|x([0-9A-Fa-f]{2})|[\s\S])/g,
    (sequence, braced, plain) => {
      if (braced === undefined && plain === undefined) return sequence;
      const codePoint = Number.parseInt((braced ?? plain) as string, 16);
      return codePoint <= 0x10ffff ? String.fromCodePoint(codePoint) : sequence;
    },
  );
  const decomposed = written.normalize("NFD").replace(/\p{Default_Ignorable_Code_Point}/gu, "");
  for (const [marked] of decomposed.matchAll(/\p{L}[\p{Mn}\p{Me}]+/gu)) {
    if (withoutMarksOnLatin(marked) !== null) return true;
  }
  return false;
}

/** One-shot form of `compileRequestPolicy(policy).evaluate(request)`; compile once in a server. */
export function evaluateRequestPolicy(policy: RequestPolicy, request: PolicyRequest): PolicyDecision {
  return compileRequestPolicy(policy).evaluate(request);
}

/** A rule's matcher and its worst-case RE2 work per request (MAX_POLICY_PATTERN_WORK's unit). */
function compileRule(rule: RequestRule, maxInput: number): { match: RuleMatcher; work: number } {
  if (rule.kind !== "pattern") return { match: compileOtherRule(rule), work: 0 };
  const regex = compilePattern(rule.id, rule.pattern, rule.caseInsensitive);
  const test = (text: string) => regex.matcher(text).find();
  // A block rule's literal look-alike letters folded too (`пароль` reads `пapoль`), for the
  // folded text, where a prompt's Latin look-alikes of them (`пaрoль`) read the same. A match
  // counts only where the prompt has a letter of another script: a rule made of look-alikes
  // alone (`сор`) folds to an English word (`cop`) that plain English text must not meet.
  const plainSource = toRe2Syntax(rule.id, rule.pattern);
  const folding = { foldLiterals: true, caseInsensitive: rule.caseInsensitive };
  const foldedSource = toRe2Syntax(rule.id, rule.pattern, folding);
  const foldedRegex =
    rule.action === "block" && foldedSource !== plainSource
      ? compilePattern(rule.id, rule.pattern, rule.caseInsensitive, { foldLiterals: true, longest: true })
      : null;
  const foldedTest =
    foldedRegex === null ? null : (folded: string, normalized: string) => foldedMatch(foldedRegex, folded, normalized);
  // A block rule's literal Latin and look-alike letters without their diacritics (`contraseña`
  // reads `contrasena`), for the unmarked text, where the prompt's letters have none; it is the
  // rule as written when it writes none. Each one searched on the unmarked text alone.
  const bareOptions = { foldAccents: true, caseInsensitive: rule.caseInsensitive };
  const bareSource = toRe2Syntax(rule.id, rule.pattern, bareOptions);
  const bareRegex =
    rule.action === "block" && bareSource !== plainSource
      ? compilePattern(rule.id, rule.pattern, rule.caseInsensitive, { foldAccents: true })
      : regex;
  const bareTest = bareRegex === regex ? test : (text: string) => bareRegex.matcher(text).find();
  const bareFoldedSource = toRe2Syntax(rule.id, rule.pattern, { ...bareOptions, foldLiterals: true });
  const bareFoldedRegex =
    rule.action === "block" && bareFoldedSource !== bareSource
      ? compilePattern(rule.id, rule.pattern, rule.caseInsensitive, {
          foldLiterals: true,
          foldAccents: true,
          longest: true,
        })
      : null;
  const bareFoldedTest =
    bareFoldedRegex === null
      ? null
      : (folded: string, unmarked: string) => foldedMatch(bareFoldedRegex, folded, unmarked);
  // A block rule that tells an accented letter from its bare one (`\bbomb\b`) also runs the
  // unmarked stage of the code before tidy66 as it was, on the precomposed text (where
  // `bo\u0301mbé` reads `bombé`): the view a rule that writes an accented letter read then (marks
  // NFKC composes left composed), chosen by the same test, or the other.
  const readsApart = rule.action === "block" && readsAccentApart(rule.pattern);
  const composeMarks = writesComposedLetter(plainSource);
  // Where that is the unmarked view and the rule's accent-folded programs are its programs as
  // written, unmarkedMatches made the same searches there already (precomposedMatches).
  const repeatsUnmarked = !composeMarks && bareSource === plainSource && bareFoldedSource === foldedSource;
  // The searches below at most: a block rule 5 forms (the unmarked 2 by its accent-folded
  // program), plus MAX_ASCII_MATCHES searches by a look-alike-folded program on each of the 2
  // folded forms; when it reads accents apart, the precomposed form and its folded form by the
  // rule as written, and MAX_ASCII_MATCHES searches of that by the look-alike-folded program when
  // there is one; an allow rule the text as sent and normalized. At MAX_PATTERN_PROGRAM_SIZE (64)
  // with a folded program and a boundary: 3 × 64 + 2 × 64 + 4 × (64 + 64) + 2 × 64 + 4 × 64 = 1216.
  const work =
    rule.action === "block"
      ? 3 * regex.programSize() +
        2 * bareRegex.programSize() +
        MAX_ASCII_MATCHES * ((foldedRegex?.programSize() ?? 0) + (bareFoldedRegex?.programSize() ?? 0)) +
        (readsApart ? 2 * regex.programSize() + MAX_ASCII_MATCHES * (foldedRegex?.programSize() ?? 0) : 0)
      : 2 * regex.programSize();
  const match: RuleMatcher = (input) => {
    const text = input.request.text;
    // Normalizing can lengthen a text (NFKC expands some characters up to 18 times): both count.
    const normalized = text.length > maxInput ? text : input.normalizedText();
    const length = Math.max(text.length, normalized.length);
    if (length > maxInput) {
      return {
        matched: rule.action === "block",
        detail: `the prompt has ${length} characters, more than the ${maxInput} a pattern rule evaluates (treated as a match: fail-closed)`,
      };
    }
    // Look-alike letters are folded for block rules only: an allow rule must match the text as
    // written anyway, and would fail on Russian or Greek text that it names in its own letters.
    const matched =
      rule.action === "block"
        ? test(text) ||
          (normalized !== text && test(normalized)) ||
          foldedMatches(normalized, input.foldedText(), test, foldedTest, input) ||
          // Without the combining marks on Latin and look-alike letters (`pa\u0336ssword`, `passwörd`).
          unmarkedMatches(input, normalized, bareTest, bareFoldedTest, bareRegex !== regex) ||
          (readsApart && precomposedMatches(input, normalized, test, foldedTest, composeMarks, repeatsUnmarked))
        : test(text) && (normalized === text || test(normalized));
    return { matched, detail: "the prompt matches the rule's pattern" };
  };
  return { match, work };
}

function compileOtherRule(rule: Exclude<RequestRule, { kind: "pattern" }>): RuleMatcher {
  switch (rule.kind) {
    case "maxPromptTokens":
      return ({ request: r }) => ({
        matched: r.estimatedTokens > rule.limit,
        detail: `estimated prompt tokens ${r.estimatedTokens} exceed the limit ${rule.limit}`,
      });
    case "allowModels": {
      const models = new Set(rule.models);
      return ({ request: r }) => ({
        matched: !models.has(r.model),
        detail: `the requested model is not one of the ${models.size} models the rule allows`,
      });
    }
    case "metadataEquals":
      return ({ request: r }) => ({
        matched: Object.hasOwn(r.metadata, rule.key) && r.metadata[rule.key] === rule.value,
        detail: `metadata field "${rule.key}" equals the rule's value`,
      });
    case "requestKind": {
      const kinds = new Set<string>(rule.kinds);
      return ({ request: r }) => ({ matched: kinds.has(r.kind), detail: `request kind "${r.kind}" is listed` });
    }
  }
}

/**
 * A pattern rule's expression on RE2 (linear-time matching); RE2 syntax, so backreferences and
 * lookarounds, which need backtracking, are refused with RE2's reason.
 */
export function compilePattern(
  ruleId: string,
  pattern: string,
  caseInsensitive: boolean,
  options: { readonly foldLiterals?: boolean; readonly foldAccents?: boolean; readonly longest?: boolean } = {},
): RE2JS {
  const source = toRe2Syntax(ruleId, pattern, {
    foldLiterals: options.foldLiterals === true,
    foldAccents: options.foldAccents === true,
    caseInsensitive,
  });
  let regex: RE2JS;
  try {
    const flags = (caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0) | (options.longest === true ? RE2JS.LONGEST_MATCH : 0);
    regex = RE2JS.compile(source, flags);
  } catch (error) {
    throw new PolicyPatternUnsafeError(ruleId, `a pattern RE2 refuses: ${(error as Error).message}`);
  }
  const size = regex.programSize();
  if (size > MAX_PATTERN_PROGRAM_SIZE) {
    throw new PolicyPatternUnsafeError(
      ruleId,
      `a program of ${size} instructions, more than ${MAX_PATTERN_PROGRAM_SIZE} (large counted repetitions such as x{1000} multiply the work per prompt character)`,
    );
  }
  return regex;
}

function checkRequest(request: PolicyRequest): void {
  if (request.kind !== "chat" && request.kind !== "complete") {
    throw new PolicyRequestInvalidError("kind", '"chat" or "complete"');
  }
  if (typeof request.model !== "string") throw new PolicyRequestInvalidError("model", "a string");
  if (typeof request.text !== "string") throw new PolicyRequestInvalidError("text", "a string");
  if (!Number.isSafeInteger(request.estimatedTokens) || request.estimatedTokens < 0) {
    throw new PolicyRequestInvalidError("estimatedTokens", "a non-negative integer");
  }
  if (typeof request.metadata !== "object" || request.metadata === null || Array.isArray(request.metadata)) {
    throw new PolicyRequestInvalidError("metadata", "an object of strings");
  }
  for (const value of Object.values(request.metadata)) {
    if (typeof value !== "string") throw new PolicyRequestInvalidError("metadata", "an object of strings");
  }
}

/** JavaScript's `\s` (WhiteSpace and LineTerminator), as RE2 class contents. */
const JS_WHITESPACE =
  "\\t\\n\\x{b}\\f\\r \\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}\\x{feff}";
/** What JavaScript's `.` matches without the `s` flag: anything but a line terminator. */
const JS_DOT = "[^\\n\\r\\x{2028}\\x{2029}]";

/**
 * A literal letter of a pattern as folded text reads it. Case-insensitively, each case is folded
 * on its own: the table may fold only one of them (capital `Ь` reads `b`, small `ь` stays), so a
 * letter can stand for a class of what its cases fold to (`[ьb]`); those are letters and digits,
 * which need no escaping in a class.
 */
function foldedLiteral(c: string, caseInsensitive: boolean): string {
  if (c.charCodeAt(0) < 0x80) return c; // ASCII never folds (and a group name stays as written)
  const cases = caseInsensitive ? [c, c.toLowerCase(), c.toUpperCase()].filter((f) => f.length === 1) : [c];
  // A letter none of whose cases is a look-alike stays as written (no class, no folded rule for it).
  if (cases.every((f) => foldLookAlikes(f) === f)) return c;
  const forms = caseInsensitive
    ? new Set([c, c.toLowerCase(), c.toUpperCase()].filter((f) => f.length === 1).map(foldLookAlikes))
    : new Set([foldLookAlikes(c)]);
  if (forms.size > 1) return `[${[...forms].join("")}]`;
  const folded = foldLookAlikes(c);
  // A digit is its own group, so that it cannot extend an escape before it (`\0З` is not `\03`).
  return folded !== c && folded >= "0" && folded <= "9" ? `(?:${folded})` : folded;
}

/**
 * All-ASCII matches of a folded rule looked past before it counts as matched (fail-closed). Each
 * is a search of the prompt, so a rule's cost is bounded by this many times one search.
 */
const MAX_ASCII_MATCHES = 4;

/**
 * Whether a folded block rule (compiled leftmost-longest) matches the folded text where the prompt
 * has a letter of another script. After an all-ASCII match the search goes on from the character
 * after its start, so a mixed match overlapping it is seen (`cocос` for a rule `сос`); past
 * MAX_ASCII_MATCHES of them, any letter of another script in the prompt counts (fail-closed, and
 * the work stays linear in the prompt).
 */
function foldedMatch(regex: RE2JS, folded: string, normalized: string): boolean {
  const matcher = regex.matcher(folded);
  let from = 0;
  for (let n = 0; n < MAX_ASCII_MATCHES; n++) {
    if (from > folded.length || !matcher.find(from)) return false;
    if (NON_ASCII_LETTER.test(normalized.slice(matcher.start(), matcher.end()))) return true;
    from = matcher.start() + 1;
  }
  return NON_ASCII_LETTER.test(normalized);
}

/** A letter outside ASCII (a letter of another script, or an accented one). */
const NON_ASCII_LETTER = /(?![\p{ASCII}])\p{L}/u;

/**
 * A letter as the unmarked text reads it (normalize.ts unmarkedForDetection): a Latin or look-alike
 * letter without its diacritics (`ñ` → `n`, Cyrillic `ё` → `е`); any other character as written.
 */
function bareLetter(c: string): string {
  const bare = unmarkedForDetection(c);
  return [...bare].length === 1 ? bare : c;
}

/**
 * The letters the unmarked text reads `c` as: `c`'s own bare letter first (bareLetter);
 * case-insensitively also that of each accented letter JavaScript's /iu reads as `c`
 * (accentedLetterTable) where it differs beyond case, and `c` itself where one of its cases reads
 * as written (`[гѓ]` for `ѓ`). The view reads a letter's cases apart where only one of them is a
 * look-alike (`ѓ` reads `г`, `Ѓ` stays; titlecase `ᾘ` reads `Η`, `ᾐ` stays), so a
 * case-insensitive rule's `Ѓ` must meet `г` too, and its `ѓ` `Ѓ`. An ASCII letter has no accented
 * other case.
 */
function bareCases(c: string, caseInsensitive: boolean): string[] {
  const forms = [bareLetter(c)];
  const codePoint = c.codePointAt(0) as number;
  if (!caseInsensitive || codePoint < 0x80 || [...c].length !== 1) return forms;
  const add = (bare: string) => {
    if (!forms.some((f) => f.toLowerCase() === bare.toLowerCase())) forms.push(bare);
  };
  const sameLetter = new RegExp(`^\\u{${codePoint.toString(16)}}$`, "iu");
  for (const [accented, bare] of accentedLetterTable()) {
    if (sameLetter.test(String.fromCodePoint(accented))) add(bare);
  }
  // A case the view reads as written (`Ѓ` for a rule's `ѓ`): `c` itself, whose cases RE2 folds.
  if ([c, c.toLowerCase(), c.toUpperCase()].some((f) => [...f].length === 1 && bareLetter(f) === f)) add(c);
  return forms;
}

/**
 * Each code point the normalized text may hold (NFKC leaves it) that the unmarked text reads as
 * another letter (bareLetter: `à` → `a`, `ǻ` → `a`, Cyrillic `ё` → `е`, Greek `ά` → `α`), as
 * [code point, that letter], in order: the Latin-1 Supplement, Latin Extended, Latin Extended
 * Additional, Greek and Cyrillic letters with diacritics. Built on the first rule with a range that
 * asks (one NFD per code point of the Basic Multilingual Plane, once per process); no code point past
 * U+FFFF is one (accent-folding.test.ts checks them all).
 */
let accentedLetters: readonly (readonly [codePoint: number, bare: string])[] | undefined;

function accentedLetterTable(): readonly (readonly [codePoint: number, bare: string])[] {
  if (accentedLetters !== undefined) return accentedLetters;
  const table: [number, string][] = [];
  for (let codePoint = 0x80; codePoint < 0x10000; codePoint++) {
    if (codePoint >= 0xd800 && codePoint <= 0xdfff) continue;
    const char = String.fromCodePoint(codePoint);
    if (char.normalize("NFD") === char || char.normalize("NFKC") !== char) continue;
    const bare = bareLetter(char);
    if (bare !== char && LETTER.test(bare)) table.push([codePoint, bare]);
  }
  accentedLetters = table;
  return table;
}

/**
 * The letters a class range [`start`, `end`] gains in a block rule's accent-folded form: the bare
 * letter (accentedLetterTable) of each accented letter in it, case-insensitively of each letter
 * the range holds as JavaScript's /iu reads it (`[\u212A-\u212B]` holds `å`, the angstrom sign's
 * small letter) and of its other cases, those inside the range left out (`à-ÿ` gains `aceinouy`;
 * `a-z` nothing). Letters only, so nothing needs escaping in the class.
 */
function bareLettersInRange(start: number, end: number, caseInsensitive: boolean): string {
  if (start > end) return ""; // no such range parses (JavaScript and RE2 refuse it)
  const holds = caseInsensitive ? new RegExp(`[\\u{${start.toString(16)}}-\\u{${end.toString(16)}}]`, "iu") : null;
  const bares = new Set<string>();
  for (const [codePoint, bare] of accentedLetterTable()) {
    if (holds !== null) {
      if (!holds.test(String.fromCodePoint(codePoint))) continue;
    } else if (codePoint < start) continue;
    else if (codePoint > end) break;
    const char = String.fromCodePoint(codePoint);
    const cases = caseInsensitive ? [char, char.toLowerCase(), char.toUpperCase()] : [char];
    for (const form of cases) {
      const formBare = form === char ? bare : bareLetter(form);
      if (formBare !== form && LETTER.test(formBare)) bares.add(formBare);
    }
  }
  return [...bares]
    .filter((bare) => (bare.codePointAt(0) as number) < start || (bare.codePointAt(0) as number) > end)
    .join("");
}

/**
 * The code point a one-character escape other than `\u` / `\xHH` stands for in a class (`\t`,
 * `\-`); 0 for a class escape (`\d`), which ends no range.
 */
function escapedCodePoint(next: string): number {
  const control = ESCAPED_CONTROLS[next];
  if (control !== undefined) return control;
  return /^[A-Za-z0-9]$/.test(next) || next === "" ? 0 : (next.codePointAt(0) as number);
}

const ESCAPED_CONTROLS: Readonly<Record<string, number>> = { t: 0x09, n: 0x0a, v: 0x0b, f: 0x0c, r: 0x0d, "0": 0 };

const MARK = /^[\p{Mn}\p{Me}]$/u;
const LETTER = /^\p{L}$/u;

/**
 * The manifest's patterns are JavaScript Unicode-mode expressions (the schema checks they parse as
 * one; clients read them so); this writes one in RE2 syntax with the same meaning: `\s`, `\S` and
 * `.` as JavaScript defines them (RE2's are ASCII-only, and its `.` also matches `\r` and U+2028),
 * `\uXXXX` / `\u{X}` as `\x{X}` (a surrogate pair of `\uXXXX` escapes as the one code point it
 * writes), property names without the `Script=` / `sc=` / `General_Category=` / `gc=` prefix. What
 * has no RE2 form (`\cX`, `[^]`, `[]`, `\S` inside a class, `\P{…}` in a caseInsensitive pattern) is
 * refused (POLICY_PATTERN_UNSAFE) rather than given
 * another meaning; so are
 * backreferences and lookarounds, which RE2 itself refuses. With `foldLiterals`, literal look-alike
 * letters outside character classes and escapes are written as the ASCII letters they fold to
 * (normalize.ts), for matching folded text. With `foldAccents`, literal Latin and look-alike letters
 * (written out, `\uXXXX` or `\xHH`) are written without their diacritics (bareLetter), inside a
 * class too where one is a member alone, a range gaining the bare letters of the accented ones
 * it holds (bareLettersInRange; a negated class stays as written), and a combining mark written
 * after such a letter is dropped (made optional after a caseInsensitive letter written as the class
 * of its cases, `[гѓ]`), for matching the unmarked text.
 */
export function toRe2Syntax(
  ruleId: string,
  pattern: string,
  options: {
    readonly foldLiterals?: boolean;
    readonly foldAccents?: boolean;
    readonly caseInsensitive?: boolean;
  } = {},
): string {
  const unsupported = (what: string) => new PolicyPatternUnsafeError(ruleId, `${what}, which has no RE2 form`);
  const foldAccents = options.foldAccents === true;
  const caseInsensitive = options.caseInsensitive === true;
  let out = "";
  let inClass = false;
  // A negated class stays as written: `[^ó]` folded to `[^o]` would no longer match `o`.
  let negated = false;
  // In a class: 1 after a member a range dash follows, 2 after that dash (the next member ends the range).
  let range = 0;
  // Outside a class: the last literal letter as folded for accents (each case where they read apart,
  // `г` and `ѓ` for a caseInsensitive `ѓ`), while only marks follow it.
  let letters: readonly string[] = [];
  // In a class: the code point that starts the range being read.
  let rangeStart = 0;
  /**
   * Whether the class member (`codePoint`) ending before `next` is one end of a range; moves `range`
   * on. At a range's end, with foldAccents, `extra` is what the range gains (bareLettersInRange):
   * `[à-ÿ]` reads `[à-ÿaceinouy]`, so the unmarked text's `a` for `à` still meets it.
   */
  const rangeMember = (next: number, codePoint: number): { member: boolean; extra: string } => {
    const end = range === 2;
    const start = !end && pattern[next] === "-" && pattern[next + 1] !== undefined && pattern[next + 1] !== "]";
    range = start ? 1 : 0;
    if (start) rangeStart = codePoint;
    const extra =
      end && foldAccents && !negated ? bareLettersInRange(rangeStart, codePoint, options.caseInsensitive === true) : "";
    return { member: start || end, extra };
  };
  /** A literal code point (`hex` when written as an escape) in RE2 syntax, with the folds asked for. */
  const literal = (written: string, hex: string | null, next: number): string => {
    const escaped = hex === null ? written : `\\x{${hex}}`;
    if (inClass) {
      // A literal astral character is one member (its two UTF-16 units, read together below); a
      // lone high surrogate ending a range stands for the highest code point it may start
      // (fail-closed: the range gains more).
      const unit = written.codePointAt(0) as number;
      const { member, extra } = rangeMember(next, unit >= 0xd800 && unit <= 0xdbff ? 0x10ffff : unit);
      if (member) return escaped + extra;
      if (!foldAccents || negated) return escaped;
      const bares = bareCases(written, caseInsensitive);
      return bares.length === 1 && bares[0] === written ? escaped : bares.join("");
    }
    const bares = foldAccents ? bareCases(written, caseInsensitive) : [written];
    if (bares.length > 1) {
      // Cases read as different letters: a class of them (look-alike-folded too when asked); a mark
      // after it one of them drops is made optional (droppedMark): the view reads `ѓ\u0336` as `г`,
      // `Ѓ\u0336` as written.
      letters = bares.filter((f) => LETTER.test(f));
      const forms = bares.flatMap((f) =>
        options.foldLiterals === true
          ? [f, f.toLowerCase(), f.toUpperCase()].filter((g) => [...g].length === 1).map(foldLookAlikes)
          : [f],
      );
      return `[${[...new Set(forms)].join("")}]`;
    }
    const bare = bares[0] as string;
    letters = LETTER.test(bare) ? [bare] : [];
    const folded = options.foldLiterals === true ? foldedLiteral(bare, caseInsensitive) : bare;
    return folded === written ? escaped : folded;
  };
  /** Whether a mark (`written`) sits on the letter before it and goes with its diacritics. */
  const dropsMark = (written: string): boolean =>
    foldAccents && !inClass && MARK.test(written) && letters.some((l) => bareLetter(l + written) === l);
  /**
   * A mark dropsMark drops (`re2` its RE2 form) as written before `next`: nothing, or an empty group
   * when a quantifier follows; after a letter whose cases read apart, the mark made optional (the
   * case the view reads as written keeps it).
   */
  const droppedMark = (re2: string, next: number): string => {
    if (letters.length > 1) return `(?:${re2}?)`;
    return /^[*+?{]/.test(pattern.slice(next)) ? "(?:)" : "";
  };
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === "\\") {
      const next = pattern[i + 1] ?? "";
      i += 1;
      let extra = "";
      const hexEscape = next === "u" || (next === "x" && foldAccents && /^[0-9A-Fa-f]{2}/.test(pattern.slice(i + 1)));
      if (!hexEscape) {
        letters = [];
        // A class escape is a member too (`\d` may start a range no more than `\p{L}` ends one).
        const braces = next === "p" || next === "P" ? (/^\{[^}]*\}/.exec(pattern.slice(i + 1))?.[0] ?? "") : "";
        if (inClass) extra = rangeMember(i + 1 + braces.length, escapedCodePoint(next)).extra;
      }
      if (next === "s") out += inClass ? JS_WHITESPACE : `[${JS_WHITESPACE}]`;
      else if (next === "S") {
        if (inClass) throw unsupported("\\S inside a character class");
        out += `[^${JS_WHITESPACE}]`;
      } else if (hexEscape) {
        const braced = next === "u" ? /^\{([0-9A-Fa-f]{1,6})\}/.exec(pattern.slice(i + 1)) : null;
        const plain = (next === "u" ? /^[0-9A-Fa-f]{4}/ : /^[0-9A-Fa-f]{2}/).exec(pattern.slice(i + 1));
        let hex = braced?.[1] ?? plain?.[0];
        if (hex === undefined) throw unsupported("a \\u escape without 4 hex digits or {hex}");
        i += (braced?.[0] ?? plain?.[0] ?? "").length;
        // JavaScript's u mode reads a high-surrogate `\uXXXX` followed by a low-surrogate `\uXXXX`
        // as one code point (`\uD83D\uDE00` is U+1F600); RE2 would read two lone surrogates, which
        // no astral character holds. A lone surrogate escape (or `\u{D83D}`) stays one in both.
        const low =
          next === "u" && braced === null ? /^\\u([Dd][C-Fc-f][0-9A-Fa-f]{2})/.exec(pattern.slice(i + 1)) : null;
        const high = Number.parseInt(hex, 16);
        if (low !== null && high >= 0xd800 && high <= 0xdbff) {
          hex = (0x10000 + ((high - 0xd800) << 10) + (Number.parseInt(low[1] as string, 16) - 0xdc00)).toString(16);
          i += low[0].length;
        }
        // A letter written as an escape is folded as if written out.
        const written = String.fromCodePoint(Number.parseInt(hex, 16));
        if (dropsMark(written)) {
          out += droppedMark(`\\x{${hex}}`, i + 1);
          continue;
        }
        out += literal(written, hex, i + 1);
      } else if (next === "c") throw unsupported("a \\c control escape");
      else if (next === "p" || next === "P") {
        const property = /^\{(?:(?:Script|sc|General_Category|gc)=)?([A-Za-z_]+)\}/.exec(pattern.slice(i + 1));
        if (property === null) throw unsupported(`a \\${next} escape RE2 does not read`);
        // JavaScript's /iu tests a character's case-folded form against the set (`\P{Ll}` matches
        // `a`, whose capital is in it); RE2 folds the class and then takes the complement, which
        // holds no cased letter, so a block rule would let them pass. A negated class of `\p{…}`
        // means the same in both and stays.
        if (next === "P" && options.caseInsensitive === true) {
          throw new PolicyPatternUnsafeError(
            ruleId,
            `\\P{…} in a caseInsensitive pattern, which RE2 reads as the complement of the case-folded class (no cased letter) where JavaScript's /iu matches every letter one of whose cases is in it; write the rule with caseInsensitive false`,
          );
        }
        out += `\\${next}{${property[1]}}`;
        i += property[0].length;
      } else out += `\\${next}`;
      out += extra;
      continue;
    }
    if (inClass) {
      if (c === "]") {
        inClass = false;
        out += c;
      } else if (c === "-" && range === 1) {
        range = 2;
        out += c;
      } else {
        // An astral character written out: both UTF-16 units as one member.
        const units = /^[\uD800-\uDBFF][\uDC00-\uDFFF]/.test(pattern.slice(i, i + 2)) ? 2 : 1;
        out += literal(pattern.slice(i, i + units), null, i + units);
        i += units - 1;
      }
      continue;
    }
    if (c === "[") {
      if (pattern[i + 1] === "]" || (pattern[i + 1] === "^" && pattern[i + 2] === "]")) {
        throw unsupported(`"${pattern.slice(i, i + (pattern[i + 1] === "^" ? 3 : 2))}"`);
      }
      inClass = true;
      negated = pattern[i + 1] === "^";
      range = 0;
      letters = [];
      out += c;
      if (pattern[i + 1] === "^") {
        out += "^";
        i += 1;
      }
      continue;
    }
    if (dropsMark(c)) {
      out += droppedMark(c, i + 1);
      continue;
    }
    if (c === ".") {
      letters = [];
      out += JS_DOT;
    } else out += literal(c, null, i + 1);
  }
  return out;
}
