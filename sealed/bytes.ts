/**
 * Small byte helpers (platform-neutral: Uint8Array and WHATWG streams only). No cryptography here:
 * the host may load this file (test/sealed/boundary.test.ts), e.g. for readBoundedBytes.
 */

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

/** Bytes as they arrive: an iterable of chunks, or a WHATWG stream (a fetch answer's body). */
export type ByteSource = AsyncIterable<Uint8Array> | Iterable<Uint8Array> | ReadableStream<Uint8Array>;

/** Iterates any byte source: async or sync iterables, and WHATWG streams without async iteration. */
export async function* chunksOf(source: ByteSource): AsyncGenerator<Uint8Array, void, undefined> {
  if (Symbol.asyncIterator in source || Symbol.iterator in source) {
    yield* source as AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
    return;
  }
  // Only a stream without async iteration is left (a browser's). @types/node says every stream
  // iterates, which leaves `never` here without DOM's lib: name the type again.
  const reader = (source as ReadableStream<Uint8Array>).getReader();
  let ended = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        ended = true;
        return;
      }
      yield value;
    }
  } finally {
    // Left early (the reader stopped, or reading failed): the rest is not wanted, as async
    // iteration of a stream would also cancel it.
    if (!ended) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** What readBoundedBytes (and the client's `TransportResponse.text`) throws when a body passes its limit. */
export class ResponseTooLargeError extends Error {
  readonly code = "RESPONSE_TOO_LARGE";
  constructor(readonly maxBytes: number) {
    super(`the body is larger than ${maxBytes} bytes`);
    this.name = "ResponseTooLargeError";
  }
}

/**
 * Reads `body`'s bytes, at most `maxBytes` of them; past that the iteration is left, which closes
 * the body (chunksOf cancels a stream, node destroys its response): a peer is not trusted to send
 * a bounded body.
 */
export async function readBoundedBytes(body: ByteSource, maxBytes: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of chunksOf(body)) {
    total += chunk.byteLength;
    if (total > maxBytes) throw new ResponseTooLargeError(maxBytes);
    parts.push(chunk);
  }
  return concatBytes(...parts);
}
