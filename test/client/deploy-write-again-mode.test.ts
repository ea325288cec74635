/**
 * prepareDeployment (client/cli/deploy.ts) writes a file it writes again (writePublic: policy.json,
 * manifest.jws, …) without O_TRUNC, to check on the file opened that it is a regular file before
 * emptying it. Its mode (0644) must still be set on an empty file: a file found at the name with a
 * narrower mode (0600) keeps its old text from anyone else's eyes, as the open's O_TRUNC did, until
 * that text is gone. The chmod of the handle is watched here: the file's size when it runs is 0.
 */
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { testDirectory } from "../helpers/test-directory.ts";

/** Each chmod of a handle opened on a file named policy.json: the mode given and the file's size then. */
const seen = vi.hoisted(() => [] as { mode: number; size: number }[]);

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith } = await import("../helpers/foreign-link.ts");
  const open = (async (path: string, ...rest: unknown[]) => {
    const handle = (await (real.open as (...args: unknown[]) => Promise<unknown>)(path, ...rest)) as fs.FileHandle;
    if (String(path).endsWith("/policy.json")) {
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
  it("empties it before widening its mode to 0644", async () => {
    const dir = join(await testDirectory("cloister-deploy-again-mode-"), "deployment");
    await fs.mkdir(dir, { mode: 0o700 });
    await fs.writeFile(join(dir, "policy.json"), "text kept from others (mode 0600)\n", { mode: 0o600 });
    await prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {}, sealedModel: true });
    expect(seen).toEqual([{ mode: 0o644, size: 0 }]);
    expect((await fs.stat(join(dir, "policy.json"))).mode & 0o777).toBe(0o644);
    expect(JSON.parse(await fs.readFile(join(dir, "policy.json"), "utf8"))).toMatchObject({ version: 1 });
  });
});
