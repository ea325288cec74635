/**
 * A local simulated deployment for `cloister up` and `cloister demo`: it prepares the files a real
 * operator would (tiny model, operator key, signed manifest, API key, client policy) under
 * `.cloister/`, then starts the enclave and the host as two separate processes on loopback, so
 * the host process never loads enclave or sealing code.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import { constants, type FileHandle, lstat, open, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { join, relative, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { JWK } from "jose";
import { describeFileKind, fileErrorCause, fileMessage, type InputBound } from "../../attestation/bounded-read.ts";
import { toHex } from "../../attestation/bytes.ts";
import { jsonTextRefusal, parseJsonText } from "../../attestation/json-text.ts";
import { copiesToRemoveText, modelCopiesOfProcess } from "../../enclave/model-staging.ts";
import { simulatedMeasurement } from "../../enclave/tee.ts";
import { devManifest } from "../../manifests/dev.ts";
import { generateManifestSigningKey, manifestPublicJwk, signManifest } from "../../manifests/sign.ts";
import { ModelIoError, ModelNotRegularFileError } from "../../models/errors.ts";
import { closeModelInput, HASH_BUFFER_BYTES, sha256Handle } from "../../models/hash.ts";
import { type ProcessOwner, processOwner } from "../../models/process-owner.ts";
import {
  generateModelKey,
  type ModelKey,
  modelKeyFromJwk,
  modelKeyToJwk,
  readSealedHeader,
  SealedModelError,
  type SealedModelExpectation,
  sealModelFile,
  unsealModelFile,
} from "../../models/sealed.ts";
import { TINY_MODEL_SHA256, writeTinyModel } from "../../models/tiny.ts";
import { simulatorClientPolicy } from "../dev-policy.ts";
import type { ClientPolicy } from "../policy.ts";
import { hashApiKey } from "./api-key-hash.ts";
import { childLogLine } from "./child-lines.ts";
import {
  closingAfter,
  type LeftFile,
  leftFileNote,
  optionsUsageError,
  portRefusal,
  UsageError,
  writeFileAtomically,
} from "./output.ts";
import { holdPrivateDirectory, makeDirectory, pinnedPath } from "./private-directory.ts";
import { API_KEY_FILE_BOUND, readSecretFile } from "./run-client.ts";
import { visibleOnOneLine } from "./terminal-text.ts";

const CLI = fileURLToPath(new URL("../../bin/cloister.js", import.meta.url));

export type SimulatedTee = "sim-snp" | "sim-tdx";

export interface DeploymentFiles {
  readonly dir: string;
  readonly modelPath: string;
  readonly manifestPath: string;
  readonly operatorPublicKeyPath: string;
  readonly apiKeysPath: string;
  readonly apiKeyPath: string;
  readonly apiKey: string;
  readonly policyPath: string;
  readonly policy: ClientPolicy;
  /**
   * The key broker of a sealed-model deployment (null: the model is not sealed): its configuration
   * (the model key and its release policy) and the key id the manifest names.
   */
  readonly kbs: { readonly configPath: string; readonly keyId: string } | null;
}

/** The key id of the development deployment's model key. */
export const DEV_MODEL_KEY_ID = "cloister-dev-tiny";

/**
 * Whether anything is at `path`, a symbolic link included (lstat: a link to nothing is there too):
 * what up finds at an earlier run's name is read, never written over as missing, and its reads
 * refuse a link (readSecretFile), so a link put there is refused rather than written through.
 */
async function present(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** What writeWhole expects at the name: nothing (a secret found missing, made now) or a file of its own. */
type WriteAt = "new" | "again";

/** What a file cloister up writes is called in its refusals. */
const WRITTEN = "cloister up: file to write";

/**
 * Writes `text` to `path` (named `name` in refusals: `path` is through the directory held) whole or
 * not at all (writeFileAtomically): into a temporary file beside it in the directory held, made
 * there (O_EXCL, O_NOFOLLOW) with exactly `mode` whatever the umask and whatever mode a file at the
 * name had, fsync'ed, then put at the name, and the directory fsync'ed. A crash, a full disk or a
 * kill midway leaves the name as it was (an earlier run's policy or manifest whole), never a
 * truncated file; a failure removes the temporary file (a kill cannot: a `.NAME.HEX.tmp` may then be
 * left beside it, never at the name). The key broker refuses a configuration or policy that group or
 * others can write, and a key file they can read (attestation/kbs/config.ts and key-file.ts).
 * `new` (found missing): linked into place, which never replaces anything at the name, a symbolic
 * link included (EEXIST: refused, put there meanwhile). `again`: renamed over the name, which
 * replaces the name itself, never what a link there leads to; before any work, a symbolic link found
 * there is refused all the same (up made none: someone put it there), and so is anything else not a
 * regular file (a FIFO, a directory: refuseUnlessFileOrNone), never opened. One put there after that
 * check is replaced by the rename, never written to (a directory fails it: refused as found).
 */
async function writeWhole(path: string, name: string, text: string, mode: number, at: WriteAt): Promise<void> {
  if (at === "again") await refuseUnlessFileOrNone(path, name);
  await writeFileAtomically(
    path,
    text,
    { mode, replace: at === "again" },
    {
      exists: (cause) => new UsageError(fileMessage(name, WRITTEN, PUT_THERE), { cause }),
      noDirectory: (_directory, cause) => writeFailure(cause, name),
      failed: (cause, _operation, left) => writeFailure(cause, name, left),
    },
  );
}

/** A secret's name found taken at its write, though it was found missing a moment before. */
const PUT_THERE = "expected none (it was missing a moment before), found one put there meanwhile (a file or a link)";

/** A symbolic link at a name up writes: refused, never written through nor over. */
const LINK_THERE =
  "expected the file itself or none, found a symbolic link (cloister up writes through none); remove it";

/**
 * Refuses what is at `path` (`name` by name) unless it is a regular file or nothing: a symbolic
 * link, a FIFO, a socket, a device or a directory, found by lstat, never opened (a FIFO or a device
 * opened may wait or act). Any other error of the lstat (EIO, EACCES…) refused as a write that
 * failed is (writeFailure): `name` by its path in --dir, never `path` (through /proc/self/fd), by
 * its code, the error its cause.
 */
async function refuseUnlessFileOrNone(path: string, name: string): Promise<void> {
  const info = await lstat(path).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw writeFailure(error, name, undefined, "check");
  });
  if (info === null || info.isFile()) return;
  if (info.isSymbolicLink()) throw new UsageError(fileMessage(name, WRITTEN, LINK_THERE));
  throw new UsageError(fileMessage(name, WRITTEN, `expected a regular file, found ${describeFileKind(info)}`));
}

/**
 * A write of `name` that failed with `cause` (the error its cause), the name left as it was: a
 * directory put at the name after the check (EISDIR, the rename's) refused as one found there; any
 * other failure (ENOSPC, EIO…) named by its code (fileErrorCause), never by its own text, which names
 * the temporary file. `left`: a new file linked into place that could not be removed again.
 * `operation`: "check" for the lstat before the write (refuseUnlessFileOrNone).
 */
function writeFailure(
  cause: unknown,
  name: string,
  left?: LeftFile,
  operation: "write" | "check" = "write",
): UsageError {
  const reason =
    (cause as NodeJS.ErrnoException).code === "EISDIR"
      ? "expected a regular file, found a directory"
      : `cannot write (${fileErrorCause(cause, operation)})`;
  return new UsageError(fileMessage(name, WRITTEN, `${reason}${leftFileNote(left)}`), { cause });
}

/**
 * An earlier run's model file at `at` (`path` by name), opened once for reading, or null when there
 * is none there or it is not a regular file itself. The file is then made anew, written beside the
 * name and renamed onto it: a symbolic link there (refused by O_NOFOLLOW) is replaced, never its
 * target; a FIFO, socket, device or directory at the name written stops `up` (the GGUF writer's and
 * sealModelFile's check of the output: MODEL_IO, expected a regular file), while a sealing run only
 * removes the plain model's name (never writing through it; removePlainModel: a directory there stops
 * it, MODEL_IO, before any work). Everything read of it is read through the handle (its status,
 * header and digest), never by its name again.
 * O_NONBLOCK: a FIFO is opened at once, not waited on, and then found not to be a regular file;
 * O_NOCTTY: a terminal device there does not become this process's controlling terminal. Any
 * other error of the open (EIO, EACCES…) stops `up`, as a read of the file by name did.
 */
async function openEarlierModel(at: string, path: string): Promise<{ handle: FileHandle; info: Stats } | null> {
  const flags = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;
  const handle = await open(at, flags).catch((cause: unknown) => {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ELOOP" || code === "ENXIO") return null;
    throw new ModelIoError(path, "open", cause);
  });
  if (handle === null) return null;
  try {
    const info = await handle.stat();
    if (info.isFile()) return { handle, info };
  } catch (cause) {
    await closeModelInput(handle);
    throw new ModelIoError(path, "read", cause);
  }
  await closeModelInput(handle);
  return null;
}

/**
 * Removes the plain model's name at `at` (`path` by name) for a sealing run, which keeps the sealed
 * file only: a file, a link (never its target), a FIFO, a socket or a device there is removed; a
 * directory, which rm does not remove (ERR_FS_EISDIR), stops `up` before any work as the GGUF
 * writer's check does (MODEL_IO, expected a regular file), not after sealing with Node's own code.
 */
async function removePlainModel(at: string, path: string): Promise<void> {
  await rm(at, { force: true }).catch((cause: unknown) => {
    if ((cause as NodeJS.ErrnoException).code === "ERR_FS_EISDIR") {
      throw new ModelNotRegularFileError(path, "model file", "a directory");
    }
    throw new ModelIoError(path, "remove", cause);
  });
}

/** The SHA-256 of the whole of `opened` (openEarlierModel: its size when opened), `path` naming it. */
const sha256Opened = (opened: { handle: FileHandle; info: Stats }, path: string) =>
  sha256Handle(opened.handle, path, opened.info.size, Buffer.allocUnsafe(HASH_BUFFER_BYTES));

/**
 * Whether the plain tiny model is at `at` (`path` by name): a regular file itself whose digest,
 * taken through the one handle opened, is the tiny model's.
 */
async function tinyModelAt(at: string, path: string): Promise<boolean> {
  const opened = await openEarlierModel(at, path);
  if (opened === null) return false;
  try {
    return (await sha256Opened(opened, path)) === TINY_MODEL_SHA256;
  } finally {
    await closeModelInput(opened.handle);
  }
}

/**
 * The sealed tiny model an earlier run left at `path`, if it is one: sealed under `modelKey` and
 * decrypting (every chunk authenticated, into `scratch`, removed by the caller) to the tiny model.
 * Null when there is none or it is anything else, and it is to be sealed anew. Read at `at`, the
 * same file through the directory held (prepareIn), opened once: its header, digest and size are
 * the handle's, and it is decrypted through /proc/self/fd/N of that handle (where it leads to the
 * file opened), so the file digested is the one checked, even were its name swapped meanwhile. Where
 * it does not (no /proc), by name, in the directory held: a file swapped in there may be opened, but
 * is kept only with the bytes digested (unsealModelFile checks size and digest of what it decrypts:
 * other bytes are a SealedModelError, and it is sealed anew). (The enclave hashes the ciphertext as
 * it decrypts it, against the manifest's digest: a file changed later is refused, never loaded.)
 */
async function reusableSealedModel(
  path: string,
  at: string,
  scratch: string,
  modelKey: ModelKey,
  progress: (line: string) => void,
): Promise<SealedModelExpectation | null> {
  const opened = await openEarlierModel(at, path);
  if (opened === null) return null;
  const pinned = await pinnedPath(opened.handle, opened.info);
  try {
    const header = await readSealedHeader(opened.handle, opened.info.size, path);
    if (header.keyId !== modelKey.keyId || header.plaintextSha256 !== TINY_MODEL_SHA256) {
      progress(`${visibleOnOneLine(path)} is not the tiny model sealed under the current model key: sealing it anew`);
      return null;
    }
    const expected = { sha256: await sha256Opened(opened, path), sizeBytes: opened.info.size, keyId: header.keyId };
    await unsealModelFile(pinned ?? at, scratch, modelKey, expected).catch((error: unknown) => {
      // Named by its path (the error's text, stack and path), never by /proc/self/fd/N.
      throw pinned === null ? error : namedByName(error, pinned, path);
    });
    return expected;
  } catch (error) {
    // Only a sealed file that is not what it should be is replaced; an I/O error (EIO, EACCES,
    // ENOSPC…) stops `up`, since a new seal would change the manifest and every client policy.
    if (!(error instanceof SealedModelError)) throw error;
    progress(`${visibleOnOneLine(path)} does not open as the tiny model (${error.code}): sealing it anew`);
    return null;
  } finally {
    await closeModelInput(opened.handle);
  }
}

/**
 * A JWK file of an earlier run, read to 64 KiB: what up writes there is one Ed25519 manifest key
 * (private or public) or one 256-bit model key, a few hundred bytes with every optional member.
 */
const UP_JWK_FILE_BOUND: InputBound = {
  bytes: 64 * 1024,
  expected: "one JWK cloister up wrote, a few hundred bytes",
};

/**
 * What an earlier run's file is read with: `inHeld`, read through the directory held open
 * (prepareIn's /proc/self/fd/N/…), checked already (holdPrivateDirectory): its path is not walked
 * again (the walk of a /proc/self/fd path checks nothing of the directory held); the file itself is.
 */
interface EarlierRunRead {
  /** Read through the directory held: its refusals name `name`, the file's path by name. */
  readonly inHeld?: { readonly name: string };
}

/** readSecretFile's options for an earlier run's secret read to `bound` (`read`: EarlierRunRead). */
const earlierSecret = (bound: InputBound, read: EarlierRunRead) => ({
  bound,
  ...(read.inHeld === undefined ? {} : { held: null, name: read.inHeld.name }),
});

/**
 * A private JWK file of an earlier run (the operator key, the model key), parsed; `secret` names
 * what it is (checked by readSecretFile). Text that is not JSON is named by its path and position
 * only: V8's SyntaxError would quote it, and these hold private keys.
 */
export async function readKeyFile(path: string, secret: string, read: EarlierRunRead = {}): Promise<unknown> {
  const text = await readSecretFile(path, secret, earlierSecret(UP_JWK_FILE_BOUND, read));
  try {
    return parseJsonText(text);
  } catch (error) {
    throw new UsageError(`${read.inHeld?.name ?? path}: ${jsonTextRefusal(error, "a JWK")}`);
  }
}

/**
 * The public part of operator key `jwk` (read from `path`), as generateManifestSigningKey gives it
 * (manifestPublicJwk): refused without its public member x.
 */
function operatorPublicJwk(jwk: JWK, path: string): JWK {
  if (typeof jwk.x !== "string") {
    throw new UsageError(`${path}: expected an operator key with its public part (member x), found none`);
  }
  return manifestPublicJwk(jwk);
}

/** The API key an earlier run wrote (`ck_` and 48 hex digits), to the bound of any API key file. */
export async function readApiKeyOfEarlierRun(path: string, read: EarlierRunRead = {}): Promise<string> {
  return (await readSecretFile(path, "cloister up: API key file", earlierSecret(API_KEY_FILE_BOUND, read))).trim();
}

/** What prepareDeployment is asked for. */
interface DeploymentOptions {
  dir: string;
  tee: SimulatedTee;
  threads: number;
  progress: (line: string) => void;
  /** Seal the model at rest and have a key broker release its key to the attested enclave. */
  sealedModel?: boolean;
}

/** Makes (or reuses) everything a simulated deployment needs under `dir`. */
export async function prepareDeployment(options: DeploymentOptions): Promise<DeploymentFiles> {
  // A directory made here holds only what up writes (keys among them): kept out of git, and out of
  // linters that read .gitignore, wherever --dir puts it (as a virtualenv does). A directory that
  // exists is the user's, left as it is. Held open: its name may be in another user's directory,
  // who could swap it for a link once checked; every write goes to the one checked (held.path).
  const held = await holdPrivateDirectory(options.dir, "--dir");
  try {
    // A close that fails too must not hide prepareIn's refusal (closingAfter).
    return await closingAfter(held, () => prepareIn(held.path, options));
  } catch (error) {
    throw namedByName(error, held.path, resolve(options.dir));
  }
}

/**
 * `error`, a file read or written through the directory held (`at`, /proc/self/fd/N) named by `dir`,
 * the path the user gave, in its message, stack and path (as a write by name named it), and so its
 * causes: /proc/self/fd/N means nothing once the process is gone.
 */
function namedByName(error: unknown, at: string, dir: string): unknown {
  if (at === dir) return error;
  const byName = (text: string) => heldNamed(text, at, dir);
  // A chain of causes, each once (bounded: a cause may lead back to an error of the chain).
  const seen = new Set<Error>();
  for (let failed = error; failed instanceof Error && !seen.has(failed) && seen.size < 16; failed = failed.cause) {
    seen.add(failed);
    failed.message = byName(failed.message);
    if (typeof failed.stack === "string") failed.stack = byName(failed.stack);
    const named = failed as NodeJS.ErrnoException & { dest?: string };
    if (typeof named.path === "string") named.path = byName(named.path);
    if (typeof named.dest === "string") named.dest = byName(named.dest);
  }
  return error;
}

/** `text` with each `at` (a path, not the start of a longer one: /proc/self/fd/12 for /proc/self/fd/1) as `dir`. */
function heldNamed(text: string, at: string, dir: string): string {
  let named = "";
  let from = 0;
  for (let i = text.indexOf(at); i !== -1; i = text.indexOf(at, i + at.length)) {
    if (/[0-9]/.test(text.charAt(i + at.length))) continue;
    named += text.slice(from, i) + dir;
    from = i + at.length;
  }
  return named + text.slice(from);
}

/**
 * prepareDeployment's work in `options.dir`, made and held: looked for, read, made, written and
 * removed through `at` (the directory held), named by name to the caller. Nothing is looked for by
 * name: whoever owns the directory above may swap its name for a link to a directory of theirs, and
 * an earlier run's key looked for there would be missing, made anew and written over the one held.
 */
async function prepareIn(at: string, options: DeploymentOptions): Promise<DeploymentFiles> {
  const dir = resolve(options.dir);
  /** The path to write `path` (in `dir`) by: through the directory held. */
  const held = (path: string) => join(at, relative(dir, path));
  /**
   * How an earlier run's `path` is read: through the directory held, unwalked; where none is held
   * (`at` is the path: elsewhere than Linux, or without /proc), by name, its path walked.
   */
  const earlier = (path: string): EarlierRunRead => (at === dir ? {} : { inHeld: { name: path } });
  /** Writes a secret found missing (a private key, the API key): made here, mode 0600. */
  const writePrivate = (path: string, text: string) => writeWhole(held(path), path, text, 0o600, "new");
  /** Writes a file anyone may read and only its owner change: mode 0644. */
  const writePublic = (path: string, text: string) => writeWhole(held(path), path, text, 0o644, "again");
  await makeDirectory(join(dir, "models"), "--dir", held(join(dir, "models")));

  const modelPath = join(dir, "models", "tiny.gguf");
  const makeTinyModel = async (path: string) => {
    const made = await writeTinyModel(held(path));
    if (made.sha256 !== TINY_MODEL_SHA256) {
      throw new Error(`tiny model: expected sha256 ${TINY_MODEL_SHA256}, produced ${made.sha256}`);
    }
  };
  if (options.sealedModel !== true && !(await tinyModelAt(held(modelPath), modelPath))) {
    options.progress("making the tiny model (deterministic, offline)");
    await makeTinyModel(modelPath);
  }
  // A sealing run keeps only the sealed file: one an earlier run without sealing left is removed.
  if (options.sealedModel === true) await removePlainModel(held(modelPath), modelPath);

  const privatePath = join(dir, "operator.private.jwk");
  const operatorPublicKeyPath = join(dir, "operator.public.jwk");
  let publicJwk: JWK;
  let privateJwk: JWK;
  // Reused when the private key exists: the public file is not needed (derived below), and a run
  // that made a new key because it was gone would lose the operator's key and change every policy.
  if (await present(held(privatePath))) {
    privateJwk = (await readKeyFile(held(privatePath), "operator key", earlier(privatePath))) as JWK;
    // The key the policy trusts is the private key's own public part, never a public file: the name
    // --dir may be another user's link to a directory of theirs by now, and an operator.public.jwk
    // there would be the clients' trusted signer. Written again as a fresh run leaves it (mode 0644:
    // an earlier version wrote it under the umask, 0664 under umask 002).
    publicJwk = operatorPublicJwk(privateJwk, privatePath);
    await writePublic(operatorPublicKeyPath, `${JSON.stringify(publicJwk, null, 2)}\n`);
  } else {
    const pair = await generateManifestSigningKey("EdDSA");
    privateJwk = pair.privateJwk;
    publicJwk = pair.publicJwk;
    await writePrivate(privatePath, JSON.stringify(privateJwk));
    await writePublic(operatorPublicKeyPath, `${JSON.stringify(publicJwk, null, 2)}\n`);
  }

  let modelFilePath = modelPath;
  let kbs: DeploymentFiles["kbs"] = null;
  let sealedModelFields = {};
  if (options.sealedModel === true) {
    // The operator's side of a sealed model: a model key (kept by the key broker only), the model
    // encrypted under it, and the manifest naming the sealed file and the key id.
    const kbsDir = join(dir, "kbs");
    await makeDirectory(kbsDir, "--dir", held(kbsDir));
    const keyPath = join(kbsDir, "model-key.jwk");
    let modelKey: ModelKey;
    if (await present(held(keyPath))) {
      modelKey = modelKeyFromJwk(await readKeyFile(held(keyPath), "model key", earlier(keyPath)), keyPath);
    } else {
      modelKey = generateModelKey(DEV_MODEL_KEY_ID);
      await writePrivate(keyPath, `${JSON.stringify(modelKeyToJwk(modelKey))}\n`);
    }
    modelFilePath = join(dir, "models", "tiny.gguf.sealed");
    // As in a real deployment, only the sealed file stays on disk: the plaintext exists while it is
    // sealed or checked (the tiny model is public and rebuilt in a moment); one an earlier run
    // without sealing left was removed above.
    const plaintext = join(dir, "models", `.tiny.gguf.${process.pid}.plain`);
    let sealed: SealedModelExpectation;
    try {
      // Sealing draws a fresh nonce, so a resealed file has a new digest, and with it the manifest
      // and the client policy: the sealed file of an earlier run is kept when it still opens under
      // this key to the tiny model, so policies copied elsewhere (a running proxy) keep working.
      const kept = await reusableSealedModel(
        modelFilePath,
        held(modelFilePath),
        held(plaintext),
        modelKey,
        options.progress,
      );
      if (kept !== null) sealed = kept;
      else {
        options.progress("making the tiny model (deterministic, offline) and sealing it");
        await makeTinyModel(plaintext);
        sealed = await sealModelFile(held(plaintext), held(modelFilePath), modelKey);
      }
    } finally {
      await rm(held(plaintext), { force: true });
    }
    modelKey.key.fill(0);
    sealedModelFields = { sha256: sealed.sha256, sizeBytes: sealed.sizeBytes, sealedAtRest: true, keyId: sealed.keyId };
    kbs = { configPath: join(kbsDir, "config.json"), keyId: sealed.keyId };
  }

  const manifest = devManifest({ inference: { threads: options.threads }, model: sealedModelFields });
  const manifestPath = join(dir, "manifest.jws");
  await writePublic(manifestPath, await signManifest(manifest, privateJwk));

  const apiKeyPath = join(dir, "api-key");
  let apiKey: string;
  if (await present(held(apiKeyPath))) apiKey = await readApiKeyOfEarlierRun(held(apiKeyPath), earlier(apiKeyPath));
  else {
    apiKey = `ck_${randomBytes(24).toString("hex")}`;
    await writePrivate(apiKeyPath, `${apiKey}\n`);
  }
  const apiKeysPath = join(dir, "api-keys.json");
  await writePublic(
    apiKeysPath,
    `${JSON.stringify(
      {
        version: 1,
        keys: [
          {
            id: "local-dev",
            project: "local",
            sha256: hashApiKey(apiKey),
            permissions: ["attest", "chat", "complete"],
            requestsPerMinute: 600,
          },
        ],
      },
      null,
      2,
    )}\n`,
  );

  const policy = simulatorClientPolicy({
    tee: options.tee,
    measurement: toHex(await simulatedMeasurement(options.tee)),
    operatorKey: publicJwk,
    modelSha256: manifest.model.sha256,
    serviceName: manifest.service.name,
  });
  const policyPath = join(dir, "policy.json");
  await writePublic(policyPath, `${JSON.stringify(policy, null, 2)}\n`);
  if (kbs !== null) {
    // The broker's release policy has the client policy's format; here it accepts exactly what the
    // clients accept (this simulated enclave, this operator, this sealed model).
    await writePublic(join(dir, "kbs", "release-policy.json"), `${JSON.stringify(policy, null, 2)}\n`);
    const config = { version: 1, keys: [{ keyFile: "model-key.jwk", policy: "release-policy.json" }] };
    await writePublic(kbs.configPath, `${JSON.stringify(config, null, 2)}\n`);
  }

  return {
    dir,
    modelPath: modelFilePath,
    manifestPath,
    operatorPublicKeyPath,
    apiKeysPath,
    apiKeyPath,
    apiKey,
    policyPath,
    policy,
    kbs,
  };
}

interface Child {
  /** As its log lines are prefixed: "kbs", "enclave" ("enclave 1" in a pool), "host". */
  readonly name: string;
  readonly process: ChildProcess;
  readonly ready: Promise<{ url: string }>;
  /**
   * The last line it wrote on stderr so far, leaving out its lines per request (isPerRequestLogLine)
   * (null: none): what a child that fails as it stops says last.
   */
  readonly lastLine: () => string | null;
  /**
   * The process as its model copy's name records it (processOwner: pid, start time, pid namespace),
   * read as it was spawned (null: no pid, it could not be spawned): stopChild names the copies of
   * exactly this process, not those of an older one that had its pid.
   */
  readonly owner: Promise<ProcessOwner> | null;
}

/**
 * The environment of a supervised child: marked CLOISTER_SUPERVISED (it ignores the terminal's
 * Ctrl-C and stops when this supervisor goes away, output.ts stopWhenParentExits) with the pid of
 * this supervisor (`supervisor-pid:<pid>`), which bin/cloister.js checks is the child's parent, so
 * a value exported by accident in a shell does not make a command supervised; without the
 * `npm_command` npx gave this process, which is about this process's parent, not the child's.
 */
export function childEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { npm_command: _npmCommand, ...rest } = env;
  return { ...rest, CLOISTER_SUPERVISED: `supervisor-pid:${process.pid}` };
}

/**
 * The option of the supervisor (`cloister up`) that set a child's `--port`: `option` and the value
 * given to it, and (`note`) how the child's port follows from it (a pool's enclave i: value + i).
 */
interface PortOption {
  readonly option: string;
  readonly value: number;
  readonly note?: string;
}

/**
 * Bad input of a supervisor's port option: `--enclave-port 9443 (enclave 1 on port 9444): why`, ending
 * with the help hint as every command-line refusal does (optionsUsageError).
 */
function portOptionError(port: PortOption, why: string): UsageError {
  return optionsUsageError(`${port.option} ${port.value}${port.note === undefined ? "" : ` (${port.note})`}: ${why}`);
}

/**
 * The fixed ports (not 0) `cloister up` would give its children: `--host-port`, `--enclave-port`
 * and a pool's consecutive ports after it, `--kbs-port` when a key broker runs.
 */
export function fixedPorts(options: {
  hostPort: number;
  enclavePort: number;
  enclaves: number;
  kbsPort: number | null;
}): (PortOption & { readonly port: number })[] {
  const ports: (PortOption & { readonly port: number })[] = [];
  if (options.kbsPort !== null && options.kbsPort !== 0) {
    ports.push({ option: "--kbs-port", value: options.kbsPort, port: options.kbsPort });
  }
  if (options.enclavePort !== 0) {
    for (let i = 0; i < options.enclaves; i++) {
      const port = options.enclavePort + i;
      const note = i === 0 ? {} : { note: `enclave ${i} on port ${port}` };
      ports.push({ option: "--enclave-port", value: options.enclavePort, port, ...note });
    }
  }
  if (options.hostPort !== 0) ports.push({ option: "--host-port", value: options.hostPort, port: options.hostPort });
  return ports;
}

/**
 * Checks, before anything is made or started, that each fixed port is given once and is free on
 * 127.0.0.1 (where the children listen) now: a taken --host-port would otherwise be found only after
 * the key broker and the enclaves had booted (seconds, a model key released), to be stopped again.
 * It is only a check: a port taken after it is still reported by the child that cannot listen
 * (startChild), as before. Who holds a taken port is not known here (that needs lsof or /proc);
 * another of its own options is named.
 */
export async function refuseUnavailablePorts(
  ports: readonly (PortOption & { readonly port: number })[],
): Promise<void> {
  for (const [i, wanted] of ports.entries()) {
    if (wanted.port > 65535)
      throw portOptionError(wanted, "expected a port up to 65535 (a pool takes consecutive ports)");
    const other = ports.slice(0, i).find((earlier) => earlier.port === wanted.port);
    if (other !== undefined) {
      throw portOptionError(wanted, `expected a port of its own, found the one ${other.option} ${other.value} gives`);
    }
  }
  // Every taken port at once: a second `cloister up` finds all three defaults taken, and naming
  // one per run would have its user start it three times.
  const taken: (PortOption & { readonly refusal: string; readonly code: string })[] = [];
  for (const wanted of ports) {
    const code = await new Promise<string | null>((resolveCode) => {
      const server = createServer();
      server.once("error", (error: NodeJS.ErrnoException) => resolveCode(error.code ?? "error"));
      server.listen({ host: "127.0.0.1", port: wanted.port }, () => {
        server.close(() => resolveCode(null));
      });
    });
    if (code === null) continue;
    const refusal = portRefusal(code, "127.0.0.1", wanted.port, wanted.option);
    // Another failure (EMFILE…) is not the port's: the child, listening, reports it as it is.
    if (refusal !== null) taken.push({ ...wanted, refusal, code });
  }
  const [first] = taken;
  if (first === undefined) return;
  if (taken.length === 1 || taken.some((port) => port.code !== "EADDRINUSE")) {
    throw portOptionError(first, first.refusal);
  }
  const each = taken.map((port) => `${port.option} ${port.value}${port.note === undefined ? "" : ` (${port.note})`}`);
  const why = "other processes hold these ports (another cloister up?); stop them or choose other ports";
  throw optionsUsageError(`${each.join(", ")}: cannot listen on 127.0.0.1 (EADDRINUSE): ${why}`);
}

/**
 * Whether a child's stderr line is one of its lines per request, which never say why it failed as
 * it stopped, and which a request answered just before would otherwise put in that reason's place:
 * the enclave's `cloister enclave: request refused …` (enclave/run.ts refusalLogLine), the host's
 * access log (`{"type":"access",…}`, host/access-log.ts) and the key broker's lines of a release
 * attempt or of a request refused before any route (`{"event":"release"|"request-refused",…}`,
 * attestation/kbs/server.ts BrokerLogEntry). Its faults (`"event":"fault"`) are kept: they name a
 * failure of its own.
 */
export function isPerRequestLogLine(line: string): boolean {
  if (line.startsWith("cloister enclave: request refused ")) return true;
  if (!line.startsWith("{")) return false;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return false;
  }
  if (typeof parsed !== "object" || parsed === null) return false;
  const { type, event } = parsed as { type?: unknown; event?: unknown };
  return type === "access" || event === "release" || event === "request-refused";
}

/**
 * A child that exited before it was ready (startChild): its name, and its exit code or the signal
 * that killed it, for the supervisor to tell a boot failure of the child's own from a stop (a child
 * the terminal's Ctrl-C killed); the message adds its last `cloister: ` line, if any.
 */
export class ChildExitedError extends Error {
  constructor(
    readonly child: string,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    errorLine: string | null,
  ) {
    const last = errorLine === null ? "" : `: ${errorLine}`;
    super(`${child} exited before it was ready (${signal ?? `exit code ${exitCode}`})${last}`);
  }
}

/** A child's refusal of its --port (listenUsageError): the reason, without the help hint it ends with. */
const CHILD_PORT_REFUSAL = /^cloister: USAGE: --port \d+: (.*?)(?: \(run with --help for usage\))?$/;

/** How long a child's exit by SIGINT during boot waits for the supervisor's own Ctrl-C (startChild). */
const CTRL_C_SETTLE_MS = 500;

/**
 * Starts `cloister ARGS` and resolves with its `{"event":"ready"}` line. When it exits first, the
 * rejection carries its error line; a port it could not listen on (its `cloister: USAGE: --port P:
 * …` line, exit 2) is bad input of the supervisor's `port` option, and is reported as such.
 */
function startChild(name: string, args: readonly string[], stderr: (line: string) => void, port?: PortOption): Child {
  // Supervised: the children ignore the terminal's Ctrl-C (which reaches the whole process group),
  // so the supervisor stops them in order — the host first, so it collects the last audit records.
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: childEnvironment(process.env),
  });
  let errorLine: string | null = null;
  let lastLine: string | null = null;
  createInterface({ input: child.stderr! }).on("line", (line) => {
    if (!isPerRequestLogLine(line)) lastLine = line;
    if (line.startsWith("cloister: ")) errorLine = line;
    stderr(childLogLine(name, line, process.stderr.isTTY === true));
  });
  const ready = new Promise<{ url: string }>((resolveReady, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      try {
        const event = JSON.parse(line) as { event?: string; url?: string };
        if (event.event === "ready" && typeof event.url === "string") {
          resolveReady({ url: event.url });
          return;
        }
      } catch {
        // not a JSON line: passed on below
      }
      // Anything else a child prints on stdout goes to the log too, never silently dropped.
      stderr(childLogLine(`${name}:stdout`, line, process.stderr.isTTY === true));
    });
    child.once("exit", (code, signal) => {
      // Its stderr may still hold lines: its error line is read once the stream has ended.
      const settle = () => {
        // The child's refusal without its help hint: portOptionError ends it with up's own.
        const usage = code === 2 && errorLine !== null ? CHILD_PORT_REFUSAL.exec(errorLine) : null;
        if (usage !== null && port !== undefined) {
          reject(portOptionError(port, (usage[1] as string).replaceAll("--port", port.option)));
          return;
        }
        reject(new ChildExitedError(name, code, signal, errorLine));
      };
      // Killed by SIGINT: most likely the terminal's Ctrl-C, which reached the supervisor at the
      // same moment, but whose handling may come just after this exit is seen. A moment's wait lets
      // that stop win the race (startDeployment's untilReady), so it is not taken for a failure.
      // Not left to run-up.ts isStop (a SIGINT death is a stop however late up's own SIGINT): without
      // the wait, a child that dies first fails the boot before up has handled its SIGINT at all, and
      // only an abort that won has the boot's stop check the child for a model copy (stopChild's
      // `interrupted`); test/e2e/up.test.ts's "the child's first" cases fail without it.
      const afterStderr = signal === "SIGINT" ? () => setTimeout(settle, CTRL_C_SETTLE_MS) : settle;
      if (child.stderr !== null && !child.stderr.closed) child.stderr.once("close", afterStderr);
      else afterStderr();
    });
    child.once("error", reject);
  });
  const owner = child.pid === undefined ? null : processOwner(child.pid);
  return { name, process: child, ready, lastLine: () => lastLine, owner };
}

/**
 * Stops a child (SIGTERM, SIGKILL after `timeoutMs`) and resolves with how it exited: "exit code N"
 * or the signal's name, and the model copy a child killed by a signal left; null when it exited 0
 * or was killed by the stop asked for, leaving no copy (a clean stop), or had died before, reported
 * already, leaving none.
 * `timeoutMs` exceeds the children's default shutdown grace (10 s), so answers under way finish first.
 * `interrupted()`: whether the supervisor stops it on Ctrl-C (SIGINT), which the child got too
 * (below); asked once the child has exited by SIGINT and its stderr ended, not when the stop began:
 * a stop that began as "output closed" (`up 2>&1 | tee log`, tee ended by the Ctrl-C) turns out to
 * be that Ctrl-C's when up's own SIGINT is handled a moment later (run-up.ts stopsAskedFor's
 * `settledReason()`, which `up` gives it).
 * Exported for its tests.
 */
export async function stopChild(
  child: Child,
  interrupted: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<string | null> {
  const { process: running } = child;
  const gone = running.exitCode !== null || running.signalCode !== null;
  // Gone before the stop by an exit of its own: reported already (the boot's failure, `exited`),
  // with any model copy it could not remove named in its last line.
  if (gone && running.signalCode === null) return null;
  const [code, signal] = gone
    ? [running.exitCode, running.signalCode]
    : await new Promise<[number | null, NodeJS.Signals | null]>((done) => {
        const timer = setTimeout(() => running.kill("SIGKILL"), timeoutMs);
        running.once("exit", (exitCode, exitSignal) => {
          clearTimeout(timer);
          done([exitCode, exitSignal]);
        });
        running.kill("SIGTERM");
      });
  // Its last line is read once its stderr has ended (an enclave that could not remove its model copy names it there).
  if (running.stderr !== null && !running.stderr.closed) await new Promise((r) => running.stderr?.once("close", r));
  if (signal === null) return code === 0 ? null : `exit code ${code}`;
  // Killed by a signal's default action: it ran none of its own cleanup (every cloister server
  // handles SIGTERM and SIGINT once it has anything to undo, and exits with a code), so a model copy
  // named for its process — decrypted weights — may be left, which it could not say: checked after
  // any signal, whichever stop this is.
  const left = child.owner === null ? [] : await modelCopiesOfProcess(await child.owner);
  const leaving = left.length === 0 ? null : `leaving the ${copiesToRemoveText(left)}`;
  // Killed before it had installed its handlers, which every cloister server does before anything
  // it would have to undo (the enclave, before it makes its private model copy): the stop asked
  // for, and clean unless a copy is left. By the SIGTERM sent above; or by SIGINT when the
  // supervisor was interrupted: this rule trusts that the SIGINT was Ctrl-C, which a terminal sends
  // to the whole process group, so the child got it too, in its first moments (bin/cloister.js
  // ignores it from its first line on, but node runs for a moment before).
  if (signal === "SIGTERM" || (signal === "SIGINT" && (await interrupted()))) {
    return leaving === null ? null : `${signal} before it handled signals, ${leaving}`;
  }
  // Any other death by a signal (a SIGINT of no Ctrl-C of the supervisor's, the SIGKILL after
  // `timeoutMs`, one that killed it before the stop): a failure. One that came before the stop was
  // reported already (`exited`, the boot's failure), without its copy: told again only to name it.
  if (leaving !== null) return `${signal}, ${leaving}`;
  return gone ? null : signal;
}

export interface RunningDeployment {
  readonly files: DeploymentFiles;
  readonly hostUrl: string;
  readonly enclaveUrl: string;
  /** Every enclave's internal URL (more than one: a pool). */
  readonly enclaveUrls: readonly string[];
  /** The key broker's URL (sealed-model deployments), else null. */
  readonly kbsUrl: string | null;
  /** Resolves when either process exits on its own (not through stopEnclave/restartEnclave/stop). */
  readonly exited: Promise<string>;
  /** Stops enclave `i` (default 0) only; the host keeps running (and reports it unreachable). */
  stopEnclave(i?: number): Promise<void>;
  /** Stops enclave `i` (default 0) if it runs and boots a new one (fresh keys) on the same port. */
  restartEnclave(i?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startDeployment(options: {
  files: DeploymentFiles;
  tee: SimulatedTee;
  hostPort: number;
  enclavePort: number;
  log: (line: string) => void;
  /** `cloister enclave --frame-interval-ms`; absent: the enclave's default. */
  frameIntervalMs?: number;
  /** `cloister host --cors-origin`, each; absent: none. */
  corsOrigins?: readonly string[];
  /** The key broker's port (sealed-model deployments; default 0, any free port). */
  kbsPort?: number;
  /** How many enclave processes (default 1); more form a pool the host routes by key id. */
  enclaves?: number;
  /** `cloister host --pool-refresh-ms`; absent: the host's default. */
  poolRefreshMs?: number;
  /**
   * Aborted (Ctrl-C during boot): it stops waiting for the child that is starting, stops every
   * child started so far in the order `stop()` does, and rejects with the signal's reason. A reason
   * of "SIGINT" is taken as Ctrl-C, which the children got too (stopChild), unless `interrupted` is given.
   */
  signal?: AbortSignal;
  /**
   * Whether the stop under way is the terminal's Ctrl-C (stopChild's `interrupted()`), asked for each
   * child found killed by SIGINT as it is stopped; absent: whether `signal`'s reason is "SIGINT".
   * `up` and `demo` give their stop's reason as it turns out (run-up.ts stopsAskedFor's
   * `settledReason()`): "output closed" followed by the Ctrl-C that closed it is that Ctrl-C, though
   * `signal` keeps "output closed".
   */
  interrupted?: () => boolean | Promise<boolean>;
  /**
   * Called for each child that, stopped (by `stop()`, on an abort or a failed boot, or by
   * stopEnclave/restartEnclave), did not exit 0: its name, how it exited, and its last stderr line
   * (an enclave that could not remove its private model copy names the copy there and exits 1), not
   * a line of one of its requests (isPerRequestLogLine).
   */
  onStopFailure?: (who: string, how: string, lastLine: string | null) => void;
}): Promise<RunningDeployment> {
  const count = options.enclaves ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > 16)
    throw new RangeError(`enclaves: expected 1..16, found ${count}`);
  const { files } = options;
  let kbsUrl: string | null = null;
  const enclaveArgs = (port: number) => [
    "enclave",
    "--manifest",
    files.manifestPath,
    "--operator-key",
    files.operatorPublicKeyPath,
    "--model",
    files.modelPath,
    "--tee",
    options.tee,
    "--port",
    String(port),
    ...(options.frameIntervalMs === undefined ? [] : ["--frame-interval-ms", String(options.frameIntervalMs)]),
    ...(kbsUrl === null ? [] : ["--kbs-url", kbsUrl]),
  ];
  let resolveExited: (who: string) => void = () => {};
  const exited = new Promise<string>((r) => {
    resolveExited = r;
  });
  // Exits we caused (stopEnclave, restartEnclave, stop) are not reported through `exited`.
  const expectedExits = new Set<ChildProcess>();
  const watch = (who: string, child: ChildProcess) =>
    child.once("exit", () => {
      if (!expectedExits.has(child)) resolveExited(who);
    });
  const stopExpected = async (child: Child) => {
    expectedExits.add(child.process);
    const how = await stopChild(child, options.interrupted ?? (() => options.signal?.reason === "SIGINT"));
    if (how !== null) options.onStopFailure?.(child.name, how, child.lastLine());
  };

  options.signal?.throwIfAborted();
  const aborted = new Promise<never>((_, reject) => {
    options.signal?.addEventListener("abort", () => reject(options.signal?.reason), { once: true });
  });
  aborted.catch(() => {}); // only raced below; not a rejection of its own once boot has ended
  /** A child's readiness, or the abort, whichever comes first (its own rejection then goes unheard). */
  const untilReady = <T>(ready: Promise<T>): Promise<T> => {
    if (options.signal === undefined) return ready;
    ready.catch(() => {});
    return Promise.race([ready, aborted]);
  };

  let kbs: Child | undefined;
  const enclaves: Child[] = [];
  let host: Child | undefined;
  // The host first: it lets answers under way finish and collects the enclaves' last audit records
  // while they still run; then the enclaves; the key broker last.
  const stop = async () => {
    if (host !== undefined) await stopExpected(host);
    await Promise.all(enclaves.map((child) => stopExpected(child)));
    if (kbs !== undefined) await stopExpected(kbs);
  };
  try {
    if (files.kbs !== null) {
      kbs = startChild(
        "kbs",
        ["kbs", "serve", "--config", files.kbs.configPath, "--port", String(options.kbsPort ?? 0)],
        options.log,
        { option: "--kbs-port", value: options.kbsPort ?? 0 },
      );
      kbsUrl = (await untilReady(kbs.ready)).url;
      watch("kbs", kbs.process);
    }
    const name = (i: number) => (count === 1 ? "enclave" : `enclave ${i}`);
    /** `--enclave-port`, with the port of a pool's enclave i (consecutive ports from it). */
    const enclavePort = (i: number, port: number): PortOption => ({
      option: "--enclave-port",
      value: options.enclavePort,
      ...(port === options.enclavePort ? {} : { note: `${name(i)} on port ${port}` }),
    });
    for (let i = 0; i < count; i++) {
      const port = options.enclavePort === 0 ? 0 : options.enclavePort + i;
      enclaves.push(startChild(name(i), enclaveArgs(port), options.log, enclavePort(i, port)));
    }
    const enclaveUrls = (await untilReady(Promise.all(enclaves.map((e) => e.ready)))).map((r) => r.url);
    const ports = enclaveUrls.map((url) => Number(new URL(url).port));
    enclaves.forEach((e, i) => {
      watch(name(i), e.process);
    });
    host = startChild(
      "host",
      [
        "host",
        ...enclaveUrls.flatMap((url) => ["--enclave-url", url]),
        ...(options.poolRefreshMs === undefined ? [] : ["--pool-refresh-ms", String(options.poolRefreshMs)]),
        "--api-keys",
        files.apiKeysPath,
        // By name, not through the directory prepareDeployment held (closed by now; a child has its
        // own descriptors): the host checks the path itself (host/audit-collector.ts prepareAuditDir:
        // findUnsafeDirectory) and names its files by it for its whole life, as its comment says.
        "--audit-dir",
        join(files.dir, "audit"),
        "--port",
        String(options.hostPort),
        ...(options.corsOrigins ?? []).flatMap((origin) => ["--cors-origin", origin]),
      ],
      options.log,
      { option: "--host-port", value: options.hostPort },
    );
    const hostReady = await untilReady(host.ready);
    watch("host", host.process);
    const stopEnclave = (i = 0) => stopExpected(enclaves[i] as Child);
    const restartEnclave = async (i = 0) => {
      await stopEnclave(i);
      const started = startChild(
        name(i),
        enclaveArgs(ports[i] as number),
        options.log,
        enclavePort(i, ports[i] as number),
      );
      enclaves[i] = started;
      await started.ready;
      watch(name(i), started.process);
    };
    return {
      files,
      hostUrl: hostReady.url,
      enclaveUrl: enclaveUrls[0] as string,
      enclaveUrls,
      kbsUrl,
      exited,
      stopEnclave,
      restartEnclave,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
