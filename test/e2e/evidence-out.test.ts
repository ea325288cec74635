/**
 * `cloister attest --evidence-out DIR` against a real simulated TDX deployment on 127.0.0.1: the
 * quote of the document attest verified is saved as DIR/quote.bin, byte for byte the document's,
 * and `cloister verify-evidence --tee tdx --quote DIR/quote.bin` checks it offline, as the note of
 * a policy that skips the TCB status tells the operator to (attestation/policy-from-evidence.ts
 * TCB_CHECK_NOTE). The simulated quote verifies only under a policy that trusts the simulator.
 */
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromBase64url, toHex } from "../../attestation/bytes.ts";
import { type CliRun, envWithoutApiKey, runCloister } from "../helpers/cli.ts";
import { examplesOf } from "../helpers/help-examples.ts";
import { bootDeployment, connectionArgs, type E2eDeployment } from "./helpers/deployment.ts";

let deployment: E2eDeployment;

beforeAll(async () => {
  deployment = await bootDeployment("sim-tdx");
});

afterAll(async () => {
  await deployment?.stop();
});

function cloister(...args: string[]): Promise<CliRun> {
  return runCloister(args, { cwd: deployment.dir, env: envWithoutApiKey() });
}

/** The `evidence` member of a saved attestation document (its payload, the JWS's second part). */
function documentEvidence(document: string): Record<string, string> {
  const payload = document.trim().split(".")[1] as string;
  return JSON.parse(new TextDecoder().decode(fromBase64url(payload, "payload"))).evidence;
}

describe("attest --evidence-out, then verify-evidence, on a simulated TDX deployment", () => {
  it("attest --help's --evidence-out example saves the verified quote, which verify-evidence checks offline", async () => {
    const help = await cloister("attest", "--help");
    const example = examplesOf(help.stdout).find((line) => line.includes("--evidence-out"));
    expect(example, help.stdout).toBeDefined();
    // As pasted, but for this deployment's URL, policy and API key (`cloister up` puts them where
    // the example says; this deployment's files are elsewhere).
    const [mkdirStep, command] = (example as string).replace(/\s+#\s.*$/, "").split(/\s*&&\s*/) as [string, string];
    expect(mkdirStep).toBe("mkdir -p evidence");
    const dir = join(deployment.dir, "evidence");
    await mkdir(dir, { recursive: true });
    const words = command
      .split(/\s+/)
      .slice(1)
      .map((word) =>
        word === "http://127.0.0.1:8080"
          ? deployment.running.hostUrl
          : word === ".cloister/policy.json"
            ? deployment.files.policyPath
            : word,
      );
    const documentFile = join(deployment.dir, "evidence-document.jws");
    const attest = await cloister(
      ...words,
      "--api-key-file",
      deployment.files.apiKeyPath,
      "--json",
      "--document-out",
      documentFile,
    );
    expect({ code: attest.code, stderr: attest.stderr }).toEqual({ code: 0, stderr: "" });
    const attested = JSON.parse(attest.stdout) as { tee: string; measurement: string; reportData: string };
    expect(attested.tee).toBe("tdx");

    // Byte for byte the quote of the document attest verified and saved.
    const quote = await readFile(join(dir, "quote.bin"));
    const evidence = documentEvidence(await readFile(documentFile, "utf8"));
    expect(evidence.type).toBe("tdx");
    expect(toHex(quote)).toBe(toHex(fromBase64url(evidence.quote as string, "quote")));

    // Offline: under the deployment's policy (which trusts the simulator), the quote verifies and
    // is the attested enclave's. That policy requires Intel's TCB status, which the collateral the
    // enclave serves gave attest, and which verify-evidence has without --collateral only as "not
    // checked": the appraisal names that field.
    const withPolicy = await cloister(
      "verify-evidence",
      "--tee",
      "tdx",
      "--quote",
      join(dir, "quote.bin"),
      "--policy",
      deployment.files.policyPath,
      "--json",
    );
    const verdict = JSON.parse(withPolicy.stdout) as Record<string, unknown>;
    expect(verdict).toMatchObject({
      tee: "tdx",
      simulated: true,
      measurement: attested.measurement,
      reportData: attested.reportData,
    });
    const appraisal = verdict.appraisal as { violations: { field: string }[] };
    expect(appraisal.violations.map((v) => v.field)).toEqual(["tcbStatus"]);
    expect(withPolicy.code).toBe(1);

    // The same policy with the TCB status skipped, as policy init --allow-no-collateral writes it: valid.
    const policy = JSON.parse(await readFile(deployment.files.policyPath, "utf8"));
    policy.attestation.tdx.acceptedTcbStatuses = { skip: { reason: "checked with --collateral" } };
    const skipped = join(deployment.dir, "policy-tcb-skipped.json");
    await writeFile(skipped, JSON.stringify(policy));
    const valid = await cloister(
      "verify-evidence",
      "--tee",
      "tdx",
      "--quote",
      join(dir, "quote.bin"),
      "--policy",
      skipped,
    );
    expect({ code: valid.code, stderr: valid.stderr }).toEqual({ code: 0, stderr: "" });
    expect(valid.stdout.split("\n")[0]).toBe("tdx: VALID (SIMULATED - not hardware evidence)");

    // Without a policy that trusts the simulator, the simulated quote is refused.
    const bare = await cloister("verify-evidence", "--tee", "tdx", "--quote", join(dir, "quote.bin"));
    expect(bare.code).toBe(1);
    expect(bare.stdout.split("\n")[0]).toBe("tdx: INVALID");

    // A second run refuses the existing file before contacting the host; --force replaces it.
    const again = await cloister(...words, "--api-key-file", deployment.files.apiKeyPath);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(
      /^cloister: USAGE: --evidence-out \S+quote\.bin: already exists \(EEXIST\); pass --force/,
    );
    const forced = await cloister(...words, "--api-key-file", deployment.files.apiKeyPath, "--force");
    expect({ code: forced.code, stderr: forced.stderr }).toEqual({ code: 0, stderr: "" });
    expect(toHex(await readFile(join(dir, "quote.bin")))).toBe(toHex(quote));
  });

  it("attest --evidence-out into a directory that does not exist is refused before contacting the host", async () => {
    const missing = join(deployment.dir, "no-such-dir");
    const run = await cloister(
      "attest",
      ...connectionArgs(deployment, deployment.files.policyPath),
      "--evidence-out",
      missing,
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^cloister: USAGE: --evidence-out \S+no-such-dir\/\S+: /);
    expect(run.stderr).toContain("does not exist");
  });
});

describe("attest --evidence-out: what DIR holds after a refusal, and after --force", () => {
  /** A new directory under the deployment's, and attest's arguments for this deployment. */
  async function evidenceDir(name: string): Promise<string> {
    const dir = join(deployment.dir, name);
    await mkdir(dir);
    return dir;
  }
  const attestArgs = (policyPath: string) => ["attest", ...connectionArgs(deployment, policyPath)];

  it("a document the policy refuses writes nothing: DIR stays empty and no --document-out file is made", async () => {
    const dir = await evidenceDir("refused");
    const policy = JSON.parse(await readFile(deployment.files.policyPath, "utf8"));
    policy.attestation.tdx.mrtd = ["ab".repeat(48)];
    const refusing = join(deployment.dir, "policy-other-mrtd.json");
    await writeFile(refusing, JSON.stringify(policy));
    const documentFile = join(dir, "document.jws");
    for (const json of [[], ["--json"]]) {
      const run = await cloister(
        ...attestArgs(refusing),
        ...json,
        "--evidence-out",
        dir,
        "--document-out",
        documentFile,
      );
      expect(run.code, run.stderr).toBe(1);
      expect(`${run.stdout}${run.stderr}`).toContain("mrtd");
      expect(await readdir(dir)).toEqual([]);
    }
  });

  it("--force leaves no other evidence type's file next to this run's (a stale cert.der would be verified as this enclave's)", async () => {
    const dir = await evidenceDir("forced");
    for (const name of ["report.bin", "cert.der", "evidence.json", "td-quote.bin"]) {
      await writeFile(join(dir, name), "an earlier run's\n");
    }
    await writeFile(join(dir, "notes.txt"), "the operator's\n");
    const refused = await cloister(...attestArgs(deployment.files.policyPath), "--evidence-out", dir);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^cloister: USAGE: --evidence-out \S+report\.bin: already exists \(EEXIST\)/);
    const forced = await cloister(...attestArgs(deployment.files.policyPath), "--evidence-out", dir, "--force");
    expect({ code: forced.code, stderr: forced.stderr }).toEqual({ code: 0, stderr: "" });
    expect((await readdir(dir)).sort()).toEqual(["notes.txt", "quote.bin"]);
  });

  it('--evidence-out "" is refused, not taken as the current directory', async () => {
    const cwd = await evidenceDir("empty-argument");
    const env = envWithoutApiKey();
    const run = await runCloister([...attestArgs(deployment.files.policyPath), "--evidence-out", ""], { cwd, env });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      /^cloister: USAGE: --evidence-out: expected an existing directory, found an empty argument/,
    );
    expect(await readdir(cwd)).toEqual([]);
  });

  it("--document-out naming a file --evidence-out writes is refused before contacting the host, with or without --force", async () => {
    const dir = await evidenceDir("document-among-evidence");
    for (const force of [[], ["--force"]]) {
      const run = await cloister(
        ...attestArgs(deployment.files.policyPath),
        "--evidence-out",
        dir,
        "--document-out",
        join(dir, "..", "document-among-evidence", "quote.bin"),
        ...force,
      );
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(
        /^cloister: USAGE: --document-out \S+quote\.bin: expected a file other than those --evidence-out writes/,
      );
      expect(await readdir(dir)).toEqual([]);
    }
  });
});
