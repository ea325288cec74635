/**
 * Verification of a parsed Intel TDX quote (v4/v5, ECDSA-P256, certification data type 6) against
 * pinned trust anchors at an injected time. Checks, in this order, each failure with its own code:
 *
 *   1. PCK chain: leaf ← PCK Platform/Processor CA ← root, with x509 `verifyChain` at `at`, and the
 *      root byte-identical to one of `anchors` (ROOT_NOT_TRUSTED, CERT_*); the leaf a PCK certificate
 *      (subject CN "Intel SGX PCK Certificate", not a CA) and its issuer a PCK CA (CN "Intel SGX PCK
 *      Platform CA" or "Intel SGX PCK Processor CA"), as Intel's QVL requires (TDX_PCK_CHAIN_NOT_PCK).
 *   2. Revocation when `crls` are given: every non-root PCK-chain certificate must be covered by a
 *      CRL of its issuer (TDX_CRL_MISSING), each CRL verified and current (CRL_*), CERT_REVOKED.
 *      The collateral signers (step 6) are checked against the root's CRL the same way. CRLs are
 *      parsed from their DER once per call; one that may not be used for a certificate (bad
 *      signature, out of scope, an unknown critical extension) is passed over (RFC 5280 6.3.3); with
 *      several usable ones of an issuer, a serial any of them lists is revoked and the newest issued
 *      by `at` must be current.
 *   3. QE report signature by the PCK leaf key, P-256/SHA-256 over the 384 raw QE-report bytes
 *      (TDX_QE_REPORT_SIGNATURE_INVALID). Without it the attestation key is not endorsed.
 *   4. QE report-data binding: REPORTDATA = SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes
 *      (TDX_QE_BINDING_MISMATCH); the QE is Intel's TD quoting enclave (TDX_QE_NOT_INTEL) and not in
 *      debug mode (TDX_QE_DEBUG), with or without collateral.
 *   5. Quote signature by the attestation key over header + body (TDX_QUOTE_SIGNATURE_INVALID).
 *      Trailing bytes after the signature data are never part of it (see parse.ts).
 *   6. Collateral, when given: signatures over the raw JSON values, signing chains to the SAME anchor
 *      as the PCK chain, validity windows per `collateralSignerValidity` / `acceptStaleCollateral`
 *      (collateral.ts), FMSPC/PCE-ID match, TDX module identity, QE identity, and the TCB level (tcb.ts).
 *
 * What it does not do: judge the result. A TCB status of OutOfDate or NotSupported, a debug TD, or
 * unexpected measurements still verify; appraisal (attestation/appraise.ts) applies the policy.
 * Evidence verified under a `simulated: true` anchor is marked `simulated: true`.
 */
import { bytesEqual, concatBytes, fromHex, isAllZero, toHex } from "../bytes.ts";
import { sha256, verifyEcdsa } from "../crypto.ts";
import { ConfigurationError, VerifyError } from "../errors.ts";
import type { TdxTrustAnchor } from "../roots/intel.ts";
import {
  type Certificate,
  type Crl,
  checkCrlCurrent,
  checkCrlFor,
  checkNotListed,
  checkSubjectRole,
  commonNameOf,
  parseCrl,
  verifyChain,
} from "../x509.ts";
import {
  type CollateralSignerValidity,
  parseIssuerChain,
  parseTdQeIdentity,
  parseTdxTcbInfo,
  type TdQeIdentity,
  type TdxTcbInfo,
  verifyTdxCollateralSignature,
} from "./collateral.ts";
import { isDebugTd, parseTdxQuote, type TdxQuote } from "./parse.ts";
import {
  convergeTcbStatus,
  evaluateQeIdentity,
  evaluateTdxTcb,
  type QeIdentityEvaluation,
  type TdxTcbEvaluation,
  type TdxTcbStatus,
} from "./tcb.ts";

/** Collateral as fetched from Intel PCS: raw response bodies and `*-Issuer-Chain` PEM texts. */

/**
 * Intel's TD quoting enclave: its MRSIGNER (Intel's SGX enclave signing key) and ISVPRODID, as
 * Intel's TD QE identity collateral states them (fixtures/attestation/tdx/collateral/
 * qeidentity-td-qe-*.json) and as every real quote in the fixtures carries them.
 */
const INTEL_TD_QE_MRSIGNER = fromHex("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5");
const INTEL_TD_QE_ISVPRODID = 2;
/** SGX ATTRIBUTES.FLAGS bit 1: the enclave runs in debug mode (its memory readable by the host). */
const SGX_ATTRIBUTES_DEBUG = 0x02;

export interface TdxCollateral {
  readonly tcbInfo?: { readonly json: Uint8Array | string; readonly issuerChain: Uint8Array | string } | undefined;
  readonly qeIdentity?: { readonly json: Uint8Array | string; readonly issuerChain: Uint8Array | string } | undefined;
}

export interface VerifyTdxQuoteOptions {
  /** The quote bytes, or a parsed quote (its `raw` bytes are parsed again here; other fields are not trusted). */
  readonly quote: TdxQuote | Uint8Array;
  /** Trusted roots; pass INTEL_ROOTS for real hardware. Never empty. */
  readonly anchors: readonly TdxTrustAnchor[];
  /** Verification time (injected; never read from the clock here). */
  readonly at: Date;
  readonly collateral?: TdxCollateral | undefined;
  /**
   * DER CRLs (e.g. the PCK Platform CA CRL and the Intel SGX Root CA CRL); a parsed CRL's `der` is
   * parsed again here. Several of one issuer: a serial any lists is revoked, the newest is current.
   */
  readonly crls?: readonly (Uint8Array | Crl)[] | undefined;
  /** How the collateral signer certificate's validity is checked; default "strict" (collateral.ts). */
  readonly collateralSignerValidity?: CollateralSignerValidity | undefined;
  /** Accept collateral and CRLs past nextUpdate (reported as `stale`); default false. */
  readonly acceptStaleCollateral?: boolean | undefined;
  /**
   * Says more about a PCK root that is none of `anchors` (appended to the ROOT_NOT_TRUSTED message;
   * "" for nothing): the CLI passes the simulator's (sim/hint.ts), kept out of this module so
   * verifiers built for browsers carry no simulator code.
   */
  readonly explainUntrustedRoot?: ((root: Certificate) => Promise<string>) | undefined;
}

export interface VerifiedCollateralInfo {
  readonly issueDate: string;
  readonly nextUpdate: string;
  readonly tcbEvaluationDataNumber: number;
  readonly signer: string;
  readonly signerExpired: boolean;
  readonly stale: boolean;
}

declare const verifiedBrand: unique symbol;

/** A quote whose signatures and chains verified. Only `verifyTdxQuote` produces one. */
export interface VerifiedTdxQuote {
  readonly [verifiedBrand]: true;
  readonly kind: "verified-tdx-quote";
  readonly quote: TdxQuote;
  readonly simulated: boolean;
  readonly verifiedAt: Date;
  /** SHA-256 (hex) of the trust anchor the PCK chain ended in. */
  readonly rootSha256: string;
  readonly debug: boolean;
  readonly fmspc: string;
  /** TCB evaluation against verified TCB info; null when no TCB info was given. */
  readonly tcb: TdxTcbEvaluation | null;
  readonly tcbInfo: VerifiedCollateralInfo | null;
  /** QE identity evaluation; null when no QE identity was given. */
  readonly qeIdentity: (QeIdentityEvaluation & VerifiedCollateralInfo) | null;
  /** Converged status of platform, TDX module and QE identity; null without TCB info. */
  readonly tcbStatus: TdxTcbStatus | null;
  /** Revocation was checked against current (or, if accepted, stale) CRLs. */
  readonly revocationChecked: boolean;
  /**
   * A CRL the PCK chain was checked against was past its nextUpdate, accepted (acceptStaleCollateral):
   * that certificate's revocation is known only as of that nextUpdate.
   */
  readonly revocationStale: boolean;
  /**
   * The earliest end (ms since the epoch; +Infinity for none) of what the collateral checks used: the
   * nextUpdate of the TCB info, the QE identity and the CRLs and, under the strict signer validity,
   * the collateral signers' notAfter. Past it, the same collateral is refused (COLLATERAL_EXPIRED,
   * CRL_EXPIRED, CERT_EXPIRED): a remembered verification (attestation/document.ts) must not outlive it.
   */
  readonly collateralNotAfter: number;
  /** Human-readable notes about relaxed checks (stale collateral, expired signer). */
  readonly warnings: readonly string[];
}

const VERIFIED = new WeakSet<object>();

/**
 * The TCB evaluation (Intel's `tcbEvaluationDataNumber`) of the collateral `verified` was checked
 * with: the older of its TCB info and QE identity; null without TCB info.
 */
export function collateralEvaluation(verified: VerifiedTdxQuote): number | null {
  if (verified.tcbInfo === null) return null;
  return Math.min(
    verified.tcbInfo.tcbEvaluationDataNumber,
    verified.qeIdentity?.tcbEvaluationDataNumber ?? Number.POSITIVE_INFINITY,
  );
}

/** True only for objects returned by `verifyTdxQuote`. */
export function isVerifiedTdxQuote(value: unknown): value is VerifiedTdxQuote {
  return typeof value === "object" && value !== null && VERIFIED.has(value);
}

/** SubjectPublicKeyInfo prefix of an uncompressed P-256 point (id-ecPublicKey, prime256v1). */
const P256_SPKI_PREFIX = Uint8Array.from([
  0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
  0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
]);

export function attestationKeySpki(attestationKey: Uint8Array): Uint8Array {
  return concatBytes(P256_SPKI_PREFIX, attestationKey);
}

const anchorDigests = new WeakMap<Certificate, string>();
async function rootDigest(cert: Certificate): Promise<string> {
  let digest = anchorDigests.get(cert);
  if (digest === undefined) {
    digest = toHex(await sha256(cert.der));
    anchorDigests.set(cert, digest);
  }
  return digest;
}

/** The three signature checks, as booleans (diagnostics; does not produce a verified quote). */
export async function checkTdxQuoteSignatures(quote: TdxQuote): Promise<{
  qeReportSignatureValid: boolean;
  qeReportDataBindsAttestationKey: boolean;
  quoteSignatureValid: boolean;
}> {
  const leafKey = quote.pckChain[0].publicKey;
  const qeReportSignatureValid =
    leafKey.kind === "ec" &&
    leafKey.curve === "P-256" &&
    (await verifyEcdsa({
      curve: "P-256",
      hash: "SHA-256",
      spki: leafKey.spki,
      signature: quote.qeReportSignature,
      data: quote.qeReportBytes,
    }));
  const expected = await sha256(concatBytes(quote.attestationKey, quote.qeAuthData));
  const rd = quote.qeReport.reportData;
  const qeReportDataBindsAttestationKey = bytesEqual(rd.subarray(0, 32), expected) && isAllZero(rd.subarray(32));
  const quoteSignatureValid = await verifyEcdsa({
    curve: "P-256",
    hash: "SHA-256",
    spki: attestationKeySpki(quote.attestationKey),
    signature: quote.signature,
    data: quote.signedBytes,
  });
  return { qeReportSignatureValid, qeReportDataBindsAttestationKey, quoteSignatureValid };
}

/** Intel PCS serves the CRL of each PCK CA at pckcrl?ca=…, by the CA's commonName. */
const PCK_CRL_CA: Readonly<Record<string, string>> = {
  "Intel SGX PCK Platform CA": "platform",
  "Intel SGX PCK Processor CA": "processor",
};

/**
 * The chain the root vouches for must be a PCK chain, as Intel's QVL requires (go-tdx-guest accepts
 * only the Platform CA): the leaf a PCK certificate (subject CN "Intel SGX PCK Certificate", not a
 * CA) under a PCK CA (CN "Intel SGX PCK Platform CA" or "Intel SGX PCK Processor CA"). The root also
 * issues the TCB signing certificate, whose key vouches for collateral, not for a QE. That the CA is
 * a CA `verifyChain` has checked (CERT_NOT_CA). The simulator's certificates carry the same CNs under
 * its own root, so this does not tell the two apart: the pinned root does.
 */
function checkPckChainNames(leaf: Certificate, ca: Certificate): void {
  const leafRole = { commonNames: ["Intel SGX PCK Certificate"], endEntity: true };
  checkSubjectRole(leaf, "PCK leaf", leafRole, "TDX_PCK_CHAIN_NOT_PCK");
  const caRole = { commonNames: Object.keys(PCK_CRL_CA), endEntity: false };
  checkSubjectRole(ca, "PCK CA", caRole, "TDX_PCK_CHAIN_NOT_PCK");
}

/** Why a CRL may not be used for a certificate (RFC 5280 6.3.3: such a CRL is passed over, not fatal). */
const UNUSABLE_CRL = new Set([
  "CRL_SIGNATURE_INVALID",
  "CRL_DELTA_UNSUPPORTED",
  "CRL_SCOPE_MISMATCH",
  "CRL_SCOPE_UNSUPPORTED",
  "CRL_UNKNOWN_CRITICAL_EXTENSION",
]);

/**
 * Checks `cert` against the CRLs of `issuer` among `crls` (parsed by verifyTdxQuote from their DER,
 * so their fields are trusted); one usable CRL is required (TDX_CRL_MISSING, or why the only ones
 * may not be used). One that may not be used for `cert` (signature, scope, a critical extension) is
 * passed over. A serial that any usable one lists is refused (whatever their order), and the newest
 * usable one issued by `at` answers for freshness (CRL_EXPIRED / CRL_NOT_YET_VALID, or a stale warning):
 * its nextUpdate is returned (+Infinity for none).
 */
async function checkAgainstCrls(
  cert: Certificate,
  issuer: Certificate,
  role: string,
  crls: readonly Crl[],
  at: Date,
  acceptStale: boolean,
  warnings: string[],
): Promise<number> {
  const mine = crls.filter((c) => bytesEqual(c.issuerDer, issuer.subjectDer));
  if (mine.length === 0) {
    const ca = PCK_CRL_CA[commonNameOf(issuer.subjectDer)];
    const hint = ca === undefined ? "" : `; fetch pckcrl?ca=${ca} from Intel PCS`;
    throw new VerifyError(
      "TDX_CRL_MISSING",
      `CRLs were given, but none is issued by "${issuer.subject}" (needed for the ${role} certificate)${hint}`,
    );
  }
  const usable: Crl[] = [];
  let passedOver: unknown;
  for (const c of mine) {
    try {
      await checkCrlFor(c, cert, issuer, role);
      usable.push(c);
    } catch (error) {
      if (!(error instanceof VerifyError) || !UNUSABLE_CRL.has(error.code)) throw error;
      passedOver ??= error;
    }
  }
  if (usable.length === 0) throw passedOver;
  const issued = usable.filter((c) => c.thisUpdate <= at);
  // None issued by `at`: the earliest, which checkCrlCurrent then refuses as not yet valid.
  const byTime = (a: Crl, b: Crl) => a.thisUpdate.getTime() - b.thisUpdate.getTime();
  const crl = (issued.length > 0 ? issued.sort(byTime).at(-1) : [...usable].sort(byTime)[0]) as Crl;
  for (const other of usable) if (other !== crl) checkNotListed(cert, other, role);
  let when = at;
  if (acceptStale && crl.nextUpdate !== undefined && at > crl.nextUpdate) {
    // Stale CRL explicitly accepted: revocation status as of the CRL's nextUpdate.
    when = crl.nextUpdate;
    const warning = `CRL from "${crl.issuer}" is stale (nextUpdate ${crl.nextUpdate.toISOString()})`;
    if (!warnings.includes(warning)) warnings.push(warning);
  }
  checkCrlCurrent(crl, when);
  checkNotListed(cert, crl, role);
  return crl.nextUpdate?.getTime() ?? Number.POSITIVE_INFINITY;
}

function collateralInfo(
  doc: TdxTcbInfo | TdQeIdentity,
  result: { signer: Certificate; signerExpired: boolean; stale: boolean },
): VerifiedCollateralInfo {
  return {
    issueDate: doc.issueDate.toISOString(),
    nextUpdate: doc.nextUpdate.toISOString(),
    tcbEvaluationDataNumber: doc.tcbEvaluationDataNumber,
    signer: result.signer.subject,
    signerExpired: result.signerExpired,
    stale: result.stale,
  };
}

/** Verifies a TDX quote; see the module comment for the checks and their order. */
export async function verifyTdxQuote(options: VerifyTdxQuoteOptions): Promise<VerifiedTdxQuote> {
  const { anchors, at } = options;
  if (anchors.length === 0) {
    throw new ConfigurationError(
      "TDX_NO_TRUST_ANCHORS",
      "verifyTdxQuote: anchors is empty; pass INTEL_ROOTS or simulator anchors",
    );
  }
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) {
    throw new ConfigurationError("TDX_BAD_OPTION", "verifyTdxQuote: at must be a valid Date");
  }
  const signerValidity = options.collateralSignerValidity ?? "strict";
  const acceptStale = options.acceptStaleCollateral ?? false;
  // Always parse here, from the raw bytes: the verified result then describes exactly the bytes
  // whose signatures were checked, even if a caller hands in a modified parsed object.
  const quote = parseTdxQuote(options.quote instanceof Uint8Array ? options.quote : options.quote.raw);
  const warnings: string[] = [];

  // 1. PCK chain to a pinned anchor.
  const [leaf, ca, root] = quote.pckChain;
  const rootHex = await rootDigest(root);
  let anchor: TdxTrustAnchor | undefined;
  for (const a of anchors) if ((await rootDigest(a.root)) === rootHex) anchor = a;
  if (anchor === undefined) {
    throw new VerifyError(
      "ROOT_NOT_TRUSTED",
      `PCK root certificate "${root.subject}" (sha256 ${rootHex}) is not one of the ${anchors.length} trust anchors${(await options.explainUntrustedRoot?.(root)) ?? ""}`,
    );
  }
  await verifyChain(
    [
      { cert: leaf, role: "PCK leaf" },
      { cert: ca, role: "PCK CA" },
      { cert: root, role: "PCK root" },
    ],
    [anchor.root],
    at,
  );
  checkPckChainNames(leaf, ca);

  // 2. Revocation.
  // Parsed here from the DER, as the quote is: a parsed CRL handed in is not trusted as given.
  const crls = options.crls?.map((c) => parseCrl(c instanceof Uint8Array ? c : c.der));
  const notAfter: number[] = [];
  if (crls !== undefined) {
    notAfter.push(await checkAgainstCrls(leaf, ca, "PCK leaf", crls, at, acceptStale, warnings));
    notAfter.push(await checkAgainstCrls(ca, root, "PCK CA", crls, at, acceptStale, warnings));
  }
  // A CRL past its nextUpdate at `at` got this far only as accepted stale collateral (checkAgainstCrls).
  // It cannot call a fresh check stale or the reverse: each end is the nextUpdate of the CRL checked for currency.
  const revocationStale = notAfter.some((end) => end < at.getTime());

  // 3-5. QE report signature, attestation-key binding, quote signature — in this order.
  const checks = await checkTdxQuoteSignatures(quote);
  if (!checks.qeReportSignatureValid) {
    throw new VerifyError(
      "TDX_QE_REPORT_SIGNATURE_INVALID",
      `QE report signature does not verify under the PCK leaf key "${leaf.subject}"`,
    );
  }
  if (!checks.qeReportDataBindsAttestationKey) {
    throw new VerifyError(
      "TDX_QE_BINDING_MISMATCH",
      `QE report REPORTDATA: expected SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes, found ${toHex(quote.qeReport.reportData)}`,
    );
  }
  // The quoting enclave must be Intel's TD QE, whether or not QE-identity collateral was given: a
  // PCK-certified report from any other SGX enclave on the (untrusted) host does not vouch for a TD.
  if (
    !bytesEqual(quote.qeReport.mrSigner, INTEL_TD_QE_MRSIGNER) ||
    quote.qeReport.isvProdId !== INTEL_TD_QE_ISVPRODID
  ) {
    throw new VerifyError(
      "TDX_QE_NOT_INTEL",
      `QE report: expected Intel's TD quoting enclave (MRSIGNER ${toHex(INTEL_TD_QE_MRSIGNER)}, ISVPRODID ${INTEL_TD_QE_ISVPRODID}), found MRSIGNER ${toHex(quote.qeReport.mrSigner)}, ISVPRODID ${quote.qeReport.isvProdId}`,
    );
  }
  // ...and not running in debug mode, whether or not QE-identity collateral was given (its ATTRIBUTES
  // mask would refuse it too, but quotes are also verified without collateral: Azure TDX, policies
  // that skip the TCB status): a host that can read a debug enclave's memory can take its
  // attestation key and sign any quote with it.
  if (((quote.qeReport.attributes[0] as number) & SGX_ATTRIBUTES_DEBUG) !== 0) {
    throw new VerifyError(
      "TDX_QE_DEBUG",
      `QE report ATTRIBUTES: expected the DEBUG flag (bit 1) clear, found ${toHex(quote.qeReport.attributes)} (a quoting enclave in debug mode)`,
    );
  }
  if (!checks.quoteSignatureValid) {
    throw new VerifyError(
      "TDX_QUOTE_SIGNATURE_INVALID",
      `quote signature does not verify under the attestation key over the ${quote.signedBytes.length} bytes of header and body`,
    );
  }

  // 6. Collateral.
  let tcb: TdxTcbEvaluation | null = null;
  let tcbInfoInfo: VerifiedCollateralInfo | null = null;
  let qeIdentity: VerifiedTdxQuote["qeIdentity"] = null;
  const checkOptions = { at, root: anchor.root, signerValidity, acceptStaleCollateral: acceptStale };
  const noteRelaxed = (what: string, info: VerifiedCollateralInfo) => {
    if (info.signerExpired)
      warnings.push(`${what} signer certificate "${info.signer}" is expired (accepted: ${signerValidity})`);
    if (info.stale) warnings.push(`${what} is past its nextUpdate ${info.nextUpdate} (accepted stale collateral)`);
  };
  if (options.collateral?.tcbInfo !== undefined) {
    const doc = parseTdxTcbInfo(options.collateral.tcbInfo.json);
    const chain = parseIssuerChain(options.collateral.tcbInfo.issuerChain, "TDX TCB info");
    const signed = await verifyTdxCollateralSignature(doc, chain, checkOptions);
    notAfter.push(doc.nextUpdate.getTime());
    if (signerValidity === "strict") notAfter.push(signed.signer.notAfter.getTime());
    if (crls !== undefined) {
      notAfter.push(
        await checkAgainstCrls(signed.signer, anchor.root, "TCB info signer", crls, at, acceptStale, warnings),
      );
    }
    tcbInfoInfo = collateralInfo(doc, signed);
    noteRelaxed("TCB info", tcbInfoInfo);
    tcb = evaluateTdxTcb(quote, doc);
  }
  if (options.collateral?.qeIdentity !== undefined) {
    const doc = parseTdQeIdentity(options.collateral.qeIdentity.json);
    const chain = parseIssuerChain(options.collateral.qeIdentity.issuerChain, "TD QE identity");
    const signed = await verifyTdxCollateralSignature(doc, chain, checkOptions);
    notAfter.push(doc.nextUpdate.getTime());
    if (signerValidity === "strict") notAfter.push(signed.signer.notAfter.getTime());
    if (crls !== undefined) {
      notAfter.push(
        await checkAgainstCrls(signed.signer, anchor.root, "QE identity signer", crls, at, acceptStale, warnings),
      );
    }
    const info = collateralInfo(doc, signed);
    noteRelaxed("QE identity", info);
    qeIdentity = { ...evaluateQeIdentity(quote.qeReport, doc), ...info };
  }
  const tcbStatus =
    tcb === null ? null : qeIdentity === null ? tcb.status : convergeTcbStatus(tcb.status, qeIdentity.status);

  const verified = Object.freeze({
    kind: "verified-tdx-quote",
    quote,
    simulated: anchor.simulated,
    verifiedAt: new Date(at.getTime()),
    rootSha256: rootHex,
    debug: isDebugTd(quote.body),
    fmspc: toHex(quote.pckExtensions.fmspc),
    tcb,
    tcbInfo: tcbInfoInfo,
    qeIdentity,
    tcbStatus,
    revocationChecked: crls !== undefined,
    revocationStale,
    collateralNotAfter: Math.min(...notAfter),
    warnings: Object.freeze(warnings),
  }) as unknown as VerifiedTdxQuote;
  VERIFIED.add(verified);
  return verified;
}
