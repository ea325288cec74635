/**
 * The deployment manifest's `tee` section against the TEE's own evidence: the launch measurement
 * (SNP MEASUREMENT, TDX MRTD) in `allowedMeasurements` (unless `{any: true}`), the TCB at least
 * `minimumTcb` of its family, and the guest's flags within `policyFlags`. The operator signs these;
 * a constraint nobody compares would be a policy that fails open. Two callers, one check: the client
 * (client/policy.ts, on evidence that verified to a pinned root) and the enclave at boot
 * (enclave/service.ts, on its own evidence, parsed: a misdeployment is said at boot, not at the first
 * client). Every violation is listed, with the manifest field, the evidence field, the expected and
 * the found value (all public).
 *
 * The TCB and flag comparisons are appraise.ts's own (checkSnpTcbMinimum, checkTeeTcbSvn, …), so a
 * manifest minimum means what a client policy's minimum means. What this does not check: the
 * platform (tee.platforms: the callers compare it first, they know whether the evidence is
 * simulated), the evidence's signature (the client verifies it; the enclave trusts its own TEE), and
 * everything that is the client policy's alone (host data, VMPL, RTMRs…).
 *
 * On Azure CVMs the hardware report under the vTPM describes Microsoft's paravisor: its MEASUREMENT
 * or MRTD is the one compared with allowedMeasurements (the guest image is measured in vTPM PCRs,
 * which the client policy's azure section pins), its TCB and flags as on bare SNP or TDX.
 */
import { base64url } from "jose";
import type { Manifest } from "../manifests/schema.ts";
import {
  type AppraisalViolation,
  checkAllowList,
  checkSnpPolicyFlags,
  checkSnpTcbMinimum,
  checkTdxQeAndPceSvn,
  checkTeeTcbSvn,
  type Push,
} from "./appraise.ts";
import { parseAzureEvidence } from "./azure/evidence.ts";
import { parseHclReport } from "./azure/hcl.ts";
import type { VerifiedAzureEvidence } from "./azure/verify.ts";
import type { DocumentEvidence } from "./evidence.ts";
import { decodeTcbVersion, parseSnpReport, type SnpProduct, type SnpReport, type SnpTcbVersion } from "./snp/parse.ts";
import { VerifiedSnpReport } from "./snp/verify.ts";
import { isDebugTd, isMigratableTd, parseTdxQuote, type TdxQuote } from "./tdx/parse.ts";
import { isVerifiedTdxQuote, type VerifiedTdxQuote } from "./tdx/verify.ts";

export type ManifestTee = Manifest["tee"];

/** The facts of one hardware report or quote that the manifest's tee section constrains. */
export type ManifestTeeEvidence =
  | {
      readonly kind: "snp";
      readonly report: SnpReport;
      readonly reportedTcb: SnpTcbVersion;
      readonly launchTcb: SnpTcbVersion;
      readonly committedTcb: SnpTcbVersion;
    }
  | { readonly kind: "tdx"; readonly quote: TdxQuote };

export interface ManifestTeeViolation extends AppraisalViolation {
  /** The manifest field the evidence breaks, e.g. "tee.minimumTcb.snp". */
  readonly manifestField: string;
}

/** Stable codes (docs/errors.md), one per manifest field. */
export type ManifestTeeCode = "MANIFEST_MEASUREMENT_NOT_ALLOWED" | "MANIFEST_TCB_TOO_LOW" | "MANIFEST_POLICY_FLAG";

const MANIFEST_TEE_CODES: Readonly<Record<"measurement" | "tcb" | "flags", ManifestTeeCode>> = {
  measurement: "MANIFEST_MEASUREMENT_NOT_ALLOWED",
  tcb: "MANIFEST_TCB_TOO_LOW",
  flags: "MANIFEST_POLICY_FLAG",
};

/**
 * The facts of verified evidence (the client's): TCBs decoded with the layout of the product the
 * verified certificate names; on Azure, the hardware report under the vTPM quote.
 */
export function manifestTeeEvidenceOfVerified(
  evidence: VerifiedSnpReport | VerifiedTdxQuote | VerifiedAzureEvidence,
): ManifestTeeEvidence {
  if (VerifiedSnpReport.isVerified(evidence)) return snpFacts(evidence.report, evidence);
  if (isVerifiedTdxQuote(evidence)) return { kind: "tdx", quote: evidence.quote };
  const hardware = evidence.snp ?? evidence.tdx;
  if (hardware === null) throw new TypeError("Azure evidence: expected an SNP report or a TD quote, found neither");
  return manifestTeeEvidenceOfVerified(hardware);
}

/**
 * The facts of a document's evidence, parsed, not verified (the enclave's own, at boot): TCBs decoded
 * with the layout the report's CPUID names; for a report that names none (version 2), the layout of
 * `snpProduct` when given (the enclave's --snp-product), else Milan/Genoa's. Throws a ParseError for
 * evidence that does not parse.
 */
export function manifestTeeEvidenceOfDocument(
  evidence: DocumentEvidence,
  snpProduct?: SnpProduct,
): ManifestTeeEvidence {
  const snp = (bytes: Uint8Array): ManifestTeeEvidence => {
    const report = parseSnpReport(bytes);
    if (report.product !== null || snpProduct === undefined) return snpFacts(report, report);
    const decode = (tcb: SnpTcbVersion) => decodeTcbVersion(tcb.raw, snpProduct);
    return snpFacts(report, {
      reportedTcb: decode(report.reportedTcb),
      launchTcb: decode(report.launchTcb),
      committedTcb: decode(report.committedTcb),
    });
  };
  switch (evidence.type) {
    case "sev-snp":
      return snp(base64url.decode(evidence.report));
    case "tdx":
      return { kind: "tdx", quote: parseTdxQuote(base64url.decode(evidence.quote)) };
    default: {
      const azure = parseAzureEvidence(evidence.evidence);
      if (azure.tdQuote !== null) return { kind: "tdx", quote: parseTdxQuote(azure.tdQuote) };
      return snp(parseHclReport(azure.hclReport).hardwareReport);
    }
  }
}

/** The one SNP facts object: the report and its three TCBs, decoded by the caller's layout. */
function snpFacts(report: SnpReport, tcbs: Omit<Extract<ManifestTeeEvidence, { kind: "snp" }>, "kind" | "report">) {
  const { reportedTcb, launchTcb, committedTcb } = tcbs;
  return { kind: "snp", report, reportedTcb, launchTcb, committedTcb } as const;
}

/** The evidence's launch measurement and the field that holds it: SNP MEASUREMENT, TDX MRTD. */
export function launchMeasurement(evidence: ManifestTeeEvidence): {
  readonly field: "MEASUREMENT" | "MRTD";
  readonly value: Uint8Array;
} {
  return evidence.kind === "snp"
    ? { field: "MEASUREMENT", value: evidence.report.measurement }
    : { field: "MRTD", value: evidence.quote.body.mrTd };
}

/** Every way `evidence` breaks the manifest's tee section (none: an empty list). */
export function manifestTeeViolations(evidence: ManifestTeeEvidence, tee: ManifestTee): ManifestTeeViolation[] {
  const violations: ManifestTeeViolation[] = [];
  const pushFor =
    (manifestField: string, code: string): Push =>
    (field, _appraisalCode, expected, found) =>
      violations.push({ manifestField, field, code, expected, found });
  const flags = tee.policyFlags;
  const flagPush = pushFor("tee.policyFlags", MANIFEST_TEE_CODES.flags);
  const family = evidence.kind;
  const { field: measurementField, value: measurement } = launchMeasurement(evidence);
  if (Array.isArray(tee.allowedMeasurements)) {
    const code = MANIFEST_TEE_CODES.measurement;
    checkAllowList(
      pushFor("tee.allowedMeasurements", code),
      tee.allowedMeasurements,
      measurement,
      measurementField,
      code,
    );
  }
  const tcbField = `tee.minimumTcb.${family}`;
  const tcbPush = pushFor(tcbField, MANIFEST_TEE_CODES.tcb);
  if (tee.minimumTcb[family] === null) {
    // The schema gives a platform of this family a minimum; a manifest without one bounds no such guest.
    tcbPush(`${family.toUpperCase()} TCB`, "", `a minimum for ${family.toUpperCase()} evidence`, "null");
  }
  if (evidence.kind === "snp") {
    const min = tee.minimumTcb.snp;
    // FMC only where the manifest names one: Milan/Genoa report none, and a null minimum bounds nothing.
    if (min !== null) checkSnpTcbMinimum(tcbPush, evidence, { ...min, fmc: min.fmc ?? 0 });
    checkSnpPolicyFlags(flagPush, evidence.report, flags);
    return violations;
  }
  const body = evidence.quote.body;
  const min = tee.minimumTcb.tdx;
  if (min !== null) {
    checkTeeTcbSvn(tcbPush, body, min.teeTcbSvn);
    checkTdxQeAndPceSvn(tcbPush, evidence.quote, {
      qeSvn: min.qeSvn,
      pceSvn: min.pceSvn,
      names: { qeSvn: "tee.minimumTcb.tdx.qeSvn", pceSvn: "tee.minimumTcb.tdx.pceSvn" },
    });
  }
  // TDX's flags: DEBUG is TDATTRIBUTES bit 0. A TD's migration is by a migration TD, allowed only
  // for a TD launched MIGRATABLE (TDATTRIBUTES bit 29): that is what migrationAgentAllowed maps to.
  // SMT has no TDX counterpart the quote reports (the TDX module does not attest the host's
  // hyper-threading): a signed `smtAllowed: false` cannot be checked on TDX, so it is refused (fail
  // closed), not passed as if it held; a manifest for TDX says `smtAllowed: true` (docs/deploy.md).
  if (isDebugTd(body) && !flags.debugAllowed) flagPush("TDATTRIBUTES.DEBUG", "", "clear (debugAllowed: false)", "set");
  if (!flags.migrationAgentAllowed && isMigratableTd(body)) {
    flagPush("TDATTRIBUTES.MIGRATABLE", "", "clear (migrationAgentAllowed: false)", "set");
  }
  if (!flags.smtAllowed) {
    flagPush("SMT", "", "smtAllowed: true on TDX (a TD quote does not attest the host's SMT)", "smtAllowed: false");
  }
  return violations;
}

/** "manifest tee.minimumTcb.snp: REPORTED_TCB.microcode expected >= 9, found 8; …" for an error message. */
export function describeManifestTeeViolations(violations: readonly ManifestTeeViolation[]): string {
  return violations
    .map((v) => `manifest ${v.manifestField}: ${v.field} expected ${v.expected}, found ${v.found}`)
    .join("; ");
}
