/**
 * Model staging: before the engine hashes and loads a model, the enclave copies it into private
 * memory (a fresh 0700 directory on tmpfs, /dev/shm, which lives in the CVM's encrypted memory),
 * and the engine then hashes, checks and loads *that copy*. llama.cpp reads a model by path, so
 * without this a host that can write the disk could swap bytes between the digest check and the
 * load (or under later page faults of a memory-mapped file). The copy is removed on shutdown.
 * Without /dev/shm (not Linux) the OS temp directory is used, and SECURITY.md's advice (keep the
 * model on an integrity-protected volume) applies.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, open, rm, stat, statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { pipeline } from "node:stream/promises";
import {
  checkSealedModelHeader,
  type ModelKey,
  readSealedHeader,
  SealedModelError,
  type SealedModelExpectation,
  unsealModelFile,
} from "../models/sealed.ts";
import { EngineError, modelNotFound } from "./engine/errors.ts";

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
 * Whether `path` is a directory on a memory-backed file system (tmpfs or ramfs): in a CVM, memory
 * the host cannot read. A /dev/shm that is a directory on a disk (a bind mount) is not.
 */
export async function isPrivateMemoryDirectory(path: string): Promise<boolean> {
  const directory = await stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!directory) return false;
  return statfs(path).then(
    (s) => MEMORY_FILE_SYSTEMS.has(s.type),
    () => false,
  );
}

async function privateRoot(): Promise<string> {
  return (await isPrivateMemoryDirectory("/dev/shm")) ? "/dev/shm" : tmpdir();
}

function sizeMismatch(source: string, expectedBytes: number, found: number): EngineError {
  return new EngineError(
    "MODEL_SIZE_MISMATCH",
    `model file ${source}: expected ${expectedBytes} bytes (the manifest's model.sizeBytes), found ${found}; not loaded`,
  );
}

/**
 * The boot's first look at the --model file, before anything slow (evidence, the key broker, the
 * copy): it opens for reading and is a regular file of the manifest's size (MODEL_NOT_FOUND,
 * MODEL_SIZE_MISMATCH); sealed (`expected.keyId` set), its header parses and is the manifest's
 * (SealedModelError: SEALED_MODEL_MALFORMED, SEALED_MODEL_KEY_MISMATCH). Only a refusal counts:
 * staging reads and checks every byte again, as the file may change meanwhile.
 */
export async function checkModelFile(
  source: string,
  expected: { readonly sizeBytes: number; readonly keyId: string | null },
): Promise<void> {
  const handle = await open(source, "r").catch((error: unknown) => {
    throw modelNotFound(source, error);
  });
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw modelNotFound(source);
    if (info.size !== expected.sizeBytes) throw sizeMismatch(source, expected.sizeBytes, info.size);
    if (expected.keyId !== null) {
      const header = await readSealedHeader(handle, info.size);
      checkSealedModelHeader(header, { keyId: expected.keyId, sizeBytes: expected.sizeBytes });
    }
  } finally {
    await handle.close();
  }
}

/**
 * `expectedBytes`: the manifest's size. A file of another size is refused before anything is
 * copied, and at most one byte more than that is ever copied (a file the host grows meanwhile
 * cannot fill the private memory); the digest check happens on the copy afterwards.
 */
export async function stageModel(source: string, expectedBytes: number): Promise<StagedModel> {
  const info = await stat(source).catch((error: unknown) => {
    throw modelNotFound(source, error);
  });
  if (!info.isFile()) throw modelNotFound(source);
  if (info.size !== expectedBytes) throw sizeMismatch(source, expectedBytes, info.size);
  const dir = await mkdtemp(join(await privateRoot(), "cloister-model-"));
  const path = join(dir, basename(source));
  const hash = createHash("sha256");
  try {
    // `end` is inclusive: one byte past the expected size is enough to see a file that grew.
    await pipeline(
      createReadStream(source, { start: 0, end: expectedBytes, highWaterMark: 1 << 20 }),
      async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(path, { mode: 0o600 }),
    );
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new EngineError("MODEL_LOAD_FAILED", `model file ${source}: cannot be copied into private memory`, {
      cause: error,
    });
  }
  const copied = (await stat(path)).size;
  if (copied !== expectedBytes) {
    await rm(dir, { recursive: true, force: true });
    throw sizeMismatch(source, expectedBytes, copied);
  }
  return { path, sha256: hash.digest("hex"), remove: () => rm(dir, { recursive: true, force: true }) };
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
  options: { readonly allowDisk: boolean; readonly privateRoot?: () => Promise<string> },
): Promise<StagedModel> {
  const root = await (options.privateRoot ?? privateRoot)();
  // Decrypted weights go to memory only: without /dev/shm the temp directory may be a disk the
  // host can read, so a real TEE refuses (the simulator, a development tool, may use it).
  if (root !== "/dev/shm" && !options.allowDisk) {
    throw new SealedModelError(
      "MODEL_NO_PRIVATE_MEMORY",
      "sealed model: /dev/shm is missing or not a tmpfs to decrypt into; refusing to write decrypted weights to a disk",
    );
  }
  const dir = await mkdtemp(join(root, "cloister-model-"));
  const path = join(dir, "model.gguf");
  try {
    const header = await unsealModelFile(source, path, modelKey, expected);
    return {
      path,
      // unsealModelFile hashed the plaintext as it wrote it and checked it against this digest.
      sha256: header.plaintextSha256,
      remove: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
