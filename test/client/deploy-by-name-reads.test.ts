/**
 * prepareDeployment (client/cli/deploy.ts, `cloister up --dir`) where no directory is held
 * (elsewhere than Linux, or without /proc: holdPrivateDirectory gives the path itself) reads an
 * earlier run's secrets by name, and so walks their paths as every reader of a secret by name does:
 * the directory's name, in a directory another user owns, may be their link by then. Their file
 * there is one of root's (a hard link, where fs.protected_hardlinks is off): owned as a key must
 * be, found only by the walk. The swap is made deterministic inside the call that makes `models`.
 * Tests run as root.
 */
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type Swap, theirDirectories } from "../helpers/foreign-link.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

const swap = vi.hoisted((): Swap => ({ dir: "", to: null }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { swapAtMkdir } = await import("../helpers/foreign-link.ts");
  return swapAtMkdir(real, "models", swap);
});

const { prepareDeployment } = await import("../../client/cli/deploy.ts");

let root: string;
testDirectoryEach("cloister-deploy-by-name-reads-", (dir) => {
  root = dir;
});
const platform = Object.getOwnPropertyDescriptor(process, "platform");
afterEach(() => {
  swap.to = null;
  if (platform !== undefined) Object.defineProperty(process, "platform", platform);
});

describe("prepareDeployment: no directory held, an earlier run's secret read by name", () => {
  it("walks its path: their directory in it is refused, their file not read", async () => {
    Object.defineProperty(process, "platform", { value: "darwin" });
    const [checkout, theirs] = await theirDirectories(fs, root, "checkout", "theirs");
    const dir = join(checkout, "deployments");
    const options = { dir, tee: "sim-snp" as const, threads: 1, progress: () => {} };
    await prepareDeployment(options);
    await fs.writeFile(join(theirs, "operator.private.jwk"), "{}\n", { mode: 0o600 });
    swap.dir = dir;
    swap.to = theirs;
    const refused = await prepareDeployment(options).then(
      () => "prepared",
      (error: Error) => error.message,
    );
    expect(swap.to).toBeNull(); // it was swapped
    expect(refused).toContain(join(dir, "operator.private.jwk"));
    expect(refused).toContain("uid 4244");
  });
});
