/**
 * constantTimeEqual, which compares REPORT_DATA, nonces and the vTPM qualifying data: a difference
 * in any one byte, the first and the last included, or in length makes two values unequal.
 */
import { describe, expect, it } from "vitest";
import { constantTimeEqual } from "../../attestation/crypto.ts";

describe("constantTimeEqual", () => {
  const value = Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 5) & 0xff);

  it("holds for equal bytes, including empty ones", () => {
    expect(constantTimeEqual(value, Uint8Array.from(value))).toBe(true);
    expect(constantTimeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
  });

  it.each([0, 1, 31, 32, 62, 63])("fails when only byte %i differs (by one bit)", (i) => {
    const other = Uint8Array.from(value);
    other[i] = (other[i] as number) ^ 0x80;
    expect(constantTimeEqual(value, other)).toBe(false);
    expect(constantTimeEqual(other, value)).toBe(false);
  });

  it("fails for different lengths, even when one is a prefix of the other", () => {
    expect(constantTimeEqual(value, value.subarray(0, 63))).toBe(false);
    expect(constantTimeEqual(value.subarray(0, 63), value)).toBe(false);
    expect(constantTimeEqual(new Uint8Array(0), value)).toBe(false);
  });
});
