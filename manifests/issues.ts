/**
 * One zod issue (from `safeParse(value, { reportInput: true })`) as "expected …, found …", for the
 * configuration files every party reads (manifests, client policies, the broker's configuration,
 * the host's API keys): zod's own "Invalid input: expected 1" does not say what was found. None of
 * these files holds a secret (key material lives in separate files), so the found value is shown,
 * cut to 80 characters.
 */
import type { z } from "zod";

/** "expected 1, found 2"; "expected array, found nothing" for a missing field; zod's text otherwise. */
export function issueText(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") return `expected no such field, found ${issue.keys.join(", ")}`;
  const message = issue.message.replace(/^Invalid input: /, "").replace(/, received \w+$/, "");
  if (!("input" in issue)) return message;
  return `${message}, found ${issue.input === undefined ? "nothing" : preview(issue.input)}`;
}

/** The issue's field path, dotted (`keys.0.policy`), or `root` for the top-level value. */
export function issuePath(issue: z.core.$ZodIssue, root: string): string {
  return issue.path.map(String).join(".") || root;
}

export function preview(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
