/** Streaming SHA-256 of a model file (constant memory), as lower-case hex. */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { ModelIoError } from "./errors.ts";

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  } catch (cause) {
    throw new ModelIoError(path, "read", cause);
  }
  return hash.digest("hex");
}

/**
 * Streaming SHA-256 of the first `size` bytes of an open file (`handle`, read at offsets through
 * `buffer`; fewer when it ends sooner), as lower-case hex; `path` names it in a read error.
 */
export async function sha256Handle(handle: FileHandle, path: string, size: number, buffer: Buffer): Promise<string> {
  const hash = createHash("sha256");
  for (let at = 0; at < size; ) {
    const length = Math.min(buffer.length, size - at);
    const { bytesRead } = await handle.read(buffer, 0, length, at).catch((cause: unknown) => {
      throw new ModelIoError(path, "read", cause);
    });
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    at += bytesRead;
  }
  return hash.digest("hex");
}
