/**
 * Byte helpers shared by the attestation parsers. Platform-neutral (Uint8Array only). The reader
 * checks every access against the buffer length and throws a ParseError naming the field.
 */
import { base64url } from "jose";
import { ParseError } from "./errors.ts";
import { describeUntrusted } from "./untrusted-text.ts";

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Lower-case hex. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += HEX[b];
  return out;
}

/** Strict hex decoding (even length, hex digits only). */
export function fromHex(hex: string, field = "hex"): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new ParseError("BAD_HEX", `${field}: expected an even-length hex string, found ${hex.length} characters`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/**
 * Strict base64url (RFC 4648 §5, unpadded): only A-Z a-z 0-9 "-" "_", and only the spelling an
 * encoder writes (the unused low bits of the last character zero), so one byte string has one text.
 * Buffer.from(text, "base64url") skips any other character, atob (jose's decoder here) takes white
 * space and padding, and neither checks the unused bits. Throws BAD_BASE64 naming `field`.
 */
export function fromBase64url(text: string, field: string): Uint8Array {
  checkBase64url(text, field);
  return base64url.decode(text);
}

/**
 * That `text` is strict base64url as fromBase64url takes it, for a part another decoder then
 * decodes (jose decodes a JWS's payload and signature with atob): throws BAD_BASE64 naming `field`.
 */
export function checkBase64url(text: string, field: string): void {
  const refuse = (found: string): never => {
    throw new ParseError(
      "BAD_BASE64",
      `${field}: expected base64url (A-Z, a-z, 0-9, "-", "_"; no padding; unused bits zero), found ${found}`,
    );
  };
  const outside = /[^A-Za-z0-9_-]/.exec(text);
  if (outside !== null) refuse(`${describeUntrusted(outside[0])} at character ${outside.index}`);
  // 4k+1 characters would leave 6 bits for a last byte: no byte string encodes to that length.
  if (text.length % 4 === 1) refuse(`a length of 4k+1 (${text.length} characters)`);
  // 4k+2 characters carry 12 bits for one last byte, 4k+3 carry 18 for two: the last character's
  // low 4 or 2 bits are unused and an encoder writes them zero. Checking them is what re-encoding
  // and comparing checked (test/attestation/bytes-base64url.test.ts), without a second pass.
  const unusedBits = UNUSED_BITS_MASK[text.length % 4] as number;
  if ((BASE64URL_ALPHABET.indexOf(text.charAt(text.length - 1)) & unusedBits) !== 0) {
    refuse("unused bits set in its last character");
  }
}

const BASE64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/** By the text's length mod 4: the last character's unused low bits (4k+1 is refused before). */
const UNUSED_BITS_MASK = [0, 0, 0b1111, 0b11] as const;

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Equality of public values. For secrets use `constantTimeEqual` from crypto.ts. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The unsigned big-endian integer `bytes` spell. */
export function bytesToBigInt(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

/** `n` (non-negative) as `length` big-endian bytes; throws when it does not fit. */
export function bigIntToBytes(n: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let v = n;
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  if (v !== 0n) throw new Error(`integer does not fit in ${length} bytes`);
  return out;
}

export function isAllZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

export function reversed(bytes: Uint8Array): Uint8Array {
  return Uint8Array.from(bytes).reverse();
}

export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** Little-endian reader over a fixed buffer; every read is bounds-checked and named. */
export class ByteReader {
  private readonly view: DataView;
  readonly bytes: Uint8Array;

  constructor(
    input: Uint8Array,
    private readonly what: string,
  ) {
    // A private plain copy: slices of it are real copies (a Node Buffer's `.slice()` aliases).
    this.bytes = new Uint8Array(input);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
  }

  private check(offset: number, size: number, field: string): void {
    if (offset < 0 || offset + size > this.bytes.length) {
      throw new ParseError(
        "TRUNCATED",
        `${this.what}: field ${field} at offset 0x${offset.toString(16)} needs ${size} bytes, but only ${Math.max(
          0,
          this.bytes.length - offset,
        )} remain`,
      );
    }
  }

  u8(offset: number, field: string): number {
    this.check(offset, 1, field);
    return this.view.getUint8(offset);
  }

  u16(offset: number, field: string): number {
    this.check(offset, 2, field);
    return this.view.getUint16(offset, true);
  }

  u32(offset: number, field: string): number {
    this.check(offset, 4, field);
    return this.view.getUint32(offset, true);
  }

  u64(offset: number, field: string): bigint {
    this.check(offset, 8, field);
    return this.view.getBigUint64(offset, true);
  }

  /** A copy of `size` bytes (so parsed structures do not alias the input). */
  slice(offset: number, size: number, field: string): Uint8Array {
    this.check(offset, size, field);
    return this.bytes.slice(offset, offset + size);
  }
}
