/**
 * `cloister verify-evidence --tee tdx` end to end: the real command spawned with node, its JSON
 * verdict and its exit code (0 iff valid).
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const F = fileURLToPath(new URL("../fixtures/attestation/", import.meta.url));
const TDX = join(F, "tdx");
const COLLATERAL = join(TDX, "collateral");
const tmp = mkdtempSync(join(tmpdir(), "cloister-tdx-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(args: string[]) {
  const result = spawnSync(process.execPath, ["bin/cloister.js", "verify-evidence", "--tee", "tdx", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
/** A collateral directory under the test's temp directory holding `files` of the fixtures' collateral. */
function collateralWith(name: string, files: readonly string[]): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const f of files) copyFileSync(join(COLLATERAL, f), join(dir, f));
  return dir;
}

function runJson(args: string[]) {
  const r = run([...args, "--json"]);
  return { ...r, verdict: JSON.parse(r.stdout) as Record<string, unknown> };
}

/** The verdict on quote-v4-trustee.bin with the collateral in `dir`, at 2023-07-01. */
function trusteeQuoteWith(dir: string) {
  return runJson(["--quote", join(TDX, "quote-v4-trustee.bin"), "--collateral", dir, "--at", "2023-07-01T00:00:00Z"]);
}

describe("cloister verify-evidence --tee tdx", () => {
  it("accepts quote-v4-trustee.bin with its collateral and CRLs at 2023-07-01 (exit 0)", () => {
    const r = runJson([
      "--quote",
      join(TDX, "quote-v4-trustee.bin"),
      "--collateral",
      COLLATERAL,
      "--at",
      "2023-07-01T00:00:00Z",
    ]);
    expect(r.status).toBe(0);
    expect(r.verdict).toMatchObject({
      valid: true,
      stage: null,
      code: null,
      tee: "tdx",
      simulated: false,
      version: 4,
      tcbStatus: "UpToDate",
      qeIdentityStatus: "UpToDate",
      debug: true,
      trailingBytes: 0,
      fmspc: "50806f000000",
      pceSvn: 11,
      revocationChecked: true,
      mrtd: "705ee9381b8633a9fbe532b52345e8433343d2868959f57889d84ca377c395b689cac1599ccea1b7d420483a9ce5f031",
      tdAttributes: "0100001000000000",
      collateralFiles: {
        tcbInfo: "tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json",
        qeIdentity: "qeidentity-td-qe-2023-06-08.json",
      },
    });
    expect((r.verdict.rtmrs as string[])[0]).toBe(
      "e940da7c2712d2790e2961e00484f4fa8e6f9eed71361655ae22699476b14f9e63867eb41edd4b480fef0c59f496b288",
    );
  });

  it("--json escapes invisible formatting characters of collateral file names (U+202E), which still round-trip", () => {
    // A name is whatever the directory holds: JSON.stringify escapes controls but leaves a
    // bidirectional override in, which makes a terminal show the name reversed from there on.
    const tcbInfo = "tcbinfo-\u202enosj.tsil-kcolb.json";
    const dir = collateralWith("collateral-bidi", [
      "qeidentity-td-qe-2023-06-08.json",
      "tcb-info-issuer-chain.pem",
      "qe-identity-issuer-chain.pem",
    ]);
    copyFileSync(join(COLLATERAL, "tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json"), join(dir, tcbInfo));
    const r = trusteeQuoteWith(dir);
    expect(r.verdict).toMatchObject({ collateralFiles: { tcbInfo } });
    expect(r.stdout).not.toContain("\u202e");
    expect(r.stdout).toContain("tcbinfo-\\u202enosj");
  });

  it("rejects the tampered QE report with TDX_QE_REPORT_SIGNATURE_INVALID (exit 1)", () => {
    const r = runJson([
      "--quote",
      join(TDX, "quote-v4-trustee-tampered-qe-report.bin"),
      "--at",
      "2023-07-01T00:00:00Z",
    ]);
    expect(r.status).toBe(1);
    expect(r.verdict).toMatchObject({ valid: false, stage: "verify", code: "TDX_QE_REPORT_SIGNATURE_INVALID" });
  });

  it("says when no TCB info matches the FMSPC, reports tcbStatus null and the trailing bytes", () => {
    // A QE identity and a TCB info for another platform only (no CRLs).
    const dir = collateralWith("collateral-2025", [
      "qeidentity-td-qe-2023-06-08.json",
      "tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json",
      "tcb-info-issuer-chain.pem",
      "qe-identity-issuer-chain.pem",
    ]);
    const r = runJson([
      "--quote",
      join(TDX, "quote-v4-gcp-2025.bin"),
      "--collateral",
      dir,
      "--at",
      "2025-09-12T00:00:00Z",
      "--collateral-signer-validity",
      "at-issue-date",
      "--accept-stale-collateral",
    ]);
    expect(r.status).toBe(0);
    expect(r.verdict).toMatchObject({ valid: true, tcbStatus: null, trailingBytes: 3065, trailingBytesAllZero: true });
    expect((r.verdict.collateralNotes as string[]).join()).toContain("no TCB info for FMSPC 00806f050000");
    expect(r.verdict.warnings).toEqual([
      expect.stringMatching(/QE identity signer certificate .* is expired \(accepted: at-issue-date\)/),
      expect.stringContaining("QE identity is past its nextUpdate 2023-07-08"),
      "TCB status not checked: --collateral has no TCB info for the quote's FMSPC (see collateralNotes)",
    ]);
  });

  it("warns that a status from TCB info alone checked neither the QE identity nor revocation", () => {
    const dir = collateralWith("tcbinfo-only", [
      "tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json",
      "tcb-info-issuer-chain.pem",
    ]);
    const r = trusteeQuoteWith(dir);
    expect(r.status).toBe(0);
    expect(r.verdict).toMatchObject({ valid: true, tcbStatus: "UpToDate", revocationChecked: false });
    expect(r.verdict.warnings).toEqual(
      expect.arrayContaining([
        "QE identity not checked: --collateral has no qeidentity-*.json (tcbStatus is the platform's only)",
        "revocation not checked: --collateral has no CRLs (*.der) for the PCK chain",
      ]),
    );
  });

  it("applies the expired-TCB-signer rule: strict fails, accept-expired-signer reports OutOfDate", () => {
    const args = [
      "--quote",
      join(TDX, "quote-v4-trustee-q6.bin"),
      "--collateral",
      COLLATERAL,
      "--at",
      "2025-11-01T00:00:00Z",
    ];
    // The 2023 CRLs in the directory are stale at 2025-11-01: explicitly accepted here.
    const strict = runJson([...args, "--accept-stale-collateral"]);
    expect(strict.status).toBe(1);
    expect(strict.verdict).toMatchObject({ valid: false, code: "COLLATERAL_SIGNER_EXPIRED" });
    const relaxed = runJson([
      ...args,
      "--accept-stale-collateral",
      "--collateral-signer-validity",
      "accept-expired-signer",
    ]);
    expect(relaxed.status).toBe(0);
    expect(relaxed.verdict).toMatchObject({ valid: true, tcbStatus: "OutOfDate", trailingBytes: 70 });
    const withoutStale = runJson([...args, "--collateral-signer-validity", "accept-expired-signer"]);
    expect(withoutStale.verdict).toMatchObject({ valid: false, code: "CRL_EXPIRED" });
  });

  it("appraises with --policy: a debug TD fails a policy that forbids debug; a bad policy is bad input (exit 2)", () => {
    const skip = { skip: { reason: "test" } };
    const policy = {
      version: 1,
      trustSimulator: false,
      maximumVerificationSkewSeconds: 60,
      snp: null,
      tdx: {
        debugAllowed: false,
        xfam: skip,
        tdAttributes: skip,
        mrseam: skip,
        mrtd: skip,
        rtmrs: [skip, skip, skip, skip],
        mrconfigid: skip,
        mrowner: skip,
        mrownerconfig: skip,
        mrservicetd: skip,
        acceptedTcbStatuses: ["UpToDate"],
        minimumTeeTcbSvn: skip,
        minimumQeSvn: skip,
        minimumPceSvn: skip,
        rejectedAdvisoryIds: skip,
      },
      azure: null,
    };
    const file = join(tmp, "policy.json");
    writeFileSync(file, JSON.stringify(policy));
    const args = [
      "--quote",
      join(TDX, "quote-v4-trustee.bin"),
      "--collateral",
      COLLATERAL,
      "--at",
      "2023-07-01T00:00:00Z",
    ];
    const r = runJson([...args, "--policy", file]);
    expect(r.status).toBe(1);
    expect(r.verdict).toMatchObject({ valid: false, stage: "appraise", tcbStatus: "UpToDate" });
    const violations = (r.verdict.appraisal as { violations: { code: string }[] }).violations.map((v) => v.code);
    expect(violations).toEqual([expect.stringMatching(/DEBUG/)]);

    writeFileSync(file, JSON.stringify({ ...policy, tdx: { ...policy.tdx, debugAllowed: true } }));
    expect(runJson([...args, "--policy", file]).verdict).toMatchObject({ valid: true, appraisal: { ok: true } });

    // TCB info alone (no QE identity, no CRLs): its status is the platform's only and meets no policy.
    const tcbInfoOnly = collateralWith("tcb-info-only", [
      "tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json",
      "tcb-info-issuer-chain.pem",
    ]);
    const partialArgs = ["--quote", join(TDX, "quote-v4-trustee.bin"), "--collateral", tcbInfoOnly];
    const partial = runJson([...partialArgs, "--at", "2023-06-20T00:00:00Z", "--policy", file]);
    expect(partial.status).toBe(1);
    expect(partial.verdict).toMatchObject({ valid: false, stage: "appraise", tcbStatus: "UpToDate" });
    expect((partial.verdict.appraisal as { violations: unknown[] }).violations).toEqual([
      {
        field: "tcbStatus",
        code: "TDX_TCB_STATUS_NOT_ACCEPTED",
        expected: "one of [UpToDate], with QE identity and revocation checked",
        found: "UpToDate (QE identity not checked; revocation not checked)",
      },
    ]);

    writeFileSync(file, JSON.stringify({ ...policy, tdx: { debugAllowed: true } }));
    const bad = run([...args, "--policy", file]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(new RegExp(`^cloister: POLICY_INVALID: --policy ${file}: attestation policy: `));
  });

  it("refuses options of other TEEs and a missing --quote (exit 2)", () => {
    expect(run(["--report", "x"]).status).toBe(2);
    const missing = run([]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain("--quote FILE is required");
  });
});
