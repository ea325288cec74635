/** `cloister verify-evidence --tee azure-snp|azure-tdx|maa`: spawned as real processes; exit codes and JSON. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { type CliRun, runCloister } from "../helpers/cli.ts";

const F = fileURLToPath(new URL("../fixtures/attestation/", import.meta.url));

type Run = CliRun;
const cloister = (args: string[]) => runCloister(args);

const JWKS = `${F}azure/maa/jwks-sharedwus-2022-05-31T22-47-56Z.json`;

/** Policies for the Azure TDX fixture: one its PCRs, paravisor MRTD and vm-configuration meet, one they do not. */
const TDX_PCR0 = "782b20b10f55cc46e2142cc2145d548698073e5beb82752c8d7f9279f0d8a273";
const TDX_PCR4 = "1d3b1cb141906329dd8ab09584214a88dffaf839ed14c8ef677a6bcf6ea27a02";
const TDX_MRTD = "024a32b070383331181619fa387cb4d55d1e38879f989933055ccad5bc2db795d1737b66205949d15469dc8c1ba7ab7b";
const POLICIES = mkdtempSync(join(tmpdir(), "cloister-azure-policy-"));
function azureTdxPolicy(name: string, pcr0: string, consoleAllowed: boolean): string {
  const skip = { skip: { reason: "test: only PCRs and vm-configuration" } };
  const file = join(POLICIES, name);
  writeFileSync(
    file,
    JSON.stringify({
      version: 1,
      trustSimulator: false,
      maximumVerificationSkewSeconds: 300,
      snp: null,
      tdx: null,
      azure: {
        snp: null,
        tdx: {
          debugAllowed: false,
          xfam: skip,
          tdAttributes: skip,
          mrseam: skip,
          mrtd: [TDX_MRTD],
          rtmrs: [skip, skip, skip, skip],
          mrconfigid: skip,
          mrowner: skip,
          mrownerconfig: skip,
          mrservicetd: skip,
          acceptedTcbStatuses: skip,
          minimumTeeTcbSvn: skip,
          minimumQeSvn: skip,
          minimumPceSvn: skip,
          rejectedAdvisoryIds: skip,
        },
        pcrs: { "0": [pcr0], "4": [TDX_PCR4] },
        secureBootRequired: true,
        consoleAllowed,
      },
    }),
  );
  return file;
}
const TDX_ARGS = ["--tee", "azure-tdx", "--evidence", `${F}azure/tdx-vtpm/tdx-evidence-v1.trustee.json`];
/** The real SGX-enclave MAA token under its key set, checked inside its lifetime. */
const MAA_ARGS = ["--tee", "maa", "--token", `${F}azure/maa/maa-sgx-sharedwus-2022-05-31.jwt`, "--jwks", JWKS];
const MAA_AT = ["--at", "2022-05-31T23:00:00Z", "--json"];
const CASES = {
  genoa: [
    "--tee",
    "azure-snp",
    "--evidence",
    `${F}azure/snp-vtpm/genoa-evidence.trustee.json`,
    "--at",
    "2026-01-01T00:00:00Z",
    "--nonce",
    "0218488bae25d2509232bf676f1a66a30d7372add909109b36016ef136f2938ca05475f8b46094de6b64270ea35d950f",
    "--json",
  ],
  milanWrongNonce: [
    "--tee",
    "azure-snp",
    "--evidence",
    `${F}azure/snp-vtpm/milan-evidence-v0.trustee.json`,
    "--at",
    "2026-01-01T00:00:00Z",
    "--nonce",
    "00",
    "--json",
  ],
  tdx: [
    "--tee",
    "azure-tdx",
    "--evidence",
    `${F}azure/tdx-vtpm/tdx-evidence-v1.trustee.json`,
    "--at",
    "2024-01-01T00:00:00Z",
    "--json",
  ],
  tdxText: [...TDX_ARGS, "--at", "2024-01-01T00:00:00Z"],
  /** The TD quote inside the Azure TDX evidence, verified alone. */
  tdxQuoteAlone: [
    "--tee",
    "tdx",
    "--quote",
    `${F}azure/tdx-vtpm/tdx-td-quote-v4.bin`,
    "--at",
    "2024-01-01T00:00:00Z",
    "--json",
  ],
  tdxPolicyMet: [
    ...TDX_ARGS,
    "--at",
    "2024-01-01T00:00:00Z",
    "--policy",
    azureTdxPolicy("met.json", TDX_PCR0, true),
    "--json",
  ],
  tdxPolicyNotMet: [
    ...TDX_ARGS,
    "--at",
    "2024-01-01T00:00:00Z",
    "--policy",
    azureTdxPolicy("not-met.json", "00".repeat(32), false),
    "--json",
  ],
  wrongKind: [
    "--tee",
    "azure-tdx",
    "--evidence",
    `${F}azure/snp-vtpm/milan-evidence-v2.trustee.json`,
    "--at",
    "2026-01-01T00:00:00Z",
    "--json",
  ],
  maaValid: [...MAA_ARGS, ...MAA_AT],
  maaIssuerChecked: [...MAA_ARGS, "--issuer", "https://sharedwus.wus.attest.azure.net", ...MAA_AT],
  maaOtherIssuer: [...MAA_ARGS, "--issuer", "https://myinstance.eus.attest.azure.net", ...MAA_AT],
  maaNone: [
    "--tee",
    "maa",
    "--token",
    `${F}azure/maa/maa-sgx-draft-policy-alg-none-sharedwus-2022-05-31.jwt`,
    "--jwks",
    JWKS,
    "--at",
    "2022-05-31T23:00:00Z",
    "--json",
  ],
  maaSnpUnknownKey: [
    "--tee",
    "maa",
    "--token",
    `${F}azure/maa/maa-sevsnpvm-sharedweu-test-2025-04-08.jwt`,
    "--jwks",
    JWKS,
    "--at",
    "2025-04-08T05:00:00Z",
  ],
  nonceOnSnp: [
    "--tee",
    "snp",
    "--report",
    `${F}snp/milan-gcp-v5-report.bin`,
    "--cert",
    `${F}snp/milan-gcp-v5-vcek.pem`,
    "--nonce",
    "00",
  ],
  issuerOnAzure: [
    "--tee",
    "azure-snp",
    "--evidence",
    `${F}azure/snp-vtpm/genoa-evidence.trustee.json`,
    "--issuer",
    "https://sharedwus.wus.attest.azure.net",
  ],
} as const;

const results: Partial<Record<keyof typeof CASES, Run>> = {};

beforeAll(async () => {
  const names = Object.keys(CASES) as (keyof typeof CASES)[];
  // two at a time: the machine has two cores
  for (let i = 0; i < names.length; i += 2) {
    const batch = names.slice(i, i + 2);
    const runs = await Promise.all(batch.map((n) => cloister(["verify-evidence", ...CASES[n]])));
    batch.forEach((n, j) => {
      results[n] = runs[j] as Run;
    });
  }
}, 240_000);

const run = (name: keyof typeof CASES): Run => results[name] as Run;

describe("cloister verify-evidence (Azure and MAA)", () => {
  it("accepts the Genoa Azure SNP evidence with its nonce, exit 0, with the parsed values", () => {
    const r = run("genoa");
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout);
    expect(v).toMatchObject({ valid: true, stage: null, code: null, tee: "azure-snp", simulated: false, version: 3 });
    expect(v.measurement).toBe(
      "f57dc09a507c6ecd82369bffb600f0003792f4d99bc26e985ec0c266fc34faf3706faf814c9e61065768a6ff917c89ae",
    );
    expect(v.reportedTcb.raw).toBe("0x541700000000000a");
    expect(v.details.runtimeDataSha256).toBe("b581f12e29a2d7d64e5e0b738d563879a78b51c644d0fa0cce02b48699f6bf5f");
    expect(v.details.vmUniqueId).toBe("390CBCF5-6C67-4D9B-98EF-C3F1699CC8FC");
    expect(v.details.pcrs["0"]).toBe("afd689d0bb1c5f36f023fbaf574135f555a28a10c1f6b938d2a25e70c7783338");
    expect(v.details.nonceChecked).toBe(true);
  });

  it("refuses a wrong --nonce with AZURE_TPM_NONCE_MISMATCH, exit 1", () => {
    const r = run("milanWrongNonce");
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: false, stage: "verify", code: "AZURE_TPM_NONCE_MISMATCH" });
  });

  it("accepts the Azure TDX evidence and reports that the nonce was not checked", () => {
    const r = run("tdx");
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout);
    expect(v).toMatchObject({ valid: true, tee: "azure-tdx", simulated: false, version: 4 });
    expect(v.details.runtimeDataSha256).toBe("9734504f161d104c74e3165c15f779b06a9bb40dfa71937817d7eee68e593839");
    expect(v.details.pcrs["0"]).toBe("782b20b10f55cc46e2142cc2145d548698073e5beb82752c8d7f9279f0d8a273");
    expect(v.details.nonceChecked).toBe(false);
    expect(v.details.tpmExtraData).toBe("6368616c6c656e6765");
  });

  it("breaks the Azure TD's reported TCB down as --tee tdx does (TDX module SVN and major version)", () => {
    expect(JSON.parse(run("tdx").stdout).reportedTcb).toEqual({
      raw: "02010600000000000000000000000000",
      tdxModuleSvn: 2,
      tdxModuleMajorVersion: 1,
    });
  });

  it("reports the Azure TD's platform TCB as --tee tdx does its quote's (PCK FMSPC, PCE and SGX TCB components, QE ISVSVN)", () => {
    const azure = JSON.parse(run("tdx").stdout);
    const alone = JSON.parse(run("tdxQuoteAlone").stdout);
    expect(alone).toMatchObject({ valid: true, measurement: azure.measurement });
    const platform = ["fmspc", "pceId", "pceSvn", "sgxTcbComponents", "sgxType"];
    expect(Object.fromEntries(platform.map((k) => [k, azure[k]]))).toEqual({
      fmspc: "00806f050000",
      pceId: "0000",
      pceSvn: 11,
      sgxTcbComponents: [6, 6, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0],
      sgxType: 1,
    });
    expect(Object.fromEntries(platform.map((k) => [k, alone[k]]))).toEqual(
      Object.fromEntries(platform.map((k) => [k, azure[k]])),
    );
    expect(azure.details).toMatchObject({ fmspc: "00806f050000", pceSvn: 11, qeIsvSvn: alone.qe.isvSvn });
    const text = run("tdxText");
    expect(text.code).toBe(0);
    expect(text.stdout).toContain("\n  fmspc            00806f050000\n  pceSvn           11\n  qeIsvSvn         5\n");
  });

  it("warns that the Azure TD's TCB status is not checked (azure-tdx takes no collateral), in text and JSON", () => {
    const NO_TCB = "TCB status not checked: --tee azure-tdx takes no collateral (TCB info, QE identity, CRLs)";
    expect(JSON.parse(run("tdx").stdout)).toMatchObject({ valid: true, tcbStatus: null, warnings: [NO_TCB] });
    expect(run("tdxText").stdout).toContain(`  WARNING: ${NO_TCB}\n`);
  });

  it("appraises Azure evidence with --policy: accepted when its PCRs and vm-configuration meet policy.azure", () => {
    const met = run("tdxPolicyMet");
    expect(met.code).toBe(0);
    expect(JSON.parse(met.stdout)).toMatchObject({ valid: true, appraisal: { ok: true, violations: [] } });
    const notMet = run("tdxPolicyNotMet");
    expect(notMet.code).toBe(1);
    const v = JSON.parse(notMet.stdout);
    expect(v).toMatchObject({ valid: false, stage: "appraise", code: "AZURE_PCR_NOT_ALLOWED" });
    expect(v.appraisal.violations.map((x: { field: string; code: string }) => [x.field, x.code])).toEqual([
      ["PCR[0]", "AZURE_PCR_NOT_ALLOWED"],
      ["vm-configuration.console-enabled", "AZURE_CONSOLE_NOT_ALLOWED"],
    ]);
  });

  it("refuses SNP evidence given as --tee azure-tdx", () => {
    const r = run("wrongKind");
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: false, code: "AZURE_EVIDENCE_KIND_MISMATCH" });
  });

  it("accepts a real MAA token under its key set, exit 0", () => {
    const r = run("maaValid");
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout);
    expect(v).toMatchObject({ valid: true, tee: "maa", simulated: false });
    expect(v.details).toMatchObject({ kid: "XxRc2vLh1E5FrsNawnRH3PzuFgqg3q7NvCdnjoJHBGE=", attestationType: "sgx" });
    expect(v.details.claims["x-ms-sgx-mrenclave"]).toBe(
      "292a1f4b519e46627eb2478a3d9851405653c5b4b0a6925de843834d9216850e",
    );
  });

  it("says whether the issuer was checked: not without --issuer, yes with it, and refuses another one", () => {
    expect(JSON.parse(run("maaValid").stdout).details).toMatchObject({
      issuer: "https://sharedwus.wus.attest.azure.net",
      issuerChecked: false,
    });
    const checked = run("maaIssuerChecked");
    expect(checked.code).toBe(0);
    expect(JSON.parse(checked.stdout).details).toMatchObject({ issuerChecked: true });
    const other = run("maaOtherIssuer");
    expect(other.code).toBe(1);
    expect(JSON.parse(other.stdout)).toMatchObject({
      valid: false,
      code: "MAA_ISSUER_MISMATCH",
      reason:
        'MAA token: iss expected "https://myinstance.eus.attest.azure.net", found "https://sharedwus.wus.attest.azure.net"',
    });
  });

  it("refuses the alg:none token, exit 1", () => {
    const r = run("maaNone");
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ valid: false, code: "MAA_ALG_NOT_ALLOWED" });
  });

  it("fails closed on the sevsnpvm token whose key is not in the set, with one error line", () => {
    const r = run("maaSnpUnknownKey");
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("maa: INVALID");
    expect(r.stderr).toMatch(/^cloister: MAA_UNKNOWN_KEY: /);
  });

  it("rejects --nonce for a TEE it does not apply to (usage error, exit 2)", () => {
    const r = run("nonceOnSnp");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--nonce does not apply");
  });

  it("rejects --issuer for evidence other than an MAA token (usage error, exit 2)", () => {
    const r = run("issuerOnAzure");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("verify-evidence --tee azure-snp: --issuer does not apply to this TEE");
  });
});
