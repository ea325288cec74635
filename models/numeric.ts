/**
 * Bit-exact number encodings for model weights: IEEE half precision (round to nearest, ties to
 * even) and ggml's Q8_0 blocks (32 values, one f16 scale, 32 signed bytes), computed the way ggml's
 * reference quantiser does, in float32 arithmetic. Plus a small seeded PRNG. All pure integer or
 * float32-rounded arithmetic, so the same input gives the same bytes on every machine.
 */

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** float → IEEE binary16 bits, round to nearest even; NaN stays NaN, overflow becomes ±Inf. */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

/** IEEE binary16 bits → number (exact). */
export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export const Q8_0_BLOCK = 32;
export const Q8_0_BYTES = 34;

/** C `roundf`: halves away from zero. */
function roundHalfAway(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/**
 * Quantise `src` (length a multiple of 32) into Q8_0 blocks written to `out` at `outOffset`.
 * Mirrors ggml's reference: d = amax/127, q = roundf(x * (1/d)), all in float32.
 */
export function quantizeQ8_0(src: Float32Array, out: Uint8Array, outOffset: number): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const signed = new Int8Array(out.buffer, out.byteOffset, out.byteLength);
  const blocks = src.length / Q8_0_BLOCK;
  for (let b = 0; b < blocks; b++) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const a = Math.abs(src[base + j]!);
      if (a > amax) amax = a;
    }
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const o = outOffset + b * Q8_0_BYTES;
    view.setUint16(o, f32ToF16Bits(d), true);
    for (let j = 0; j < Q8_0_BLOCK; j++) signed[o + 2 + j] = roundHalfAway(Math.fround(src[base + j]! * id));
  }
}

/** Inverse of {@link quantizeQ8_0} for `blocks` blocks (used by tests and inspection). */
export function dequantizeQ8_0(bytes: Uint8Array, blocks: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(blocks * Q8_0_BLOCK);
  for (let b = 0; b < blocks; b++) {
    const o = b * Q8_0_BYTES;
    const d = f16BitsToF32(view.getUint16(o, true));
    for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * view.getInt8(o + 2 + j);
  }
  return out;
}

/** 32-bit FNV-1a of a string's UTF-16 code units: derives per-tensor PRNG seeds from names. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * Seeded PRNG (mulberry32): fast, deterministic, integer-only state. Not for anything secret —
 * it only makes synthetic benchmark weights.
 */
export class Mulberry32 {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [-1, 1) with 24-bit resolution. */
  nextSigned(): number {
    return (this.nextU32() >>> 8) * 2 ** -23 - 1;
  }
}
