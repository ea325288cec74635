/**
 * docs/deploy.md, step 6, "A new model": an operator upgrading the model must change three files and
 * a running broker in an order, or the new enclaves are refused the key (the broker's release policy
 * lacks the digest) or refused by clients (theirs does). The page once said only that "a new model or
 * manifest changes the model digest the policies pin", which gave no order and was wrong for a
 * manifest (the policies pin the model's digest, not the manifest's). So the paragraph must name the
 * steps in the order they work: seal, sign, the policies' digest (each `cloister proxy` restarted, as
 * it reads its --policy at start only), `kbs check`, the broker's restart, the enclaves' replacement,
 * the old digest's removal (the broker and the proxies restarted again).
 *
 * It also says sealing again, even the same weights under the same key, gives a new digest (so a
 * re-sealed model is a new model to the policies): checked by sealing one model twice.
 */

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT, runCloister } from "../helpers/cli.ts";
import { oneTensorModel } from "../helpers/one-tensor-model.ts";
import { stepsOutOfOrder } from "../helpers/steps-in-order.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const DEPLOY = join(REPO_ROOT, "docs", "deploy.md");

/** The paragraph of step 6 that begins "**A new model.**", joined into one line. */
function newModelParagraph(markdown: string): string {
  const step = markdown.slice(markdown.indexOf("\n## 6. "));
  const start = step.indexOf("\n**A new model.**");
  if (start < 0) throw new Error('docs/deploy.md step 6: expected a paragraph beginning "**A new model.**"');
  const end = step.indexOf("\n\n", start + 1);
  return step.slice(start, end < 0 ? undefined : end).replace(/\s+/g, " ");
}

/** The steps of a model upgrade, in the order they must be done. */
const STEPS = [
  "`model seal`",
  "`manifest sign`",
  "add the new digest to the broker's release policy and to the clients' policies",
  // A proxy reads its --policy at start only: one not restarted refuses the new enclaves.
  "restart each `cloister proxy`",
  "`cloister kbs check --config kbs.json`",
  "restart the broker",
  "replace the enclaves one at a time",
  "remove the old digest from both policies",
  "restart the broker and the proxies again",
] as const;

describe("docs/deploy.md step 6, a new model", () => {
  it("names the steps of a model upgrade in the order they work", () => {
    expect(stepsOutOfOrder(newModelParagraph(readFileSync(DEPLOY, "utf8")), STEPS)).toEqual([]);
  });

  it("tells a step named before the one it follows", () => {
    const text = "`model seal`, `manifest sign`; restart the broker after you add the new digest to …";
    expect(stepsOutOfOrder(text, ["`model seal`", "add the new digest", "restart the broker"])).toEqual([
      "restart the broker",
    ]);
  });

  it("is right that sealing the same model again under the same key gives a new digest", async () => {
    const dir = await testDirectory("deploy-reseal-");
    const model = join(dir, "llama-8b.gguf");
    const key = join(dir, "llama-8b-v1.jwk");
    await oneTensorModel(model, 64);
    const keygen = await runCloister(["kbs", "keygen", "--key-id", "llama-8b-v1", "--out", key]);
    expect(keygen.code, keygen.stderr).toBe(0);
    const digests: string[] = [];
    for (const out of ["first.sealed", "second.sealed"]) {
      const seal = await runCloister(["model", "seal", "--key", key, model, join(dir, out)]);
      expect(seal.code, seal.stderr).toBe(0);
      digests.push(
        createHash("sha256")
          .update(readFileSync(join(dir, out)))
          .digest("hex"),
      );
    }
    expect(digests[0]).not.toBe(digests[1]);
  });
});
