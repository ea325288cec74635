/**
 * Reading a file or a pipe to a bound, Node.js only: at most the bound's bytes are read, so a larger
 * file (or a pipe that never ends) is refused by its size, never held in memory whole; its text, when
 * it is text, decoded as strict UTF-8 (utf8.ts decodeUtf8, a byte order mark kept). Each refusal is
 * the caller's own error, worded `${what} ${file}: ${reason}`: the verifier's readers
 * (tdx/collateral-dir.ts, kbs/key-file.ts, providers/configfs-tsm.ts) and the CLI's
 * (client/cli/bounded-file.ts, whose refusals are usage errors) read through it, and the host's
 * audit store names a file's kind with it. No CLI code (the verifier does not depend on the command
 * line), nothing that opens a sealed message (the host imports it); the browser bundle never
 * reaches it.
 *
 * What such a file may be is one rule (openFileOrPipe): a regular file or a pipe, never a device,
 * a socket or a directory. Secret files keep their own stricter one (a regular file only, checked
 * once open: kbs/key-file.ts readCheckedFile, then readHandleText).
 */
import type { Stats } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";
import { INVISIBLE_CLASS } from "./untrusted-text.ts";
import { decodeUtf8, type NotUtf8At } from "./utf8.ts";

/**
 * Why a file an option names could not be read, (`operation` "write") created where it names, or
 * (`operation` "check") looked up, to see whether it exists before anything is written: the errno
 * code and, for the common ones, what to do (`ENOENT: no such file; check the path`), worded for
 * that operation; for an error with no such code, its name (`RangeError, with no error code`),
 * never its message.
 */
export function fileErrorCause(error: unknown, operation: "read" | "write" | "check" = "read"): string {
  const found = (error ?? {}) as { code?: unknown; name?: unknown };
  const code = typeof found.code === "string" && ERROR_CODE.test(found.code) ? found.code : undefined;
  // No errno or Node.js code: a failure of the reading itself (a RangeError for a buffer too large,
  // an AbortError). Its kind only: its message may quote what was read (a SyntaxError quotes the
  // text it could not parse), and a file read here may be a key.
  if (code === undefined) {
    const name = typeof found.name === "string" && ERROR_NAME.test(found.name) ? found.name : undefined;
    return name === undefined ? "an error with no error code" : `${name}, with no error code`;
  }
  const writing = operation === "write";
  if (code === "ENOENT")
    return writing ? "ENOENT: no such directory; check the path" : "ENOENT: no such file; check the path";
  if (code === "EACCES" || code === "EPERM") {
    // A lookup needs only the right to look into each directory of the path (search, x).
    if (operation === "check") {
      const unknown = "so whether the file exists is unknown; check the directories' owner and mode";
      return `${code}: this user may not look into a directory of the path, ${unknown}`;
    }
    return writing
      ? `${code}: this user may not write there; check the directory's owner and mode`
      : `${code}: this user may not read it; check its owner and mode`;
  }
  if (code === "EROFS" && writing) return "EROFS: a read-only file system; choose another place";
  if (code === "EISDIR") return "EISDIR: it is a directory; name the file in it";
  if (code === "ELOOP") return "ELOOP: a loop of links; check where the link points";
  if (code === "ENOTDIR") return "ENOTDIR: a part of the path is a file, not a directory; check the path";
  return code;
}

/** An errno (ENOENT) or Node.js (ERR_INVALID_ARG_TYPE) code: said as it is. */
const ERROR_CODE = /^[A-Z][A-Z0-9_]{0,63}$/;
/** An error's name as its class gives it (RangeError, AbortError): said as it is. */
const ERROR_NAME = /^[A-Za-z][A-Za-z0-9]{0,63}$/;

/** A path that is neither a regular file nor a pipe (a device, a socket, a directory): what it is instead. */
export class NotFileOrPipeError extends Error {
  constructor(readonly found: string) {
    super(`expected a regular file or a pipe, found ${found}`);
    this.name = "NotFileOrPipeError";
  }
}

/**
 * What one line of a message escapes (client/cli/terminal-text.ts visibleOnOneLine: control, format
 * and separator characters, a lone surrogate). Left in a word, such a character would be shown as
 * `\u000a`, which a shell (and a reader) takes for those six characters: a word holding one is
 * written in $'…' with it as an escape instead.
 */
const ESCAPED_ON_A_LINE = new RegExp(`[${INVISIBLE_CLASS}\\p{Cs}]`, "u");
const ESCAPED_ON_A_LINE_ALL = new RegExp(ESCAPED_ON_A_LINE.source, "gu");

/**
 * `char` as an escape of $'…' (POSIX.1-2024, bash, zsh, ksh; not dash 0.5.12, the /bin/sh of Debian
 * and Ubuntu, nor fish, which read it as other characters: docs/errors.md says to paste such a word
 * into bash, zsh or ksh): \n, \t, \r by name, any other as its UTF-8 bytes, each three octal digits
 * (so a digit after it is never read as part of it).
 */
function dollarQuoteEscape(char: string): string {
  const named = DOLLAR_QUOTE_NAMED.get(char);
  if (named !== undefined) return named;
  return [...UTF8.encode(char)].map((byte) => `\\${byte.toString(8).padStart(3, "0")}`).join("");
}

/** dollarQuoteEscape's escapes by name. */
const DOLLAR_QUOTE_NAMED: ReadonlyMap<string, string> = new Map([
  ["\n", "\\n"],
  ["\t", "\\t"],
  ["\r", "\\r"],
]);
const UTF8 = new TextEncoder();

/**
 * `text` as a shell reads it back: as it is when it is plain, else single-quoted, or written as
 * $'…' with each character an error line would escape (ESCAPED_ON_A_LINE) as an escape: shown, it
 * is still the word a shell reads as `text`. Plain is `A-Za-z0-9_./:@%+=,-`, but not `=` first: zsh
 * (its EQUALS option, on by default) reads `=ls` as the path of the command ls.
 */
function quotedWord(text: string): string {
  if (/^[A-Za-z0-9_./:@%+,-][A-Za-z0-9_./:@%+=,-]*$/.test(text)) return text;
  if (!ESCAPED_ON_A_LINE.test(text)) return `'${text.replaceAll("'", "'\\''")}'`;
  return `$'${text.replace(/[\\']/g, "\\$&").replace(ESCAPED_ON_A_LINE_ALL, dollarQuoteEscape)}'`;
}

/**
 * `text` as one POSIX shell word of a command (quotedWord), `./` before a leading `-`: an argument,
 * not an option.
 */
export function shellWord(text: string): string {
  return quotedWord(text.startsWith("-") ? `./${text}` : text);
}

/**
 * A path fileMessage cannot write as given: one holding ": " or ending in ":" (where the path ends and
 * the reason starts would be a guess: `--x foo:: reason`), a character the error line escapes
 * (`\u000a` would read as the path's own characters), starting with a quote, `'` or `$'` (it would
 * read as a quoted word), `-` alone or first before a space (it would read as standard input, `-` or
 * `- (standard input)`), a space first or last (pasted into a shell, `foo ` would name `foo`, `-- ` an
 * option's end), or empty (`--policy : reason` names no file).
 */
const NOT_AS_GIVEN = new RegExp(`: |:$|^$|^-(?: |$)|^ | $|^\\$?'|${ESCAPED_ON_A_LINE.source}`, "u");

/**
 * The one form of a refusal of a file named by `what` (an option, a field): `${what} ${file}: ${reason}`,
 * for every refusal of a file read here (not a file or pipe, too large, not UTF-8, unreadable). A
 * path that would not read back as itself (NOT_AS_GIVEN: ": ", a trailing ":", a character the line
 * escapes, a leading quote, standard input's name, a space first or last, nothing) is written in
 * quotes, as one shell word (quotedWord, quoted even when its characters are plain; a leading `-`
 * kept, not made `./-`: a reader takes `./-a: b` for another path than `-a: b`); any other is
 * written as given, so an ordinary path reads as typed. Standard input is no file: its refusals do
 * not come through here.
 */
export function fileMessage(file: string, what: string, reason: string): string {
  if (!NOT_AS_GIVEN.test(file)) return `${what} ${file}: ${reason}`;
  const word = quotedWord(file);
  return `${what} ${word === file ? `'${file}'` : word}: ${reason}`;
}

/** The refusal of a path that is neither a regular file nor a pipe: names `what`, the file and what it is. */
export function notFileOrPipeMessage(file: string, what: string, error: NotFileOrPipeError): string {
  return fileMessage(file, what, error.message);
}

function refuseUnlessFileOrPipe(info: Stats): void {
  if (!info.isFile() && !info.isFIFO()) throw new NotFileOrPipeError(describeFileKind(info));
}

/**
 * Opens a file read on a user's behalf, for reading: a regular file or a pipe (a FIFO, a process
 * substitution `<(ssh host cat audit.jsonl)`, /dev/stdin when it is a pipe), read as it arrives.
 * Anything else is NotFileOrPipeError, naming what it is: a character device (/dev/zero never ends,
 * /dev/null reads as an empty file, /dev/stdin on a terminal waits for typing), a block device, a
 * socket, a directory. The kind is looked at before the open, so that such a path is never opened
 * (opening a device may wait or act), and again on what was opened (the path may have changed in
 * between). A link is followed: what is read is checked for what it holds. A FIFO no one writes to
 * yet is waited on, as `cat` waits: the user named it.
 */
export async function openFileOrPipe(file: string): Promise<FileHandle> {
  return (await openFileOrPipeLooked(file)).handle;
}

/** openFileOrPipe's handle, and the fstat it looked at (for a check of what is read: not asked again). */
async function openFileOrPipeLooked(file: string): Promise<{ handle: FileHandle; info: Stats }> {
  refuseUnlessFileOrPipe(await stat(file));
  const handle = await open(file, "r");
  try {
    const info = await handle.stat();
    refuseUnlessFileOrPipe(info);
    return { handle, info };
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  }
}

/** How much of an input file readFileToBound reads at a time (a small file takes no buffer of its bound). */
const READ_CHUNK_BYTES = 64 * 1024;

/** How many bytes an input file may hold, and what it is expected to hold (for the refusal). */
export interface InputBound {
  readonly bytes: number;
  readonly expected: string;
}

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
function tooLargeMessage(file: string, what: string, limit: InputBound): string {
  return fileMessage(file, what, tooLargeReason(limit));
}

/** Why a file larger than its bound is refused: the bound, and what the file is expected to hold. */
export function tooLargeReason(limit: InputBound): string {
  return `expected at most ${limit.bytes} bytes (${limit.expected}), found more`;
}

/**
 * Why readFileToBound refused a file it could open, for `refuse` to name the file its own way: the
 * reason (what follows `${what} ${file}: ` in fileMessage's form), and the error it was found with,
 * when one was (a NotFileOrPipeError; none for a file larger than its bound).
 */
export interface FileRefusal {
  readonly reason: string;
  readonly cause?: NotFileOrPipeError;
}

/**
 * An input file's bytes, as they are: a regular file or a pipe (openFileOrPipe; anything else is
 * `refuse`d with its NotFileOrPipeError as the cause). At most `limit.bytes` bytes are read: a
 * larger file (or a pipe that never ends) is `refuse`d with the bound, never held in memory whole.
 * A file that cannot be opened or read is `cannotRead`'s error.
 */
export async function readFileToBound(
  file: string,
  limit: InputBound,
  cannotRead: (error: unknown) => Error,
  refuse: (refusal: FileRefusal) => Error,
  /**
   * Run on the file opened before it is read (a check of what is read), given its fstat as the open
   * looked at it: what it throws, cannotRead is given.
   */
  check?: (handle: FileHandle, info: Stats) => Promise<void>,
): Promise<Buffer> {
  let bytes: Buffer;
  try {
    const { handle, info } = await openFileOrPipeLooked(file);
    try {
      await check?.(handle, info);
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

/** The refusal of a file's bytes that are not UTF-8: names `what`, the file and the byte, never the content. */
function notUtf8Message(file: string, what: string, found: NotUtf8At): string {
  return fileMessage(file, what, notUtf8Reason(found, "the file"));
}

/**
 * Why bytes that are not UTF-8 (decodeUtf8's finding) are refused: the byte of `input` (the file,
 * standard input) that is not, numbered from 1 as a person counts them (the first of the sequence
 * that is not, though it may go wrong only at a later byte), never the content. notUtf8Message's
 * reason, and chat's prompt's from standard input.
 */
export function notUtf8Reason(found: NotUtf8At, input: string): string {
  return `expected UTF-8 text, found a byte that is not UTF-8 (byte ${found.notUtf8At + 1} of ${input})`;
}

/**
 * The text of a file already open (a caller that checked the open file itself: its owner, its
 * mode), to `limit` and as strict UTF-8. A larger file or bytes that are not UTF-8 are `refuse`d
 * with tooLargeMessage's or notUtf8Message's text; read errors are thrown as they are.
 */
export async function readHandleText(
  handle: FileHandle,
  file: string,
  what: string,
  limit: InputBound,
  refuse: (message: string) => Error,
): Promise<string> {
  const bytes = await readHandleToBound(handle, limit.bytes);
  if (bytes.length > limit.bytes) throw refuse(tooLargeMessage(file, what, limit));
  return fileBytesText(bytes, file, what, refuse);
}

/**
 * A file's bytes (all of them, or a start of them) as strict UTF-8 text (decodeUtf8, a byte order
 * mark kept); bytes that are not UTF-8 are `refuse`d with notUtf8Message's text, naming `what`, the
 * file and the byte, never the content: decoded loosely (U+FFFD for each bad sequence), other bytes
 * than the file's would be checked or hashed. readHandleText's, and the CLI's (bounded-file.ts).
 */
export function fileBytesText(
  bytes: Uint8Array,
  file: string,
  what: string,
  refuse: (message: string) => Error,
): string {
  const text = decodeUtf8(bytes);
  if (typeof text !== "string") throw refuse(notUtf8Message(file, what, text));
  return text;
}

/** What a file that is not a regular one is, for a message ("a FIFO"); also the audit store's. */
export function describeFileKind(info: Stats): string {
  if (info.isDirectory()) return "a directory";
  if (info.isFIFO()) return "a FIFO";
  if (info.isCharacterDevice()) return "a character device";
  if (info.isBlockDevice()) return "a block device";
  if (info.isSocket()) return "a socket";
  if (info.isSymbolicLink()) return "a symbolic link";
  return "something that is not a file";
}
