/**
 * The three strict UTC time checks, side by side: receipt and audit times (isCanonicalTime,
 * milliseconds), the CLI's --at (timeOption, seconds or milliseconds) and Intel's collateral times
 * (parseTdxTcbInfo's issueDate, whole seconds). Each takes its form and nothing else, and refuses a
 * time that does not exist in it rather than letting Date roll it over.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseTdxTcbInfo } from "../../attestation/tdx/collateral.ts";
import { timeOption } from "../../client/cli/time-option.ts";
import { isCanonicalTime } from "../../sealed/receipt.ts";

const TCB_INFO = readFileSync(
  new URL("../fixtures/attestation/tdx/collateral/tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json", import.meta.url),
  "utf8",
);
const ISSUE_DATE = '"issueDate":"2023-06-18T08:42:58Z"';

const checks = {
  receipt: (value: string) => isCanonicalTime(value),
  at: (value: string) => {
    try {
      timeOption("--at")(value);
      return true;
    } catch {
      return false;
    }
  },
  collateral: (value: string) => {
    try {
      parseTdxTcbInfo(TCB_INFO.replace(ISSUE_DATE, `"issueDate":${JSON.stringify(value)}`));
      return true;
    } catch {
      return false;
    }
  },
};

/** Which checks take each value: r = receipt (milliseconds), a = --at (either), c = collateral (seconds). */
const CASES: [string, "" | "r" | "a" | "c" | "ra" | "ac"][] = [
  // The forms themselves, a leap day that exists, and the first and last times of years 0000-9999.
  ["2024-02-29T23:59:59Z", "ac"],
  ["2024-02-29T23:59:59.999Z", "ra"],
  ["2024-02-29T12:00:00.000Z", "ra"],
  ["0000-01-01T00:00:00Z", "ac"],
  ["0000-01-01T00:00:00.000Z", "ra"],
  ["9999-12-31T23:59:59Z", "ac"],
  ["9999-12-31T23:59:59.999Z", "ra"],
  // Days and hours that do not exist: Date rolls them over.
  ["2023-02-29T00:00:00Z", ""],
  ["2023-02-29T00:00:00.000Z", ""],
  ["2026-02-30T12:00:00Z", ""],
  ["2026-02-30T12:00:00.000Z", ""],
  ["2026-04-31T00:00:00Z", ""],
  ["2026-13-01T00:00:00.000Z", ""],
  ["2026-01-00T00:00:00Z", ""],
  ["2026-01-01T24:00:00Z", ""],
  ["2026-01-01T24:00:00.000Z", ""],
  ["2026-01-01T23:60:00Z", ""],
  ["2026-01-01T23:59:60Z", ""],
  ["2026-01-01T23:59:60.000Z", ""],
  // Fractional digits other than three.
  ["2026-01-01T00:00:00.Z", ""],
  ["2026-01-01T00:00:00.5Z", ""],
  ["2026-01-01T00:00:00.12Z", ""],
  ["2026-01-01T00:00:00.1234Z", ""],
  ["2026-01-01T00:00:00.123456Z", ""],
  // Offsets, a missing or lower-case Z, other separators, other lengths of year.
  ["2026-01-01T00:00:00+00:00", ""],
  ["2026-01-01T00:00:00.000+00:00", ""],
  ["2026-01-01T01:00:00+01:00", ""],
  ["2026-01-01T00:00:00-05:00", ""],
  ["2026-01-01T00:00:00", ""],
  ["2026-01-01T00:00:00.000", ""],
  ["2026-01-01T00:00:00z", ""],
  ["2026-01-01t00:00:00Z", ""],
  ["2026-01-01 00:00:00Z", ""],
  ["2026-01-01T00:00Z", ""],
  ["2026-01-01", ""],
  ["+010000-01-01T00:00:00.000Z", ""],
  ["-000001-01-01T00:00:00.000Z", ""],
  [" 2026-01-01T00:00:00.000Z", ""],
  ["2026-01-01T00:00:00.000Z\n", ""],
  ["2026-01-01T00:00:00Z\n", ""],
  ["1767225600000", ""],
  ["", ""],
];

describe("strict UTC times", () => {
  for (const [name, check] of Object.entries(checks)) {
    const letter = name[0]!;
    it(`${name} takes its form only, and only times that exist`, () => {
      for (const [value, takers] of CASES) {
        expect(check(value), JSON.stringify(value)).toBe(takers.includes(letter));
      }
    });
  }

  it("reads an accepted time as that instant", () => {
    expect(timeOption("--at")("0000-01-01T00:00:00Z").getTime()).toBe(-62_167_219_200_000);
    expect(timeOption("--at")("9999-12-31T23:59:59.999Z").toISOString()).toBe("9999-12-31T23:59:59.999Z");
    const info = parseTdxTcbInfo(TCB_INFO.replace(ISSUE_DATE, '"issueDate":"2024-02-29T23:59:59Z"'));
    expect(info.issueDate.toISOString()).toBe("2024-02-29T23:59:59.000Z");
  });

  it("refuses what is not a string", () => {
    for (const value of [5, null, undefined, new Date(0), {}]) expect(isCanonicalTime(value)).toBe(false);
    expect(() => parseTdxTcbInfo(TCB_INFO.replace(ISSUE_DATE, '"issueDate":1687077778'))).toThrow(
      "TDX TCB info: issueDate: expected an ISO-8601 UTC time to the second (YYYY-MM-DDTHH:MM:SSZ), found 1687077778",
    );
  });
});
