/**
 * Model staging: before the engine hashes and loads a model, the enclave copies it into private
 * memory (a fresh 0700 directory on tmpfs, /dev/shm, which lives in the CVM's encrypted memory),
 * and the engine then hashes, checks and loads *that copy*. llama.cpp reads a model by path, so
 * without this a host that can write the disk could swap bytes between the digest check and the
 * load (or under later page faults of a memory-mapped file). The copy is removed on shutdown, on
 * failed boots, on a stop during boot (its signal aborts the copy or the decryption), and, as a
 * last resort, synchronously when the process exits (copyDirectory). A
 * process that dies without any of these (killed by the OOM killer, SIGKILL after a
 * stop timeout) leaves it behind, in memory tmpfs cannot swap, until the machine reboots; with
 * Restart=on-failure each such death would add one. So each staging first removes the copies left
 * by processes that are gone (removeStaleCopies). Without /dev/shm (not Linux) the OS temp
 * directory is used, and SECURITY.md's advice (keep the model on an integrity-protected volume)
 * applies.
 */
import { createHash } from "node:crypto";
import { createWriteStream, rmSync } from "node:fs";
import { lstat, mkdtemp, readdir, rm, stat, statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { fileMessage } from "../attestation/bounded-read.ts";
import { closeModelInput, type ModelInputErrors, openModelInput } from "../models/hash.ts";
import {
  OWNER_TAG,
  ownerFromTag,
  ownerGone,
  ownerTag,
  type ProcessOwner,
  thisProcessOwner,
} from "../models/process-owner.ts";
import {
  checkSealedModelHeader,
  type ModelKey,
  readSealedHeader,
  SealedModelError,
  type SealedModelExpectation,
  unsealModelFile,
} from "../models/sealed.ts";
import { EngineError, ModelNotAFileError, modelNotFound } from "./engine/errors.ts";
import { throwIfStoppedBy } from "./stop.ts";

export interface StagedModel {
  readonly path: string;
  /**
   * SHA-256 (hex) of the bytes written into the private copy, computed as they were written: the
   * engine takes it instead of reading the copy a second time (no one outside the CVM can write
   * private memory, and the engine still checks the file did not change while it loaded).
   */
  readonly sha256: string;
  remove(): Promise<void>;
}

/** Linux file-system magic numbers (statfs f_type) of memory-backed file systems: tmpfs, ramfs. */
const MEMORY_FILE_SYSTEMS = new Set([0x01021994, 0x858458f6]);

/**
 * When `path` is a directory on a memory-backed file system (tmpfs or ramfs: in a CVM, memory the
 * host cannot read), the bytes an unprivileged writer may still write there (f_bavail × f_bsize);
 * else null. A /dev/shm that is a directory on a disk (a bind mount) is not. One statfs for both.
 */
async function privateMemoryFreeBytes(path: string): Promise<number | null> {
  const directory = await stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!directory) return null;
  return statfs(path).then(
    (s) => (MEMORY_FILE_SYSTEMS.has(s.type) ? s.bavail * s.bsize : null),
    () => null,
  );
}

/** Whether `path` is a directory on a memory-backed file system (privateMemoryFreeBytes). */
export async function isPrivateMemoryDirectory(path: string): Promise<boolean> {
  return (await privateMemoryFreeBytes(path)) !== null;
}

async function privateRoot(): Promise<string> {
  return (await isPrivateMemoryDirectory("/dev/shm")) ? "/dev/shm" : tmpdir();
}

/** Where copies go, and how much room there is: test seams (the defaults are /dev/shm or the OS temp directory, and statfs). */
export interface StagingOptions {
  /** The directory copies are made under; `neededBytes` is the size of the copy to make. */
  readonly privateRoot?: (neededBytes: number) => Promise<string>;
  /** Bytes an unprivileged writer may still write under `directory` (statfs: f_bavail × f_bsize). */
  readonly freeBytes?: (directory: string) => Promise<number>;
}

/** statfs's free blocks for unprivileged writers × the block size; Infinity when statfs fails (the copy's own error then says why). */
async function freeBytesOf(directory: string): Promise<number> {
  return statfs(directory).then(
    (s) => s.bavail * s.bsize,
    () => Number.POSITIVE_INFINITY,
  );
}

/**
 * Refuses (MODEL_NO_ROOM) a copy of `neededBytes` that `root` has no room for, before anything is
 * copied: containers get a 64 MiB /dev/shm by default (Docker, Kubernetes), far below any real
 * model, and the copy would otherwise fail part way with ENOSPC, after the evidence was made and a
 * sealed model's key was released.
 */
async function checkRoom(
  source: string,
  root: string,
  neededBytes: number,
  freeBytes: (directory: string) => Promise<number>,
): Promise<void> {
  const free = await freeBytes(root);
  if (free >= neededBytes) return;
  const fix =
    root === "/dev/shm"
      ? "give it a /dev/shm at least that large (docker run --shm-size=…; in Kubernetes an emptyDir volume with medium: Memory and a sizeLimit, mounted at /dev/shm; see docs/deploy.md)"
      : "free space there, or set TMPDIR to a directory with room";
  throw new EngineError(
    "MODEL_NO_ROOM",
    fileMessage(
      source,
      "model file",
      `its private copy needs ${neededBytes} bytes in ${root}, found ${free} bytes free; ${fix}`,
    ),
  );
}

function sizeMismatch(source: string, expectedBytes: number, found: number): EngineError {
  return new EngineError(
    "MODEL_SIZE_MISMATCH",
    fileMessage(
      source,
      "model file",
      `expected ${expectedBytes} bytes (the manifest's model.sizeBytes), found ${found}; not loaded`,
    ),
  );
}

/**
 * The boot's errors for openModelInput's open of the --model file (checkModelFile, stageModel), in
 * place of models/'s MODEL_IO: MODEL_NOT_FOUND (modelNotFound, with the errno; ModelNotAFileError,
 * naming what the path is). The steps are openModelInput's: a path that is not a regular file is
 * refused by its stat, unopened, and what the open found by the fstat of the handle then read.
 */
const MODEL_SOURCE_ERRORS: ModelInputErrors = {
  cannot: (path, _action, cause) => modelNotFound(path, cause),
  notRegular: (path, info) => new ModelNotAFileError(path, info),
};

/**
 * The boot's first look at the --model file, before anything slow (evidence, the key broker, the
 * copy): it opens for reading and is a regular file of the manifest's size (MODEL_NOT_FOUND,
 * MODEL_SIZE_MISMATCH); sealed (`expected.keyId` set), its header parses and is the manifest's
 * (SealedModelError: SEALED_MODEL_MALFORMED, SEALED_MODEL_KEY_MISMATCH), and, unless
 * `expected.allowDisk` (the simulator), there is private memory to decrypt it into
 * (MODEL_NO_PRIVATE_MEMORY, which stageSealedModel would raise only after the key broker released
 * the key). Only a refusal counts: staging reads and checks every byte again, as the file may change
 * meanwhile.
 */
export async function checkModelFile(
  source: string,
  expected: { readonly sizeBytes: number; readonly keyId: string | null; readonly allowDisk?: boolean },
  options: StagingOptions = {},
): Promise<void> {
  const { handle, size } = await openModelInput(source, MODEL_SOURCE_ERRORS);
  try {
    if (size !== expected.sizeBytes) throw sizeMismatch(source, expected.sizeBytes, size);
    // The copy's size: the file's, or a sealed file's plaintext (its header, checked to be the
    // manifest's file; a read that fails is MODEL_IO naming the file, as unsealing's reads are);
    // the private root must have room for it (MODEL_NO_ROOM).
    let copyBytes = size;
    if (expected.keyId !== null) {
      const header = await readSealedHeader(handle, size, source);
      checkSealedModelHeader(header, { keyId: expected.keyId, sizeBytes: expected.sizeBytes });
      copyBytes = header.plaintextSize;
    }
    const root = await (options.privateRoot ?? privateRoot)(copyBytes);
    if (expected.keyId !== null && root !== "/dev/shm" && expected.allowDisk !== true) throw noPrivateMemory();
    await checkRoom(source, root, copyBytes, options.freeBytes ?? freeBytesOf);
  } finally {
    // A failing close of this read-only handle must not replace the refusal on its way.
    await closeModelInput(handle);
  }
}

/**
 * The process a copy belongs to, which its directory's name records (cloister-model-PID-START-NS-
 * and mkdtemp's six random characters, written in one step: no copy exists without its owner): its
 * pid, start time and pid namespace (models/process-owner.ts; several containers may share a
 * /dev/shm), START and NS "x" where there is no /proc.
 */
export type CopyOwner = ProcessOwner;

const COPY_NAME = new RegExp(`^cloister-model-${OWNER_TAG}-[A-Za-z0-9]{6}$`);

/** The owner a copy's directory name records, or null for another name (an older version's). */
export function copyOwnerOf(directoryName: string): CopyOwner | null {
  const m = COPY_NAME.exec(directoryName);
  return m === null ? null : ownerFromTag(m[1] as string, m[2] as string, m[3] as string);
}

/**
 * Removes the model copies under `root` that processes which have ended left there: directories
 * owned by this user whose name records a process of this pid namespace that no longer runs (or
 * whose pid another process now has). A copy whose owner still runs — another enclave on this
 * machine —, of another user or pid namespace, or named otherwise (an older version's) is left
 * alone. Never throws: a copy it cannot look at or remove stays.
 */
export async function removeStaleCopies(root: string): Promise<void> {
  const uid = process.getuid?.();
  const self = await thisProcessOwner();
  const names = await readdir(root).catch(() => [] as string[]);
  await Promise.all(
    names.map(async (name) => {
      const owner = copyOwnerOf(name);
      if (owner === null || !(await ownerGone(owner, self))) return;
      const dir = join(root, name);
      const info = await lstat(dir).catch(() => null);
      if (info === null || !info.isDirectory() || (uid !== undefined && info.uid !== uid)) return;
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    }),
  );
}

/**
 * The copy directories this process made and has not removed, each with the error code of its
 * failed removal (null: no removal tried yet, or an error without a code). What `cloister enclave`
 * says about its copy when stopped during boot comes from here, not from the error the boot ended
 * with: a stop's reason replaces a removal's error on the way (stageSealedModel's caller).
 */
const copiesLeft = new Map<string, string | null>();

/**
 * The model copies that process `owner`, now ended, made and are still there, by their names
 * (copyOwnerOf), in the directories copies are made in (/dev/shm, the temp directory, or `roots`):
 * for a supervisor (`cloister up`) whose child died without saying what it left (killed by a signal
 * it did not handle), `owner` read when it spawned the child (processOwner). A copy is the dead
 * process's only when its name records exactly that owner (pid, start time, pid namespace) and
 * that owner has ended (ownerGone): the pid alone could name a live enclave's copy, its pid used
 * again since, an older dead process's that had the pid before the child, or one of another pid
 * namespace (another container sharing /dev/shm), to be removed by hand.
 */
export async function modelCopiesOfProcess(
  owner: ProcessOwner,
  roots: readonly string[] = ["/dev/shm", tmpdir()],
): Promise<string[]> {
  if (!(await ownerGone(owner, await thisProcessOwner()))) return [];
  const tag = ownerTag(owner);
  const found: string[] = [];
  for (const root of new Set(roots)) {
    const names = await readdir(root).catch(() => [] as string[]);
    for (const name of names) {
      const named = copyOwnerOf(name);
      if (named !== null && ownerTag(named) === tag) found.push(join(root, name));
    }
  }
  return found;
}

/** The synchronous removal of each copy left (copyDirectory's exit hooks). */
const removeNow = new Set<() => void>();

/** A model copy this process made that is still there, and the error code of its failed removal (copiesLeft). */
export interface ModelCopyLeft {
  readonly dir: string;
  readonly removalError: string | null;
}

/** The model copies this process made that are still there (not removed yet, or a removal failed). */
export function modelCopiesLeft(): readonly ModelCopyLeft[] {
  return [...copiesLeft].map(([dir, removalError]) => ({ dir, removalError }));
}

/**
 * What of a failed close (Enclave.close's or InferenceEngine.close's error) the copies-left line
 * (copiesLeftText) does not say, for the command (`cloister enclave`, `cloister model run`) to fail
 * with: null when it was the removal of a copy that line names; the engine's error when both failed
 * (closeThenRemoveCopy's AggregateError: the engine's, then the removal's); else the error.
 */
function failureBesidesCopies(error: unknown, left: readonly ModelCopyLeft[]): unknown {
  if (left.length === 0) return error;
  if (error instanceof AggregateError) return error.errors[0] ?? null;
  return null;
}

/**
 * How `settling` (`what`, e.g. "the server's close") settled: null when it fulfilled, `{ error }` when it
 * rejected: a close awaited whatever it does. A rejection without a reason (undefined, null) failed all
 * the same: an Error saying so, never a null a caller would take for "nothing to say".
 */
export function settledFailure(settling: Promise<unknown>, what: string): Promise<{ readonly error: unknown } | null> {
  return settling.then(
    () => null,
    (error: unknown) => ({
      error: error ?? new Error(`${what} failed without a reason (it rejected with ${String(error)})`),
    }),
  );
}

/**
 * failureBesidesCopies of a close the command awaited with settledFailure (null on success or when
 * there was nothing to close): null unless the close failed.
 */
export function closeFailureBesidesCopies(
  closing: { readonly error: unknown } | null,
  left: readonly ModelCopyLeft[],
): unknown {
  return closing === null ? null : failureBesidesCopies(closing.error, left);
}

/**
 * What a stop or a failure left of the private model copy, as `cloister enclave` and `cloister
 * model run` say it (modelCopiesLeft): checked, not assumed, since removing the copy can fail (EBUSY, EIO). The path names no secret (the
 * process's id and start time, a random suffix); the weights in it are why it must be removed.
 */
export function copiesLeftText(left: readonly ModelCopyLeft[]): string {
  if (left.length === 0) return "no copy of the model is left";
  return `could not remove the ${copiesToRemoveText(left.map((c) => `${c.dir}${c.removalError === null ? "" : ` (${c.removalError})`}`))}`;
}

/** "model copy X: remove it by hand" (or copies, them) for the copies `named` (at least one): copiesLeftText, `cloister up`'s stop of a child. */
export function copiesToRemoveText(named: readonly string[]): string {
  const one = named.length === 1;
  return `model cop${one ? "y" : "ies"} ${named.join(", ")}: remove ${one ? "it" : "them"} by hand`;
}

/**
 * Runs `close` (freeing what loaded the copy), then removes the private model copy `staged` whatever
 * `close` did: the decrypted weights must not stay because a dispose failed. Rejects with the error
 * of the step that failed; when both did, with an AggregateError of `close`'s error and the
 * removal's, in that order, so neither is lost (failureBesidesCopies takes the first). A copy it
 * could not remove is recorded (modelCopiesLeft) and tried again at exit. `what` names the whole
 * ("closing the engine") and `step` the close ("freeing the model") in that error's message.
 * InferenceEngine.close and Enclave.close.
 */
export async function closeThenRemoveCopy(
  close: () => Promise<void>,
  staged: StagedModel | null,
  what: string,
  step: string,
): Promise<void> {
  const closeFailure = await settledFailure(close(), step);
  try {
    await staged?.remove();
  } catch (removalError) {
    if (closeFailure === null) throw removalError;
    throw new AggregateError(
      [closeFailure.error, removalError],
      `${what}: ${step} failed (${(closeFailure.error as Error | null)?.message}), and removing the model copy failed (${(removalError as Error | null)?.message})`,
    );
  }
  if (closeFailure !== null) throw closeFailure.error;
}

/** A copy's directory and how to remove it. */
interface CopyDirectory {
  readonly dir: string;
  remove(): Promise<void>;
}

/**
 * A fresh 0700 directory for a copy under `root`, named for this process (CopyOwner), after
 * removing the copies of processes that have ended. Until it is gone (a `remove()` that failed
 * counts for nothing), it is also removed synchronously when the process exits (process.exit from
 * a signal or EPIPE handler, an uncaught error): a last resort for an owner that could not close
 * its engine, and a second try for a removal that failed (EBUSY). A kill by a signal that has no
 * handler (SIGKILL, the OOM killer) runs no code and leaves it to removeStaleCopies.
 */
async function copyDirectory(root: string): Promise<CopyDirectory> {
  await removeStaleCopies(root);
  const dir = await mkdtemp(join(root, `cloister-model-${ownerTag(await thisProcessOwner())}-`));
  copiesLeft.set(dir, null);
  // Kept until the copy is gone: a removal that failed (EBUSY, EIO) gets another try at exit.
  const removeAtExit = (): void => {
    try {
      rmSync(dir, { recursive: true, force: true });
      removed();
    } catch (error) {
      // Never thrown from an exit listener (node would print a stack trace, and the listeners
      // after it, other copies' removals, would not run): recorded, for whoever still reports the
      // copies left (removeModelCopiesNow's caller).
      failed(error);
    }
  };
  const removed = (): void => {
    process.off("exit", removeAtExit);
    copiesLeft.delete(dir);
    removeNow.delete(removeAtExit);
  };
  const failed = (error: unknown): void => {
    const code = (error as { code?: unknown } | null)?.code;
    copiesLeft.set(dir, typeof code === "string" ? code : null);
  };
  process.on("exit", removeAtExit);
  removeNow.add(removeAtExit);
  return {
    dir,
    remove: async () => {
      try {
        await rm(dir, { recursive: true, force: true });
      } catch (error) {
        failed(error);
        throw error;
      }
      removed();
    },
  };
}

/**
 * Tries now, synchronously, to remove every copy this process made and has not removed (a removal
 * that failed, or one a stop is cutting short: a second signal's process.exit), recording the
 * outcome for modelCopiesLeft. A copy still there keeps its try at exit.
 */
export function removeModelCopiesNow(): void {
  for (const remove of [...removeNow]) remove();
}

/**
 * Removes the copy of a staging that failed with `error`, which stays the staging's error whatever
 * the removal does: a copy it could not remove is recorded (modelCopiesLeft), for the command to
 * name (`cloister enclave`, `cloister model run`). A removal's EBUSY must not hide why the staging
 * failed. Stopped (`error` is `signal`'s stop: stoppedBy), it throws the stop's reason; otherwise it
 * returns, for the caller to throw its error.
 */
async function discardCopy(copy: CopyDirectory, error: unknown, signal: AbortSignal | undefined): Promise<void> {
  await copy.remove().catch(() => {});
  throwIfStoppedBy(error, signal);
}

/**
 * `expectedBytes`: the manifest's size, or null for the size the file has when it is opened (a
 * caller with a pinned digest but no pinned size: `cloister model run`, the benchmarks). A file of
 * another size is refused before anything is copied, a root without room for it too
 * (MODEL_NO_ROOM), and at most one byte more than that is ever copied (a file the host grows
 * meanwhile cannot fill the private memory); the digest check happens on the copy afterwards.
 */
export async function stageModel(
  source: string,
  expectedBytes: number | null,
  options: StagingOptions & { readonly signal?: AbortSignal } = {},
): Promise<StagedModel> {
  // Opened once (openModelInput) and checked through the descriptor that is then read (its size by
  // the fstat of that descriptor), so the bytes copied come from the file that was checked.
  const { handle, size: bytes } = await openModelInput(source, MODEL_SOURCE_ERRORS);
  let copy: CopyDirectory;
  try {
    if (expectedBytes !== null && bytes !== expectedBytes) throw sizeMismatch(source, expectedBytes, bytes);
    const root = await (options.privateRoot ?? privateRoot)(bytes);
    await checkRoom(source, root, bytes, options.freeBytes ?? freeBytesOf);
    options.signal?.throwIfAborted();
    copy = await copyDirectory(root);
  } catch (error) {
    await closeModelInput(handle);
    throw error;
  }
  const { dir } = copy;
  const path = join(dir, basename(source));
  const hash = createHash("sha256");
  try {
    // `end` is inclusive: one byte past the expected size is enough to see a file that grew. The
    // stream closes the descriptor when it ends or fails.
    await pipeline(
      handle.createReadStream({ start: 0, end: bytes, highWaterMark: 1 << 20 }),
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(path, { mode: 0o600 }),
      ...(options.signal === undefined ? [] : [{ signal: options.signal }]),
    );
  } catch (error) {
    // Stopped by the caller (Ctrl-C during `model run`'s load): its reason, not a copy failure.
    await discardCopy(copy, error, options.signal);
    // The errno is in the message (the CLI prints only the message): ENOSPC says the root filled up
    // meanwhile, EIO a failing disk.
    const code = (error as { code?: unknown } | null)?.code;
    throw new EngineError(
      "MODEL_LOAD_FAILED",
      fileMessage(source, "model file", `cannot be copied into ${dir}${typeof code === "string" ? ` (${code})` : ""}`),
      { cause: error },
    );
  }
  const copied = (await stat(path)).size;
  if (copied !== bytes) {
    await copy.remove().catch(() => {}); // recorded when it fails (discardCopy)
    if (expectedBytes !== null) throw sizeMismatch(source, expectedBytes, copied);
    throw new EngineError(
      "MODEL_CHANGED_DURING_LOAD",
      fileMessage(
        source,
        "model file",
        `was ${bytes} bytes when opened, ${copied} bytes were copied (something writes to it); not loaded`,
      ),
    );
  }
  return { path, sha256: hash.digest("hex"), remove: copy.remove };
}

/**
 * Where `cloister model run` and the benchmarks copy a model they were given by path (the engine's
 * own staging, enclave/engine.ts): /dev/shm when it is memory with room for `neededBytes`
 * (the copy then costs no disk, and llama.cpp maps the same pages), else the OS temp directory
 * (TMPDIR), where the copy costs disk space the size of the model while it is loaded.
 */
export async function localCopyRoot(neededBytes: number): Promise<string> {
  const free = await privateMemoryFreeBytes("/dev/shm");
  return free !== null && free >= neededBytes ? "/dev/shm" : tmpdir();
}

function noPrivateMemory(): SealedModelError {
  return new SealedModelError(
    "MODEL_NO_PRIVATE_MEMORY",
    "sealed model: /dev/shm is missing or not a tmpfs to decrypt into; refusing to write decrypted weights to a disk (mount a tmpfs at /dev/shm)",
  );
}

/**
 * Stages a sealed model (models/sealed.ts): decrypts it straight from `source` into private memory,
 * reading each byte once, so the SHA-256 the manifest pins is the digest of exactly the ciphertext
 * that was decrypted. Returns the copy; its `sha256` is the plaintext digest the engine must find.
 */
export async function stageSealedModel(
  source: string,
  expected: SealedModelExpectation,
  modelKey: ModelKey,
  options: {
    readonly allowDisk: boolean;
    readonly privateRoot?: (neededBytes: number) => Promise<string>;
    /** Aborting stops the decryption between two chunks; the copy is removed (the boot stopped by a signal). */
    readonly signal?: AbortSignal;
  },
): Promise<StagedModel> {
  const root = await (options.privateRoot ?? privateRoot)(expected.sizeBytes);
  // Decrypted weights go to memory only: without /dev/shm the temp directory may be a disk the
  // host can read, so a real TEE refuses (the simulator, a development tool, may use it).
  if (root !== "/dev/shm" && !options.allowDisk) throw noPrivateMemory();
  const copy = await copyDirectory(root);
  const path = join(copy.dir, "model.gguf");
  try {
    const header = await unsealModelFile(
      source,
      path,
      modelKey,
      expected,
      options.signal === undefined ? {} : { signal: options.signal },
    );
    return {
      path,
      // unsealModelFile hashed the plaintext as it wrote it and checked it against this digest.
      sha256: header.plaintextSha256,
      remove: copy.remove,
    };
  } catch (error) {
    // The refusal (or, stopped, the stop's reason) is the staging's error whatever the removal does.
    await discardCopy(copy, error, options.signal);
    throw error;
  }
}
