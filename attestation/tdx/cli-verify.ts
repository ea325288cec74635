/**
 * `cloister verify-evidence --tee tdx --quote FILE [--collateral DIR] [--at TIME]
 *  [--collateral-signer-validity MODE] [--accept-stale-collateral] [--policy FILE] [--json]`:
 * parses the quote, verifies it under the pinned Intel root (never a simulator root) at `--at`,
 * and turns the outcome into an EvidenceVerdict. CLI-only (reads files).
 *
 * `--collateral DIR` loads Intel PCS collateral by file name (collateral-dir.ts): one `*.der` CRL
 * per issuer (then revocation is checked for the whole PCK chain); files that do not parse are left
 * out with a note. When no TCB info matches the FMSPC the
 * verdict says so and tcbStatus is null.
 *
 * `valid` means the evidence is authentic (signatures, chains, collateral); it does not judge the
 * TCB status or the debug flag — that is what `--policy` is for — but `warnings` names a debuggable
 * TD and a TCB status left unchecked. Hex output is lower-case.
 */
import { optionsUsageError, UsageError } from "../../client/cli/output.ts";
import { appraise } from "../appraise.ts";
import { toHex } from "../bytes.ts";
import { INTEL_ROOTS } from "../roots/intel.ts";
import { tdxSimulatorHint } from "../sim/hint.ts";
import {
  appraisalVerdict,
  DEBUG_WARNING,
  EMPTY_EVIDENCE_FIELDS,
  type EvidenceVerdict,
  failureFrom,
  readInputFile,
  readPolicyOption,
  rejectForeignOptions,
  type VerifyEvidenceOptions,
} from "../verify-evidence-cli.ts";
import { COLLATERAL_SIGNER_VALIDITY_MODES, type CollateralSignerValidity } from "./collateral.ts";
import { type LoadedTdxCollateral, loadTdxCollateralDirectory } from "./collateral-dir.ts";
import { isDebugTd, parseTdxQuote, type TdxQuote, trailingIsZeroPadding } from "./parse.ts";
import { type TdxCollateral, type VerifiedTdxQuote, verifyTdxQuote } from "./verify.ts";

const usageError = (message: string, cause?: unknown) =>
  new UsageError(message, cause === undefined ? undefined : { cause });

export interface TdxVerifyEvidenceOptions extends VerifyEvidenceOptions {
  readonly collateralSignerValidity?: CollateralSignerValidity | undefined;
  readonly acceptStaleCollateral?: boolean | undefined;
}

/**
 * What valid evidence is valid despite: verification's own warnings (relaxed collateral rules), a
 * debuggable TD, and a TCB status that was not checked. Empty for evidence that did not verify.
 */
function evidenceWarnings(verified: VerifiedTdxQuote | null, collateralGiven: boolean): string[] {
  if (verified === null) return [];
  const warnings = [...verified.warnings];
  if (verified.debug) warnings.push(DEBUG_WARNING.tdx);
  if (verified.tcbStatus === null) {
    warnings.push(
      collateralGiven
        ? "TCB status not checked: --collateral has no TCB info for the quote's FMSPC (see collateralNotes)"
        : "TCB status not checked: no --collateral given",
    );
  } else {
    // A status from TCB info alone says nothing of the quoting enclave or of revocation.
    if (verified.qeIdentity === null) {
      warnings.push(
        "QE identity not checked: --collateral has no qeidentity-*.json (tcbStatus is the platform's only)",
      );
    }
    if (!verified.revocationChecked) {
      warnings.push("revocation not checked: --collateral has no CRLs (*.der) for the PCK chain");
    }
  }
  return warnings;
}

/**
 * What verifyTdxQuote checked of `verified` (EvidenceVerdict.checked; shared with --tee azure-tdx):
 * revocation, TCB info and QE identity only when collateral for them was verified, each saying so when
 * it was checked against collateral accepted stale or under an expired signer (`warnings` has the details).
 * The TCB level found in TCB info is a lookup, not a pass: its status (tcbStatus, the `tcb status` row)
 * may be OutOfDate or worse, and only `--policy` judges it.
 */
export function tdxChecked(verified: VerifiedTdxQuote): string[] {
  const root = verified.simulated ? "a simulator root (INSECURE)" : "the pinned Intel root";
  /** `what`, and how its collateral was accepted when a rule was relaxed for it. */
  const relaxed = (what: string, info: { readonly stale: boolean; readonly signerExpired: boolean }) => {
    const notes = [...(info.stale ? ["stale"] : []), ...(info.signerExpired ? ["with an expired signer"] : [])];
    return notes.length === 0 ? what : `${what}, accepted ${notes.join(" and ")}`;
  };
  return [
    `PCK certificate chain to ${root}`,
    ...(verified.revocationChecked
      ? [relaxed("PCK chain revocation (CRLs)", { stale: verified.revocationStale, signerExpired: false })]
      : []),
    "QE report signature and attestation-key binding",
    "quote signature",
    ...(verified.tcbInfo === null
      ? []
      : [relaxed(`TCB level looked up in TCB info (FMSPC ${verified.fmspc})`, verified.tcbInfo)]),
    ...(verified.qeIdentity === null ? [] : [relaxed("QE identity", verified.qeIdentity)]),
  ];
}

/** A TD's TEE_TCB_SVN as verify-evidence reports it (--tee tdx and azure-tdx): raw, and its first two bytes named. */
export function tdxTcbFields(teeTcbSvn: Uint8Array) {
  return {
    raw: toHex(teeTcbSvn),
    tdxModuleSvn: teeTcbSvn[0] as number,
    tdxModuleMajorVersion: teeTcbSvn[1] as number,
  };
}

/**
 * A TD's platform TCB as its quote's PCK certificate states it (--tee tdx and azure-tdx): what TCB
 * info is matched against (FMSPC, PCE-ID and PCESVN, the SGX TCB components), unverified until the
 * PCK chain is.
 */
export function tdxPlatformTcbFields(quote: TdxQuote) {
  const pck = quote.pckExtensions;
  return {
    fmspc: toHex(pck.fmspc),
    pceId: toHex(pck.pceId),
    pceSvn: pck.pceSvn,
    sgxTcbComponents: pck.tcbComponents,
    sgxType: pck.sgxType,
  };
}

/** tdxPlatformTcbFields' scalars and the QE's ISVSVN, for the human-readable summary (`details`). */
export function tdxPlatformTcbDetails(quote: TdxQuote) {
  const { fmspc, pceSvn } = tdxPlatformTcbFields(quote);
  return { fmspc, pceSvn, qeIsvSvn: quote.qeReport.isvSvn };
}

function quoteFields(quote: TdxQuote | null, verified: VerifiedTdxQuote | null, collateralGiven: boolean) {
  const base = { tee: "tdx" as const, ...EMPTY_EVIDENCE_FIELDS, tcbStatus: verified?.tcbStatus ?? null };
  if (quote === null) return base;
  const b = quote.body;
  return {
    ...base,
    version: quote.header.version,
    bodyType: quote.bodyType,
    tdxVersion: quote.tdxVersion,
    measurement: toHex(b.mrTd),
    mrtd: toHex(b.mrTd),
    rtmrs: b.rtmrs.map(toHex),
    mrseam: toHex(b.mrSeam),
    mrsignerseam: toHex(b.mrSignerSeam),
    mrconfigid: toHex(b.mrConfigId),
    mrowner: toHex(b.mrOwner),
    mrownerconfig: toHex(b.mrOwnerConfig),
    seamAttributes: toHex(b.seamAttributes),
    tdAttributes: toHex(b.tdAttributes),
    xfam: toHex(b.xfam),
    teeTcbSvn: toHex(b.teeTcbSvn),
    teeTcbSvn2: b.teeTcbSvn2 === null ? null : toHex(b.teeTcbSvn2),
    mrservicetd: b.mrServiceTd === null ? null : toHex(b.mrServiceTd),
    reportData: toHex(b.reportData),
    reportedTcb: tdxTcbFields(b.teeTcbSvn),
    policy: toHex(b.tdAttributes),
    debug: isDebugTd(b),
    signingKey: "PCK",
    trailingBytes: quote.trailingBytes,
    trailingBytesAllZero: trailingIsZeroPadding(quote),
    ...tdxPlatformTcbFields(quote),
    qe: {
      mrEnclave: toHex(quote.qeReport.mrEnclave),
      mrSigner: toHex(quote.qeReport.mrSigner),
      isvProdId: quote.qeReport.isvProdId,
      isvSvn: quote.qeReport.isvSvn,
    },
    pckLeaf: {
      subject: quote.pckChain[0].subject,
      issuer: quote.pckChain[0].issuer,
      notBefore: quote.pckChain[0].notBefore.toISOString(),
      notAfter: quote.pckChain[0].notAfter.toISOString(),
    },
    tcb: verified?.tcb ?? null,
    qeIdentityStatus: verified?.qeIdentity?.status ?? null,
    revocationChecked: verified?.revocationChecked ?? null,
    warnings: evidenceWarnings(verified, collateralGiven),
    // Scalars for the human-readable summary (printVerdict prints `details`).
    details: {
      tdxVersion: quote.tdxVersion,
      mrseam: toHex(b.mrSeam),
      rtmr0: toHex(b.rtmrs[0]),
      rtmr1: toHex(b.rtmrs[1]),
      rtmr2: toHex(b.rtmrs[2]),
      rtmr3: toHex(b.rtmrs[3]),
      trailingBytes: quote.trailingBytes,
      ...tdxPlatformTcbDetails(quote),
      qeIdentityStatus: verified?.qeIdentity?.status ?? null,
      warnings: verified === null || verified.warnings.length === 0 ? null : verified.warnings.join("; "),
    },
  };
}

export async function verifyEvidence(options: TdxVerifyEvidenceOptions): Promise<EvidenceVerdict> {
  rejectForeignOptions(options, ["quote", "collateral"]);
  // Read and checked before any evidence: an unusable --policy is bad input (exit 2), not a verdict.
  const policy = await readPolicyOption(options.policy, "tdx");
  const signerValidity = options.collateralSignerValidity ?? "strict";
  if (!COLLATERAL_SIGNER_VALIDITY_MODES.includes(signerValidity)) {
    throw optionsUsageError(
      `--collateral-signer-validity expects one of ${COLLATERAL_SIGNER_VALIDITY_MODES.join(", ")}, found "${String(signerValidity)}"`,
    );
  }
  const quoteBytes = await readInputFile(options.quote, "--quote", "tdx");
  const at = options.at ?? new Date();

  let quote: TdxQuote | null = null;
  let files: LoadedTdxCollateral["files"] | null = null;
  let notes: string[] = [];
  try {
    quote = parseTdxQuote(quoteBytes);
    let collateral: TdxCollateral | undefined;
    let crls: Uint8Array[] | undefined;
    if (options.collateral !== undefined) {
      const loaded = await loadTdxCollateralDirectory(options.collateral, quote, at, "--collateral", usageError);
      collateral = loaded.collateral;
      crls = loaded.crls.length > 0 ? loaded.crls : undefined;
      files = loaded.files;
      notes = loaded.notes;
    }
    // The INSECURE simulator's root is added only when the given policy explicitly trusts it.
    const anchors =
      policy?.trustSimulator === true
        ? [...INTEL_ROOTS, ...(await import("../sim/anchors.ts")).insecureSimulatorAnchors().tdx]
        : INTEL_ROOTS;
    const verified = await verifyTdxQuote({
      quote,
      anchors,
      at,
      collateral,
      crls,
      collateralSignerValidity: signerValidity,
      acceptStaleCollateral: options.acceptStaleCollateral === true,
      explainUntrustedRoot: tdxSimulatorHint,
    });
    // Appraisal: REPORT_DATA is not compared here (no attestation document to bind it to); the
    // verdict says so in `appraisal.reportDataChecked`.
    const verdict: EvidenceVerdict & Record<string, unknown> = {
      ...appraisalVerdict(policy === null ? null : appraise(verified, policy, { now: at, expectedReportData: null })),
      simulated: verified.simulated,
      ...quoteFields(quote, verified, options.collateral !== undefined),
      checked: tdxChecked(verified),
      collateralFiles: files,
      collateralNotes: notes,
      collateralSignerValidity: signerValidity,
    };
    return verdict;
  } catch (error) {
    const failure = failureFrom(error);
    const verdict: EvidenceVerdict & Record<string, unknown> = {
      valid: false,
      ...failure,
      simulated: null,
      ...quoteFields(quote, null, options.collateral !== undefined),
      collateralFiles: files,
      collateralNotes: notes,
      collateralSignerValidity: signerValidity,
    };
    return verdict;
  }
}
