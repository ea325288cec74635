/**
 * Reading a file an option names, to a bound, each refusal a usage error: attestation/bounded-read.ts
 * reads it (at most the bound's bytes, a regular file or a pipe, strict UTF-8), and this names the
 * option and the file in a UsageError. Shared by the commands that read such files (`cloister
 * audit`, `cloister receipt verify`, `cloister manifest`, `cloister verify-evidence`, chat's
 * --prompt-file, up's key files, and every --policy, --operator-key, --api-key-file, --api-keys and
 * --manifest: readOptionFile; the trust files among them with readTrustFile). node: and attestation/
 * only, nothing that opens a sealed message.
 */
import type { Stats } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import {
  type FileRefusal,
  fileBytesText,
  fileErrorCause,
  fileMessage,
  type InputBound,
  readFileToBound,
} from "../../attestation/bounded-read.ts";
import { readAfterPathCheck, unsafeFileReason, unsafeOpenFile } from "../../attestation/path-safety.ts";
import { UsageError } from "./output.ts";

/**
 * The error for a file that cannot be opened or read; by default a UsageError naming `what`, the
 * file and why (the error its cause).
 */
type CannotRead = (error: unknown) => Error;

/**
 * An input file's bytes, as they are (attestation/bounded-read.ts readFileToBound: a regular file
 * or a pipe, at most `limit.bytes` bytes). By default each refusal is a UsageError naming `what`,
 * the file and why (not a file or a pipe, the bound, or why it could not be read: fileErrorCause).
 */
export function readBoundedFile(
  file: string,
  what: string,
  limit: InputBound,
  cannotRead: CannotRead = optionFileUnreadable(file, what),
  refuse: (refusal: FileRefusal) => Error = ({ reason, cause }) =>
    new UsageError(fileMessage(file, what, reason), { cause }),
  check?: (handle: FileHandle, info: Stats) => Promise<void>,
): Promise<Buffer> {
  return readFileToBound(file, limit, cannotRead, refuse, check);
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

/**
 * A file's bytes (all of them, or a start of them) as strict UTF-8 text (fileBytesText); bytes that
 * are not UTF-8 are a UsageError naming `what`, the file and the byte, never the content.
 */
export function fileText(bytes: Uint8Array, file: string, what: string): string {
  return fileBytesText(bytes, file, what, (message) => new UsageError(message));
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

/**
 * readOptionFile for a trust file (the client's --policy, verify-evidence's, --operator-key, the
 * host's --api-keys): refused, each a UsageError naming the option and the file, when someone else
 * could change it (attestation/path-safety.ts): anyone may write to a directory its lookup goes
 * through (checked before the open), or the file read is another user's, or others (or a group not
 * root's nor this user's private one) may write to it. The file's rule is checked on the open file,
 * what is read, not on its name before the open (which could lead to another file by then). `held`:
 * what someone who could change it would then change ("which enclaves this client trusts").
 */
export function readTrustFile(
  file: string,
  option: string,
  limit: InputBound,
  held: string,
  missingHint?: string,
): Promise<string> {
  const cannotRead = optionFileUnreadable(file, option, missingHint);
  const refuse = (message: string, cause?: unknown) => new UsageError(message, { cause });
  return readAfterPathCheck(file, option, held, refuse, async (opened, user) => {
    // The check's own refusal passes through cannotRead as it is.
    const unreadable = (error: unknown) => (error instanceof UsageError ? error : cannotRead(error));
    // The open's own fstat (openFileOrPipe's): the file read is looked at once.
    const bytes = await readBoundedFile(file, option, limit, unreadable, undefined, async (handle, info) => {
      // The walk's user: the account files (primaryGroupIsPrivate) read once, not once more here.
      const unsafe = await unsafeOpenFile(handle, file, info, user);
      if (unsafe !== null) throw refuse(fileMessage(file, option, unsafeFileReason(unsafe, file, held)));
      // A file that passes its own rule, but reached by another way than the one checked.
      opened(info);
    });
    return fileText(bytes, file, option);
  });
}
