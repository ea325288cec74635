/**
 * GGUF reader: parses the header, every metadata key/value (all value types, nested arrays), the
 * tensor infos, the alignment and the start of the tensor data, and checks the structure: magic,
 * version (2 or 3), known value and tensor types, UTF-8 keys and names, no duplicates, power-of-two
 * alignment, aligned tensor offsets, tensors inside the file and not overlapping.
 *
 * It does not look at tensor data and does not check that a model makes sense for an architecture
 * (llama.cpp does that when it loads). Every count and length read from the file is bounded by the
 * bytes that remain before it is used, so a hostile length field cannot cause a huge allocation or
 * a long loop; any malformed input throws {@link GgufFormatError} and nothing else. On a path only
 * the header region is read (in small windows), never the tensor data.
 */
import type { FileHandle } from "node:fs/promises";
import { decodeUtf8 } from "../attestation/utf8.ts";
import { GgufFormatError, ModelIoError } from "./errors.ts";
import {
  alignUp,
  GGML_MAX_DIMS,
  GGML_MAX_NAME,
  GGML_TYPES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  type GgufArray,
  type GgufItem,
  type GgufValue,
  type GgufValueTypeName,
  scalarSize,
  VALUE_TYPE_NAMES,
} from "./gguf-format.ts";
import { closeModelInput, openModelInput } from "./hash.ts";

export interface GgufTensorInfo {
  readonly name: string;
  /** Dimensions innermost-first, as stored (ne[0] is the row length). */
  readonly dims: readonly number[];
  readonly type: number;
  readonly typeName: string;
  /** Offset relative to the start of the data section. */
  readonly offset: number;
  readonly elements: number;
  readonly byteSize: number;
}

export interface GgufFile {
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufValue>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** Absolute file offset of the tensor data section. */
  readonly dataOffset: number;
  readonly fileSize: number;
}

/** Random-access bytes; `read` is only called for ranges already checked to lie inside `size`. */
interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Uint8Array;
}

/** Nested arrays deeper than this are refused (real files use depth 1). */
const MAX_ARRAY_DEPTH = 4;
/** Longest string accepted (chat templates are kilobytes; this bounds one allocation). */
const MAX_STRING_BYTES = 16 * 1024 * 1024;
/** Most items accepted in one array (vocabularies and merge lists are well below this). */
const MAX_ARRAY_ITEMS = 16 * 1024 * 1024;
/** Most tensors (and, separately, metadata keys) accepted; real models have a few thousand. */
const MAX_TENSORS = 1 << 20;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

const utf8Lenient = new TextDecoder("utf-8");
const utf8Encoder = new TextEncoder();

class Cursor {
  pos = 0;
  constructor(private readonly src: ByteSource) {}

  get remaining(): number {
    return this.src.size - this.pos;
  }

  take(n: number, field: string): DataView {
    if (n > this.remaining) {
      throw new GgufFormatError("GGUF_TRUNCATED", field, this.pos, `needs ${n} bytes, file has ${this.remaining} left`);
    }
    const bytes = this.src.read(this.pos, n);
    this.pos += n;
    return new DataView(bytes.buffer, bytes.byteOffset, n);
  }

  u32(field: string): number {
    return this.take(4, field).getUint32(0, true);
  }

  /** A u64 that must fit a JS safe integer (counts, lengths, dims, offsets). */
  size(field: string): number {
    const at = this.pos;
    const v = this.take(8, field).getBigUint64(0, true);
    if (v > MAX_SAFE) throw new GgufFormatError("GGUF_BAD_COUNT", field, at, `value ${v} is too large`);
    return Number(v);
  }

  /** A count whose items each need at least `minItemBytes`: bounded by the bytes remaining. */
  count(field: string, minItemBytes: number): number {
    const at = this.pos;
    const n = this.size(field);
    if (n * minItemBytes > this.remaining) {
      throw new GgufFormatError(
        "GGUF_BAD_COUNT",
        field,
        at,
        `count ${n} needs at least ${n * minItemBytes} bytes but only ${this.remaining} remain (truncated file or corrupt count)`,
      );
    }
    return n;
  }

  bytesOfString(field: string): { bytes: Uint8Array; at: number } {
    const at = this.pos;
    const len = this.size(`${field} length`);
    if (len > MAX_STRING_BYTES) {
      throw new GgufFormatError("GGUF_BAD_COUNT", `${field} length`, at, `string of ${len} bytes exceeds the limit`);
    }
    if (len > this.remaining) {
      throw new GgufFormatError(
        "GGUF_TRUNCATED",
        field,
        this.pos,
        `string of ${len} bytes, file has ${this.remaining} left`,
      );
    }
    const bytes = this.src.read(this.pos, len);
    this.pos += len;
    return { bytes, at };
  }

  strictString(field: string): string {
    const { bytes, at } = this.bytesOfString(field);
    const text = decodeUtf8(bytes);
    if (typeof text === "string") return text;
    // Named in the file's offsets, as every GGUF refusal is: the string's bytes end where the cursor is.
    const bad = this.pos - bytes.length + text.notUtf8At;
    throw new GgufFormatError("GGUF_BAD_STRING", field, at, `is not valid UTF-8 from offset ${bad}`);
  }

  lenientString(field: string): string {
    return utf8Lenient.decode(this.bytesOfString(field).bytes);
  }
}

function valueTypeAt(cur: Cursor, field: string): GgufValueTypeName {
  const at = cur.pos;
  const id = cur.u32(field);
  const name = VALUE_TYPE_NAMES.get(id);
  if (name === undefined) throw new GgufFormatError("GGUF_BAD_TYPE", field, at, `unknown value type ${id}`);
  return name;
}

function readScalar(cur: Cursor, type: GgufValueTypeName, field: string): number | bigint | boolean | string {
  switch (type) {
    case "UINT8":
      return cur.take(1, field).getUint8(0);
    case "INT8":
      return cur.take(1, field).getInt8(0);
    case "UINT16":
      return cur.take(2, field).getUint16(0, true);
    case "INT16":
      return cur.take(2, field).getInt16(0, true);
    case "UINT32":
      return cur.take(4, field).getUint32(0, true);
    case "INT32":
      return cur.take(4, field).getInt32(0, true);
    case "FLOAT32":
      return cur.take(4, field).getFloat32(0, true);
    case "FLOAT64":
      return cur.take(8, field).getFloat64(0, true);
    case "UINT64":
      return cur.take(8, field).getBigUint64(0, true);
    case "INT64":
      return cur.take(8, field).getBigInt64(0, true);
    case "BOOL": {
      const at = cur.pos;
      const b = cur.take(1, field).getUint8(0);
      if (b > 1) throw new GgufFormatError("GGUF_BAD_TYPE", field, at, `bool must be 0 or 1, found ${b}`);
      return b === 1;
    }
    case "STRING":
      return cur.lenientString(field);
    case "ARRAY":
      throw new GgufFormatError("GGUF_BAD_TYPE", field, cur.pos, "array is not a scalar");
  }
}

/** Smallest encoding of one item of `type` (so a count can be bounded before reading). */
function minItemBytes(type: GgufValueTypeName): number {
  if (type === "STRING") return 8;
  if (type === "ARRAY") return 12;
  return scalarSize(type)!;
}

function readArray(cur: Cursor, field: string, depth: number): GgufArray {
  if (depth > MAX_ARRAY_DEPTH) {
    throw new GgufFormatError("GGUF_TOO_DEEP", field, cur.pos, `arrays nested deeper than ${MAX_ARRAY_DEPTH}`);
  }
  const itemType = valueTypeAt(cur, `${field} item type`);
  const countAt = cur.pos;
  const n = cur.count(`${field} count`, minItemBytes(itemType));
  if (n > MAX_ARRAY_ITEMS) {
    throw new GgufFormatError("GGUF_BAD_COUNT", `${field} count`, countAt, `${n} items exceed the limit`);
  }
  const items: GgufItem[] = new Array(n);
  for (let i = 0; i < n; i++) {
    items[i] = itemType === "ARRAY" ? readArray(cur, `${field}[${i}]`, depth + 1) : readScalar(cur, itemType, field);
  }
  return { type: "ARRAY", itemType, items };
}

function readValue(cur: Cursor, type: GgufValueTypeName, field: string): GgufValue {
  if (type === "ARRAY") return readArray(cur, field, 1);
  const value = readScalar(cur, type, field);
  return { type, value } as GgufValue;
}

function parse(src: ByteSource): GgufFile {
  const cur = new Cursor(src);
  const magic = cur.u32("magic");
  if (magic !== GGUF_MAGIC) {
    throw new GgufFormatError(
      "GGUF_BAD_MAGIC",
      "magic",
      0,
      `expected "GGUF", found 0x${magic.toString(16).padStart(8, "0")}`,
    );
  }
  const version = cur.u32("version");
  if (version !== 2 && version !== 3) {
    throw new GgufFormatError("GGUF_BAD_VERSION", "version", 4, `expected 2 or 3, found ${version}`);
  }
  // Minimum sizes: a tensor info is name(8) + n_dims(4) + type(4) + offset(8); a key/value is
  // key(8) + type(4) + at least one value byte.
  const tensorCount = cur.count("tensor_count", 24);
  if (tensorCount > MAX_TENSORS) {
    throw new GgufFormatError("GGUF_BAD_COUNT", "tensor_count", 8, `${tensorCount} tensors exceed the limit`);
  }
  const kvCount = cur.count("metadata_kv_count", 13);
  if (kvCount > MAX_TENSORS) {
    throw new GgufFormatError("GGUF_BAD_COUNT", "metadata_kv_count", 16, `${kvCount} keys exceed the limit`);
  }

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const keyAt = cur.pos;
    const key = cur.strictString(`metadata[${i}].key`);
    if (key.length === 0) throw new GgufFormatError("GGUF_BAD_STRING", `metadata[${i}].key`, keyAt, "key is empty");
    if (metadata.has(key)) throw new GgufFormatError("GGUF_DUPLICATE", `metadata key "${key}"`, keyAt, "appears twice");
    const type = valueTypeAt(cur, `metadata "${key}" type`);
    metadata.set(key, readValue(cur, type, `metadata "${key}"`));
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const alignValue = metadata.get("general.alignment");
  if (alignValue !== undefined) {
    if (alignValue.type !== "UINT32") {
      throw new GgufFormatError(
        "GGUF_BAD_ALIGNMENT",
        "general.alignment",
        0,
        `must be UINT32, found ${alignValue.type}`,
      );
    }
    alignment = alignValue.value;
    if (alignment === 0 || (alignment & (alignment - 1)) !== 0) {
      throw new GgufFormatError(
        "GGUF_BAD_ALIGNMENT",
        "general.alignment",
        0,
        `must be a power of two, found ${alignment}`,
      );
    }
  }

  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const field = `tensor[${i}]`;
    const nameAt = cur.pos;
    const name = cur.strictString(`${field}.name`);
    if (utf8Encoder.encode(name).length >= GGML_MAX_NAME) {
      throw new GgufFormatError(
        "GGUF_BAD_TENSOR",
        `${field}.name`,
        nameAt,
        `name must be shorter than ${GGML_MAX_NAME} bytes`,
      );
    }
    if (names.has(name)) throw new GgufFormatError("GGUF_DUPLICATE", `tensor "${name}"`, nameAt, "appears twice");
    names.add(name);
    const dimsAt = cur.pos;
    const nDims = cur.u32(`tensor "${name}" n_dims`);
    if (nDims > GGML_MAX_DIMS) {
      throw new GgufFormatError(
        "GGUF_BAD_TENSOR",
        `tensor "${name}" n_dims`,
        dimsAt,
        `expected 0..${GGML_MAX_DIMS}, found ${nDims}`,
      );
    }
    const dims: number[] = [];
    let elements = 1n;
    for (let d = 0; d < nDims; d++) {
      const dim = cur.size(`tensor "${name}" dims[${d}]`);
      dims.push(dim);
      elements *= BigInt(dim);
      if (elements > MAX_SAFE) {
        throw new GgufFormatError("GGUF_BAD_TENSOR", `tensor "${name}" dims`, dimsAt, "element count is too large");
      }
    }
    const typeAt = cur.pos;
    const typeId = cur.u32(`tensor "${name}" type`);
    const info = GGML_TYPES.get(typeId);
    if (info === undefined) {
      throw new GgufFormatError("GGUF_BAD_TYPE", `tensor "${name}" type`, typeAt, `unknown ggml type ${typeId}`);
    }
    const rowLength = dims[0] ?? 1;
    if (rowLength % info.blockSize !== 0) {
      throw new GgufFormatError(
        "GGUF_BAD_TENSOR",
        `tensor "${name}" dims[0]`,
        dimsAt,
        `${info.name} needs a multiple of ${info.blockSize}, found ${rowLength}`,
      );
    }
    const offsetAt = cur.pos;
    const offset = cur.size(`tensor "${name}" offset`);
    if (offset % alignment !== 0) {
      throw new GgufFormatError(
        "GGUF_BAD_ALIGNMENT",
        `tensor "${name}" offset`,
        offsetAt,
        `${offset} is not a multiple of ${alignment}`,
      );
    }
    const n = Number(elements);
    tensors.push({
      name,
      dims,
      type: typeId,
      typeName: info.name,
      offset,
      elements: n,
      byteSize: (n / info.blockSize) * info.typeSize,
    });
  }

  const dataOffset = alignUp(cur.pos, alignment);
  if (dataOffset > src.size) {
    throw new GgufFormatError(
      "GGUF_TRUNCATED",
      "data section",
      cur.pos,
      `padding to ${alignment} runs past the end of the file`,
    );
  }
  const dataSize = src.size - dataOffset;
  const byOffset = [...tensors].sort((a, b) => a.offset - b.offset);
  let end = 0;
  let previous = "";
  for (const t of byOffset) {
    if (t.offset < end) {
      throw new GgufFormatError(
        "GGUF_BAD_TENSOR",
        `tensor "${t.name}" offset`,
        dataOffset + t.offset,
        `overlaps tensor "${previous}"`,
      );
    }
    if (t.offset + t.byteSize > dataSize) {
      throw new GgufFormatError(
        "GGUF_TRUNCATED",
        `tensor "${t.name}" data`,
        dataOffset + t.offset,
        `needs ${t.byteSize} bytes, file has ${Math.max(0, dataSize - t.offset)} left`,
      );
    }
    end = t.offset + t.byteSize;
    previous = t.name;
  }

  return { version, metadata, tensors, alignment, dataOffset, fileSize: src.size };
}

/** Parse a GGUF file held in memory. Throws only {@link GgufFormatError}. */
export function parseGgufBytes(bytes: Uint8Array): GgufFile {
  return parse({ size: bytes.length, read: (offset, length) => bytes.subarray(offset, offset + length) });
}

const WINDOW = 1 << 20;

/**
 * Parse the GGUF file at `path`, reading only its header region (metadata and tensor infos) in
 * 1 MiB windows. Opened as every model input is (openModelInput: what is not a regular file, a FIFO
 * or a device, is refused unopened, not waited on: ModelNotRegularFileError, MODEL_IO). Throws
 * {@link GgufFormatError} for malformed content, {@link ModelIoError} when the file cannot be opened
 * or read; a failing close does not replace either (closeModelInput).
 */
export async function readGgufFile(path: string): Promise<GgufFile> {
  const { handle } = await openModelInput(path);
  try {
    return await readGgufHandle(handle, path);
  } finally {
    await closeModelInput(handle);
  }
}

/**
 * readGgufFile on a file already open (`handle`, read at offsets: its position is left as it was;
 * not closed; `path` only names it), for a caller that reads the same file again through it.
 */
export async function readGgufHandle(handle: FileHandle, path: string): Promise<GgufFile> {
  try {
    const { size } = await handle.stat();
    // The parser is synchronous; it asks for small ranges, served from a window read up front
    // through the async handle. A request outside the window is refilled by a sync read of the
    // same descriptor (the header region is small, so this happens rarely).
    const { readSync } = await import("node:fs");
    let windowStart = 0;
    let window = new Uint8Array(0);
    const fill = (offset: number, length: number) => {
      const want = Math.min(Math.max(length, WINDOW), size - offset);
      const buf = new Uint8Array(want);
      let got = 0;
      while (got < want) {
        const n = readSync(handle.fd, buf, got, want - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      if (got < length) throw new ModelIoError(path, "read", new Error("file shrank while being read"));
      windowStart = offset;
      window = buf.subarray(0, got);
    };
    const source: ByteSource = {
      size,
      read(offset, length) {
        if (offset < windowStart || offset + length > windowStart + window.length) fill(offset, length);
        return window.subarray(offset - windowStart, offset - windowStart + length);
      },
    };
    return parse(source);
  } catch (error) {
    if (error instanceof GgufFormatError || error instanceof ModelIoError) throw error;
    throw new ModelIoError(path, "read", error);
  }
}

// ---- typed accessors -------------------------------------------------------------------------

export function metadataString(file: GgufFile, key: string): string | undefined {
  const v = file.metadata.get(key);
  return v?.type === "STRING" ? v.value : undefined;
}

/** A numeric metadata value of any integer or float type, as a number. */
export function metadataNumber(file: GgufFile, key: string): number | undefined {
  const v = file.metadata.get(key);
  if (v === undefined || v.type === "ARRAY" || v.type === "STRING" || v.type === "BOOL") return undefined;
  return Number(v.value);
}

export function metadataArrayLength(file: GgufFile, key: string): number | undefined {
  const v = file.metadata.get(key);
  return v?.type === "ARRAY" ? v.items.length : undefined;
}
