/**
 * GGUF v3 reader and streaming writer (see gguf-read.ts and gguf-write.ts for what each checks).
 * This module only re-exports, so callers have one import path.
 */
export {
  GGML_TYPES,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_VERSION,
  type GgmlTypeInfo,
  type GgufArray,
  type GgufItem,
  type GgufValue,
  type GgufValueTypeName,
  type WritableGgmlType,
} from "./gguf-format.ts";
export {
  type GgufFile,
  type GgufTensorInfo,
  metadataArrayLength,
  metadataNumber,
  metadataString,
  parseGgufBytes,
  readGgufFile,
} from "./gguf-read.ts";
export {
  encodeGgufHeader,
  type GgufLayout,
  type GgufMetadata,
  type GgufTensorSpec,
  GgufWriter,
  writeGguf,
} from "./gguf-write.ts";
