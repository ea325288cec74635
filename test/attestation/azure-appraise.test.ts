/**
 * Appraisal of Azure confidential-VM evidence (policy.azure) on the real captured evidence: the
 * hardware report behind the paravisor against azure.snp / azure.tdx, the vTPM PCRs the guest
 * image is measured in, and the runtime data's vm-configuration. Every violation has its own code;
 * the top-level snp/tdx sections never apply to Azure evidence (nor azure.* to bare evidence).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  type AppraisableEvidence,
  appraise,
  azurePcrViolations,
  azureVmConfigurationViolations,
} from "../../attestation/appraise.ts";
import { parseAzureEvidence } from "../../attestation/azure/evidence.ts";
import { type VerifiedAzureEvidence, verifyAzureEvidence } from "../../attestation/azure/verify.ts";
import { toHex } from "../../attestation/bytes.ts";
import { type AttestationPolicy, type AzurePolicy, parseAttestationPolicy } from "../../attestation/policy.ts";
import { AMD_ROOTS } from "../../attestation/roots/amd.ts";
import { INTEL_ROOTS } from "../../attestation/roots/intel.ts";
import { parseSnpReport } from "../../attestation/snp/parse.ts";
import { verifySnpReport } from "../../attestation/snp/verify.ts";
import { type Certificate, parsePemCertificates } from "../../attestation/x509.ts";
import { simulatedAzureSnpAnchors, simulatedAzureSnpEvidence } from "../helpers/azure-sim.ts";

const FIXTURES = new URL("../fixtures/attestation/", import.meta.url);
const text = (path: string) => readFileSync(new URL(path, FIXTURES), "utf8");
const SNP_AT = new Date("2026-01-01T00:00:00Z");
const TDX_AT = new Date("2024-01-01T00:00:00Z");

const SKIP = { skip: { reason: "test: not pinned" } };
/** The SNP hardening fields, explicit: CXL refused, TIO accepted, the rest not checked. */
const SNP_HARDENING = {
  cxlAllowed: false,
  minimumAbi: SKIP,
  minimumFirmware: SKIP,
  requireGuestPolicy: SKIP,
  requirePlatformInfo: SKIP,
  tioAllowed: true,
  requireMitigations: SKIP,
};
const PINNED_PCRS = ["4", "7", "11"] as const;

async function verified(fixture: string): Promise<VerifiedAzureEvidence> {
  const evidence = parseAzureEvidence(text(fixture));
  return verifyAzureEvidence({
    evidence,
    at: evidence.kind === "azure-tdx" ? TDX_AT : SNP_AT,
    expectedNonce: null,
    snpAnchors: AMD_ROOTS,
    tdxAnchors: INTEL_ROOTS,
  });
}

/** An azure policy section that accepts exactly this evidence (PCRs 4, 7, 11 and the hardware measurement pinned). */
function matchingAzurePolicy(v: VerifiedAzureEvidence): AzurePolicy {
  const pcrs = Object.fromEntries(PINNED_PCRS.map((i) => [i, [toHex(v.tpm.pcrs.get(Number(i)) as Uint8Array)]]));
  const snp =
    v.snp === null
      ? null
      : {
          debugAllowed: false,
          migrationAgentAllowed: false,
          smtAllowed: true,
          allowedVmpls: [v.snp.report.vmpl],
          minimumTcb: { bootloader: 0, tee: 0, snp: 0, microcode: 0, fmc: 0 },
          measurements: [toHex(v.snp.report.measurement)],
          hostData: SKIP,
          idKeyDigests: SKIP,
          authorKeyDigests: SKIP,
          minimumGuestSvn: 0,
          allowedProducts: [v.snp.product],
          signingKeys: ["vcek" as const],
          ...SNP_HARDENING,
        };
  const tdx: AzurePolicy["tdx"] =
    v.tdx === null ? null : { ...matchingTdxSkeleton(), mrtd: [toHex(v.tdx.quote.body.mrTd)] };
  return { snp, tdx, pcrs, secureBootRequired: true, consoleAllowed: true };
}

function policyWith(azure: AzurePolicy | null, rest: Partial<AttestationPolicy> = {}): AttestationPolicy {
  return parseAttestationPolicy({
    version: 1,
    trustSimulator: false,
    maximumVerificationSkewSeconds: 300,
    snp: null,
    tdx: null,
    azure,
    ...rest,
  });
}

const FIXTURE_ROWS = [
  "azure/snp-vtpm/genoa-evidence.trustee.json",
  "azure/snp-vtpm/milan-evidence-v0.trustee.json",
  "azure/snp-vtpm/milan-evidence-v2.trustee.json",
  "azure/tdx-vtpm/tdx-evidence-v1.trustee.json",
];

describe("Azure appraisal on captured evidence", () => {
  it.each(FIXTURE_ROWS)("%s: a policy pinning its PCRs and hardware measurement accepts it", async (fixture) => {
    const v = await verified(fixture);
    const result = appraise(v, policyWith(matchingAzurePolicy(v)), { now: v.verifiedAt, expectedReportData: null });
    expect(result).toMatchObject({ ok: true, tee: v.kind, violations: [] });
  });

  it("refuses a field-by-field copy of verified Azure evidence (not produced by verifyAzureEvidence)", async () => {
    const v = await verified("azure/snp-vtpm/genoa-evidence.trustee.json");
    const copy = { ...v } as unknown as AppraisableEvidence;
    expect(() =>
      appraise(copy, policyWith(matchingAzurePolicy(v)), { now: v.verifiedAt, expectedReportData: null }),
    ).toThrow(/expected evidence returned by verifySnpReport, verifyTdxQuote or verifyAzureEvidence/);
  });

  it.each(FIXTURE_ROWS)("%s: a PCR of another image → AZURE_PCR_NOT_ALLOWED naming the PCR", async (fixture) => {
    const v = await verified(fixture);
    const azure = matchingAzurePolicy(v);
    const other = "ab".repeat(32);
    const result = appraise(v, policyWith({ ...azure, pcrs: { ...azure.pcrs, "7": [other] } }), {
      now: v.verifiedAt,
      expectedReportData: null,
    });
    expect(result.ok).toBe(false);
    expect(result.violations).toEqual([
      {
        field: "PCR[7]",
        code: "AZURE_PCR_NOT_ALLOWED",
        expected: other,
        found: toHex(v.tpm.pcrs.get(7) as Uint8Array),
      },
    ]);
  });

  it("the hardware report behind the paravisor is appraised with azure.snp (fields prefixed hcl.)", async () => {
    const v = await verified("azure/snp-vtpm/genoa-evidence.trustee.json");
    const azure = matchingAzurePolicy(v);
    const snp = azure.snp as NonNullable<AzurePolicy["snp"]>;
    const result = appraise(
      v,
      policyWith({ ...azure, snp: { ...snp, measurements: ["11".repeat(48)], allowedProducts: ["Milan"] } }),
      { now: v.verifiedAt, expectedReportData: null },
    );
    expect(result.violations.map((x) => [x.field, x.code])).toEqual([
      ["hcl.MEASUREMENT", "SNP_MEASUREMENT_NOT_ALLOWED"],
      ["hcl.product", "SNP_PRODUCT_NOT_ALLOWED"],
    ]);
    // The optional guest-policy and platform checks too. The paravisor's report: ABI 0.31, firmware
    // 1.55.40, PLATFORM_INFO 0x24 (ECC_EN, ALIAS_CHECK_COMPLETE).
    const stricter: NonNullable<AzurePolicy["snp"]> = {
      ...snp,
      minimumAbi: { major: 0, minor: 31 },
      minimumFirmware: { major: 1, minor: 55, build: 41 },
      requirePlatformInfo: ["ECC_EN", "ALIAS_CHECK_COMPLETE", "TSME_EN"],
    };
    const checked = appraise(v, policyWith({ ...azure, snp: stricter }), {
      now: v.verifiedAt,
      expectedReportData: null,
    });
    expect(checked.violations.map((x) => [x.field, x.code, x.found])).toEqual([
      ["hcl.CURRENT_MAJOR.MINOR.BUILD", "SNP_FIRMWARE_TOO_OLD", "1.55.40"],
      ["hcl.COMMITTED_MAJOR.MINOR.BUILD", "SNP_FIRMWARE_TOO_OLD", "1.55.40"],
      ["hcl.PLATFORM_INFO.TSME_EN", "SNP_PLATFORM_INFO_BIT_MISSING", "clear"],
    ]);
  });

  it("vm-configuration: the captured VMs have a serial console; consoleAllowed: false refuses it", async () => {
    const v = await verified("azure/snp-vtpm/milan-evidence-v2.trustee.json");
    expect(v.runtimeData.vmConfiguration["console-enabled"]).toBe(true);
    const result = appraise(v, policyWith({ ...matchingAzurePolicy(v), consoleAllowed: false }), {
      now: v.verifiedAt,
      expectedReportData: null,
    });
    expect(result.violations).toEqual([
      {
        field: "vm-configuration.console-enabled",
        code: "AZURE_CONSOLE_NOT_ALLOWED",
        expected: "false (consoleAllowed: false)",
        found: "true",
      },
    ]);
    expect(v.runtimeData.vmConfiguration["secure-boot"]).toBe(true);
  });

  it("azure evidence is not accepted without policy.azure, nor by the section of the other TEE", async () => {
    const v = await verified("azure/snp-vtpm/genoa-evidence.trustee.json");
    const azure = matchingAzurePolicy(v);
    // The top-level snp section (bare SEV-SNP) does not apply to Azure evidence.
    const bare = appraise(v, policyWith(null, { snp: azure.snp }), { now: v.verifiedAt, expectedReportData: null });
    expect(bare.violations).toEqual([
      { field: "tee", code: "TEE_NOT_ACCEPTED", expected: "SEV-SNP (policy.azure is null)", found: "azure-snp" },
    ]);
    const tdxOnly = await verified("azure/tdx-vtpm/tdx-evidence-v1.trustee.json");
    const wrongKind = appraise(v, policyWith({ ...matchingAzurePolicy(tdxOnly), pcrs: azure.pcrs }), {
      now: v.verifiedAt,
      expectedReportData: null,
    });
    expect(wrongKind.violations).toEqual([
      expect.objectContaining({ field: "tee", code: "TEE_NOT_ACCEPTED", found: "azure-snp" }),
    ]);
    // And azure-tdx evidence under a policy whose azure.tdx is null.
    const snpOnly = policyWith({ ...azure, pcrs: matchingAzurePolicy(tdxOnly).pcrs });
    expect(appraise(tdxOnly, snpOnly, { now: tdxOnly.verifiedAt, expectedReportData: null }).violations).toEqual([
      { field: "tee", code: "TEE_NOT_ACCEPTED", expected: "azure-snp (policy.azure.tdx is null)", found: "azure-tdx" },
    ]);
  });

  it("SHA-256(expectedReportData) is compared with the vTPM quote's qualifying data (where Azure carries the binding)", async () => {
    const v = await verified("azure/snp-vtpm/genoa-evidence.trustee.json");
    const expected = new Uint8Array(64).fill(9);
    const result = appraise(v, policyWith(matchingAzurePolicy(v)), { now: v.verifiedAt, expectedReportData: expected });
    expect(result.violations).toEqual([
      {
        field: "vTPM extraData",
        code: "REPORT_DATA_MISMATCH",
        expected: `SHA-256(REPORT_DATA) ${createHash("sha256").update(expected).digest("hex")}`,
        found: toHex(v.tpm.extraData),
      },
    ]);
    // Simulated evidence whose quote carries SHA-256(REPORT_DATA): no violation; the raw REPORT_DATA is one.
    const qualifying = new Uint8Array(createHash("sha256").update(expected).digest());
    const appraised = async (extraData: Uint8Array) => {
      const e = await verifyAzureEvidence({
        evidence: simulatedAzureSnpEvidence({ extraData }),
        at: SNP_AT,
        expectedNonce: null,
        snpAnchors: simulatedAzureSnpAnchors,
      });
      const policy = policyWith(matchingAzurePolicy(e), { trustSimulator: true });
      return appraise(e, policy, { now: SNP_AT, expectedReportData: expected }).violations.map((x) => x.code);
    };
    expect(await appraised(qualifying)).toEqual([]);
    expect(await appraised(expected)).toEqual(["REPORT_DATA_MISMATCH"]);
  });
});

describe("Azure PCR rule", () => {
  it("a pinned PCR the quote does not cover is a violation, not a pass", () => {
    const quoted = new Map([[7, new Uint8Array(32).fill(1)]]);
    expect(azurePcrViolations(quoted, { "7": ["01".repeat(32)], "11": ["02".repeat(32)] })).toEqual([
      {
        field: "PCR[11]",
        code: "AZURE_PCR_NOT_QUOTED",
        expected: "02".repeat(32),
        found: "not covered by the vTPM quote",
      },
    ]);
    expect(azurePcrViolations(quoted, { "7": ["01".repeat(32), "03".repeat(32)] })).toEqual([]);
  });
});

describe("Azure policy schema", () => {
  const base = {
    snp: null,
    tdx: null,
    pcrs: { "4": ["AB".repeat(32)] },
    secureBootRequired: true,
    consoleAllowed: false,
  };
  const parse = (azure: unknown) =>
    parseAttestationPolicy({
      version: 1,
      trustSimulator: false,
      maximumVerificationSkewSeconds: 60,
      snp: null,
      tdx: null,
      azure,
    });
  const tdx = { ...matchingTdxSkeleton(), mrtd: ["cd".repeat(48)] };

  it("requires an OS PCR, valid indices and 32-byte values, and a hardware section", () => {
    expect(parse({ ...base, tdx }).azure?.pcrs).toEqual({ "4": ["ab".repeat(32)] }); // normalised to lower case
    expect(() => parse({ ...base, tdx, pcrs: {} })).toThrow(/azure\.pcrs: expected at least one of the PCRs the OS/);
    // Firmware and Secure Boot PCRs alone would accept any guest OS.
    expect(() => parse({ ...base, tdx, pcrs: { "0": ["ab".repeat(32)], "7": ["ab".repeat(32)] } })).toThrow(
      /expected at least one of the PCRs the OS is measured into \(4, 8, 9, 11\) pinned/,
    );
    for (const [key, found] of [
      ["24", 'the key "24"'],
      ["07", 'the key "07"'],
      [" 7", "a key of 2 characters"],
      ["+7", "a key of 2 characters"],
      ["1e1", 'the key "1e1"'],
      ["constructor", 'the key "constructor"'],
    ]) {
      expect(() => parse({ ...base, tdx, pcrs: { ...base.pcrs, [key as string]: ["ab".repeat(32)] } })).toThrow(
        `azure.pcrs: expected keys that are a PCR index "0".."23", found ${found}`,
      );
    }
    expect(() => parse({ ...base, tdx, pcrs: { "4": ["ab".repeat(20)] } })).toThrow(
      /azure\.pcrs\.4\[0\]: expected 32 bytes/,
    );
    expect(() => parse({ ...base, tdx, pcrs: { "4": [] } })).toThrow(
      "azure.pcrs.4: expected an array of at least 1 item, found an empty array",
    );
    expect(
      Object.keys(parse({ ...base, tdx, pcrs: { ...base.pcrs, "23": ["ab".repeat(32)] } }).azure?.pcrs ?? {}),
    ).toEqual(["4", "23"]);
    expect(() => parse({ ...base, tdx, attestationUrl: "https://example.invalid" })).toThrow(
      "azure.attestationUrl: expected no such field, found a string of 23 characters",
    );
    for (const field of ["secureBootRequired", "consoleAllowed"] as const) {
      const { [field]: _, ...rest } = { ...base, tdx };
      expect(() => parse(rest)).toThrow(`azure.${field}: required field is missing`);
    }
    expect(() => parse(base)).toThrow(/azure\.snp: expected at least one of azure\.snp, azure\.tdx/);
    expect(() =>
      parseAttestationPolicy({
        version: 1,
        trustSimulator: false,
        maximumVerificationSkewSeconds: 60,
        snp: null,
        tdx: null,
      }),
    ).toThrow(/azure: required field is missing/);
  });

  it("refuses a skipped paravisor measurement: it is what ties the vTPM to Microsoft's paravisor", () => {
    expect(() => parse({ ...base, tdx: matchingTdxSkeleton() })).toThrow(
      /azure\.tdx\.mrtd: expected an allow-list of the paravisor's MRTD values/,
    );
    const snp = {
      debugAllowed: false,
      migrationAgentAllowed: false,
      smtAllowed: true,
      allowedVmpls: [0],
      minimumTcb: { bootloader: 0, tee: 0, snp: 0, microcode: 0, fmc: 0 },
      measurements: SKIP,
      hostData: SKIP,
      idKeyDigests: SKIP,
      authorKeyDigests: SKIP,
      minimumGuestSvn: 0,
      allowedProducts: ["Genoa"],
      signingKeys: ["vcek"],
      ...SNP_HARDENING,
    };
    expect(() => parse({ ...base, snp })).toThrow(/azure\.snp\.measurements: expected an allow-list/);
    // Only the paravisor's VMPL 0 report vouches for the vTPM (the verifier refuses any other).
    const pinned = { ...snp, measurements: ["a5".repeat(48)] };
    expect(parse({ ...base, snp: pinned }).azure?.snp?.allowedVmpls).toEqual([0]);
    for (const allowedVmpls of [[0, 1], [2], [0, 1, 2, 3]]) {
      expect(() => parse({ ...base, snp: { ...pinned, allowedVmpls } })).toThrow(
        /azure\.snp\.allowedVmpls: expected \[0\]: the paravisor's report is VMPL 0/,
      );
    }
  });

  it("appraise refuses the same for a policy built in code (which skips the schema)", async () => {
    const v = await verified("azure/snp-vtpm/genoa-evidence.trustee.json");
    const valid = policyWith(matchingAzurePolicy(v));
    const azure = valid.azure as AzurePolicy;
    const unchecked: AttestationPolicy = {
      ...valid,
      azure: { ...azure, snp: { ...(azure.snp as NonNullable<AzurePolicy["snp"]>), measurements: SKIP }, pcrs: {} },
    };
    const result = appraise(v, unchecked, { now: v.verifiedAt, expectedReportData: null });
    expect(result.violations.map((x) => [x.field, x.code])).toEqual([
      ["hcl.MEASUREMENT", "AZURE_PARAVISOR_NOT_PINNED"],
      ["PCRs", "AZURE_PCRS_NOT_PINNED"],
    ]);
    // The TD's MRTD likewise, for azure-tdx evidence.
    const td = await verified("azure/tdx-vtpm/tdx-evidence-v1.trustee.json");
    const tdPolicy = policyWith(matchingAzurePolicy(td));
    const tdAzure = tdPolicy.azure as AzurePolicy;
    const unpinnedTd: AttestationPolicy = {
      ...tdPolicy,
      azure: { ...tdAzure, tdx: { ...(tdAzure.tdx as NonNullable<AzurePolicy["tdx"]>), mrtd: SKIP } },
    };
    expect(appraise(td, unpinnedTd, { now: td.verifiedAt, expectedReportData: null }).violations).toEqual([
      {
        field: "hcl.MRTD",
        code: "AZURE_PARAVISOR_NOT_PINNED",
        expected: "an allow-list of the paravisor's measurements",
        found: "skipped",
      },
    ]);
  });
});

describe("Azure vm-configuration rule", () => {
  it("secure boot and the serial console: absent counts as the unsafe value", () => {
    const strict = { secureBootRequired: true, consoleAllowed: false };
    expect(azureVmConfigurationViolations({ "secure-boot": true, "console-enabled": false }, strict)).toEqual([]);
    expect(azureVmConfigurationViolations({}, strict).map((v) => [v.code, v.found])).toEqual([
      ["AZURE_SECURE_BOOT_REQUIRED", "absent"],
      ["AZURE_CONSOLE_NOT_ALLOWED", "absent"],
    ]);
    expect(azureVmConfigurationViolations({ "secure-boot": false, "console-enabled": true }, strict)).toEqual([
      {
        field: "vm-configuration.secure-boot",
        code: "AZURE_SECURE_BOOT_REQUIRED",
        expected: "true (secureBootRequired: true)",
        found: "false",
      },
      {
        field: "vm-configuration.console-enabled",
        code: "AZURE_CONSOLE_NOT_ALLOWED",
        expected: "false (consoleAllowed: false)",
        found: "true",
      },
    ]);
    expect(azureVmConfigurationViolations({ "secure-boot": "true" }, strict)[0]).toMatchObject({
      code: "AZURE_SECURE_BOOT_REQUIRED",
      found: '"true"',
    });
    expect(azureVmConfigurationViolations({}, { secureBootRequired: false, consoleAllowed: true })).toEqual([]);
  });

  it("bare SEV-SNP evidence is not accepted by a policy with only an azure section", async () => {
    const report = parseSnpReport(new Uint8Array(readFileSync(new URL("snp/milan-gcp-v5-report.bin", FIXTURES))));
    const vcek = parsePemCertificates(text("snp/milan-gcp-v5-vcek.pem"))[0] as Certificate;
    const bare = await verifySnpReport({ report, endorsementKey: vcek, anchors: AMD_ROOTS, at: SNP_AT });
    const azureOnly = policyWith(matchingAzurePolicy(await verified("azure/snp-vtpm/genoa-evidence.trustee.json")));
    expect(appraise(bare, azureOnly, { now: SNP_AT, expectedReportData: null }).violations).toEqual([
      { field: "tee", code: "TEE_NOT_ACCEPTED", expected: "an Azure CVM (policy.snp is null)", found: "SEV-SNP" },
    ]);
  });
});

function matchingTdxSkeleton(): NonNullable<AzurePolicy["tdx"]> {
  return {
    debugAllowed: false,
    xfam: SKIP,
    tdAttributes: SKIP,
    mrseam: SKIP,
    mrtd: SKIP,
    rtmrs: [SKIP, SKIP, SKIP, SKIP],
    mrconfigid: SKIP,
    mrowner: SKIP,
    mrownerconfig: SKIP,
    mrservicetd: SKIP,
    acceptedTcbStatuses: SKIP,
    minimumTeeTcbSvn: SKIP,
    minimumQeSvn: SKIP,
    minimumPceSvn: SKIP,
    rejectedAdvisoryIds: SKIP,
  };
}
