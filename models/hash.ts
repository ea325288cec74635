/** Streaming SHA-256 of a model file (constant memory), as lower-case hex. */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
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
