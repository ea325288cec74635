/** `cloister verify-evidence --tee snp`: spawned as a real process; exit codes and JSON fields. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runCloister } from "../helpers/cli.ts";

const SNP = fileURLToPath(new URL("../fixtures/attestation/snp/", import.meta.url));

const run = (args: string[]) => runCloister(args);

const verify = (report: string, cert: string, at: string, ...extra: string[]) =>
  run(["verify-evidence", "--tee", "snp", "--report", SNP + report, "--cert", SNP + cert, "--at", at, ...extra]);

describe("cloister verify-evidence --tee snp", () => {
  it("accepts a genuine report: exit 0 and the JSON fields", async () => {
    const r = await verify("milan-gcp-v5-report.bin", "milan-gcp-v5-vcek.pem", "2026-01-01T00:00:00Z", "--json");
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout);
    expect(v).toMatchObject({
      valid: true,
      stage: null,
      code: null,
      reason: null,
      tee: "snp",
      simulated: false,
      version: 5,
      measurement: "b747d55452e0b9e9079770a49e397c5e6d9573581e246da7baac4f28b5cdc5b1b6d19251b8ee600fd16a3708f58406f3",
      reportData: "0".repeat(128),
      chipId:
        "980cf7b61876cb37fd517cd44ce11c72d43c5408e66ab39138370ec59bc195e063254cb501d87d82f0b8b8dc774bcfe28019447711598f007390e4accc405361",
      reportedTcb: { raw: "0xde1b000000000004", bootloader: 4, tee: 0, snp: 27, microcode: 222 },
      policy: "0x30000",
      debug: false,
      signingKey: "VCEK",
      tcbStatus: null,
    });
    expect(v.details.product).toBe("Milan");
    expect(v.details.certProductName).toBe("Milan-B0");
  });

  it("accepts the VLEK report with a DER cert and reports debug for the go-sev-guest report", async () => {
    const vlek = await verify("milan-aws-vlek-v3-report.bin", "milan-aws-vlek.der", "2025-06-01T00:00:00Z", "--json");
    expect(vlek.code).toBe(0);
    expect(JSON.parse(vlek.stdout)).toMatchObject({ valid: true, signingKey: "VLEK", version: 3 });
    const dbg = await verify(
      "milan-gosevguest-v2-report.bin",
      "milan-gosevguest-v2-vcek.der",
      "2023-01-01T00:00:00Z",
      "--json",
    );
    expect(dbg.code).toBe(0);
    expect(JSON.parse(dbg.stdout)).toMatchObject({ valid: true, debug: true, policy: "0xb0000" });
  });

  it("rejects a tampered report: exit 1, JSON names the signature failure", async () => {
    const r = await verify(
      "milan-gcp-v5-report-tampered-measurement.bin",
      "milan-gcp-v5-vcek.pem",
      "2026-01-01T00:00:00Z",
      "--json",
    );
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      valid: false,
      stage: "verify",
      code: "SNP_REPORT_SIGNATURE_INVALID",
      simulated: null,
    });
  });

  it("rejects the expired VLEK with CERT_EXPIRED (summary output + failure line)", async () => {
    const r = await verify("milan-aws-vlek-v3-report.bin", "milan-aws-vlek.der", "2026-01-01T00:00:00Z");
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("snp: INVALID");
    expect(r.stdout).toContain("unverified");
    expect(r.stderr.trim()).toMatch(/^cloister: CERT_EXPIRED: /);
  });

  it("prints a readable summary for a valid report", async () => {
    const r = await verify("genoa-azure-v3-report.bin", "genoa-azure-v3-vcek.pem", "2026-01-01T00:00:00Z");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("snp: VALID");
    expect(r.stdout).toMatch(/reported TCB\s+0x541700000000000a \(bootloader 10, tee 0, snp 23, microcode 84\)/);
    expect(r.stderr).toBe("");
  });

  it("reports a malformed report as a parse failure (exit 1)", async () => {
    const r = await verify("milan-aws-vlek.der", "milan-aws-vlek.der", "2025-06-01T00:00:00Z", "--json");
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      valid: false,
      stage: "parse",
      code: "SNP_REPORT_SIZE",
      version: null,
    });
  });

  it("usage errors exit 2: missing file, missing --cert, foreign option, bad --tee, bad --at", async () => {
    const report = `${SNP}milan-gcp-v5-report.bin`;
    const cert = `${SNP}milan-gcp-v5-vcek.pem`;
    const [missingFile, missingCert, foreign, badTee, badAt] = await Promise.all([
      run(["verify-evidence", "--tee", "snp", "--report", `${SNP}nope.bin`, "--cert", cert]),
      run(["verify-evidence", "--tee", "snp", "--report", report]),
      run(["verify-evidence", "--tee", "snp", "--report", report, "--cert", cert, "--quote", "q.bin"]),
      run(["verify-evidence", "--tee", "sgx"]),
      verify("milan-gcp-v5-report.bin", "milan-gcp-v5-vcek.pem", "not-a-time"),
    ]);
    expect([missingFile.code, missingCert.code, foreign.code, badTee.code, badAt.code]).toEqual([2, 2, 2, 2, 2]);
    expect(missingFile.stderr).toContain(`--report ${SNP}nope.bin: cannot read (ENOENT`);
    expect(missingCert.stderr).toContain("--cert FILE is required");
    expect(foreign.stderr).toContain("--quote does not apply");
    expect(badAt.stderr).toContain(
      '--at: expected an ISO-8601 UTC time, YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DDTHH:MM:SS.sssZ, found "not-a-time"',
    );
  });

  describe("--policy", () => {
    const dir = mkdtempSync(join(tmpdir(), "cloister-snp-cli-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const skip = { skip: { reason: "not used by this test" } };
    const policy = (snp: Record<string, unknown>) => {
      const file = join(dir, `policy-${Object.keys(snp).join("-") || "base"}.json`);
      const body = {
        version: 1,
        trustSimulator: false,
        maximumVerificationSkewSeconds: 300,
        snp: {
          debugAllowed: false,
          migrationAgentAllowed: false,
          smtAllowed: true,
          allowedVmpls: [0],
          minimumTcb: { bootloader: 0, tee: 0, snp: 0, microcode: 0, fmc: 0 },
          measurements: skip,
          hostData: skip,
          idKeyDigests: skip,
          authorKeyDigests: skip,
          minimumGuestSvn: 0,
          allowedProducts: ["Milan", "Genoa"],
          signingKeys: ["vcek"],
          cxlAllowed: false,
          minimumAbi: skip,
          minimumFirmware: skip,
          requireGuestPolicy: skip,
          requirePlatformInfo: skip,
          tioAllowed: true,
          requireMitigations: skip,
          ...snp,
        },
        tdx: null,
        azure: null,
      };
      writeFileSync(file, JSON.stringify(body));
      return file;
    };

    it("passes a report that meets the policy (exit 0, appraisal ok)", async () => {
      const r = await verify(
        "milan-gcp-v5-report.bin",
        "milan-gcp-v5-vcek.pem",
        "2026-01-01T00:00:00Z",
        "--json",
        "--policy",
        policy({}),
      );
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({
        valid: true,
        appraisal: { ok: true, violations: [], reportDataChecked: false },
      });
    });

    it("fails the debug-enabled report with every violation listed (exit 1, stage appraise)", async () => {
      const file = policy({ minimumTcb: { bootloader: 0, tee: 0, snp: 0, microcode: 200, fmc: 0 } });
      const r = await verify(
        "milan-gosevguest-v2-report.bin",
        "milan-gosevguest-v2-vcek.der",
        "2023-01-01T00:00:00Z",
        "--json",
        "--policy",
        file,
      );
      expect(r.code).toBe(1);
      const v = JSON.parse(r.stdout);
      expect(v).toMatchObject({ valid: false, stage: "appraise", code: "SNP_DEBUG_NOT_ALLOWED", simulated: false });
      const codes = v.appraisal.violations.map((x: { code: string }) => x.code);
      expect(codes).toEqual(expect.arrayContaining(["SNP_DEBUG_NOT_ALLOWED", "SNP_TCB_TOO_LOW"]));
      const text = await verify(
        "milan-gosevguest-v2-report.bin",
        "milan-gosevguest-v2-vcek.der",
        "2023-01-01T00:00:00Z",
        "--policy",
        file,
      );
      expect(text.code).toBe(1);
      expect(text.stdout).toMatch(/appraisal\s+2 violations/);
      expect(text.stderr).toMatch(/^cloister: SNP_DEBUG_NOT_ALLOWED: /);
    });

    it("refuses an invalid policy before looking at the evidence, and an unreadable one, as bad input (exit 2)", async () => {
      const bad = join(dir, "bad.json");
      writeFileSync(bad, JSON.stringify({ version: 1 }));
      const [invalid, missing] = await Promise.all([
        verify("milan-gcp-v5-report.bin", "milan-gcp-v5-vcek.pem", "2026-01-01T00:00:00Z", "--policy", bad),
        verify(
          "milan-gcp-v5-report.bin",
          "milan-gcp-v5-vcek.pem",
          "2026-01-01T00:00:00Z",
          "--policy",
          join(dir, "none.json"),
        ),
      ]);
      expect(invalid.code).toBe(2);
      expect(invalid.stderr).toMatch(new RegExp(`^cloister: POLICY_INVALID: --policy ${bad}: attestation policy: `));
      expect(missing.code).toBe(2);
      // Printed with its code (docs/errors.md, verify-evidence table).
      expect(missing.stderr).toBe(
        `cloister: USAGE: --policy ${join(dir, "none.json")}: cannot read (ENOENT: no such file; check the path)\n`,
      );
    });
  });

  it("reports an unreadable --report as a usage error, printed with its code", async () => {
    const r = await run(["verify-evidence", "--tee", "snp", "--report", `${SNP}none.bin`, "--cert", `${SNP}none.pem`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `cloister: USAGE: --report ${SNP}none.bin: cannot read (ENOENT: no such file; check the path)\n`,
    );
  });
});
