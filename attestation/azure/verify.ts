/**
 * Verification of Azure confidential-VM evidence (HCL report + vTPM quote), offline, against
 * pinned hardware roots at an injected time. Checks, in this order, each failure with its own code:
 *
 *   1. structure: evidence JSON, HCL report, TPMS_ATTEST (ParseError AZURE_*_MALFORMED); the HCL
 *      report type matches the evidence kind (AZURE_EVIDENCE_KIND_MISMATCH)
 *   2. the hardware report:
 *      SNP — the 1184-byte report inside the HCL report, with the VCEK from the evidence, through
 *            verifySnpReport (chain to the pinned ARK, signature, hwID, TCB: SNP_* / CERT_* codes),
 *            and its VMPL is 0, the paravisor's (AZURE_HCL_VMPL_INVALID);
 *      TDX — the TD quote through verifyTdxQuote (PCK chain, QE report, quote signature: TDX_*),
 *            then every TDREPORT field in the HCL report equals the quote's (AZURE_TD_QUOTE_MISMATCH):
 *            the TDREPORT is only MAC'd, so its authority comes from the quote that repeats it
 *   3. REPORT_DATA[0:32] == SHA-256(runtime-data JSON) and REPORT_DATA[32:64] == 0
 *      (AZURE_RUNTIME_DATA_NOT_BOUND): only now are the runtime data (and HCLAkPub) trusted
 *   4. HCLAkPub (RSA ≥ 2048, e = 65537; AZURE_AK_INVALID) verifies the vTPM quote's
 *      RSASSA-PKCS1-v1_5/SHA-256 signature over TPMS_ATTEST (AZURE_TPM_QUOTE_SIGNATURE_INVALID)
 *   5. one SHA-256 PCR selection (AZURE_TPM_PCR_SELECTION_UNSUPPORTED) and
 *      pcrDigest == SHA-256(selected PCR values, ascending) (AZURE_PCR_DIGEST_MISMATCH)
 *   6. extraData == the expected nonce, when one is given (AZURE_TPM_NONCE_MISMATCH)
 *
 * Not checked here: what the measurements, PCRs, vm-configuration or TCB say (appraisal), and the
 * Cloister key binding in the nonce (binding.ts decides what the nonce must be). Not authenticated
 * by anything, and so left out of the verified result: the HCL header's version and request_type,
 * the runtime-data header's version, and the hardware-report region as bytes (VerifiedHclReport):
 * for TDX its TDREPORT is only MAC'd, and the fields no TD quote field repeats (REPORTMACSTRUCT
 * with CPUSVN, TEE_TCB_SVN2, SERVTD_HASH, the padding after it) could be anything. What the
 * hardware vouches for is the verified `snp` report or `tdx` quote.
 */
import { bytesEqual, concatBytes, fromBase64url, isAllZero, toHex } from "../bytes.ts";
import { constantTimeEqual, sha256, verifyRsaPkcs1 } from "../crypto.ts";
import { encodeBitString, encodeOid, encodeSequence, encodeTlv, encodeUnsignedInteger } from "../der.ts";
import { ConfigurationError, ParseError, VerifyError } from "../errors.ts";
import type { SnpTrustAnchor } from "../roots/amd.ts";
import type { TdxTrustAnchor } from "../roots/intel.ts";
import { parseSnpReport, type SnpReport } from "../snp/parse.ts";
import { type VerifiedSnpReport, verifySnpReport } from "../snp/verify.ts";
import { parseTdxQuote, type TdxQuote } from "../tdx/parse.ts";
import { type VerifiedTdxQuote, type VerifyTdxQuoteOptions, verifyTdxQuote } from "../tdx/verify.ts";
import { OID, parseCertificateBytes } from "../x509.ts";
import type { AzureEvidence } from "./evidence.ts";
import { type HclReport, type HclRuntimeData, parseHclReport, type TdReportField, tdReportField } from "./hcl.ts";
import { parseTpmQuoteAttest, TPM_ALG_SHA256, type TpmQuoteAttest } from "./tpm.ts";

export interface VerifyAzureEvidenceInput {
  readonly evidence: AzureEvidence;
  /** Verification time for every certificate and collateral window. */
  readonly at: Date;
  /**
   * The qualifying data the vTPM quote must carry. `null` is an explicit "not checked here": the
   * result then says `nonceChecked: false` and the caller must check `tpm.extraData` itself.
   */
  readonly expectedNonce: Uint8Array | null;
  /** Trusted AMD anchors (AMD_ROOTS for real hardware); required for azure-snp evidence. */
  readonly snpAnchors?: readonly SnpTrustAnchor[];
  /** Trusted Intel anchors (INTEL_ROOTS for real hardware); required for azure-tdx evidence. */
  readonly tdxAnchors?: readonly TdxTrustAnchor[];
  /** TDX collateral options passed to verifyTdxQuote. */
  readonly tdxOptions?: Pick<
    VerifyTdxQuoteOptions,
    "collateral" | "crls" | "collateralSignerValidity" | "acceptStaleCollateral"
  >;
}

export interface VerifiedTpmQuote {
  readonly attest: TpmQuoteAttest;
  readonly extraData: Uint8Array;
  /** SHA-256 PCR values covered by the verified digest, by PCR index. */
  readonly pcrs: ReadonlyMap<number, Uint8Array>;
}

/**
 * The HCL report as verified: without the header's version and request_type and the runtime-data
 * header's version, which no signature and no bound hash covers (the host can write any value
 * there), so a verified result does not report them. Nor the hardware-report region as bytes
 * (`hardwareReport`, `tdReport`): on TDX only the TDREPORT fields the TD quote repeats are
 * compared, the rest is unauthenticated; the verified `snp` / `tdx` carry what the hardware signed.
 * They stay in the parsed HclReport (AzureEvidenceParts) as unverified diagnostics.
 */
export type VerifiedHclReport = Omit<
  HclReport,
  "version" | "requestType" | "runtimeDataVersion" | "hardwareReport" | "tdReport"
>;

const CONSTRUCT = Symbol("VerifiedAzureEvidence");

/** Azure CVM evidence whose every link verified. Only verifyAzureEvidence produces one. */
export class VerifiedAzureEvidence {
  readonly kind: "azure-snp" | "azure-tdx";
  readonly hcl: VerifiedHclReport;
  readonly runtimeData: HclRuntimeData;
  readonly runtimeDataSha256: Uint8Array;
  /** REPORT_DATA of the hardware report (SNP REPORT_DATA or TD quote REPORTDATA). */
  readonly reportData: Uint8Array;
  readonly tpm: VerifiedTpmQuote;
  readonly akModulusBits: number;
  readonly nonceChecked: boolean;
  readonly snp: VerifiedSnpReport | null;
  readonly tdx: VerifiedTdxQuote | null;
  /** True when the hardware report verified under a simulator anchor. */
  readonly simulated: boolean;
  readonly verifiedAt: Date;

  constructor(key: symbol, fields: Omit<VerifiedAzureEvidence, "simulated" | "verifiedAt"> & { verifiedAt: Date }) {
    if (key !== CONSTRUCT) {
      throw new ConfigurationError(
        "AZURE_VERIFIED_FORGED",
        "VerifiedAzureEvidence is produced by verifyAzureEvidence only",
      );
    }
    this.kind = fields.kind;
    this.hcl = fields.hcl;
    this.runtimeData = fields.runtimeData;
    this.runtimeDataSha256 = fields.runtimeDataSha256;
    this.reportData = fields.reportData;
    this.tpm = fields.tpm;
    this.akModulusBits = fields.akModulusBits;
    this.nonceChecked = fields.nonceChecked;
    this.snp = fields.snp;
    this.tdx = fields.tdx;
    this.simulated = (fields.snp?.simulated ?? false) || (fields.tdx?.simulated ?? false);
    this.verifiedAt = new Date(fields.verifiedAt.getTime());
    Object.freeze(this);
    CONSTRUCTED_AZURE.add(this);
  }

  /**
   * True only for objects this constructor made (so by verifyAzureEvidence): `instanceof` also
   * holds for an object made with Object.create(VerifiedAzureEvidence.prototype).
   */
  static isVerified(value: unknown): value is VerifiedAzureEvidence {
    return typeof value === "object" && value !== null && CONSTRUCTED_AZURE.has(value);
  }
}

const CONSTRUCTED_AZURE = new WeakSet<object>();

/** What parsing got to before a failure, for diagnostics (unverified). */
export interface AzureEvidenceParts {
  hcl: HclReport | null;
  attest: TpmQuoteAttest | null;
  snpReport: SnpReport | null;
  tdQuote: TdxQuote | null;
}

/**
 * One HCLAkPub member, strictly (fromBase64url). The runtime-data text it is read from is bound by
 * REPORT_DATA, so a re-spelled member would not verify anyway: this keeps one spelling per value,
 * as every base64url read here.
 */
function base64UrlToBytes(text: string, field: string): Uint8Array {
  try {
    return fromBase64url(text, `HCLAkPub ${field}`);
  } catch (error) {
    if (error instanceof ParseError) throw new VerifyError("AZURE_AK_INVALID", error.message, { cause: error });
    throw error;
  }
}

/** The HCLAkPub JWK as an rsaEncryption SubjectPublicKeyInfo, with its size checked. */
export function akPublicKeySpki(akPub: { n: string; e: string }): { spki: Uint8Array; modulusBits: number } {
  const n = base64UrlToBytes(akPub.n, "n");
  const e = base64UrlToBytes(akPub.e, "e");
  let start = 0;
  while (start < n.length && n[start] === 0) start++;
  const modulus = n.subarray(start);
  const modulusBits = modulus.length === 0 ? 0 : (modulus.length - 1) * 8 + (32 - Math.clz32(modulus[0] as number));
  if (modulusBits < 2048 || modulusBits > 8192) {
    throw new VerifyError(
      "AZURE_AK_INVALID",
      `HCLAkPub: expected an RSA modulus of 2048..8192 bits, found ${modulusBits}`,
    );
  }
  if (!bytesEqual(e, Uint8Array.of(1, 0, 1))) {
    throw new VerifyError("AZURE_AK_INVALID", `HCLAkPub: expected public exponent 65537, found 0x${toHex(e)}`);
  }
  const rsaPublicKey = encodeSequence(encodeUnsignedInteger(modulus), encodeUnsignedInteger(e));
  const algorithm = encodeSequence(encodeOid(OID.rsaEncryption), encodeTlv(0x05, new Uint8Array(0)));
  return { spki: encodeSequence(algorithm, encodeBitString(rsaPublicKey)), modulusBits };
}

/** The VMPL the Azure paravisor (HCL) requests its SNP report from. */
const HCL_VMPL = 0;

const TD_FIELDS: readonly [TdReportField, (q: TdxQuote) => Uint8Array][] = [
  ["reportData", (q) => q.body.reportData],
  ["teeTcbSvn", (q) => q.body.teeTcbSvn],
  ["mrSeam", (q) => q.body.mrSeam],
  ["mrSignerSeam", (q) => q.body.mrSignerSeam],
  ["seamAttributes", (q) => q.body.seamAttributes],
  ["tdAttributes", (q) => q.body.tdAttributes],
  ["xfam", (q) => q.body.xfam],
  ["mrTd", (q) => q.body.mrTd],
  ["mrConfigId", (q) => q.body.mrConfigId],
  ["mrOwner", (q) => q.body.mrOwner],
  ["mrOwnerConfig", (q) => q.body.mrOwnerConfig],
  ["rtmr0", (q) => q.body.rtmrs[0]],
  ["rtmr1", (q) => q.body.rtmrs[1]],
  ["rtmr2", (q) => q.body.rtmrs[2]],
  ["rtmr3", (q) => q.body.rtmrs[3]],
];

/**
 * Verifies Azure CVM evidence; see the module comment. `parts` (optional) is filled as parsing
 * proceeds so a caller can show unverified values after a failure.
 */
export async function verifyAzureEvidence(
  input: VerifyAzureEvidenceInput,
  parts: AzureEvidenceParts = { hcl: null, attest: null, snpReport: null, tdQuote: null },
): Promise<VerifiedAzureEvidence> {
  const { evidence, at } = input;
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) {
    throw new ConfigurationError("AZURE_BAD_OPTION", "verifyAzureEvidence: at must be a valid Date");
  }
  if (input.expectedNonce !== null && (input.expectedNonce.length === 0 || input.expectedNonce.length > 64)) {
    throw new ConfigurationError(
      "AZURE_BAD_OPTION",
      `verifyAzureEvidence: expectedNonce expected 1..64 bytes, found ${input.expectedNonce.length}`,
    );
  }

  // 1. Structure.
  const hcl = parseHclReport(evidence.hclReport);
  parts.hcl = hcl;
  if (`azure-${hcl.reportType}` !== evidence.kind) {
    throw new ParseError(
      "AZURE_EVIDENCE_KIND_MISMATCH",
      `HCL report: report_type expected ${evidence.kind === "azure-snp" ? "2 (SNP)" : "4 (TDX)"} for ${evidence.kind}, found ${hcl.reportType}`,
    );
  }
  const attest = parseTpmQuoteAttest(evidence.tpmQuote.message);
  parts.attest = attest;

  // 2. Hardware report.
  let snp: VerifiedSnpReport | null = null;
  let tdx: VerifiedTdxQuote | null = null;
  let reportData: Uint8Array;
  if (evidence.kind === "azure-snp") {
    const anchors = input.snpAnchors;
    if (anchors === undefined || anchors.length === 0) {
      throw new ConfigurationError(
        "AZURE_NO_TRUST_ANCHORS",
        "verifyAzureEvidence: azure-snp evidence needs snpAnchors (AMD_ROOTS)",
      );
    }
    if (evidence.vcek === null)
      throw new ParseError("AZURE_EVIDENCE_MALFORMED", "Azure evidence: azure-snp without a VCEK");
    const report = parseSnpReport(hcl.hardwareReport);
    parts.snpReport = report;
    snp = await verifySnpReport({ report, endorsementKey: parseCertificateBytes(evidence.vcek), anchors, at });
    // The paravisor (HCL) requests its report at VMPL 0. A report requested from a less privileged
    // level carries the same MEASUREMENT but REPORT_DATA of the requester's choosing, so it could
    // vouch for any runtime data, HCLAkPub and vTPM quote.
    if (report.vmpl !== HCL_VMPL) {
      throw new VerifyError(
        "AZURE_HCL_VMPL_INVALID",
        `HCL report SNP report VMPL: expected ${HCL_VMPL} (the paravisor's), found ${report.vmpl}`,
      );
    }
    reportData = report.reportData;
  } else {
    const anchors = input.tdxAnchors;
    if (anchors === undefined || anchors.length === 0) {
      throw new ConfigurationError(
        "AZURE_NO_TRUST_ANCHORS",
        "verifyAzureEvidence: azure-tdx evidence needs tdxAnchors (INTEL_ROOTS)",
      );
    }
    if (evidence.tdQuote === null)
      throw new ParseError("AZURE_EVIDENCE_MALFORMED", "Azure evidence: azure-tdx without a TD quote");
    const quote = parseTdxQuote(evidence.tdQuote);
    parts.tdQuote = quote;
    tdx = await verifyTdxQuote({ ...input.tdxOptions, quote, anchors, at });
    const tdReport = hcl.tdReport as Uint8Array;
    for (const [field, ofQuote] of TD_FIELDS) {
      const inReport = tdReportField(tdReport, field);
      if (!bytesEqual(inReport, ofQuote(quote))) {
        throw new VerifyError(
          "AZURE_TD_QUOTE_MISMATCH",
          `TDREPORT ${field}: expected the TD quote's value ${toHex(ofQuote(quote))}, found ${toHex(inReport)}`,
        );
      }
    }
    reportData = quote.body.reportData;
  }

  // 3. Runtime data bound into REPORT_DATA.
  const runtimeDataSha256 = await sha256(hcl.runtimeData.json);
  if (!bytesEqual(reportData.subarray(0, 32), runtimeDataSha256) || !isAllZero(reportData.subarray(32, 64))) {
    throw new VerifyError(
      "AZURE_RUNTIME_DATA_NOT_BOUND",
      `REPORT_DATA: expected SHA-256(runtime data) ${toHex(runtimeDataSha256)} followed by 32 zero bytes, found ${toHex(reportData)}`,
    );
  }

  // 4. The vTPM quote signature under HCLAkPub.
  const ak = akPublicKeySpki(hcl.runtimeData.akPub);
  const signatureValid = await verifyRsaPkcs1({
    hash: "SHA-256",
    spki: ak.spki,
    signature: evidence.tpmQuote.signature,
    data: attest.raw,
  });
  if (!signatureValid) {
    throw new VerifyError(
      "AZURE_TPM_QUOTE_SIGNATURE_INVALID",
      `vTPM quote: RSASSA-PKCS1-v1_5/SHA-256 signature over the ${attest.raw.length}-byte TPMS_ATTEST does not verify under HCLAkPub`,
    );
  }

  // 5. PCR digest.
  const [selection, ...others] = attest.pcrSelections;
  if (selection === undefined || others.length > 0 || selection.hashAlg !== TPM_ALG_SHA256) {
    throw new VerifyError(
      "AZURE_TPM_PCR_SELECTION_UNSUPPORTED",
      `vTPM quote: expected one SHA-256 PCR selection, found ${attest.pcrSelections.map((s) => `0x${s.hashAlg.toString(16)}`).join(", ") || "none"}`,
    );
  }
  const selected: Uint8Array[] = [];
  const pcrs = new Map<number, Uint8Array>();
  for (const index of selection.pcrs) {
    const value = evidence.tpmQuote.pcrs[index];
    // The digest covers the values concatenated, not their boundaries: PCR values of other lengths
    // (one a byte short, the next a byte long) would hash alike. The parser refuses them too
    // (evidence.ts pcrList); evidence built in code does not pass through it.
    if (value !== undefined && value.length !== 32) {
      throw new ParseError(
        "AZURE_EVIDENCE_MALFORMED",
        `vTPM quote: PCR ${index}: expected a 32-byte SHA-256 value, found ${value.length} bytes`,
      );
    }
    if (value === undefined) {
      throw new VerifyError(
        "AZURE_PCR_DIGEST_MISMATCH",
        `vTPM quote: PCR ${index} is selected, expected its value in the evidence, found ${evidence.tpmQuote.pcrs.length} values`,
      );
    }
    selected.push(value);
    pcrs.set(index, value.slice());
  }
  const digest = await sha256(concatBytes(...selected));
  if (!bytesEqual(digest, attest.pcrDigest)) {
    throw new VerifyError(
      "AZURE_PCR_DIGEST_MISMATCH",
      `vTPM quote: pcrDigest expected SHA-256 of the ${selected.length} selected PCR values ${toHex(digest)}, found ${toHex(attest.pcrDigest)}`,
    );
  }

  // 6. Nonce (never printed: it may be a caller secret).
  if (input.expectedNonce !== null && !constantTimeEqual(attest.extraData, input.expectedNonce)) {
    throw new VerifyError(
      "AZURE_TPM_NONCE_MISMATCH",
      `vTPM quote: extraData expected to equal the ${input.expectedNonce.length}-byte expected nonce, found ${attest.extraData.length} different bytes`,
    );
  }

  const {
    version: _version,
    requestType: _requestType,
    runtimeDataVersion: _runtimeVersion,
    hardwareReport: _hardwareReport,
    tdReport: _tdReport,
    ...verifiedHcl
  } = hcl;
  return new VerifiedAzureEvidence(CONSTRUCT, {
    kind: evidence.kind,
    hcl: verifiedHcl,
    runtimeData: hcl.runtimeData,
    runtimeDataSha256,
    reportData: reportData.slice(),
    tpm: { attest, extraData: attest.extraData.slice(), pcrs },
    akModulusBits: ak.modulusBits,
    nonceChecked: input.expectedNonce !== null,
    snp,
    tdx,
    verifiedAt: at,
  });
}
