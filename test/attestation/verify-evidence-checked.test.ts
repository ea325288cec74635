/**
 * What verify-evidence tells an operator, over the real captures: a verdict lists what the verifier
 * checked (from its verified result, so a check it skipped is not listed), an SNP TCB below the
 * policy's minimum names the policy field and the next step, and stale or expired-signer TDX
 * collateral names both remedies, with `--at` as without.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { testMaaSigner } from "../helpers/maa-token.ts";

const run = inProcessCli();
const FIXTURES = join(REPO_ROOT, "test", "fixtures", "attestation");
const SNP = ["--tee", "snp", "--report", join(FIXTURES, "snp", "milan-gcp-v5-report.bin")];
const SNP_CERT = ["--cert", join(FIXTURES, "snp", "milan-gcp-v5-vcek.pem"), "--at", "2026-01-01T00:00:00Z"];
const Q6 = ["--tee", "tdx", "--quote", join(FIXTURES, "tdx", "quote-v4-trustee-q6.bin")];
const Q6_AT = ["--at", "2025-11-01T00:00:00Z"];
const COLLATERAL = ["--collateral", join(FIXTURES, "tdx", "collateral")];
const RELAXED = ["--accept-stale-collateral", "--collateral-signer-validity", "accept-expired-signer"];

/** The text output's `checked` row, split into its items (null when there is none). */
function checkedRow(stdout: string): string[] | null {
  const row = /^ {2}checked +(.*)$/m.exec(stdout);
  return row === null ? null : (row[1] as string).split("; ");
}

let dir: string | null = null;
afterEach(() => {
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

describe("verify-evidence: what a verdict says was checked", () => {
  it("an SNP report: the VCEK chain to the pinned AMD root, the signature, the chip id and the TCB", async () => {
    const text = await run(["verify-evidence", ...SNP, ...SNP_CERT]);
    expect(text.code, text.stderr).toBe(0);
    expect(checkedRow(text.stdout)).toEqual([
      "VCEK certificate chain to the pinned AMD Milan root",
      "report signature",
      "CHIP_ID = VCEK hwID",
      "REPORTED_TCB = VCEK TCB",
      "REPORTED_TCB and COMMITTED_TCB not above CURRENT_TCB",
    ]);
    const json = await run(["verify-evidence", ...SNP, ...SNP_CERT, "--json"]);
    const verdict = JSON.parse(json.stdout);
    expect(verdict.checked).toEqual(checkedRow(text.stdout));
    // Added, nothing renamed: the fields --json had keep their names.
    expect(verdict).toMatchObject({ valid: true, chipId: expect.stringMatching(/^[0-9a-f]{128}$/) });
  });

  it("a VLEK-signed report names no chip id check (a VLEK names no chip)", async () => {
    const { code, stdout, stderr } = await run([
      "verify-evidence",
      "--tee",
      "snp",
      "--report",
      join(FIXTURES, "snp", "milan-aws-vlek-v3-report.bin"),
      "--cert",
      join(FIXTURES, "snp", "milan-aws-vlek.der"),
      "--at",
      "2025-06-01T00:00:00Z",
    ]);
    expect(code, stderr).toBe(0);
    const checked = checkedRow(stdout);
    expect(checked).toContain("VLEK certificate chain to the pinned AMD Milan root");
    expect(checked).not.toContain("CHIP_ID = VCEK hwID");
  });

  it("a TD quote: TCB info, QE identity and revocation only when the collateral was verified", async () => {
    const bare = await run(["verify-evidence", ...Q6, ...Q6_AT]);
    expect(bare.code, bare.stderr).toBe(0);
    expect(checkedRow(bare.stdout)).toEqual([
      "PCK certificate chain to the pinned Intel root",
      "QE report signature and attestation-key binding",
      "quote signature",
    ]);
    expect(bare.stdout).toContain("WARNING: TCB status not checked: no --collateral given");
    // At a time all of it was current: each check as made, nothing relaxed.
    const current = await run([
      "verify-evidence",
      "--tee",
      "tdx",
      "--quote",
      join(FIXTURES, "tdx", "quote-v4-trustee.bin"),
      "--at",
      "2023-07-01T00:00:00Z",
      ...COLLATERAL,
    ]);
    expect(current.code, current.stderr).toBe(0);
    expect(checkedRow(current.stdout)).toEqual([
      "PCK certificate chain to the pinned Intel root",
      "PCK chain revocation (CRLs)",
      "QE report signature and attestation-key binding",
      "quote signature",
      "TCB level looked up in TCB info (FMSPC 50806f000000)",
      "QE identity",
    ]);
  });

  it("a TD quote with relaxed collateral rules: each relaxed check says what was accepted", async () => {
    // At Q6_AT the CRLs are past their nextUpdate and the TCB signing certificate is expired: the
    // revocation check used CRLs of 2023-2024, which do not say whether the PCK chain is revoked now.
    const full = await run(["verify-evidence", ...Q6, ...Q6_AT, ...COLLATERAL, ...RELAXED]);
    expect(full.code, full.stderr).toBe(0);
    expect(full.stdout).toMatch(/WARNING: CRL from "[^\n]*" is stale/);
    const checked = [
      "PCK certificate chain to the pinned Intel root",
      "PCK chain revocation (CRLs), accepted stale",
      "QE report signature and attestation-key binding",
      "quote signature",
      "TCB level looked up in TCB info (FMSPC 00a06d080000), accepted with an expired signer",
      "QE identity, accepted with an expired signer",
    ];
    expect(checkedRow(full.stdout)).toEqual(checked);
    // The status the TCB level has is OutOfDate: the checked row records the lookup, never a pass.
    expect(full.stdout).toMatch(/^ {2}tcb status +OutOfDate$/m);
    expect(checkedRow(full.stdout)?.filter((item) => /status/i.test(item))).toEqual([]);
    const json = await run(["verify-evidence", ...Q6, ...Q6_AT, ...COLLATERAL, ...RELAXED, "--json"]);
    expect(JSON.parse(json.stdout).checked).toEqual(checked);
    // docs/platforms.md, "Command line", quotes the relaxed revocation item as printed.
    const page = readFileSync(join(REPO_ROOT, "docs", "platforms.md"), "utf8").replace(/\s+/g, " ");
    expect(page).toContain(`(\`${checked[1]}\`)`);
  });

  it("Azure TDX: the runtime-data binding and the vTPM quote, not the TCB status it warns of", async () => {
    const evidence = join(FIXTURES, "azure", "tdx-vtpm", "tdx-evidence-v1.trustee.json");
    const { code, stdout, stderr } = await run([
      "verify-evidence",
      "--tee",
      "azure-tdx",
      "--evidence",
      evidence,
      "--at",
      "2025-06-01T00:00:00Z",
    ]);
    expect(code, stderr).toBe(0);
    expect(stdout).toContain("WARNING: TCB status not checked: --tee azure-tdx takes no collateral");
    expect(checkedRow(stdout)).toEqual([
      "PCK certificate chain to the pinned Intel root",
      "QE report signature and attestation-key binding",
      "quote signature",
      "HCL TDREPORT = TD quote",
      "runtime data bound by REPORT_DATA",
      "vTPM quote signature (HCLAkPub)",
      "PCR digest",
    ]);
  });

  it("an invalid verdict lists nothing as checked", async () => {
    const text = await run(["verify-evidence", ...Q6, ...Q6_AT, ...COLLATERAL]);
    expect(text.code).toBe(1);
    expect(checkedRow(text.stdout)).toBeNull();
    const json = await run(["verify-evidence", ...Q6, ...Q6_AT, ...COLLATERAL, "--json"]);
    expect(JSON.parse(json.stdout).checked).toBeUndefined();
  });
});

describe("verify-evidence: what an MAA token's verdict says was checked", () => {
  /** The checked row of `claims` signed by the test MAA key, verified at `at` (seconds). */
  async function maaChecked(claims: Record<string, unknown>, at: number): Promise<string[] | null> {
    const signer = await testMaaSigner();
    const own = mkdtempSync(join(tmpdir(), "cloister-maa-checked-"));
    try {
      writeFileSync(join(own, "token.jwt"), await signer.sign(claims));
      writeFileSync(join(own, "jwks.json"), JSON.stringify(signer.jwks));
      const { code, stdout, stderr } = await run([
        "verify-evidence",
        "--tee",
        "maa",
        "--token",
        join(own, "token.jwt"),
        "--jwks",
        join(own, "jwks.json"),
        "--at",
        new Date(at * 1000).toISOString(),
      ]);
      expect(code, stderr).toBe(0);
      return checkedRow(stdout);
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  }
  const ISSUED = 1_700_000_000;
  const CLAIMS = { iss: "https://cloister-test.attest.example", exp: ISSUED + 3600, "x-ms-attestation-type": "sgx" };

  it("names nbf only when the token has one (it is optional, and then not checked)", async () => {
    expect(await maaChecked({ ...CLAIMS, nbf: ISSUED }, ISSUED + 60)).toEqual([
      "token signature (--jwks key)",
      "token validity (exp, nbf)",
    ]);
    expect(await maaChecked(CLAIMS, ISSUED + 60)).toEqual(["token signature (--jwks key)", "token validity (exp)"]);
  });
});

describe("verify-evidence: the next step of a refusal", () => {
  it("SNP_TCB_TOO_LOW names the policy's minimum and says the platform must be updated or the minimum lowered", async () => {
    // A complete policy, the page's that accepts this report, its microcode floor raised
    // (test/docs/platforms-policy-example.test.ts checks that it accepts the report as it is).
    const page = readFileSync(join(REPO_ROOT, "docs", "platforms.md"), "utf8");
    const block = /\*\*A policy for captured evidence\.\*\*[\s\S]*?^```json\n([\s\S]*?)^```$/m.exec(page);
    const parsed = JSON.parse(block?.[1] as string);
    parsed.snp.minimumTcb.microcode = 230;
    dir = mkdtempSync(join(tmpdir(), "cloister-tcb-low-"));
    writeFileSync(join(dir, "policy.json"), JSON.stringify(parsed));
    const { code, stdout, stderr } = await run([
      "verify-evidence",
      ...SNP,
      ...SNP_CERT,
      "--policy",
      join(dir, "policy.json"),
    ]);
    expect(code).toBe(1);
    const said =
      "REPORTED_TCB.microcode: expected >= 230, found 222 (below the policy's snp.minimumTcb.microcode, " +
      "attestation.snp.minimumTcb.microcode in a client policy; the platform's firmware/microcode must be updated, " +
      "or lower that minimum if this TCB is accepted on purpose)";
    expect(stdout).toContain(`    ${said} (SNP_TCB_TOO_LOW)\n`);
    expect(stderr).toBe(`cloister: SNP_TCB_TOO_LOW: ${said}\n`);
  });

  it("CRL_EXPIRED and COLLATERAL_SIGNER_EXPIRED at --at name the remedies docs/platforms.md gives", async () => {
    const stale = await run(["verify-evidence", ...Q6, ...Q6_AT, ...COLLATERAL]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(
      /^cloister: CRL_EXPIRED: CRL from "[^\n]*, verification time 2025-11-01T00:00:00\.000Z; get current collateral from Intel PCS for that time, or pass --accept-stale-collateral to accept it and report it stale\n$/,
    );
    const signer = await run(["verify-evidence", ...Q6, ...Q6_AT, ...COLLATERAL, "--accept-stale-collateral"]);
    expect(signer.code).toBe(1);
    expect(signer.stderr).toMatch(
      /^cloister: COLLATERAL_SIGNER_EXPIRED: [^\n]*\); put the re-issued TCB signing certificate's chain in the --collateral folder, or pass --collateral-signer-validity accept-expired-signer knowingly\n$/,
    );
  });
});
