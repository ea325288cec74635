/**
 * prepareDeployment (client/cli/deploy.ts writeWhole) writes a file it writes again (policy.json,
 * manifest.jws, …) into a temporary file beside it, renamed over the name. A file found at the name
 * with a narrower mode (0600) keeps its old text from anyone else's eyes: it is never widened nor
 * written to, only replaced, and the new file's mode (0644) is set while it is still empty. The
 * chmod of the handles opened on policy.json's temporary file is watched: the file's size then is 0.
 */
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { testDirectory } from "../helpers/test-directory.ts";

/** Each chmod of a handle opened on policy.json's temporary file: the mode given and the file's size then. */
const seen = vi.hoisted(() => [] as { mode: number; size: number }[]);

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith } = await import("../helpers/foreign-link.ts");
  const open = (async (path: string, ...rest: unknown[]) => {
    const handle = (await (real.open as (...args: unknown[]) => Promise<unknown>)(path, ...rest)) as fs.FileHandle;
    if (/\/\.policy\.json\.[0-9a-f]+\.tmp$/.test(String(path))) {
      const chmod = handle.chmod.bind(handle);
      handle.chmod = async (mode) => {
        seen.push({ mode: Number(mode), size: (await handle.stat()).size });
        return chmod(mode);
      };
    }
    return handle;
  }) as typeof real.open;
  return fsWith(real, { open });
});

const { prepareDeployment } = await import("../../client/cli/deploy.ts");

describe("prepareDeployment: a file it writes again, found with a narrower mode", () => {
  it("leaves that file's mode and text as they were, and writes the new one 0644 while empty", async () => {
    const dir = join(await testDirectory("cloister-deploy-again-mode-"), "deployment");
    await fs.mkdir(dir, { mode: 0o700 });
    const old = "text kept from others (mode 0600)\n";
    await fs.writeFile(join(dir, "policy.json"), old, { mode: 0o600 });
    // The old file itself, whatever is at its name afterwards.
    const earlier = await fs.open(join(dir, "policy.json"), "r");
    try {
      await prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {}, sealedModel: true });
      expect((await earlier.stat()).mode & 0o7777).toBe(0o600);
      expect(await earlier.readFile("utf8")).toBe(old);
    } finally {
      await earlier.close();
    }
    expect(seen).toEqual([{ mode: 0o644, size: 0 }]);
    expect((await fs.stat(join(dir, "policy.json"))).mode & 0o777).toBe(0o644);
    expect(JSON.parse(await fs.readFile(join(dir, "policy.json"), "utf8"))).toMatchObject({ version: 1 });
  });
});
