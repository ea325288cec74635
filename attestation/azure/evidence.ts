/**
 * The Azure confidential-VM evidence JSON: the HCL report, the vTPM quote (TPMS_ATTEST message,
 * RSA signature, the PCR values it covers) and the hardware endorsement (SNP: the VCEK; TDX: the TD
 * quote). Parse only; nothing here is verified.
 *
 * Accepted formats (those of confidential-containers/trustee, whose public test data we verify):
 *   - v0 SNP (no "version"): {"quote":{"message":[int],"signature":[int],"pcrs":[[int]]},
 *     "report":[int], "vcek":"PEM"}
 *   - v1 and v2: {"version":1|2, "tpm_quote":{"message":HEX,"signature":HEX,"pcrs":[HEX]},
 *     "hcl_report":BASE64URL} with either "vcek":BASE64URL(DER) (SNP) or "td_quote":BASE64URL
 *     (TDX). Trustee has SNP evidence as v1 and v2 (the same JSON shape) and TDX as v1; both
 *     versions are read the same way, the kind coming from vcek / td_quote.
 * Trustee's v0 TDX evidence (no "version"; "tpm_quote", "hcl_report" and "td_quote" as int arrays)
 * is not accepted: it is refused with a message that says so.
 *
 * Cloister's own Azure evidence (what attestation/providers/azure-vtpm.ts emits, and what goes into
 * an attestation document) is v2 for SNP and v1 for TDX, byte-compatible with trustee.
 */
import { base64url } from "jose";
import { fromHex, toHex } from "../bytes.ts";
import { ParseError } from "../errors.ts";
import { jsonTextRefusal, parseJsonText } from "../json-text.ts";
import { describeUntrusted } from "../untrusted-text.ts";

export type AzureEvidenceFormat = "v0" | "v1" | "v2";

export interface AzureTpmQuote {
  /** TPMS_ATTEST bytes. */
  readonly message: Uint8Array;
  /** RSASSA-PKCS1-v1_5 signature bytes (the raw signature, not a TPMT_SIGNATURE). */
  readonly signature: Uint8Array;
  /** PCR values as read alongside the quote, index = PCR number. */
  readonly pcrs: readonly Uint8Array[];
}

export interface AzureEvidence {
  readonly kind: "azure-snp" | "azure-tdx";
  readonly format: AzureEvidenceFormat;
  readonly hclReport: Uint8Array;
  readonly tpmQuote: AzureTpmQuote;
  /** SNP: the VCEK certificate (DER or PEM bytes); null for TDX. */
  readonly vcek: Uint8Array | null;
  /** TDX: the TD quote; null for SNP. */
  readonly tdQuote: Uint8Array | null;
}

const MAX_EVIDENCE_CHARS = 1 << 20;

function malformed(message: string, cause?: unknown): ParseError {
  return new ParseError(
    "AZURE_EVIDENCE_MALFORMED",
    `Azure evidence: ${message}`,
    cause === undefined ? undefined : { cause },
  );
}

function intArray(value: unknown, field: string): Uint8Array {
  if (!Array.isArray(value) || !value.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) {
    throw malformed(`${field}: expected an array of byte values 0..255`);
  }
  return Uint8Array.from(value as number[]);
}

function hex(value: unknown, field: string): Uint8Array {
  if (typeof value !== "string") throw malformed(`${field}: expected hex text`);
  try {
    return fromHex(value, field);
  } catch (error) {
    throw malformed(`${field}: expected hex text`, error);
  }
}

function b64url(value: unknown, field: string): Uint8Array {
  // trustee writes padded base64url ("...AAAA="); padding is accepted only where it is correct.
  if (
    typeof value !== "string" ||
    !/^[A-Za-z0-9_-]*={0,2}$/.test(value) ||
    (value.endsWith("=") && value.length % 4 !== 0)
  ) {
    throw malformed(`${field}: expected base64url text`);
  }
  try {
    return base64url.decode(value.replace(/=+$/, ""));
  } catch (error) {
    throw malformed(`${field}: expected base64url text`, error);
  }
}

function pcrList(value: unknown, field: string, decode: (v: unknown, f: string) => Uint8Array): Uint8Array[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > 24) {
    throw malformed(`${field}: expected 1..24 PCR values`);
  }
  return value.map((v, i) => {
    const pcr = decode(v, `${field}[${i}]`);
    if (pcr.length !== 32) throw malformed(`${field}[${i}]: expected a 32-byte SHA-256 PCR, found ${pcr.length} bytes`);
    return pcr;
  });
}

function object(value: unknown, field: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw malformed(`${field}: expected an object`);
  return value as Record<string, unknown>;
}

/** Parses Azure evidence JSON in any accepted format. */
export function parseAzureEvidence(text: string): AzureEvidence {
  if (text.length > MAX_EVIDENCE_CHARS)
    throw malformed(`expected at most ${MAX_EVIDENCE_CHARS} characters, found ${text.length}`);
  // Each member once (parseJsonText): JSON.parse keeps the last of two, while whoever reads the
  // file, or the evidence inside a signed document, takes the first (a second "vcek" or "tpm_quote"
  // in front of the genuine one verified). Its SyntaxError says where, never what the text holds.
  let value: unknown;
  try {
    value = parseJsonText(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw malformed(jsonTextRefusal(error, "JSON"));
  }
  const root = object(value, "evidence");
  const version = root.version;
  if (version === undefined) {
    if (root.td_quote !== undefined || root.tpm_quote !== undefined) {
      throw malformed(
        'v0 TDX evidence (no "version", tpm_quote / td_quote as int arrays) is not supported: expected version 1',
      );
    }
    const quote = object(root.quote, "quote");
    if (typeof root.vcek !== "string") throw malformed("vcek: expected a PEM certificate");
    return {
      kind: "azure-snp",
      format: "v0",
      hclReport: intArray(root.report, "report"),
      tpmQuote: {
        message: intArray(quote.message, "quote.message"),
        signature: intArray(quote.signature, "quote.signature"),
        pcrs: pcrList(quote.pcrs, "quote.pcrs", intArray),
      },
      vcek: new TextEncoder().encode(root.vcek),
      tdQuote: null,
    };
  }
  if (version !== 1 && version !== 2)
    throw malformed(`version: expected 1 or 2 (or absent for v0), found ${describeUntrusted(version)}`);
  const quote = object(root.tpm_quote, "tpm_quote");
  const tpmQuote: AzureTpmQuote = {
    message: hex(quote.message, "tpm_quote.message"),
    signature: hex(quote.signature, "tpm_quote.signature"),
    pcrs: pcrList(quote.pcrs, "tpm_quote.pcrs", hex),
  };
  const hclReport = b64url(root.hcl_report, "hcl_report");
  const hasVcek = root.vcek !== undefined;
  const hasTdQuote = root.td_quote !== undefined;
  if (hasVcek === hasTdQuote) throw malformed("expected exactly one of vcek (SNP) and td_quote (TDX)");
  if (hasVcek) {
    return {
      kind: "azure-snp",
      format: `v${version}`,
      hclReport,
      tpmQuote,
      vcek: b64url(root.vcek, "vcek"),
      tdQuote: null,
    };
  }
  return {
    kind: "azure-tdx",
    format: `v${version}`,
    hclReport,
    tpmQuote,
    vcek: null,
    tdQuote: b64url(root.td_quote, "td_quote"),
  };
}

/**
 * Cloister's Azure evidence JSON: v2 for SNP (VCEK as DER), v1 for TDX. `vcek` must be DER here;
 * the provider converts what IMDS returns.
 */
export function serializeAzureEvidence(evidence: {
  readonly hclReport: Uint8Array;
  readonly tpmQuote: AzureTpmQuote;
  readonly vcekDer?: Uint8Array;
  readonly tdQuote?: Uint8Array;
}): string {
  const tpm_quote = {
    signature: toHex(evidence.tpmQuote.signature),
    message: toHex(evidence.tpmQuote.message),
    pcrs: evidence.tpmQuote.pcrs.map(toHex),
  };
  if ((evidence.vcekDer === undefined) === (evidence.tdQuote === undefined)) {
    throw malformed("expected exactly one of a VCEK (SNP) and a TD quote (TDX)");
  }
  if (evidence.vcekDer !== undefined) {
    return JSON.stringify({
      version: 2,
      tpm_quote,
      hcl_report: base64url.encode(evidence.hclReport),
      vcek: base64url.encode(evidence.vcekDer),
    });
  }
  return JSON.stringify({
    version: 1,
    tpm_quote,
    hcl_report: base64url.encode(evidence.hclReport),
    td_quote: base64url.encode(evidence.tdQuote as Uint8Array),
  });
}
