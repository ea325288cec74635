/**
 * docs/deploy.md, step 6, "Rotating the operator's signing key" and "Rotating the model key": an operator
 * rotating either key (due, or leaked) must change clients, the broker and the enclaves in an order, or
 * requests fail: a client whose policy lacks the new signer refuses every enclave signed by it, a broker
 * lacking the new key or digest refuses the enclaves the key. The page once gave each rotation one list
 * item, with no "every client first", no removal of the old model key from the broker, nothing on
 * deleting the old keys, and no word on what a leaked key exposes. So each section must name its steps in
 * the order they work, and the program must do what they say: `manifest keygen` refuses to overwrite a key
 * file, `manifest verify` (as a client and the enclave do) refuses a manifest signed by the new key under
 * the old alone, naming both kids, and accepts it when both keys are trusted.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT, runCloister } from "../helpers/cli.ts";
import { stepsOutOfOrder } from "../helpers/steps-in-order.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const DEPLOY = join(REPO_ROOT, "docs", "deploy.md");

/** The section of step 6 that begins with the bold lead `title`, up to the next bold lead, joined into one line. */
function section(markdown: string, title: string): string {
  const step = markdown.slice(markdown.indexOf("\n## 6. "));
  const start = step.indexOf(`\n**${title}**`);
  if (start < 0) throw new Error(`docs/deploy.md step 6: expected a section beginning "**${title}**"`);
  const end = step.slice(start + 1).search(/\n\n(?:\*\*|Upgrading Cloister)/);
  return step.slice(start, end < 0 ? undefined : start + 1 + end).replace(/\s+/g, " ");
}

const SIGNER_STEPS = [
  "`MANIFEST_SIGNATURE_INVALID`",
  "`cloister manifest keygen` a new pair",
  "--operator-key keys/operator.public.jwk \\ --operator-key keys/operator-2.public.jwk",
  "'.manifest.trustedSigners += $k' policy.json",
  "Add it to every client's policy",
  "restart each `cloister proxy`",
  "to the broker's release policy",
  "`cloister kbs check --config kbs.json`",
  "restart the broker",
  "Wait until every client has the new policy",
  "`cloister manifest sign` the manifest with the new private key",
  "replace the enclaves one at a time",
  "Remove the old key from the clients' and the release policy's `trustedSigners`",
  "delete the old private key",
  "If the old key leaked",
] as const;

const MODEL_KEY_STEPS = [
  "`cloister kbs keygen --key-id llama-8b-v2",
  "`SEALED_MODEL_AUTH_FAILED`",
  "`cloister model seal --key keys/llama-8b-v2.jwk",
  "`cloister manifest sign`",
  "Add the new key to the broker's `keys`",
  "`allowedModelDigests`",
  "restart each `cloister proxy`",
  "`cloister kbs check --config kbs.json`",
  "restart the broker",
  "Replace the enclaves one at a time",
  "Remove the old key from the broker's `keys` and the old digest from both policies",
  "`KBS_KEY_UNKNOWN`",
  "`shred -u` it",
  "if the old key leaked, the weights did too",
] as const;

describe("docs/deploy.md step 6, rotating keys", () => {
  const markdown = readFileSync(DEPLOY, "utf8");

  it("names the steps of a signing-key rotation in the order they work", () => {
    expect(stepsOutOfOrder(section(markdown, "Rotating the operator's signing key."), SIGNER_STEPS)).toEqual([]);
  });

  it("names the steps of a model-key rotation in the order they work", () => {
    expect(stepsOutOfOrder(section(markdown, "Rotating the model key."), MODEL_KEY_STEPS)).toEqual([]);
  });

  it("tells a step named before the one it follows", () => {
    const text = "replace the enclaves one at a time, then Add it to every client's policy";
    expect(stepsOutOfOrder(text, ["Add it to every client's policy", "replace the enclaves one at a time"])).toEqual([
      "replace the enclaves one at a time",
    ]);
  });

  it("is right that a client trusting only the old signer refuses the new signature, naming both kids", async () => {
    const dir = await testDirectory("deploy-rotate-signer-");
    const keys = { old: join(dir, "operator"), next: join(dir, "operator-2") };
    const kids: Record<string, string> = {};
    for (const [name, base] of Object.entries(keys)) {
      const made = await runCloister([
        "manifest",
        "keygen",
        "--out-private",
        `${base}.private.jwk`,
        "--out-public",
        `${base}.public.jwk`,
      ]);
      expect(made.code, made.stderr).toBe(0);
      kids[name] = (JSON.parse(readFileSync(`${base}.public.jwk`, "utf8")) as { kid: string }).kid;
    }
    // Step 1's "under new file names": keygen refuses to overwrite the old pair.
    const again = await runCloister([
      "manifest",
      "keygen",
      "--out-private",
      `${keys.old}.private.jwk`,
      "--out-public",
      `${keys.old}.public.jwk`,
    ]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain("already exists (use --force to overwrite)");

    const signed = join(dir, "manifest.jws");
    const manifest = join(REPO_ROOT, "manifests", "examples", "dev.json");
    const sign = await runCloister(["manifest", "sign", "--key", `${keys.next}.private.jwk`, manifest, signed]);
    expect(sign.code, sign.stderr).toBe(0);

    const oldOnly = await runCloister(["manifest", "verify", "--key", `${keys.old}.public.jwk`, signed]);
    expect(oldOnly.code).toBe(1);
    expect(oldOnly.stderr).toContain("MANIFEST_SIGNATURE_INVALID");
    expect(oldOnly.stderr).toContain(`trusted key (${kids.old})`);
    expect(oldOnly.stderr).toContain(`signer kid ${kids.next}`);

    const both = await runCloister([
      "manifest",
      "verify",
      "--key",
      `${keys.old}.public.jwk`,
      "--key",
      `${keys.next}.public.jwk`,
      signed,
    ]);
    expect(both.code, both.stderr).toBe(0);
  });
});
