/**
 * Duplicate member names in JSON text. JSON.parse keeps the last of two equal names, so where the
 * bytes are what was signed or hashed and the parsed object is what is then read, a second member
 * could say something other than the first while both are "in" the signed text. This finds the
 * first object, at any depth, that names a member twice (names compared after unescaping, as
 * JSON.parse compares them).
 */

/** Where a member name appears a second time in one object. */
export interface DuplicateMember {
  /** The member name, unescaped. Not for printing unless it is known to be safe to show. */
  readonly name: string;
  /** Index in `text` of the opening quote of its second occurrence. */
  readonly index: number;
}

/**
 * The first member name that appears twice in one object of `text`, or null. `text` must already
 * be well-formed JSON (call JSON.parse first): only strings and structural characters are read.
 */
export function findDuplicateMember(text: string): DuplicateMember | null {
  // One entry per open container: the names seen so far for an object, null for an array.
  const open: (Set<string> | null)[] = [];
  let expectName = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      const names = open.at(-1);
      if (expectName && names !== undefined && names !== null) {
        const name = JSON.parse(text.slice(i, end + 1)) as string;
        if (names.has(name)) return { name, index: i };
        names.add(name);
        expectName = false;
      }
      i = end;
    } else if (c === "{") {
      open.push(new Set());
      expectName = true;
    } else if (c === "[") {
      open.push(null);
      expectName = false;
    } else if (c === "}" || c === "]") {
      open.pop();
      expectName = false;
    } else if (c === ",") {
      expectName = open.at(-1) instanceof Set;
    }
  }
  return null;
}
