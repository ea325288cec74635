/**
 * prepareDeployment (client/cli/deploy.ts, `cloister up --sealed-model`) keeps the sealed tiny model
 * an earlier run left when it still opens under the model key to the tiny model. Its header, digest
 * and size, and the bytes decrypted to check it, are of the one file opened: a file swapped in under
 * its name once it is opened (whoever may write to the directory: this user or root) is not the one
 * digested, nor the one checked. Before, each was read by name again (header, digest, size, unseal),
 * and a swap between two of them gave a digest of one file and a check of another. The swap is made
 * deterministic inside the open of the sealed file.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { testDirectoryEach } from "../helpers/test-directory.ts";

/** The sealed file whose first open puts `with` under its name (the file opened put aside), or null. */
const swap = vi.hoisted(() => ({ with: null as Buffer | null }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith } = await import("../helpers/foreign-link.ts");
  const open = (async (...args: Parameters<typeof real.open>) => {
    const handle = await real.open(...args);
    const bytes = swap.with;
    if (bytes !== null && typeof args[0] === "string" && args[0].endsWith(join("models", "tiny.gguf.sealed"))) {
      swap.with = null;
      await real.rename(args[0], `${args[0]}-aside`);
      await real.writeFile(args[0], bytes, { mode: 0o600 });
    }
    return handle;
  }) as typeof real.open;
  return fsWith(real, { open });
});

const { prepareDeployment } = await import("../../client/cli/deploy.ts");

let root: string;
testDirectoryEach("cloister-deploy-held-model-swap-", (dir) => {
  root = dir;
});
afterEach(() => {
  swap.with = null;
});

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** The model members of the manifest signed in `dir` (its payload, decoded unverified). */
async function manifestModel(dir: string): Promise<{ sha256?: string; sizeBytes?: number }> {
  const jws = await fs.readFile(join(dir, "manifest.jws"), "utf8");
  return JSON.parse(Buffer.from(jws.split(".")[1] ?? "", "base64url").toString("utf8")).model;
}

describe("prepareDeployment: the earlier run's sealed model swapped once opened", () => {
  it("digests and checks the file opened, not the one swapped in under its name", async () => {
    const dir = join(root, "deployment");
    const lines: string[] = [];
    const options = { dir, tee: "sim-snp" as const, threads: 1, progress: (line: string) => lines.push(line) };
    await prepareDeployment({ ...options, sealedModel: true });
    const sealedPath = join(dir, "models", "tiny.gguf.sealed");
    const opened = await fs.readFile(sealedPath);
    // The same size and header, its last byte (a chunk's tag) altered: it fails authentication.
    const altered = Buffer.from(opened);
    altered[altered.length - 1] = (altered[altered.length - 1] ?? 0) ^ 0xff;
    swap.with = altered;
    lines.length = 0;
    await prepareDeployment({ ...options, sealedModel: true });
    expect(swap.with).toBeNull(); // it was swapped
    expect(await fs.readFile(`${sealedPath}-aside`)).toEqual(opened);
    // Kept, as checked: the file opened, digested and decrypted whole, every chunk authenticated.
    expect(lines.filter((line) => line.includes("sealing it anew"))).toEqual([]);
    expect(await manifestModel(dir)).toMatchObject({ sha256: sha256(opened), sizeBytes: opened.length });
  });
});

describe("prepareDeployment: the line saying the earlier run's sealed model is sealed anew", () => {
  it("shows a --dir holding a line feed and an ESC escaped, as every line up writes (visibleOnOneLine)", async () => {
    const dir = join(root, "up\nfake line\u001b[2Jdir");
    const lines: string[] = [];
    const options = { dir, tee: "sim-snp" as const, threads: 1, progress: (line: string) => lines.push(line) };
    await prepareDeployment({ ...options, sealedModel: true });
    const sealedPath = join(dir, "models", "tiny.gguf.sealed");
    const altered = await fs.readFile(sealedPath);
    altered[altered.length - 1] = (altered[altered.length - 1] ?? 0) ^ 0xff;
    await fs.writeFile(sealedPath, altered);
    lines.length = 0;
    await prepareDeployment({ ...options, sealedModel: true });
    const shown = join(root, "up\\u000afake line\\u001b[2Jdir", "models", "tiny.gguf.sealed");
    expect(lines.filter((line) => line.includes("sealing it anew"))).toEqual([
      `${shown} does not open as the tiny model (SEALED_MODEL_AUTH_FAILED): sealing it anew`,
    ]);
  });
});
