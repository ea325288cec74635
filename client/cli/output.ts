/**
 * Shared helpers for command output: one clear line per error, JSON when asked, option parsing
 * that names the option, the expected and the found value.
 */
import { randomBytes } from "node:crypto";
import { constants as fsConstants, type Stats } from "node:fs";
import { copyFile, type FileHandle, link, lstat, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { InvalidArgumentError } from "commander";
import { describeFileKind, fileErrorCause, fileMessage, shellWord } from "../../attestation/bounded-read.ts";
import { stringifyJsonVisibly } from "../../attestation/untrusted-text.ts";
import { shownHost } from "../loopback.ts";
import { visibleOnOneLine } from "./terminal-text.ts";

/** `n` and the noun, singular for one and plural (an s added) otherwise: "1 record", "0 records". */
export function counted(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/** Bad input on the command line: exit code 2 and one line naming what was wrong. */
export class UsageError extends Error {
  readonly code = "USAGE";
}

/**
 * One line for any error: `cloister: CODE: message` (USAGE for bad input). Never includes a stack or
 * a secret. A message may quote untrusted text (an enclave's error detail, a name from a file): its
 * control and format characters, line breaks included, are written as \u escapes
 * (visibleOnOneLine), so the line stays one and a terminal or a log reader acts on none of them.
 */
export function formatCliError(error: unknown): string {
  return `cloister: ${errorText(error)}`;
}

/**
 * formatCliError's line without its `cloister: `: `CODE: message`, on one line (visibleOnOneLine),
 * for a line that names its command already (`cloister model run: closing the engine failed too: …`).
 */
export function errorText(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const prefix = typeof code === "string" ? `${code}: ` : "";
    return visibleOnOneLine(`${prefix}${error.message}`);
  }
  return visibleOnOneLine(String(error));
}

/**
 * A command's `--json` output, indented: untrusted text in it (an answer, a name from a file) has
 * its invisible characters written as \u escapes (stringifyJsonVisibly), not left for a terminal
 * to act on; a reader parses the same value.
 */
export function printJson(value: object): void {
  process.stdout.write(`${stringifyJsonVisibly(value, 2)}\n`);
}

/** Commander option parser for an integer within [min, max]. */
export function intOption(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`${name} expects an integer, found "${value}"`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} expects ${min}..${max}, found ${n}`);
    return n;
  };
}

/** Commander option parser for a finite number within [min, max]. */
export function numberOption(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n)) {
      throw new InvalidArgumentError(`${name} expects a number, found "${value}"`);
    }
    if (n < min || n > max) throw new InvalidArgumentError(`${name} expects ${min}..${max}, found ${n}`);
    return n;
  };
}

/**
 * Commander option parser of a repeatable option (`--operator-key` of cloister enclave and cloister
 * policy init, `--key` of manifest verify, `--enclave-url` and `--cors-origin` of cloister host): each
 * value given, in the order given.
 */
export function repeatableOption(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Commander option parser for a fixed set of choices. */
export function choiceOption<T extends string>(name: string, choices: readonly T[]): (value: string) => T {
  return (value: string) => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`${name} expects one of ${choices.join(", ")}, found "${value}"`);
    }
    return value as T;
  };
}

/** What a usage error about the command line itself ends with: where its options are told. */
const HELP_HINT = " (run with --help for usage)";

/**
 * Commander's error text as one line: `cloister: USAGE: message (run with --help for usage)`; its
 * suggestion for a mistyped name, `\n(Did you mean --url?)`, in the line's own words:
 * `unknown option '--ulr': did you mean --url?`. Commander quotes the command line (an unknown
 * name, a value it refused), which may be pasted from anywhere: what is left of its controls and
 * format characters once commander's own line breaks are joined is written as \u escapes
 * (visibleOnOneLine), as formatCliError writes every other error line.
 */
export function usageLine(text: string): string {
  const message = text
    .trim()
    .replace(/^error: /, "")
    .replace(/\s*\(Did you mean (.+)\)$/, ": did you mean $1")
    .replace(/\s*\n\s*/g, " ");
  return `${visibleOnOneLine(`cloister: USAGE: ${message}${HELP_HINT}`)}\n`;
}

/**
 * Bad input of the command line itself that commander cannot tell: options left out of which one
 * is needed, given together where one excludes the other, or a value the command checks itself
 * after commander. It reads as commander's own such errors do (usageLine: a required option not
 * specified), `--help` named as where to look.
 */
export function optionsUsageError(message: string, options?: ErrorOptions): UsageError {
  return new UsageError(`${message}${HELP_HINT}`, options);
}

/**
 * Stops as on SIGTERM (each command's own clean shutdown) when the parent process goes away, for
 * the two parents that cannot be relied on to stop this process themselves: npm, when started
 * through `npx` / `npm exec` (npm does not pass signals on, so `kill` of the npx pid, what
 * `npx cloister up &` then `kill $!` does, would leave this process and its children running), and
 * the supervisor (`cloister up`) of a CLOISTER_SUPERVISED child, should it be killed outright.
 */
export function stopWhenParentExits(
  options: {
    readonly env?: NodeJS.ProcessEnv;
    readonly parentPid?: () => number;
    readonly stop?: () => void;
    readonly intervalMs?: number;
  } = {},
): (() => void) | null {
  const env = options.env ?? process.env;
  if (env.npm_command !== "exec" && env.CLOISTER_SUPERVISED !== "1") return null;
  const parentPid = options.parentPid ?? (() => process.ppid);
  const stop = options.stop ?? (() => process.kill(process.pid, "SIGTERM"));
  // A supervised child watches the supervisor bin/cloister.js found its parent at start, not the
  // parent it has once this runs, a second or more later: `up` killed meanwhile, it had been
  // re-parented already, and it recorded that new parent, never stopped, and ignored Ctrl-C.
  // Started through npx (not supervised: no supervisor's pid), it watches the parent it has, npm.
  const parent = supervisorPid(env) ?? parentPid();
  const timer = setInterval(() => {
    if (parentPid() === parent) return;
    clearInterval(timer);
    stop();
  }, options.intervalMs ?? 500);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * The pid of the supervisor (`cloister up`) of a CLOISTER_SUPERVISED child: CLOISTER_SUPERVISOR_PID,
 * set by bin/cloister.js once it found CLOISTER_SUPERVISED naming its parent; null when absent.
 */
function supervisorPid(env: NodeJS.ProcessEnv): number | null {
  if (env.CLOISTER_SUPERVISED !== "1") return null;
  const pid = Number(env.CLOISTER_SUPERVISOR_PID);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
}

/** The exit status of a command killed by SIGPIPE (128 + 13), what `cmd | head -1` gives a C program. */
export const CLOSED_OUTPUT_EXIT_CODE = 141;

/** What stops a command early: Ctrl-C, SIGTERM, or its output closed by its reader (onOutputClosed). */
export type StopReason = "SIGINT" | "SIGTERM" | "output closed";

/** The exit status of a command stopped early: 128 + the signal's number, as if killed by it. */
export const STOPPED_EXIT_CODE: Readonly<Record<StopReason, number>> = {
  SIGINT: 130,
  SIGTERM: 143,
  "output closed": CLOSED_OUTPUT_EXIT_CODE,
};

/** The shutdown the running command registered (onOutputClosed), or null: exit at once. */
let outputClosedShutdown: (() => void) | null = null;

/**
 * Registers how the running command stops cleanly when its output is closed by its reader
 * (stopWhenOutputCloses): a server's shutdown (closeOnSignal: enclave, host, kbs serve, proxy;
 * stopDuringBoot: the enclave's boot; stopsAskedFor: up's and demo's stopping of what they started,
 * web's closing of its page server), `model run`'s closing of its engine, which removes its private
 * copy of the model.
 * Registered explicitly, never guessed from process.listenerCount("SIGTERM"):
 * libraries add SIGTERM listeners too (node-llama-cpp's signal-exit, which re-raises the signal).
 * Returns a function that removes the registration again (a later one replaces it).
 */
export function onOutputClosed(shutdown: () => void): () => void {
  outputClosedShutdown = shutdown;
  return () => {
    if (outputClosedShutdown === shutdown) outputClosedShutdown = null;
  };
}

/**
 * Standard output or error closed by its reader (`cloister attest | head -1`): the command stops
 * quietly, as one killed by SIGPIPE does, instead of dying of an unhandled EPIPE with a stack trace.
 * A command that registered a shutdown of its own (onOutputClosed) is stopped through it, so that
 * it stops what it started; any other exits at once with CLOSED_OUTPUT_EXIT_CODE, not 0: what it
 * had still to say, a failure included, went unread. Later write errors (the shutdown's own lines
 * to a closed stream) are ignored.
 */
export function stopWhenOutputCloses(
  streams: readonly NodeJS.WriteStream[] = [process.stdout, process.stderr],
  stop: () => void = () => {
    if (outputClosedShutdown !== null) outputClosedShutdown();
    else process.exit(CLOSED_OUTPUT_EXIT_CODE);
  },
): void {
  let stopping = false;
  const onError = (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    if (stopping) return;
    stopping = true;
    stop();
  };
  for (const stream of streams) stream.on("error", onError);
}

/** How a command names the outcomes of writing one output file (its own error type and wording). */
export interface OutputFileErrors {
  /** The file exists and may not be replaced. */
  exists(cause?: unknown): Error;
  /** The file's directory does not exist (it is never created: a mistyped path would go unnoticed). */
  noDirectory(directory: string, cause?: unknown): Error;
  /**
   * Checking whether the file exists (its `lstat`) or writing it failed with `cause` (its errno code
   * for fileErrorCause): a check that fails says nothing of the file's directory being writable
   * (EACCES there: a directory of the path may not be looked into). `left`, when given: the write
   * had created the file, and removing it failed with that error, so the file is still at its name
   * (writeFileAtomically; leftFileNote says so).
   */
  failed(cause: unknown, operation: "check" | "write", left?: LeftFile): Error;
  /**
   * A FIFO, socket or device is at the file's name (`found`: describeFileKind): never replaced, with
   * --force or without (refuseExistingFile).
   */
  notAFile(found: string): Error;
}

/** A file a failed write created and could not remove again: `removal`, the error that removal failed with. */
export interface LeftFile {
  readonly removal: unknown;
}

/**
 * The words a failed write's reason ends with when the file it created is still at its name
 * (`left`), else none: the next run would be refused on it ("already exists"), and it is not known
 * to be on disk.
 */
export function leftFileNote(left: LeftFile | undefined): string {
  if (left === undefined) return "";
  const why = fileErrorCause(left.removal, "write");
  return `; the new file was left there, not known to be on disk, and could not be removed (${why}): remove it`;
}

/**
 * Bad input (a UsageError) for an output file, given as `option`, whose directory does not exist;
 * `cause`, the file system's error that found it, when there is one; `note`, when given, ends the
 * message.
 */
export function noDirectoryError(
  option: string,
  file: string,
  directory: string,
  cause?: unknown,
  note = "",
): UsageError {
  const reason = `its directory does not exist (ENOENT); create it first (mkdir -p ${shellWord(directory)})${note}`;
  return new UsageError(fileMessage(file, option, reason), { cause });
}

/** The directory of `file` when it does not exist, else null. */
export async function missingDirectory(file: string): Promise<string | null> {
  const directory = dirname(file);
  return lstat(directory).then(
    () => null,
    (cause: unknown) => ((cause as NodeJS.ErrnoException).code === "ENOENT" ? directory : null),
  );
}

/**
 * Refuses a file that exists unless `replace`, and one whose directory does not exist: before any
 * work, so none is done for nothing. A directory, FIFO, socket or device at its name is refused even
 * with `replace`: the rename that replaces would replace a FIFO or device (as root, `--force --out
 * /dev/null` would replace /dev/null) and fail on a directory (EISDIR) only after the work, and after
 * any file written before it (manifest keygen's private key without its public one). A symbolic link
 * is replaced as a file is (the rename replaces the link, never what it leads to).
 */
export async function refuseExistingFile(file: string, replace: boolean, errors: OutputFileErrors): Promise<void> {
  let info: Stats;
  try {
    info = await lstat(file);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== "ENOENT") throw errors.failed(cause, "check");
    const directory = await missingDirectory(file);
    if (directory !== null) throw errors.noDirectory(directory, cause);
    return;
  }
  if (!info.isFile() && !info.isSymbolicLink()) throw errors.notAFile(describeFileKind(info));
  if (!replace) throw errors.exists();
}

/**
 * Writes via a temporary file in the same directory, created exclusively with `mode` and never
 * through a link (O_EXCL, O_NOFOLLOW: whoever can write to the directory cannot make it write
 * elsewhere), fsync'ed, then linked into place (which never replaces a file) or, with `replace`,
 * renamed over the old one (which replaces the name, never what a link there leads to), and the
 * directory fsync'ed: the content never sits in a file with wider permissions, the file appears
 * whole or not at all, and survives a power loss once this resolves. A failure leaves no temporary
 * file; without `replace` it leaves no new file either: one already linked or copied into place
 * when a later step fails (the copy's fsync, the directory's) is removed again, so that a retry
 * does not find it there ("exists"); only a disk that fails that removal too keeps it, and the error
 * says so (`errors.failed`'s `left`: leftFileNote). That removal is safe: the name was created by
 * this call, exclusively, moments before (a file that was there before fails the link with EEXIST
 * and is never touched), and removing a name never follows it; whoever could put something else
 * there meanwhile can write to the directory, and so remove it too. With `replace`, the rename is
 * the last step but the directory's fsync: should that fail, the new file is in place (the old one
 * gone), not known to be durable, and a retry replaces it again. (`cloister policy init --force`,
 * the manifest commands' outputs, `kbs keygen`'s model key, the audit collector's `.key` hints,
 * `cloister up`'s files: deploy.ts writeWhole.)
 */
export async function writeFileAtomically(
  file: string,
  content: string | Uint8Array,
  options: { readonly mode: number; readonly replace: boolean },
  errors: Pick<OutputFileErrors, "exists" | "noDirectory" | "failed">,
): Promise<void> {
  const temporary = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  /** Whether `file` is a new name this call created (linked or copied into place; never with `replace`). */
  let created = false;
  try {
    const handle = await open(
      temporary,
      fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW,
      options.mode,
    );
    await closingAfter(handle, async () => {
      await handle.chmod(options.mode); // whatever the umask
      await handle.writeFile(content);
      await handle.sync();
    });
    if (options.replace) await rename(temporary, file);
    else {
      const copied = (await linkOrCopy(temporary, file)) === "copied";
      created = true;
      // A copy is a new file: the temporary's fsync does not cover its bytes.
      if (copied) await syncPath(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
      // Before the directory's fsync: a power loss then cannot leave the temporary name as a second name.
      await rm(temporary, { force: true });
    }
    await syncDirectory(dirname(file));
  } catch (cause) {
    // Only the name this call created: the error is then the whole outcome (nothing written),
    // unless it cannot be removed: then the error says that it is there.
    let left: LeftFile | undefined;
    if (created) {
      await rm(file, { force: true }).catch((removal: unknown) => {
        left = { removal };
      });
    }
    const code = (cause as NodeJS.ErrnoException).code ?? "error";
    if (code === "EEXIST" && !options.replace) throw errors.exists(cause);
    const directory = code === "ENOENT" ? await missingDirectory(file) : null;
    if (directory !== null) throw errors.noDirectory(directory, cause);
    throw errors.failed(cause, "write", left);
  } finally {
    // A leftover temporary file must not hide the outcome (written, or the error above).
    await rm(temporary, { force: true }).catch(() => {});
  }
}

/**
 * Runs `work` on the file (or directory held: prepareDeployment) `handle` is open on, then closes it.
 * A close that fails after `work` failed must not hide `work`'s error (the first one, which the
 * caller words and keeps as the cause); one that fails after `work` succeeded is thrown: what was
 * written is not known to be on disk.
 */
export async function closingAfter<T>(handle: Pick<FileHandle, "close">, work: () => Promise<T>): Promise<T> {
  let result: T;
  try {
    result = await work();
  } catch (error) {
    await handle.close().catch(() => {});
    throw error;
  }
  await handle.close();
  return result;
}

/**
 * Links `from` to `to`, which never replaces an existing `to`; where the file system has no hard
 * links (FAT, exFAT, some network mounts), copies it with the same guarantee (COPYFILE_EXCL): a copy
 * the caller fsyncs before it syncs the directory.
 */
async function linkOrCopy(from: string, to: string): Promise<"linked" | "copied"> {
  try {
    await link(from, to);
    return "linked";
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "ENOSYS") throw error;
    await copyFile(from, to, fsConstants.COPYFILE_EXCL);
    return "copied";
  }
}

/**
 * What to do with an output file that exists: `replace` it (--force given), `refuse` (the command
 * has --force, not given), or `never` replace it (the command has no --force).
 */
export type ExistingOutput = "replace" | "refuse" | "never";

/**
 * What a command with --force does with the existing file of its output `option` (`file`, undefined
 * when not given): "replace" with --force, else "refuse". --force only says what to do with that
 * file: given without the option it would do nothing, silently, so it is a UsageError (exit 2).
 */
export function forcedOutput(force: boolean | undefined, file: string | undefined, option: string): ExistingOutput {
  if (force === true && file === undefined) {
    throw optionsUsageError(`--force: replaces the file of ${option}, which was not given`);
  }
  return force === true ? "replace" : "refuse";
}

/**
 * The outcomes of writing `file` (given as `option`), as UsageErrors whose cause is the file
 * system's error (when there is one). The message names its code and what to do (fileErrorCause),
 * never its own text, which names the temporary file the write went through.
 */
export function outputFileErrors(file: string, option: string, existing: ExistingOutput): OutputFileErrors {
  const hint = existing === "refuse" ? "pass --force to replace it" : "expected a new file, it is never overwritten";
  return {
    exists: (cause) => new UsageError(fileMessage(file, option, `already exists (EEXIST); ${hint}`), { cause }),
    noDirectory: (directory, cause) => noDirectoryError(option, file, directory, cause),
    failed: (cause, operation, left) =>
      new UsageError(
        fileMessage(file, option, `cannot create (${fileErrorCause(cause, operation)})${leftFileNote(left)}`),
        { cause },
      ),
    notAFile: (found) => new UsageError(fileMessage(file, option, `expected a regular file, found ${found}`)),
  };
}

/**
 * Refuses an output file that exists unless `existing` is "replace", or whose directory does not
 * exist, before any work (or round trip to an enclave) that would end in that refusal.
 */
export function refuseExistingOutput(file: string, option: string, existing: ExistingOutput): Promise<void> {
  return refuseExistingFile(file, existing === "replace", outputFileErrors(file, option, existing));
}

/**
 * Writes `content` whole or not at all (writeFileAtomically): linked into place, or renamed over for
 * "replace". `at`: the path to write it by when not `file`, which messages name (a directory held
 * open's /proc/self/fd/N/NAME).
 */
export function writeOutputFile(
  file: string,
  content: string | Uint8Array,
  option: string,
  existing: ExistingOutput,
  at = file,
): Promise<void> {
  return writeFileAtomically(
    at,
    content,
    { mode: 0o644, replace: existing === "replace" },
    outputFileErrors(file, option, existing),
  );
}

/** The errno codes of a --listen address that does not resolve (getaddrinfo's). */
const UNRESOLVED_NAME = new Set(["ENOTFOUND", "EAI_AGAIN", "EAI_FAIL", "EAI_NONAME", "EAI_NODATA"]);

/**
 * Why `port` on `address` cannot be listened on, for bad input of `option`: taken (EADDRINUSE) or
 * not permitted (EACCES); null for any other code (not the port's fault).
 */
export function portRefusal(code: string, address: string, port: number, option: string): string | null {
  if (code === "EADDRINUSE") {
    return `cannot listen on ${address} (EADDRINUSE): another process holds that port; stop it or choose another ${option}`;
  }
  if (code === "EACCES") {
    return `cannot listen on ${address} (EACCES)${port < 1024 ? ": a port below 1024 needs privileges; choose another" : ""}`;
  }
  return null;
}

/**
 * Bad input (a UsageError naming the option at fault) for a server that cannot listen where its
 * options say (enclave/http.ts ListenError, told by its name: importing http.ts would load the
 * server code into every command): the port (--port) when it is taken or not
 * permitted; the address (--listen) when it does not resolve or is not this machine's, unless
 * `hasListenOption` is false (a server that listens on loopback only, which has no such option); the
 * ListenError its cause. Any other error, or failure to listen (EMFILE…), is returned as it is.
 */
export function listenUsageError(
  error: unknown,
  { hasListenOption = true }: { hasListenOption?: boolean } = {},
): unknown {
  if (!(error instanceof Error) || error.name !== "ListenError") return error;
  const { code, hostname, address, port } = error as Error & {
    code: string;
    hostname: string;
    address: string;
    port: number;
  };
  const refusal = portRefusal(code, address, port, "--port");
  if (refusal !== null) return optionsUsageError(`--port ${port}: ${refusal}`, { cause: error });
  if (!hasListenOption) return error;
  if (UNRESOLVED_NAME.has(code)) {
    return optionsUsageError(
      `--listen ${shownHost(hostname)}: cannot listen on it (${code}): expected an IP address of this machine, or a name that resolves to one`,
      { cause: error },
    );
  }
  if (code === "EADDRNOTAVAIL") {
    return optionsUsageError(
      `--listen ${shownHost(hostname)}: cannot listen on it (EADDRNOTAVAIL): not an address of this machine`,
      { cause: error },
    );
  }
  if (code === "EINVAL" || code === "EAFNOSUPPORT") {
    return optionsUsageError(`--listen ${shownHost(hostname)}: cannot listen on it (${code})`, { cause: error });
  }
  return error;
}

/** What loopbackListenError reads of a ListenError (enclave/http.ts). */
interface ListenFailure {
  readonly hostname: string;
  readonly code: string;
  readonly port: number;
}

/**
 * Bad input (a UsageError) for a `--port` the proxy or page server cannot listen on (listenLoopback):
 * taken on 127.0.0.1, or on [::1], where an app resolving "localhost" would reach the other process.
 */
export function loopbackListenError(error: unknown): unknown {
  const failure = error instanceof Error && error.name === "ListenError" ? (error as Error & ListenFailure) : null;
  // Only a port taken there is another process's: any other code is told as listenUsageError tells it.
  if (failure !== null && failure.hostname === "::1" && failure.code === "EADDRINUSE") {
    const { port } = failure;
    return optionsUsageError(
      `--port ${port}: cannot listen on [::1] (EADDRINUSE): another process holds that port on the IPv6 loopback, where an app resolving localhost would reach it; stop it or choose another --port`,
      { cause: error },
    );
  }
  return listenUsageError(error, { hasListenOption: false });
}

/**
 * fsyncs the directory `dir`, so that what was just created in it (a file, a directory) is still
 * there after a power loss: fsync(2) on the new file or directory itself does not promise that.
 * Only what was created needs it, in the directory it was created in: nothing above it changed.
 */
export function syncDirectory(dir: string): Promise<void> {
  return syncPath(dir, "r");
}

/** fsyncs what `path` names, opened with `flags`. */
async function syncPath(path: string, flags: string | number): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close().catch(() => undefined);
  }
}
