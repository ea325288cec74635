/**
 * docs/protocol.md's list of the sealed protocol's error codes against `SealedErrorCode`
 * (sealed/errors.ts): the page names every code the type has, and no other.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.ts";

const read = (path: string) => readFileSync(join(REPO_ROOT, path), "utf8");

/** The members of `export type SealedErrorCode = "A" | "B" | …;`. */
function sourceCodes(): string[] {
  const match = /export type SealedErrorCode =([^;]+);/.exec(read("sealed/errors.ts"));
  if (match === null) throw new Error("sealed/errors.ts: expected `export type SealedErrorCode = …;`, found none");
  return [...(match[1] as string).matchAll(/"([A-Z_]+)"/g)].map((m) => m[1] as string);
}

/** The codes in backticks in the section `## Error codes (\`sealed/errors.ts\`)`, up to the next heading. */
function documentedCodes(): string[] {
  const markdown = read("docs/protocol.md");
  const start = markdown.indexOf("## Error codes (`sealed/errors.ts`)");
  if (start < 0)
    throw new Error("docs/protocol.md: expected a section `## Error codes (`sealed/errors.ts`)`, found none");
  const body = markdown.slice(start).split("\n").slice(1);
  const end = body.findIndex((line) => line.startsWith("#"));
  const section = (end < 0 ? body : body.slice(0, end)).join("\n");
  return [...section.matchAll(/`([A-Z][A-Z_]+)`/g)].map((m) => m[1] as string);
}

describe("docs/protocol.md error codes", () => {
  it("lists exactly the codes of SealedErrorCode, each once", () => {
    const source = sourceCodes();
    expect(source.length).toBeGreaterThan(15);
    const documented = documentedCodes();
    expect(new Set(documented).size).toBe(documented.length);
    expect([...documented].sort()).toEqual([...source].sort());
  });
});
