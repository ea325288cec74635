import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { GgufFormatError, GgufWriteError } from "../../models/errors.ts";
import {
  encodeGgufHeader,
  type GgufFile,
  type GgufMetadata,
  GgufWriter,
  parseGgufBytes,
  readGgufFile,
  writeGguf,
} from "../../models/gguf.ts";
import { dequantizeQ8_0, f16BitsToF32, f32ToF16Bits } from "../../models/numeric.ts";
import { thrownBy } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-gguf-");

const METADATA: GgufMetadata = [
  ["general.architecture", { type: "STRING", value: "llama" }],
  ["u8", { type: "UINT8", value: 255 }],
  ["i8", { type: "INT8", value: -128 }],
  ["u16", { type: "UINT16", value: 65535 }],
  ["i16", { type: "INT16", value: -32768 }],
  ["u32", { type: "UINT32", value: 4294967295 }],
  ["i32", { type: "INT32", value: -2147483648 }],
  ["f32", { type: "FLOAT32", value: 0.5 }],
  ["bool", { type: "BOOL", value: true }],
  ["str.utf8", { type: "STRING", value: "héllo 😀 日本" }],
  ["u64", { type: "UINT64", value: 18446744073709551615n }],
  ["i64", { type: "INT64", value: -9223372036854775808n }],
  ["f64", { type: "FLOAT64", value: Math.PI }],
  ["arr.str", { type: "ARRAY", itemType: "STRING", items: ["a", "", "▁b"] }],
  ["arr.i32", { type: "ARRAY", itemType: "INT32", items: [1, -2, 3] }],
  ["arr.empty", { type: "ARRAY", itemType: "FLOAT32", items: [] }],
  [
    "arr.nested",
    {
      type: "ARRAY",
      itemType: "ARRAY",
      items: [
        { type: "ARRAY", itemType: "UINT64", items: [1n, 2n] },
        { type: "ARRAY", itemType: "BOOL", items: [false] },
      ],
    },
  ],
];

function ramp(n: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.fround(Math.sin(i * 0.37) * scale);
  return a;
}

const TENSORS = [
  { name: "a.f32", type: "F32" as const, dims: [5, 3], data: ramp(15, 3) },
  { name: "b.f16", type: "F16" as const, dims: [7], data: ramp(7, 100) },
  { name: "c.q8_0", type: "Q8_0" as const, dims: [64, 2], data: ramp(128, 2) },
];

function tensorBytes(file: GgufFile, bytes: Uint8Array, name: string): Uint8Array {
  const t = file.tensors.find((x) => x.name === name)!;
  return bytes.subarray(file.dataOffset + t.offset, file.dataOffset + t.offset + t.byteSize);
}

describe("GGUF writer → reader round trip", () => {
  let path: string;
  let bytes: Uint8Array;
  let parsed: GgufFile;

  beforeAll(async () => {
    path = join(dir, "roundtrip.gguf");
    await writeGguf(path, METADATA, TENSORS);
    bytes = new Uint8Array(await readFile(path));
    parsed = parseGgufBytes(bytes);
  });

  it("reads back every metadata value with its type", () => {
    expect(parsed.version).toBe(3);
    expect([...parsed.metadata.keys()]).toEqual(METADATA.map(([k]) => k));
    for (const [key, value] of METADATA) expect(parsed.metadata.get(key), key).toEqual(value);
  });

  it("reads back tensor infos, alignment and an aligned data section", () => {
    expect(parsed.alignment).toBe(32);
    expect(parsed.dataOffset % 32).toBe(0);
    expect(parsed.tensors.map((t) => [t.name, t.typeName, t.dims, t.elements])).toEqual([
      ["a.f32", "F32", [5, 3], 15],
      ["b.f16", "F16", [7], 7],
      ["c.q8_0", "Q8_0", [64, 2], 128],
    ]);
    for (const t of parsed.tensors) expect(t.offset % 32).toBe(0);
    expect(parsed.fileSize).toBe(bytes.length);
  });

  it("stores F32 exactly, F16 rounded to nearest and Q8_0 within half a step", () => {
    const f32 = new Float32Array(tensorBytes(parsed, bytes, "a.f32").slice().buffer);
    expect([...f32]).toEqual([...TENSORS[0]!.data]);
    const f16 = tensorBytes(parsed, bytes, "b.f16");
    const view = new DataView(f16.buffer, f16.byteOffset, f16.byteLength);
    TENSORS[1]!.data.forEach((v, i) => {
      expect(view.getUint16(i * 2, true)).toBe(f32ToF16Bits(v));
      expect(Math.abs(f16BitsToF32(view.getUint16(i * 2, true)) - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11);
    });
    const q = dequantizeQ8_0(tensorBytes(parsed, bytes, "c.q8_0"), 4);
    const src = TENSORS[2]!.data;
    for (let b = 0; b < 4; b++) {
      const block = src.subarray(b * 32, b * 32 + 32);
      const step = Math.max(...block.map(Math.abs)) / 127;
      block.forEach((v, j) => {
        // Half a step from rounding plus the scale's own half-precision rounding (127 · 2^-11 steps).
        expect(Math.abs(q[b * 32 + j]! - v)).toBeLessThanOrEqual(step * (0.5 + 127 * 2 ** -11));
      });
    }
  });

  it("reads the same structure from a path as from memory", async () => {
    const fromPath = await readGgufFile(path);
    expect(fromPath).toEqual(parsed);
  });

  it("honours a custom general.alignment", async () => {
    const p = join(dir, "align64.gguf");
    await writeGguf(p, [["general.alignment", { type: "UINT32", value: 64 }]], TENSORS);
    const f = await readGgufFile(p);
    expect(f.alignment).toBe(64);
    expect(f.dataOffset % 64).toBe(0);
    for (const t of f.tensors) expect(t.offset % 64).toBe(0);
  });

  it("writer refuses misuse with GgufWriteError", async () => {
    const p = join(dir, "bad.gguf");
    await expect(writeGguf(p, [["x", { type: "UINT8", value: 256 }]], [])).rejects.toBeInstanceOf(GgufWriteError);
    await expect(
      writeGguf(
        p,
        [
          ["k", { type: "BOOL", value: true }],
          ["k", { type: "BOOL", value: false }],
        ],
        [],
      ),
    ).rejects.toBeInstanceOf(GgufWriteError);
    await expect(
      writeGguf(p, [], [{ name: "q", type: "Q8_0", dims: [33], data: new Float32Array(33) }]),
    ).rejects.toThrow(/multiple of 32/);
    await expect(writeGguf(p, [], [{ name: "t", type: "F32", dims: [4], data: new Float32Array(5) }])).rejects.toThrow(
      /values left/,
    );
  });
});

// ---- malformed input ---------------------------------------------------------------------------

interface RawTensor {
  name: string;
  dims: number[];
  type: number;
  offset: number | bigint;
}

/** Hand-built GGUF bytes, so every field can be set to something a writer would refuse. */
function rawGguf(opts: {
  magic?: number;
  version?: number;
  tensorCount?: bigint;
  kvCount?: bigint;
  kvs?: Uint8Array[];
  tensors?: RawTensor[];
  dataBytes?: number;
}): Uint8Array {
  const parts: number[] = [];
  const u32 = (v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    parts.push(...b);
  };
  const u64 = (v: bigint | number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    parts.push(...b);
  };
  const str = (s: string) => {
    const b = new TextEncoder().encode(s);
    u64(b.length);
    parts.push(...b);
  };
  const kvs = opts.kvs ?? [];
  const tensors = opts.tensors ?? [];
  u32(opts.magic ?? 0x46554747);
  u32(opts.version ?? 3);
  u64(opts.tensorCount ?? BigInt(tensors.length));
  u64(opts.kvCount ?? BigInt(kvs.length));
  for (const kv of kvs) parts.push(...kv);
  for (const t of tensors) {
    str(t.name);
    u32(t.dims.length);
    for (const d of t.dims) u64(d);
    u32(t.type);
    u64(t.offset);
  }
  while (parts.length % 32 !== 0) parts.push(0);
  for (let i = 0; i < (opts.dataBytes ?? 0); i++) parts.push(0);
  return new Uint8Array(parts);
}

/** One raw key/value: key string, type id, then the given value bytes. */
function rawKv(key: string, type: number, value: number[]): Uint8Array {
  const k = new TextEncoder().encode(key);
  const out = new Uint8Array(8 + k.length + 4 + value.length);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, BigInt(k.length), true);
  out.set(k, 8);
  v.setUint32(8 + k.length, type, true);
  out.set(value, 12 + k.length);
  return out;
}
/** An ARRAY value (item type, count, items) of `depth` arrays, each holding the next; the innermost is empty. */
function nestedArrays(depth: number): number[] {
  let value: number[] = [...le32(0), ...le64(0n)];
  for (let i = 1; i < depth; i++) value = [...le32(9), ...le64(1n), ...value];
  return value;
}
const le32 = (n: number) => [...new Uint8Array(new Uint32Array([n]).buffer)];
const le64 = (n: bigint) => [...new Uint8Array(new BigUint64Array([n]).buffer)];

function expectFormatError(bytes: Uint8Array, code: string): GgufFormatError {
  const err = thrownBy(() => parseGgufBytes(bytes), GgufFormatError);
  expect(err.code).toBe(code);
  expect(err.message).toMatch(/at offset \d+/);
  return err;
}

describe("GGUF writer: a file appears whole or not at all", () => {
  it("leaves the file already at the path as it was when a write fails, and leaves no partial file", async () => {
    const sub = await mkdtemp(join(dir, "atomic-"));
    const path = join(sub, "model.gguf");
    await writeFile(path, "the operator's previous model");
    const writer = await GgufWriter.create(path, METADATA, TENSORS);
    await writer.append(new Float32Array(4)); // a.f32 needs 15 values: incomplete
    await expect(writer.finish()).rejects.toBeInstanceOf(GgufWriteError);
    expect(await readFile(path, "utf8")).toBe("the operator's previous model");
    expect(await readdir(sub)).toEqual(["model.gguf"]);
    // A write that completes replaces it.
    await writeGguf(path, METADATA, TENSORS);
    expect((await readGgufFile(path)).tensors.map((t) => t.name)).toEqual(["a.f32", "b.f16", "c.q8_0"]);
    expect(await readdir(sub)).toEqual(["model.gguf"]);
  });
});

describe("GGUF writer: a partial file left by a writer that was killed outright", () => {
  it("is removed by the next write of the same path; a live writer's, another path's and other files are kept", async () => {
    const sub = await mkdtemp(join(dir, "abandoned-"));
    // No process has a pid above pid_max: a writer killed outright (SIGKILL, or Ctrl-C: Node's
    // default SIGINT runs no cleanup) left this one.
    const dead = Number((await readFile("/proc/sys/kernel/pid_max", "utf8")).trim()) + 1;
    const abandoned = `.model.gguf.${dead}.0123456789ab.partial`;
    const live = `.model.gguf.${process.pid}.0123456789ab.partial`;
    const otherPath = `.other.gguf.${dead}.0123456789ab.partial`;
    for (const name of [abandoned, live, otherPath, "notes.txt"]) await writeFile(join(sub, name), "bytes");
    await writeGguf(join(sub, "model.gguf"), METADATA, TENSORS);
    expect((await readdir(sub)).sort()).toEqual([live, otherPath, "model.gguf", "notes.txt"].sort());
  });
});

describe("GGUF reader rejects malformed input with GgufFormatError", () => {
  const valid = (() => {
    const layout = encodeGgufHeader(METADATA, TENSORS);
    const out = new Uint8Array(layout.totalSize);
    out.set(layout.header);
    return out;
  })();

  it("accepts the valid base file", () => {
    expect(parseGgufBytes(valid).tensors).toHaveLength(3);
  });

  it("rejects every truncation of a valid file before the end of its last tensor", () => {
    const parsed = parseGgufBytes(valid);
    const last = parsed.tensors[parsed.tensors.length - 1]!;
    const dataEnd = parsed.dataOffset + last.offset + last.byteSize;
    for (let len = 0; len < dataEnd; len++) {
      expect(() => parseGgufBytes(valid.subarray(0, len)), `length ${len}`).toThrow(GgufFormatError);
    }
    // Only the trailing alignment padding may be cut.
    expect(parseGgufBytes(valid.subarray(0, dataEnd)).tensors).toHaveLength(3);
    expectFormatError(valid.subarray(0, 10), "GGUF_TRUNCATED");
    expect(expectFormatError(valid.subarray(0, 3), "GGUF_TRUNCATED").field).toBe("magic");
    expect(expectFormatError(valid.subarray(0, dataEnd - 1), "GGUF_TRUNCATED").field).toBe('tensor "c.q8_0" data');
  });

  const table: [string, () => Uint8Array, string, RegExp?][] = [
    ["bad magic", () => rawGguf({ magic: 0x46554746 }), "GGUF_BAD_MAGIC", /magic/],
    ["version 1", () => rawGguf({ version: 1 }), "GGUF_BAD_VERSION", /version/],
    ["version 4", () => rawGguf({ version: 4 }), "GGUF_BAD_VERSION"],
    ["big-endian version", () => rawGguf({ version: 0x03000000 }), "GGUF_BAD_VERSION"],
    ["huge tensor count", () => rawGguf({ tensorCount: 0xffffffffffffffffn }), "GGUF_BAD_COUNT", /tensor_count/],
    ["tensor count past the file", () => rawGguf({ tensorCount: 1000n }), "GGUF_BAD_COUNT", /tensor_count/],
    ["huge kv count", () => rawGguf({ kvCount: 1n << 40n }), "GGUF_BAD_COUNT", /metadata_kv_count/],
    [
      "huge string length",
      () => rawGguf({ kvs: [rawKv("k", 8, le64(1n << 50n))] }),
      "GGUF_BAD_COUNT",
      /metadata "k" length/,
    ],
    [
      "string past the end",
      () => rawGguf({ kvs: [rawKv("k", 8, [...le64(100n), 65, 66])] }),
      "GGUF_TRUNCATED",
      /metadata "k"/,
    ],
    [
      "huge array count",
      () => rawGguf({ kvs: [rawKv("k", 9, [...le32(4), ...le64(1n << 61n)])] }),
      "GGUF_BAD_COUNT",
      /metadata "k" count/,
    ],
    ["unknown value type", () => rawGguf({ kvs: [rawKv("k", 13, [0])] }), "GGUF_BAD_TYPE", /metadata "k" type/],
    [
      "unknown array item type",
      () => rawGguf({ kvs: [rawKv("k", 9, [...le32(99), ...le64(0n)])] }),
      "GGUF_BAD_TYPE",
      /item type/,
    ],
    ["bool that is 2", () => rawGguf({ kvs: [rawKv("k", 7, [2])] }), "GGUF_BAD_TYPE"],
    ["empty key", () => rawGguf({ kvs: [rawKv("", 0, [1])] }), "GGUF_BAD_STRING"],
    [
      "key not UTF-8",
      () => {
        const kv = rawKv("abc", 0, [1]);
        kv[9] = 0xff;
        return rawGguf({ kvs: [kv] });
      },
      "GGUF_BAD_STRING",
      // The key's length at 24 (after the header), its bytes from 32: the bad one is the second.
      /at offset 24: is not valid UTF-8 from offset 33$/,
    ],
    ["duplicate key", () => rawGguf({ kvs: [rawKv("k", 0, [1]), rawKv("k", 0, [2])] }), "GGUF_DUPLICATE"],
    ["deeply nested arrays", () => rawGguf({ kvs: [rawKv("k", 9, nestedArrays(7))] }), "GGUF_TOO_DEEP"],
    [
      "alignment not a power of two",
      () => rawGguf({ kvs: [rawKv("general.alignment", 4, le32(24))] }),
      "GGUF_BAD_ALIGNMENT",
    ],
    [
      "alignment of the wrong type",
      () => rawGguf({ kvs: [rawKv("general.alignment", 10, le64(32n))] }),
      "GGUF_BAD_ALIGNMENT",
    ],
    [
      "unknown tensor type",
      () => rawGguf({ tensors: [{ name: "t", dims: [4], type: 4, offset: 0 }], dataBytes: 64 }),
      "GGUF_BAD_TYPE",
      /tensor "t" type/,
    ],
    [
      "five dims",
      () => rawGguf({ tensors: [{ name: "t", dims: [1, 1, 1, 1, 1], type: 0, offset: 0 }], dataBytes: 64 }),
      "GGUF_BAD_TENSOR",
    ],
    [
      "element count overflow",
      () => rawGguf({ tensors: [{ name: "t", dims: [2 ** 30, 2 ** 30], type: 0, offset: 0 }] }),
      "GGUF_BAD_TENSOR",
    ],
    [
      "Q8_0 row not a multiple of 32",
      () => rawGguf({ tensors: [{ name: "t", dims: [33], type: 8, offset: 0 }], dataBytes: 64 }),
      "GGUF_BAD_TENSOR",
    ],
    [
      "misaligned offset",
      () => rawGguf({ tensors: [{ name: "t", dims: [4], type: 0, offset: 8 }], dataBytes: 64 }),
      "GGUF_BAD_ALIGNMENT",
    ],
    [
      "overlapping tensors",
      () =>
        rawGguf({
          tensors: [
            { name: "a", dims: [16], type: 0, offset: 0 },
            { name: "b", dims: [16], type: 0, offset: 32 },
          ],
          dataBytes: 128,
        }),
      "GGUF_BAD_TENSOR",
      /overlaps/,
    ],
    [
      "duplicate tensor name",
      () =>
        rawGguf({
          tensors: [
            { name: "a", dims: [4], type: 0, offset: 0 },
            { name: "a", dims: [4], type: 0, offset: 32 },
          ],
          dataBytes: 64,
        }),
      "GGUF_DUPLICATE",
    ],
    [
      "tensor data past the end",
      () => rawGguf({ tensors: [{ name: "t", dims: [1024], type: 0, offset: 0 }], dataBytes: 64 }),
      "GGUF_TRUNCATED",
      /tensor "t" data/,
    ],
    [
      "offset beyond 2^53",
      () => rawGguf({ tensors: [{ name: "t", dims: [4], type: 0, offset: 1n << 60n }], dataBytes: 64 }),
      "GGUF_BAD_COUNT",
    ],
    [
      "tensor name of 64 bytes",
      () => rawGguf({ tensors: [{ name: "n".repeat(64), dims: [4], type: 0, offset: 0 }], dataBytes: 64 }),
      "GGUF_BAD_TENSOR",
    ],
    // Each bound at its edge: one byte or one level past what is accepted below.
    ["alignment 0", () => rawGguf({ kvs: [rawKv("general.alignment", 4, le32(0))] }), "GGUF_BAD_ALIGNMENT"],
    [
      "one tensor info needs 24 bytes, 23 remain",
      () => rawGguf({ tensorCount: 1n, dataBytes: 7 }),
      "GGUF_BAD_COUNT",
      /tensor_count/,
    ],
    [
      "one key/value needs 13 bytes, 12 remain",
      () => rawGguf({ kvCount: 1n, dataBytes: 4 }),
      "GGUF_BAD_COUNT",
      /metadata_kv_count/,
    ],
    [
      "string array count past the file (8 bytes an item at least)",
      () => rawGguf({ kvs: [rawKv("k", 9, [...le32(8), ...le64(1n << 20n)])] }),
      "GGUF_BAD_COUNT",
      /metadata "k" count/,
    ],
    [
      "nested array count past the file (12 bytes an item at least)",
      () => rawGguf({ kvs: [rawKv("k", 9, [...le32(9), ...le64(1n << 20n)])] }),
      "GGUF_BAD_COUNT",
      /metadata "k" count/,
    ],
    ["arrays nested five deep", () => rawGguf({ kvs: [rawKv("k", 9, nestedArrays(5))] }), "GGUF_TOO_DEEP"],
    [
      "a Q8_0 scalar (no dims: a row of 1, not a multiple of 32)",
      () => rawGguf({ tensors: [{ name: "t", dims: [], type: 8, offset: 0 }], dataBytes: 64 }),
      "GGUF_BAD_TENSOR",
    ],
    [
      "tensors overlapping by one byte (alignment 1)",
      () =>
        rawGguf({
          kvs: [rawKv("general.alignment", 4, le32(1))],
          tensors: [
            { name: "a", dims: [4], type: 0, offset: 0 },
            { name: "b", dims: [4], type: 0, offset: 15 },
          ],
          dataBytes: 64,
        }),
      "GGUF_BAD_TENSOR",
      /overlaps/,
    ],
    ["a file that ends before the data section's padding", () => rawGguf({}).subarray(0, 24), "GGUF_TRUNCATED"],
  ];

  it("keeps a key's leading byte order mark: it is another key, not a second spelling of one", () => {
    const parsed = parseGgufBytes(rawGguf({ kvs: [rawKv("\uFEFFk", 0, [1]), rawKv("k", 0, [2])] }));
    expect([...parsed.metadata.keys()]).toEqual(["\uFEFFk", "k"]);
  });

  it("accepts each bound at its edge: arrays nested four deep, four dims, a data section of no bytes", () => {
    expect(parseGgufBytes(rawGguf({ kvs: [rawKv("k", 9, nestedArrays(4))] })).metadata.get("k")).toMatchObject({
      type: "ARRAY",
    });
    const fourDims = parseGgufBytes(
      rawGguf({ tensors: [{ name: "t", dims: [1, 1, 1, 2], type: 0, offset: 0 }], dataBytes: 8 }),
    );
    expect(fourDims.tensors[0]?.dims).toEqual([1, 1, 1, 2]);
    expect(parseGgufBytes(rawGguf({})).dataOffset).toBe(32);
  });

  for (const [name, build, code, field] of table) {
    it(`${name} → ${code}`, () => {
      const err = expectFormatError(build(), code);
      if (field !== undefined) expect(err.message).toMatch(field);
    });
  }

  it("a hostile file on disk gives the typed error too", async () => {
    const p = join(dir, "hostile.gguf");
    await writeFile(p, rawGguf({ kvs: [rawKv("k", 9, [...le32(8), ...le64(1n << 55n)])] }));
    await expect(readGgufFile(p)).rejects.toBeInstanceOf(GgufFormatError);
  });

  it("random bytes and random mutations of a valid file yield only GgufFormatError", () => {
    const header = valid.subarray(0, 8);
    const checkOnlyTypedErrors = (bytes: Uint8Array) => {
      try {
        parseGgufBytes(bytes);
      } catch (e) {
        if (!(e instanceof GgufFormatError)) throw e;
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (tail, withHeader) => {
        const bytes = withHeader ? new Uint8Array([...header, ...tail]) : tail;
        checkOnlyTypedErrors(bytes);
      }),
      { numRuns: 400, seed: 20240601 },
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.nat(valid.length),
        (edits, cut) => {
          const bytes = valid.slice(0, Math.max(cut, 24));
          for (const [at, value] of edits) if (at < bytes.length) bytes[at] = value;
          checkOnlyTypedErrors(bytes);
        },
      ),
      { numRuns: 1500, seed: 20240602 },
    );
  });
});

describe("GGUF errors quote file contents safely", () => {
  it("cut a long key and escape control characters, so the error stays one short line", () => {
    const key = `${"\n\u001b[31mFAKE: model verified OK"}${"x".repeat(5000)}`;
    const err = expectFormatError(rawGguf({ kvs: [rawKv(key, 0, [1]), rawKv(key, 0, [2])] }), "GGUF_DUPLICATE");
    expect([...err.message].some((ch) => (ch.codePointAt(0) as number) < 0x20)).toBe(false);
    expect(err.message).toContain("\\u001b");
    expect(err.message.length).toBeLessThan(300);
  });

  it("cut on a character boundary: an astral character across the cut is dropped whole, not halved to a lone surrogate", () => {
    // 'metadata key "' is 14 units, so the emoji's two UTF-16 units are the 160th and 161st.
    const key = `${"x".repeat(145)}\u{1F600}${"y".repeat(100)}`;
    const err = expectFormatError(rawGguf({ kvs: [rawKv(key, 0, [1]), rawKv(key, 0, [2])] }), "GGUF_DUPLICATE");
    expect(err.field).toBe(`metadata key "${"x".repeat(145)}…`);
    expect(err.message).not.toMatch(/\p{Cs}/u);
    // One unit earlier, the whole character fits within the 160 and is kept.
    const fits = `${"x".repeat(144)}\u{1F600}${"y".repeat(100)}`;
    const kept = expectFormatError(rawGguf({ kvs: [rawKv(fits, 0, [1]), rawKv(fits, 0, [2])] }), "GGUF_DUPLICATE");
    expect(kept.field).toBe(`metadata key "${"x".repeat(144)}\u{1F600}…`);
  });
});
