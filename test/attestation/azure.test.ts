import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type AzureEvidence, parseAzureEvidence, serializeAzureEvidence } from "../../attestation/azure/evidence.ts";
import { parseHclReport } from "../../attestation/azure/hcl.ts";
import { parseTpmQuoteAttest } from "../../attestation/azure/tpm.ts";
import { verifyAzureEvidence } from "../../attestation/azure/verify.ts";
import { fromHex, toHex } from "../../attestation/bytes.ts";
import { AMD_ROOTS } from "../../attestation/roots/amd.ts";
import { INTEL_ROOTS } from "../../attestation/roots/intel.ts";
import { tcbHex } from "../../attestation/snp/parse.ts";
import { rejection } from "../helpers/attestation.ts";
import {
  ALL_PCRS,
  CAPTURED_RUNTIME_JSON,
  hclReportBytes,
  type PcrSelection,
  simulatedAzureSnpAnchors,
  simulatedAzureSnpEvidence,
  TPM_ALG_SHA1,
  TPM_ALG_SHA256,
  tpmsAttest,
} from "../helpers/azure-sim.ts";

const FIXTURES = new URL("../fixtures/attestation/", import.meta.url);
const read = (path: string) => new Uint8Array(readFileSync(new URL(path, FIXTURES)));
const text = (path: string) => readFileSync(new URL(path, FIXTURES), "utf8");
const EXPECTED = JSON.parse(text("EXPECTED.json")).azure_vtpm as Record<string, Record<string, unknown>>;

const SNP_AT = new Date("2026-01-01T00:00:00Z");
const TDX_AT = new Date("2024-01-01T00:00:00Z");
const anchors = { snpAnchors: AMD_ROOTS, tdxAnchors: INTEL_ROOTS } as const;

/** The genoa .bin convenience copies assembled into evidence (VCEK from the genoa JSON). */
function genoaFromBins(hcl: string, attest: string): AzureEvidence {
  const pcrs = (JSON.parse(text("azure/snp-vtpm/genoa-tpm-pcrs.json")) as { pcrs: string[] }).pcrs.map((p) =>
    fromHex(p),
  );
  const json = parseAzureEvidence(text("azure/snp-vtpm/genoa-evidence.trustee.json"));
  return {
    kind: "azure-snp",
    format: "v2",
    hclReport: read(`azure/snp-vtpm/${hcl}`),
    tpmQuote: {
      message: read(`azure/snp-vtpm/${attest}`),
      signature: read("azure/snp-vtpm/genoa-tpm-quote-signature.bin"),
      pcrs,
    },
    vcek: json.vcek,
    tdQuote: null,
  };
}

const JSON_ROWS = Object.keys(EXPECTED).filter((k) => k.endsWith(".json"));
const BIN_ROWS: Record<string, [string, string, string | null]> = {
  "azure/snp-vtpm/genoa-hcl-report.bin + genoa-tpm-quote-attest.bin": [
    "genoa-hcl-report.bin",
    "genoa-tpm-quote-attest.bin",
    null,
  ],
  "azure/snp-vtpm/genoa-hcl-report-tampered-runtime-data.bin + genoa-tpm-quote-attest.bin": [
    "genoa-hcl-report-tampered-runtime-data.bin",
    "genoa-tpm-quote-attest.bin",
    "AZURE_RUNTIME_DATA_NOT_BOUND",
  ],
  "azure/snp-vtpm/genoa-hcl-report.bin + genoa-tpm-quote-attest-tampered.bin": [
    "genoa-hcl-report.bin",
    "genoa-tpm-quote-attest-tampered.bin",
    "AZURE_TPM_QUOTE_SIGNATURE_INVALID",
  ],
};

describe("Azure vTPM evidence against EXPECTED.json", () => {
  it("covers every azure_vtpm row", () => {
    expect([...JSON_ROWS, ...Object.keys(BIN_ROWS)].sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(JSON_ROWS)("accepts %s with the expected parsed values", async (path) => {
    const row = EXPECTED[path] as Record<string, unknown>;
    const evidence = parseAzureEvidence(text(path));
    const isTdx = row.report_type === 4;
    const nonce = fromHex(row.extraData as string);
    const v = await verifyAzureEvidence({ evidence, at: isTdx ? TDX_AT : SNP_AT, expectedNonce: nonce, ...anchors });
    expect(v.kind).toBe(isTdx ? "azure-tdx" : "azure-snp");
    expect(v.simulated).toBe(false);
    expect(v.nonceChecked).toBe(true);
    expect(parseHclReport(evidence.hclReport).version).toBe(row.hcl_version);
    expect(toHex(v.runtimeDataSha256)).toBe(row.runtime_data_sha256);
    expect(v.runtimeData.userData).toBe(row.user_data);
    expect(v.runtimeData.vmConfiguration).toEqual(row.vm_configuration);
    expect(v.runtimeData.vmUniqueId).toBe((row.vm_configuration as { vmUniqueId: string }).vmUniqueId);
    expect(toHex(v.tpm.extraData)).toBe(row.extraData);
    expect([...v.tpm.pcrs.keys()]).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(toHex(v.tpm.pcrs.get(0) as Uint8Array)).toBe(row.pcr0);
    expect(v.akModulusBits).toBe(row.ak_n_bits);
    expect(v.tpm.attest.clock).toBe(BigInt(row.clock as number));
    if (isTdx) {
      expect(toHex(v.reportData)).toBe(row.td_report_reportdata);
      expect(v.tdx?.simulated).toBe(false);
      expect(v.snp).toBeNull();
    } else {
      const snp = v.snp;
      if (snp === null) throw new Error("expected a verified SNP report");
      expect(toHex(v.reportData)).toBe(row.report_data);
      expect(toHex(snp.report.measurement)).toBe(row.measurement);
      expect(toHex(snp.report.chipId)).toBe(row.chip_id);
      expect(tcbHex(snp.report.reportedTcb)).toBe((row.reported_tcb as { raw: string }).raw);
      expect(`0x${snp.report.policy.raw.toString(16)}`).toBe(row.policy);
      expect(snp.report.version).toBe(row.version);
      expect(snp.report.vmpl).toBe(row.vmpl);
      expect(snp.extensions.productName).toBe(row.vcek_product);
      const [from, to] = row.vcek_validity as [string, string];
      expect(snp.endorsementKey.notBefore.toISOString()).toBe(new Date(from.replace(" ", "T")).toISOString());
      expect(snp.endorsementKey.notAfter.toISOString()).toBe(new Date(to.replace(" ", "T")).toISOString());
    }
  });

  it.each(Object.entries(BIN_ROWS))("%s", async (path, [hcl, attest, code]) => {
    const row = EXPECTED[path] as Record<string, unknown>;
    expect(code === null).toBe(row.binds === true && row.tpm_sig_valid === true && row.pcr_digest_ok === true);
    const evidence = genoaFromBins(hcl, attest);
    expect(toHex(parseTpmQuoteAttest(evidence.tpmQuote.message).extraData)).toBe(row.extraData);
    const result = verifyAzureEvidence({
      evidence,
      at: SNP_AT,
      expectedNonce: fromHex(row.extraData as string),
      ...anchors,
    });
    if (code === null) {
      expect((await result).snp?.report.version).toBe(3);
    } else {
      const error = await rejection(result);
      expect(error.code).toBe(code);
      expect(error.stage).toBe("verify");
    }
  });

  it("the tampered runtime data still carries a valid SNP signature (the failure is the binding)", () => {
    const hcl = parseHclReport(read("azure/snp-vtpm/genoa-hcl-report-tampered-runtime-data.bin"));
    expect(hcl.runtimeData.vmUniqueId).toBe("490CBCF5-6C67-4D9B-98EF-C3F1699CC8FC");
  });
});

describe("Azure vTPM evidence rules", () => {
  const genoa = () => parseAzureEvidence(text("azure/snp-vtpm/genoa-evidence.trustee.json"));
  const tdx = () => parseAzureEvidence(text("azure/tdx-vtpm/tdx-evidence-v1.trustee.json"));

  it("refuses a different nonce with AZURE_TPM_NONCE_MISMATCH without printing either value", async () => {
    const wrong = new Uint8Array(48).fill(7);
    const error = await rejection(
      verifyAzureEvidence({ evidence: genoa(), at: SNP_AT, expectedNonce: wrong, ...anchors }),
    );
    expect(error.code).toBe("AZURE_TPM_NONCE_MISMATCH");
    expect(error.message).not.toContain("0707");
    expect(error.message).not.toContain("0218488b");
  });

  it("says nonceChecked: false when the caller explicitly leaves the nonce to a later step", async () => {
    const v = await verifyAzureEvidence({ evidence: genoa(), at: SNP_AT, expectedNonce: null, ...anchors });
    expect(v.nonceChecked).toBe(false);
  });

  it("refuses a changed PCR value with AZURE_PCR_DIGEST_MISMATCH", async () => {
    const e = genoa();
    const pcrs = e.tpmQuote.pcrs.map((p) => p.slice());
    const pcr7 = pcrs[7] as Uint8Array;
    pcr7[0] = (pcr7[0] as number) ^ 1;
    const error = await rejection(
      verifyAzureEvidence({
        evidence: { ...e, tpmQuote: { ...e.tpmQuote, pcrs } },
        at: SNP_AT,
        expectedNonce: null,
        ...anchors,
      }),
    );
    expect(error.code).toBe("AZURE_PCR_DIGEST_MISMATCH");
  });

  it("refuses a TDREPORT that differs from the verified TD quote (AZURE_TD_QUOTE_MISMATCH)", async () => {
    const e = tdx();
    const hclReport = e.hclReport.slice();
    hclReport[0x20 + 528] = (hclReport[0x20 + 528] as number) ^ 1; // TDINFO.MRTD
    const error = await rejection(
      verifyAzureEvidence({ evidence: { ...e, hclReport }, at: TDX_AT, expectedNonce: null, ...anchors }),
    );
    expect(error.code).toBe("AZURE_TD_QUOTE_MISMATCH");
    expect(error.message).toContain("mrTd");
  });

  it("reports none of the HCL header fields that nothing authenticates (version, request_type, runtime-data version)", async () => {
    // No signature or bound hash covers them: a changed value verified and was reported before.
    const e = genoa();
    const hclReport = e.hclReport.slice();
    for (const at of [4, 12, 0x4c4]) hclReport[at] = (hclReport[at] as number) ^ 0x40;
    const [original, changed] = await Promise.all(
      [e, { ...e, hclReport }].map((evidence) =>
        verifyAzureEvidence({ evidence, at: SNP_AT, expectedNonce: null, ...anchors }),
      ),
    );
    expect(parseHclReport(hclReport)).toMatchObject({ version: 0x42, requestType: 0x42, runtimeDataVersion: 0x41 });
    expect(Object.keys(changed?.hcl ?? {})).not.toContain("version");
    expect({ ...changed?.hcl, raw: null }).toEqual({ ...original?.hcl, raw: null });
  });

  it("reports none of the TDREPORT bytes that no TD quote field repeats (CPUSVN, TEE_TCB_SVN2, SERVTD_HASH, the padding)", async () => {
    // The TDREPORT is only MAC'd, and the fields the TD quote repeats are compared; the others (and
    // the padding after it) verified changed and were reported in hcl.tdReport / hcl.hardwareReport.
    const e = tdx();
    const hclReport = e.hclReport.slice();
    for (const at of [16, 384, 912, 1024]) hclReport[0x20 + at] = (hclReport[0x20 + at] as number) ^ 0x40;
    const [original, changed] = await Promise.all(
      [e, { ...e, hclReport }].map((evidence) =>
        verifyAzureEvidence({ evidence, at: TDX_AT, expectedNonce: null, ...anchors }),
      ),
    );
    expect(Object.keys(changed?.hcl ?? {})).not.toContain("tdReport");
    expect(Object.keys(changed?.hcl ?? {})).not.toContain("hardwareReport");
    expect({ ...changed?.hcl, raw: null }).toEqual({ ...original?.hcl, raw: null });
    // What the hardware vouches for is in the verified TD quote, unchanged.
    expect(changed?.tdx?.quote.body).toEqual(original?.tdx?.quote.body);
  });

  it("needs the trust anchors of the evidence's TEE and verifies the chain at the given time", async () => {
    const noAnchors = await rejection(
      verifyAzureEvidence({ evidence: genoa(), at: SNP_AT, expectedNonce: null, tdxAnchors: INTEL_ROOTS }),
    );
    expect(noAnchors.code).toBe("AZURE_NO_TRUST_ANCHORS");
    const expired = await rejection(
      verifyAzureEvidence({ evidence: genoa(), at: new Date("2033-01-01T00:00:00Z"), expectedNonce: null, ...anchors }),
    );
    expect(expired.code).toBe("CERT_EXPIRED");
  });

  it("refuses evidence whose HCL report type contradicts its kind", async () => {
    const e = genoa();
    const mixed: AzureEvidence = { ...e, hclReport: tdx().hclReport };
    const error = await rejection(
      verifyAzureEvidence({ evidence: mixed, at: SNP_AT, expectedNonce: null, ...anchors }),
    );
    expect(error.code).toBe("AZURE_EVIDENCE_KIND_MISMATCH");
  });

  it("round-trips the Cloister evidence format (v2 SNP / v1 TDX) and verifies it", async () => {
    const v0 = genoa();
    const vcekDer = parseAzureEvidence(text("azure/snp-vtpm/milan-evidence-v2.trustee.json")).vcek as Uint8Array;
    expect(vcekDer[0]).toBe(0x30); // DER in v2
    const { parseCertificateBytes } = await import("../../attestation/x509.ts");
    const der = parseCertificateBytes(v0.vcek as Uint8Array).der;
    const again = parseAzureEvidence(
      serializeAzureEvidence({ hclReport: v0.hclReport, tpmQuote: v0.tpmQuote, vcekDer: der }),
    );
    expect(again.format).toBe("v2");
    expect(again.hclReport).toEqual(v0.hclReport);
    const v = await verifyAzureEvidence({ evidence: again, at: SNP_AT, expectedNonce: null, ...anchors });
    expect(toHex(v.runtimeDataSha256)).toBe("b581f12e29a2d7d64e5e0b738d563879a78b51c644d0fa0cce02b48699f6bf5f");
    const t = tdx();
    const tdxAgain = parseAzureEvidence(
      serializeAzureEvidence({ hclReport: t.hclReport, tpmQuote: t.tpmQuote, tdQuote: t.tdQuote as Uint8Array }),
    );
    expect(tdxAgain).toEqual({ ...t, format: "v1" });
  });

  it.each([
    ["not JSON", "{", "AZURE_EVIDENCE_MALFORMED"],
    ["unknown version", '{"version":3}', "AZURE_EVIDENCE_MALFORMED"],
    [
      "both vcek and td_quote",
      '{"version":2,"tpm_quote":{"message":"00","signature":"00","pcrs":["' +
        "00".repeat(32) +
        '"]},"hcl_report":"AA","vcek":"AA","td_quote":"AA"}',
      "AZURE_EVIDENCE_MALFORMED",
    ],
    [
      "a byte out of range in v0",
      '{"quote":{"message":[256],"signature":[],"pcrs":[]},"report":[],"vcek":""}',
      "AZURE_EVIDENCE_MALFORMED",
    ],
  ])("rejects evidence JSON with %s", (_name, json, code) => {
    expect(() => parseAzureEvidence(json)).toThrow(expect.objectContaining({ code }));
  });

  it("reads trustee's SNP evidence v1 as v2 (same shape), and refuses its v0 TDX evidence saying so", async () => {
    const v2 = JSON.parse(text("azure/snp-vtpm/milan-evidence-v2.trustee.json")) as Record<string, unknown>;
    const v1 = parseAzureEvidence(JSON.stringify({ ...v2, version: 1 }));
    expect(v1).toEqual({ ...parseAzureEvidence(JSON.stringify(v2)), format: "v1" });
    expect(v1.kind).toBe("azure-snp");
    const t = tdx();
    const tdxV0 = JSON.stringify({
      tpm_quote: {
        signature: [...t.tpmQuote.signature],
        message: [...t.tpmQuote.message],
        pcrs: t.tpmQuote.pcrs.map((p) => [...p]),
      },
      hcl_report: [...t.hclReport],
      td_quote: [...(t.tdQuote as Uint8Array)],
    });
    expect(() => parseAzureEvidence(tdxV0)).toThrow(
      expect.objectContaining({
        code: "AZURE_EVIDENCE_MALFORMED",
        message:
          'Azure evidence: v0 TDX evidence (no "version", tpm_quote / td_quote as int arrays) is not supported: expected version 1',
      }),
    );
  });

  it("rejects a malformed HCL report and TPMS_ATTEST with typed parse errors", () => {
    const hcl = read("azure/snp-vtpm/genoa-hcl-report.bin");
    const badMagic = hcl.slice();
    badMagic[0] = 0x58;
    expect(() => parseHclReport(badMagic)).toThrow(expect.objectContaining({ code: "AZURE_HCL_REPORT_MALFORMED" }));
    const badHash = hcl.slice();
    badHash[0x4c0 + 12] = 2;
    expect(() => parseHclReport(badHash)).toThrow(expect.objectContaining({ code: "AZURE_HCL_UNSUPPORTED" }));
    expect(() => parseHclReport(hcl.subarray(0, 0x4c0))).toThrow(expect.objectContaining({ code: "TRUNCATED" }));
    const attest = read("azure/snp-vtpm/genoa-tpm-quote-attest.bin");
    const badType = attest.slice();
    badType[5] = 0x17;
    expect(() => parseTpmQuoteAttest(badType)).toThrow(expect.objectContaining({ code: "AZURE_TPM_QUOTE_MALFORMED" }));
    const trailing = new Uint8Array(attest.length + 1);
    trailing.set(attest);
    expect(() => parseTpmQuoteAttest(trailing)).toThrow(expect.objectContaining({ code: "AZURE_TPM_QUOTE_MALFORMED" }));
  });
});

describe("TPMS_ATTEST structure (parseTpmQuoteAttest)", () => {
  const nonce = new Uint8Array(32).fill(0x5c);
  const sha256 = { hashAlg: TPM_ALG_SHA256, pcrs: [0, 9, 23] };

  it("reads each field, PCR selections as ascending indices (bit i of byte j is PCR 8j+i)", () => {
    const attest = parseTpmQuoteAttest(tpmsAttest({ extraData: nonce, selections: [sha256], safe: 0 }));
    expect(toHex(attest.extraData)).toBe(toHex(nonce));
    expect(attest.qualifiedSigner).toHaveLength(34);
    expect([attest.clock, attest.resetCount, attest.restartCount, attest.safe, attest.firmwareVersion]).toEqual([
      1234n,
      1,
      0,
      false,
      0x2020n,
    ]);
    expect(attest.pcrSelections).toEqual([sha256]);
    expect(attest.pcrDigest).toHaveLength(32);
    expect(parseTpmQuoteAttest(tpmsAttest({ extraData: nonce, safe: 1 })).safe).toBe(true);
  });

  it("accepts each sized field and count at its largest", () => {
    const attest = parseTpmQuoteAttest(
      tpmsAttest({
        extraData: new Uint8Array(64).fill(1),
        qualifiedSigner: new Uint8Array(68),
        pcrDigest: new Uint8Array(64),
        selections: Array.from({ length: 16 }, (_, i) => ({ hashAlg: TPM_ALG_SHA256, pcrs: [i], sizeofSelect: 32 })),
      }),
    );
    expect([attest.extraData.length, attest.qualifiedSigner.length, attest.pcrDigest.length]).toEqual([64, 68, 64]);
    expect(attest.pcrSelections.map((s) => s.pcrs)).toEqual(Array.from({ length: 16 }, (_, i) => [i]));
  });

  it.each([
    ["magic", { magic: 0xff544348 }, "magic: expected 0xff544347 (TPM_GENERATED_VALUE), found 0xff544348"],
    ["type", { type: 0x8017 }, "type: expected 0x8018 (TPM_ST_ATTEST_QUOTE), found 0x8017"],
    [
      "qualifiedSigner",
      { qualifiedSigner: new Uint8Array(69) },
      "qualifiedSigner: expected at most 68 bytes, found 69",
    ],
    ["extraData", { extraData: new Uint8Array(65) }, "extraData: expected at most 64 bytes, found 65"],
    ["clockInfo.safe", { safe: 2 }, "clockInfo.safe: expected 0 or 1, found 2"],
    [
      "pcrSelect.count",
      { selections: Array.from({ length: 17 }, () => sha256) },
      "pcrSelect.count: expected at most 16, found 17",
    ],
    [
      "sizeofSelect",
      { selections: [{ ...sha256, sizeofSelect: 33 }] },
      "pcrSelections[0].sizeofSelect: expected at most 32, found 33",
    ],
    ["pcrDigest", { pcrDigest: new Uint8Array(65) }, "pcrDigest: expected at most 64 bytes, found 65"],
  ] as const)("refuses %s out of bounds (AZURE_TPM_QUOTE_MALFORMED)", (_name, fields, message) => {
    expect(() => parseTpmQuoteAttest(tpmsAttest({ extraData: nonce, ...fields }))).toThrow(
      expect.objectContaining({ code: "AZURE_TPM_QUOTE_MALFORMED", message: `TPMS_ATTEST: ${message}` }),
    );
  });

  it("refuses a quote cut inside its last field (TRUNCATED)", () => {
    const whole = tpmsAttest({ extraData: nonce });
    expect(() => parseTpmQuoteAttest(whole.subarray(0, whole.length - 1))).toThrow(
      expect.objectContaining({
        code: "TRUNCATED",
        message: "TPMS_ATTEST: field pcrDigest at offset 113 needs 32 bytes, but only 31 remain",
      }),
    );
  });
});

describe("HCL report layout and runtime data (parseHclReport)", () => {
  const json = new TextEncoder().encode(CAPTURED_RUNTIME_JSON);
  const runtime = JSON.parse(CAPTURED_RUNTIME_JSON) as { keys: Record<string, unknown>[] } & Record<string, unknown>;
  const [akPub, ekPub] = runtime.keys as [Record<string, unknown>, Record<string, unknown>];
  const withRuntime = (value: unknown) => hclReportBytes({ json: new TextEncoder().encode(JSON.stringify(value)) });
  const refusal = (bytes: Uint8Array) => {
    try {
      parseHclReport(bytes);
    } catch (error) {
      return error as { code: string; message: string };
    }
    throw new Error("the HCL report was accepted");
  };

  it("reads the captured runtime data out of a well-formed layout, trailing zero padding allowed", () => {
    const hcl = parseHclReport(hclReportBytes({ json, trailing: new Uint8Array(16) }));
    expect([hcl.reportType, hcl.tdReport, hcl.hardwareReport.length]).toEqual(["snp", null, 1184]);
    expect(hcl.runtimeData.akPub).toEqual({ kid: "HCLAkPub", kty: "RSA", n: akPub.n, e: akPub.e });
    expect(hcl.runtimeData.vmUniqueId).toBe("390CBCF5-6C67-4D9B-98EF-C3F1699CC8FC");
    expect(hcl.runtimeData.userData).toBe("00".repeat(64));
    const tdx = parseHclReport(hclReportBytes({ json, reportType: 4 }));
    expect([tdx.reportType, tdx.tdReport?.length]).toEqual(["tdx", 1024]);
    // A runtime data size at the bound (64 KiB of JSON, spaces included) is read.
    const large = new Uint8Array(64 * 1024).fill(0x20);
    large.set(json);
    expect(parseHclReport(hclReportBytes({ json: large })).runtimeData.json).toHaveLength(64 * 1024);
  });

  it.each([
    ["status", { status: 1 }, "AZURE_HCL_REPORT_MALFORMED", "status: expected 0, found 1"],
    ["report_type", { reportType: 3 }, "AZURE_HCL_UNSUPPORTED", "report_type expected 2 (SNP) or 4 (TDX), found 3"],
    [
      "variable_data_size 0",
      { variableSize: 0, dataSize: 20 },
      "AZURE_HCL_REPORT_MALFORMED",
      "variable_data_size: expected 1..65536, found 0",
    ],
    [
      "data_size",
      { dataSize: 20 + json.length + 1 },
      "AZURE_HCL_REPORT_MALFORMED",
      `data_size: expected ${20 + json.length} (header + variable data), found ${21 + json.length}`,
    ],
    [
      "report_size",
      { reportSize: 0x4c0 + 20 + json.length - 1 },
      "AZURE_HCL_REPORT_MALFORMED",
      `report_size: expected ${0x4c0 + 20 + json.length}, found ${0x4c0 + 19 + json.length}`,
    ],
    [
      "data after the runtime data",
      { trailing: Uint8Array.of(0, 1) },
      "AZURE_HCL_REPORT_MALFORMED",
      "padding after the runtime data: expected zero bytes, found data",
    ],
  ] as const)("refuses a wrong %s", (_name, layout, code, message) => {
    expect(refusal(hclReportBytes({ json, ...layout }))).toMatchObject({ code, message: `HCL report: ${message}` });
  });

  it("refuses runtime data over 64 KiB", () => {
    const large = new Uint8Array(64 * 1024 + 1).fill(0x20);
    large.set(json);
    expect(refusal(hclReportBytes({ json: large }))).toMatchObject({
      code: "AZURE_HCL_REPORT_MALFORMED",
      message: "HCL report: variable_data_size: expected 1..65536, found 65537",
    });
  });

  const malformedRuntime: [string, Uint8Array, string][] = [
    [
      "invalid UTF-8 inside a JSON string",
      hclReportBytes({ json: Uint8Array.from([...new TextEncoder().encode('{"keys":[],"x":"'), 0xff, 0x22, 0x7d]) }),
      "runtime data: expected UTF-8 JSON, found bytes that are not UTF-8 (from offset 16)",
    ],
    [
      "a byte order mark before the JSON",
      hclReportBytes({ json: Uint8Array.from([0xef, 0xbb, 0xbf, ...json]) }),
      "runtime data: expected UTF-8 JSON, found a byte order mark before it (offsets 0 to 2)",
    ],
    [
      "text that is not JSON",
      hclReportBytes({ json: new TextEncoder().encode('{"keys":') }),
      "runtime data: expected UTF-8 JSON, found text that is not valid JSON (it ends early)",
    ],
    ["a JSON array", withRuntime([runtime]), "runtime data: expected a JSON object"],
    [
      "a key that is not an object",
      withRuntime({ ...runtime, keys: [akPub, "HCLEkPub"] }),
      "runtime data keys: expected an array of JWK objects",
    ],
    ["no keys array", withRuntime({ ...runtime, keys: akPub }), "runtime data keys: expected an array of JWK objects"],
    [
      "two HCLAkPub keys",
      withRuntime({ ...runtime, keys: [akPub, ekPub, { ...ekPub, kid: "HCLAkPub" }] }),
      "runtime data keys: expected exactly one HCLAkPub, found 2",
    ],
    [
      "no HCLAkPub key",
      withRuntime({ ...runtime, keys: [ekPub] }),
      "runtime data keys: expected exactly one HCLAkPub, found 0",
    ],
    [
      "an HCLAkPub that is not RSA",
      withRuntime({ ...runtime, keys: [{ ...akPub, kty: "EC" }] }),
      "runtime data HCLAkPub: expected an RSA JWK with n and e",
    ],
    [
      "an HCLAkPub without n",
      withRuntime({ ...runtime, keys: [{ ...akPub, n: undefined }] }),
      "runtime data HCLAkPub: expected an RSA JWK with n and e",
    ],
    [
      "an HCLAkPub whose e is a number",
      withRuntime({ ...runtime, keys: [{ ...akPub, e: 65537 }] }),
      "runtime data HCLAkPub: expected an RSA JWK with n and e",
    ],
    [
      "vm-configuration an array",
      withRuntime({ ...runtime, "vm-configuration": [] }),
      "runtime data vm-configuration: expected an object",
    ],
    [
      "no vm-configuration",
      withRuntime({ ...runtime, "vm-configuration": undefined }),
      "runtime data vm-configuration: expected an object",
    ],
    // user-data is the 64 bytes the guest wrote to NV index 0x01400002 (REPORT_DATA's size), as hex.
    [
      "user-data not hex",
      withRuntime({ ...runtime, "user-data": `${"00".repeat(63)}zz` }),
      "runtime data user-data: expected 64 bytes as 128 hex digits, found 128 characters that are not all hex digits",
    ],
    [
      "user-data a number",
      withRuntime({ ...runtime, "user-data": 0 }),
      "runtime data user-data: expected 64 bytes as 128 hex digits, found 0",
    ],
    [
      "user-data of 32 bytes",
      withRuntime({ ...runtime, "user-data": "ab".repeat(32) }),
      "runtime data user-data: expected 64 bytes as 128 hex digits, found 64 hex digits",
    ],
    [
      "user-data one digit over",
      withRuntime({ ...runtime, "user-data": `${"ab".repeat(64)}0` }),
      "runtime data user-data: expected 64 bytes as 128 hex digits, found 129 hex digits",
    ],
    [
      "user-data empty",
      withRuntime({ ...runtime, "user-data": "" }),
      "runtime data user-data: expected 64 bytes as 128 hex digits, found 0 hex digits",
    ],
  ];
  it.each(malformedRuntime)("refuses runtime data with %s (AZURE_HCL_REPORT_MALFORMED)", (_name, bytes, message) => {
    expect(refusal(bytes)).toMatchObject({ code: "AZURE_HCL_REPORT_MALFORMED", message: `HCL report: ${message}` });
  });
});

/** Simulated hardware report and a test vTPM key (test/helpers/azure-sim.ts), so the checks after the quote signature can be reached with any TPMS_ATTEST. */
describe("Azure vTPM quote checks after its signature (simulated hardware report, test vTPM key)", () => {
  const SHA1 = TPM_ALG_SHA1;
  const SHA256 = TPM_ALG_SHA256;
  const nonce = new Uint8Array(32).fill(0x5c);
  const snpAnchors = simulatedAzureSnpAnchors;
  const evidence = (selections: readonly PcrSelection[], akJwk?: { n?: string; e?: string }): AzureEvidence =>
    simulatedAzureSnpEvidence({ extraData: nonce, selections, ...(akJwk === undefined ? {} : { akJwk }) });
  const verify = (e: AzureEvidence) =>
    verifyAzureEvidence({ evidence: e, at: SNP_AT, expectedNonce: nonce, snpAnchors });

  it("verifies with one SHA-256 selection of the 24 PCRs (the test key really is the attested HCLAkPub)", async () => {
    const v = await verify(evidence([{ hashAlg: SHA256, pcrs: ALL_PCRS }]));
    expect(v.simulated).toBe(true);
    expect([...v.tpm.pcrs.keys()]).toEqual(ALL_PCRS);
    expect(toHex(v.tpm.pcrs.get(23) as Uint8Array)).toBe("18".repeat(32));
  });

  it.each([
    [
      "a second selection (SHA-1) after the SHA-256 one",
      [
        { hashAlg: SHA256, pcrs: ALL_PCRS },
        { hashAlg: SHA1, pcrs: [0] },
      ],
      "0xb, 0x4",
    ],
    ["one SHA-1 selection (its digest made over the values given)", [{ hashAlg: SHA1, pcrs: ALL_PCRS }], "0x4"],
    ["no selection", [], "none"],
  ] as const)("refuses %s: AZURE_TPM_PCR_SELECTION_UNSUPPORTED", async (_name, selections, found) => {
    const error = await rejection(verify(evidence(selections)));
    expect([error.code, error.message]).toEqual([
      "AZURE_TPM_PCR_SELECTION_UNSUPPORTED",
      `vTPM quote: expected one SHA-256 PCR selection, found ${found}`,
    ]);
  });

  it("refuses an HCLAkPub that is not an RSA key of 2048..8192 bits with exponent 65537 (AZURE_AK_INVALID)", async () => {
    const all = [{ hashAlg: SHA256, pcrs: ALL_PCRS }];
    const jwkOf = (options: { modulusLength: number; publicExponent?: number }) =>
      generateKeyPairSync("rsa", options).publicKey.export({ format: "jwk" });
    const BASE64URL_EXPECTED = 'expected base64url (A-Z, a-z, 0-9, "-", "_"; no padding; unused bits zero)';
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const withUnusedBitSet = (text: string) =>
      text.slice(0, -1) + alphabet[alphabet.indexOf(text.at(-1) as string) ^ 1];
    /** A JWK whose modulus is `top` followed by `rest` 0xff bytes (its size is checked before any use of the key). */
    const modulus = (top: number[], rest: number) => ({
      n: Buffer.from([...top, ...new Array(rest).fill(0xff)]).toString("base64url"),
      e: "AQAB",
    });
    for (const [akJwk, message] of [
      [jwkOf({ modulusLength: 1024 }), "HCLAkPub: expected an RSA modulus of 2048..8192 bits, found 1024"],
      [modulus([0x7f], 255), "HCLAkPub: expected an RSA modulus of 2048..8192 bits, found 2047"],
      // Leading zero bytes do not count.
      [modulus([0, 0x7f], 255), "HCLAkPub: expected an RSA modulus of 2048..8192 bits, found 2047"],
      [modulus([1], 1024), "HCLAkPub: expected an RSA modulus of 2048..8192 bits, found 8193"],
      [jwkOf({ modulusLength: 2048, publicExponent: 3 }), "HCLAkPub: expected public exponent 65537, found 0x03"],
      [{ n: "not/base64url", e: "AQAB" }, `HCLAkPub n: ${BASE64URL_EXPECTED}, found "/" at character 3`],
      // 4k+1 characters decode to no byte string (atob throws a DOMException without a code).
      [{ n: "A".repeat(345), e: "AQAB" }, `HCLAkPub n: ${BASE64URL_EXPECTED}, found a length of 4k+1 (345 characters)`],
      [{ n: "A".repeat(344), e: "AQABA" }, `HCLAkPub e: ${BASE64URL_EXPECTED}, found a length of 4k+1 (5 characters)`],
      // A 2048-bit modulus is 342 characters, the last one's low 4 bits unused: one spelling only.
      [
        { n: withUnusedBitSet(jwkOf({ modulusLength: 2048 }).n as string), e: "AQAB" },
        `HCLAkPub n: ${BASE64URL_EXPECTED}, found unused bits set in its last character`,
      ],
    ] as const) {
      const error = await rejection(verify(evidence(all, akJwk)));
      expect([error.code, error.message]).toEqual(["AZURE_AK_INVALID", message]);
    }
    // 8192 bits is within the bounds: such a key is used, and does not verify the test key's quote.
    expect((await rejection(verify(evidence(all, modulus([], 1024))))).code).toBe("AZURE_TPM_QUOTE_SIGNATURE_INVALID");
  });

  it.each([1, 2, 3])(
    "refuses an HCL report whose SNP report is at VMPL %i, not the paravisor's 0 (AZURE_HCL_VMPL_INVALID)",
    async (vmpl) => {
      // A guest kernel below the paravisor can request a report with REPORT_DATA of its choosing:
      // here it binds runtime data naming its own vTPM key, which signs its own quote.
      const e = simulatedAzureSnpEvidence({ extraData: nonce, vmpl });
      const error = await rejection(verify(e));
      expect([error.code, error.message]).toEqual([
        "AZURE_HCL_VMPL_INVALID",
        `HCL report SNP report VMPL: expected 0 (the paravisor's), found ${vmpl}`,
      ]);
      expect((await verify(simulatedAzureSnpEvidence({ extraData: nonce, vmpl: 0 }))).snp?.report.vmpl).toBe(0);
    },
  );

  it("refuses REPORT_DATA that binds the runtime data in its first 32 bytes but is not zero in the last 32", async () => {
    const upper = new Uint8Array(32);
    upper[31] = 1;
    const error = await rejection(
      verify(simulatedAzureSnpEvidence({ extraData: nonce, insecureReportDataUpper: upper })),
    );
    expect(error.code).toBe("AZURE_RUNTIME_DATA_NOT_BOUND");
    expect(error.message).toMatch(/followed by 32 zero bytes, found [0-9a-f]{64}0{62}01$/);
    const zero = simulatedAzureSnpEvidence({ extraData: nonce, insecureReportDataUpper: new Uint8Array(32) });
    expect((await verify(zero)).simulated).toBe(true);
  });

  it("refuses runtime data that names a member twice (the hashed bytes and the parsed object would differ)", async () => {
    // The captured members first (those are what a reader of the bytes sees), then a second "keys"
    // naming the attacker's vTPM key and a second "vm-configuration", which JSON.parse would keep.
    const appended = (members: string) => (captured: string, jwk: { n?: string; e?: string }) =>
      `{${captured.trim().slice(1, -1)},${members.replace("$N", jwk.n ?? "").replace("$E", jwk.e ?? "")}}`;
    const attackerKeys = '"keys":[{"kid":"HCLAkPub","kty":"RSA","n":"$N","e":"$E"}]';
    const attackerConfig = '"vm-configuration":{"console-enabled":false,"secure-boot":true}';
    // Named by its path, as every JSON reader of signed or hashed bytes names it (parseUtf8Json); a
    // name that does not look like a field name by its length only.
    for (const [runtimeJson, path] of [
      [appended(`${attackerKeys},${attackerConfig}`), "keys"],
      [appended(attackerConfig), "\\(a name of 16 characters\\)"],
      // Names are compared unescaped, as JSON.parse compares them.
      [appended(attackerKeys.replace('"keys"', '"\\u006beys"')), "keys"],
      // At any depth: a second "secure-boot" inside vm-configuration.
      [
        (c: string) => c.replace('"secure-boot":', '"secure-boot":false,"secure-boot":'),
        "\\(a name of 16 characters\\)\\.\\(a name of 11 characters\\)",
      ],
    ] as const) {
      const error = await rejection(verify(simulatedAzureSnpEvidence({ extraData: nonce, runtimeJson })));
      expect(error.code).toBe("AZURE_HCL_REPORT_MALFORMED");
      expect(error.message).toMatch(
        new RegExp(
          `^HCL report: runtime data: ${path} appears twice in one object \\(the second at position \\d+\\): expected each member once \\(JSON.parse would use the last while a reader sees the first\\); remove one$`,
        ),
      );
    }
    // Without a duplicate, the attacker's members alone would verify (the quote is signed by
    // their key): it is the duplicate that is refused, not the content.
    const alone = (c: string, jwk: { n?: string; e?: string }) =>
      JSON.stringify({ ...JSON.parse(c), keys: [{ kid: "HCLAkPub", kty: "RSA", n: jwk.n, e: jwk.e }] });
    const v = await verify(simulatedAzureSnpEvidence({ extraData: nonce, runtimeJson: alone }));
    expect(v.runtimeData.vmConfiguration["secure-boot"]).toBe(true);
  });

  it("refuses a verification time or expected nonce that cannot be checked (AZURE_BAD_OPTION)", async () => {
    const e = evidence([{ hashAlg: SHA256, pcrs: ALL_PCRS }]);
    for (const [at, expectedNonce] of [
      [new Date(Number.NaN), nonce],
      [SNP_AT, new Uint8Array(0)],
      [SNP_AT, new Uint8Array(65)],
    ] as const) {
      await expect(verifyAzureEvidence({ evidence: e, at, expectedNonce, snpAnchors })).rejects.toMatchObject({
        code: "AZURE_BAD_OPTION",
      });
    }
  });

  it("makes verified evidence only through verifyAzureEvidence (AZURE_VERIFIED_FORGED)", async () => {
    const v = await verify(evidence([{ hashAlg: SHA256, pcrs: ALL_PCRS }]));
    const Verified = v.constructor as new (key: symbol, fields: unknown) => unknown;
    expect(() => new Verified(Symbol("VerifiedAzureEvidence"), v)).toThrow(
      expect.objectContaining({ code: "AZURE_VERIFIED_FORGED" }),
    );
  });
});
