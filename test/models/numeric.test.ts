import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dequantizeQ8_0, f16BitsToF32, f32ToF16Bits, Mulberry32, quantizeQ8_0 } from "../../models/numeric.ts";

describe("half precision", () => {
  it("encodes known values bit-exactly", () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.5, 0x3800],
      [65504, 0x7bff],
      [65520, 0x7c00], // rounds up to infinity
      [1e6, 0x7c00],
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // halfway to zero: ties to even
      [3 * 2 ** -25, 0x0002], // halfway between 1 and 2 subnormal steps: ties to even
      [1 + 2 ** -11, 0x3c00], // halfway: ties to even (down)
      [1 + 3 * 2 ** -11, 0x3c02], // halfway: ties to even (up)
      [Number.POSITIVE_INFINITY, 0x7c00],
    ];
    for (const [v, bits] of cases) expect(f32ToF16Bits(v), String(v)).toBe(bits);
    expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(Number.NaN)))).toBe(true);
  });

  it("round-trips every finite half value", () => {
    const mismatches: number[] = [];
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) === 0x7c00) continue;
      if (f32ToF16Bits(f16BitsToF32(bits)) !== bits) mismatches.push(bits);
    }
    expect(mismatches).toEqual([]);
  });

  it("rounds to the nearest representable half", () => {
    fc.assert(
      fc.property(fc.float({ min: -60000, max: 60000, noNaN: true }), (v) => {
        const got = f16BitsToF32(f32ToF16Bits(v));
        const ulp = 2 ** (Math.max(Math.floor(Math.log2(Math.abs(v) || 2 ** -24)), -14) - 10);
        expect(Math.abs(got - v)).toBeLessThanOrEqual(ulp / 2 + 1e-30);
      }),
      { numRuns: 2000, seed: 7 },
    );
  });
});

describe("Q8_0", () => {
  it("matches ggml's layout: f16 scale then 32 signed bytes, roundf halves away from zero", () => {
    const src = new Float32Array(32);
    src[0] = 127;
    src[1] = -127;
    src[2] = 0.5;
    src[3] = -0.5;
    src[4] = 1.5;
    const out = new Uint8Array(34);
    quantizeQ8_0(src, out, 0);
    const view = new DataView(out.buffer);
    expect(view.getUint16(0, true)).toBe(0x3c00); // d = 1
    expect([0, 1, 2, 3, 4, 5].map((j) => view.getInt8(2 + j))).toEqual([127, -127, 1, -1, 2, 0]);
    expect(dequantizeQ8_0(out, 1).subarray(0, 5)).toEqual(new Float32Array([127, -127, 1, -1, 2]));
  });

  it("encodes an all-zero block as zero scale and zero values", () => {
    const out = new Uint8Array(34).fill(0xaa);
    quantizeQ8_0(new Float32Array(32), out, 0);
    expect([...out]).toEqual(new Array(34).fill(0));
  });
});

describe("Mulberry32", () => {
  it("is deterministic for a seed and stays within [-1, 1)", () => {
    const a = new Mulberry32(42);
    const b = new Mulberry32(42);
    const first = Array.from({ length: 5 }, () => a.nextU32());
    expect(first).toEqual(Array.from({ length: 5 }, () => b.nextU32()));
    expect(first).toEqual([2581720956, 1925393290, 3661312704, 2876485805, 750819978]);
    const r = new Mulberry32(1);
    for (let i = 0; i < 10000; i++) {
      const v = r.nextSigned();
      expect(v).toBeGreaterThanOrEqual(-1);
      expect(v).toBeLessThan(1);
    }
  });
});
