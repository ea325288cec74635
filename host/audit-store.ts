/**
 * The host's store of the enclave's audit records: an append-only JSON-lines file.
 *
 * The host cannot read anything sensitive here — records hold hashes, keyed commitments, decisions
 * and counts, never plaintext — and cannot forge or hide one unnoticed: each line is signed and
 * chained by the enclave (enclave/pipeline/audit.ts), and `cloister audit verify` checks the file.
 * So this store only has to keep lines intact and in the order received. It checks that a line is
 * one JSON object on one line of bounded size (so the file stays one record per line); it does not
 * verify signatures (the host has no reason to trust its own check, a verifier does it).
 *
 * Writes: appends go through one queue, so lines never interleave and keep their call order.
 * Lines waiting while a write is in progress are written together in one `write` (group commit).
 * Durability (`fsync`): "always" (default) — `append` resolves only after the bytes are written
 * and fsync'ed, so a record the enclave was told is stored survives a crash or power loss (the
 * file's directory entry, and its ancestors', are fsync'ed when it is opened); "never"
 * — resolves after the write reaches the OS (lost on power loss, kept on a process crash).
 * One process owns a file: a store that finds the file grown past what it wrote (another store or
 * process appended) refuses to write to it again, rather than store records twice or cut the other
 * writer's lines when a failed write is cut back; a failed write is cut back only when the file
 * holds no more than what that write got out, and a torn end found at open only while the file is
 * as it was read (checks before each write and cut, not a lock: there is none on the audit
 * directory, so two writers racing within one write are not caught). Nor does it write on once
 * the file at its path is no longer the one it opened (removed, renamed, replaced): the records
 * would be acknowledged where no verifier looks. A line cut short by a crash (the end of a write that never completed)
 * is cut off when the file is opened: its `append` never resolved, so the collector never
 * acknowledged it and, while that boot's enclave runs, the enclave sends that record again, which
 * then takes its place (a boot that has ended sends nothing more: its record is lost); kept, it
 * would make the whole log fail as malformed at that line. (A torn end that cannot be told from
 * the file's last 2 × maxLineBytes is kept, and the next append starts on a fresh line.)
 *
 * A failed write (ENOSPC, EIO) may have written part of its batch, ending in a line without its
 * newline that the next write would be glued to. So the store remembers the file's size after the
 * last successful write, and on a failure truncates the file back to it (retried before the next
 * write if that fails too) and rejects the failed batch *and every append queued behind it*: the
 * file then holds exactly the lines whose `append` resolved, in order, and a caller that re-sends
 * from its first rejected line writes no line twice (host/audit-collector.ts does).
 *
 * Imports nothing from sealed/ or enclave/: the host never loads code that opens sealed messages.
 */
import { constants, type FileHandle, lstat, open } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { describeFileKind } from "../attestation/bounded-read.ts";
import { syncDirectory } from "../client/cli/output.ts";

export type AuditFsyncPolicy = "always" | "never";

export interface AuditStoreOptions {
  readonly fsync?: AuditFsyncPolicy;
  /** Largest accepted line in bytes (default DEFAULT_MAX_LINE_BYTES). */
  readonly maxLineBytes?: number;
}

/** The largest line a store takes unless told otherwise (64 KiB; a record is about 1 KiB). */
const DEFAULT_MAX_LINE_BYTES = 64 * 1024;

export class AuditStoreError extends Error {
  readonly code: "AUDIT_STORE_LINE_INVALID" | "AUDIT_STORE_CLOSED" | "AUDIT_STORE_IO" | "AUDIT_STORE_NOT_THIS_BOOT";

  constructor(code: AuditStoreError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AuditStoreError";
    this.code = code;
  }
}

interface Pending {
  readonly bytes: string;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

const encoder = new TextEncoder();

/** A record line a store's `check` took, with the JSON object it holds. */
export interface CheckedLine {
  readonly line: string;
  readonly value: object;
}

/**
 * The line-size bound each CheckedLine was checked under (checkLogLine): a store whose bound is no
 * smaller takes it unparsed.
 */
const checkedUnder = new WeakMap<CheckedLine, number>();

export class AuditStore {
  readonly path: string;
  readonly #handle: FileHandle;
  readonly #fsync: AuditFsyncPolicy;
  readonly #maxLineBytes: number;
  #pending: Pending[] = [];
  #writing: Promise<void> | null = null;
  #closed = false;
  /** File size after the last write that succeeded: what a failed write is cut back to. */
  #size: number;
  /** The file this store opened (its device and inode): the one each write checks is still at `path`. */
  readonly #opened: { readonly dev: number; readonly ino: number };
  /**
   * A failed write's bytes may still be in the file (its truncation failed too): cut before writing,
   * once #refusal finds nothing past them.
   */
  #dirty = false;
  /** While dirty: the file's size right after the failed write (null: unknown), the most it may be cut from. */
  #tornSize: number | null = null;
  /**
   * The file's last complete (newline-terminated) line when it was opened: null for an empty file,
   * or when that line is longer than `maxLineBytes` (it cannot be a stored record). A collector
   * restarted on an existing file reads from it which record it stored last.
   */
  readonly lastLineAtOpen: string | null;
  /**
   * Whether the file held nothing when it was opened (once a torn line was cut): a null
   * `lastLineAtOpen` of a file that is not empty is a last line that is no record.
   */
  readonly emptyAtOpen: boolean;

  private constructor(
    path: string,
    handle: FileHandle,
    fsync: AuditFsyncPolicy,
    maxLineBytes: number,
    size: number,
    opened: { readonly dev: number; readonly ino: number },
    lastLine: string | null,
  ) {
    this.path = path;
    this.lastLineAtOpen = lastLine;
    this.emptyAtOpen = size === 0;
    this.#handle = handle;
    this.#fsync = fsync;
    this.#maxLineBytes = maxLineBytes;
    this.#size = size;
    this.#opened = opened;
  }

  /** Opens (creating, mode 0600) the log file for appending. */
  static async open(path: string, options: AuditStoreOptions = {}): Promise<AuditStore> {
    const fsync = options.fsync ?? "always";
    const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (fsync !== "always" && fsync !== "never") {
      throw new AuditStoreError(
        "AUDIT_STORE_LINE_INVALID",
        `audit store fsync: expected "always" or "never", found ${String(fsync)}`,
      );
    }
    // NaN or a bound below 1 would take any line (`bytes > NaN` is never true), or none.
    if (!Number.isSafeInteger(maxLineBytes) || maxLineBytes < 1) {
      throw new AuditStoreError(
        "AUDIT_STORE_LINE_INVALID",
        `audit store maxLineBytes: expected a whole number of bytes from 1, found ${String(maxLineBytes)}`,
      );
    }
    const handle = await openLogFile(path);
    let size: number;
    let opened: { readonly dev: number; readonly ino: number };
    let lastLine: string | null;
    try {
      const info = await handle.stat();
      size = info.size;
      opened = { dev: info.dev, ino: info.ino };
      // One read of the file's end: the last whole line, read before the repair below (a line cut
      // short by a crash is not a stored record), and where such a torn line starts.
      const tail = await readTail(handle, size, maxLineBytes);
      lastLine = tail.lastLine;
      // A crash may have left a line without its newline: cut it off (see above), or, where its
      // start is not in the window read, start the next record on a fresh line. Only while the
      // file is still as it was read: an end another writer (a second host process on this
      // directory) has added to since is its write under way, and the cut would take the record
      // it completes and stores. (A check, not a lock, as for each write: see above.)
      const found = tail.tornStart === null ? null : (await handle.stat()).size;
      if (found !== null && found !== size) {
        throw new AuditStoreError(
          "AUDIT_STORE_IO",
          `audit log ${path}: expected its end to stay as read (${size} bytes, the last line unfinished), found ${found} bytes: another process writes to this file (one host process per audit directory)`,
        );
      }
      if (tail.tornStart === "before-window") {
        await handle.appendFile("\n");
        size += 1;
      } else if (tail.tornStart !== null) {
        await handle.truncate(tail.tornStart);
        size = tail.tornStart;
      }
    } catch (error) {
      await handle.close().catch(() => undefined);
      if (error instanceof AuditStoreError) throw error;
      throw new AuditStoreError("AUDIT_STORE_IO", `audit log ${path}: cannot read its end`, { cause: error });
    }
    if (fsync === "always") {
      try {
        // The repair above, then the file's name: fsync(2) on the file does not make its directory
        // entry durable, so a new boot's file, with the records the enclave was told are stored
        // (and then dropped), could vanish on power loss. Once per open, not per append. The audit
        // directory's own entry was made durable when it was made (prepareAuditDir).
        await handle.sync();
        await syncDirectory(dirname(resolve(path)));
      } catch (error) {
        await handle.close().catch(() => undefined);
        throw new AuditStoreError("AUDIT_STORE_IO", `audit log ${path}: cannot make it durable (fsync)`, {
          cause: error,
        });
      }
    }
    return new AuditStore(path, handle, fsync, maxLineBytes, size, opened, lastLine);
  }

  /**
   * Appends one record line (no trailing newline). Resolves once written (and fsync'ed under
   * "always"); lines are stored in the order of the calls.
   */
  append(line: string | CheckedLine): Promise<void> {
    if (this.#closed) return Promise.reject(new AuditStoreError("AUDIT_STORE_CLOSED", "audit store: closed"));
    const text = typeof line === "string" ? line : line.line;
    try {
      // A line checked under this store's bound (or a smaller one) is not parsed again (the
      // collector's hot path).
      const bound = typeof line === "string" ? undefined : checkedUnder.get(line);
      if (bound === undefined || bound > this.#maxLineBytes) parseLogLine(text, this.#maxLineBytes);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ bytes: `${text}\n`, resolve, reject });
      if (this.#writing === null) this.#writing = this.#drain();
    });
  }

  /** Waits for every queued append. */
  async flush(): Promise<void> {
    while (this.#writing !== null) await this.#writing;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
    // A failed write whose cut also failed: one more try (unless the file changed since: see
    // #refusal), or the next open cuts the torn line.
    if (this.#dirty && (await this.#refusal()) === null) await this.#cutBack().catch(() => undefined);
    await this.#handle.close();
  }

  /**
   * `line` with its parsed value when `append` would take it (and then takes it unparsed); else
   * what is wrong with it (never its content).
   */
  check(line: string): CheckedLine | string {
    return checkLogLine(line, this.#maxLineBytes);
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending;
        this.#pending = [];
        const bytes = encoder.encode(batch.map((p) => p.bytes).join(""));
        /** The bytes of this batch that reached the file (null: its write did not start). */
        let written: number | null = null;
        try {
          // Each refusal holds for every later write too: nothing of this store's is written to the
          // file again (the lines stay with the enclave until a restarted host stores them).
          const refusal = await this.#refusal();
          if (refusal !== null) {
            this.#rejectFrom(batch, refusal);
            return;
          }
          if (this.#dirty) await this.#cutBack();
          // Written until every byte is (a write may write fewer), counting what reached the file:
          // a failure's cut below takes that and no more.
          written = 0;
          while (written < bytes.length) written += (await this.#handle.write(bytes, written)).bytesWritten;
          if (this.#fsync === "always") await this.#handle.sync();
        } catch (error) {
          // The file's size with what this batch wrote (a cut that failed before it keeps its own).
          if (written !== null) this.#tornSize = this.#size + written;
          // Cut off whatever part of the batch reached the file (also a batch whose fsync failed:
          // it is reported as not stored, so it must not stay to be written again), once #refusal
          // finds nothing else past it: another writer (a second host process on this directory)
          // may have appended since, and the cut would take its lines. Stop draining: the appends
          // queued behind it are rejected too, so the lines stored stay a prefix of the lines
          // appended and the caller re-sends from its first rejected one.
          this.#dirty = true;
          if ((await this.#refusal()) === null) await this.#cutBack().catch(() => undefined);
          this.#rejectFrom(batch, `write failed (${describeError(error)})`, error);
          return;
        }
        this.#size += bytes.length;
        for (const p of batch) p.resolve();
      }
    } finally {
      this.#writing = null;
    }
  }

  /**
   * Why this store must not write to (or cut) its file any more; null: it may. One lstat per write
   * (per batch: what piled up is written together): the file at the path, which once found to be
   * the opened one also gives its size.
   */
  async #refusal(): Promise<string | null> {
    const atPath = await lstat(this.path).catch(() => null);
    // The file removed, renamed or replaced (by hand, by a log rotation): records written on
    // would be acknowledged, and the enclave drop them, where no verifier looks for them.
    if (atPath === null || atPath.ino !== this.#opened.ino || atPath.dev !== this.#opened.dev) {
      return "expected the file this store opened at that path, found it removed, renamed or replaced (restart the host to store records there again)";
    }
    // Another writer (a second host process on this directory) has appended since this store's
    // last write: writing after its lines would store records twice, and cutting a failed write
    // back would cut its lines. A failed write not cut back yet may have left its bytes, no more.
    const found = atPath.size;
    const torn = this.#dirty ? this.#tornSize : null;
    if (found === this.#size || (torn !== null && found === torn)) return null;
    return `expected ${this.#size} bytes (what this store wrote)${torn === null ? "" : ` or ${torn} (with its failed write)`}, found ${found}: another process writes to this file (one host process per audit directory)`;
  }

  /** Rejects `batch` and every append queued behind it, saying why and how many lines were not stored. */
  #rejectFrom(batch: readonly Pending[], why: string, cause?: unknown): void {
    const rejected = [...batch, ...this.#pending];
    this.#pending = [];
    const error = new AuditStoreError(
      "AUDIT_STORE_IO",
      `audit log ${this.path}: ${why}; ${rejected.length} line(s) not stored`,
      cause === undefined ? undefined : { cause },
    );
    for (const p of rejected) p.reject(error);
  }

  /**
   * Truncates the file to the size after the last successful write (appends then continue from
   * it), durably under fsync "always": lines reported as not stored must not come back after a
   * power loss, where the collector has stored them again.
   */
  async #cutBack(): Promise<void> {
    await this.#handle.truncate(this.#size);
    if (this.#fsync === "always") await this.#handle.sync();
    this.#dirty = false;
  }
}

/**
 * `line` with its parsed value when a store of lines up to `maxLineBytes` takes it (a store's
 * `check`; `append` then takes it unparsed), else what is wrong with it (never its content). The
 * collector checks a new boot's batch with it before that boot's file is made.
 */
export function checkLogLine(line: string, maxLineBytes = DEFAULT_MAX_LINE_BYTES): CheckedLine | string {
  let checked: CheckedLine;
  try {
    checked = { line, value: parseLogLine(line, maxLineBytes) };
  } catch (error) {
    return (error as AuditStoreError).message;
  }
  checkedUnder.set(checked, maxLineBytes);
  return checked;
}

/** The JSON object `line` holds, when a store of lines up to `maxLineBytes` takes it; throws AUDIT_STORE_LINE_INVALID otherwise. */
function parseLogLine(line: string, maxLineBytes: number): object {
  if (typeof line !== "string" || line.length === 0) {
    throw new AuditStoreError("AUDIT_STORE_LINE_INVALID", "audit line: expected a non-empty string");
  }
  const bytes = Buffer.byteLength(line, "utf8");
  if (bytes > maxLineBytes) {
    throw new AuditStoreError(
      "AUDIT_STORE_LINE_INVALID",
      `audit line: expected at most ${maxLineBytes} bytes, found ${bytes}`,
    );
  }
  if (/[\r\n]/.test(line))
    throw new AuditStoreError("AUDIT_STORE_LINE_INVALID", "audit line: expected one line, found a line break");
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new AuditStoreError("AUDIT_STORE_LINE_INVALID", "audit line: expected JSON, found unparseable text", {
      cause: error,
    });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new AuditStoreError("AUDIT_STORE_LINE_INVALID", "audit line: expected a JSON object");
  }
  return value;
}

/**
 * Opens the log at `path` for reading and appending (creating it, mode 0600), as a regular file of
 * mode 0600 or not at all. Whoever can write to the audit directory could plant a symbolic link
 * there, and the records would be appended wherever it leads: it is not followed (O_NOFOLLOW). A
 * FIFO would take the records nowhere and, once full, hold every write: it is opened without
 * blocking and refused, as anything else not a regular file is. A file left wider (an earlier
 * version, another tool) is made 0600. (A hard link to the file is not refused: the records are
 * hashes and decisions, and every name of the file holds the same signed lines.) `"read"`: for
 * reading only, the same refusals, nothing created or chmod'ed; null when there is no file (peekLog).
 */
async function openLogFile(path: string): Promise<FileHandle>;
async function openLogFile(path: string, access: "read"): Promise<FileHandle | null>;
async function openLogFile(path: string, access: "append" | "read" = "append"): Promise<FileHandle | null> {
  const refused = (found: string, cause?: unknown) =>
    new AuditStoreError("AUDIT_STORE_IO", `audit log ${path}: expected a regular file, found ${found}`, { cause });
  let handle: FileHandle;
  try {
    const flags = access === "append" ? constants.O_RDWR | constants.O_CREAT | constants.O_APPEND : constants.O_RDONLY;
    handle = await open(path, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && access === "read") return null;
    if (code === "ELOOP") throw refused("a symbolic link (not followed)", error);
    if (code === "EISDIR") throw refused("a directory", error);
    throw new AuditStoreError("AUDIT_STORE_IO", `audit log ${path}: cannot open for ${access}ing`, { cause: error });
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw refused(describeFileKind(info));
    if (access === "append" && (info.mode & 0o777) !== 0o600) await handle.chmod(0o600);
    return handle;
  } catch (error) {
    await handle.close().catch(() => undefined);
    if (error instanceof AuditStoreError) throw error;
    throw new AuditStoreError(
      "AUDIT_STORE_IO",
      `audit log ${path}: cannot ${access === "append" ? "make it a file of mode 0600" : "read what it is"}`,
      {
        cause: error,
      },
    );
  }
}

/**
 * The log at `path` as AuditStore.open, with the default line bound the collector opens it with,
 * would find it (whether it holds nothing once a torn last line is cut, and its `lastLineAtOpen`),
 * read only: nothing is created, cut, appended to or chmod'ed, and a symbolic link is not followed.
 * null when there is no file at `path`; throws when something else is there or it cannot be read.
 * The collector asks before it opens a boot's log for an answer that may be a replayed one
 * (host/audit-collector.ts storedEnd).
 */
export async function peekLog(path: string): Promise<{ empty: boolean; lastLine: string | null } | null> {
  const handle = await openLogFile(path, "read");
  if (handle === null) return null;
  try {
    const info = await handle.stat();
    const tail = await readTail(handle, info.size, DEFAULT_MAX_LINE_BYTES);
    return { empty: info.size === 0 || tail.tornStart === 0, lastLine: tail.lastLine };
  } finally {
    await handle.close();
  }
}

interface Tail {
  /**
   * The last newline-terminated line (without a CR before its newline): null when there is none or
   * it is longer than `maxLineBytes`, or its start is not in the window read.
   */
  readonly lastLine: string | null;
  /**
   * Where a torn last line (no newline at its end) starts: null when the file is empty or ends on
   * a newline; "before-window" when the start is further back than the window read (no record line
   * is that long: not a torn record).
   */
  readonly tornStart: number | "before-window" | null;
}

/**
 * Reads the end of a file of `size` bytes once (the file may be far larger than memory): its last
 * 2 × maxLineBytes + 3 bytes, enough for the longest accepted line, its newline, the newline before
 * it and a torn tail of the same bound after it.
 */
async function readTail(handle: FileHandle, size: number, maxLineBytes: number): Promise<Tail> {
  if (size === 0) return { lastLine: null, tornStart: null };
  const window = Math.min(size, 2 * maxLineBytes + 3);
  const base = size - window;
  const buffer = Buffer.alloc(window);
  const { bytesRead } = await handle.read(buffer, 0, window, base);
  const bytes = buffer.subarray(0, bytesRead);
  const end = bytes.lastIndexOf(0x0a);
  let tornStart: Tail["tornStart"] = null;
  // (A short read — the file shrank since its stat — does not end on a newline either.)
  if (bytesRead < window || bytes[bytesRead - 1] !== 0x0a) {
    tornStart = end !== -1 ? base + end + 1 : window === size ? 0 : "before-window";
  }
  if (end === -1) return { lastLine: null, tornStart };
  // (A negative offset would search from the end again.)
  const start = end === 0 ? 0 : bytes.lastIndexOf(0x0a, end - 1) + 1;
  // No newline before it inside the window: the line starts the file only if the window does.
  if ((start === 0 && window < size) || end - start > maxLineBytes) return { lastLine: null, tornStart };
  const line = bytes.toString("utf8", start, end);
  return { lastLine: line.endsWith("\r") ? line.slice(0, -1) : line, tornStart };
}

function describeError(error: unknown): string {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return typeof code === "string" ? code : typeof message === "string" ? message : String(error);
}
