/**
 * Zod issues as "FIELD: expected …, found …", the one formatter of every file or body a party
 * checks with zod: client policies, attestation policies, the broker's configuration, the host's
 * API keys, the enclave's request bodies, and (with the value itself, a public file) manifests.
 * zod's own messages leave out what was found ("Too big: expected number to be <=255") or what was
 * expected ("Invalid input"); here the expected part is built from the issue's own fields (a message
 * the schema wrote itself, "expected …", is kept), and the found value is looked up in the parsed
 * input by the issue's path and described by its kind and size only (a private JWK, a raw API key or
 * a prompt put in the wrong field must not be printed), except numbers and booleans, which are
 * shown. Parse without `reportInput`, so the error kept as a cause holds no input either.
 */
import type { z } from "zod";
import { stringifyJsonVisibly } from "../attestation/untrusted-text.ts";

type Issue = z.core.$ZodIssue;

/** One issue explained: where, what was expected there, and what was found. */
export interface IssueExplanation {
  /**
   * The path of the value at fault: the issue's own, or, when a value matched the type of exactly
   * one alternative of a union, the path of the field inside it that failed.
   */
  readonly path: readonly PropertyKey[];
  /** "expected …". */
  readonly expected: string;
  /** The value found (a record key the schema refused, for such an issue); for public files only. */
  readonly value: unknown;
  /** The value found, described without printing a string: "1000", "nothing", "a string of 3 characters". */
  readonly found: string;
}

/** Explains `issue`, found when parsing `input`; `prefix`: the path of the value the issue is about inside `input`. */
export function explainIssue(issue: Issue, input: unknown, prefix: readonly PropertyKey[] = []): IssueExplanation {
  const path = [...prefix, ...issue.path];
  if (issue.code === "unrecognized_keys") {
    return {
      path,
      expected: "expected no such field",
      value: issue.keys,
      found: fieldNames(issue.keys) ?? `${issue.keys.length} (names not shown: not plain identifiers)`,
    };
  }
  if (issue.code === "invalid_key") {
    // zod names the refused key as the last element of the path; the record is the rest.
    const key = String(path.at(-1));
    const inner = issue.issues[0] as Issue | undefined;
    const wanted = inner === undefined ? "another key" : `keys that are ${withoutExpected(expectedOf(inner))}`;
    return { path: path.slice(0, -1), expected: `expected ${wanted}`, value: key, found: describeKey(key) };
  }
  const value = valueAt(input, path);
  if (issue.code === "invalid_union" && value !== undefined) {
    const inner = fittingAlternative(issue)?.[0];
    if (inner !== undefined) return explainIssue(inner, input, path);
  }
  // A value outside an enum, described by its kind and size only, is said to be none of the names.
  const outside = issue.code === "invalid_value" && issue.values.length > 1 && typeof value === "string";
  return {
    path,
    expected: expectedOf(issue),
    value,
    found: `${describeValue(value)}${outside ? " that is none of them" : ""}`,
  };
}

/**
 * "FIELD: expected …, found …"; the path dotted (`keys.0.policy`), `root` for the value itself.
 * `prefix`: as for explainIssue (the path, shown too, of the value the issue is about in `input`).
 */
export function formatIssue(
  issue: Issue,
  input: unknown,
  options: {
    readonly root: string;
    readonly prefix?: readonly PropertyKey[];
    /** The fields the input may hold (fieldPaths), so that an unknown one is told where it belongs. */
    readonly known?: readonly string[];
  },
): string {
  const dotted = (path: readonly PropertyKey[]) => path.map(String).join(".") || options.root;
  if (issue.code === "unrecognized_keys") {
    const path = [...(options.prefix ?? []), ...issue.path];
    return describeUnknownFields(issue.keys, path, input, dotted, options.known).join("; ");
  }
  const e = explainIssue(issue, input, options.prefix);
  return `${dotted(e.path)}: ${e.expected}, found ${e.found}`;
}

/**
 * Unknown fields `keys` of the object at `path` in `input`, one problem each, by its own path
 * (`freshness.typo: expected no such field, found 5`) and its value's kind and size; keys that are
 * no plain field names (a pasted secret?) are counted on the object's path, never shown. `pathText`:
 * how the caller writes a path (dotted, or the attestation policy's `allowedVmpls[0]`). `known`: the
 * dotted paths of the fields the input may hold (fieldPaths); a key that is the name of a field one
 * level down is said to belong there (`trustSimulator: expected no such field here (it belongs in
 * attestation.trustSimulator), found false`).
 */
export function describeUnknownFields(
  keys: readonly string[],
  path: readonly PropertyKey[],
  input: unknown,
  pathText: (path: readonly PropertyKey[]) => string,
  known: readonly string[] = [],
): string[] {
  const lines = keys.filter(isPlainFieldName).map((key) => {
    const found = describeValue(valueAt(input, [...path, key]));
    const below = belowOf(known, path, key).map((p) => pathText(p));
    const here = below.length === 0 ? "" : ` here (it belongs in ${below.join(" or ")})`;
    return `${pathText([...path, key])}: expected no such field${here}, found ${found}`;
  });
  const hidden = keys.length - lines.length;
  if (hidden > 0) {
    const fields = `${hidden} field${hidden === 1 ? "" : "s"}`;
    lines.push(`${pathText(path)}: expected no such field, found ${fields} (names not shown: not plain identifiers)`);
  }
  return lines;
}

/**
 * The dotted path of every field of an object schema and, through `nullable` and `optional`, of its
 * object members, each under `prefix` (a path written as formatIssue writes it: `attestation.snp`).
 * Unions are not entered: their forms' fields (a skip's `reason`) belong to no one place.
 */
export function fieldPaths(schema: z.ZodType, prefix = ""): string[] {
  let def = schema._zod.def as { type: string; innerType?: z.ZodType; shape?: Record<string, z.ZodType> };
  while ((def.type === "nullable" || def.type === "optional") && def.innerType !== undefined) {
    def = def.innerType._zod.def as typeof def;
  }
  if (def.type !== "object" || def.shape === undefined) return [];
  return Object.entries(def.shape).flatMap(([name, member]) => {
    const path = prefix === "" ? name : `${prefix}.${name}`;
    return [path, ...fieldPaths(member, path)];
  });
}

/** The paths of `known` that are `path`, one field, then `key`: where a field `key` misplaced at `path` belongs. */
function belowOf(known: readonly string[], path: readonly PropertyKey[], key: string): PropertyKey[][] {
  const depth = path.length + 2;
  const at = path.map(String).join(".");
  return known
    .map((p) => p.split("."))
    .filter((p) => p.length === depth && p.at(-1) === key && p.slice(0, -2).join(".") === at);
}

/**
 * The issues of the one alternative of a union that the value was meant for, so that a message
 * points at the wrong field inside it rather than at the union: the alternative whose type the value
 * has, or, when several have it (objects of different fields), the one whose fields it has (no field
 * unknown to it). Undefined when no single one fits: the union is then described as a whole.
 */
export function fittingAlternative(issue: z.core.$ZodIssueInvalidUnion): readonly Issue[] | undefined {
  const typeMatched = issue.errors.filter((branch) => !branch.some((i) => i.path.length === 0 && wrongType(i)));
  if (typeMatched.length === 1) return typeMatched[0];
  const fieldsMatched = typeMatched.filter(
    (branch) => !branch.some((i) => i.path.length === 0 && i.code === "unrecognized_keys"),
  );
  return fieldsMatched.length === 1 ? fieldsMatched[0] : undefined;
}

/**
 * "expected A, B or C": how a schema words a union's alternatives (`z.union([...], { error })`), so
 * that a value fitting none is told the forms allowed rather than the first problem of each.
 */
export function expectedOneOf(forms: readonly [string, string, ...string[]]): string {
  return `expected ${forms.slice(0, -1).join(", ")} or ${forms.at(-1)}`;
}

/** Whether the issue says the value is not of the schema's type at all (as opposed to failing a check). */
function wrongType(issue: Issue): boolean {
  return issue.code === "invalid_type" || issue.code === "invalid_value" || issue.code === "invalid_union";
}

/** zod's own messages; any other was written by the schema ("expected …") and is kept as it is. */
const ZOD_MESSAGE = /^(?:Invalid|Too big|Too small|Unrecognized key)/;

/** What the issue's check expected, as "expected …". */
function expectedOf(issue: Issue): string {
  if (!ZOD_MESSAGE.test(issue.message)) return issue.message;
  switch (issue.code) {
    case "invalid_type":
      return `expected ${issue.expected === "record" ? "object" : issue.expected}`;
    case "invalid_value":
      return issue.values.length === 1
        ? `expected ${literal(issue.values[0])}`
        : `expected one of ${issue.values.map(literal).join(", ")}`;
    case "too_big":
    case "too_small":
      return expectedSize(issue);
    case "not_multiple_of":
      return `expected a multiple of ${String(issue.divisor)}`;
    case "invalid_format":
      return expectedFormat(issue);
    case "invalid_union": {
      if (issue.errors.length === 0) {
        // A discriminated union whose discriminator matched no option (zod puts them on the issue).
        const options = (issue as { options?: unknown }).options;
        return Array.isArray(options) ? `expected one of ${options.map(literal).join(", ")}` : "expected another value";
      }
      // A union the schema did not word: each alternative by its own first problem (a schema's
      // unions are worded with expectedOneOf; this is the fallback, never zod's text).
      const alternatives = issue.errors.map((branch) => {
        const first = branch[0];
        if (first === undefined) return "another value";
        if (first.code === "unrecognized_keys" && first.path.length === 0) {
          const names = fieldNames(first.keys);
          const plural = first.keys.length === 1 ? "" : "s";
          return names === null ? "an object with other fields" : `an object without the field${plural} ${names}`;
        }
        return withoutExpected(expectedOf(first));
      });
      return `expected ${[...new Set(alternatives)].join(" or ")}`;
    }
    case "custom":
      // A refinement with no message of its own: zod says only "Invalid input".
      return "expected a valid value";
    default:
      return `expected ${issue.message.replace(/^Invalid input: /, "").replace(/^expected /, "")}`;
  }
}

function expectedSize(issue: z.core.$ZodIssueTooBig | z.core.$ZodIssueTooSmall): string {
  const big = issue.code === "too_big";
  const limit = String(big ? issue.maximum : issue.minimum);
  const inclusive = issue.inclusive !== false;
  if (issue.origin === "number" || issue.origin === "int" || issue.origin === "bigint") {
    return `expected a number ${big ? (inclusive ? "<=" : "<") : inclusive ? ">=" : ">"} ${limit}`;
  }
  const amount =
    issue.exact === true
      ? `exactly ${limit}`
      : big
        ? `${inclusive ? "at most" : "fewer than"} ${limit}`
        : `${inclusive ? "at least" : "more than"} ${limit}`;
  const plural = limit === "1" ? "" : "s";
  if (issue.origin === "string") return `expected a string of ${amount} character${plural}`;
  if (issue.origin === "array") return `expected an array of ${amount} item${plural}`;
  if (issue.origin === "set") return `expected a set of ${amount} item${plural}`;
  return `expected ${String(issue.origin)} ${big ? "<=" : ">="} ${limit}`;
}

function expectedFormat(issue: z.core.$ZodIssueInvalidStringFormat): string {
  const { format } = issue;
  if (format === "regex" && issue.pattern !== undefined) return `expected a string matching ${issue.pattern}`;
  if (format === "starts_with")
    return `expected a string starting with ${literal((issue as { prefix?: unknown }).prefix)}`;
  if (format === "ends_with") return `expected a string ending with ${literal((issue as { suffix?: unknown }).suffix)}`;
  if (format === "includes")
    return `expected a string containing ${literal((issue as { includes?: unknown }).includes)}`;
  return `expected a string in ${format} format`;
}

/** A value the schema names (a literal, an enum option): as JSON for strings, as is otherwise. */
function literal(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

function withoutExpected(text: string): string {
  return text.replace(/^expected /, "");
}

/** The value at `path` in `input`, or undefined when there is none. */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** A value's kind and size, never its text (numbers and booleans excepted). */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "string") return `a string of ${value.length} character${value.length === 1 ? "" : "s"}`;
  if (Array.isArray(value)) {
    return value.length === 0 ? "an empty array" : `an array of ${value.length} item${value.length === 1 ? "" : "s"}`;
  }
  if (typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 0) return "an empty object";
    const names = fieldNames(keys);
    return names === null
      ? `an object of ${keys.length} field${keys.length === 1 ? "" : "s"} (names not shown: not plain identifiers)`
      : `an object with keys ${names}`;
  }
  return typeof value;
}

/** A record key: shown when it is a short word (a field name, an index), else by its length. */
function describeKey(key: string): string {
  return /^\w{1,32}$/.test(key) ? `the key ${JSON.stringify(key)}` : `a key of ${key.length} characters`;
}

/**
 * The value itself, as JSON cut to 80 characters: for public files only (the manifest). Its
 * invisible characters (U+202E and the like, which JSON.stringify leaves in) are \u escapes: the
 * message reaches a terminal (stringifyJsonVisibly).
 */
export function preview(value: unknown): string {
  let text: string;
  try {
    // As a member, so that a value JSON has no text for (a function) is told apart: `{}`.
    const member = stringifyJsonVisibly({ v: value });
    text = member === "{}" ? String(value) : member.slice('{"v":'.length, -1);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** A key that looks like a field name, so it may be shown (any other key may be a pasted secret). */
export function isPlainFieldName(key: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]{0,31}$/.test(key);
}

/** A short all-digit key (a PCR index such as azure.pcrs' "7"): too short to hold a secret, so it may be shown. */
const SHORT_DIGIT_KEY = /^[0-9]{1,3}$/;

/**
 * Field names as written when they look like field names (a typo of a known one is the usual
 * mistake) or are short digit strings, those quoted as in JSON so that they do not read as a
 * count; null otherwise, since a key used as a field name would be printed.
 */
function fieldNames(keys: readonly string[]): string | null {
  if (!keys.every((key) => isPlainFieldName(key) || SHORT_DIGIT_KEY.test(key))) return null;
  const shown = keys.slice(0, 8).map((key) => (SHORT_DIGIT_KEY.test(key) ? JSON.stringify(key) : key));
  return shown.join(", ") + (keys.length > 8 ? `, … (${keys.length} in all)` : "");
}
