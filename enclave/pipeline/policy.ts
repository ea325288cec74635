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
 * they run on RE2 (re2js), which matches in time linear in the text whatever the pattern: RE2
 * syntax, so no backreferences and no lookarounds (the manifest schema refuses those patterns;
 * POLICY_PATTERN_UNSAFE if one reaches the compiler). A pattern rule still looks at most
 * `maxPatternInputChars` characters (default 262,144 UTF-16 code units); a longer prompt is never
 * truncated and matched partially: a `block` pattern rule treats it as a match (the request is
 * blocked, the reason says why), an `allow` pattern rule as no match.
 *
 * A pattern sees the prompt as sent and its normalized form (normalize.ts: NFKC, invisible
 * characters removed, dashes and digits of every script in ASCII), so `ｂｏｍｂ` or `bo\u200bmb`
 * does not pass a `bomb` block rule: a `block` rule matches when either form matches, an `allow`
 * rule only when both do.
 *
 * Reasons name rule ids, rule kinds and numbers only; they never contain the prompt, the model
 * name asked for, or metadata values.
 */
import { RE2JS } from "re2js";
import type { Manifest, RequestRule } from "../../manifests/schema.ts";
import { PolicyPatternUnsafeError, PolicyRequestInvalidError } from "./errors.ts";
import { normalizeForDetection } from "./normalize.ts";

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
  /** Longest prompt text (UTF-16 code units) a pattern rule evaluates. Default 262,144. */
  readonly maxPatternInputChars?: number;
}

export const DEFAULT_MAX_PATTERN_INPUT_CHARS = 262_144;

export interface CompiledRequestPolicy {
  evaluate(request: PolicyRequest): PolicyDecision;
}

/** The request and, computed once per request when a pattern rule asks for it, its normalized text. */
interface RuleInput {
  readonly request: PolicyRequest;
  normalizedText(): string;
}

type RuleMatcher = (input: RuleInput) => { matched: boolean; detail: string };

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
      let normalized: string | undefined;
      const input: RuleInput = {
        request,
        normalizedText: () => {
          normalized ??= normalizeForDetection(request.text);
          return normalized;
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

/** One-shot form of `compileRequestPolicy(policy).evaluate(request)`; compile once in a server. */
export function evaluateRequestPolicy(policy: RequestPolicy, request: PolicyRequest): PolicyDecision {
  return compileRequestPolicy(policy).evaluate(request);
}

function compileRule(rule: RequestRule, maxInput: number): RuleMatcher {
  switch (rule.kind) {
    case "maxPromptTokens":
      return ({ request: r }) => ({
        matched: r.estimatedTokens > rule.limit,
        detail: `estimated prompt tokens ${r.estimatedTokens} exceed the limit ${rule.limit}`,
      });
    case "pattern": {
      const regex = compilePattern(rule.id, rule.pattern, rule.caseInsensitive);
      const test = (text: string) => regex.matcher(text).find();
      return (input) => {
        const text = input.request.text;
        if (text.length > maxInput) {
          return {
            matched: rule.action === "block",
            detail: `the prompt has ${text.length} characters, more than the ${maxInput} a pattern rule evaluates (treated as a match: fail-closed)`,
          };
        }
        const normalized = input.normalizedText();
        const matched =
          rule.action === "block"
            ? test(text) || (normalized !== text && test(normalized))
            : test(text) && (normalized === text || test(normalized));
        return { matched, detail: "the prompt matches the rule's pattern" };
      };
    }
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
export function compilePattern(ruleId: string, pattern: string, caseInsensitive: boolean): RE2JS {
  try {
    return RE2JS.compile(toRe2Syntax(pattern), caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0);
  } catch (error) {
    throw new PolicyPatternUnsafeError(ruleId, `a pattern RE2 refuses: ${(error as Error).message}`);
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

/**
 * The manifest's patterns are written as JavaScript Unicode-mode expressions (the schema checks they
 * parse as one); RE2 names script and category properties without the `Script=` / `sc=` /
 * `General_Category=` / `gc=` prefix JavaScript requires. An escaped backslash is kept as it is.
 */
function toRe2Syntax(pattern: string): string {
  return pattern.replace(
    /\\\\|\\([pP])\{(?:Script|sc|General_Category|gc)=([A-Za-z_]+)\}/g,
    (match, p: string | undefined, name: string | undefined) => (p === undefined ? match : `\\${p}{${name}}`),
  );
}
