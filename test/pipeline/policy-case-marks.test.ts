/**
 * A caseInsensitive block rule's accent-folded form writes a letter whose cases the unmarked view
 * reads apart as a class of them (312b1b2e: `ѓ` as `[гѓ]`, since the view reads `ѓ` as `г` and `Ѓ`
 * as written). That change also stopped dropping the marks written after such a letter, so a rule
 * `ѓ\u0336x` read `[гѓ]\u0336x` where it had read `гx`, and a prompt adding one mark (`ѓ\u0303\u0336x`,
 * which the view reads `гx`) passed it, though it was blocked before. A mark one of the cases drops
 * is now optional after the class (`[гѓ](?:\u0336?)x`): the case read as written keeps it.
 */

import { describe, expect, it } from "vitest";
import { compileRequestPolicy, type RequestPolicy, toRe2Syntax } from "../../enclave/pipeline/policy.ts";
import type { RequestRule } from "../../manifests/schema.ts";

const PII_OFF: RequestPolicy["pii"] = { mode: "off", entities: [], reason: "policy unit tests only" };

function decide(pattern: string, text: string, caseInsensitive = true): string {
  const rule: RequestRule = { id: "r", kind: "pattern", action: "block", pattern, caseInsensitive };
  const policy: RequestPolicy = { rules: [rule], defaultAction: "allow", pii: PII_OFF };
  return compileRequestPolicy(policy).evaluate({ kind: "complete", model: "m", text, estimatedTokens: 1, metadata: {} })
    .decision;
}

describe("a mark after a letter whose cases the view reads apart, in a caseInsensitive block rule", () => {
  it.each([
    ["ѓ\u0336x", "ѓ\u0303\u0336x", "one more mark: the view reads гx"],
    ["ѓ\u0336x", "ѓ\u0336\u0301x", "one more mark after it"],
    ["ѓ\\u0336x", "ѓ\u0303\u0336x", "the mark written as an escape"],
    ["ѓ\u0336+x", "ѓ\u0303x", "a quantified mark"],
    ["Ѓ\u0336x", "ѓ\u0303\u0336x", "the capital written: its small letter reads г"],
    ["é|ѓ\u0336x", "ѓ\u0303\u0336x", "next to a rule that writes an accent"],
  ])("a rule %j blocks %j (%s)", (pattern, text) => {
    expect(new RegExp(pattern, "iu").test(text)).toBe(false);
    expect(decide(pattern, text)).toBe("block");
  });

  it("still blocks what the rule matches as written, each case", () => {
    for (const text of ["ѓ\u0336x", "Ѓ\u0336x", "Ѓ\u0336X"]) expect(decide("ѓ\u0336x", text)).toBe("block");
  });

  it("writes the mark optional after the class, and drops it after a letter read one way", () => {
    const bare = (pattern: string, caseInsensitive: boolean) =>
      toRe2Syntax("r", pattern, { foldAccents: true, caseInsensitive });
    expect(bare("ѓ\u0336x", true)).toBe("[гѓ](?:\u0336?)x");
    expect(bare("ѓ\\u0336+x", true)).toBe("[гѓ](?:\\x{0336}?)+x");
    expect(bare("ѓ\u0336x", false)).toBe("гx");
    expect(bare("é\u0336x", true)).toBe("ex");
  });
});
