/**
 * sealModelFile with overwrite: false, when the output appears while sealing (after its first look,
 * before link()): refused as MODEL_OUTPUT_EXISTS naming link()'s EEXIST (its cause), the file that
 * appeared left as it is and no partial file left. link() is a stand-in that writes the output first
 * (or, for an output named denied.sealed, fails with EACCES: MODEL_IO naming the sealed model output).
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, onTestFinished, vi } from "vitest";
import { generateModelKey, sealModelFile } from "../../models/sealed.ts";

vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs/promises")>();
  const link = async (existing: string, made: string) => {
    // A link() that fails otherwise (a directory made read-only meanwhile, say): EACCES.
    if (made.endsWith("denied.sealed")) throw Object.assign(new Error("permission denied"), { code: "EACCES" });
    await actual.writeFile(made, "appeared while sealing");
    return actual.link(existing, made);
  };
  return { ...actual, link, default: { ...actual, link } };
});

/** A model sealed, without overwrite, to `name` in a new directory (removed after the test). */
async function sealWithoutOverwrite(name: string) {
  const dir = await mkdtemp(join(tmpdir(), "cloister-sealed-race-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const input = join(dir, "model.gguf");
  await writeFile(input, Buffer.alloc(10_000, 7));
  const output = join(dir, name);
  const sealing = sealModelFile(input, output, generateModelKey("race.v1"), { chunkSize: 4096, overwrite: false });
  return { dir, output, sealing };
}

describe("sealModelFile: an output that appears while sealing", () => {
  it("is refused as MODEL_OUTPUT_EXISTS naming link()'s EEXIST, and kept", async () => {
    const { dir, output, sealing } = await sealWithoutOverwrite("model.sealed");
    await expect(sealing).rejects.toMatchObject({
      code: "MODEL_OUTPUT_EXISTS",
      message: `sealed model output ${output}: already exists (EEXIST); it is not replaced (cloister model seal --force replaces it)`,
      cause: { code: "EEXIST" },
    });
    expect(await readFile(output, "utf8")).toBe("appeared while sealing");
    expect((await readdir(dir)).sort()).toEqual(["model.gguf", "model.sealed"]);
  });

  it("a link() that fails otherwise is MODEL_IO naming the sealed model output, as the first look does", async () => {
    const { dir, output, sealing } = await sealWithoutOverwrite("denied.sealed");
    await expect(sealing).rejects.toMatchObject({
      code: "MODEL_IO",
      message: `sealed model output ${output}: cannot create (EACCES)`,
      cause: { code: "EACCES" },
    });
    expect(await readdir(dir)).toEqual(["model.gguf"]);
  });
});
