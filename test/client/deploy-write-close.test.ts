/**
 * prepareDeployment (client/cli/deploy.ts writeWhole) closes each file it writes (the temporary file
 * beside it, writeFileAtomically). A close that fails after a write that failed is dropped: the
 * write's error is the one reported (the refusal's cause), not replaced by the close's. A close that
 * fails after a good write is reported: the text may not have been written.
 * A handle's close is a field of each handle (not of FileHandle's prototype), so it is wrapped
 * through node:fs/promises' open, mocked, for the handles opened to write policy.json; so is writeFile.
 */
import type * as fs from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { testDirectory } from "../helpers/test-directory.ts";

/** What a write of policy.json is to fail with (writeFile, then close, after really closing), and its closes. */
const failing = vi.hoisted(() => ({ write: null as Error | null, close: null as Error | null, closes: 0 }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith } = await import("../helpers/foreign-link.ts");
  const open = (async (path: string, flags: unknown, ...rest: unknown[]) => {
    const handle = (await (real.open as (...args: unknown[]) => Promise<unknown>)(
      path,
      flags,
      ...rest,
    )) as fs.FileHandle;
    const writing = typeof flags === "number" && (flags & real.constants.O_WRONLY) !== 0;
    if (writing && /\/\.policy\.json\.[0-9a-f]+\.tmp$/.test(String(path))) {
      const writeFile = handle.writeFile.bind(handle);
      handle.writeFile = async (...args: Parameters<fs.FileHandle["writeFile"]>) => {
        if (failing.write !== null) throw failing.write;
        return writeFile(...args);
      };
      const close = handle.close.bind(handle);
      handle.close = async () => {
        failing.closes += 1;
        await close();
        if (failing.close !== null) throw failing.close;
      };
    }
    return handle;
  }) as typeof real.open;
  return fsWith(real, { open });
});

const { prepareDeployment } = await import("../../client/cli/deploy.ts");

afterEach(() => {
  failing.write = null;
  failing.close = null;
  failing.closes = 0;
});

const errno = (code: string, call: string) => Object.assign(new Error(`${code}: failed, ${call}`), { code });

/** prepareDeployment in a fresh directory, as `cloister up --sealed-model` runs it: what it was refused with. */
async function refusal(name: string): Promise<unknown> {
  const dir = join(await testDirectory(`cloister-deploy-write-close-${name}-`), "deployment");
  return prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {}, sealedModel: true }).then(
    () => null,
    (error: unknown) => error,
  );
}

describe("prepareDeployment: a written file's close that fails", () => {
  it("after a write that failed, is dropped: the write's error is reported", async () => {
    failing.write = errno("ENOSPC", "write");
    failing.close = errno("EIO", "close");
    const refused = (await refusal("both")) as Error;
    expect(refused.cause).toBe(failing.write);
    expect(refused.message).toMatch(/^cloister up: file to write \S+\/policy\.json: cannot write \(ENOSPC/);
    expect(failing.closes).toBe(1);
  });

  it("after a good write, is reported (the text may not have been written)", async () => {
    failing.close = errno("EIO", "close");
    const refused = (await refusal("close")) as Error;
    expect(refused.cause).toBe(failing.close);
    expect(refused.message).toMatch(/^cloister up: file to write \S+\/policy\.json: cannot write \(EIO/);
    expect(failing.closes).toBe(1);
  });
});
