/**
 * prepareDeployment (client/cli/deploy.ts, `cloister up --dir`) reads an earlier run's secrets
 * through the directory it holds, without walking their paths; a directory below it (kbs/, models/)
 * that is a symbolic link leads out of the directory held: the reads and writes in it go wherever
 * its target's path leads, by name, unwalked. Here the link is root's own, to a directory of root's
 * (0700) inside uid 4244's checkout, which they may rename away and replace with theirs at any
 * moment after a check of the target: such a link is refused, as the walk before deploy35 refused
 * a path through it. Tests run as root.
 */
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { prepareDeployment } from "../../client/cli/deploy.ts";
import { theirDirectories } from "../helpers/foreign-link.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

let root: string;
testDirectoryEach("cloister-deploy-held-link-", (dir) => {
  root = dir;
});

describe("prepareDeployment: a directory below --dir that is a symbolic link", () => {
  for (const name of ["kbs", "models"] as const) {
    it(`refuses ${name} as a link to a directory in another user's, before reading or writing in it`, async () => {
      const dir = join(root, "deployments");
      const options = { dir, tee: "sim-snp" as const, threads: 1, progress: () => {}, sealedModel: true };
      await prepareDeployment(options);
      const [checkout] = await theirDirectories(fs, root, "checkout");
      const moved = join(checkout, name);
      await fs.rename(join(dir, name), moved);
      await fs.symlink(moved, join(dir, name));
      const listed = async () => (await fs.readdir(moved)).sort();
      const before = await listed();
      const refused = await prepareDeployment(options).then(
        () => "prepared",
        (error: Error) => error.message,
      );
      expect(refused).toContain(`--dir ${join(dir, name)}`);
      expect(refused).toContain("a symbolic link");
      expect(await listed()).toEqual(before);
    });
  }
});
