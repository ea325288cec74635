/**
 * Duplicate member names in JSON text. JSON.parse keeps the last of two equal names, so where the
 * bytes are what was signed or hashed and the parsed object is what is then read, a second member
 * could say something other than the first while both are "in" the signed text; and in a file a
 * person reviews (a policy, a configuration), the reader may take the first while the program uses
 * the last (RFC 7493 §2.3: I-JSON objects MUST NOT have duplicate names). This finds the first
 * object, at any depth, that names a member twice (names compared after unescaping, as JSON.parse
 * compares them).
 */
import { isPlainFieldName } from "../manifests/issues.ts";

/** Where a member name appears a second time in one object. */
export interface DuplicateMember {
  /** The member name, unescaped. Not for printing unless it is known to be safe to show. */
  readonly name: string;
  /** Index in `text` of the opening quote of its second occurrence. */
  readonly index: number;
  /** The member's path from the top: the names and array indices of the values it is inside, then `name`. */
  readonly path: readonly (string | number)[];
}

/**
 * The index of the quote that closes the string whose opening quote is at `open`, in well-formed
 * JSON: the next quote behind an even number of backslashes (an odd number escapes it). indexOf
 * finds each candidate, so a long string value (a pasted document in a prompt) is skipped at the
 * speed of a native search; each backslash is counted once (a run ends at the quote after it).
 * Text that ends inside a string (not JSON) gives its length, so the scan ends there.
 */
function closingQuote(text: string, open: number): number {
  let end = text.indexOf('"', open + 1);
  for (;;) {
    if (end === -1) return text.length;
    let backslashes = 0;
    while (text[end - 1 - backslashes] === "\\") backslashes++;
    if (backslashes % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
}

/**
 * The first member name that appears twice in one object of `text`, or null. `text` must already
 * be well-formed JSON (call JSON.parse first): only strings and structural characters are read.
 * It runs on every request body the local proxy takes (client/proxy.ts, up to 4 MiB), so strings
 * are skipped with indexOf and a name is unescaped (JSON.parse) only when it holds a backslash:
 * without one, its text between the quotes is the name. `npm run bench:json` measures it.
 */
export function findDuplicateMember(text: string): DuplicateMember | null {
  // One entry per open container: the names seen so far for an object (null for an array), and
  // where inside it the reader is (the last member name, or the array index).
  const open: { names: Set<string> | null; at: string | number }[] = [];
  let expectName = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const end = closingQuote(text, i);
      const top = open.at(-1);
      if (expectName && top !== undefined && top.names !== null) {
        const raw = text.slice(i + 1, end);
        const name = raw.includes("\\") ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        if (top.names.has(name)) return { name, index: i, path: [...open.slice(0, -1).map((o) => o.at), name] };
        top.names.add(name);
        top.at = name;
        expectName = false;
      }
      i = end;
    } else if (c === "{") {
      open.push({ names: new Set(), at: "" });
      expectName = true;
    } else if (c === "[") {
      open.push({ names: null, at: 0 });
      expectName = false;
    } else if (c === "}" || c === "]") {
      open.pop();
      expectName = false;
    } else if (c === ",") {
      const top = open.at(-1);
      if (top !== undefined && top.names === null) top.at = (top.at as number) + 1;
      expectName = top?.names instanceof Set;
    }
  }
  return null;
}

/**
 * Member paths below which names are the document's data, not its fields (an object keyed by what
 * it holds: cloister chat --json's audit.opening), given by the caller that knows the document.
 * Each is matched wherever it occurs in a path, not only from the document's root: the document
 * refused may not have the shape the caller expects (an array around it, another object above it).
 */
export type NamesNotShownBelow = readonly (readonly (string | number)[])[];

/**
 * A member path as messages show it, dotted like zod paths (`attestation.trustSimulator`,
 * `keys.0.id`): a name that does not look like a field name (it may be a pasted secret) is shown by
 * its length only. A path that goes below one of `namesNotShownBelow`, at any depth, is shown up to
 * the first such one, as `a member inside` it, nothing of what is below: a plain name there may be
 * data (an opening's hex digits).
 */
export function describeMemberPath(
  path: readonly (string | number)[],
  namesNotShownBelow: NamesNotShownBelow = [],
): string {
  for (let start = 0; start < path.length; start++) {
    const holder = namesNotShownBelow.find(
      (above) => path.length > start + above.length && above.every((part, i) => path[start + i] === part),
    );
    if (holder !== undefined) return `a member inside ${describeMemberPath(path.slice(0, start + holder.length))}`;
  }
  return path
    .map((part) =>
      typeof part === "number" || isPlainFieldName(part)
        ? String(part)
        : `(a name of ${Array.from(part).length} characters)`,
    )
    .join(".");
}
