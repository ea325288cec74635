/**
 * prepareDeployment (client/cli/deploy.ts, `cloister up --dir`) reads an earlier run's secrets
 * through the directory it holds, without walking their paths: the directories below it that they
 * are in (kbs/, models/) are checked all the same. One anyone may write to lets anyone swap the
 * model key there (or remove it, and root writes a fresh one through their link). Tests run as root.
 */
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { prepareDeployment } from "../../client/cli/deploy.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

let root: string;
testDirectoryEach("cloister-deploy-held-subdirectory-", (dir) => {
  root = dir;
});

describe("prepareDeployment: a directory below --dir that others may write to", () => {
  for (const [name, mode, words] of [
    ["kbs", 0o777, "anyone may write to"],
    ["kbs", 0o1777, "anyone may write to"],
    ["models", 0o770, "may write to"],
  ] as const) {
    it(`refuses ${name} of mode ${mode.toString(8)} before reading or writing in it`, async () => {
      const dir = join(root, "deployments");
      const options = { dir, tee: "sim-snp" as const, threads: 1, progress: () => {}, sealedModel: true };
      await prepareDeployment(options);
      await fs.chmod(join(dir, name), mode);
      if (name === "models") await fs.chown(join(dir, name), 0, 4244);
      const keyBefore = await fs.readFile(join(dir, "kbs", "model-key.jwk"));
      const refused = await prepareDeployment(options).then(
        () => "prepared",
        (error: Error) => error.message,
      );
      expect(refused).toContain(`--dir ${join(dir, name)}`);
      expect(refused).toContain(words);
      expect((await fs.readFile(join(dir, "kbs", "model-key.jwk"))).equals(keyBefore)).toBe(true);
    });
  }
});
