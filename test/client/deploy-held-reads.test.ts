/**
 * prepareDeployment (client/cli/deploy.ts, `cloister up --dir`) reuses what an earlier run left in
 * its directory (the operator key, the API key, the model key and the sealed model). That
 * directory's name may be in a directory another user owns (root's `cloister up` in a checkout of
 * uid 4244's), who may swap it for a link to a directory of theirs once it is checked and held. The
 * earlier run's files must then be found and read in the directory held, not where the link leads:
 * else root makes fresh keys there (the operator's key lost, every client policy changed). The swap
 * is made deterministic inside the call that makes its `models` directory. Tests run as root.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type Swap, theirDirectories } from "../helpers/foreign-link.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

/** The directory to put aside and the directory of uid 4244's a link to which takes its name, or null. */
const swap = vi.hoisted((): Swap => ({ dir: "", to: null }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { swapAtMkdir } = await import("../helpers/foreign-link.ts");
  return swapAtMkdir(real, "models", swap);
});

const { prepareDeployment } = await import("../../client/cli/deploy.ts");

let root: string;
testDirectoryEach("cloister-deploy-held-reads-", (dir) => {
  root = dir;
});
afterEach(() => {
  swap.to = null;
});

/** The files of a run that must stay the same on the next one. */
const KEPT = ["operator.private.jwk", "api-key", join("kbs", "model-key.jwk"), join("models", "tiny.gguf.sealed")];

/** Their SHA-256 digests in `dir` (not their bytes: a failure would print keys and a model). */
const read = async (dir: string) =>
  Promise.all(
    KEPT.map(async (name) =>
      createHash("sha256")
        .update(await fs.readFile(join(dir, name)))
        .digest("hex"),
    ),
  );

describe("prepareDeployment: an earlier run's directory swapped once held", () => {
  it("reuses the earlier run's keys and sealed model from the directory held", async () => {
    const [checkout, theirs] = await theirDirectories(fs, root, "checkout", "theirs");
    const dir = join(checkout, "deployments");
    const options = { dir, tee: "sim-snp" as const, threads: 1, progress: () => {}, sealedModel: true };
    await prepareDeployment(options);
    const before = await read(dir);
    swap.dir = dir;
    swap.to = theirs;
    await prepareDeployment(options);
    expect(swap.to).toBeNull(); // it was swapped
    expect(await fs.readdir(theirs)).toEqual([]);
    expect(await read(`${dir}-aside`)).toEqual(before);
  });
});
