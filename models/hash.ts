/** Streaming SHA-256 of a model file (constant memory), as lower-case hex. */
import { createHash } from "node:crypto";
import { constants as fsConstants, type Stats } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";
import { describeFileKind } from "../attestation/bounded-read.ts";
import { cannotRead, ModelIoError, ModelNotRegularFileError } from "./errors.ts";

/**
 * How much of the file each read of its hash takes: sha256File's, and the buffer inspectModel and
 * client/cli/deploy.ts (sha256Opened) give sha256Handle.
 */
export const HASH_BUFFER_BYTES = 1 << 20;

/**
 * SHA-256 of the model file at `path`, as it is when opened (through `openModelInput`: a FIFO or a
 * device is refused, not waited on), read through that one handle.
 */
export async function sha256File(path: string): Promise<string> {
  const { handle, size } = await openModelInput(path);
  try {
    return await sha256Handle(handle, path, size, Buffer.allocUnsafe(HASH_BUFFER_BYTES));
  } finally {
    await closeModelInput(handle);
  }
}

/**
 * Opens a model file given to a model command, for reading. What the path names is looked at
 * (stat) before it is opened: anything but a regular file (a FIFO, a device, a socket, a directory)
 * is refused unopened, since opening some devices acts (a tape rewinds; a terminal would become the
 * controlling terminal, hence also O_NOCTTY). The fstat of the handle is the check that counts: the
 * name may lead elsewhere by the time of the open. That open is non-blocking, so what is swapped in
 * meanwhile (a FIFO) opens at once and is refused, where a blocking open would wait, silently, for a
 * writer. Either refusal is `errors.notRegular` (by default ModelNotRegularFileError: MODEL_IO, naming
 * what the path is); a stat, open or fstat that fails is `errors.cannot` (by default ModelIoError).
 * The handle keeps O_NONBLOCK (Node cannot clear it without fcntl): on a regular file, the only kind
 * returned, reads do not heed it. Returned with the size that fstat found, so the caller need not ask
 * again. The boot's --model (enclave/model-staging.ts) is opened here too, with its own errors.
 */
export async function openModelInput(
  path: string,
  errors: ModelInputErrors = MODEL_INPUT_ERRORS,
): Promise<OpenedModelInput> {
  const named = await stat(path).catch((cause: unknown) => {
    throw errors.cannot(path, "open", cause);
  });
  if (!named.isFile()) throw errors.notRegular(path, named);
  const flags = fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOCTTY;
  const handle = await open(path, flags).catch((cause: unknown) => {
    throw errors.cannot(path, "open", cause);
  });
  const info = await handle.stat().catch(async (cause: unknown) => {
    await closeModelInput(handle);
    throw errors.cannot(path, "read", cause);
  });
  if (!info.isFile()) {
    await closeModelInput(handle);
    throw errors.notRegular(path, info);
  }
  return { handle, size: info.size };
}

/**
 * Closes a model file opened for reading (openModelInput's `handle`). A close that fails is not
 * reported: nothing was written through the handle, so it loses nothing (every byte that counts was
 * read and checked before), and, in a `finally` or after a refusal, it would replace the error on
 * its way (a read's MODEL_IO, MODEL_CHANGED, a refusal) with a bare errno error about the close.
 */
export async function closeModelInput(handle: FileHandle): Promise<void> {
  await handle.close().catch(() => {});
}

/**
 * The errors openModelInput fails with: `cannot` for a stat or open (`action` "open") or an fstat
 * ("read") that failed with the operating system's `cause`; `notRegular` for a path, or what was
 * opened, that is not a regular file (`info`, its stat).
 */
export interface ModelInputErrors {
  readonly cannot: (path: string, action: "open" | "read", cause: unknown) => Error;
  readonly notRegular: (path: string, info: Stats) => Error;
}

/** models/'s own: MODEL_IO (ModelIoError, ModelNotRegularFileError), as `cloister model` commands say them. */
const MODEL_INPUT_ERRORS: ModelInputErrors = {
  cannot: (path, action, cause) => new ModelIoError(path, action, cause),
  notRegular: (path, info) => new ModelNotRegularFileError(path, "model file", describeFileKind(info)),
};

/** A model file opened by openModelInput (the caller closes `handle`), and its size by fstat of that handle. */
export interface OpenedModelInput {
  readonly handle: FileHandle;
  readonly size: number;
}

/**
 * Streaming SHA-256 of the first `size` bytes of an open file (`handle`, read at offsets through
 * `buffer`; fewer when it ends sooner), as lower-case hex; `path` names it in a read error.
 */
export async function sha256Handle(handle: FileHandle, path: string, size: number, buffer: Buffer): Promise<string> {
  const hash = createHash("sha256");
  for (let at = 0; at < size; ) {
    const length = Math.min(buffer.length, size - at);
    const { bytesRead } = await handle.read(buffer, 0, length, at).catch(cannotRead(path));
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    at += bytesRead;
  }
  return hash.digest("hex");
}
