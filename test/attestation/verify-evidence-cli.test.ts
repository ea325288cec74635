/**
 * `cloister verify-evidence`, spawned as a real process: `--policy` takes a client policy (the
 * `.cloister/policy.json` that `cloister up` writes) as well as an attestation policy; simulated
 * evidence refused under the pinned roots says so; a debuggable guest and an unchecked TCB status
 * are warned about (exit code unchanged: verification is not appraisal); the text summary marks
 * fields unverified only when it printed some, brackets a TCB breakdown only when there is one, and
 * points an expiry to --at when no --at was given.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { insecureSimulatedAmdHierarchy, simulateSnpReport } from "../../attestation/sim/index.ts";
import { simulatorAttestationPolicy, simulatorClientPolicy } from "../../client/dev-policy.ts";
import { runCloister } from "../helpers/cli.ts";
import { snpPolicyJson } from "./sim-helpers.ts";

const F = fileURLToPath(new URL("../fixtures/attestation/", import.meta.url));
const SNP = join(F, "snp");
const TDX = join(F, "tdx");
const dir = mkdtempSync(join(tmpdir(), "cloister-verify-evidence-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const DEBUG_SNP = "the guest policy allows debugging (POLICY.DEBUG): its memory is readable and writable by the host";
const DEBUG_TDX = "the TD is debuggable (TDATTRIBUTES.DEBUG): its memory is readable by the host";
const NO_COLLATERAL = "TCB status not checked: no --collateral given";

const skip = { skip: { reason: "not used by this test" } };
/** An attestation policy that the real Milan (GCP) report meets; the go-sev-guest one only with debugAllowed. */
const attestation = (debugAllowed: boolean) => ({
  version: 1,
  trustSimulator: false,
  maximumVerificationSkewSeconds: 300,
  snp: snpPolicyJson({
    debugAllowed,
    minimumTcb: { bootloader: 0, tee: 0, snp: 0, microcode: 0, fmc: 0 },
    measurements: skip,
    hostData: skip,
    allowedProducts: ["Milan", "Genoa"],
  }),
  tdx: null,
  azure: null,
});
/** A client policy in the format `cloister up` writes (client/policy.ts). */
const clientPolicy = (attestationSection: unknown) => ({
  version: 1,
  acceptedEvidence: ["sev-snp"],
  attestation: attestationSection,
  manifest: {
    trustedSigners: [{ kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }],
    allowedModelDigests: skip,
    allowedServices: skip,
  },
  freshness: { maxClockSkewSeconds: 120 },
});
function policyFile(name: string, body: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(body));
  return file;
}

const snp = (report: string, cert: string, at: string, ...extra: string[]) =>
  runCloister([
    "verify-evidence",
    "--tee",
    "snp",
    "--report",
    join(SNP, report),
    "--cert",
    join(SNP, cert),
    "--at",
    at,
    ...extra,
  ]);
const gcp = (...extra: string[]) =>
  snp("milan-gcp-v5-report.bin", "milan-gcp-v5-vcek.pem", "2026-01-01T00:00:00Z", ...extra);
const debugSnp = (...extra: string[]) =>
  snp("milan-gosevguest-v2-report.bin", "milan-gosevguest-v2-vcek.der", "2023-01-01T00:00:00Z", ...extra);
const tdx = (...extra: string[]) =>
  runCloister([
    "verify-evidence",
    "--tee",
    "tdx",
    "--quote",
    join(TDX, "quote-v4-trustee.bin"),
    "--at",
    "2023-07-01T00:00:00Z",
    ...extra,
  ]);

describe("verify-evidence --policy with a client policy file", () => {
  it("appraises against the client policy's attestation section", async () => {
    const accepting = policyFile("client-ok.json", clientPolicy(attestation(false)));
    const r = await gcp("--json", "--policy", accepting);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: true, appraisal: { ok: true, violations: [] } });

    // The same section decides: it forbids debug, so the debug report fails appraisal.
    const d = await debugSnp("--json", "--policy", accepting);
    expect(d.code).toBe(1);
    expect(JSON.parse(d.stdout)).toMatchObject({ valid: false, stage: "appraise", code: "SNP_DEBUG_NOT_ALLOWED" });
    // Its error line names the code once, in front (not again after the violation it leads with).
    const line = await debugSnp("--policy", accepting);
    expect(line.code).toBe(1);
    expect(line.stderr).toMatch(/^cloister: SNP_DEBUG_NOT_ALLOWED: [^\n]+\n$/);
    expect(line.stderr.split("SNP_DEBUG_NOT_ALLOWED").length - 1).toBe(1);
  });

  it("applies the client policy's acceptedEvidence: SEV-SNP evidence fails a policy that accepts only TDX", async () => {
    // Both sections set, only TDX accepted (a policy naming a type whose section is null does not parse).
    const tdx = simulatorAttestationPolicy("sim-tdx", "ab".repeat(48)).tdx;
    const tdxOnly = policyFile("client-tdx-only.json", {
      ...clientPolicy({ ...attestation(false), tdx }),
      acceptedEvidence: ["tdx"],
    });
    const r = await gcp("--json", "--policy", tdxOnly);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: false, stage: "appraise", code: "TEE_NOT_ACCEPTED" });
  });

  it("refuses an invalid client policy as bad input (exit 2), naming the file and the field", async () => {
    const section = { ...attestation(false), snp: { ...attestation(false).snp, debugAllowed: "no" } };
    const bad = policyFile("client-bad.json", clientPolicy(section));
    const r = await gcp("--policy", bad);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(
      r.stderr.startsWith(`cloister: POLICY_INVALID: --policy ${bad}: client policy: attestation.snp.debugAllowed: `),
    ).toBe(true);

    const { freshness: _, ...noFreshness } = clientPolicy(attestation(false));
    const missingFile = policyFile("client-missing.json", noFreshness);
    const missing = await gcp("--policy", missingFile);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      `cloister: POLICY_INVALID: --policy ${missingFile}: client policy: freshness: expected object, found nothing\n`,
    );
  });

  it("still refuses an attestation policy with an unknown field, and text that is not JSON: bad input, the file named", async () => {
    const extra = policyFile("attestation-extra.json", { ...attestation(false), extra: 1 });
    const r = await gcp("--policy", extra);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `cloister: POLICY_INVALID: --policy ${extra}: attestation policy: extra: expected no such field, found 1\n`,
    );
    // Evidence that fails a valid policy is a verification failure, not bad input.
    expect((await debugSnp("--policy", policyFile("attestation-ok.json", attestation(false)))).code).toBe(1);
    const notJson = join(dir, "not-json.json");
    writeFileSync(notJson, "{ version: 1");
    const bad = await gcp("--policy", notJson);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      `cloister: POLICY_INVALID: --policy ${notJson}: expected a JSON policy, found text that is not valid JSON (at position 2)\n`,
    );
  });

  it("says in --help which formats --policy takes", async () => {
    const r = await runCloister(["verify-evidence", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout.replace(/\s+/g, " ")).toContain(
      "an attestation policy, or a client policy such as the .cloister/policy.json",
    );
  });
});

describe("verify-evidence on simulated SNP evidence", () => {
  let report: string;
  let vcek: string;
  const measurement = new Uint8Array(48).fill(0x42);
  beforeAll(() => {
    const hierarchy = insecureSimulatedAmdHierarchy();
    report = join(dir, "sim-report.bin");
    vcek = join(dir, "sim-vcek.der");
    writeFileSync(report, simulateSnpReport(hierarchy, { reportData: new Uint8Array(64).fill(1), measurement }));
    writeFileSync(vcek, hierarchy.vcek.certificate);
  });
  const sim = (...extra: string[]) =>
    runCloister(["verify-evidence", "--tee", "snp", "--report", report, "--cert", vcek, ...extra]);

  it("without a policy that trusts the simulator: ROOT_NOT_TRUSTED says it is simulator evidence", async () => {
    const r = await sim();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^cloister: ROOT_NOT_TRUSTED: .*among the 3 given \(Milan, Genoa, Turin\)/);
    expect(r.stderr).toContain(
      "this is INSECURE Cloister simulator evidence, which these trust anchors exclude (to verify it, give --policy FILE with a client policy that has attestation.trustSimulator: true, such as the .cloister/policy.json that cloister up writes, or an attestation policy with trustSimulator: true)",
    );
  });

  it("with a client policy that trusts the simulator (as cloister up writes it): valid, simulated", async () => {
    const policy = simulatorClientPolicy({
      tee: "sim-snp",
      measurement: toHex(measurement),
      operatorKey: { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
      modelSha256: "ab".repeat(32),
      serviceName: "chat",
    });
    const r = await sim("--json", "--policy", policyFile("client-sim.json", policy));
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: true, simulated: true, appraisal: { ok: true } });
    expect(r.code).toBe(0);
  });
  it("with a bare attestation policy whose top-level trustSimulator is true (the hint's other form): valid, simulated", async () => {
    const policy = simulatorAttestationPolicy("sim-snp", toHex(measurement));
    expect(policy.trustSimulator).toBe(true);
    const r = await sim("--json", "--policy", policyFile("attestation-sim.json", policy));
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: true, simulated: true, appraisal: { ok: true } });
    expect(r.code).toBe(0);
  });
});

describe("verify-evidence warnings", () => {
  it("tdx: a debug TD without --collateral is valid (exit 0) with both warnings, in text and JSON", async () => {
    const json = await tdx("--json");
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      valid: true,
      debug: true,
      tcbStatus: null,
      warnings: [DEBUG_TDX, NO_COLLATERAL],
    });
    const text = await tdx();
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^tdx: VALID\n/);
    expect(text.stdout).toContain(`  WARNING: ${DEBUG_TDX}\n`);
    expect(text.stdout).toContain(`  WARNING: ${NO_COLLATERAL}\n`);
  });

  it("tdx: with --collateral the TCB status is checked, so only the debug warning remains", async () => {
    const r = await tdx("--json", "--collateral", join(TDX, "collateral"));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: true, tcbStatus: "UpToDate", warnings: [DEBUG_TDX] });
  });

  it("snp: a report whose guest policy allows debugging is valid (exit 0) with a warning; others have none", async () => {
    const json = await debugSnp("--json");
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ valid: true, debug: true, warnings: [DEBUG_SNP] });
    const text = await debugSnp();
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`  WARNING: ${DEBUG_SNP}\n`);
    const clean = await gcp("--json");
    expect(JSON.parse(clean.stdout)).toMatchObject({ valid: true, debug: false, warnings: [] });
  });
});

describe("verify-evidence text output", () => {
  const MAA = join(F, "azure", "maa");
  const TRUSTEE_WITH_COLLATERAL = [
    "--quote",
    join(TDX, "quote-v4-trustee.bin"),
    "--collateral",
    join(TDX, "collateral"),
  ];
  const verify = (tee: string, ...args: string[]) => runCloister(["verify-evidence", "--tee", tee, ...args]);
  const maa = (token: string, ...extra: string[]) =>
    verify(
      "maa",
      "--token",
      join(MAA, token),
      "--jwks",
      join(MAA, "jwks-sharedwus-2022-05-31T22-47-56Z.json"),
      ...extra,
    );

  it("says the fields above are unverified only when fields were printed above", async () => {
    // An MAA token whose signature fails prints no field: nothing above to call unverified.
    const bare = await maa("maa-sgx-sharedwus-2022-05-31-tampered-signature.jwt", "--at", "2022-05-31T23:00:00Z");
    expect(bare.code).toBe(1);
    expect(bare.stdout).toBe("maa: INVALID\n");
    expect(bare.stderr).toMatch(/^cloister: MAA_SIGNATURE_INVALID: /);
    // A TD quote refused at the time its CRL expired prints its parsed fields, marked unverified.
    const fields = await verify("tdx", ...TRUSTEE_WITH_COLLATERAL, "--at", "2024-01-01T00:00:00Z");
    expect(fields.code).toBe(1);
    expect(fields.stdout).toMatch(/^tdx: INVALID\n {2}version {10}4\n[\s\S]*\n {2}\(fields above are unverified\)\n$/);
  });

  it("prints the reported TCB's breakdown in brackets, the same for a TD on Azure as for --tee tdx", async () => {
    const evidence = join(F, "azure", "tdx-vtpm", "tdx-evidence-v1.trustee.json");
    const r = await verify("azure-tdx", "--evidence", evidence, "--at", "2024-01-01T00:00:00Z");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      "\n  reported TCB     02010600000000000000000000000000 (tdxModuleSvn 2, tdxModuleMajorVersion 1)\n",
    );
    const t = await tdx();
    expect(t.stdout).toContain(
      "\n  reported TCB     03000500000000000000000000000000 (tdxModuleSvn 3, tdxModuleMajorVersion 0)\n",
    );
  });

  const AT_HINT = "; for evidence captured earlier, pass --at with a time it was valid";
  it("without --at, an expired certificate, CRL or MAA token points to --at; with --at it does not", async () => {
    const crl = await verify("tdx", ...TRUSTEE_WITH_COLLATERAL);
    expect(crl.code).toBe(1);
    expect(crl.stderr).toMatch(
      new RegExp(
        `^cloister: CRL_EXPIRED: CRL from "[^\\n]*, verification time [^\\n]*${AT_HINT}; otherwise get current collateral [^\\n]*\\n$`,
      ),
    );
    const token = await maa("maa-sgx-sharedwus-2022-05-31.jwt");
    expect(token.code).toBe(1);
    expect(token.stderr).toMatch(new RegExp(`^cloister: MAA_TOKEN_EXPIRED: MAA token: exp [^\\n]*${AT_HINT}\\n$`));
    // The AWS capture's VLEK (valid one year) expired 2025-12-10.
    const cert = await verify(
      "snp",
      "--report",
      join(SNP, "milan-aws-vlek-v3-report.bin"),
      "--cert",
      join(SNP, "milan-aws-vlek.der"),
    );
    expect(cert.code).toBe(1);
    expect(cert.stderr).toMatch(new RegExp(`^cloister: CERT_EXPIRED: VLEK certificate [^\\n]*${AT_HINT}\\n$`));

    // A time given: the user chose it, no hint.
    const given = await maa("maa-sgx-sharedwus-2022-05-31.jwt", "--at", "2023-01-01T00:00:00Z");
    expect(given.stderr).toMatch(/^cloister: MAA_TOKEN_EXPIRED: MAA token: exp [^\n]*, found at or before it\n$/);
    // Another failure, no --at: no hint.
    const other = await maa("maa-sgx-sharedwus-2022-05-31-tampered-signature.jwt");
    expect(other.stderr).toMatch(/^cloister: MAA_SIGNATURE_INVALID: [^\n]*"\n$/);
  });
});
