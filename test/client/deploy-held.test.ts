/**
 * prepareDeployment (client/cli/deploy.ts, `cloister up --dir`) writes keys, the model, the manifest
 * and the policy in a directory whose own name may be in a directory another user owns (root's
 * `cloister up` in a checkout of uid 4244's, allowed above the directory asked about): once that
 * directory is checked, that user may rename it away and put a link of theirs to a directory of
 * theirs under its name, and every write by name then goes where it leads (a file there a link to
 * any file of root's, truncated and rewritten). They must go to the directory checked, whatever is
 * at its name. The swap is made deterministic inside the call that makes its `models` directory.
 * Tests run as root.
 */
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
testDirectoryEach("cloister-deploy-held-", (dir) => {
  root = dir;
});
afterEach(() => {
  swap.to = null;
});

describe("prepareDeployment: its directory swapped for a link of another user's once checked", () => {
  it("writes nothing where the link leads, all in the directory checked", async () => {
    const [checkout, theirs] = await theirDirectories(fs, root, "checkout", "theirs");
    swap.dir = join(checkout, "deployments");
    swap.to = theirs;
    await prepareDeployment({ dir: swap.dir, tee: "sim-snp", threads: 1, progress: () => {} }).catch(() => null);
    expect(swap.to).toBeNull(); // it was swapped
    expect(await fs.readdir(theirs)).toEqual([]);
    const kept = await fs.readdir(`${swap.dir}-aside`);
    expect(kept).toEqual(expect.arrayContaining(["models", "manifest.jws", "policy.json", "api-key"]));
  });
});

describe("prepareDeployment: an earlier run's secret refused once its directory was swapped", () => {
  it("tells to chmod the file checked (where the directory held is now), not the path by name", async () => {
    const [checkout, theirs] = await theirDirectories(fs, root, "checkout", "theirs");
    swap.dir = join(checkout, "deployments");
    await prepareDeployment({ dir: swap.dir, tee: "sim-snp", threads: 1, progress: () => {} });
    await fs.chmod(join(swap.dir, "operator.private.jwk"), 0o644);
    swap.to = theirs;
    const refused = await prepareDeployment({ dir: swap.dir, tee: "sim-snp", threads: 1, progress: () => {} }).then(
      () => "prepared",
      (error: Error) => error.message,
    );
    expect(swap.to).toBeNull(); // it was swapped
    const checked = join(`${swap.dir}-aside`, "operator.private.jwk");
    expect(refused).toContain(`found 0644; run chmod 600 ${checked}`);
    expect(refused).not.toContain(`chmod 600 ${join(swap.dir, "operator.private.jwk")}`);
  });
});
