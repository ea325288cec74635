/**
 * `cloister model inspect` with its input swapped for another GGUF file right after the input's
 * first open (node:fs/promises' open of it, wrapped here): the digest and size it prints describe
 * the file whose header it printed, the one first opened, read through that one handle. Hashed by
 * name again, the header would be one file's and the digest another's.
 */
import { createHash } from "node:crypto";
import { readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runInspect } from "../../models/cli-impl.ts";
import { oneTensorModel } from "../helpers/one-tensor-model.ts";
import { testDirectory } from "../helpers/test-directory.ts";

/** The file whose first open swaps it (set by the test), and what is put in its place. */
const swap = vi.hoisted(() => ({ file: null as string | null, done: false, by: async () => {} }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { swapAtFirstOpen } = await import("../helpers/swap-at-open.ts");
  return swapAtFirstOpen(real, swap);
});

const dir = await testDirectory("cloister-model-inspect-swap-");

afterEach(() => {
  swap.file = null;
  swap.done = false;
  vi.restoreAllMocks();
});

describe("cloister model inspect: the input swapped after its first open", () => {
  it("prints the parameters, digest and size of the one file opened", async () => {
    const input = join(dir, "model.gguf");
    const inspected = await oneTensorModel(input, 32);
    const other = join(dir, "other.gguf");
    const otherBytes = await oneTensorModel(other, 64);
    swap.file = input;
    swap.by = () => rename(other, input);
    let printed = "";
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      printed += String(chunk);
      return true;
    });
    await runInspect(input, true);
    vi.restoreAllMocks();
    expect(swap.done).toBe(true);
    expect(await readFile(input)).toEqual(otherBytes); // the swap was made
    const result = JSON.parse(printed) as { sha256: string; bytes: number; parameters: number };
    expect({ sha256: result.sha256, bytes: result.bytes, parameters: result.parameters }).toEqual({
      sha256: createHash("sha256").update(inspected).digest("hex"),
      bytes: inspected.length,
      parameters: 32,
    });
  });
});
