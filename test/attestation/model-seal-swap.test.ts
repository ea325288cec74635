/**
 * `cloister model seal` with its input swapped for another GGUF file right after the input's first
 * open (node:fs/promises' open of it, wrapped here): every field it prints (the parameters counted
 * from the header, the plaintext's digest and size, the sealed file's) describes the bytes sealed,
 * the file first opened, read through that one handle. Read by name again, the parameters would be
 * one file's and the digest and the seal another's.
 */
import { createHash } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runModelSeal } from "../../attestation/kbs/cli-impl.ts";
import { generateModelKey, modelKeyToJwk } from "../../models/sealed.ts";
import { oneTensorModel } from "../helpers/one-tensor-model.ts";
import { testDirectory } from "../helpers/test-directory.ts";

/** The file whose first open swaps it (set by the test), and what is put in its place. */
const swap = vi.hoisted(() => ({ file: null as string | null, done: false, by: async () => {} }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { swapAtFirstOpen } = await import("../helpers/swap-at-open.ts");
  return swapAtFirstOpen(real, swap);
});

const dir = await testDirectory("cloister-model-seal-swap-");

afterEach(() => {
  swap.file = null;
  swap.done = false;
  vi.restoreAllMocks();
});

describe("cloister model seal: the input swapped after its first open", () => {
  it("prints the parameters, digest and size of the file sealed, all from the one handle", async () => {
    const input = join(dir, "model.gguf");
    const sealed = await oneTensorModel(input, 32);
    const other = join(dir, "other.gguf");
    const otherBytes = await oneTensorModel(other, 64);
    const keyFile = join(dir, "seal.jwk");
    await writeFile(keyFile, JSON.stringify(modelKeyToJwk(generateModelKey("swap-v1"))), { mode: 0o600 });
    swap.file = input;
    swap.by = () => rename(other, input);
    let printed = "";
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      printed += String(chunk);
      return true;
    });
    await runModelSeal(input, join(dir, "model.sealed"), { key: keyFile, json: true });
    vi.restoreAllMocks();
    expect(swap.done).toBe(true);
    expect(await readFile(input)).toEqual(otherBytes); // the swap was made
    const result = JSON.parse(printed) as {
      plaintextSha256: string;
      plaintextSize: number;
      manifestModel: { parameters: number };
    };
    expect({
      plaintextSha256: result.plaintextSha256,
      plaintextSize: result.plaintextSize,
      parameters: result.manifestModel.parameters,
    }).toEqual({
      plaintextSha256: createHash("sha256").update(sealed).digest("hex"),
      plaintextSize: sealed.length,
      parameters: 32,
    });
  });
});
