/**
 * Intel's TDX TCB-level evaluation over parsed (and, in verify.ts, signature-checked) collateral.
 * Pure functions, no crypto.
 *
 * Platform level (TCB info v3, id "TDX"), following Intel's Quote Verification Library:
 *   take the first entry of `tcbLevels` (Intel lists them from newest to oldest) for which
 *   (a) each of the 16 SGX TCB component SVNs from the PCK certificate ≥ the level's sgxtcbcomponents,
 *   (b) the PCK certificate's PCESVN ≥ the level's pcesvn, and
 *   (c) each byte of the quote's TEE_TCB_SVN ≥ the level's tdxtcbcomponents — except that when
 *       TEE_TCB_SVN[1] (the TDX module major version) > 0, bytes 0 and 1 are not compared here,
 *       because the TDX module is then judged by `tdxModuleIdentities` instead.
 *   No such level → "NotSupported" (Intel: TCB_NOT_SUPPORTED).
 * TDX module: when TEE_TCB_SVN[1] = 0, `tdxModule` must match MRSIGNERSEAM and SEAMATTRIBUTES (under
 * the mask). When TEE_TCB_SVN[1] > 0, the identity `TDX_%02X` of that major version (hex, as Intel's
 * QVL and go-tdx-guest spell it: TDX_0A for 10; the collateral's id compared case-insensitively) must exist and
 * match the same way, and its first tcb level with isvsvn ≤ TEE_TCB_SVN[0] gives the module status
 * (none → "NotSupported"; a module level is UpToDate, OutOfDate or Revoked, collateral.ts refuses
 * another as Intel's QVL does). Mismatches throw TDX_MODULE_IDENTITY_MISMATCH.
 * TEE_TCB_SVN (not TEE_TCB_SVN2) of a TDX 1.5 body is used, as Intel's QVL does for TD-preserving
 * updates: TEE_TCB_SVN is the TCB the TD was built on.
 * QE identity: MRSIGNER and ISVPRODID equal, MISCSELECT (a little-endian word; report & mask ==
 * miscselect, as Intel compares it) and ATTRIBUTES equal under their masks (else
 * TDX_QE_IDENTITY_MISMATCH), then the first level with isvsvn ≤ the QE's ISVSVN gives its status
 * (UpToDate, OutOfDate or Revoked: collateral.ts refuses another, as Intel's PCS schema allows no other).
 * The overall status converges the three as Intel does (a worse module or QE status lowers it),
 * except that Revoked outranks NotSupported (see convergeTcbStatus).
 */
import { bytesEqual, toHex } from "../bytes.ts";
import { VerifyError } from "../errors.ts";
import type { IsvSvnTcbLevel, TcbStatus, TdQeIdentity, TdxTcbInfo } from "./collateral.ts";
import type { SgxReportBody, TdxQuote } from "./parse.ts";

export type TdxTcbStatus = TcbStatus | "NotSupported";

export interface TcbLevelMatch {
  readonly status: TdxTcbStatus;
  /** Date of the matched level, null when no level matched. */
  readonly tcbDate: string | null;
  readonly advisoryIds: readonly string[];
}

export interface TdxTcbEvaluation {
  /** The converged status (platform, TDX module and, when given, QE identity). */
  readonly status: TdxTcbStatus;
  readonly tcbDate: string | null;
  readonly advisoryIds: readonly string[];
  readonly platform: TcbLevelMatch;
  /** Module status from tdxModuleIdentities; null when TEE_TCB_SVN[1] = 0 (no per-module levels). */
  readonly tdxModule: (TcbLevelMatch & { readonly id: string }) | null;
  readonly fmspc: string;
  readonly tcbEvaluationDataNumber: number;
}

export interface QeIdentityEvaluation extends TcbLevelMatch {
  readonly isvSvn: number;
  readonly tcbEvaluationDataNumber: number;
}

const NO_MATCH: TcbLevelMatch = { status: "NotSupported", tcbDate: null, advisoryIds: [] };

function maskedEqual(value: Uint8Array, expected: Uint8Array, mask: Uint8Array): boolean {
  if (value.length !== expected.length || value.length !== mask.length) return false;
  for (let i = 0; i < value.length; i++) {
    if (((value[i] as number) & (mask[i] as number)) !== ((expected[i] as number) & (mask[i] as number))) return false;
  }
  return true;
}

function isvSvnLevel(levels: readonly IsvSvnTcbLevel[], isvSvn: number): TcbLevelMatch {
  const level = levels.find((l) => isvSvn >= l.isvSvn);
  return level === undefined
    ? NO_MATCH
    : { status: level.tcbStatus, tcbDate: level.tcbDate, advisoryIds: level.advisoryIds };
}

/**
 * Lowers `status` by a worse TDX-module or QE status (Intel QVL convergence). Revoked outranks
 * NotSupported either way: Intel's QVL returns whichever it meets first, both ending verification
 * there, but a policy here may accept NotSupported and must not accept a revoked TCB with it.
 */
export function convergeTcbStatus(status: TdxTcbStatus, other: TdxTcbStatus): TdxTcbStatus {
  if (status === "Revoked" || other === "Revoked") return "Revoked";
  if (status === "NotSupported" || other === "NotSupported") return "NotSupported";
  if (other === "OutOfDate" || other === "OutOfDateConfigurationNeeded") {
    if (status === "UpToDate" || status === "SWHardeningNeeded" || status === "OutOfDate") return "OutOfDate";
    return "OutOfDateConfigurationNeeded";
  }
  return status;
}

/**
 * Evaluates the platform and TDX-module TCB of `quote` against `tcbInfo`. The caller must have
 * checked the collateral's signature (verify.ts does). Throws TDX_FMSPC_MISMATCH /
 * TDX_PCEID_MISMATCH / TDX_MODULE_IDENTITY_MISMATCH.
 */
export function evaluateTdxTcb(quote: TdxQuote, tcbInfo: TdxTcbInfo): TdxTcbEvaluation {
  const pck = quote.pckExtensions;
  if (!bytesEqual(pck.fmspc, tcbInfo.fmspc)) {
    throw new VerifyError(
      "TDX_FMSPC_MISMATCH",
      `TDX TCB info: fmspc expected ${toHex(pck.fmspc)} (from the PCK certificate), found ${toHex(tcbInfo.fmspc)}`,
    );
  }
  if (!bytesEqual(pck.pceId, tcbInfo.pceId)) {
    throw new VerifyError(
      "TDX_PCEID_MISMATCH",
      `TDX TCB info: pceId expected ${toHex(pck.pceId)} (from the PCK certificate), found ${toHex(tcbInfo.pceId)}`,
    );
  }
  const teeTcbSvn = quote.body.teeTcbSvn;
  const moduleMajor = teeTcbSvn[1] as number;
  const firstTdxByte = moduleMajor > 0 ? 2 : 0;
  const level = tcbInfo.tcbLevels.find(
    (l) =>
      l.sgxTcbComponents.every((svn, i) => (pck.tcbComponents[i] as number) >= svn) &&
      pck.pceSvn >= l.pceSvn &&
      l.tdxTcbComponents.every((svn, i) => i < firstTdxByte || (teeTcbSvn[i] as number) >= svn),
  );
  const platform: TcbLevelMatch =
    level === undefined
      ? NO_MATCH
      : { status: level.tcbStatus, tcbDate: level.tcbDate, advisoryIds: level.advisoryIds };

  let tdxModule: TdxTcbEvaluation["tdxModule"] = null;
  if (moduleMajor === 0) {
    const m = tcbInfo.tdxModule;
    if (
      !bytesEqual(quote.body.mrSignerSeam, m.mrSigner) ||
      !maskedEqual(quote.body.seamAttributes, m.attributes, m.attributesMask)
    ) {
      throw new VerifyError(
        "TDX_MODULE_IDENTITY_MISMATCH",
        `TDX TCB info tdxModule: MRSIGNERSEAM/SEAMATTRIBUTES expected ${toHex(m.mrSigner)}/${toHex(m.attributes)} (mask ${toHex(m.attributesMask)}), found ${toHex(quote.body.mrSignerSeam)}/${toHex(quote.body.seamAttributes)}`,
      );
    }
  } else {
    // Intel's QVL (TdxModuleCheck) and go-tdx-guest name the major version in hex ("TDX_0A" for 10),
    // and Intel upper-cases the collateral's id before comparing.
    const id = tdxModuleIdentityId(moduleMajor);
    const identity = tcbInfo.tdxModuleIdentities.find((m) => m.id.toUpperCase() === id);
    if (identity === undefined) {
      throw new VerifyError(
        "TDX_MODULE_IDENTITY_MISMATCH",
        `TDX TCB info tdxModuleIdentities: expected an entry ${id} (TEE_TCB_SVN[1] = ${moduleMajor}), found ${tcbInfo.tdxModuleIdentities.map((m) => m.id).join(", ") || "none"}`,
      );
    }
    if (
      !bytesEqual(quote.body.mrSignerSeam, identity.mrSigner) ||
      !maskedEqual(quote.body.seamAttributes, identity.attributes, identity.attributesMask)
    ) {
      throw new VerifyError(
        "TDX_MODULE_IDENTITY_MISMATCH",
        `TDX TCB info ${id}: MRSIGNERSEAM/SEAMATTRIBUTES expected ${toHex(identity.mrSigner)}/${toHex(identity.attributes)}, found ${toHex(quote.body.mrSignerSeam)}/${toHex(quote.body.seamAttributes)}`,
      );
    }
    tdxModule = { id, ...isvSvnLevel(identity.tcbLevels, teeTcbSvn[0] as number) };
  }
  const status = tdxModule === null ? platform.status : convergeTcbStatus(platform.status, tdxModule.status);
  return {
    status,
    tcbDate: platform.tcbDate,
    // No matching platform level: no combined advisory list (the module's own stays in `tdxModule`).
    advisoryIds: level === undefined ? [] : [...new Set([...platform.advisoryIds, ...(tdxModule?.advisoryIds ?? [])])],
    platform,
    tdxModule,
    fmspc: toHex(tcbInfo.fmspc),
    tcbEvaluationDataNumber: tcbInfo.tcbEvaluationDataNumber,
  };
}

/** The `tdxModuleIdentities` id of a TDX module major version (TEE_TCB_SVN[1]): "TDX_" and its byte in upper-case hex. */
export function tdxModuleIdentityId(major: number): string {
  return `TDX_${major.toString(16).toUpperCase().padStart(2, "0")}`;
}

/** Checks the QE report against the TD_QE identity and finds its TCB level. */
export function evaluateQeIdentity(qeReport: SgxReportBody, identity: TdQeIdentity): QeIdentityEvaluation {
  const problems: string[] = [];
  if (!bytesEqual(qeReport.mrSigner, identity.mrSigner)) {
    problems.push(`MRSIGNER expected ${toHex(identity.mrSigner)}, found ${toHex(qeReport.mrSigner)}`);
  }
  if (qeReport.isvProdId !== identity.isvProdId) {
    problems.push(`ISVPRODID expected ${identity.isvProdId}, found ${qeReport.isvProdId}`);
  }
  // As Intel's QVL (EnclaveReportVerifier): the masked report must equal miscselect itself, so an
  // identity with a miscselect bit outside its mask matches no report.
  if ((qeReport.miscSelect & identity.miscSelectMask) >>> 0 !== identity.miscSelect) {
    const word = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;
    problems.push(
      `MISCSELECT expected ${word(identity.miscSelect)} under mask ${word(identity.miscSelectMask)}, found ${word(qeReport.miscSelect)}`,
    );
  }
  if (!maskedEqual(qeReport.attributes, identity.attributes, identity.attributesMask)) {
    problems.push(
      `ATTRIBUTES expected ${toHex(identity.attributes)} under mask ${toHex(identity.attributesMask)}, found ${toHex(qeReport.attributes)}`,
    );
  }
  if (problems.length > 0) {
    throw new VerifyError(
      "TDX_QE_IDENTITY_MISMATCH",
      `QE report does not match the TD_QE identity: ${problems.join("; ")}`,
    );
  }
  return {
    ...isvSvnLevel(identity.tcbLevels, qeReport.isvSvn),
    isvSvn: qeReport.isvSvn,
    tcbEvaluationDataNumber: identity.tcbEvaluationDataNumber,
  };
}
