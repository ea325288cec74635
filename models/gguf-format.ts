/**
 * GGUF constants shared by the reader and the writer: magic, versions, metadata value types and
 * the ggml tensor types with their block geometry (elements per block, bytes per block), taken from
 * the GGUF specification and ggml's type table. Nothing here does I/O.
 */

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml's limit on tensor dimensions and on tensor name length (name must be < 64 bytes). */
export const GGML_MAX_DIMS = 4;
export const GGML_MAX_NAME = 64;

/** Metadata value types, by their on-disk number. */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueTypeName = keyof typeof GgufValueType;

/** One item of a metadata array: a scalar (u64/i64 as bigint) or a nested array. */
export type GgufItem = number | bigint | boolean | string | GgufArray;
export interface GgufArray {
  readonly type: "ARRAY";
  readonly itemType: GgufValueTypeName;
  readonly items: readonly GgufItem[];
}
/** A metadata value with its on-disk type. */
export type GgufValue =
  | {
      readonly type: "UINT8" | "INT8" | "UINT16" | "INT16" | "UINT32" | "INT32" | "FLOAT32" | "FLOAT64";
      readonly value: number;
    }
  | { readonly type: "UINT64" | "INT64"; readonly value: bigint }
  | { readonly type: "BOOL"; readonly value: boolean }
  | { readonly type: "STRING"; readonly value: string }
  | GgufArray;

export const VALUE_TYPE_NAMES: ReadonlyMap<number, GgufValueTypeName> = new Map(
  Object.entries(GgufValueType).map(([name, id]) => [id, name as GgufValueTypeName]),
);

/** Fixed byte size of a scalar value type; STRING and ARRAY are variable (undefined here). */
export function scalarSize(type: GgufValueTypeName): number | undefined {
  switch (type) {
    case "UINT8":
    case "INT8":
    case "BOOL":
      return 1;
    case "UINT16":
    case "INT16":
      return 2;
    case "UINT32":
    case "INT32":
    case "FLOAT32":
      return 4;
    case "UINT64":
    case "INT64":
    case "FLOAT64":
      return 8;
    default:
      return undefined;
  }
}

export interface GgmlTypeInfo {
  readonly id: number;
  readonly name: string;
  /** Elements per block (1 for plain types). */
  readonly blockSize: number;
  /** Bytes per block. */
  readonly typeSize: number;
}

const TYPE_TABLE: readonly (readonly [number, string, number, number])[] = [
  [0, "F32", 1, 4],
  [1, "F16", 1, 2],
  [2, "Q4_0", 32, 18],
  [3, "Q4_1", 32, 20],
  [6, "Q5_0", 32, 22],
  [7, "Q5_1", 32, 24],
  [8, "Q8_0", 32, 34],
  [9, "Q8_1", 32, 36],
  [10, "Q2_K", 256, 84],
  [11, "Q3_K", 256, 110],
  [12, "Q4_K", 256, 144],
  [13, "Q5_K", 256, 176],
  [14, "Q6_K", 256, 210],
  [15, "Q8_K", 256, 292],
  [16, "IQ2_XXS", 256, 66],
  [17, "IQ2_XS", 256, 74],
  [18, "IQ3_XXS", 256, 98],
  [19, "IQ1_S", 256, 50],
  [20, "IQ4_NL", 32, 18],
  [21, "IQ3_S", 256, 110],
  [22, "IQ2_S", 256, 82],
  [23, "IQ4_XS", 256, 136],
  [24, "I8", 1, 1],
  [25, "I16", 1, 2],
  [26, "I32", 1, 4],
  [27, "I64", 1, 8],
  [28, "F64", 1, 8],
  [29, "IQ1_M", 256, 56],
  [30, "BF16", 1, 2],
  [34, "TQ1_0", 256, 54],
  [35, "TQ2_0", 256, 66],
  [39, "MXFP4", 32, 17],
  [40, "NVFP4", 64, 36],
  [41, "Q1_0", 128, 18],
  [42, "Q2_0", 64, 18],
];

export const GGML_TYPES: ReadonlyMap<number, GgmlTypeInfo> = new Map(
  TYPE_TABLE.map(([id, name, blockSize, typeSize]) => [id, { id, name, blockSize, typeSize }]),
);

/** The tensor types this project's writer produces. */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type WritableGgmlType = keyof typeof GgmlType;

export function alignUp(value: number, alignment: number): number {
  const rem = value % alignment;
  return rem === 0 ? value : value + (alignment - rem);
}
