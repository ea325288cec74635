/**
 * Sealed models: a GGUF file encrypted at rest under a model key that only the key broker holds
 * (DESIGN.md "Models"). The enclave gets the key from the broker after attestation and unseals the
 * file into private memory before it loads it.
 *
 * Format v1 (big-endian), a chunked AEAD ("STREAM": every chunk authenticated, its index and a
 * last-chunk flag in its nonce, so chunks cannot be altered, dropped, reordered, repeated or cut
 * off at the end without detection):
 *
 *   magic "CLSEALMD" (8) | version 1 (1) | keyIdLength (1) | keyId (ASCII) | chunkSize u32 |
 *   plaintextSize u64 | plaintextSha256 (32) | salt (32)
 *   then ceil(plaintextSize / chunkSize) chunks (one empty chunk for an empty model), each
 *   AES-256-GCM(chunk) ‖ tag (16).
 *
 * Per file: key ‖ noncePrefix = HKDF-SHA256(modelKey, salt, "cloister/sealed-model/v1"), 32 + 7
 * bytes; chunk i's nonce = noncePrefix ‖ u32(i) ‖ (1 if last else 0); every chunk's additional
 * data is SHA-256(header), so each header field is authenticated too. A fresh random salt per
 * sealing makes the file key (and so every nonce) new even when one model key seals many files.
 * Cutting chunks off is caught first by that: the chunk count comes from the header's
 * plaintextSize, which cannot change without failing every chunk (and the manifest pins the sealed
 * file's size); the last-chunk flag is a second guard, for a reader that did not know the size.
 *
 * The manifest pins the SHA-256 and size of the *sealed* file; unsealing reads each byte once,
 * hashing the ciphertext exactly as it decrypts it, so a host that rewrites the file meanwhile is
 * caught by the digest or by authentication, and what was decrypted is what was checked.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";
import { type FileHandle, link, open, rename, rm } from "node:fs/promises";
import { Worker } from "node:worker_threads";
import { base64url } from "jose";
import { fileMessage } from "../attestation/bounded-read.ts";
import { describeUntrusted } from "../attestation/untrusted-text.ts";
import { cannotRead, ModelError, ModelIoError, ModelNotRegularFileError } from "./errors.ts";
import { closeModelInput, openModelInput, sha256Handle } from "./hash.ts";
import { KEY_ID_PATTERN, KEY_ID_RULE } from "./key-id.ts";
import { partialFile, removeAbandonedPartials, replaceableOutput } from "./partial-file.ts";

const MAGIC = Buffer.from("CLSEALMD", "ascii");
const VERSION = 1;
const TAG_BYTES = 16;
const INFO = Buffer.from("cloister/sealed-model/v1", "ascii");
export const DEFAULT_SEALED_CHUNK_SIZE = 1 << 20;
const MIN_CHUNK_SIZE = 4096;
const MAX_CHUNK_SIZE = 16 << 20;
const MAX_HEADER_BYTES = 8 + 1 + 1 + 200 + 4 + 8 + 32 + 32;

/** A model key: 32 random bytes and the id the broker and the manifest know it by. */
export interface ModelKey {
  readonly keyId: string;
  readonly key: Uint8Array;
}

export interface SealedModelHeader {
  readonly keyId: string;
  readonly chunkSize: number;
  readonly plaintextSize: number;
  readonly plaintextSha256: string;
  readonly salt: Uint8Array;
  /** The header's exact bytes (their SHA-256 is every chunk's additional data). */
  readonly bytes: Uint8Array;
}

export class SealedModelError extends ModelError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "SealedModelError";
  }
}

/** Whether `bytes` (a file's first bytes) start with the sealed format's magic, "CLSEALMD". */
export function hasSealedModelMagic(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.equals(Buffer.from(bytes.buffer, bytes.byteOffset, MAGIC.length));
}

/**
 * Refuses, with MODEL_SEALED, a sealed model where a plain GGUF file is expected (`cloister model
 * inspect`, `model run`): its weights are ciphertext, readable only inside an attested enclave.
 * Any other file passes, to be judged by the GGUF reader; so does a path that is not a regular file
 * (a FIFO, a device: openModelInput's refusal, not waited on), unread, left to the caller's own check.
 */
export async function refuseSealedModel(path: string, field: string): Promise<void> {
  const opened = await openModelInput(path).catch((error: unknown) => {
    if (error instanceof ModelNotRegularFileError) return null;
    throw error;
  });
  if (opened === null) return;
  try {
    await refuseSealedModelHandle(opened.handle, path, field);
  } finally {
    await closeModelInput(opened.handle);
  }
}

/** refuseSealedModel on a file already open (`handle`, read at offset 0, not closed; `path` names it). */
export async function refuseSealedModelHandle(handle: FileHandle, path: string, field: string): Promise<void> {
  const head = Buffer.alloc(MAGIC.length);
  await handle.read(head, 0, MAGIC.length, 0).catch(cannotRead(path));
  if (!hasSealedModelMagic(head)) return;
  throw new SealedModelError(
    "MODEL_SEALED",
    fileMessage(
      path,
      field,
      'expected a GGUF file (magic "GGUF"), found a sealed model (magic "CLSEALMD"): ' +
        "this is a sealed Cloister model (cloister model seal); it is decrypted only inside an enclave that " +
        "the key broker released its key to",
    ),
  );
}

/** A new random model key. */
export function generateModelKey(keyId: string): ModelKey {
  checkKeyId(keyId, "keyId");
  return { keyId, key: new Uint8Array(randomBytes(32)) };
}

function checkKeyId(keyId: string, field: string): void {
  if (!KEY_ID_PATTERN.test(keyId)) {
    throw new SealedModelError(
      "MODEL_KEY_INVALID",
      `${field}: expected ${KEY_ID_RULE}, found ${describeUntrusted(keyId)}`,
    );
  }
}

/** The model key as a JWK (`kty: oct`), the file format of `cloister kbs keygen`. */
export function modelKeyToJwk(key: ModelKey): { kty: "oct"; kid: string; k: string; use: "enc" } {
  return { kty: "oct", kid: key.keyId, k: base64url.encode(key.key), use: "enc" };
}

/** Parses a model key JWK; errors name the field, never the key. */
export function modelKeyFromJwk(value: unknown, source = "model key"): ModelKey {
  const jwk = value as { kty?: unknown; kid?: unknown; k?: unknown } | null;
  if (jwk === null || typeof jwk !== "object" || Array.isArray(jwk)) {
    throw new SealedModelError("MODEL_KEY_INVALID", `${source}: expected a JSON object (a JWK with kty "oct")`);
  }
  if (jwk.kty !== "oct") {
    throw new SealedModelError(
      "MODEL_KEY_INVALID",
      `${source} kty: expected "oct", found ${describeUntrusted(jwk.kty)}`,
    );
  }
  if (typeof jwk.kid !== "string") {
    throw new SealedModelError(
      "MODEL_KEY_INVALID",
      `${source} kid: expected a key id string, found ${describeUntrusted(jwk.kid)}`,
    );
  }
  checkKeyId(jwk.kid, `${source} kid`);
  let key: Uint8Array;
  try {
    if (typeof jwk.k !== "string") throw new Error("k");
    key = base64url.decode(jwk.k);
  } catch (error) {
    throw new SealedModelError("MODEL_KEY_INVALID", `${source} k: expected 32 bytes, base64url`, { cause: error });
  }
  if (key.length !== 32) {
    throw new SealedModelError("MODEL_KEY_INVALID", `${source} k: expected 32 bytes, found ${key.length}`);
  }
  return { keyId: jwk.kid, key };
}

function fileKeys(modelKey: Uint8Array, salt: Uint8Array): { key: Buffer; prefix: Buffer } {
  const okm = Buffer.from(hkdfSync("sha256", modelKey, salt, INFO, 39));
  return { key: okm.subarray(0, 32), prefix: okm.subarray(32, 39) };
}

function chunkNonce(prefix: Buffer, index: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  prefix.copy(nonce, 0);
  nonce.writeUInt32BE(index, 7);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

function chunkCount(plaintextSize: number, chunkSize: number): number {
  return Math.max(1, Math.ceil(plaintextSize / chunkSize));
}

/** Size of the sealed file for a header of `headerBytes` bytes. */
function sealedSize(headerBytes: number, plaintextSize: number, chunkSize: number): number {
  return headerBytes + plaintextSize + TAG_BYTES * chunkCount(plaintextSize, chunkSize);
}

function encodeHeader(fields: Omit<SealedModelHeader, "bytes">): Buffer {
  const keyId = Buffer.from(fields.keyId, "ascii");
  const out = Buffer.alloc(8 + 1 + 1 + keyId.length + 4 + 8 + 32 + 32);
  let at = MAGIC.copy(out, 0);
  out[at++] = VERSION;
  out[at++] = keyId.length;
  at += keyId.copy(out, at);
  out.writeUInt32BE(fields.chunkSize, at);
  at += 4;
  out.writeBigUInt64BE(BigInt(fields.plaintextSize), at);
  at += 8;
  at += Buffer.from(fields.plaintextSha256, "hex").copy(out, at);
  Buffer.from(fields.salt).copy(out, at);
  return out;
}

/** Parses a header from the start of a sealed file; `bytes` may run past the header. */
export function parseSealedModelHeader(bytes: Uint8Array): SealedModelHeader {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const malformed = (field: string, detail: string) =>
    new SealedModelError("SEALED_MODEL_MALFORMED", `sealed model ${field}: ${detail}`);
  if (b.length < 10 || !b.subarray(0, 8).equals(MAGIC)) {
    throw malformed("magic", `expected "CLSEALMD" (a file made by cloister model seal), found another format`);
  }
  if (b[8] !== VERSION) throw malformed("version", `expected ${VERSION}, found ${b[8]}`);
  const keyIdLength = b[9] as number;
  const end = 10 + keyIdLength + 4 + 8 + 32 + 32;
  if (b.length < end) throw malformed("header", `expected ${end} bytes, found ${b.length}`);
  const keyId = b.subarray(10, 10 + keyIdLength).toString("latin1");
  if (!KEY_ID_PATTERN.test(keyId))
    throw malformed("keyId", `expected ${KEY_ID_RULE}, found ${describeUntrusted(keyId)}`);
  let at = 10 + keyIdLength;
  const chunkSize = b.readUInt32BE(at);
  at += 4;
  if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw malformed("chunkSize", `expected ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE}, found ${chunkSize}`);
  }
  const size = b.readBigUInt64BE(at);
  at += 8;
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw malformed("plaintextSize", `expected at most ${Number.MAX_SAFE_INTEGER} bytes, found ${size}`);
  }
  const plaintextSha256 = b.subarray(at, at + 32).toString("hex");
  at += 32;
  const salt = new Uint8Array(b.subarray(at, at + 32));
  return {
    keyId,
    chunkSize,
    plaintextSize: Number(size),
    plaintextSha256,
    salt,
    bytes: new Uint8Array(b.subarray(0, end)),
  };
}

export interface SealedModelInfo {
  /** SHA-256 of the sealed file: what the manifest's model.sha256 pins. */
  readonly sha256: string;
  /** Size of the sealed file: the manifest's model.sizeBytes. */
  readonly sizeBytes: number;
  readonly keyId: string;
  readonly plaintextSha256: string;
  readonly plaintextSize: number;
}

/**
 * Seals the GGUF file `input` into `output` (written beside it, then moved into place, so `output`
 * is never a partial file) under `modelKey`. Opens the input once and reads it through that handle
 * twice (its digest goes into the header); a file that changes in between is refused. `check`, when
 * given, looks at the input through the same handle first (`cloister model seal` counts its
 * parameters there), before anything is written; what it throws is thrown. So every field of the
 * result, and what `check` found, describe the bytes sealed, whatever `input` names meanwhile. A
 * partial file left beside `output` by a sealer killed outright is removed here (partial-file.ts).
 *
 * An existing `output` is replaced unless `overwrite` is false (what `cloister up` relies on when it
 * reseals its model). With `overwrite: false` it is refused (MODEL_OUTPUT_EXISTS) before any work,
 * and again, atomically, when the sealed file is linked into place: a manifest may pin the sealed
 * file's digest, so replacing it can break a deployment. A directory, FIFO, socket or device at
 * `output`'s name is refused either way, before any work (MODEL_IO: expected a regular file, found a
 * FIFO); a symbolic link there is replaced (the link, not its target), as a file is.
 */
export async function sealModelFile(
  input: string,
  output: string,
  modelKey: ModelKey,
  options: { chunkSize?: number; overwrite?: boolean; check?: (source: FileHandle) => Promise<void> } = {},
): Promise<SealedModelInfo> {
  const chunkSize = options.chunkSize ?? DEFAULT_SEALED_CHUNK_SIZE;
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new RangeError(`chunkSize: expected an integer ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE}, found ${chunkSize}`);
  }
  checkKeyId(modelKey.keyId, "keyId");
  if (modelKey.key.length !== 32) throw new SealedModelError("MODEL_KEY_INVALID", "model key: expected 32 bytes");
  const overwrite = options.overwrite ?? true;
  await refuseExistingOutput(output, overwrite);
  const { handle: source, size: plaintextSize } = await openModelInput(input);
  try {
    await options.check?.(source);
  } catch (error) {
    await closeModelInput(source);
    throw error;
  }
  await removeAbandonedPartials(output);
  const temporary = await partialFile(output);
  try {
    const buffer = Buffer.alloc(chunkSize);
    // First pass: the digest the header carries; the second pass (below) re-hashes what it seals,
    // so a file that changes in between is refused. Both through `source`: the file `check` read.
    const plaintextSha256 = await sha256Handle(source, input, plaintextSize, buffer);
    const salt = randomBytes(32);
    const header = encodeHeader({ keyId: modelKey.keyId, chunkSize, plaintextSize, plaintextSha256, salt });
    const aad = createHash("sha256").update(header).digest();
    const { key, prefix } = fileKeys(modelKey.key, salt);
    const sealedHash = createHash("sha256").update(header);
    const recheck = createHash("sha256");
    // The partial file's failures name the output it becomes (the name the user gave; the partial
    // file is removed below), as MODEL_IO with the errno, as the reads of the input do.
    const sink = await open(temporary, "wx", 0o644).catch(cannotWrite(output, "create"));
    try {
      await sink.write(header).catch(cannotWrite(output, "write"));
      const chunks = chunkCount(plaintextSize, chunkSize);
      for (let i = 0; i < chunks; i++) {
        const length = Math.min(chunkSize, plaintextSize - i * chunkSize);
        const { bytesRead } = await source.read(buffer, 0, length, i * chunkSize).catch(cannotRead(input));
        if (bytesRead !== length) {
          throw new SealedModelError("MODEL_CHANGED", fileMessage(input, "model file", "changed while being sealed"));
        }
        const plain = buffer.subarray(0, length);
        recheck.update(plain);
        const cipher = createCipheriv("aes-256-gcm", key, chunkNonce(prefix, i, i === chunks - 1));
        cipher.setAAD(aad);
        const body = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
        sealedHash.update(body);
        await sink.write(body).catch(cannotWrite(output, "write"));
      }
      await sink.sync().catch(cannotWrite(output, "write"));
    } catch (error) {
      await sink.close().catch(() => {});
      throw error;
    } finally {
      key.fill(0);
    }
    await sink.close().catch(cannotWrite(output, "write"));
    const { size: sealedFrom } = await source.stat().catch(cannotRead(input));
    if (recheck.digest("hex") !== plaintextSha256 || sealedFrom !== plaintextSize) {
      throw new SealedModelError("MODEL_CHANGED", fileMessage(input, "model file", "changed while being sealed"));
    }
    if (overwrite) {
      // A directory that appeared at the name meanwhile: EISDIR, bad input as the check above says.
      await rename(temporary, output).catch((cause: unknown) => {
        throw new ModelIoError(output, "replace", cause, OUTPUT);
      });
    } else {
      await link(temporary, output).catch((cause: unknown) => {
        throw (cause as NodeJS.ErrnoException).code === "EEXIST"
          ? outputExists(output, cause)
          : new ModelIoError(output, "create", cause, OUTPUT);
      });
      await rm(temporary, { force: true });
    }
    return {
      sha256: sealedHash.digest("hex"),
      sizeBytes: sealedSize(header.length, plaintextSize, chunkSize),
      keyId: modelKey.keyId,
      plaintextSha256,
      plaintextSize,
    };
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  } finally {
    await closeModelInput(source);
  }
}

/** How every message about `sealModelFile`'s output names it. */
const OUTPUT = "sealed model output";

/**
 * `cause`: link()'s EEXIST, when the output appeared while sealing; without it the output was found
 * before any write (lstat), and no errno was returned to name.
 */
const outputExists = (output: string, cause?: unknown) =>
  new SealedModelError(
    "MODEL_OUTPUT_EXISTS",
    fileMessage(
      output,
      OUTPUT,
      `already exists${cause === undefined ? "" : " (EEXIST)"}; it is not replaced (cloister model seal --force replaces it)`,
    ),
    { cause },
  );

/**
 * Refuses, with or without `overwrite`, anything at `output`'s name that is neither a regular file
 * nor a symbolic link (replaceableOutput: `model seal --force KEY IN /dev/null`, as root, would
 * replace /dev/null). A symbolic link is kept as a file would be: the rename replaces the link
 * itself, never what it points to, so it is replaced only with `overwrite`. Unless `overwrite`,
 * anything there is refused (MODEL_OUTPUT_EXISTS).
 */
async function refuseExistingOutput(output: string, overwrite: boolean): Promise<void> {
  const info = await replaceableOutput(output, OUTPUT);
  if (info !== null && !overwrite) throw outputExists(output);
}

/** SHA-256 over a stream of chunks, on this thread or on a worker thread. */
interface StreamHash {
  /** The chunk is copied (or hashed) before this returns: the caller may reuse its buffer. */
  update(chunk: Uint8Array): void;
  digest(): Promise<string>;
  close(): Promise<void>;
}

function inlineHash(): StreamHash {
  const hash = createHash("sha256");
  return {
    update: (chunk) => {
      hash.update(chunk);
    },
    digest: async () => hash.digest("hex"),
    close: async () => {},
  };
}

const HASH_WORKER = `
const { parentPort } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const hash = createHash("sha256");
parentPort.on("message", (chunk) => {
  if (chunk === null) parentPort.postMessage(hash.digest("hex"));
  else hash.update(chunk);
});
`;

/**
 * The ciphertext's hash on a worker thread, so it runs beside the decryption and the plaintext's
 * hash instead of after them (unsealing a large model is otherwise three passes on one core).
 * `postMessage` copies each chunk before it returns.
 */
function workerHash(): StreamHash {
  const worker = new Worker(HASH_WORKER, { eval: true });
  let failure: Error | null = null;
  worker.on("error", (error) => {
    failure = error;
  });
  return {
    update: (chunk) => {
      if (failure !== null) throw failure;
      worker.postMessage(chunk);
    },
    digest: () =>
      new Promise<string>((resolve, reject) => {
        if (failure !== null) {
          reject(failure);
          return;
        }
        worker.once("message", (digest: unknown) => resolve(String(digest)));
        worker.once("error", reject);
        worker.postMessage(null);
      }),
    close: async () => {
      await worker.terminate();
    },
  };
}

/** Sealed files at least this large hash their ciphertext on a worker thread. */
export const PARALLEL_HASH_MIN_BYTES = 64 << 20;

/**
 * The refusal of a create, write, sync or close of sealModelFile's partial file that failed: MODEL_IO
 * naming `output` (as OUTPUT), the file it was to become, and the errno (ENOSPC, ENOENT: no directory).
 */
function cannotWrite(output: string, action: "create" | "write"): (cause: unknown) => never {
  return (cause) => {
    throw new ModelIoError(output, action, cause, OUTPUT);
  };
}

/** What the manifest says of the sealed file: checked while unsealing. */
export interface SealedModelExpectation {
  readonly sha256: string;
  readonly sizeBytes: number;
  readonly keyId: string;
}

/**
 * The header at the start of an open sealed file, reading at most `maxBytes` (the file's size). A
 * read that fails is ModelIoError (MODEL_IO) naming `path`, the file's name.
 */
export async function readSealedHeader(handle: FileHandle, maxBytes: number, path: string): Promise<SealedModelHeader> {
  const buffer = Buffer.alloc(Math.min(MAX_HEADER_BYTES, maxBytes));
  const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0).catch(cannotRead(path));
  return parseSealedModelHeader(buffer.subarray(0, bytesRead));
}

/**
 * Whether a sealed file's header is the manifest's: its key id (SEALED_MODEL_KEY_MISMATCH) and the
 * size of the file it describes (SEALED_MODEL_MALFORMED): the manifest's model.sizeBytes, which is
 * the expected value (both callers checked the file's own size against it first), the header's the
 * found one. Checked before any key is used: the enclave checks it before it asks the key broker for
 * the key, and unsealing again.
 */
export function checkSealedModelHeader(
  header: SealedModelHeader,
  expected: Pick<SealedModelExpectation, "keyId" | "sizeBytes">,
): void {
  if (header.keyId !== expected.keyId) {
    throw new SealedModelError(
      "SEALED_MODEL_KEY_MISMATCH",
      `sealed model keyId: expected ${describeUntrusted(expected.keyId)} (the manifest's model.keyId), found ${describeUntrusted(header.keyId)} ` +
        "in the file's header: it was sealed under another key; give --model the file the manifest's model names, " +
        "or put into the manifest the model line cloister model seal printed for this file and sign it again",
    );
  }
  const total = sealedSize(header.bytes.length, header.plaintextSize, header.chunkSize);
  if (total !== expected.sizeBytes) {
    throw new SealedModelError(
      "SEALED_MODEL_MALFORMED",
      `sealed model header: expected to describe a ${expected.sizeBytes}-byte file (the manifest's model.sizeBytes), found one describing a ${total}-byte file`,
    );
  }
}

/**
 * SEALED_MODEL_AUTH_FAILED's message for chunk `index` of `chunks`, under the key id `keyId` (the
 * header's, the key's and the manifest's alike: a key id is not secret; the key never shown). Chunk 0
 * failing is most often a key made anew under the same id; a later chunk, once the key opened those
 * before it, can only be bytes altered, reordered or cut.
 */
function authFailure(index: number, chunks: number, keyId: string): string {
  const id = describeUntrusted(keyId);
  const failed = `sealed model chunk ${index} of ${chunks}: fails authentication under model key id ${id}`;
  if (index > 0) return `${failed}, which opened the chunks before it: the file was altered, reordered or cut`;
  return (
    `${failed}: the model key the key broker holds under ${id} is not the key this file was sealed with ` +
    "(was the key made anew under the same id? then seal the model again under it, or restore the old key), " +
    "or the file's header or first chunk was altered"
  );
}

/**
 * Decrypts the sealed file `input` into the new file `output` (mode 0600; removed again on any
 * failure) and returns the header, whose plaintextSha256 the decrypted bytes were checked against.
 * Refuses a file whose size, SHA-256 or key id is not the expected one, and any chunk that fails
 * authentication (wrong key, or bytes altered, dropped, reordered or cut off). `signal` aborting
 * stops it between two chunks: `output` is removed and it rejects with the signal's reason.
 */
export async function unsealModelFile(
  input: string,
  output: string,
  modelKey: ModelKey,
  expected: SealedModelExpectation,
  options: { readonly parallelHashMinBytes?: number; readonly signal?: AbortSignal } = {},
): Promise<SealedModelHeader> {
  if (modelKey.keyId !== expected.keyId) {
    throw new SealedModelError(
      "SEALED_MODEL_KEY_MISMATCH",
      `model key kid: expected ${describeUntrusted(expected.keyId)} (the manifest's model.keyId), found ${describeUntrusted(modelKey.keyId)}`,
    );
  }
  // Opened once, as every model input is (openModelInput: what is not a regular file is refused by
  // its stat, unopened, and by the fstat of the descriptor, a FIFO not waited on; O_NOCTTY), and
  // checked through the descriptor that is then read, so the bytes unsealed come from the file checked.
  const sizeMismatch = (found: number | string, cause?: unknown) =>
    new SealedModelError(
      "MODEL_SIZE_MISMATCH",
      fileMessage(
        input,
        "sealed model",
        `expected ${expected.sizeBytes} bytes (the manifest's model.sizeBytes), found ${found}`,
      ),
      { cause },
    );
  const { handle: source, size } = await openModelInput(input).catch((error: unknown) => {
    throw error instanceof ModelNotRegularFileError ? sizeMismatch("not a regular file", error) : error;
  });
  if (size !== expected.sizeBytes) {
    await closeModelInput(source);
    throw sizeMismatch(size);
  }
  let sink: Awaited<ReturnType<typeof open>> | null = null;
  let created = false;
  let fileKey: Buffer | null = null;
  const sealedHash =
    expected.sizeBytes >= (options.parallelHashMinBytes ?? PARALLEL_HASH_MIN_BYTES) ? workerHash() : inlineHash();
  try {
    const header = await readSealedHeader(source, expected.sizeBytes, input);
    sealedHash.update(header.bytes);
    checkSealedModelHeader(header, expected);
    const aad = createHash("sha256").update(header.bytes).digest();
    const { key, prefix } = fileKeys(modelKey.key, header.salt);
    fileKey = key;
    const plainHash = createHash("sha256");
    sink = await open(output, "wx", 0o600).catch((cause: unknown) => {
      throw new ModelIoError(output, "create", cause);
    });
    created = true;
    const chunks = chunkCount(header.plaintextSize, header.chunkSize);
    const buffer = Buffer.alloc(header.chunkSize + TAG_BYTES);
    let offset = header.bytes.length;
    for (let i = 0; i < chunks; i++) {
      // Stopped (the enclave's boot on SIGTERM): the part written is removed below, as on a failure.
      options.signal?.throwIfAborted();
      const plainLength = Math.min(header.chunkSize, header.plaintextSize - i * header.chunkSize);
      const length = plainLength + TAG_BYTES;
      const read = await source.read(buffer, 0, length, offset).catch(cannotRead(input));
      if (read.bytesRead !== length) {
        throw new SealedModelError(
          "SEALED_MODEL_TRUNCATED",
          `sealed model chunk ${i}: file ends after ${offset + read.bytesRead} bytes`,
        );
      }
      const body = buffer.subarray(0, length);
      sealedHash.update(body);
      const decipher = createDecipheriv("aes-256-gcm", key, chunkNonce(prefix, i, i === chunks - 1));
      decipher.setAAD(aad);
      decipher.setAuthTag(body.subarray(plainLength));
      let plain: Buffer;
      try {
        plain = Buffer.concat([decipher.update(body.subarray(0, plainLength)), decipher.final()]);
      } catch (error) {
        throw new SealedModelError("SEALED_MODEL_AUTH_FAILED", authFailure(i, chunks, header.keyId), { cause: error });
      }
      plainHash.update(plain);
      // Named with the path and errno (ENOSPC: the private memory is full), never the bytes.
      await sink.write(plain).catch((cause: unknown) => {
        throw new ModelIoError(output, "write", cause);
      });
      offset += length;
    }
    // The manifest pins the size: one byte more means the file grew while it was being read.
    const extra = await source.read(Buffer.alloc(1), 0, 1, offset).catch(cannotRead(input));
    if (extra.bytesRead !== 0) {
      throw new SealedModelError(
        "MODEL_SIZE_MISMATCH",
        fileMessage(input, "sealed model", "grew while being unsealed"),
      );
    }
    const sealedSha256 = await sealedHash.digest();
    if (sealedSha256 !== expected.sha256.toLowerCase()) {
      throw new SealedModelError(
        "MODEL_DIGEST_MISMATCH",
        fileMessage(
          input,
          "sealed model",
          `sha256: expected ${expected.sha256} (the manifest's model.sha256), found ${sealedSha256}`,
        ),
      );
    }
    // The only check that the decrypted bytes are the sealed model: the enclave then hands the engine
    // header.plaintextSha256 as the expected digest, and the staged copy's digest is that same value
    // (enclave/service.ts), so no later comparison would catch a wrong plaintext.
    const plaintextSha256 = plainHash.digest("hex");
    if (plaintextSha256 !== header.plaintextSha256) {
      throw new SealedModelError(
        "SEALED_MODEL_PLAINTEXT_MISMATCH",
        `sealed model plaintextSha256: expected ${header.plaintextSha256} (its header), found ${plaintextSha256}`,
      );
    }
    await sink.close().catch((cause: unknown) => {
      throw new ModelIoError(output, "write", cause);
    });
    sink = null;
    return header;
  } catch (error) {
    if (sink !== null) await sink.close().catch(() => {});
    // Never a file this call did not create (output existed: "wx" refused it above).
    if (created) await rm(output, { force: true });
    throw error;
  } finally {
    fileKey?.fill(0);
    await sealedHash.close();
    await closeModelInput(source);
  }
}
