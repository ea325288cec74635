/**
 * What `cloister kbs check --help` and `kbs serve --help` tell an operator, against docs/deploy.md steps 3
 * and 6: `kbs check` warns of loose release policies and reads the files afresh, while a running `kbs
 * serve` keeps what it read at start (so a check that passes does not mean the broker took the edit:
 * restart it); `kbs serve` refuses configuration and policy files writable by group or others, key files
 * readable by them, and files of another user. Each help once left one of these to the page, and an
 * operator who edited a release policy and ran `kbs check` saw it accepted while the broker went on
 * refusing. The help's claims about the check are run here; the file rules' refusals are
 * test/attestation/kbs-cli.test.ts's, so only the help's wording of them and the cases its words decide
 * are checked here: an owner-only key of mode 0400 accepted, one of 0440 or 0610 (group access other
 * than read: "closed to them", not "not readable") refused, a key file that is a link refused (the help
 * once left links out; a Kubernetes secret volume's files are links) and a policy's link followed.
 */
import { chmodSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { generateManifestSigningKey } from "../../manifests/sign.ts";
import { runCloister } from "../helpers/cli.ts";
import { testDirectory } from "../helpers/test-directory.ts";

/** A help text as one line (commander wraps it at 80 columns). */
async function help(...command: string[]): Promise<string> {
  const run = await runCloister([...command, "--help"]);
  expect(run.code, run.stderr).toBe(0);
  return run.stdout.replace(/\s+/g, " ");
}

/** A release policy that trusts the simulator, pinning one measurement and model digest. */
async function simulatorPolicy() {
  const operator = await generateManifestSigningKey("EdDSA");
  return simulatorClientPolicy({
    tee: "sim-snp",
    measurement: "00".repeat(48),
    operatorKey: operator.publicJwk,
    modelSha256: "ab".repeat(32),
    serviceName: "svc",
  });
}

/** A broker configuration of one key whose release policy trusts the simulator (a loose one). */
async function looseConfig(): Promise<{ config: string; key: string; policy: string }> {
  const dir = await testDirectory("kbs-help-");
  const key = join(dir, "model.jwk");
  const keygen = await runCloister(["kbs", "keygen", "--key-id", "model-v1", "--out", key]);
  expect(keygen.code, keygen.stderr).toBe(0);
  const policy = join(dir, "release-policy.json");
  writeFileSync(policy, JSON.stringify(await simulatorPolicy()));
  chmodSync(policy, 0o644);
  const config = join(dir, "kbs.json");
  writeFileSync(
    config,
    JSON.stringify({ version: 1, keys: [{ keyFile: "model.jwk", policy: "release-policy.json" }] }),
  );
  chmodSync(config, 0o644);
  return { config, key, policy };
}

describe("kbs check --help and kbs serve --help, against what the commands do", () => {
  it("kbs check says it warns of loose policies and that a running broker needs a restart", async () => {
    const text = await help("kbs", "check");
    expect(text).toContain("warns of a policy that releases a key to more than a known image");
    expect(text).toContain("a running kbs serve keeps what it read at start until restarted");
  });

  it("kbs check warns of a release policy that trusts the simulator, as its help says", async () => {
    const { config } = await looseConfig();
    const run = await runCloister(["kbs", "check", "--config", config]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("WARNING: trusts the INSECURE simulator");
  });

  it("kbs check reads an edited policy afresh", async () => {
    const { config, policy } = await looseConfig();
    const before = await runCloister(["kbs", "check", "--config", config]);
    expect(before.code, before.stderr).toBe(0);
    const written = await simulatorPolicy();
    const edited = {
      ...written,
      manifest: { ...written.manifest, allowedModelDigests: ["ab".repeat(32), "b".repeat(64)] },
    };
    writeFileSync(policy, JSON.stringify(edited));
    const after = await runCloister(["kbs", "check", "--config", config]);
    expect(after.code, after.stderr).toBe(0);
    expect(before.stdout).not.toContain("b".repeat(64));
    expect(after.stdout).toContain("b".repeat(64));
  });

  it("kbs serve --help names the file rules the broker enforces", async () => {
    const text = await help("kbs", "serve");
    expect(text).toContain("none writable by group or others");
    expect(text).toContain("key files closed to them (chmod 600) and not symbolic links");
    expect(text).toContain("a configuration's or policy's link is followed, its file checked");
    expect(text).toContain("all owned by the broker's user or root");
  });

  it('refuses a key file open to its group by any bit (not only read), as "closed to them" says', async () => {
    const { config, key } = await looseConfig();
    chmodSync(key, 0o610);
    const run = await runCloister(["kbs", "check", "--config", config]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("mode expected 0600 (owner only), found 0610");
  });

  it("refuses a key file that is a symbolic link and follows a policy's, as the help says", async () => {
    const { config, key, policy } = await looseConfig();
    const dir = dirname(config);
    renameSync(key, join(dir, "model-real.jwk"));
    symlinkSync("model-real.jwk", key);
    const linkedKey = await runCloister(["kbs", "check", "--config", config]);
    expect(linkedKey.code).toBe(2);
    expect(linkedKey.stderr).toContain("a symbolic link; expected the key file itself");
    unlinkSync(key);
    renameSync(join(dir, "model-real.jwk"), key);
    renameSync(policy, join(dir, "policy-real.json"));
    symlinkSync("policy-real.json", policy);
    const linkedPolicy = await runCloister(["kbs", "check", "--config", config]);
    expect(linkedPolicy.code, linkedPolicy.stderr).toBe(0);
    // The file the link leads to is what is checked: made group-writable, it is refused.
    chmodSync(join(dir, "policy-real.json"), 0o664);
    const loosePolicy = await runCloister(["kbs", "check", "--config", config]);
    expect(loosePolicy.code).toBe(2);
    expect(loosePolicy.stderr).toContain("writable by group or others (mode 0664)");
  });

  it("accepts a key file its owner alone may read, mode 0400, as the help's rule allows", async () => {
    const { config, key } = await looseConfig();
    chmodSync(key, 0o400);
    const run = await runCloister(["kbs", "check", "--config", config]);
    expect(run.code, run.stderr).toBe(0);
    chmodSync(key, 0o440);
    const group = await runCloister(["kbs", "check", "--config", config]);
    expect(group.code).toBe(2);
    expect(group.stderr).toContain("run chmod 600");
  });
});
