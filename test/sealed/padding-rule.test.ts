/**
 * docs/protocol.md, "Padding": Padmé rounds a length L with ⌊log₂ L⌋ = E up to a multiple of
 * 2^(E − ⌊log₂ E⌋ − 1), so only its leading one and the ⌊log₂ E⌋ + 1 bits after it show. Checked
 * against that sentence, computed here without the code's bit tricks.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { padme } from "../../sealed/padding.ts";

/** ⌊log₂ n⌋ for n ≥ 1, by counting. */
function floorLog2(n: number): number {
  let e = 0;
  while (2 ** (e + 1) <= n) e++;
  return e;
}

/** The bits between the leading one and the lowest set bit of n (n ≥ 1), both included. */
function significantBits(n: number): number {
  let low = 0;
  while (n % 2 ** (low + 1) === 0) low++;
  return floorLog2(n) - low + 1;
}

describe("Padmé as docs/protocol.md states it", () => {
  it("rounds L up to the next multiple of 2^(E − ⌊log₂ E⌋ − 1), keeping at most ⌊log₂ E⌋ + 2 bits", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 2 ** 31 - 1 }), (length) => {
        const e = floorLog2(length);
        const step = 2 ** (e - floorLog2(e) - 1);
        const padded = padme(length);
        expect(padded).toBe(Math.ceil(length / step) * step);
        expect(significantBits(padded)).toBeLessThanOrEqual(floorLog2(e) + 2);
      }),
    );
    // E = 9: steps of 32; E = 10: of 64; E = 16: of 2048.
    expect([padme(1000), padme(1100), padme(70_000)]).toEqual([1024, 1152, 71_680]);
  });
});
