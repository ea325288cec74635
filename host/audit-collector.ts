/**
 * Collects the enclave's audit records and stores them, one file per enclave boot
 * (`DIR/<boot id>.jsonl`). The records hold hashes and decisions only; the host cannot read more
 * from them than sizes.
 *
 * Records are stored and acknowledged only once checked (audit-record-check.ts): the `/audit`
 * answer is not authenticated, and a record stored at a seq makes the enclave's own record of that
 * seq skipped as stored, acknowledged and dropped. The answer's key must be the one named by the
 * boot's attestation document (read once per boot from the enclave's `GET /audit/document`; the boot id is
 * its SHA-256), and each record signed by it and chained. A defence in depth: the host stays
 * untrusted (it could drop records itself; a checkpoint's count shows it).
 *
 * A boot's two files are made, or opened when on disk, by its first records, once checked
 * (checkNewBoot): an answer with no record, or whose records are refused, or (while another boot
 * is collected) whose records are all in that boot's file already, makes or touches none, so
 * whatever answers at `--enclave-url` with a new boot at each collection (a restarting enclave, or
 * something hostile there) does not make two files a collection, nor a replayed answer of an older
 * boot rewrite its files; and it leaves the log of the boot collected so far open.
 *
 * `DIR/<boot id>.key` holds the Ed25519 public key the enclave's `/audit` answer named for that
 * boot. It is a filing hint only (which attested key to look for), never a key to verify with: the
 * file is written by the host, so a host that forges a log can put its own key beside it, and the
 * forged log verifies under it. Verify a log under the signing
 * key of a verified attestation: `cloister attest --json` (`signingKey`), `cloister audit
 * checkpoint` (the key its checkpoint is signed by), or `cloister chat --json` (`signingKey`), e.g.
 * `cloister audit verify --log FILE --key HEX --checkpoint CHECKPOINT`. No verifier reads the .key:
 * `cloister audit verify` and `find` take the key from --key, --document or --chat-json, and
 * `cloister up` its check's from the attestation it verified (client/cli/run-up.ts checkAudit). A
 * .key naming another key (an older host's, filed from a hostile first answer before answers were
 * checked against the document) makes no verifier accept a record: it only has the boot's real
 * answers refused, stored and acknowledged nowhere, so the enclave keeps its records (and, its
 * backlog full, refuses requests: AUDIT_BACKLOG_FULL) until the .key is moved aside. Collection runs after
 * every sealed response and on a timer; nothing is acknowledged before it was written. A restarted
 * host resumes an existing file after the last record it holds, once that record is the enclave's
 * (else it stores and acknowledges nothing: resumeAt), and takes the enclave's next record only
 * chained to it. Collectors of one process that
 * collect the same boot (one enclave under two URLs) share its file's store, so each record is
 * stored once.
 */

import { constants } from "node:fs";
import { access, mkdir, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileErrorCause, fileMessage, type InputBound, shellWord } from "../attestation/bounded-read.ts";
import { DOCUMENT_MAX_LENGTH } from "../attestation/document-key.ts";
import { describeFetchFailure } from "../attestation/fetch-failure-text.ts";
import { readPrivateKeyFile } from "../attestation/kbs/key-file.ts";
import { dotDotAfterLink, findUnsafeDirectory, unsafeDirectoryReason } from "../attestation/path-safety.ts";
import { describeUntrusted } from "../attestation/untrusted-text.ts";
import { describeUrlText } from "../attestation/url-text.ts";
import { type OutputFileErrors, syncDirectory, writeFileAtomically } from "../client/cli/output.ts";
import { ResponseTooLargeError, readBoundedBytes } from "../sealed/bytes.ts";
import {
  type BootAuditKey,
  bootAuditKey,
  chainProblem,
  checkRecordLine,
  recordLineHash,
} from "./audit-record-check.ts";
import { AuditStore, AuditStoreError, type CheckedLine, checkLogLine, peekLog } from "./audit-store.ts";
import { checkEnclaveUrl } from "./enclave-url.ts";

/**
 * Puts a file holding `text` at `path`, mode 0600 as the log beside it (audit-store.ts) whatever
 * the umask, durably, and never through what is already there: the audit directory may hold a
 * symbolic or hard link planted at `path` by someone who can write there, and opening `path` would
 * write (and truncate) wherever it leads. So the text goes to a new file beside it, created
 * exclusively and not through a link (O_EXCL, O_NOFOLLOW), fsync'ed, then renamed over `path`
 * (which replaces the name, never what a link leads to), and the directory fsync'ed: the CLI's
 * writeFileAtomically. A failure leaves no temporary file, and `path` as it was unless only the
 * directory's fsync failed (the new file is then in place; fileKey files it again next time).
 */
function replaceOwnerOnly(path: string, text: string): Promise<void> {
  return writeFileAtomically(path, text, { mode: 0o600, replace: true }, asThrown);
}

/**
 * Each boot's key as this process filed it (by its .key path), once the .key holds it durably, for
 * as long as a collector collects that boot (`users`): the collectors of one boot (one enclave under
 * two URLs) file one key. A boot no collector collects any more is forgotten, so this holds the
 * current boots only, not one per enclave boot of the host's life; its .key on disk decides again,
 * as for another host process's boot.
 */
const filedKeys = new Map<string, { key: string; filed: Promise<void>; users: number }>();

/**
 * Files `key` in the .key at `path` (a filing hint, see the module comment: unauthenticated, so no
 * verifier may take its key from here); null when this boot's .key names another key, else the
 * function that lets go of it (when the collector leaves the boot). Written like the log beside it
 * (durably, never through a link planted in its place), only when it is not there already: a .key
 * found holding it is kept (an earlier host process's: its directory synced once).
 */
async function fileKey(path: string, key: string): Promise<(() => void) | null> {
  const text = `${key}\n`;
  const onDisk = await readKeyFile(path);
  // From here to the entry set, synchronous: two collectors of one boot file one key.
  let entry = filedKeys.get(path);
  if (entry !== undefined && entry.key !== key) return null;
  if (entry === undefined && onDisk !== null && onDisk.trimEnd() !== key && HEX64.test(onDisk.trimEnd())) return null;
  if (entry === undefined || onDisk !== text) {
    // Filed anew when it is not there as written (absent, moved aside, replaced); an entry the
    // boot's collectors hold is kept, with its count of them.
    const filed = onDisk === text ? syncDirectory(dirname(path)) : replaceOwnerOnly(path, text);
    const filing = entry ?? { key, filed, users: 0 };
    filing.filed = filed;
    filedKeys.set(path, filing);
    filed.catch(() => {
      // Filed again at the next collection.
      if (filedKeys.get(path) === filing && filing.filed === filed) filedKeys.delete(path);
    });
    entry = filing;
  }
  const held = entry;
  held.users += 1;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    held.users -= 1;
    if (held.users === 0 && filedKeys.get(path) === held) filedKeys.delete(path);
  };
  try {
    await held.filed;
  } catch (error) {
    release();
    throw error;
  }
  return release;
}

/** A .key this host writes: the key as 64 hex digits and a newline. */
const KEY_FILE_BOUND: InputBound = { bytes: 65, expected: "an Ed25519 public key as 64 hex digits and a newline" };

/**
 * The text of the .key at `path` when it may be one this host wrote: read as the host's other
 * owner-only files are (readPrivateKeyFile: a regular file, not a link, this user's or root's, no
 * group or other access, a key's size, UTF-8); null when there is none (ENOENT) or it is not such a
 * file (a link, a fifo, wider, larger, anything else: replaced). One that is there but cannot be
 * opened or read (EACCES, EIO: any code but ENOENT) is no absent one: AUDIT_STORE_IO naming it and
 * why (fileErrorCause), the error its cause, and it is left as it is (a disk failing, or a key
 * this user may not read, is not written over; one it can read that is not such a file is, as above);
 * collection stops there until it can be read.
 */
async function readKeyFile(path: string): Promise<string | null> {
  try {
    return await readPrivateKeyFile(path, ".key", {
      bound: KEY_FILE_BOUND,
      // Its directory, --audit-dir, is checked (findUnsafeDirectory) when the store opens, and its
      // name is a boot id's first 16 hex digits (parseBatch: HEX64), so nothing else is read here.
      // readPrivateKeyFile's only `held: null`: no path a user names reaches it.
      held: null,
      // No .key yet (the usual case: the first collection from an enclave) is no failure: its own
      // error is thrown as it is, and taken for null below, with no AuditStoreError worded for it.
      cannotRead: (cause) =>
        (cause as NodeJS.ErrnoException | null)?.code === "ENOENT" && cause instanceof Error
          ? cause
          : new AuditStoreError(
              "AUDIT_STORE_IO",
              `${path}: cannot read (${fileErrorCause(cause)}); left as it is: only a .key that is not there is filed anew`,
              { cause },
            ),
    });
  } catch (error) {
    if (error instanceof AuditStoreError) throw error;
    return null;
  }
}

/**
 * writeFileAtomically's outcomes as the errors themselves: the collector reports them as they are.
 * (`exists` is there for the interface only: a .key is written with `replace`, which never calls it.)
 */
const thrown = (cause: unknown): Error => (cause instanceof Error ? cause : new Error(String(cause)));
const asThrown: Pick<OutputFileErrors, "exists" | "noDirectory" | "failed"> = {
  exists: thrown,
  noDirectory: (_directory, cause) => thrown(cause),
  failed: (cause) => thrown(cause),
};

/**
 * An audit directory the host cannot store records in (prepareAuditDir): `audit directory DIR: reason`
 * (fileMessage's form); `cloister host` names `--audit-dir` in its place.
 */
export class AuditDirError extends Error {
  constructor(
    /** What is wrong with `dir`, without its path. */
    readonly reason: string,
    readonly dir: string,
    options: { cause: unknown },
  ) {
    super(fileMessage(dir, "audit directory", reason), options);
    this.name = "AuditDirError";
  }
}

/**
 * Makes `dir` (mode 0700), its parent only if it exists, and syncs its entry in that parent (the
 * store syncs each log file's entry in it, AuditStore.open); an existing directory is left as it is.
 */
async function makeAuditDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { mode: 0o700 });
    // A parent this process cannot read (cannot open to fsync) is passed over: the directory is
    // there, only a power loss in the next seconds could take it.
    await syncDirectory(dirname(resolve(dir))).catch(() => undefined);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    // Something is there: a directory (or a link to one) is used as it is.
    const found = await stat(dir).catch((e: unknown) => {
      // Something that exists but whose stat finds nothing: a symbolic link to a missing target.
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      throw new AuditDirError(
        "expected a directory, found a symbolic link to a missing target; point it at a directory or remove it",
        dir,
        { cause: e },
      );
    });
    if (!found.isDirectory()) throw error;
  }
}

/**
 * Makes `dir` (mode 0700) unless it exists, then checks that it is a directory this process can
 * write to: called by startHost (host/server.ts) before anything starts, so a host that could not
 * store the enclave's audit records refuses to start rather than serve without them. Only the last
 * directory is made: a missing parent is refused, so a mistyped path (in a systemd unit, say) is
 * noticed instead of splitting the records between two trees. A directory someone else could
 * change is refused: one another user owns or others may write to, or below one anyone may write to,
 * without the sticky bit (findUnsafeDirectory). An empty path is refused, as is a `..` after a link
 * (dotDotAfterLink: the kernel would make and the check see another directory than the one the
 * collector joins file names to). Throws an AuditDirError whose message names what was found.
 */
export async function prepareAuditDir(dir: string): Promise<void> {
  // Not the working directory (resolve("") is), whose parent a missing-parent hint would name.
  if (dir === "") {
    throw new AuditDirError(
      "expected the path of a directory, found an empty one; name the directory the host keeps the audit records in (e.g. --audit-dir /var/lib/cloister/audit)",
      dir,
      { cause: null },
    );
  }
  // What is made and checked below is what the kernel reaches; the collector names its files
  // join(dir, name), which removes a `..` lexically: a `..` after a link would part the two.
  const parted = await dotDotAfterLink(dir);
  if (parted !== null) {
    throw new AuditDirError(
      `expected a path whose \`..\` leaves the directory named before it, found one after a symbolic link (${parted.prefix}: the directory ${parted.kernel}, not ${parted.joined}); name the directory by its real path (realpath -m ${shellWord(dir)})`,
      dir,
      { cause: null },
    );
  }
  try {
    await makeAuditDir(dir);
  } catch (error) {
    if (error instanceof AuditDirError) throw error;
    // A file there (EEXIST), a path through one (ENOTDIR) or a missing parent (ENOENT), never silently.
    const code = (error as NodeJS.ErrnoException).code;
    throw new AuditDirError(
      code === "EEXIST"
        ? "expected a directory, found a file"
        : code === "ENOTDIR"
          ? "expected a directory, found a file on its path"
          : code === "ENOENT"
            ? `its parent directory does not exist; check the path for a typo, or create the parent first (mkdir -p ${shellWord(dirname(resolve(dir)))}; only the last directory is made)`
            : `cannot create the directory (${fileErrorCause(error, "write")})`,
      dir,
      { cause: error },
    );
  }
  try {
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (error) {
    throw new AuditDirError(`expected a directory this user can write to (${fileErrorCause(error, "write")})`, dir, {
      cause: error,
    });
  }
  // Anyone who can write to it could remove or rename a log the host is appending to (the records
  // would go on into a file no longer there, acknowledged and lost), or put their own in its place.
  // The sticky bit (as /tmp has) keeps others from removing or renaming the host's files. Anyone
  // who can write to a directory above it could rename the whole directory away, logs and all, and
  // put their own there (attestation/path-safety.ts).
  // No check that the directory used is the one walked (as readAfterPathCheck's device and inode
  // are), on purpose: after this walk, only the owner of a directory above it (or a group that may
  // write to one) could rename it or a link on its path and put another there; the walk does not
  // hold them (path-safety.ts: root in a checkout another user made), and the collector names its
  // files join(dir, name) for the host's whole life, each new boot's log and .key, so they could do
  // it as well at any later time. Node has no openat to work in a directory held open; a compare
  // here would close one moment of a window that stays open. A trust file's read is one open, so
  // its compare closes its whole window.
  const unsafe = await findUnsafeDirectory(dir).catch((error: unknown) => {
    throw new AuditDirError(`cannot check its path (${fileErrorCause(error, "check")})`, dir, { cause: error });
  });
  if (unsafe !== null) throw new AuditDirError(unsafeDirectoryReason(unsafe, dir, "its logs"), dir, { cause: null });
}

/** What a collection found when the enclave answered 503 ENCLAVE_BOOTING: nothing to collect yet. */
const WAITING_FOR_BOOT = Symbol("waiting for the enclave's boot");

/** Whether a 503 is the enclave's ENCLAVE_BOOTING answer (read up to 1 KiB; a longer one is not). */
async function isBootingAnswer(response: Response): Promise<boolean> {
  try {
    const body = await readBoundedBytes(response.body ?? [], 1024);
    const answer = JSON.parse(utf8.decode(body)) as { error?: { code?: unknown } } | null;
    return answer?.error?.code === "ENCLAVE_BOOTING";
  } catch {
    return false;
  }
}

/**
 * How long one collection may take, answer included: its requests share it (the `/audit` answer,
 * then a new boot's document, on `/audit/document` and perhaps `/attestation`), so a collection at
 * shutdown ends within the enclave's shutdown grace (10 s too) rather than three times that.
 */
const COLLECT_TIMEOUT_MS = 10_000;

/**
 * The most collections stop() runs; past it an enclave still writing records is left with them.
 * The enclave hands its backlog over in pages of AUDIT_PAGE_MAX_LINES (1,000; enclave/service.ts),
 * one per collection: its largest backlog, MAX_AUDIT_BACKLOG (10,000) records and one for each
 * request still under way (at most one per connection: ENCLAVE_MAX_CONNECTIONS, 16,384;
 * enclave/run.ts), takes 27 collections, and the last records of a host's answers two or three
 * more (the records, their acknowledgement, and those written meanwhile).
 * test/host/audit-collector.test.ts checks this bound against the enclave's constants.
 */
export const STOP_MAX_COLLECTIONS = 48;

/**
 * The largest `/audit` answer the host reads (64 MiB): past it the answer is refused (the rest left
 * unread, the connection closed), nothing of it is stored, and the next collection asks again. An
 * enclave answers with a page of at most AUDIT_PAGE_MAX_LINES (1,000; enclave/service.ts) of its
 * unacknowledged records, about 1.7 MB at the longest lines. The bound stays where it was before
 * the enclave paged, so a host upgraded before its enclaves still reads an older enclave's answer:
 * its whole backlog, up to MAX_AUDIT_BACKLOG (10,000) records and one per request under way (at
 * most ENCLAVE_MAX_CONNECTIONS, 16,384; enclave/run.ts), about 45 MB. A misbehaving enclave (or
 * whatever answers at --enclave-url) cannot make the host buffer more. An answer this large holds
 * the event loop for its one JSON.parse (about 1.5 s for 64 MiB of tiny lines on a loaded 2-core
 * machine, some 200 MB of heap; a parse cannot be sliced), then is refused by AUDIT_BATCH_MAX_LINES
 * or at its first bad line. Once no enclave from before paging runs, this can come down to a page
 * (a few MiB), and that cost with it.
 * test/host/audit-collector.test.ts checks this bound against the enclave's constants.
 */
export const AUDIT_BATCH_MAX_BYTES = 64 * 1024 * 1024;

/**
 * The most lines an `/audit` answer may hold (26,384): an older enclave's whole backlog,
 * MAX_AUDIT_BACKLOG (10,000) records and one per request under way (ENCLAVE_MAX_CONNECTIONS,
 * 16,384); a current one sends AUDIT_PAGE_MAX_LINES (1,000). An answer with more is refused before
 * any line is checked: within AUDIT_BATCH_MAX_BYTES fit millions of tiny lines, and each line is
 * parsed and checked on the event loop that forwards the host's requests.
 * test/host/audit-collector.test.ts checks this bound against the enclave's constants.
 */
export const AUDIT_BATCH_MAX_LINES = 10_000 + 16_384;

const utf8 = new TextDecoder();

interface AuditBatch {
  boot: string;
  signingKey: string;
  from: number;
  lines: string[];
  next: number;
}

const HEX64 = /^[0-9a-f]{64}$/;

/**
 * The enclave's answer as a batch, or what is wrong with it: the field, what was expected and what
 * was found (shown by describeUntrusted: the answer is not authenticated). `next` must be one past
 * its lines (enclave/service.ts collectAudit): a larger one would make the host acknowledge, and
 * the enclave drop, records the host never stored.
 */
function parseBatch(value: unknown): AuditBatch | string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return `expected a JSON object, found ${describeUntrusted(value)}`;
  }
  const v = value as Record<string, unknown>;
  for (const field of ["boot", "signingKey"]) {
    const found = v[field];
    if (typeof found !== "string" || !HEX64.test(found)) {
      // Its length only: a key-shaped value is never repeated in a log line.
      const shape = typeof found === "string" ? `a string of ${found.length} characters` : describeUntrusted(found);
      return `${field}: expected 64 lower-case hex digits, found ${shape}`;
    }
  }
  for (const field of ["from", "next"]) {
    const found = v[field];
    if (!Number.isSafeInteger(found) || (found as number) < 0) {
      return `${field}: expected a whole number from 0, found ${describeUntrusted(found)}`;
    }
  }
  const lines = v.lines;
  if (!Array.isArray(lines)) return `lines: expected an array of strings, found ${describeUntrusted(lines)}`;
  if (lines.length > AUDIT_BATCH_MAX_LINES) {
    return `lines: expected at most ${AUDIT_BATCH_MAX_LINES} lines, found ${lines.length}`;
  }
  const notText = lines.findIndex((line) => typeof line !== "string");
  if (notText !== -1) return `lines[${notText}]: expected a string, found ${describeUntrusted(lines[notText])}`;
  const next = (v.from as number) + lines.length;
  if (v.next !== next) return `next: expected from + the number of lines (${next}), found ${v.next}`;
  return value as AuditBatch;
}

/**
 * Why fetch failed, never in fetch's own message when it may quote a URL (which may carry a user
 * and password): describeFetchFailure.
 */
function fetchFailure(error: unknown): string {
  return (error as Error | null)?.name === "TimeoutError"
    ? `no answer in ${COLLECT_TIMEOUT_MS} ms`
    : describeFetchFailure(error);
}

/** `record.seq` of a parsed line as it is, read without verifying anything (undefined: none). */
function seqField(value: object): unknown {
  return (value as { record?: { seq?: unknown } }).record?.seq;
}

/** `record.seq` of a parsed line, read without verifying anything; null when it has none. */
function seqOf(value: object): number | null {
  const seq = seqField(value);
  return Number.isSafeInteger(seq) && (seq as number) >= 0 ? (seq as number) : null;
}

/** `record.seq` of a record line, read without verifying anything; null when it has none (or not JSON). */
function recordSeq(line: string): number | null {
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === "object" && value !== null ? seqOf(value) : null;
  } catch {
    return null;
  }
}

/**
 * One boot's log file as this process stores it, shared by every collector that collects that boot:
 * one enclave named by two `--enclave-url` spellings (127.0.0.1 and localhost) has two collectors,
 * and each of its records must be stored once (stored twice, the log fails as duplicated).
 */
interface BootLog {
  readonly store: AuditStore;
  /** The next record to store: the records before it are in the file. */
  next: number;
  /**
   * The seq and hash of the last record in the file (its successor's prevHash): stored by this
   * process, or its last line when it was opened (resumeAt); null: not known.
   */
  last: { seq: number; hash: string } | null;
  /** Batches are stored one at a time, so what is already stored is decided against `next`. */
  turn: Promise<unknown>;
}

/**
 * Record `seq` of a batch of boot `boot` as its log takes it (store): a line a store of the default
 * line bound takes (checkLogLine; the collector's stores are opened with it), holding that seq,
 * signed by the boot's key and chained to `prevHash` (null: the record before it is not known, not
 * compared); else the problem, as a log line (never the line).
 */
function checkBatchLine(
  text: string,
  seq: number,
  prevHash: string | null,
  key: BootAuditKey,
  boot: string,
  base: string,
): { line: CheckedLine; hash: string } | string {
  const line = checkLogLine(text);
  if (typeof line === "string") return `audit: record ${seq} from the enclave is not a valid record line (${line})`;
  if (seqOf(line.value) !== seq) {
    return `audit: record ${seq} from the enclave: seq: expected ${seq}, found ${describeUntrusted(seqField(line.value))}`;
  }
  const signed = checkRecordLine(key, text, line.value, prevHash);
  if (typeof signed === "string") return recordRefused(base, boot, seq, signed);
  return { line, hash: signed.hash };
}

/** The log line of a record of boot `boot` refused by its check (audit-record-check.ts): `why`. */
function recordRefused(base: string, boot: string, seq: number, why: string): string {
  return `audit: the audit batch of the enclave at ${describeUrlText(base)} is refused: boot ${boot.slice(0, 16)}, record ${seq}: ${why}`;
}

/**
 * A batch's records from `from` on, checked (checkBatch): the lines as the store takes them and
 * each one's seq and hash. The check depends on the lines, `from`, the first one's prevHash and
 * the key only.
 */
interface CheckedBatch {
  readonly from: number;
  readonly lines: CheckedLine[];
  /** The seq and hash of each checked line, in order. */
  readonly chain: { seq: number; hash: string }[];
}

/**
 * `batch`'s lines from record `from` on, each checked (checkBatchLine), the first
 * chained to `prevHash`; else the first problem, as a log line. All or nothing, and checked up to
 * the first bad line only: a broken answer is refused whole at it, and the lines after it (a hostile
 * answer's thousands) are never parsed.
 */
async function checkBatch(
  batch: AuditBatch,
  from: number,
  prevHash: string | null,
  key: BootAuditKey,
  base: string,
): Promise<CheckedBatch | string> {
  const lines: CheckedLine[] = [];
  const chain: { seq: number; hash: string }[] = [];
  let previous = prevHash;
  for (const [i, text] of batch.lines.slice(from - batch.from).entries()) {
    const line = checkBatchLine(text, from + i, previous, key, batch.boot, base);
    if (typeof line === "string") return line;
    previous = line.hash;
    chain.push({ seq: from + i, hash: line.hash });
    lines.push(line.line);
    // A record's check costs 0.1-0.3 ms on a 2-core machine (its Ed25519 signature, mostly): a page
    // of AUDIT_PAGE_MAX_LINES would hold the event loop that forwards the host's frames for a third
    // of a second, so the loop is let go after each record. In slices of 16 records, the longest
    // block of a 64-record batch's collection was 2.6-2.7 ms at best, against 0.7-1.1 ms record by
    // record (the host's target is 1 ms p99 per frame); a turn costs a few µs.
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { from, lines, chain };
}

/**
 * `prechecked`'s records (checkNewBoot) from record `from` on (at or past its first: store() only
 * skips records), as checkBatch would check them from there chained to `prevHash` (null: not
 * compared); else the problem, as checkBatchLine words it.
 * A record's signature and seq do not depend on where the batch is stored from, and each record
 * after the first was checked chained to the one before it: only the first one's prevHash is
 * compared again, on the value its line was parsed to (no line parsed twice).
 */
function checkedFrom(
  prechecked: CheckedBatch,
  from: number,
  prevHash: string | null,
  boot: string,
  base: string,
): CheckedBatch | string {
  const skip = from - prechecked.from;
  const lines = prechecked.lines.slice(skip);
  const problem = lines[0] === undefined ? null : chainProblem(lines[0].value, prevHash);
  if (problem !== null) return recordRefused(base, boot, from, problem);
  return { from, lines, chain: prechecked.chain.slice(skip) };
}

/** What checkNewBoot found in a new boot's batch with no record: nothing to store, no file made. */
const NO_RECORD_YET = Symbol("no record of the boot yet");

/**
 * The batch of a boot this collector has not met, checked before the boot's files (its .jsonl and
 * .key) are made or opened, or before it leaves the boot it collected for one another collector of
 * this process has open: NO_RECORD_YET when it holds no record, the problem (as store() words it)
 * when a record is refused. Each enclave boot has two files, and the `/audit` answer is not
 * authenticated: made before any record was checked, whatever answers at `--enclave-url` with a
 * fresh document and boot id at each collection (a restarting enclave, or something hostile there)
 * would make two files a collection; and an answer naming a boot whose files are on disk (its
 * document replayed) would have its .key filed again and its log opened (a torn last line cut, its
 * mode set). So they are made or opened once a record is there and checked: all of the batch's,
 * from its first line, chained from the genesis at seq 0, else not compared; store() then takes the
 * check from where it stores (checkedFrom), where the records another collector stored already are
 * skipped unchecked.
 */
async function checkNewBoot(
  batch: AuditBatch,
  key: BootAuditKey,
  base: string,
): Promise<CheckedBatch | string | typeof NO_RECORD_YET> {
  if (batch.lines.length === 0) return NO_RECORD_YET;
  return checkBatch(batch, batch.from, batch.from === 0 ? key.genesis : null, key, base);
}

/**
 * One past the last record boot file `path` holds (the next one to store): as this process's open
 * log of it counts, else as the file on disk ends, read only (peekLog: nothing cut, chmod'ed or
 * created); 0 when there is no such file or it is empty. null when that is not known (its last line
 * holds no seq, or it cannot be read): opening it (acquire) then says what is wrong.
 */
async function storedEnd(path: string): Promise<number | null> {
  const open = bootLogs.get(path);
  if (open !== undefined) return (await open.log.catch(() => null))?.next ?? null;
  const found = await peekLog(path).catch(() => undefined);
  if (found === undefined) return null;
  if (found === null || found.empty) return 0;
  const seq = found.lastLine === null ? null : recordSeq(found.lastLine);
  return seq === null ? null : seq + 1;
}

/** The largest document answer read: `{"document":"<jws>"}` of a document of DOCUMENT_MAX_LENGTH. */
const DOCUMENT_ANSWER_MAX_BYTES = DOCUMENT_MAX_LENGTH + '{"document":""}'.length;

/**
 * The boots whose document reads a collector keeps (bootKeyOf): a few keys (and problems), so a
 * hostile answer naming a new boot at each collection makes it hold no more.
 */
const DOCUMENT_READS_KEPT = 4;

/** The open logs of this process, by the file's resolved path; `users` counts the collectors. */
const bootLogs = new Map<string, { users: number; log: Promise<BootLog> }>();
/** Logs being closed (their last user gone): one is opened again only once closed. */
const closingLogs = new Map<string, Promise<void>>();

export class AuditCollector {
  private boot: string | null = null;
  /** This boot's key, from its attestation document (audit-record-check.ts): records are checked with it. */
  private bootKey: BootAuditKey | null = null;
  /**
   * The last reads of boots' documents (bootKeyOf), by boot id, the latest last: each one's key or
   * the problem, and when it was asked for. At most DOCUMENT_READS_KEPT.
   */
  private readonly documentReads = new Map<string, { key: BootAuditKey | string; at: number }>();
  private shared: { users: number; log: Promise<BootLog> } | null = null;
  /** Lets go of this boot's filed key (fileKey), once this collector leaves the boot. */
  private releaseKey: () => void = () => {};
  private log: BootLog | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  /** Set by stop(): no timer, no re-run started from a collection's end, no "retrying" log. */
  private stopping = false;
  /** Set when stop() closes the store: collect() then does nothing. */
  private stopped = false;
  private stopDone: Promise<void> | null = null;
  private timer: ReturnType<typeof setInterval> | undefined;
  /** The last problem and the failed attempts in a row: a problem is logged when it starts, not on every retry. */
  private problem: { message: string | typeof WAITING_FOR_BOOT; failures: number } | null = null;

  constructor(
    private readonly options: {
      enclaveUrl: string;
      dir: string;
      intervalMs: number;
      fetch?: typeof fetch;
      onError?: (message: string) => void;
      /** The largest `/audit` answer read (default AUDIT_BATCH_MAX_BYTES). */
      maxBatchBytes?: number;
    },
  ) {
    // The host's own check (startHost's pool makes it first), here too for a library caller's
    // collector: a user and password would be sent to the enclave, whose server takes none.
    checkEnclaveUrl(options.enclaveUrl);
  }

  start(): void {
    this.timer = setInterval(() => this.collect(), this.options.intervalMs);
    this.timer.unref?.();
    this.collect();
  }

  private soon: ReturnType<typeof setTimeout> | undefined;

  /**
   * Collects shortly (after `delayMs`), coalescing the responses that end in the meantime, so
   * storing audit records does not compete with the next request's first token.
   */
  collectSoon(delayMs = 100): void {
    if (this.soon !== undefined || this.stopping) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.collect();
    }, delayMs);
  }

  /**
   * Starts a collection now (coalesced with one already running: it runs again once that one ends).
   * After stop() has closed the store it does nothing.
   */
  collect(): Promise<void> {
    if (this.running !== null) {
      this.again = true;
      return this.running;
    }
    if (this.stopped) return Promise.resolve();
    // A failure (a malformed batch, a full disk) is reported, never thrown at the timer: the host
    // keeps forwarding, and the enclave keeps every unacknowledged record until it is stored.
    this.running = this.run()
      .then(
        (problem) => this.report(problem),
        (error: unknown) => this.report(`audit: cannot store the enclave's records (${(error as Error).message})`),
      )
      .finally(() => {
        this.running = null;
        // While stopping, stop() runs the next collection itself (and awaits it).
        if (this.again && !this.stopping) {
          this.again = false;
          void this.collect();
        }
      });
    return this.running;
  }

  /**
   * Logs `problem` when it differs from the last one (a dead enclave is retried every second, and
   * one line says so), and that collection works again after one.
   */
  private report(problem: string | typeof WAITING_FOR_BOOT | null): void {
    const last = this.problem;
    const enclave = describeUrlText(this.options.enclaveUrl);
    if (problem === null) {
      this.problem = null;
      if (last?.message === WAITING_FOR_BOOT) {
        this.options.onError?.(`audit: the enclave at ${enclave} has booted; collecting its records`);
      } else if (last !== null) {
        this.options.onError?.(
          `audit: collecting from ${enclave} again (after ${last.failures} failed attempts; the last: ${last.message})`,
        );
      }
      return;
    }
    this.problem = { message: problem, failures: (last?.failures ?? 0) + 1 };
    if (last?.message === problem) return;
    if (problem === WAITING_FOR_BOOT) {
      // Normal at every start (README: ENCLAVE_BOOTING); it holds no records yet, so none is lost.
      if (!this.stopping) {
        this.options.onError?.(
          `audit: waiting for the enclave at ${enclave} to boot (503 ENCLAVE_BOOTING); its records are collected once it has`,
        );
      }
      return;
    }
    if (this.stopping) {
      this.options.onError?.(`${problem}; not retried: the host is stopping`);
      return;
    }
    this.options.onError?.(
      `${problem}; retrying every ${this.options.intervalMs} ms (logged again when the problem changes or ends)`,
    );
  }

  /**
   * One collection; resolves with the problem that stopped it (null: none; WAITING_FOR_BOOT: the
   * enclave is still booting), rejects when storing failed.
   */
  private async run(): Promise<string | typeof WAITING_FOR_BOOT | null> {
    const base = this.options.enclaveUrl.replace(/\/+$/, "");
    const maxBytes = this.options.maxBatchBytes ?? AUDIT_BATCH_MAX_BYTES;
    const deadline = AbortSignal.timeout(COLLECT_TIMEOUT_MS);
    /** The answer's bytes, or what was found of one larger than `maxBytes`. */
    let body: Uint8Array | { tooLarge: string };
    try {
      // The acknowledgement names the boot it is for: after an enclave restart it acknowledges nothing.
      const boot = this.boot === null ? "" : `&boot=${this.boot}`;
      const next = this.log?.next ?? 0;
      // Bounded: an enclave that accepts the connection but never answers must not hold up the
      // host (its last collection runs at shutdown).
      const response = await (this.options.fetch ?? fetch)(`${base}/audit?from=${next}${boot}`, {
        redirect: "error",
        signal: deadline,
      });
      if (!response.ok) {
        // A booting enclave's 503 is no failure (enclave/server.ts bootingAnswer): its short answer
        // is read to tell. Any other refusal's body is not needed, and an unread one holds the connection.
        if (response.status === 503 && (await isBootingAnswer(response))) return WAITING_FOR_BOOT;
        await response.body?.cancel().catch(() => undefined);
        throw new Error(`HTTP ${response.status}`);
      }
      const declared = Number(response.headers.get("content-length") ?? Number.NaN);
      if (declared > maxBytes) {
        await response.body?.cancel().catch(() => undefined);
        body = { tooLarge: `${declared} bytes (its Content-Length)` };
      } else {
        body = await readBoundedBytes(response.body ?? [], maxBytes).catch((error: unknown) => {
          if (error instanceof ResponseTooLargeError) return { tooLarge: `more than ${maxBytes} bytes` };
          throw error;
        });
      }
    } catch (error) {
      return `audit: cannot collect from the enclave at ${describeUrlText(base)} (${fetchFailure(error)})`;
    }
    if (!(body instanceof Uint8Array)) {
      return `audit: the audit batch of the enclave at ${describeUrlText(base)} is too large: expected at most ${maxBytes} bytes, found ${body.tooLarge}`;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(utf8.decode(body));
    } catch {
      // Never JSON.parse's message: it would quote the answer.
      return `audit: the audit batch of the enclave at ${describeUrlText(base)} is malformed: expected a JSON object, found text that is not JSON`;
    }
    const batch = parseBatch(parsed);
    if (typeof batch === "string") {
      return `audit: the audit batch of the enclave at ${describeUrlText(base)} is malformed: ${batch}`;
    }
    const name = batch.boot.slice(0, 16);
    /** A new boot's batch, checked before its files were made (checkNewBoot). */
    let checked: CheckedBatch | null = null;
    // A new boot's document is read even for an answer with no record, on purpose. Read later (at
    // its first record) it would bound nothing: an answer naming a new boot with one line, any
    // line, has it read too (a record is checked under the key it names), and a boot's document is
    // read once whichever answer meets it (bootKeyOf). Read now, while the new boot's enclave is
    // idle, its key is known before its first records, so the collection that takes them (the one
    // at the enclave's shutdown, say, within its grace) does not spend its COLLECT_TIMEOUT_MS on a
    // document of up to 4 MiB first; and a document that cannot be read, or a signingKey it does
    // not name, is reported from the boot's start, not only once records wait for it.
    const bootKey = batch.boot === this.boot ? this.bootKey : await this.bootKeyOf(base, batch.boot, deadline);
    if (typeof bootKey === "string") return bootKey;
    if (bootKey === null || batch.signingKey !== bootKey.hex) {
      // One boot has one key (its boot id is the digest of the document naming it): records under
      // another are no record of this boot, and the .key filing hint would name the wrong one.
      return `audit: the audit batch of the enclave at ${describeUrlText(base)} is refused: signingKey: expected the key of boot ${name}'s attestation document, found another`;
    }
    if (batch.boot !== this.boot) {
      // A new enclave boot (new keys): a new chain, a new file, counted from its start.
      const logPath = resolve(this.options.dir, `${name}.jsonl`);
      const first = await checkNewBoot(batch, bootKey, base);
      // No record yet, or refused: nothing to store or acknowledge. The boot collected so far keeps
      // its log open (an answer naming another boot may be a replayed or hostile one), and the next
      // collection asks on from there (an enclave that restarted acknowledges nothing of another boot).
      if (first === NO_RECORD_YET) return null;
      if (typeof first === "string") return first;
      // Genuine records, but perhaps a replayed answer of an older boot: its records are signed and
      // chained, and its document still names their key. The log collected so far is let go only
      // for a record that boot's file does not hold yet (there is then something to store); an
      // answer holding none leaves both files as found, and is acknowledged nowhere. (Two enclaves
      // behind one URL: the other one's records whose acknowledgement was lost are acknowledged
      // with its next record.) A collector that collects no boot yet (a host just started) opens
      // the file anyway: that is how it resumes, acknowledging what the file holds (resumeAt).
      if (this.boot !== null) {
        const end = await storedEnd(logPath);
        if (end !== null && batch.next <= end) return null;
      }
      checked = first;
      await this.release();
      this.boot = null;
      await makeAuditDir(this.options.dir);
      const keyPath = join(this.options.dir, `${name}.key`);
      const releaseKey = await fileKey(keyPath, batch.signingKey);
      if (releaseKey === null) {
        // The same check as above, across the collectors of this boot (one enclave under two URLs)
        // and the host processes that filed it before.
        return `audit: the audit batch of the enclave at ${describeUrlText(base)} is malformed: signingKey: expected the key filed for this boot in ${keyPath}, found another`;
      }
      try {
        this.log = await this.acquire(logPath, batch, name);
      } catch (error) {
        releaseKey(); // filed again at the next collection, or forgotten with the boot
        throw error;
      }
      // Only now: a boot whose file could not be opened is opened again at the next collection.
      this.boot = batch.boot;
      this.bootKey = bootKey;
      this.releaseKey = releaseKey;
    }
    const log = this.log;
    if (log === null) return null;
    // One batch of this boot's file at a time (another collector may store the same records).
    const turn = log.turn.then(() => this.store(log, batch, bootKey, base, checked));
    log.turn = turn.catch(() => undefined);
    const problem = await turn;
    if (problem !== null) return problem;
    if (batch.lines.length > 0) void this.collect(); // acknowledge what was just written (or already was)
    return null;
  }

  /**
   * The key of boot `boot` (readBootKey), or the problem, as a log line. Read once per boot a
   * collector meets; a failed read is not repeated before a collection interval has passed since it
   * was asked for: collection also runs after every response, and each read may carry a document of
   * up to 4 MiB. (The timer's jitter may put the retry one round later.) The last
   * DOCUMENT_READS_KEPT boots' reads are kept: a boot whose answers hold no record yet, or are
   * refused, makes no file and is met again at the next collection, as are the boots answering in
   * turn at one URL (two enclaves behind it, or a replayed answer between the current boot's).
   */
  private async bootKeyOf(base: string, boot: string, deadline: AbortSignal): Promise<BootAuditKey | string> {
    const last = this.documentReads.get(boot);
    if (last !== undefined && (typeof last.key !== "string" || Date.now() - last.at < this.options.intervalMs)) {
      return last.key;
    }
    const at = Date.now();
    const key = await this.readBootKey(base, boot, deadline);
    this.documentReads.delete(boot);
    this.documentReads.set(boot, { key, at });
    for (const oldest of this.documentReads.keys()) {
      if (this.documentReads.size <= DOCUMENT_READS_KEPT) break;
      this.documentReads.delete(oldest);
    }
    return key;
  }

  /**
   * The key of boot `boot`, read from the attestation document the enclave at `base` serves its
   * collector on `GET /audit/document` (bootAuditKey: the document whose SHA-256 is the boot id);
   * else the problem, as a log line. That route answers while the enclave drains and after
   * AUDIT_FAILED (enclave/server.ts), when `/attestation` refuses: a host (re)started then still
   * stores that boot's records. An older enclave without it (404) is read on `/attestation`, which
   * it refuses in those states (its records then stay with it).
   */
  private async readBootKey(base: string, boot: string, deadline: AbortSignal): Promise<BootAuditKey | string> {
    const name = boot.slice(0, 16);
    const cannot = (why: string) =>
      `audit: cannot read the attestation document of boot ${name} from the enclave at ${describeUrlText(base)} (${why}); none of its records is stored before its key is known`;
    let text: string;
    try {
      const get = (route: string) =>
        (this.options.fetch ?? fetch)(`${base}${route}`, {
          redirect: "error",
          signal: deadline,
        });
      let response = await get("/audit/document");
      if (response.status === 404) {
        await response.body?.cancel().catch(() => undefined);
        response = await get("/attestation");
      }
      if (!response.ok) {
        await response.body?.cancel().catch(() => undefined);
        return cannot(`HTTP ${response.status}`);
      }
      text = utf8.decode(await readBoundedBytes(response.body ?? [], DOCUMENT_ANSWER_MAX_BYTES));
    } catch (error) {
      return cannot(
        error instanceof ResponseTooLargeError
          ? `expected at most ${DOCUMENT_ANSWER_MAX_BYTES} bytes`
          : fetchFailure(error),
      );
    }
    let document: unknown;
    try {
      document = (JSON.parse(text) as { document?: unknown } | null)?.document;
    } catch {
      return cannot("expected a JSON object, found text that is not JSON");
    }
    if (typeof document !== "string")
      return cannot(`document: expected a string, found ${describeUntrusted(document)}`);
    const key = bootAuditKey(document, boot);
    return typeof key === "string"
      ? `audit: the audit batch of the enclave at ${describeUrlText(base)} is refused: boot ${name}: ${key}`
      : key;
  }

  /**
   * Opens this boot's log, or shares the one another collector of this process has open for it
   * (the file is named by the boot, so one file, one store, one `next`).
   */
  private async acquire(path: string, batch: AuditBatch, name: string): Promise<BootLog> {
    let shared = bootLogs.get(path);
    if (shared === undefined) {
      const log = (async () => {
        await closingLogs.get(path);
        const store = await AuditStore.open(path);
        try {
          return { store, ...this.resumeAt(store, batch, name), turn: Promise.resolve() };
        } catch (error) {
          await store.close();
          throw error;
        }
      })();
      const entry = { users: 0, log };
      shared = entry;
      bootLogs.set(path, entry);
      log.catch(() => {
        if (bootLogs.get(path) === entry) bootLogs.delete(path);
      });
    }
    shared.users += 1;
    try {
      const log = await shared.log;
      this.shared = shared;
      return log;
    } catch (error) {
      shared.users -= 1;
      throw error;
    }
  }

  /** Lets go of this boot's log; the last collector using it closes it. */
  private async release(): Promise<void> {
    this.releaseKey();
    this.releaseKey = () => {};
    const shared = this.shared;
    const log = this.log;
    this.shared = null;
    this.log = null;
    if (shared === null || log === null) return;
    shared.users -= 1;
    if (shared.users > 0) return;
    const path = log.store.path;
    if (bootLogs.get(path) === shared) bootLogs.delete(path);
    const closing = log.turn.then(() => log.store.close());
    closingLogs.set(path, closing);
    try {
      await closing;
    } finally {
      if (closingLogs.get(path) === closing) closingLogs.delete(path);
    }
  }

  /**
   * Stores what `batch` holds past the records already stored, once each of them is signed by the
   * boot's key and chained; resolves with a problem (null: none). `prechecked`: the batch as it was
   * checked before the boot's file was made or opened (checkNewBoot), taken from the record stored
   * from here on, its first record's chain compared again (checkedFrom): the file's last record, or
   * another collector's batch stored first, may be known only now.
   */
  private async store(
    log: BootLog,
    batch: AuditBatch,
    key: BootAuditKey,
    base: string,
    prechecked: CheckedBatch | null,
  ): Promise<string | null> {
    if (batch.from > log.next) {
      this.options.onError?.(`audit: expected record ${log.next}, the enclave sent from ${batch.from}`);
    }
    // A batch starting before `next` repeats records already stored: after a host restart (its
    // first request acknowledges nothing, so the enclave re-sends what it has not seen acknowledged)
    // or a lost acknowledgement. Stored twice they would make the log fail as duplicated.
    const skip = Math.min(Math.max(log.next - batch.from, 0), batch.lines.length);
    const from = batch.from + skip;
    const store = log.store;
    // All or nothing on content: one malformed line and no line of the batch is stored (it is
    // asked for again; the enclave keeps it).
    // And in order: each line's seq (read without verifying) is its place in the batch, so a broken
    // or hostile answer (records reordered, repeated, skipped) never makes the stored log fail
    // verification from there on; it is asked for again.
    // Each line parsed once: checkLogLine hands its value on, and `append` takes the checked line as it is.
    // And signed by the boot's key and chained (audit-record-check.ts): the answer is not
    // authenticated, and a line stored at a seq makes the enclave's own record of that seq skipped,
    // acknowledged and dropped. The previous record's hash is known from seq 0 (the genesis), from
    // the batch's line before, or from the last record in the file (`log.last`); else (the file
    // ends before the records a batch starts with, collected elsewhere) not compared.
    const prevHash = from === 0 ? key.genesis : log.last?.seq === from - 1 ? log.last.hash : null;
    const batchChecked =
      prechecked !== null
        ? checkedFrom(prechecked, from, prevHash, batch.boot, base)
        : await checkBatch(batch, from, prevHash, key, base);
    if (typeof batchChecked === "string") return batchChecked;
    const { lines: checked, chain } = batchChecked;
    // Queued synchronously in order; the store writes what piled up together, with one fsync. On
    // a write failure the store rejects the failed write and every line queued behind it, and
    // leaves none of their bytes in the file: the lines before the first rejection are stored,
    // the rest are asked for again (so none is stored twice).
    const results = await Promise.allSettled(checked.map((line) => store.append(line)));
    const stored = results.findIndex((r) => r.status === "rejected");
    // The file's last record: the last line stored (none of this batch: the one before it).
    const last = (count: number) => (count === 0 ? log.last : (chain[count - 1] ?? null));
    if (stored !== -1) {
      log.next = from + stored;
      log.last = last(stored);
      throw (results[stored] as PromiseRejectedResult).reason;
    }
    log.next = Math.max(log.next, batch.next);
    log.last = last(chain.length);
    return null;
  }

  /**
   * The record to collect next for a boot whose file was just opened: one past the last record the
   * file holds (a restarted host resumes where its previous process stopped), with that record's
   * seq and hash (the next record's prevHash: recordLineHash), else where the enclave's batch
   * starts (no record before it known). The seq is read from the last line without verifying it: it
   * only decides which records the enclave re-sends are dropped as already stored; `cloister audit
   * verify` checks.
   */
  private resumeAt(store: AuditStore, batch: AuditBatch, name: string): Pick<BootLog, "next" | "last"> {
    const from = batch.from;
    const last = store.lastLineAtOpen;
    if (store.emptyAtOpen) {
      if (from !== 0) {
        this.options.onError?.(
          `audit: enclave boot ${name} starts at record ${from}; earlier records were collected elsewhere`,
        );
      }
      return { next: from, last: null };
    }
    // A last line longer than any record is read as none (lastLineAtOpen): it holds no seq either.
    const seq = last === null ? null : recordSeq(last);
    if (last === null || seq === null) {
      this.options.onError?.(
        `audit: ${store.path}: the last line holds no record seq; storing the enclave's records from ${from} after it (some may be stored twice)`,
      );
      return { next: from, last: null };
    }
    if (from > seq + 1) {
      this.options.onError?.(
        `audit: ${store.path} ends at record ${seq}, the enclave sends from ${from}: records ${seq + 1}..${from - 1} were collected elsewhere`,
      );
      return { next: from, last: null };
    }
    // The enclave holds every record it has not seen acknowledged, and sends them from the first
    // (the host asks for the next page only with the previous one acknowledged): a record the file
    // holds and the enclave has not seen acknowledged is in this page, byte for byte. A last line
    // past the page (a seq the enclave never wrote) or unlike the enclave's is not this boot's
    // record (altered): resumed after it, the host would skip and acknowledge the records before
    // it, and the enclave drop them unstored. So nothing is stored until the file is set right.
    if (seq >= batch.next) {
      throw new AuditStoreError(
        "AUDIT_STORE_NOT_THIS_BOOT",
        `${store.path} ends at record ${seq} (read without verifying): expected a record the enclave holds or acknowledged, seq at most ${batch.next - 1}, found ${seq}; move the file aside if it is not this boot's (the next collection starts a new one)`,
      );
    }
    if (seq >= from && batch.lines[seq - from] !== last) {
      throw new AuditStoreError(
        "AUDIT_STORE_NOT_THIS_BOOT",
        `${store.path}: its last line (record ${seq}) differs from the enclave's record ${seq}: expected the line the enclave sent, found another (altered?); move the file aside (the next collection starts a new one)`,
      );
    }
    // Its hash chains the enclave's next record to it (a line not in the writer's shape: not compared).
    const hash = recordLineHash(last);
    return { next: seq + 1, last: hash === null ? null : { seq, hash } };
  }

  /**
   * Stops collecting, once nothing is left to collect: the timer is stopped, then collections run
   * (one at least) until one finds no new record and none is running or due, so the records of the
   * answers that ended before stop() are stored and acknowledged (the collection under way when
   * stop() is called may have asked before the last of them was written). Only then is the store
   * closed. Bounded: startHost calls this after its server has closed, when no answer of this host
   * is under way, so the enclave stops writing records; one that keeps writing (other clients) is
   * collected at most STOP_MAX_COLLECTIONS times. Every call resolves when the store is closed.
   */
  stop(): Promise<void> {
    this.stopDone ??= this.drain();
    return this.stopDone;
  }

  private async drain(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    clearTimeout(this.soon);
    this.soon = undefined;
    this.again = true; // the last collection, after the one under way (if any)
    let collections = 0;
    while (this.running !== null || this.again) {
      if (this.running !== null) {
        await this.running;
        continue;
      }
      if (collections === STOP_MAX_COLLECTIONS) {
        this.options.onError?.(
          `audit: stopped collecting from ${describeUrlText(this.options.enclaveUrl)} after ${collections} collections at shutdown, the enclave still writing records; the ones not collected stay in the enclave`,
        );
        break;
      }
      this.again = false;
      collections += 1;
      await this.collect();
    }
    this.stopped = true;
    await this.release();
  }
}
