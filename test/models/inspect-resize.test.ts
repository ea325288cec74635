/**
 * `cloister model inspect` with its input grown or cut in place (the same file, written to) right
 * after its header was read, before it was hashed: refused MODEL_CHANGED, naming the file and both
 * sizes, never printed with a digest of part of the file (cut: of what was left; grown: of its
 * first bytes only) under the header's size.
 */
import { appendFile, truncate } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { inspectModel } from "../../models/inspect.ts";
import { oneTensorModel } from "../helpers/one-tensor-model.ts";
import { testDirectory } from "../helpers/test-directory.ts";

/** What is done to the file once its header has been read (set by the test). */
const change = vi.hoisted(() => ({ by: null as null | ((path: string) => Promise<void>), done: false }));

vi.mock("../../models/gguf-read.ts", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../models/gguf-read.ts")>();
  return {
    ...real,
    readGgufHandle: async (...args: Parameters<typeof real.readGgufHandle>) => {
      const file = await real.readGgufHandle(...args);
      if (change.by !== null && !change.done) {
        change.done = true;
        await change.by(args[1]);
      }
      return file;
    },
  };
});

const dir = await testDirectory("cloister-model-inspect-resize-");

afterEach(() => {
  change.by = null;
  change.done = false;
});

describe("cloister model inspect: the input resized after its header was read", () => {
  for (const [what, by, delta] of [
    ["grown", (path: string) => appendFile(path, Buffer.alloc(100, 1)), 100],
    ["cut", (path: string) => truncate(path, 0).then(() => undefined), null],
  ] as const) {
    it(`${what}: MODEL_CHANGED, naming both sizes, no summary`, async () => {
      const input = join(dir, `${what}.gguf`);
      const bytes = (await oneTensorModel(input, 64)).length;
      change.by = by;
      const found = delta === null ? 0 : bytes + delta;
      await expect(inspectModel(input)).rejects.toMatchObject({
        code: "MODEL_CHANGED",
        message: `model file ${input}: changed while being read: expected ${bytes} bytes, found ${found}`,
      });
      expect(change.done).toBe(true);
    });
  }

  it("unchanged: the summary, of the header's size", async () => {
    const input = join(dir, "same.gguf");
    const bytes = (await oneTensorModel(input, 64)).length;
    change.by = async () => {};
    expect(await inspectModel(input)).toMatchObject({ bytes });
    expect(change.done).toBe(true);
  });
});
