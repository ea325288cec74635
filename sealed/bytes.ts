/** Small byte helpers (platform-neutral: Uint8Array only). No cryptography here. */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i]!];
  return out;
}

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function writeU32BE(target: Uint8Array, offset: number, value: number): void {
  target[offset] = value >>> 24;
  target[offset + 1] = (value >>> 16) & 0xff;
  target[offset + 2] = (value >>> 8) & 0xff;
  target[offset + 3] = value & 0xff;
}

export function readU32BE(source: Uint8Array, offset: number): number {
  return (
    ((source[offset]! << 24) | (source[offset + 1]! << 16) | (source[offset + 2]! << 8) | source[offset + 3]!) >>> 0
  );
}

/** Writes a safe integer (0 ≤ value < 2^53) as a big-endian u64. */
export function writeU64BE(target: Uint8Array, offset: number, value: number): void {
  writeU32BE(target, offset, Math.floor(value / 0x1_0000_0000));
  writeU32BE(target, offset + 4, value >>> 0);
}

/** Reads a big-endian u64; returns -1 when it does not fit a safe integer. */
export function readU64BE(source: Uint8Array, offset: number): number {
  const high = readU32BE(source, offset);
  if (high > 0x1f_ffff) return -1;
  return high * 0x1_0000_0000 + readU32BE(source, offset + 4);
}
