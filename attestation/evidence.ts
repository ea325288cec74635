/**
 * The evidence an attestation document carries, and its verification against trust anchors:
 * SEV-SNP report + VCEK/VLEK, TDX quote (PCK chain inside), or Azure CVM evidence (HCL report +
 * vTPM quote). This module only dispatches to the per-TEE parse and verify code; it adds no check
 * of its own except structure.
 */
import { parseAzureEvidence } from "./azure/evidence.ts";
import { type VerifiedAzureEvidence, verifyAzureEvidence } from "./azure/verify.ts";
import type { BoundValue } from "./binding.ts";
import { toHex } from "./bytes.ts";
import { type AttestationCollateral, tdxVerificationCollateral } from "./collateral.ts";
import { AttestationError, ParseError } from "./errors.ts";
import { decodeStrictBase64url } from "./jws.ts";
import type { SnpTrustAnchor } from "./roots/amd.ts";
import type { TdxTrustAnchor } from "./roots/intel.ts";
import { parseSnpReport } from "./snp/parse.ts";
import { VerifiedSnpReport, verifySnpReport } from "./snp/verify.ts";
import { parseTdxQuote } from "./tdx/parse.ts";
import { type VerifiedTdxQuote, verifyTdxQuote } from "./tdx/verify.ts";
import { describeUntrusted } from "./untrusted-text.ts";
import { parseCertificate } from "./x509.ts";

export type DocumentEvidence =
  | { readonly type: "sev-snp"; readonly report: string; readonly endorsementKey: string }
  | { readonly type: "tdx"; readonly quote: string }
  | { readonly type: "azure-snp" | "azure-tdx"; readonly evidence: string };

export type EvidenceType = DocumentEvidence["type"];
export const EVIDENCE_TYPES: readonly EvidenceType[] = ["sev-snp", "tdx", "azure-snp", "azure-tdx"];

export interface TrustAnchors {
  readonly snp: readonly SnpTrustAnchor[];
  readonly tdx: readonly TdxTrustAnchor[];
}

export interface VerifiedDocumentEvidence {
  readonly type: EvidenceType;
  /** The verified evidence to appraise (for Azure: the whole chain, hardware report to vTPM quote). */
  readonly evidence: VerifiedSnpReport | VerifiedTdxQuote | VerifiedAzureEvidence;
  /**
   * Where the evidence carries the binding (binding.ts): SNP REPORT_DATA, TDX REPORTDATA, or the
   * Azure vTPM quote's qualifying data, which holds SHA-256(REPORT_DATA).
   */
  readonly bound: BoundValue;
  readonly simulated: boolean;
  /** Launch measurement (SNP MEASUREMENT or TDX MRTD), lower-case hex. */
  readonly measurement: string;
  readonly details: Record<string, unknown>;
  /**
   * The earliest notAfter (ms since the epoch) of every certificate the verification relied on, and
   * of a TDX quote's collateral (collateralNotAfter): a remembered verification (document.ts) must
   * outlive neither.
   */
  readonly certificatesNotAfter: number;
}

/** certificatesNotAfter of verified hardware evidence, a TDX quote's under Azure too. */
function earliestNotAfter(evidence: VerifiedSnpReport | VerifiedTdxQuote): number {
  if (evidence instanceof VerifiedSnpReport) {
    const certs = [
      evidence.endorsementKey,
      evidence.anchor.ark,
      evidence.anchor.ask,
      ...(evidence.anchor.asvk === null ? [] : [evidence.anchor.asvk]),
    ];
    return Math.min(...certs.map((c) => c.notAfter.getTime()));
  }
  return Math.min(evidence.collateralNotAfter, ...evidence.quote.pckChain.map((c) => c.notAfter.getTime()));
}

const MAX_FIELD = 2 * 1024 * 1024;

function field(value: unknown, name: string): string {
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_FIELD) {
    throw new ParseError("DOCUMENT_EVIDENCE_MALFORMED", `evidence.${name}: expected a non-empty string`);
  }
  return value;
}

/**
 * An evidence member's bytes, from base64url in its one spelling (decodeStrictBase64url): the
 * document is signed as text, so one text stands for one report or quote.
 */
function decode(value: string, name: string): Uint8Array {
  return decodeStrictBase64url(value, `evidence.${name}`, (message, cause) => {
    throw new ParseError("DOCUMENT_EVIDENCE_MALFORMED", message, { cause });
  });
}

/** Checks the shape of the document's `evidence` member. */
export function parseDocumentEvidence(value: unknown): DocumentEvidence {
  const e = value as Record<string, unknown> | null;
  if (e === null || typeof e !== "object") {
    throw new ParseError("DOCUMENT_EVIDENCE_MALFORMED", "evidence: expected an object");
  }
  switch (e.type) {
    case "sev-snp":
      return {
        type: "sev-snp",
        report: field(e.report, "report"),
        endorsementKey: field(e.endorsementKey, "endorsementKey"),
      };
    case "tdx":
      return { type: "tdx", quote: field(e.quote, "quote") };
    case "azure-snp":
    case "azure-tdx":
      return { type: e.type, evidence: field(e.evidence, "evidence") };
    default:
      throw new ParseError(
        "DOCUMENT_EVIDENCE_MALFORMED",
        `evidence.type: expected one of ${EVIDENCE_TYPES.join(", ")}, found ${describeUntrusted(e.type)}`,
      );
  }
}

/**
 * Parses and verifies the document's evidence at `at` under `anchors`, with the collateral served
 * next to the document (collateral.ts) when there is some for its type: TDX evidence with TDX
 * collateral gets its TCB status, QE identity and PCK revocation checked, strictly (current
 * collateral, signer valid now).
 */
export async function verifyDocumentEvidence(
  evidence: DocumentEvidence,
  anchors: TrustAnchors,
  at: Date,
  collateral: AttestationCollateral | null = null,
): Promise<VerifiedDocumentEvidence> {
  try {
    switch (evidence.type) {
      case "sev-snp": {
        const verified = await verifySnpReport({
          report: parseSnpReport(decode(evidence.report, "report")),
          endorsementKey: parseCertificate(decode(evidence.endorsementKey, "endorsementKey")),
          anchors: anchors.snp,
          at,
        });
        return {
          type: "sev-snp",
          evidence: verified,
          bound: { carrier: "report-data", value: verified.report.reportData },
          simulated: verified.simulated,
          measurement: toHex(verified.report.measurement),
          details: {
            product: verified.product,
            signingKey: verified.signingKey,
            chipId: toHex(verified.report.chipId),
          },
          certificatesNotAfter: earliestNotAfter(verified),
        };
      }
      case "tdx": {
        const tdx = collateral?.tdx === undefined ? undefined : tdxVerificationCollateral(collateral.tdx);
        const verified = await verifyTdxQuote({
          quote: parseTdxQuote(decode(evidence.quote, "quote")),
          anchors: anchors.tdx,
          at,
          collateral: tdx?.collateral,
          crls: tdx?.crls,
        });
        return {
          type: "tdx",
          evidence: verified,
          bound: { carrier: "report-data", value: verified.quote.body.reportData },
          simulated: verified.simulated,
          measurement: toHex(verified.quote.body.mrTd),
          details: {
            fmspc: verified.fmspc,
            tcbStatus: verified.tcbStatus,
            ...(verified.tcbInfo === null
              ? {}
              : {
                  tcbEvaluationDataNumber: verified.tcbInfo.tcbEvaluationDataNumber,
                  collateralNextUpdate: verified.tcbInfo.nextUpdate,
                  revocationChecked: verified.revocationChecked,
                }),
          },
          certificatesNotAfter: earliestNotAfter(verified),
        };
      }
      case "azure-snp":
      case "azure-tdx": {
        const parsed = parseAzureEvidence(evidence.evidence);
        if (parsed.kind !== evidence.type) {
          throw new ParseError(
            "DOCUMENT_EVIDENCE_MALFORMED",
            `evidence: type ${evidence.type} carries ${parsed.kind} evidence`,
          );
        }
        // The binding is the vTPM quote's qualifying data (SHA-256 of REPORT_DATA); binding.ts compares it.
        const verified = await verifyAzureEvidence({
          evidence: parsed,
          at,
          expectedNonce: null,
          snpAnchors: anchors.snp,
          tdxAnchors: anchors.tdx,
        });
        const hardware = verified.snp ?? verified.tdx;
        if (hardware === null) throw new ParseError("DOCUMENT_EVIDENCE_MALFORMED", "evidence: no hardware report");
        return {
          type: evidence.type,
          evidence: verified,
          bound: { carrier: "azure-vtpm-quote", value: verified.tpm.extraData },
          simulated: verified.simulated,
          measurement:
            verified.snp !== null
              ? toHex(verified.snp.report.measurement)
              : toHex((verified.tdx as VerifiedTdxQuote).quote.body.mrTd),
          details: {
            runtimeDataSha256: toHex(verified.runtimeDataSha256),
            vmUniqueId: verified.runtimeData.vmUniqueId ?? null,
          },
          certificatesNotAfter: earliestNotAfter(hardware),
        };
      }
    }
  } catch (error) {
    if (error instanceof AttestationError) throw error;
    throw new AttestationError("verify", "EVIDENCE_INVALID", "evidence could not be verified", { cause: error });
  }
}
