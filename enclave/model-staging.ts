/**
 * Model staging: before the engine hashes and loads a model, the enclave copies it into private
 * memory (a fresh 0700 directory on tmpfs, /dev/shm, which lives in the CVM's encrypted memory),
 * and the engine then hashes, checks and loads *that copy*. llama.cpp reads a model by path, so
 * without this a host that can write the disk could swap bytes between the digest check and the
 * load (or under later page faults of a memory-mapped file). The copy is removed on shutdown.
 * Without /dev/shm (not Linux) the OS temp directory is used, and SECURITY.md's advice (keep the
 * model on an integrity-protected volume) applies.
 */
import { copyFile, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { EngineError } from "./engine/errors.ts";

export interface StagedModel {
  readonly path: string;
  remove(): Promise<void>;
}

async function privateRoot(): Promise<string> {
  const shm = await stat("/dev/shm").then(
    (s) => s.isDirectory(),
    () => false,
  );
  return shm ? "/dev/shm" : tmpdir();
}

export async function stageModel(source: string): Promise<StagedModel> {
  const info = await stat(source).catch((error: unknown) => {
    const code = (error as { code?: unknown }).code;
    throw new EngineError(
      "MODEL_NOT_FOUND",
      code === "ENOENT" ? `model file ${source}: not found` : `model file ${source}: cannot be read (${String(code)})`,
      { cause: error },
    );
  });
  if (!info.isFile()) throw new EngineError("MODEL_NOT_FOUND", `model file ${source}: expected a regular file`);
  const dir = await mkdtemp(join(await privateRoot(), "cloister-model-"));
  const path = join(dir, basename(source));
  try {
    await copyFile(source, path);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new EngineError("MODEL_LOAD_FAILED", `model file ${source}: cannot be copied into private memory`, {
      cause: error,
    });
  }
  return { path, remove: () => rm(dir, { recursive: true, force: true }) };
}
