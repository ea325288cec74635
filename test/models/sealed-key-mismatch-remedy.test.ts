/**
 * A sealed file whose header names another key id than the manifest's model.keyId (the operator gave
 * the enclave the file sealed under one key with a manifest written for another) is refused before the
 * key broker is asked, SEALED_MODEL_KEY_MISMATCH. The refusal named both ids but not what to do; an
 * operator walking docs/deploy.md step 6 (rotating the model key) meets it when the manifest and the
 * sealed file of two rotations are mixed. So it names the header as where the found id was read, and the
 * two ways out: the file the manifest names, or a manifest made from this file's `model seal` line.
 * Never the key: checked on a file sealed under a key whose bytes are known.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  checkSealedModelHeader,
  generateModelKey,
  parseSealedModelHeader,
  SealedModelError,
  sealModelFile,
} from "../../models/sealed.ts";
import { testDirectory } from "../helpers/test-directory.ts";

describe("a sealed file under another key id than the manifest's", () => {
  it("names the field, both ids, where the found one was read and what to do, never the key", async () => {
    const dir = await testDirectory("cloister-sealed-remedy-");
    const input = join(dir, "model.gguf");
    const output = join(dir, "model.gguf.sealed");
    await writeFile(input, Buffer.alloc(10000, 7));
    const key = generateModelKey("llama-8b-v2");
    const info = await sealModelFile(input, output, key, { chunkSize: 4096 });
    const header = parseSealedModelHeader(await readFile(output));
    let refused: unknown;
    try {
      checkSealedModelHeader(header, { keyId: "llama-8b-v1", sizeBytes: info.sizeBytes });
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(SealedModelError);
    const { code, message } = refused as SealedModelError;
    expect(code).toBe("SEALED_MODEL_KEY_MISMATCH");
    expect(message).toContain(`sealed model keyId: expected "llama-8b-v1" (the manifest's model.keyId)`);
    expect(message).toContain(`found "llama-8b-v2" in the file's header`);
    expect(message).toContain("give --model the file the manifest's model names");
    expect(message).toContain("the model line cloister model seal printed for this file and sign it again");
    expect(message).not.toContain(Buffer.from(key.key).toString("base64url"));
    expect(message).not.toContain(Buffer.from(key.key).toString("hex"));
  });
});
