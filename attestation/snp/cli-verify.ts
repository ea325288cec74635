/**
 * `cloister verify-evidence --tee snp --report FILE --cert FILE [--at TIME] [--policy FILE]`:
 * parses the report, verifies it under the pinned AMD roots (never a simulator root) at `--at`,
 * and, with `--policy`, appraises it (attestation/appraise.ts: every violation listed; REPORT_DATA is
 * not compared, there is no attestation document to bind it to). The outcome becomes an
 * EvidenceVerdict; `valid` is true only when verification and appraisal both pass. CLI-only.
 */
import { appraise } from "../appraise.ts";
import { toHex } from "../bytes.ts";
import { AMD_ROOTS } from "../roots/amd.ts";
import { snpSimulatorHint } from "../sim/hint.ts";
import {
  appraisalVerdict,
  DEBUG_WARNING,
  EMPTY_EVIDENCE_FIELDS,
  type EvidenceTcb,
  type EvidenceVerdict,
  failureFrom,
  readInputFile,
  readPolicyOption,
  rejectForeignOptions,
  type VerifyEvidenceOptions,
} from "../verify-evidence-cli.ts";
import { type Certificate, parseCertificateBytes } from "../x509.ts";
import { parseSnpReport, SNP_PRODUCTS, type SnpReport, type SnpTcbVersion, tcbHex } from "./parse.ts";
import { type VerifiedSnpReport, verifySnpReport } from "./verify.ts";

/** REPORTED_TCB as verify-evidence prints it (shared with the Azure SNP branch). */
export function tcbFields(tcb: SnpTcbVersion): EvidenceTcb {
  return {
    raw: tcbHex(tcb),
    ...(tcb.fmc === null ? {} : { fmc: tcb.fmc }),
    bootloader: tcb.bootloader,
    tee: tcb.tee,
    snp: tcb.snp,
    microcode: tcb.microcode,
  };
}

/** What verifySnpReport checked of `verified` (EvidenceVerdict.checked; shared with the Azure SNP branch). */
export function snpChecked(verified: VerifiedSnpReport): string[] {
  const root = verified.simulated ? "a simulator root (INSECURE)" : `the pinned AMD ${verified.product} root`;
  return [
    `${verified.signingKey} certificate chain to ${root}`,
    "report signature",
    // A VLEK names no chip (verifySnpReport step 8).
    ...(verified.signingKey === "VCEK" ? ["CHIP_ID = VCEK hwID"] : []),
    `REPORTED_TCB = ${verified.signingKey} TCB`,
    "REPORTED_TCB and COMMITTED_TCB not above CURRENT_TCB",
  ];
}

type ReportFields = Omit<EvidenceVerdict, "valid" | "stage" | "code" | "reason" | "simulated">;

function reportFields(report: SnpReport | null, verified: VerifiedSnpReport | null, cert: Certificate | null) {
  const empty: ReportFields = { tee: "snp", ...EMPTY_EVIDENCE_FIELDS };
  if (report === null) return empty;
  const p = report.policy;
  return {
    ...empty,
    version: report.version,
    measurement: toHex(report.measurement),
    reportData: toHex(report.reportData),
    chipId: toHex(report.chipId),
    reportedTcb: tcbFields(verified?.reportedTcb ?? report.reportedTcb),
    policy: `0x${p.raw.toString(16)}`,
    debug: p.debugAllowed,
    signingKey: report.signingKey,
    warnings: verified?.report.policy.debugAllowed ? [DEBUG_WARNING.snp] : [],
    details: {
      product: verified?.product ?? report.product,
      certProductName: verified?.extensions.productName ?? null,
      cspId: verified?.extensions.cspId ?? null,
      vmpl: report.vmpl,
      guestSvn: report.guestSvn,
      policyFlags: {
        abiMajor: p.abiMajor,
        abiMinor: p.abiMinor,
        smtAllowed: p.smtAllowed,
        migrateMA: p.migrateMA,
        debugAllowed: p.debugAllowed,
        singleSocket: p.singleSocket,
      },
      hostData: toHex(report.hostData),
      familyId: toHex(report.familyId),
      imageId: toHex(report.imageId),
      idKeyDigest: toHex(report.idKeyDigest),
      reportId: toHex(report.reportId),
      platformInfo: `0x${report.platformInfo.raw.toString(16)}`,
      endorsementKey:
        cert === null
          ? null
          : {
              subject: cert.subject,
              issuer: cert.issuer,
              notBefore: cert.notBefore.toISOString(),
              notAfter: cert.notAfter.toISOString(),
            },
    },
  };
}

export async function verifyEvidence(options: VerifyEvidenceOptions): Promise<EvidenceVerdict> {
  rejectForeignOptions(options, ["report", "cert"]);
  // Read and checked before any evidence (an unusable policy is bad input, exit 2).
  const policy = await readPolicyOption(options.policy, "snp");
  const reportBytes = await readInputFile(options.report, "--report", "snp");
  const certBytes = await readInputFile(options.cert, "--cert", "snp");
  const at = options.at ?? new Date();

  let report: SnpReport | null = null;
  let cert: Certificate | null = null;
  try {
    report = parseSnpReport(reportBytes);
    cert = parseCertificateBytes(certBytes);
    // The INSECURE simulator's roots are added only when the given policy explicitly trusts them.
    const anchors =
      policy?.trustSimulator === true
        ? [
            ...AMD_ROOTS,
            ...(await import("../sim/anchors.ts")).insecureSimulatorAnchors(
              undefined,
              report.product === null ? SNP_PRODUCTS : [report.product],
            ).snp,
          ]
        : AMD_ROOTS;
    const verified = await verifySnpReport({
      report,
      endorsementKey: cert,
      anchors,
      at,
      explainUntrustedRoot: snpSimulatorHint,
    });
    return {
      ...appraisalVerdict(policy === null ? null : appraise(verified, policy, { now: at, expectedReportData: null })),
      simulated: verified.simulated,
      ...reportFields(report, verified, cert),
      checked: snpChecked(verified),
    };
  } catch (error) {
    const failure = failureFrom(error);
    return { valid: false, ...failure, simulated: null, ...reportFields(report, null, cert) };
  }
}
