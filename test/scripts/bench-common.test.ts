/**
 * scripts/bench-common.ts: the Markdown table the benchmarks print lines up in a terminal when a
 * cell holds wide characters (it padded cells by their length in UTF-16 units, so a row with
 * Chinese letters came out two columns per letter too wide), and a cell shown in ASCII is cut
 * between escapes, never inside one (`asciiCell`, bench-pii's unit column, cut `\uXXXX` escapes).
 */
import { describe, expect, it } from "vitest";
import { asciiCell, displayWidth, table } from "../../scripts/bench-common.ts";

describe("table", () => {
  it("pads cells by the columns they take, wide letters two each", () => {
    expect(
      table(
        ["shape", "n"],
        [
          ["张伟", "1"],
          ["ab", "22"],
        ],
      ),
    ).toBe(["| shape |  n |", "|-------|---:|", "| 张伟  |  1 |", "| ab    | 22 |"].join("\n"));
  });
});

describe("displayWidth", () => {
  it.each([
    ["ASCII", "abc", 3],
    ["Chinese", "张伟", 4],
    ["Hangul", "한국", 4],
    ["full-width", "ＡＢ", 4],
    ["a combining mark", "e\u0301", 1],
    ["a zero-width space", "a\u200bb", 2],
    ["Cyrillic", "иван", 4],
  ] as const)("%s", (_name, text, width) => {
    expect(displayWidth(text)).toBe(width);
  });
});

describe("asciiCell", () => {
  it("quotes and escapes what is not printable ASCII", () => {
    expect(asciiCell("张@例.", 40)).toBe('"\\u5f20@\\u4f8b."');
    expect(asciiCell("AA00\n> ", 40)).toBe('"AA00\\n> "');
  });

  it("cuts a long cell between escapes, within the width", () => {
    // `"a` then escapes of 6 characters: a cut at 37 fell inside the sixth.
    const cell = asciiCell(`a${"张".repeat(20)}`, 40);
    expect(cell).toBe(`"a${"\\u5f20".repeat(5)}...`);
    expect(cell.length).toBeLessThanOrEqual(40);
    expect(asciiCell(`${"x".repeat(35)}\n\n\n`, 40)).toBe(`"${"x".repeat(35)}...`);
  });
});
