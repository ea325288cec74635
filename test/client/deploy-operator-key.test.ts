/**
 * prepareDeployment (client/cli/deploy.ts, `cloister up --dir`) writes the client policy, the
 * clients' trust root, naming the operator key that signs the manifest. An earlier run's directory
 * may have its name in a directory another user owns (root's `cloister up` in a checkout of uid
 * 4244's): once the operator's private key is read (its reader checks the file and its path), that
 * user may rename the directory away and put a link to a directory of theirs under its name, with
 * an operator.public.jwk of theirs in it. The key the policy trusts must be the operator's, whatever
 * is at the name then. The swap is made deterministic inside the first open of operator.public.jwk
 * (a read of it, as the policy's key was once read) or of its temporary file (its write, made whole
 * and renamed into place), whichever comes first.
 * Tests run as root.
 */
import * as fs from "node:fs/promises";
import { basename, join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { theirDirectories } from "../helpers/foreign-link.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

/** The directory to put aside and the directory of uid 4244's a link to which takes its name, or null. */
const swap = { dir: "", to: null as string | null };

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith, swapForTheirLink } = await import("../helpers/foreign-link.ts");
  const open = (async (file: string, ...rest: unknown[]) => {
    const to = swap.to;
    // operator.public.jwk itself (a read: the swap must come before it), or its write's temporary
    // file beside it (writeFileAtomically).
    if (
      to !== null &&
      /^(operator\.public\.jwk|\.operator\.public\.jwk\.[0-9a-f]+\.tmp)$/.test(basename(String(file)))
    ) {
      swap.to = null;
      await swapForTheirLink(real, swap.dir, to);
    }
    return (real.open as (...args: unknown[]) => unknown)(file, ...rest);
  }) as typeof real.open;
  return fsWith(real, { open });
});

const { prepareDeployment } = await import("../../client/cli/deploy.ts");
const { generateManifestSigningKey } = await import("../../manifests/sign.ts");

let root: string;
testDirectoryEach("cloister-deploy-operator-key-", (dir) => {
  root = dir;
});
afterEach(() => {
  swap.to = null;
});

describe("prepareDeployment: an earlier run's directory swapped once its operator key is read", () => {
  it("trusts the operator's key in the policy, not an operator.public.jwk of theirs", async () => {
    const [checkout, theirs] = await theirDirectories(fs, root, "checkout", "theirs");
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
