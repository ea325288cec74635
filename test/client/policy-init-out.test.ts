/**
 * `cloister policy init --out FILE`: a new file by default (an existing one is refused, naming
 * --force), replaced with --force: whole or not at all, with the mode policy init gives a new file.
 */
import { mkdtemp, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { operatorPublicKey } from "../enclave/helpers.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { closeServers, serveDeployment } from "./helpers.ts";

const run = inProcessCli();
const dir = await testDirectory("cloister-policy-init-out-");
let keyFile: string;
let operatorKey: string;

beforeAll(async () => {
  keyFile = join(dir, "api-key");
  await writeFile(keyFile, "ck_policy_init_out_0123456789\n", { mode: 0o600 });
  operatorKey = join(dir, "operator.public.jwk");
  await writeFile(operatorKey, JSON.stringify(await operatorPublicKey()));
});
afterEach(closeServers);

function policyInit(url: string, ...more: string[]): string[] {
  return ["policy", "init", "--url", url, "--operator-key", operatorKey, "--api-key-file", keyFile, ...more];
}

describe("policy init --out", () => {
  it("refuses an existing file before anything is fetched, naming --force", async () => {
    const { url, authorizations } = await serveDeployment();
    const out = join(dir, "existing.json");
    await writeFile(out, "{}\n");
    const result = await run(policyInit(url, "--allow-simulator", "--out", out));
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(`cloister: USAGE: --out ${out}: already exists (EEXIST); pass --force to replace it\n`);
    expect(authorizations).toEqual([]);
    expect(await readFile(out, "utf8")).toBe("{}\n");
  });

  it("--force replaces it with the policy, mode 0644, leaving no temporary file", async () => {
    const { url } = await serveDeployment();
    const sub = await mkdtemp(join(dir, "force-"));
    const fresh = join(sub, "fresh.json");
    const made = await run(policyInit(url, "--allow-simulator", "--out", fresh));
    expect(made.code, made.stderr).toBe(0);
    const out = join(sub, "policy.json");
    await writeFile(out, "{}\n", { mode: 0o600 });
    const replaced = await run(policyInit(url, "--allow-simulator", "--out", out, "--force"));
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(replaced.stderr).toContain(`written to ${out}`);
    const policy = JSON.parse(await readFile(out, "utf8"));
    expect(policy).toMatchObject({ version: 1, acceptedEvidence: ["sev-snp"] });
    expect(policy).toEqual(JSON.parse(await readFile(fresh, "utf8")));
    expect((await stat(out)).mode & 0o777).toBe((await stat(fresh)).mode & 0o777);
    expect((await stat(out)).mode & 0o777).toBe(0o644);
    expect((await readdir(sub)).sort()).toEqual(["fresh.json", "policy.json"]);
  });

  it("names the file written as a shell word: a control character in its name shown as an escape, never sent", async () => {
    const { url } = await serveDeployment();
    const sub = await mkdtemp(join(dir, "escape-"));
    const out = join(sub, "a\x1b[31m.json");
    const result = await run(policyInit(url, "--allow-simulator", "--out", out));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toContain("\x1b");
    expect(result.stderr).toContain(`, written to $'${sub}/a\\033[31m.json'\n`);
    expect(JSON.parse(await readFile(out, "utf8"))).toMatchObject({ version: 1 });
  });

  it("--force without --out is refused: alone it would do nothing", async () => {
    const result = await run(policyInit("http://127.0.0.1:9", "--force"));
    expect(result).toMatchObject({
      code: 2,
      stderr: "cloister: USAGE: --force: replaces the file of --out, which was not given (run with --help for usage)\n",
    });
  });
});
