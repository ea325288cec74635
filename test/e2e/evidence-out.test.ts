/**
 * `cloister attest --evidence-out DIR` against a real simulated TDX deployment on 127.0.0.1: the
 * quote of the document attest verified is saved as DIR/quote.bin, byte for byte the document's,
 * with the collateral the deployment served with it (and attest verified it with) in
 * DIR/collateral, and `cloister verify-evidence --tee tdx --quote DIR/quote.bin --collateral
 * DIR/collateral` checks it offline with attest's verdict; without collateral served, as the note
 * of a policy that skips the TCB status tells the operator to (attestation/policy-from-evidence.ts
 * TCB_CHECK_NOTE). The simulated quote verifies only under a policy that trusts the simulator.
 */
import { mkdirSync, renameSync, symlinkSync } from "node:fs";
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromBase64url, toHex } from "../../attestation/bytes.ts";
import { type CliRun, envWithoutApiKey, runCloister } from "../helpers/cli.ts";
import { examplesOf } from "../helpers/help-examples.ts";
import { bootDeployment, connectionArgs, type E2eDeployment } from "./helpers/deployment.ts";
import { startTamperProxy } from "./helpers/tamper-proxy.ts";

/** What attest --evidence-out writes for a TDX document served with collateral, in order. */
const WITH_COLLATERAL = [
  "quote.bin",
  "collateral/tcbinfo-tdx.json",
  "collateral/tcb-info-issuer-chain.pem",
  "collateral/qeidentity-td-qe.json",
  "collateral/qe-identity-issuer-chain.pem",
  "collateral/crl-1.der",
  "collateral/crl-2.der",
];

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
    const attested = JSON.parse(attest.stdout) as {
      tee: string;
      measurement: string;
      reportData: string;
      details: { tcbStatus: string };
      evidenceFiles: string[];
    };
    expect(attested.tee).toBe("tdx");
    // --json names the files written (DIR joined with each name) rather than printing a line.
    expect(attested.evidenceFiles).toEqual(WITH_COLLATERAL.map((name) => join("evidence", name)));
    expect(attested.details.tcbStatus).toBe("UpToDate");

    // Offline, with the collateral attest verified the quote with, under the same policy (which
    // requires an UpToDate TCB): attest's verdict, the same TCB status.
    const withCollateral = await cloister(
      "verify-evidence",
      "--tee",
      "tdx",
      "--quote",
      join(dir, "quote.bin"),
      "--collateral",
      join(dir, "collateral"),
      "--policy",
      deployment.files.policyPath,
      "--json",
    );
    expect({ code: withCollateral.code, stderr: withCollateral.stderr }).toEqual({ code: 0, stderr: "" });
    expect(JSON.parse(withCollateral.stdout)).toMatchObject({
      valid: true,
      tee: "tdx",
      simulated: true,
      measurement: attested.measurement,
      reportData: attested.reportData,
      tcbStatus: attested.details.tcbStatus,
      collateralNotes: [],
      appraisal: { violations: [] },
    });

    // Byte for byte the quote of the document attest verified and saved.
    const quote = await readFile(join(dir, "quote.bin"));
    const evidence = documentEvidence(await readFile(documentFile, "utf8"));
    expect(evidence.type).toBe("tdx");
    expect(toHex(quote)).toBe(toHex(fromBase64url(evidence.quote as string, "quote")));

    // Without --collateral: under the deployment's policy (which trusts the simulator), the quote
    // verifies and is the attested enclave's, but the TCB status it requires is "not checked": the
    // appraisal names that field.
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
    expect((await readdir(dir)).sort()).toEqual(["collateral", "notes.txt", "quote.bin"]);
  });

  it("prints DIR, the files written and the verify-evidence command, which gives attest's verdict as printed", async () => {
    const dir = await evidenceDir("printed");
    const run = await cloister(...attestArgs(deployment.files.policyPath), "--evidence-out", dir);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    const lines = run.stdout.trimEnd().split("\n");
    const command = `cloister verify-evidence --tee tdx --quote ${join(dir, "quote.bin")} --collateral ${join(dir, "collateral")} --policy ${deployment.files.policyPath}`;
    // After the summary (its last line, and the policy's warning on the simulator).
    expect(lines.at(-3)).toMatch(/^ {2}checked {6}/);
    expect(lines.at(-1)).toBe(`evidence saved in ${dir}: ${WITH_COLLATERAL.join(", ")}; check it offline: ${command}`);
    // Run as printed (these paths are plain shell words): VALID under the policy attest was given.
    const printed = (lines.at(-1) as string).split("; check it offline: ")[1] as string;
    const verify = await cloister(...printed.split(" ").slice(1));
    expect({ code: verify.code, stderr: verify.stderr }).toEqual({ code: 0, stderr: "" });
    expect(verify.stdout.split("\n")[0]).toBe("tdx: VALID (SIMULATED - not hardware evidence)");
    expect(verify.stdout).toMatch(/\n {2}tcb status +UpToDate\n/);
  });

  it("--force over a set with collateral leaves exactly this run's: an earlier run's CRL is removed, a foreign file refused", async () => {
    const dir = await evidenceDir("forced-collateral");
    const first = await cloister(...attestArgs(deployment.files.policyPath), "--evidence-out", dir);
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: "" });
    const saved = new Map<string, string>();
    for (const name of WITH_COLLATERAL) saved.set(name, toHex(await readFile(join(dir, name))));
    // An earlier run's: a third CRL, and a TCB info changed since.
    await writeFile(join(dir, "collateral", "crl-3.der"), "an earlier run's\n");
    await writeFile(join(dir, "collateral", "tcbinfo-tdx.json"), "an earlier run's\n");
    const refused = await cloister(...attestArgs(deployment.files.policyPath), "--evidence-out", dir);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^cloister: USAGE: --evidence-out \S+quote\.bin: already exists \(EEXIST\)/);
    const forced = await cloister(...attestArgs(deployment.files.policyPath), "--evidence-out", dir, "--force");
    expect({ code: forced.code, stderr: forced.stderr }).toEqual({ code: 0, stderr: "" });
    expect((await readdir(join(dir, "collateral"))).sort()).toEqual(
      WITH_COLLATERAL.filter((name) => name.startsWith("collateral/"))
        .map((name) => name.slice("collateral/".length))
        .sort(),
    );
    // The simulator's collateral is made once per boot: the same bytes again.
    for (const name of WITH_COLLATERAL) expect(toHex(await readFile(join(dir, name))), name).toBe(saved.get(name));

    // A file attest does not write there (verify-evidence --collateral would read it as this
    // quote's): refused with --force too, before contacting the host, and left as it is.
    await writeFile(join(dir, "collateral", "tcbinfo-other.json"), "the operator's\n");
    const foreign = await cloister(
      "attest",
      "--url",
      "http://127.0.0.1:1",
      "--policy",
      deployment.files.policyPath,
      "--api-key-file",
      deployment.files.apiKeyPath,
      "--evidence-out",
      dir,
      "--force",
    );
    expect(foreign.code).toBe(2);
    expect(foreign.stderr).toBe(
      `cloister: USAGE: --evidence-out ${join(dir, "collateral")}: expected only the files attest saves there (tcbinfo-tdx.json, tcb-info-issuer-chain.pem, qeidentity-td-qe.json, qe-identity-issuer-chain.pem, crl-1.der, crl-2.der, crl-3.der, crl-4.der), found tcbinfo-other.json; move it elsewhere\n`,
    );
    expect(await readFile(join(dir, "collateral", "tcbinfo-other.json"), "utf8")).toBe("the operator's\n");
  });

  it("a deployment that serves no collateral: nothing saved for it, the line says so, --force removes an earlier run's", async () => {
    const dir = await evidenceDir("no-collateral");
    const first = await cloister(...attestArgs(deployment.files.policyPath), "--evidence-out", dir);
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: "" });
    expect(await readdir(join(dir, "collateral"))).toHaveLength(WITH_COLLATERAL.length - 1);
    // The host withholds the collateral; a policy that skips the TCB status accepts the enclave.
    const policy = JSON.parse(await readFile(deployment.files.policyPath, "utf8"));
    policy.attestation.tdx.acceptedTcbStatuses = { skip: { reason: "checked with --collateral" } };
    const skipped = join(deployment.dir, "policy-no-collateral.json");
    await writeFile(skipped, JSON.stringify(policy));
    const proxy = await startTamperProxy(deployment.running.hostUrl);
    try {
      proxy.tamper({
        method: "GET",
        path: "/v1/attestation",
        response: (body) => {
          const { document } = JSON.parse(new TextDecoder().decode(body)) as { document: string };
          return new TextEncoder().encode(JSON.stringify({ document }));
        },
      });
      const args = ["--url", proxy.url, "--policy", skipped, "--api-key-file", deployment.files.apiKeyPath];
      const run = await cloister("attest", ...args, "--evidence-out", dir, "--force");
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
      expect(run.stdout).toContain("  TCB          not checked: the deployment served no TCB collateral\n");
      expect(run.stdout.trimEnd().split("\n").at(-1)).toBe(
        `evidence saved in ${dir}: quote.bin (no TCB collateral: the deployment served none; its TCB status needs --collateral COLLATERAL_DIR, Intel's for its platform); check it offline: cloister verify-evidence --tee tdx --quote ${join(dir, "quote.bin")} --policy ${skipped}`,
      );
      expect(await readdir(dir)).toEqual(["quote.bin"]);
      const json = await cloister("attest", ...args, "--evidence-out", dir, "--force", "--json");
      expect(JSON.parse(json.stdout).evidenceFiles).toEqual([join(dir, "quote.bin")]);
    } finally {
      await proxy.close();
    }
  });

  it("a collateral folder made while attest verified: refused, and no half set is left (no quote.bin, no document)", async () => {
    const dir = await evidenceDir("half-set");
    const documentFile = join(deployment.dir, "half-set-document.jws");
    const proxy = await startTamperProxy(deployment.running.hostUrl);
    try {
      // Made after attest's checks of DIR, before it writes: the collateral folder is its last step.
      proxy.tamper({
        method: "GET",
        path: "/v1/attestation",
        response: (body) => {
          mkdirSync(join(dir, "collateral"));
          return body;
        },
      });
      const args = ["--url", proxy.url, "--policy", deployment.files.policyPath];
      const run = await cloister(
        "attest",
        ...args,
        "--api-key-file",
        deployment.files.apiKeyPath,
        "--evidence-out",
        dir,
        "--document-out",
        documentFile,
      );
      expect(run.code, run.stdout).toBe(2);
      expect(run.stderr).toBe(
        `cloister: USAGE: --evidence-out ${join(dir, "collateral")}: already exists (EEXIST); pass --force to replace it\n`,
      );
      expect(await readdir(dir)).toEqual(["collateral"]);
      expect(await readdir(join(dir, "collateral"))).toEqual([]);
      expect(await readdir(deployment.dir)).not.toContain("half-set-document.jws");
    } finally {
      await proxy.close();
    }
  });

  it("--force, DIR/collateral swapped for a link while attest verified: nothing removed or written where it leads", async () => {
    const dir = await evidenceDir("collateral-swapped");
    const first = await cloister(...attestArgs(deployment.files.policyPath), "--evidence-out", dir);
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: "" });
    // Another folder of this user's, holding files under names attest writes and removes in
    // DIR/collateral (crl-3.der: a CRL this deployment does not serve, removed under --force).
    const elsewhere = join(deployment.dir, "collateral-swapped-elsewhere");
    await mkdir(elsewhere);
    for (const name of ["crl-3.der", "crl-4.der", "tcbinfo-tdx.json"]) {
      await writeFile(join(elsewhere, name), "not attest's\n");
    }
    for (const withheld of [false, true]) {
      const proxy = await startTamperProxy(deployment.running.hostUrl);
      try {
        // After attest's checks of DIR (a directory then), before it removes and writes: whoever
        // may write to DIR puts a link to their choice at DIR/collateral.
        proxy.tamper({
          method: "GET",
          path: "/v1/attestation",
          response: (body) => {
            renameSync(join(dir, "collateral"), join(dir, "moved"));
            symlinkSync(elsewhere, join(dir, "collateral"));
            if (!withheld) return body;
            const { document } = JSON.parse(new TextDecoder().decode(body)) as { document: string };
            return new TextEncoder().encode(JSON.stringify({ document }));
          },
        });
        const policy = withheld
          ? join(deployment.dir, "policy-swapped-no-collateral.json")
          : deployment.files.policyPath;
        if (withheld) {
          const skipping = JSON.parse(await readFile(deployment.files.policyPath, "utf8"));
          skipping.attestation.tdx.acceptedTcbStatuses = { skip: { reason: "checked with --collateral" } };
          await writeFile(policy, JSON.stringify(skipping));
        }
        const args = ["--url", proxy.url, "--policy", policy, "--api-key-file", deployment.files.apiKeyPath];
        const run = await cloister("attest", ...args, "--evidence-out", dir, "--force");
        expect(run.code, run.stdout).toBe(2);
        expect(run.stderr).toBe(
          `cloister: USAGE: --evidence-out ${join(dir, "collateral")}: expected a directory, found a symbolic link\n`,
        );
        expect((await readdir(elsewhere)).sort()).toEqual(["crl-3.der", "crl-4.der", "tcbinfo-tdx.json"]);
        for (const name of await readdir(elsewhere)) {
          expect(await readFile(join(elsewhere, name), "utf8"), name).toBe("not attest's\n");
        }
      } finally {
        await proxy.close();
        await rm(join(dir, "collateral"));
        renameSync(join(dir, "moved"), join(dir, "collateral"));
      }
    }
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
