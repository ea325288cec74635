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
 * Regular expressions come from an operator-signed manifest but run over attacker-chosen text, and
 * JavaScript's backtracking engine has no time limit. Two defences, both fail-closed:
 *  1. At compile time, a pattern is refused (POLICY_PATTERN_UNSAFE) when it has a backreference, a
 *     repeated group that itself contains a repetition (`(a+)+`, star height > 1), or a repeated
 *     group containing an alternation (`(a|ab)*`): the shapes that backtrack exponentially. Write
 *     `[ab]*` or a non-repeated `(?:foo|bar)` instead.
 *  2. Patterns that pass can still be polynomial (`\s*\s*x` on a run of spaces), so a pattern rule
 *     looks at most `maxPatternInputChars` characters (default 65,536 UTF-16 code units). A longer
 *     prompt is never truncated and matched partially: a `block` pattern rule treats it as a match
 *     (the request is blocked, the reason says why), an `allow` pattern rule as no match.
 *
 * Reasons name rule ids, rule kinds and numbers only; they never contain the prompt, the model
 * name asked for, or metadata values.
 */
import type { Manifest, RequestRule } from "../../manifests/schema.ts";
import { PolicyPatternUnsafeError, PolicyRequestInvalidError } from "./errors.ts";

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
  /** Longest prompt text (UTF-16 code units) a pattern rule evaluates. Default 65,536. */
  readonly maxPatternInputChars?: number;
}

export const DEFAULT_MAX_PATTERN_INPUT_CHARS = 65_536;

export interface CompiledRequestPolicy {
  evaluate(request: PolicyRequest): PolicyDecision;
}

type RuleMatcher = (request: PolicyRequest) => { matched: boolean; detail: string };

/** Compiles the manifest's rules once (regular expressions included); throws on an unsafe pattern. */
export function compileRequestPolicy(policy: RequestPolicy, options: CompileOptions = {}): CompiledRequestPolicy {
  const maxInput = options.maxPatternInputChars ?? DEFAULT_MAX_PATTERN_INPUT_CHARS;
  if (!Number.isSafeInteger(maxInput) || maxInput < 1) {
    throw new PolicyRequestInvalidError("maxPatternInputChars", "a positive integer");
  }
  const rules = policy.rules.map((rule) => ({
    id: rule.id,
    kind: rule.kind,
    action: rule.action,
    match: compileRule(rule, maxInput),
  }));
  const defaultAction = policy.defaultAction;

  return {
    evaluate(request: PolicyRequest): PolicyDecision {
      checkRequest(request);
      for (const rule of rules) {
        const { matched, detail } = rule.match(request);
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

/** One-shot form of `compileRequestPolicy(policy).evaluate(request)`; compile once in a server. */
export function evaluateRequestPolicy(policy: RequestPolicy, request: PolicyRequest): PolicyDecision {
  return compileRequestPolicy(policy).evaluate(request);
}

function compileRule(rule: RequestRule, maxInput: number): RuleMatcher {
  switch (rule.kind) {
    case "maxPromptTokens":
      return (r) => ({
        matched: r.estimatedTokens > rule.limit,
        detail: `estimated prompt tokens ${r.estimatedTokens} exceed the limit ${rule.limit}`,
      });
    case "pattern": {
      checkPatternSafety(rule.id, rule.pattern);
      // No `g` or `y` flag: `test` keeps no lastIndex state between requests.
      const regex = new RegExp(rule.pattern, rule.caseInsensitive ? "iu" : "u");
      return (r) => {
        if (r.text.length > maxInput) {
          return {
            matched: rule.action === "block",
            detail: `the prompt has ${r.text.length} characters, more than the ${maxInput} a pattern rule evaluates (treated as a match: fail-closed)`,
          };
        }
        return { matched: regex.test(r.text), detail: "the prompt matches the rule's pattern" };
      };
    }
    case "allowModels": {
      const models = new Set(rule.models);
      return (r) => ({
        matched: !models.has(r.model),
        detail: `the requested model is not one of the ${models.size} models the rule allows`,
      });
    }
    case "metadataEquals":
      return (r) => ({
        matched: Object.hasOwn(r.metadata, rule.key) && r.metadata[rule.key] === rule.value,
        detail: `metadata field "${rule.key}" equals the rule's value`,
      });
    case "requestKind": {
      const kinds = new Set<string>(rule.kinds);
      return (r) => ({ matched: kinds.has(r.kind), detail: `request kind "${r.kind}" is listed` });
    }
  }
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

interface GroupFrame {
  /** Contains a quantifier that can repeat (max > 1). */
  repeats: boolean;
  alternation: boolean;
}

/**
 * Structural scan of a Unicode-mode pattern (already known to compile) for the shapes that make a
 * backtracking engine exponential. Conservative: it may refuse a safe pattern, never the reverse
 * for the shapes listed in the module comment.
 */
export function checkPatternSafety(ruleId: string, pattern: string): void {
  const stack: GroupFrame[] = [{ repeats: false, alternation: false }];
  // The last atom, if a quantifier may follow it: its own repetition/alternation content.
  let last: { repeats: boolean; alternation: boolean } | null = null;
  let i = 0;
  const top = (): GroupFrame => stack[stack.length - 1] as GroupFrame;

  while (i < pattern.length) {
    const c = pattern[i] as string;
    if (c === "\\") {
      const next = pattern[i + 1] ?? "";
      if (/[1-9]/.test(next) || next === "k") throw new PolicyPatternUnsafeError(ruleId, "a backreference");
      if ((next === "p" || next === "P" || next === "u") && pattern[i + 2] === "{") {
        const end = pattern.indexOf("}", i + 3);
        i = end < 0 ? pattern.length : end + 1;
      } else {
        i += 2;
      }
      last = { repeats: false, alternation: false };
      continue;
    }
    if (c === "[") {
      i += 1;
      while (i < pattern.length && pattern[i] !== "]") i += pattern[i] === "\\" ? 2 : 1;
      i += 1;
      last = { repeats: false, alternation: false };
      continue;
    }
    if (c === "(") {
      stack.push({ repeats: false, alternation: false });
      i += 1;
      if (pattern[i] === "?") {
        // (?: (?= (?! (?<= (?<! (?<name>
        if (pattern[i + 1] === "<" && pattern[i + 2] !== "=" && pattern[i + 2] !== "!") {
          const end = pattern.indexOf(">", i);
          i = end < 0 ? pattern.length : end + 1;
        } else {
          i += pattern[i + 1] === "<" ? 3 : 2;
        }
      }
      last = null;
      continue;
    }
    if (c === ")") {
      const frame = stack.length > 1 ? (stack.pop() as GroupFrame) : top();
      const parent = top();
      parent.repeats ||= frame.repeats;
      parent.alternation ||= frame.alternation;
      last = { repeats: frame.repeats, alternation: frame.alternation };
      i += 1;
      continue;
    }
    if (c === "|") {
      top().alternation = true;
      last = null;
      i += 1;
      continue;
    }
    const quantifier = readQuantifier(pattern, i);
    if (quantifier !== null) {
      if (quantifier.max > 1 && last !== null) {
        if (last.repeats)
          throw new PolicyPatternUnsafeError(ruleId, "a repeated group that contains a repetition (nested quantifier)");
        if (last.alternation)
          throw new PolicyPatternUnsafeError(ruleId, "a repeated group that contains an alternation");
        top().repeats = true;
      }
      i = quantifier.end;
      if (pattern[i] === "?") i += 1; // lazy
      last = null;
      continue;
    }
    last = { repeats: false, alternation: false };
    i += 1;
  }
}

function readQuantifier(pattern: string, i: number): { max: number; end: number } | null {
  const c = pattern[i];
  if (c === "*" || c === "+") return { max: Number.POSITIVE_INFINITY, end: i + 1 };
  if (c === "?") return { max: 1, end: i + 1 };
  if (c === "{") {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i));
    if (m === null) return null;
    const max = m[2] === undefined ? Number(m[1]) : m[3] === "" ? Number.POSITIVE_INFINITY : Number(m[3]);
    return { max, end: i + m[0].length };
  }
  return null;
}
