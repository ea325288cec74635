/**
 * A minimal, strict DER reader (definite lengths only, bounds-checked) and the few DER writers the
 * verifier needs to re-encode keys and signatures. It checks structure only; meaning is given by
 * x509.ts. Every malformed input throws a ParseError naming the offset.
 */
import { concatBytes } from "./bytes.ts";
import { ParseError } from "./errors.ts";
import { describeUntrusted } from "./untrusted-text.ts";

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  SEQUENCE: 0x30,
  SET: 0x31,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
} as const;

export interface DerNode {
  /** The full identifier octet (class, constructed bit and tag number < 31). */
  readonly tag: number;
  /** Offset of the identifier octet in `input`. */
  readonly start: number;
  /** Offset of the first content byte. */
  readonly contentStart: number;
  /** Offset one past the last content byte. */
  readonly end: number;
  readonly input: Uint8Array;
}

export function derContent(node: DerNode): Uint8Array {
  return node.input.subarray(node.contentStart, node.end);
}

/** The whole TLV encoding of the node (tag, length and content). */
export function derEncoding(node: DerNode): Uint8Array {
  return node.input.subarray(node.start, node.end);
}

/** Reads one TLV at `offset`, which must end at or before `limit`. */
export function readDer(input: Uint8Array, offset = 0, limit = input.length): DerNode {
  if (offset >= limit)
    throw new ParseError("DER_TRUNCATED", `DER: expected a tag at offset ${offset}, found end of data`);
  const tag = input[offset] as number;
  if ((tag & 0x1f) === 0x1f)
    throw new ParseError("DER_UNSUPPORTED_TAG", `DER: high tag number form at offset ${offset}`);
  let pos = offset + 1;
  if (pos >= limit) throw new ParseError("DER_TRUNCATED", `DER: missing length at offset ${pos}`);
  const first = input[pos++] as number;
  let length: number;
  if (first < 0x80) {
    length = first;
  } else {
    const count = first & 0x7f;
    if (count === 0) throw new ParseError("DER_INDEFINITE_LENGTH", `DER: indefinite length at offset ${pos - 1}`);
    if (count > 4) throw new ParseError("DER_BAD_LENGTH", `DER: length of ${count} bytes at offset ${pos - 1}`);
    if (pos + count > limit) throw new ParseError("DER_TRUNCATED", `DER: length bytes run past the end at ${pos}`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (input[pos++] as number);
    if (length < 0x80 || (count > 1 && (input[pos - count] as number) === 0)) {
      throw new ParseError("DER_BAD_LENGTH", `DER: non-minimal length encoding at offset ${offset}`);
    }
  }
  const end = pos + length;
  if (end > limit) {
    throw new ParseError(
      "DER_TRUNCATED",
      `DER: value at offset ${offset} needs ${length} bytes, only ${limit - pos} remain`,
    );
  }
  return { tag, start: offset, contentStart: pos, end, input };
}

/** The children of a constructed node. */
export function derChildren(node: DerNode): DerNode[] {
  if ((node.tag & 0x20) === 0) {
    throw new ParseError(
      "DER_NOT_CONSTRUCTED",
      `DER: tag 0x${node.tag.toString(16)} at ${node.start} is not constructed`,
    );
  }
  const children: DerNode[] = [];
  let pos = node.contentStart;
  while (pos < node.end) {
    const child = readDer(node.input, pos, node.end);
    children.push(child);
    pos = child.end;
  }
  return children;
}

/** Parses a whole buffer as exactly one TLV of the expected tag. */
export function readDerExact(input: Uint8Array, tag: number, what: string): DerNode {
  const node = readDer(input, 0, input.length);
  expectTag(node, tag, what);
  if (node.end !== input.length) {
    throw new ParseError("DER_TRAILING_DATA", `${what}: ${input.length - node.end} bytes after the DER value`);
  }
  return node;
}

export function expectTag(node: DerNode | undefined, tag: number, what: string): DerNode {
  if (node === undefined)
    throw new ParseError("DER_MISSING", `${what}: expected tag 0x${tag.toString(16)}, found nothing`);
  if (node.tag !== tag) {
    throw new ParseError(
      "DER_UNEXPECTED_TAG",
      `${what}: expected tag 0x${tag.toString(16)}, found 0x${node.tag.toString(16)} at offset ${node.start}`,
    );
  }
  return node;
}

export function decodeOid(node: DerNode): string {
  const bytes = derContent(expectTag(node, TAG.OID, "OID"));
  if (bytes.length === 0) throw new ParseError("DER_BAD_OID", `DER: empty OID at offset ${node.start}`);
  const parts: number[] = [];
  let value = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] as number;
    value = value * 128 + (b & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER / 128)
      throw new ParseError("DER_BAD_OID", `DER: OID arc too large at ${node.start}`);
    if (value === 0 && b === 0x80) {
      // An arc's first byte 0x80 adds nothing: BER padding, which DER forbids (X.690 8.19.2).
      throw new ParseError("DER_BAD_OID", `DER: OID arc padded with 0x80 at offset ${node.start}`);
    }
    if ((b & 0x80) === 0) {
      if (parts.length === 0) {
        const first = value < 80 ? Math.floor(value / 40) : 2;
        parts.push(first, value - first * 40);
      } else {
        parts.push(value);
      }
      value = 0;
    } else if (i === bytes.length - 1) {
      throw new ParseError("DER_BAD_OID", `DER: OID ends in the middle of an arc at ${node.start}`);
    }
  }
  return parts.join(".");
}

/**
 * The content of a DER INTEGER: not empty, and in its shortest two's-complement form (no leading
 * 00 before a byte < 0x80, no leading ff before a byte ≥ 0x80: X.690 8.3.2), so that one value has
 * one encoding.
 */
function integerContent(node: DerNode, what: string): Uint8Array {
  const bytes = derContent(expectTag(node, TAG.INTEGER, what));
  if (bytes.length === 0) throw new ParseError("DER_BAD_INTEGER", `${what}: empty INTEGER`);
  const [first, second] = bytes as unknown as [number, number | undefined];
  if (second !== undefined && ((first === 0x00 && second < 0x80) || (first === 0xff && second >= 0x80))) {
    throw new ParseError(
      "DER_BAD_INTEGER",
      `${what}: expected a minimal INTEGER encoding, found a redundant leading 0x${first.toString(16).padStart(2, "0")} at offset ${node.start}`,
    );
  }
  return bytes;
}

/** Unsigned big-endian magnitude of a non-negative INTEGER (its sign byte 00 removed). */
export function decodeUnsignedInteger(node: DerNode, what: string): Uint8Array {
  const bytes = integerContent(node, what);
  if (((bytes[0] as number) & 0x80) !== 0) {
    throw new ParseError("DER_BAD_INTEGER", `${what}: expected a non-negative INTEGER, found a negative one`);
  }
  return bytes.slice(bytes.length > 1 && bytes[0] === 0 ? 1 : 0);
}

/** Small non-negative INTEGER as a number. */
export function decodeSmallInteger(node: DerNode, what: string): number {
  const bytes = integerContent(node, what);
  if (bytes.length > 6 || ((bytes[0] as number) & 0x80) !== 0) {
    throw new ParseError("DER_BAD_INTEGER", `${what}: expected a small non-negative INTEGER`);
  }
  let n = 0;
  for (const b of bytes) n = n * 256 + b;
  return n;
}

/** BIT STRING contents with no unused bits. */
export function decodeBitString(node: DerNode, what: string): Uint8Array {
  const bytes = derContent(expectTag(node, TAG.BIT_STRING, what));
  if (bytes.length === 0 || bytes[0] !== 0) {
    throw new ParseError("DER_BAD_BIT_STRING", `${what}: expected a BIT STRING with 0 unused bits`);
  }
  return bytes.subarray(1);
}

export function decodeTime(node: DerNode, what: string): Date {
  const text = new TextDecoder().decode(derContent(node));
  let match: RegExpExecArray | null;
  let year: number;
  if (node.tag === TAG.UTC_TIME && (match = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text))) {
    const yy = Number(match[1]);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
  } else if (
    node.tag === TAG.GENERALIZED_TIME &&
    (match = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text))
  ) {
    year = Number(match[1]);
  } else {
    throw new ParseError(
      "DER_BAD_TIME",
      `${what}: expected UTCTime or GeneralizedTime in Zulu, found ${describeUntrusted(text)}`,
    );
  }
  const [, , mo, d, h, mi, s] = match.map(Number) as [number, number, number, number, number, number, number];
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0-99 as 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(year, mo - 1, d);
  date.setUTCHours(h, mi, s, 0);
  if (
    Number.isNaN(date.getTime()) ||
    date.getUTCFullYear() !== year ||
    date.getUTCMonth() !== mo - 1 ||
    date.getUTCDate() !== d ||
    h > 23 ||
    mi > 59 ||
    s > 59
  ) {
    throw new ParseError("DER_BAD_TIME", `${what}: invalid date ${describeUntrusted(text)}`);
  }
  return date;
}

// --- writers -----------------------------------------------------------------------------------

function encodeLength(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function encodeTlv(tag: number, content: Uint8Array): Uint8Array {
  const length = encodeLength(content.length);
  const out = new Uint8Array(1 + length.length + content.length);
  out[0] = tag;
  out.set(length, 1);
  out.set(content, 1 + length.length);
  return out;
}

export function encodeSequence(...items: readonly Uint8Array[]): Uint8Array {
  return encodeTlv(TAG.SEQUENCE, concatBytes(...items));
}

/** INTEGER from an unsigned big-endian magnitude. */
export function encodeUnsignedInteger(magnitude: Uint8Array): Uint8Array {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  let m = magnitude.subarray(i);
  if (m.length === 0) m = Uint8Array.of(0);
  if (((m[0] as number) & 0x80) !== 0) {
    const padded = new Uint8Array(m.length + 1);
    padded.set(m, 1);
    m = padded;
  }
  return encodeTlv(TAG.INTEGER, m);
}

export function encodeOid(oid: string): Uint8Array {
  const arcs = oid.split(".").map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) throw new Error(`bad OID ${oid}`);
  const out: number[] = [];
  const push = (value: number) => {
    const chunk: number[] = [value & 0x7f];
    for (let v = Math.floor(value / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  };
  push((arcs[0] as number) * 40 + (arcs[1] as number));
  for (const a of arcs.slice(2)) push(a);
  return encodeTlv(TAG.OID, Uint8Array.from(out));
}

export function encodeBitString(bytes: Uint8Array): Uint8Array {
  const content = new Uint8Array(bytes.length + 1);
  content.set(bytes, 1);
  return encodeTlv(TAG.BIT_STRING, content);
}
