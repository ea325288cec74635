/**
 * Reading a file an option names, to a bound: at most the bound's bytes are read, so a larger file
 * (or a pipe that never ends) is refused by its size, never held in memory whole; its text, when
 * it is text, decoded as strict UTF-8. Shared by the commands that read such files (`cloister audit`,
 * `cloister receipt verify`, `cloister manifest`, `cloister verify-evidence` (its --collateral directory
 * too, as an enclave's --tdx-collateral), chat's --prompt-file,
 * up's key files, and every --policy, --operator-key, --api-key-file, --api-keys and --manifest:
 * readOptionFile), and by readers that check a file once it is open (the key broker's
 * readPrivateKeyFile, and through it every secret file: --api-key-file, proxy's --token-file, up's
 * reused keys: readHandleText); node: only (and the audit store's describeFileKind, itself node:
 * only), nothing that opens a sealed message.
 *
 * What such a file may be is one rule (openFileOrPipe, which `cloister audit`'s --log reads through
 * too): a regular file or a pipe, never a device, a socket or a directory. Secret files keep their
 * own stricter one (a regular file only, checked once open: readPrivateKeyFile, readSecretFile).
 */
import type { Stats } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";
import { decodeUtf8 } from "../../attestation/utf8.ts";
import { fileErrorCause, UsageError } from "./output.ts";

/** Why a file could not be read: the error's code and message (Node's name the path and the call). */
export function readError(error: unknown): string {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  const text = typeof message === "string" ? message : String(error);
  return typeof code === "string" && !text.startsWith(code) ? `${code}: ${text}` : text;
}

/** A path that is neither a regular file nor a pipe (a device, a socket, a directory): what it is instead. */
export class NotFileOrPipeError extends Error {
  constructor(readonly found: string) {
    super(`expected a regular file or a pipe, found ${found}`);
    this.name = "NotFileOrPipeError";
  }
}

/**
 * The one form of a refusal of a file named by `what` (an option, a field): `${what} ${file}: ${reason}`,
 * for every refusal below (not a file or pipe, too large, not UTF-8, unreadable by default).
 */
function fileMessage(file: string, what: string, reason: string): string {
  return `${what} ${file}: ${reason}`;
}

/** The refusal of a path that is neither a regular file nor a pipe: names `what`, the file and what it is. */
export function notFileOrPipeMessage(file: string, what: string, error: NotFileOrPipeError): string {
  return fileMessage(file, what, error.message);
}

function refuseUnlessFileOrPipe(info: Stats): void {
  if (!info.isFile() && !info.isFIFO()) throw new NotFileOrPipeError(describeFileKind(info));
}

/**
 * Opens a file the CLI reads on a user's behalf, for reading: a regular file or a pipe (a FIFO,
 * a process substitution `<(ssh host cat audit.jsonl)`, /dev/stdin when it is a pipe), read as it
 * arrives. Anything else is NotFileOrPipeError, naming what it is: a character device (/dev/zero
 * never ends, /dev/null reads as an empty file, /dev/stdin on a terminal waits for typing), a block
 * device, a socket, a directory. The kind is looked at before the open, so that such a path is never
 * opened (opening a device may wait or act), and again on what was opened (the path may have
 * changed in between). A link is followed: what is read is checked for what it holds. A FIFO no one
 * writes to yet is waited on, as `cat` waits: the user named it.
 */
export async function openFileOrPipe(file: string): Promise<FileHandle> {
  refuseUnlessFileOrPipe(await stat(file));
  const handle = await open(file, "r");
  try {
    refuseUnlessFileOrPipe(await handle.stat());
    return handle;
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

/** How much of an input file readBoundedFile reads at a time (a small file takes no buffer of its bound). */
const READ_CHUNK_BYTES = 64 * 1024;

/** How many bytes an input file may hold, and what it is expected to hold (for the refusal). */
export interface InputBound {
  readonly bytes: number;
  readonly expected: string;
}

/** The error for a file that cannot be opened or read; by default a UsageError naming `what`, the file and why (the error its cause). */
export type CannotRead = (error: unknown) => Error;

/**
 * An open file's bytes, to a bound: at most `bytes` + 1 are read (one byte past the bound tells a
 * file at the bound from a larger one), so the result is longer than `bytes` exactly when the file
 * is. Read errors are thrown as they are.
 */
export async function readHandleToBound(handle: FileHandle, bytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  while (length <= bytes) {
    const chunk = Buffer.alloc(Math.min(READ_CHUNK_BYTES, bytes + 1 - length));
    const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
    if (bytesRead === 0) break;
    chunks.push(chunk.subarray(0, bytesRead));
    length += bytesRead;
  }
  return Buffer.concat(chunks, length);
}

/** The refusal of a file larger than its bound: names `what`, the file and the bound. */
export function tooLargeMessage(file: string, what: string, limit: InputBound): string {
  return fileMessage(file, what, tooLargeReason(limit));
}

/** Why a file larger than its bound is refused: the bound, and what the file is expected to hold. */
function tooLargeReason(limit: InputBound): string {
  return `expected at most ${limit.bytes} bytes (${limit.expected}), found more`;
}

/**
 * Why readBoundedFile refused a file it could open, for `refuse` to name the file its own way: the
 * reason (what follows `${what} ${file}: ` in its default message), and the error it was found
 * with, when one was (a NotFileOrPipeError; none for a file larger than its bound).
 */
export interface FileRefusal {
  readonly reason: string;
  readonly cause?: NotFileOrPipeError;
}

/**
 * An input file's bytes, as they are: a regular file or a pipe (openFileOrPipe; anything else is
 * `refuse`d with notFileOrPipeMessage's text, its NotFileOrPipeError as the cause). At most
 * `limit.bytes` bytes are read: a larger file (or a pipe that never ends) is `refuse`d with
 * tooLargeMessage's text naming `what`, the file and the bound, never held in memory whole. By
 * default a refusal is a UsageError.
 */
export async function readBoundedFile(
  file: string,
  what: string,
  limit: InputBound,
  cannotRead: CannotRead = (error) =>
    new UsageError(fileMessage(file, what, `cannot read (${readError(error)})`), { cause: error }),
  refuse: (refusal: FileRefusal) => Error = ({ reason, cause }) =>
    new UsageError(fileMessage(file, what, reason), { cause }),
): Promise<Buffer> {
  let bytes: Buffer;
  try {
    const handle = await openFileOrPipe(file);
    try {
      bytes = await readHandleToBound(handle, limit.bytes);
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof NotFileOrPipeError) throw refuse({ reason: error.message, cause: error });
    throw cannotRead(error);
  }
  if (bytes.length > limit.bytes) throw refuse({ reason: tooLargeReason(limit) });
  return bytes;
}

/** Bytes that are not UTF-8: the first byte (from 1) of the sequence that is not. */
export interface NotUtf8 {
  readonly notUtf8: number;
}

/**
 * A line's (or a file's) text, a byte order mark kept (a line that starts with one is not canonical),
 * or where its bytes stop being UTF-8, numbered from 1 (attestation/utf8.ts finds it, as for a JWS
 * part): the first byte of the sequence that is not, though that sequence may go wrong only at a
 * later byte (a continuation byte out of range, as in an overlong form or an encoded surrogate, or
 * the end). Strict: decoded loosely (U+FFFD for each bad sequence), other bytes than the signed or
 * hashed ones would give the same text.
 */
export function decodeStrictUtf8(bytes: Uint8Array): string | NotUtf8 {
  const text = decodeUtf8(bytes);
  return typeof text === "string" ? text : { notUtf8: text.notUtf8At + 1 };
}

/**
 * A small input file's text: `readBoundedFile`'s bytes decoded as strict UTF-8 (a byte order mark
 * kept). Bytes that are not UTF-8 are a usage error naming the byte: decoded loosely (U+FFFD for
 * each bad sequence), other bytes than the file's would be checked or hashed.
 */
export async function readText(
  file: string,
  what: string,
  limit: InputBound,
  cannotRead?: CannotRead,
): Promise<string> {
  return fileText(await readBoundedFile(file, what, limit, cannotRead), file, what);
}

/** The refusal of a file's bytes that are not UTF-8: names `what`, the file and the byte, never the content. */
export function notUtf8Message(file: string, what: string, found: NotUtf8): string {
  return fileMessage(file, what, notUtf8Reason(found, "the file"));
}

/**
 * Why bytes that are not UTF-8 are refused: the byte of `input` (the file, standard input) that is
 * not, never the content. notUtf8Message's reason, and chat's prompt's from standard input.
 */
export function notUtf8Reason(found: NotUtf8, input: string): string {
  return `expected UTF-8 text, found a byte that is not UTF-8 (byte ${found.notUtf8} of ${input})`;
}

/**
 * A file's bytes (all of them, or a start of them) as strict UTF-8 text; bytes that are not UTF-8 are
 * a UsageError naming `what`, the file and the byte, never the content.
 */
export function fileText(bytes: Uint8Array, file: string, what: string): string {
  const text = decodeStrictUtf8(bytes);
  if (typeof text === "string") return text;
  throw new UsageError(notUtf8Message(file, what, text));
}

/**
 * The text of a file already open (a caller that checked the open file itself: its owner, its
 * mode), to `limit` and as strict UTF-8. A larger file or bytes that are not UTF-8 are `refuse`d
 * (a UsageError by default) with tooLargeMessage's or notUtf8Message's text; read errors are thrown
 * as they are.
 */
export async function readHandleText(
  handle: FileHandle,
  file: string,
  what: string,
  limit: InputBound,
  refuse: (message: string) => Error = (message) => new UsageError(message),
): Promise<string> {
  const bytes = await readHandleToBound(handle, limit.bytes);
  if (bytes.length > limit.bytes) throw refuse(tooLargeMessage(file, what, limit));
  const text = decodeStrictUtf8(bytes);
  if (typeof text !== "string") throw refuse(notUtf8Message(file, what, text));
  return text;
}

/**
 * A file an option names that cannot be opened or read: a UsageError naming the option and the file
 * as every refusal of the file does (`--option path: cannot read (…)`, unquoted), and why
 * (fileErrorCause), then, when there is no such file, `missingHint`: what the file is and where one
 * comes from.
 */
export function optionFileUnreadable(file: string, option: string, missingHint?: string): CannotRead {
  return (error) => {
    const hint =
      missingHint !== undefined && (error as NodeJS.ErrnoException | null)?.code === "ENOENT" ? `: ${missingHint}` : "";
    return new UsageError(fileMessage(file, option, `cannot read (${fileErrorCause(error)})${hint}`), { cause: error });
  };
}

/**
 * The text of a small file an option names: to `limit` and strict UTF-8 (readText), each refusal a
 * UsageError naming the option and the file (and the bound, or the byte that is not UTF-8); a file
 * that cannot be read as optionFileUnreadable says.
 */
export function readOptionFile(file: string, option: string, limit: InputBound, missingHint?: string): Promise<string> {
  return readText(file, option, limit, optionFileUnreadable(file, option, missingHint));
}

/** What a file that is not a regular one is, for a message ("a FIFO"); also `cloister audit`'s --log. */
export function describeFileKind(info: Stats): string {
  if (info.isDirectory()) return "a directory";
  if (info.isFIFO()) return "a FIFO";
  if (info.isCharacterDevice()) return "a character device";
  if (info.isBlockDevice()) return "a block device";
  if (info.isSocket()) return "a socket";
  if (info.isSymbolicLink()) return "a symbolic link";
  return "something that is not a file";
}
