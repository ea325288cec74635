/**
 * GGUF v3 writer. The header (metadata and tensor infos) is encoded up front from declared tensor
 * shapes; tensor data is then streamed in caller-sized chunks of float32 values, converted to F32,
 * F16 or Q8_0 on the fly and written through a fixed 4 MiB staging buffer, so memory stays constant
 * whatever the model size. The SHA-256 of the file is computed from the same bytes as they are
 * written. Output depends only on the inputs: no timestamps, no randomness.
 *
 * Checks: keys non-empty and unique, integer values in range for their type, tensor names unique
 * and shorter than 64 bytes, at most 4 dims, row length a multiple of the block size, data supplied
 * in declaration order with exactly the declared element count. Misuse throws {@link GgufWriteError}.
 */
import { createHash } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import { endianness } from "node:os";
import { GgufWriteError, ModelIoError } from "./errors.ts";
import {
  alignUp,
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGML_TYPES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgmlType,
  type GgufItem,
  type GgufValue,
  GgufValueType,
  type GgufValueTypeName,
  type WritableGgmlType,
} from "./gguf-format.ts";
import { f32ToF16Bits, Q8_0_BLOCK, Q8_0_BYTES, quantizeQ8_0 } from "./numeric.ts";
import { partialFile, removeAbandonedPartials, replaceableOutput } from "./partial-file.ts";

export interface GgufTensorSpec {
  readonly name: string;
  readonly type: WritableGgmlType;
  /** Innermost-first (dims[0] is the row length), as GGUF stores them. */
  readonly dims: readonly number[];
}

export type GgufMetadata = readonly (readonly [string, GgufValue])[];

const utf8 = new TextEncoder();

/** Growable little-endian byte builder for the header. */
class ByteBuilder {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  i8(v: number): void {
    this.ensure(1);
    this.view.setInt8(this.length, v);
    this.length += 1;
  }
  u16(v: number): void {
    this.ensure(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
  }
  i16(v: number): void {
    this.ensure(2);
    this.view.setInt16(this.length, v, true);
    this.length += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  f32(v: number): void {
    this.ensure(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  f64(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }
  u64(v: bigint | number): void {
    this.ensure(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  i64(v: bigint): void {
    this.ensure(8);
    this.view.setBigInt64(this.length, v, true);
    this.length += 8;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  string(s: string): void {
    const b = utf8.encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  padTo(alignment: number): void {
    const target = alignUp(this.length, alignment);
    this.ensure(target - this.length);
    this.buf.fill(0, this.length, target);
    this.length = target;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

function checkInt(field: string, v: unknown, min: number | bigint, max: number | bigint): void {
  const ok =
    typeof min === "bigint"
      ? typeof v === "bigint" && v >= min && v <= (max as bigint)
      : typeof v === "number" && Number.isInteger(v) && v >= min && v <= (max as number);
  if (!ok) throw new GgufWriteError(`metadata "${field}" expects an integer in ${min}..${max}, found ${String(v)}`);
}

function writeScalar(b: ByteBuilder, type: GgufValueTypeName, v: GgufItem, field: string): void {
  switch (type) {
    case "UINT8":
      checkInt(field, v, 0, 0xff);
      b.u8(v as number);
      return;
    case "INT8":
      checkInt(field, v, -0x80, 0x7f);
      b.i8(v as number);
      return;
    case "UINT16":
      checkInt(field, v, 0, 0xffff);
      b.u16(v as number);
      return;
    case "INT16":
      checkInt(field, v, -0x8000, 0x7fff);
      b.i16(v as number);
      return;
    case "UINT32":
      checkInt(field, v, 0, 0xffffffff);
      b.u32(v as number);
      return;
    case "INT32":
      checkInt(field, v, -0x80000000, 0x7fffffff);
      b.i32(v as number);
      return;
    case "UINT64":
      checkInt(field, v, 0n, 0xffffffffffffffffn);
      b.u64(v as bigint);
      return;
    case "INT64":
      checkInt(field, v, -0x8000000000000000n, 0x7fffffffffffffffn);
      b.i64(v as bigint);
      return;
    case "FLOAT32":
    case "FLOAT64":
      if (typeof v !== "number") throw new GgufWriteError(`metadata "${field}" expects a number, found ${typeof v}`);
      if (type === "FLOAT32") b.f32(v);
      else b.f64(v);
      return;
    case "BOOL":
      if (typeof v !== "boolean") throw new GgufWriteError(`metadata "${field}" expects a boolean, found ${typeof v}`);
      b.u8(v ? 1 : 0);
      return;
    case "STRING":
      if (typeof v !== "string") throw new GgufWriteError(`metadata "${field}" expects a string, found ${typeof v}`);
      b.string(v);
      return;
    case "ARRAY": {
      if (typeof v !== "object") throw new GgufWriteError(`metadata "${field}" expects an array value`);
      b.u32(GgufValueType[v.itemType]);
      b.u64(v.items.length);
      for (const item of v.items) writeScalar(b, v.itemType, item, field);
      return;
    }
  }
}

export interface GgufLayout {
  /** Header bytes, padded to the alignment: the tensor data starts right after. */
  readonly header: Uint8Array;
  readonly alignment: number;
  /** Per tensor (declaration order): offset relative to the data section and byte size. */
  readonly placements: readonly { readonly offset: number; readonly byteSize: number; readonly elements: number }[];
  /** Size of the whole file. */
  readonly totalSize: number;
}

/** Encode the header for `metadata` and `tensors`, placing each tensor at the next aligned offset. */
export function encodeGgufHeader(metadata: GgufMetadata, tensors: readonly GgufTensorSpec[]): GgufLayout {
  const b = new ByteBuilder();
  b.u32(GGUF_MAGIC);
  b.u32(GGUF_VERSION);
  b.u64(tensors.length);
  b.u64(metadata.length);
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const keys = new Set<string>();
  for (const [key, value] of metadata) {
    if (key.length === 0) throw new GgufWriteError("metadata key is empty");
    if (keys.has(key)) throw new GgufWriteError(`metadata key "${key}" appears twice`);
    keys.add(key);
    if (key === "general.alignment") {
      if (value.type !== "UINT32" || value.value === 0 || (value.value & (value.value - 1)) !== 0) {
        throw new GgufWriteError("general.alignment must be a UINT32 power of two");
      }
      alignment = value.value;
    }
    b.string(key);
    b.u32(GgufValueType[value.type]);
    writeScalar(b, value.type, value.type === "ARRAY" ? value : value.value, key);
  }
  const placements: { offset: number; byteSize: number; elements: number }[] = [];
  const names = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    if (t.name.length === 0 || utf8.encode(t.name).length >= GGML_MAX_NAME) {
      throw new GgufWriteError(`tensor name "${t.name}" must be 1..${GGML_MAX_NAME - 1} bytes`);
    }
    if (names.has(t.name)) throw new GgufWriteError(`tensor "${t.name}" appears twice`);
    names.add(t.name);
    if (t.dims.length === 0 || t.dims.length > GGML_MAX_DIMS) {
      throw new GgufWriteError(`tensor "${t.name}" expects 1..${GGML_MAX_DIMS} dims, found ${t.dims.length}`);
    }
    const info = GGML_TYPES.get(GgmlType[t.type])!;
    let elements = 1;
    for (const d of t.dims) {
      if (!Number.isSafeInteger(d) || d < 1) throw new GgufWriteError(`tensor "${t.name}" has invalid dim ${d}`);
      elements *= d;
    }
    if (!Number.isSafeInteger(elements)) throw new GgufWriteError(`tensor "${t.name}" is too large`);
    if (t.dims[0]! % info.blockSize !== 0) {
      throw new GgufWriteError(`tensor "${t.name}" of type ${t.type} needs dims[0] a multiple of ${info.blockSize}`);
    }
    const byteSize = (elements / info.blockSize) * info.typeSize;
    b.string(t.name);
    b.u32(t.dims.length);
    for (const d of t.dims) b.u64(d);
    b.u32(info.id);
    b.u64(offset);
    placements.push({ offset, byteSize, elements });
    offset = alignUp(offset + byteSize, alignment);
  }
  b.padTo(alignment);
  const header = b.result();
  return { header, alignment, placements, totalSize: header.length + offset };
}

const STAGE_BYTES = 4 << 20;

/**
 * Streams one GGUF file: {@link GgufWriter.create} writes the header, {@link GgufWriter.append}
 * takes each tensor's float32 values in order (any chunk size; a multiple of 32 for Q8_0), and
 * {@link GgufWriter.finish} closes the file and returns its size and SHA-256. The bytes go to a
 * new file beside `path` (created exclusively), renamed onto `path` only once complete: a failed
 * or aborted write leaves whatever was at `path` as it was, and never truncates a file someone
 * else just created there; one left by a writer killed outright is removed by the next writer of
 * `path` (removeAbandonedPartials). A directory, FIFO, socket or device at `path` is refused before
 * any work (replaceableOutput: the rename would replace a device); a symbolic link there is
 * replaced, the link itself, as a file is. The file's mode is 0644 less the umask, as any tool's output,
 * without a chmod: a generated model holds nothing secret (a model sealed at rest is sealed.ts's
 * ciphertext), and a user whose umask keeps their files private keeps this one so.
 */
export class GgufWriter {
  private readonly hash = createHash("sha256");
  private readonly stage = new Uint8Array(STAGE_BYTES);
  private stageLength = 0;
  private written = 0;
  private index = 0;
  private remaining: number;
  private closed = false;

  private constructor(
    private readonly path: string,
    /** Where the bytes are written until finish renames it to `path`. */
    private readonly partial: string,
    private readonly handle: Awaited<ReturnType<typeof open>>,
    private readonly tensors: readonly GgufTensorSpec[],
    private readonly layout: GgufLayout,
  ) {
    this.remaining = layout.placements[0]?.elements ?? 0;
  }

  static async create(path: string, metadata: GgufMetadata, tensors: readonly GgufTensorSpec[]): Promise<GgufWriter> {
    if (endianness() !== "LE") throw new GgufWriteError("the GGUF writer needs a little-endian host");
    const layout = encodeGgufHeader(metadata, tensors);
    // Before any work: `cloister up` writes its models/tiny.gguf here with no check of its own.
    await replaceableOutput(path, "model file");
    await removeAbandonedPartials(path);
    const partial = await partialFile(path);
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(partial, "wx", 0o644);
    } catch (cause) {
      throw new ModelIoError(path, "create", cause);
    }
    const writer = new GgufWriter(path, partial, handle, tensors, layout);
    await writer.emit(layout.header);
    return writer;
  }

  /** Name of the tensor the next {@link append} feeds, or undefined when all are complete. */
  get currentTensor(): string | undefined {
    return this.tensors[this.index]?.name;
  }

  /** Append float32 values to the current tensor (they must not run past its end). */
  async append(values: Float32Array): Promise<void> {
    const spec = this.tensors[this.index];
    if (this.closed || spec === undefined) throw new GgufWriteError("append after the last tensor was complete");
    if (values.length > this.remaining) {
      throw new GgufWriteError(`tensor "${spec.name}" has ${this.remaining} values left, got ${values.length}`);
    }
    switch (spec.type) {
      case "F32":
        await this.emit(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
        break;
      case "F16": {
        const out = new Uint16Array(values.length);
        for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]!);
        await this.emit(new Uint8Array(out.buffer));
        break;
      }
      case "Q8_0": {
        if (values.length % Q8_0_BLOCK !== 0) {
          throw new GgufWriteError(`tensor "${spec.name}" (Q8_0) needs chunks of a multiple of 32 values`);
        }
        const out = new Uint8Array((values.length / Q8_0_BLOCK) * Q8_0_BYTES);
        quantizeQ8_0(values, out, 0);
        await this.emit(out);
        break;
      }
    }
    this.remaining -= values.length;
    if (this.remaining === 0) {
      const placement = this.layout.placements[this.index]!;
      const pad = alignUp(placement.byteSize, this.layout.alignment) - placement.byteSize;
      if (pad > 0) await this.emit(new Uint8Array(pad));
      this.index++;
      this.remaining = this.layout.placements[this.index]?.elements ?? 0;
    }
  }

  /** Flush and close; every declared tensor must be complete. */
  async finish(): Promise<{ sha256: string; bytes: number }> {
    const pending = this.currentTensor;
    if (pending !== undefined) {
      await this.abort();
      throw new GgufWriteError(`tensor "${pending}" is incomplete when finishing`);
    }
    await this.flush();
    this.closed = true;
    try {
      // On disk before it is renamed into place: after a power loss the path holds the old file
      // or the whole new one, never an empty or partial one.
      await this.handle.sync();
      await this.handle.close();
    } catch (cause) {
      throw new ModelIoError(this.path, "close", cause);
    }
    if (this.written !== this.layout.totalSize) {
      await this.abort();
      throw new GgufWriteError(`wrote ${this.written} bytes, layout says ${this.layout.totalSize}`);
    }
    try {
      await rename(this.partial, this.path);
    } catch (cause) {
      await this.abort();
      throw new ModelIoError(this.path, "create", cause);
    }
    return { sha256: this.hash.digest("hex"), bytes: this.written };
  }

  /** Close and delete the partial file (after an error); `path` is left as it was. */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.handle.close().catch(() => undefined);
    }
    await rm(this.partial, { force: true });
  }

  private async emit(bytes: Uint8Array): Promise<void> {
    if (this.stageLength + bytes.length > STAGE_BYTES) await this.flush();
    if (bytes.length >= STAGE_BYTES) {
      await this.writeOut(bytes);
      return;
    }
    this.stage.set(bytes, this.stageLength);
    this.stageLength += bytes.length;
  }

  private async flush(): Promise<void> {
    if (this.stageLength === 0) return;
    await this.writeOut(this.stage.subarray(0, this.stageLength));
    this.stageLength = 0;
  }

  private async writeOut(bytes: Uint8Array): Promise<void> {
    this.hash.update(bytes);
    let done = 0;
    try {
      while (done < bytes.length) {
        const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done);
        done += bytesWritten;
      }
    } catch (cause) {
      throw new ModelIoError(this.path, "write", cause);
    }
    this.written += bytes.length;
  }
}

/** Convenience for small files and tests: write every tensor from an in-memory array. */
export async function writeGguf(
  path: string,
  metadata: GgufMetadata,
  tensors: readonly (GgufTensorSpec & { readonly data: Float32Array })[],
): Promise<{ sha256: string; bytes: number }> {
  const writer = await GgufWriter.create(path, metadata, tensors);
  try {
    for (const t of tensors) await writer.append(t.data);
  } catch (error) {
    await writer.abort();
    throw error;
  }
  return writer.finish();
}
