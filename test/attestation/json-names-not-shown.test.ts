/**
 * parseJsonText's refusal of a member named twice names its path (describeMemberPath: a plain name as
 * written), unless the caller says that below some path the member names are the document's data, not
 * its fields (audit.opening of cloister chat --json: an object there is keyed by whatever it holds,
 * an opening's hex digits read as a plain name): there the refusal says only which member holds it.
 * Said by the path, not by matching the message's wording.
 */
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { describeMemberPath } from "../../attestation/json-duplicates.ts";
import { DuplicateMemberError, parseJsonText } from "../../attestation/json-text.ts";

const OPENING = [["audit", "opening"]] as const;
const NAME = `f${"0a".repeat(15)}`;
const TWICE = (index: number) =>
  ` appears twice in one object (the second at position ${index}): expected each member once (JSON.parse would use the last while a reader sees the first); remove one`;

function refusal(text: string, namesNotShownBelow?: typeof OPENING): DuplicateMemberError {
  try {
    parseJsonText(text, namesNotShownBelow === undefined ? {} : { namesNotShownBelow });
  } catch (error) {
    expect(error).toBeInstanceOf(DuplicateMemberError);
    return error as DuplicateMemberError;
  }
  throw new Error("expected a DuplicateMemberError");
}

describe("parseJsonText: member names not shown below a path the caller gives", () => {
  it.each([
    ["an object's own member", `{"audit":{"opening":{"${NAME}":1,"${NAME}":2}}}`],
    ["deeper, in an array", `{"audit":{"opening":[0,{"x":{"${NAME}":1,"${NAME}":2}}]}}`],
    ["a name of any shape", `{"audit":{"opening":{"a b ${NAME}":1,"a b ${NAME}":2}}}`],
  ])("%s: the refusal names the member that holds it, nothing below", (_what, text) => {
    const error = refusal(text, OPENING);
    const second = text.lastIndexOf(`"${text.includes("a b") ? "a b " : ""}${NAME}"`);
    expect(error.message).toBe(`a member inside audit.opening${TWICE(second)}`);
    expect(inspect(error, { depth: 5 })).not.toContain(NAME);
  });

  it.each([
    ["a document whose root is an array", `[{"audit":{"opening":{"${NAME}":1,"${NAME}":2}}}]`, "0.audit.opening"],
    ["a document that nests it deeper", `{"x":[{"audit":{"opening":{"${NAME}":1,"${NAME}":2}}}]}`, "x.0.audit.opening"],
    [
      "an opening inside an opening",
      `{"audit":{"opening":{"a":{"audit":{"opening":{"${NAME}":1,"${NAME}":2}}}}}}`,
      "audit.opening",
    ],
  ])("%s: hidden wherever the path meets it, not only from the root", (_what, text, holder) => {
    const error = refusal(text, OPENING);
    expect(error.message).toBe(`a member inside ${holder}${TWICE(text.lastIndexOf(`"${NAME}"`))}`);
    expect(inspect(error, { depth: 5 })).not.toContain(NAME);
  });

  it("names outside it, and the path's own name, as written", () => {
    const beside = `{"audit":{"opening":{},"requestIdHash":1,"requestIdHash":2}}`;
    expect(refusal(beside, OPENING).message).toBe(`audit.requestIdHash${TWICE(beside.lastIndexOf('"requestIdHash"'))}`);
    const itself = `{"audit":{"opening":1,"opening":2}}`;
    expect(refusal(itself, OPENING).message).toBe(`audit.opening${TWICE(itself.lastIndexOf('"opening"'))}`);
    // A path that only starts alike is not below it.
    const alike = `{"audit":{"openings":{"${NAME}":1,"${NAME}":2}}}`;
    expect(refusal(alike, OPENING).message).toBe(`audit.openings.${NAME}${TWICE(alike.lastIndexOf(`"${NAME}"`))}`);
  });

  it("without such paths every plain name is shown, as before", () => {
    const text = `{"audit":{"opening":{"${NAME}":1,"${NAME}":2}}}`;
    expect(refusal(text).message).toBe(`audit.opening.${NAME}${TWICE(text.lastIndexOf(`"${NAME}"`))}`);
    expect(describeMemberPath(["audit", "opening", NAME])).toBe(`audit.opening.${NAME}`);
    expect(describeMemberPath(["audit", "opening", NAME], OPENING)).toBe("a member inside audit.opening");
  });
});
