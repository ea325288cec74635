/**
 * prepareDeployment (client/cli/deploy.ts, `cloister up --dir`) writes the client policy, the
 * clients' trust root, naming the operator key that signs the manifest. An earlier run's directory
 * may have its name in a directory another user owns (root's `cloister up` in a checkout of uid
 * 4244's): once the operator's private key is read (its reader checks the file and its path), that
 * user may rename the directory away and put a link to a directory of theirs under its name, with
 * an operator.public.jwk of theirs in it. The key the policy trusts must be the operator's, whatever
 * is at the name then. The swap is made deterministic inside the open of operator.public.jwk.
 * Tests run as root.
 */
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

/** The directory to put aside and the directory of uid 4244's a link to which takes its name, or null. */
const swap = { dir: "", to: null as string | null };

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const open = (async (file: string, ...rest: unknown[]) => {
    const to = swap.to;
    if (to !== null && basename(String(file)) === "operator.public.jwk") {
      swap.to = null;
      await real.rename(swap.dir, `${swap.dir}-aside`);
      await real.symlink(to, swap.dir);
      await real.lchown(swap.dir, 4244, 4244);
    }
    return (real.open as (...args: unknown[]) => unknown)(file, ...rest);
  }) as typeof real.open;
  return { ...real, open, default: { ...real, open } };
});

const { prepareDeployment } = await import("../../client/cli/deploy.ts");
const { generateManifestSigningKey } = await import("../../manifests/sign.ts");

let root: string;
beforeEach(async () => {
  root = await fs.realpath(await fs.mkdtemp(join(tmpdir(), "cloister-deploy-operator-key-")));
});
afterEach(async () => {
  swap.to = null;
  await fs.rm(root, { recursive: true, force: true });
});

describe("prepareDeployment: an earlier run's directory swapped once its operator key is read", () => {
  it("trusts the operator's key in the policy, not an operator.public.jwk of theirs", async () => {
    const checkout = join(root, "checkout");
    const theirs = join(root, "theirs");
    for (const dir of [checkout, theirs]) {
      await fs.mkdir(dir, { mode: 0o755 });
      await fs.chown(dir, 4244, 4244);
    }
    const dir = join(checkout, "deployments");
    await prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {} });
    const operator = JSON.parse(await fs.readFile(join(dir, "operator.private.jwk"), "utf8"));
    const planted = join(theirs, "operator.public.jwk");
    await fs.writeFile(planted, JSON.stringify((await generateManifestSigningKey("EdDSA")).publicJwk));
    await fs.chown(planted, 4244, 4244);
    swap.dir = dir;
    swap.to = theirs;
    const files = await prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {} }).catch(() => null);
    expect(swap.to).toBeNull(); // it was swapped
    const trusted = (policy: { manifest: { trustedSigners: readonly { x?: string }[] } }) =>
      policy.manifest.trustedSigners.map((key) => key.x);
    if (files !== null) expect(trusted(files.policy as never)).toEqual([operator.x]);
    const written = JSON.parse(await fs.readFile(join(`${dir}-aside`, "policy.json"), "utf8"));
    expect(trusted(written)).toEqual([operator.x]);
  });
});
