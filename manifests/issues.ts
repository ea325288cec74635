/**
 * One zod issue as "expected …, found …", for the configuration files every party reads (client
 * policies, the broker's configuration, the host's API keys; manifests show the value itself, see
 * schema.ts): zod's own "Invalid input: expected 1" does not say what was found. The found value is
 * looked up in the parsed input by the issue's path and described by its kind and size only (a
 * private JWK or a raw API key put in the wrong field must not be printed), except numbers and
 * booleans, which are shown. Parse without `reportInput`, so the error kept as a cause holds no
 * input either.
 */
import type { z } from "zod";

/** "expected 1, found 2"; "expected array, found nothing"; "expected string, found an object with keys kty, k". */
export function issueText(issue: z.core.$ZodIssue, input: unknown): string {
  if (issue.code === "unrecognized_keys") {
    return `expected no such field, found ${fieldNames(issue.keys) ?? `${issue.keys.length} (names not shown: not plain identifiers)`}`;
  }
  const message = issue.message.replace(/^Invalid input: /, "").replace(/, received \w+$/, "");
  return `${message}, found ${describeValue(valueAt(input, issue.path))}`;
}

/** The issue's field path, dotted (`keys.0.policy`), or `root` for the top-level value. */
export function issuePath(issue: z.core.$ZodIssue, root: string): string {
  return issue.path.map(String).join(".") || root;
}

/** The value at `path` in `input`, or undefined when there is none. */
export function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** A value's kind and size, never its text (numbers and booleans excepted). */
function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "string") return `a string of ${value.length} characters`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
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

/** The value itself, as JSON cut to 80 characters: for public files only (the manifest). */
export function preview(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Field names as written when they look like field names (a typo of a known one is the usual
 * mistake); null otherwise, since a key used as a field name would be printed.
 */
function fieldNames(keys: readonly string[]): string | null {
  if (!keys.every((k) => /^[A-Za-z_][A-Za-z0-9_]{0,31}$/.test(k))) return null;
  return keys.slice(0, 8).join(", ") + (keys.length > 8 ? `, … (${keys.length} in all)` : "");
}
