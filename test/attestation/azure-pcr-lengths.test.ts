/**
 * verifyAzureEvidence recomputes the vTPM quote's pcrDigest as SHA-256 of the selected PCR values
 * concatenated, so their boundaries are not in the digest: a PCR value one byte short and the next
 * one byte long give the same digest, and the quote's signature still verifies, while the values a
 * policy's azure section pins are other than the quoted ones. The parser (evidence.ts pcrList)
 * refuses a value that is not 32 bytes; evidence built in code does not pass through it, so the
 * verifier checks it too, before the digest.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type AzureEvidence, parseAzureEvidence } from "../../attestation/azure/evidence.ts";
import { verifyAzureEvidence } from "../../attestation/azure/verify.ts";
import { ParseError } from "../../attestation/errors.ts";
import { AMD_ROOTS } from "../../attestation/roots/amd.ts";
import { rejectionOf } from "../helpers/rejections.ts";

const EVIDENCE = new URL("../fixtures/attestation/azure/snp-vtpm/genoa-evidence.trustee.json", import.meta.url);
const AT = new Date("2025-06-01T00:00:00Z");

const parsed = () => parseAzureEvidence(readFileSync(EVIDENCE, "utf8"));
const verify = (evidence: AzureEvidence) =>
  verifyAzureEvidence({ evidence, at: AT, expectedNonce: null, snpAnchors: AMD_ROOTS });

/** The evidence with the last byte of PCR `index` moved to the start of the next ("later"), or the reverse. */
function shifted(evidence: AzureEvidence, index: number, direction: "later" | "earlier"): AzureEvidence {
  const pcrs: Uint8Array[] = evidence.tpmQuote.pcrs.map((pcr) => pcr.slice());
  const [a, b] = [pcrs[index] as Uint8Array, pcrs[index + 1] as Uint8Array];
  if (direction === "later") {
    pcrs[index] = a.subarray(0, a.length - 1);
    pcrs[index + 1] = Uint8Array.of(a[a.length - 1] as number, ...b);
  } else {
    pcrs[index] = Uint8Array.of(...a, b[0] as number);
    pcrs[index + 1] = b.subarray(1);
  }
  return { ...evidence, tpmQuote: { ...evidence.tpmQuote, pcrs } };
}

describe("verifyAzureEvidence: the length of each PCR value", () => {
  it("verifies the evidence as parsed (every selected PCR 32 bytes)", async () => {
    const verified = await verify(parsed());
    // PCRs 0 and 1, whose boundary the tests below move, are both quoted.
    expect([verified.tpm.pcrs.has(0), verified.tpm.pcrs.has(1)]).toEqual([true, true]);
    for (const value of verified.tpm.pcrs.values()) expect(value.length).toBe(32);
  });

  it.each(["later", "earlier"] as const)(
    "refuses PCR values whose boundary moved one byte %s (same concatenation, same pcrDigest)",
    async (direction) => {
      const error = await rejectionOf(verify(shifted(parsed(), 0, direction)), ParseError);
      expect(error.code).toBe("AZURE_EVIDENCE_MALFORMED");
      expect(error.message).toBe(
        `vTPM quote: PCR 0: expected a 32-byte SHA-256 value, found ${direction === "later" ? 31 : 33} bytes`,
      );
    },
  );
});
