/**
 * The fixtures no other test read: the milan-v2 and TDX convenience copies of the Azure evidence
 * (test/fixtures/attestation/README.md, "azure/snp-vtpm and azure/tdx-vtpm") and the GCP TDX
 * quote's teekit JSON. Each copy is the field of its evidence JSON, and evidence assembled from the
 * copies verifies with EXPECTED.json's values; the GCP quote's verified REPORTDATA is the SHA-512
 * binding of its verifier nonce the README gives.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type AzureEvidence, parseAzureEvidence } from "../../attestation/azure/evidence.ts";
import { verifyAzureEvidence } from "../../attestation/azure/verify.ts";
import { fromHex, toHex } from "../../attestation/bytes.ts";
import { AMD_ROOTS } from "../../attestation/roots/amd.ts";
import { INTEL_ROOTS } from "../../attestation/roots/intel.ts";
import { parseTdxQuote } from "../../attestation/tdx/parse.ts";
import { verifyTdxQuote } from "../../attestation/tdx/verify.ts";
import { rejection } from "../helpers/attestation.ts";

const FIXTURES = new URL("../fixtures/attestation/", import.meta.url);
const read = (path: string) => new Uint8Array(readFileSync(new URL(path, FIXTURES)));
const text = (path: string) => readFileSync(new URL(path, FIXTURES), "utf8");
const EXPECTED = JSON.parse(text("EXPECTED.json")) as {
  azure_vtpm: Record<string, { extraData: string; runtime_data_sha256: string; pcr0: string; measurement?: string }>;
};
const anchors = { snpAnchors: AMD_ROOTS, tdxAnchors: INTEL_ROOTS } as const;

describe("milan-v2 convenience copies", () => {
  const row = EXPECTED.azure_vtpm["azure/snp-vtpm/milan-evidence-v2.trustee.json"];
  const json = parseAzureEvidence(text("azure/snp-vtpm/milan-evidence-v2.trustee.json"));
  const pcrs = (JSON.parse(text("azure/snp-vtpm/milan-v2-tpm-pcrs.json")) as { alg: string; pcrs: string[] }).pcrs.map(
    (p) => fromHex(p),
  );
  const fromCopies: AzureEvidence = {
    ...json,
    hclReport: read("azure/snp-vtpm/milan-v2-hcl-report.bin"),
    tpmQuote: {
      message: read("azure/snp-vtpm/milan-v2-tpm-quote-attest.bin"),
      signature: read("azure/snp-vtpm/milan-v2-tpm-quote-signature.bin"),
      pcrs,
    },
  };

  it("are the fields of milan-evidence-v2.trustee.json", () => {
    expect(fromCopies).toEqual(json);
  });

  it("verify as that evidence, with its nonce in the quote and in the HCL user-data", async () => {
    if (row === undefined) throw new Error("EXPECTED.json has no milan-v2 row");
    const nonce = fromHex(row.extraData);
    const v = await verifyAzureEvidence({
      evidence: fromCopies,
      at: new Date("2026-01-01T00:00:00Z"),
      expectedNonce: nonce,
      ...anchors,
    });
    expect(toHex(v.runtimeDataSha256)).toBe(row.runtime_data_sha256);
    expect(toHex(v.tpm.pcrs.get(0) as Uint8Array)).toBe(row.pcr0);
    expect(toHex(v.snp?.report.measurement ?? new Uint8Array())).toBe(row.measurement);
    // README: the verifier nonce (48 bytes) is also the first 48 bytes of user-data, in upper case.
    expect(v.runtimeData.userData?.slice(0, 96)).toBe(row.extraData.toUpperCase());
    // The signature copy is the one over the attest copy: a flipped bit in it is refused.
    const signature = fromCopies.tpmQuote.signature.slice();
    signature[0] = (signature[0] as number) ^ 1;
    const error = await rejection(
      verifyAzureEvidence({
        evidence: { ...fromCopies, tpmQuote: { ...fromCopies.tpmQuote, signature } },
        at: new Date("2026-01-01T00:00:00Z"),
        expectedNonce: nonce,
        ...anchors,
      }),
    );
    expect(error.code).toBe("AZURE_TPM_QUOTE_SIGNATURE_INVALID");
  });
});

describe("Azure TDX convenience copies", () => {
  it("tdx-hcl-report.bin and tdx-td-quote-v4.bin are the fields of tdx-evidence-v1.trustee.json", async () => {
    const json = parseAzureEvidence(text("azure/tdx-vtpm/tdx-evidence-v1.trustee.json"));
    expect(read("azure/tdx-vtpm/tdx-hcl-report.bin")).toEqual(json.hclReport);
    expect(read("azure/tdx-vtpm/tdx-td-quote-v4.bin")).toEqual(json.tdQuote);
  });
});

describe("GCP TDX quote (quote-v4-gcp-2025.teekit.json)", () => {
  const teekit = JSON.parse(text("tdx/quote-v4-gcp-2025.teekit.json")) as {
    tdx: { quote: string; verifier_nonce: { val: string; iat: string } };
  };

  it("holds quote-v4-gcp-2025.bin, whose verified REPORTDATA is SHA-512(nonce val || iat)", async () => {
    const quoteBytes = new Uint8Array(Buffer.from(teekit.tdx.quote, "base64"));
    expect(quoteBytes).toEqual(read("tdx/quote-v4-gcp-2025.bin"));
    const v = await verifyTdxQuote({
      quote: parseTdxQuote(quoteBytes),
      anchors: INTEL_ROOTS,
      at: new Date("2025-09-12T00:00:00Z"),
    });
    const { val, iat } = teekit.tdx.verifier_nonce;
    const binding = createHash("sha512")
      .update(Buffer.from(val, "base64"))
      .update(Buffer.from(iat, "base64"))
      .digest("hex");
    expect(toHex(v.quote.body.reportData)).toBe(binding);
  });
});
