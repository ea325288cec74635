/**
 * Errors of the models/ code. Every failure carries a stable `code`; GGUF parse failures also name
 * the field and the byte offset where the file stopped making sense, so `cloister model inspect` can
 * print one precise line. Messages hold structural facts only (field names, offsets, sizes, type
 * numbers), never model contents beyond the metadata key that was being read.
 */
import { fileMessage } from "../attestation/bounded-read.ts";
import { visibleOnOneLine } from "../client/cli/terminal-text.ts";

export type GgufErrorCode =
  | "GGUF_TRUNCATED"
  | "GGUF_BAD_MAGIC"
  | "GGUF_BAD_VERSION"
  | "GGUF_BAD_TYPE"
  | "GGUF_BAD_COUNT"
  | "GGUF_BAD_STRING"
  | "GGUF_DUPLICATE"
  | "GGUF_BAD_ALIGNMENT"
  | "GGUF_BAD_TENSOR"
  | "GGUF_TOO_DEEP";

export class ModelError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ModelError";
    this.code = code;
  }
}

/** Bytes that are not a well-formed GGUF v2/v3 file: names the field and its byte offset. */
export class GgufFormatError extends ModelError {
  override readonly code: GgufErrorCode;
  readonly field: string;
  readonly offset: number;

  constructor(code: GgufErrorCode, field: string, offset: number, detail: string, options?: { cause?: unknown }) {
    // Field names quote keys and tensor names from the (untrusted) file: cut and made printable,
    // so an error stays one short line and cannot carry terminal escapes.
    const printable = printableField(field);
    super(code, `${printable} at offset ${offset}: ${detail}`, options);
    this.name = "GgufFormatError";
    this.code = code;
    this.field = printable;
    this.offset = offset;
  }
}

/** A GGUF writer used out of order or with data that does not match its declared tensors. */
export class GgufWriteError extends ModelError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("GGUF_WRITE", message, options);
    this.name = "GgufWriteError";
  }
}

/**
 * A model file that cannot be opened, read or written (wraps the operating-system error). `what`
 * names the file as the other messages about it do ("sealed model output" for `model seal`'s OUT).
 */
export class ModelIoError extends ModelError {
  readonly path: string;

  constructor(path: string, action: string, cause: unknown, what = "model file") {
    const reason = (cause as { code?: unknown } | null)?.code;
    const errno = typeof reason === "string" ? ` (${reason})` : "";
    super("MODEL_IO", fileMessage(path, what, `cannot ${action}${errno}`), { cause });
    this.name = "ModelIoError";
    this.path = path;
  }
}

/**
 * The refusal of a read or fstat of the model file `path` that failed, for a promise's `.catch`:
 * MODEL_IO (ModelIoError), naming it and the errno.
 */
export function cannotRead(path: string): (cause: unknown) => never {
  return (cause) => {
    throw new ModelIoError(path, "read", cause);
  };
}

/**
 * A model path that is there but is not a regular file (a FIFO, a device, a socket, a directory),
 * refused without being waited on or read: code MODEL_IO, and bad input (isModelBadInput) by this
 * class, not by a missing cause. `found` says what the path is (describeFileKind).
 */
export class ModelNotRegularFileError extends ModelError {
  readonly path: string;
  readonly found: string;

  constructor(path: string, what: string, found: string) {
    super("MODEL_IO", fileMessage(path, what, `expected a regular file, found ${found}`));
    this.name = "ModelNotRegularFileError";
    this.path = path;
    this.found = found;
  }
}

/**
 * errno codes of a path that cannot be used as given: missing, a directory or not one, not
 * permitted, a loop of links, too long. For a file named on the command line that is bad input.
 */
const BAD_PATH_ERRNO: ReadonlySet<string> = new Set([
  "ENOENT",
  "ENOTDIR",
  "EISDIR",
  "EACCES",
  "EPERM",
  "ELOOP",
  "ENAMETOOLONG",
]);

/**
 * Whether a models/ error means bad input (the CLI exits 2, as for USAGE): a model file or output
 * path that cannot be used as given (MODEL_IO with one of BAD_PATH_ERRNO, or ModelNotRegularFileError: not
 * a regular file), or an output that exists and is replaced only with --force (MODEL_OUTPUT_EXISTS). A
 * read that fails part-way (EIO, a file that shrinks), a full disk, or a file whose content is not a
 * model, are failures (exit 1).
 */
export function isModelBadInput(error: ModelError): boolean {
  if (error.code === "MODEL_OUTPUT_EXISTS") return true;
  // A path that is not a regular file (a FIFO, a directory), as EISDIR is.
  if (error instanceof ModelNotRegularFileError) return true;
  return error instanceof ModelIoError && failedOnBadPath(error);
}

/** Whether `error`'s cause is an operating-system error with one of BAD_PATH_ERRNO. */
export function failedOnBadPath(error: Error): boolean {
  const errno = (error.cause as { code?: unknown } | null | undefined)?.code;
  return typeof errno === "string" && BAD_PATH_ERRNO.has(errno);
}

/**
 * At most 160 UTF-16 units, cut between characters (a character the cut would halve is left out
 * whole, never kept as a lone surrogate), control and format characters (C0, DEL, C1;
 * bidirectional overrides such as U+202E, zero-width characters; line and paragraph separators) as
 * \u escapes (visibleOnOneLine, as an error line's): text read from an (untrusted) model file,
 * made safe to print on one terminal line, and shown as it reads.
 */
export function printableField(field: string): string {
  // A high surrogate as the 160th unit would be cut from its low one: end the text before it.
  const end = field.length > 160 && (field.charCodeAt(159) & 0xfc00) === 0xd800 ? 159 : 160;
  const cut = field.length > 160 ? `${field.slice(0, end)}…` : field;
  return visibleOnOneLine(cut);
}
