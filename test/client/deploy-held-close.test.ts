/**
 * prepareDeployment (client/cli/deploy.ts, `cloister up --dir`) writes everything through the
 * directory it holds open (holdPrivateDirectory), and closes it after. A close that fails after the
 * preparation failed must not hide that failure (output.ts closingAfter, as writeFileAtomically does
 * for each file it writes): the refusal is the one reported, not the close's error. The held directory's close
 * fails in a mock of private-directory.ts (after really closing); the preparation is refused on a
 * file where its `models` directory goes.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { testDirectoryEach } from "../helpers/test-directory.ts";

/** The error the held directory's close is to throw (after closing), or null; and its closes. */
const closing = vi.hoisted(() => ({ fails: null as Error | null, closes: 0 }));

vi.mock("../../client/cli/private-directory.ts", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../client/cli/private-directory.ts")>();
  const holdPrivateDirectory = (async (...args: Parameters<typeof real.holdPrivateDirectory>) => {
    const held = await real.holdPrivateDirectory(...args);
    return {
      path: held.path,
      close: async () => {
        closing.closes += 1;
        await held.close();
        if (closing.fails !== null) throw closing.fails;
      },
    };
  }) as typeof real.holdPrivateDirectory;
  return { ...real, holdPrivateDirectory };
});

const { prepareDeployment } = await import("../../client/cli/deploy.ts");

let dir = "";
testDirectoryEach("cloister-deploy-held-close-", (made) => {
  dir = made;
});
afterEach(() => {
  closing.fails = null;
  closing.closes = 0;
});

describe("prepareDeployment: the held directory's close that fails", () => {
  it("after a refusal, is dropped: the refusal is reported", async () => {
    const deployment = join(dir, "deployment");
    await mkdir(deployment, { mode: 0o700 });
    await writeFile(join(deployment, "models"), "not a directory\n");
    closing.fails = Object.assign(new Error("EIO: failed, close"), { code: "EIO" });
    const refused = await prepareDeployment({ dir: deployment, tee: "sim-snp", threads: 1, progress: () => {} }).then(
      () => null,
      (error: unknown) => error as Error & { code?: string },
    );
    expect(closing.closes).toBe(1);
    expect(refused).not.toBe(closing.fails);
    expect(refused?.code).toBe("USAGE");
    expect(refused?.message).toContain(`--dir ${join(deployment, "models")}`);
    expect(refused?.message).not.toContain("EIO");
  });
});
