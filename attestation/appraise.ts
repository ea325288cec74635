/**
 * Appraisal: does VERIFIED evidence meet the relying party's policy? One pure function, no I/O, no
 * clock (the time is passed in), and it reports EVERY violation at once (go-sev-guest `validate`
 * style), so an operator sees all that is wrong with an enclave in one go.
 *
 * Only verified evidence is accepted: `VerifiedSnpReport` (constructed only by snp/verify.ts),
 * `VerifiedTdxQuote` (branded, produced only by tdx/verify.ts), `VerifiedAzureEvidence`
 * (constructed only by azure/verify.ts) or `VerifiedMaaToken` (azure/maa.ts); anything else is refused before a field is read. Signatures, chains, hwID and TCB-vs-certificate consistency are verify's job and
 * are not repeated here.
 *
 * What it checks, each violation with its own code (docs/errors.md):
 *  - simulated evidence unless the policy says `trustSimulator: true`   SIMULATED_EVIDENCE_NOT_TRUSTED
 *    (defence in depth: real anchors never verify simulated evidence in the first place)
 *  - the TEE is accepted at all (its policy section is not null)        TEE_NOT_ACCEPTED
 *  - the evidence was verified close to `now`                           VERIFICATION_TIME_SKEW
 *  - REPORT_DATA equals `expectedReportData`, unless the caller passes null — an explicit choice
 *    that the binding stage (attestation/binding.ts) compares REPORT_DATA itself   REPORT_DATA_MISMATCH
 *  - SNP: DEBUG, MIGRATE_MA, SMT, VMPL, REPORTED_TCB, LAUNCH_TCB and COMMITTED_TCB ≥ minimum, MEASUREMENT, HOST_DATA,
 *    ID_KEY_DIGEST, AUTHOR_KEY_DIGEST, GUEST_SVN, product, signing key kind, CXL_ALLOW (refused
 *    unless `cxlAllowed`), TIO_EN (refused when `tioAllowed` is false), and the hardening fields
 *    minimumAbi, minimumFirmware, requireGuestPolicy, requirePlatformInfo, requireMitigations
 *    (LAUNCH_MIT_VECTOR and CURRENT_MIT_VECTOR)                                  SNP_*
 *  - TDX: an Intel-signed TDX module (MRSIGNERSEAM and SEAMATTRIBUTES zero, whatever the policy),
 *    TDATTRIBUTES.DEBUG, XFAM, MRSEAM, MRTD, RTMR0..3, MRCONFIGID, MROWNER, MROWNERCONFIG,
 *    MRSERVICETD, TCB status (met only when the QE identity and the CRLs were checked too),
 *    TEE_TCB_SVN, minimumQeSvn (the QE report's ISVSVN), minimumPceSvn (the PCK certificate's
 *    PCESVN) and rejectedAdvisoryIds (the advisories of the matched platform, TDX module and QE
 *    levels)                                                                      TDX_*
 *  - Azure CVMs (policy.azure): the hardware report behind the paravisor against azure.snp /
 *    azure.tdx (the same checks, fields prefixed "hcl."), then the vTPM PCRs the guest image is
 *    measured in (each listed PCR quoted and allowed) and the runtime data's vm-configuration
 *    (secure boot, serial console)                                              AZURE_*; for Azure
 *    evidence SHA-256(`expectedReportData`) is compared with the vTPM quote's qualifying data
 *    (extraData), where Azure carries the caller's binding (binding.ts; the hardware REPORT_DATA
 *    binds the runtime data).
 *  - MAA tokens (policy.maa; VerifiedMaaToken, constructed only by azure/maa.ts): `iss` in `issuers`,
 *    `x-ms-attestation-type` in `attestationTypes`, then the x-ms-sevsnpvm-* claims with the SNP
 *    checks' codes, each violation's field naming its claim (a pinned authorKeyDigests refuses an
 *    all-zero digest: the token has no AUTHOR_KEY_EN). A claim a check needs that is absent, not of
 *    its JSON type or beyond its report field's width is a violation (MAA_CLAIM_INVALID); no
 *    expectedReportData is taken.                                              MAA_*
 * A check the policy skips (`{ skip: { reason } }`) is not made and produces no violation; the reason
 * stays in the policy for auditors (policy-from-evidence.ts names the checks it skips in its notes,
 * client/policy.ts's policyRisks those that let an unknown guest through).
 */
import { VerifiedMaaToken } from "./azure/maa.ts";
import { VerifiedAzureEvidence } from "./azure/verify.ts";
import { azureQuoteQualifyingData } from "./binding.ts";
import { bytesEqual, fromHex, isAllZero, toHex } from "./bytes.ts";
import { ConfigurationError } from "./errors.ts";
import {
  type AttestationPolicy,
  AZURE_OS_PCRS,
  type AzurePolicy,
  isSkip,
  type MaaPolicy,
  type Skip,
  SkipSchema,
  type SNP_REQUIRABLE_GUEST_POLICY,
  type SNP_REQUIRABLE_PLATFORM_INFO,
  type SnpPolicy,
  type TdxPolicy,
} from "./policy.ts";
import type { SnpGuestPolicy, SnpPlatformInfo, SnpReport, SnpTcbVersion } from "./snp/parse.ts";
import { firmwareVersionOrder, tcbComponents, VerifiedSnpReport } from "./snp/verify.ts";
import { isMigratableTd, type TdxQuote, type TdxTdReportBody } from "./tdx/parse.ts";
import { collateralEvaluation, isVerifiedTdxQuote, type VerifiedTdxQuote } from "./tdx/verify.ts";
import { describeUntrusted } from "./untrusted-text.ts";

export type AppraisableEvidence = VerifiedSnpReport | VerifiedTdxQuote | VerifiedAzureEvidence | VerifiedMaaToken;

export interface AppraisalViolation {
  /** The evidence or policy field, in the specifications' vocabulary (e.g. "POLICY.DEBUG", "RTMR2"). */
  readonly field: string;
  /** What the policy requires (public values only). */
  readonly expected: string;
  /** What the evidence holds. */
  readonly found: string;
  /** Stable code (docs/errors.md). */
  readonly code: string;
}

/**
 * A violation as the message of a failed verification (document.ts, and so the key broker's log)
 * and `verify-evidence` (verify-evidence-cli.ts) show it: `FIELD: expected …, found …`, and for a
 * launch measurement (SNP MEASUREMENT, TDX MRTD; on Azure the paravisor's; an MAA token's) what to do
 * about it: the policy field that lists the allowed values (as an attestation policy names it, and
 * under `attestation` in a client policy, which has no MAA section) and where a new measurement comes
 * from (for `simulated` evidence: a policy `cloister up` wrote is written again, one written by hand
 * needs the new measurement); for an SNP TCB below its minimum (REPORTED_TCB, LAUNCH_TCB,
 * COMMITTED_TCB) the policy field of the minimum and what to do for that TCB, or for `simulated`
 * evidence that the simulator's TCB is fixed. Measurements and TCBs are public: nothing secret is
 * named.
 */
export function describeViolation(
  violation: Pick<AppraisalViolation, "field" | "code" | "expected" | "found">,
  simulated: boolean,
): string {
  const said = `${violation.field}: expected ${violation.expected}, found ${violation.found}`;
  const tcbStep = TCB_NEXT_STEPS[violation.code];
  if (tcbStep !== undefined) {
    return `${said} (${tcbMinimumNamed(violation.field)}; ${simulated ? SIMULATED_TCB_STEP : tcbStep})`;
  }
  const section = MEASUREMENT_FIELDS[`${violation.code} ${violation.field}`];
  if (section === undefined) return said;
  // An MAA token is appraised only by an attestation policy (verify-evidence --tee maa --policy): a
  // client policy's attestation.maa is null or absent, so only the policy's own field is named.
  if (section.startsWith("maa.")) {
    return `${said} (not in the policy's ${section}; compare it with your build's launch measurement)`;
  }
  const listed = `not in the policy's ${section}, attestation.${section} in a client policy`;
  if (section.startsWith("azure.")) return `${said} (${listed}: the paravisor's launch measurement)`;
  if (!simulated) return `${said} (${listed}; compare it with your build's launch measurement)`;
  return (
    `${said} (${listed}; simulated: a policy \`cloister up\` wrote is written again when the enclave code ` +
    "changes, so restart what holds the old one (a proxy, web page or key broker); a policy written by hand " +
    "(a key broker's release policy, a client's): add this measurement if this enclave is yours)"
  );
}

/**
 * The policy field an SNP TCB violation's minimum comes from (`REPORTED_TCB.microcode`:
 * snp.minimumTcb.microcode; `hcl.LAUNCH_TCB.…`: azure.snp.minimumTcb; an MAA `x-ms-sevsnpvm-*-svn`
 * claim: maa.snp.minimumTcb), as describeViolation names a measurement's.
 */
function tcbMinimumNamed(field: string): string {
  const claim = MAA_MINIMUM_TCB_CLAIMS.find(([, name]) => name === field);
  const component = claim?.[0] ?? field.slice(field.lastIndexOf(".") + 1);
  const section = claim !== undefined ? "maa.snp" : field.startsWith("hcl.") ? "azure.snp" : "snp";
  return claim !== undefined
    ? `below the policy's ${section}.minimumTcb.${component}`
    : `below the policy's ${section}.minimumTcb.${component}, attestation.${section}.minimumTcb.${component} in a client policy`;
}

/**
 * What to do about each SNP TCB violation: the platform's firmware is old (REPORTED_TCB); the guest
 * was launched before a firmware update and keeps its LAUNCH_TCB until relaunched; the firmware is
 * provisional and can be rolled back to its COMMITTED_TCB until committed. Each may instead be
 * accepted on purpose by lowering the minimum. Said without naming who acts: the reader may be the
 * operator (verify-evidence) or a client refused live (document.ts: the SDK, the web page, the key
 * broker), who may not run the platform.
 */
const TCB_NEXT_STEPS: Readonly<Record<string, string>> = {
  SNP_TCB_TOO_LOW:
    "the platform's firmware/microcode must be updated, or lower that minimum if this TCB is accepted on purpose",
  SNP_LAUNCH_TCB_TOO_LOW:
    "the guest was launched under older firmware and keeps that LAUNCH_TCB until it is relaunched: it must be " +
    "relaunched, or lower that minimum if this TCB is accepted on purpose",
  SNP_COMMITTED_TCB_TOO_LOW:
    "the platform runs provisional firmware that can be rolled back to this COMMITTED_TCB: the firmware must be " +
    "committed on the host (SNP_COMMIT), or lower that minimum if this TCB is accepted on purpose",
};

/**
 * The next step of any SNP TCB violation of simulated evidence: the simulator reports one fixed TCB
 * (attestation/sim/amd.ts), so no firmware update, relaunch or commit changes it.
 */
const SIMULATED_TCB_STEP =
  "simulated: the simulator's TCB is fixed, no firmware update changes it: lower that minimum in a policy for the " +
  "simulator (the .cloister/policy.json `cloister up` writes sets it to 0)";

/** `code field` of the launch-measurement violations → the policy field that lists the allowed values. */
const MEASUREMENT_FIELDS: Readonly<Record<string, string>> = {
  "SNP_MEASUREMENT_NOT_ALLOWED MEASUREMENT": "snp.measurements",
  "TDX_MRTD_NOT_ALLOWED MRTD": "tdx.mrtd",
  "SNP_MEASUREMENT_NOT_ALLOWED hcl.MEASUREMENT": "azure.snp.measurements",
  "TDX_MRTD_NOT_ALLOWED hcl.MRTD": "azure.tdx.mrtd",
  "SNP_MEASUREMENT_NOT_ALLOWED x-ms-sevsnpvm-launchmeasurement": "maa.snp.measurements",
};

export interface AppraisalResult {
  /** True exactly when there is no violation. */
  readonly ok: boolean;
  /** The evidence chained to a simulator root: it is not hardware evidence. */
  readonly simulated: boolean;
  readonly tee: "snp" | "tdx" | "azure-snp" | "azure-tdx" | "maa";
  readonly violations: readonly AppraisalViolation[];
}

export interface AppraisalOptions {
  /** Appraisal time (injected). */
  readonly now: Date;
  /**
   * The REPORT_DATA the evidence must carry, or null to leave that comparison to the binding stage
   * (attestation/binding.ts), which recomputes it from the attestation document. Required, so not
   * checking it is always a visible decision.
   */
  readonly expectedReportData: Uint8Array | null;
}

export type Push = (field: string, code: string, expected: string, found: string) => void;

const onOff = (b: boolean) => (b ? "set" : "clear");

function allowList(list: readonly string[]): string {
  return list.length === 1 ? (list[0] as string) : `one of [${list.join(", ")}]`;
}

export function checkAllowList(
  push: Push,
  rule: readonly string[] | { readonly skip: unknown },
  value: Uint8Array,
  field: string,
  code: string,
): void {
  if (isSkip(rule)) return;
  const found = toHex(value);
  if (!(rule as readonly string[]).includes(found)) push(field, code, allowList(rule as readonly string[]), found);
}

function checkPinned(
  push: Push,
  rule: string | { readonly skip: unknown },
  value: Uint8Array,
  field: string,
  code: string,
) {
  if (isSkip(rule)) return;
  const found = toHex(value);
  if (found !== rule) push(field, code, rule as string, found);
}

function appraiseSnp(push: Push, evidence: VerifiedSnpReport, policy: SnpPolicy): void {
  const r = evidence.report;
  checkSnpPolicyFlags(push, r, policy);
  if (!policy.allowedVmpls.includes(r.vmpl)) {
    push("VMPL", "SNP_VMPL_NOT_ALLOWED", `one of [${policy.allowedVmpls.join(", ")}]`, String(r.vmpl));
  }
  // REPORTED_TCB is the TCB the endorsement key certifies (verify.ts checked the certificate's SPLs
  // equal it), so its minimum also stops a host from reporting an older TCB to use an older VCEK.
  // LAUNCH_TCB is the firmware the guest was launched under: a guest started on vulnerable firmware
  // and carried over a live firmware update may already be compromised, whatever it reports now.
  // COMMITTED_TCB is the firmware the platform can be rolled back to without a trace (a provisional
  // update not yet committed: CURRENT_TCB above COMMITTED_TCB), so it must meet the minimum too; real
  // platforms do run provisional firmware (two of the fixtures: COMMITTED microcode below CURRENT),
  // which is accepted while its committed TCB meets the minimum.
  // A component already too low in REPORTED_TCB is one violation, not two.
  checkSnpTcbMinimum(push, evidence, policy.minimumTcb);
  checkAllowList(push, policy.measurements, r.measurement, "MEASUREMENT", "SNP_MEASUREMENT_NOT_ALLOWED");
  checkPinned(push, policy.hostData, r.hostData, "HOST_DATA", "SNP_HOST_DATA_MISMATCH");
  checkAllowList(push, policy.idKeyDigests, r.idKeyDigest, "ID_KEY_DIGEST", "SNP_ID_KEY_DIGEST_NOT_ALLOWED");
  if (!isSkip(policy.authorKeyDigests)) {
    if (!r.authorKeyEn) {
      push("AUTHOR_KEY_EN", "SNP_AUTHOR_KEY_DIGEST_NOT_ALLOWED", "set (authorKeyDigests is pinned)", onOff(false));
    } else {
      checkAllowList(
        push,
        policy.authorKeyDigests,
        r.authorKeyDigest,
        "AUTHOR_KEY_DIGEST",
        "SNP_AUTHOR_KEY_DIGEST_NOT_ALLOWED",
      );
    }
  }
  if (r.guestSvn < policy.minimumGuestSvn) {
    push("GUEST_SVN", "SNP_GUEST_SVN_TOO_LOW", `>= ${policy.minimumGuestSvn}`, String(r.guestSvn));
  }
  if (!policy.allowedProducts.includes(evidence.product)) {
    push("product", "SNP_PRODUCT_NOT_ALLOWED", `one of [${policy.allowedProducts.join(", ")}]`, evidence.product);
  }
  const kind = evidence.signingKey === "VCEK" ? "vcek" : "vlek";
  if (!policy.signingKeys.includes(kind)) {
    push("SIGNING_KEY", "SNP_SIGNING_KEY_NOT_ALLOWED", `one of [${policy.signingKeys.join(", ")}]`, kind);
  }
  appraiseSnpPlatform(push, r, policy);
}

/**
 * The guest POLICY's DEBUG, MIGRATE_MA and SMT bits (and PLATFORM_INFO.SMT_EN) against the flags a
 * policy allows: the client policy's, and the manifest's tee.policyFlags (manifest-tee.ts).
 */
export function checkSnpPolicyFlags(
  push: Push,
  r: SnpReport,
  flags: { readonly debugAllowed: boolean; readonly migrationAgentAllowed: boolean; readonly smtAllowed: boolean },
): void {
  if (r.policy.debugAllowed && !flags.debugAllowed) {
    push("POLICY.DEBUG", "SNP_DEBUG_NOT_ALLOWED", "clear (debugAllowed: false)", onOff(true));
  }
  if (r.policy.migrateMA && !flags.migrationAgentAllowed) {
    push("POLICY.MIGRATE_MA", "SNP_MIGRATION_AGENT_NOT_ALLOWED", "clear (migrationAgentAllowed: false)", onOff(true));
  }
  if (!flags.smtAllowed) {
    if (r.policy.smtAllowed) push("POLICY.SMT", "SNP_SMT_NOT_ALLOWED", "clear (smtAllowed: false)", onOff(true));
    if (r.platformInfo.smtEnabled) {
      push("PLATFORM_INFO.SMT_EN", "SNP_SMT_NOT_ALLOWED", "clear (smtAllowed: false)", onOff(true));
    }
  }
}

/**
 * REPORTED_TCB, LAUNCH_TCB and COMMITTED_TCB, component by component, against one minimum (why all
 * three: appraiseSnp). The client policy's minimumTcb and the manifest's tee.minimumTcb.snp
 * (manifest-tee.ts) are compared by this one function.
 */
export function checkSnpTcbMinimum(
  push: Push,
  tcbs: {
    readonly reportedTcb: SnpTcbVersion;
    readonly launchTcb: SnpTcbVersion;
    readonly committedTcb: SnpTcbVersion;
  },
  min: SnpPolicy["minimumTcb"],
): void {
  const low = checkTcbMinimum(push, tcbs.reportedTcb, min, "REPORTED_TCB", "SNP_TCB_TOO_LOW");
  checkTcbMinimum(push, tcbs.launchTcb, min, "LAUNCH_TCB", "SNP_LAUNCH_TCB_TOO_LOW", low);
  checkTcbMinimum(push, tcbs.committedTcb, min, "COMMITTED_TCB", "SNP_COMMITTED_TCB_TOO_LOW", low);
}

const GUEST_POLICY_BITS: Record<(typeof SNP_REQUIRABLE_GUEST_POLICY)[number], (p: SnpGuestPolicy) => boolean> = {
  SINGLE_SOCKET: (p) => p.singleSocket,
  MEM_AES_256_XTS: (p) => p.memAes256Xts,
  RAPL_DIS: (p) => p.raplDisabled,
  CIPHERTEXT_HIDING: (p) => p.ciphertextHiding,
  PAGE_SWAP_DISABLE: (p) => p.pageSwapDisabled,
};

const PLATFORM_INFO_BITS: Record<(typeof SNP_REQUIRABLE_PLATFORM_INFO)[number], (p: SnpPlatformInfo) => boolean> = {
  TSME_EN: (p) => p.tsmeEnabled,
  ECC_EN: (p) => p.eccEnabled,
  RAPL_DIS: (p) => p.raplDisabled,
  CIPHERTEXT_HIDING_EN: (p) => p.ciphertextHidingEnabled,
  ALIAS_CHECK_COMPLETE: (p) => p.aliasCheckComplete,
};

const versionText = (v: { major: number; minor: number; build?: number }) =>
  `${v.major}.${v.minor}${v.build === undefined ? "" : `.${v.build}`}`;

/**
 * A hardening check's rule, or null when the policy skips it. Absent, or a skip without its reason
 * (a policy built in code that never went through parseAttestationPolicy), is refused, never taken
 * for a check not made.
 */
function ruleOf<T>(rule: T | Skip, field: string): T | null {
  const absent = rule === undefined || rule === null;
  if (absent || (isSkip(rule) && !SkipSchema.safeParse(rule).success)) {
    throw new ConfigurationError(
      "APPRAISAL_BAD_OPTION",
      `appraise: policy ${field}: expected a value or a skip with its reason, found ${absent ? "none" : "a skip without a reason"} (a policy built in code: parse it with parseAttestationPolicy)`,
    );
  }
  return isSkip(rule) ? null : (rule as T);
}

/** The guest-policy and platform checks of go-sev-guest's validate that a policy may ask for (policy.ts). */
function appraiseSnpPlatform(push: Push, r: SnpReport, policy: SnpPolicy): void {
  if (r.policy.cxlAllowed && !policy.cxlAllowed) {
    push("POLICY.CXL_ALLOW", "SNP_CXL_NOT_ALLOWED", "clear (cxlAllowed: false)", onOff(true));
  }
  const abi = ruleOf(policy.minimumAbi, "minimumAbi");
  if (
    abi !== null &&
    (r.policy.abiMajor < abi.major || (r.policy.abiMajor === abi.major && r.policy.abiMinor < abi.minor))
  ) {
    push(
      "POLICY.ABI_MAJOR.ABI_MINOR",
      "SNP_ABI_TOO_LOW",
      `>= ${versionText(abi)}`,
      versionText({ major: r.policy.abiMajor, minor: r.policy.abiMinor }),
    );
  }
  const firmware = ruleOf(policy.minimumFirmware, "minimumFirmware");
  if (firmware !== null) {
    for (const [field, found] of [
      ["CURRENT_MAJOR.MINOR.BUILD", r.currentVersion],
      ["COMMITTED_MAJOR.MINOR.BUILD", r.committedVersion],
    ] as const) {
      if (firmwareVersionOrder(found, firmware) < 0)
        push(field, "SNP_FIRMWARE_TOO_OLD", `>= ${versionText(firmware)}`, versionText(found));
    }
  }
  for (const name of ruleOf(policy.requireGuestPolicy, "requireGuestPolicy") ?? []) {
    if (!GUEST_POLICY_BITS[name](r.policy)) {
      push(`POLICY.${name}`, "SNP_GUEST_POLICY_BIT_MISSING", "set (requireGuestPolicy)", onOff(false));
    }
  }
  for (const name of ruleOf(policy.requirePlatformInfo, "requirePlatformInfo") ?? []) {
    if (!PLATFORM_INFO_BITS[name](r.platformInfo)) {
      push(`PLATFORM_INFO.${name}`, "SNP_PLATFORM_INFO_BIT_MISSING", "set (requirePlatformInfo)", onOff(false));
    }
  }
  if (!policy.tioAllowed && r.platformInfo.tioEnabled) {
    push("PLATFORM_INFO.TIO_EN", "SNP_TIO_NOT_ALLOWED", "clear (tioAllowed: false)", onOff(true));
  }
  const mitigations = ruleOf(policy.requireMitigations, "requireMitigations");
  if (mitigations !== null) checkMitigations(push, r, mitigations);
}

/**
 * Each required mitigation bit in LAUNCH_MIT_VECTOR (a guest launched before the mitigation was
 * verified may already be compromised, as with LAUNCH_TCB) and in CURRENT_MIT_VECTOR. A report
 * before version 5 has neither field, so it shows no mitigation and meets no requirement.
 */
function checkMitigations(push: Push, r: SnpReport, required: readonly number[]): void {
  const bits = [...new Set(required)].sort((a, b) => a - b);
  const expected = `${bits.length === 1 ? "bit" : "bits"} ${bits.join(", ")} set (requireMitigations)`;
  for (const [field, vector] of [
    ["LAUNCH_MIT_VECTOR", r.launchMitVector],
    ["CURRENT_MIT_VECTOR", r.currentMitVector],
  ] as const) {
    if (vector === null) {
      push(
        field,
        "SNP_MITIGATION_MISSING",
        expected,
        `absent (a version ${r.version} report; the mitigation vectors came with version 5)`,
      );
      continue;
    }
    const clear = bits.filter((n) => ((vector >> BigInt(n)) & 1n) === 0n);
    if (clear.length > 0) {
      push(
        field,
        "SNP_MITIGATION_MISSING",
        expected,
        `0x${vector.toString(16)} (${clear.length === 1 ? "bit" : "bits"} ${clear.join(", ")} clear)`,
      );
    }
  }
}

/** An 8-byte field against an allow-list of exact values or `{ mask, value }`; a skip checks nothing. */
function checkMaskedField(
  push: Push,
  rule: TdxPolicy["xfam"],
  value: Uint8Array,
  field: string,
  code: string,
  reported: string = toHex(value),
): void {
  const found = toHex(value);
  if ("allowed" in rule) {
    if (!rule.allowed.includes(found)) push(field, code, allowList(rule.allowed), reported);
  } else if ("mask" in rule) {
    const masked = Array.from(value, (b, i) => b & Number.parseInt(rule.mask.slice(2 * i, 2 * i + 2), 16));
    if (toHex(Uint8Array.from(masked)) !== rule.value) {
      push(field, code, `${field} & ${rule.mask} == ${rule.value}`, reported);
    }
  }
}

/**
 * MRSERVICETD. A quote in the TDX 1.0 layout (every v4 quote) does not carry it, even from a TDX 1.5
 * module where a service TD can be bound. The only service TD there is, the migration TD, can be
 * bound only to a TD with TDATTRIBUTES.MIGRATABLE set; so a quote without the field meets a pin of
 * zero (none bound) only while MIGRATABLE is clear, and never a pin of a service TD.
 */
function checkServiceTd(push: Push, rule: TdxPolicy["mrservicetd"], body: TdxTdReportBody): void {
  if (isSkip(rule)) return;
  const pinned = rule as string;
  if (body.mrServiceTd !== null) {
    checkPinned(push, pinned, body.mrServiceTd, "MRSERVICETD", "TDX_MRSERVICETD_MISMATCH");
    return;
  }
  const absent = "absent (the quote has the TDX 1.0 body layout, which does not carry MRSERVICETD)";
  if (!/^0+$/.test(pinned)) push("MRSERVICETD", "TDX_MRSERVICETD_MISMATCH", pinned, absent);
  else if (isMigratableTd(body)) {
    push(
      "MRSERVICETD",
      "TDX_MRSERVICETD_MISMATCH",
      `${pinned} (no service TD bound)`,
      `${absent}, and TDATTRIBUTES.MIGRATABLE is set, so a migration TD may be bound; a v5 quote with the TDX 1.5 body says which`,
    );
  }
}

function checkTcbMinimum(
  push: Push,
  tcb: SnpTcbVersion,
  min: SnpPolicy["minimumTcb"],
  field: string,
  code: string,
  except: ReadonlySet<string> = new Set(),
): Set<string> {
  const low = new Set<string>();
  for (const [name, found] of tcbComponents(tcb)) {
    const minimum = min[name];
    if (found >= minimum) continue;
    low.add(name);
    if (!except.has(name)) push(`${field}.${name}`, code, `>= ${minimum}`, String(found));
  }
  return low;
}

function appraiseTdx(push: Push, evidence: VerifiedTdxQuote, policy: TdxPolicy): void {
  const body = evidence.quote.body;
  // Intel's TDX module, whatever the policy: Intel signs its modules with MRSIGNERSEAM zero and
  // SEAMATTRIBUTES zero (as its TCB info's tdxModule identity states). A module loaded under another
  // signer or with debug SEAM attributes can report anything about the TD.
  if (!isAllZero(body.mrSignerSeam)) {
    push("MRSIGNERSEAM", "TDX_MODULE_NOT_INTEL", "all zero (a TDX module signed by Intel)", toHex(body.mrSignerSeam));
  }
  if (!isAllZero(body.seamAttributes)) {
    push("SEAMATTRIBUTES", "TDX_MODULE_NOT_INTEL", "all zero (a production TDX module)", toHex(body.seamAttributes));
  }
  if (evidence.debug && !policy.debugAllowed) {
    push("TDATTRIBUTES.DEBUG", "TDX_DEBUG_NOT_ALLOWED", "clear (debugAllowed: false)", onOff(true));
  }
  checkMaskedField(push, policy.xfam, body.xfam, "XFAM", "TDX_XFAM_NOT_ALLOWED");
  // DEBUG (bit 0) is `debugAllowed`'s alone (the policy schema keeps it out of tdAttributes), so
  // one debug TD is one violation, not two; a violation shows the quote's own value.
  const attributes = Uint8Array.from(body.tdAttributes);
  attributes[0] = (attributes[0] as number) & 0xfe;
  checkMaskedField(
    push,
    policy.tdAttributes,
    attributes,
    "TDATTRIBUTES",
    "TDX_ATTRIBUTES_NOT_ALLOWED",
    toHex(body.tdAttributes),
  );
  checkAllowList(push, policy.mrseam, body.mrSeam, "MRSEAM", "TDX_MRSEAM_NOT_ALLOWED");
  checkAllowList(push, policy.mrtd, body.mrTd, "MRTD", "TDX_MRTD_NOT_ALLOWED");
  if ("allowed" in policy.rtmrs) {
    // One whole set must match: a kernel (RTMR1) of one image with a command line (RTMR2) of another is refused.
    const found = body.rtmrs.map((r) => toHex(r));
    const matches = (set: TdxPolicy["rtmrs"] & readonly unknown[]) =>
      set.every((rule, i) => isSkip(rule) || rule === found[i]);
    if (!policy.rtmrs.allowed.some((set) => matches(set))) {
      push("RTMR0..3", "TDX_RTMR_MISMATCH", `one of ${policy.rtmrs.allowed.length} allowed RTMR sets`, found.join(","));
    }
  } else {
    policy.rtmrs.forEach((rule, i) => {
      checkPinned(push, rule, body.rtmrs[i] as Uint8Array, `RTMR${i}`, "TDX_RTMR_MISMATCH");
    });
  }
  checkPinned(push, policy.mrconfigid, body.mrConfigId, "MRCONFIGID", "TDX_MRCONFIGID_MISMATCH");
  checkPinned(push, policy.mrowner, body.mrOwner, "MROWNER", "TDX_MROWNER_MISMATCH");
  checkPinned(push, policy.mrownerconfig, body.mrOwnerConfig, "MROWNERCONFIG", "TDX_MROWNERCONFIG_MISMATCH");
  checkServiceTd(push, policy.mrservicetd, body);
  if (!isSkip(policy.acceptedTcbStatuses)) {
    const rule = policy.acceptedTcbStatuses as
      | readonly string[]
      | { readonly statuses: readonly string[]; readonly minimumTcbEvaluationDataNumber: number };
    const accepted = "statuses" in rule ? rule.statuses : rule;
    const evaluation = collateralEvaluation(evidence);
    if ("statuses" in rule && evaluation !== null) {
      if (evaluation < rule.minimumTcbEvaluationDataNumber) {
        push(
          "tcbEvaluationDataNumber",
          "TDX_TCB_EVALUATION_TOO_OLD",
          `at least ${rule.minimumTcbEvaluationDataNumber}`,
          String(evaluation),
        );
      }
    }
    // A status from TCB info alone is the platform's only: it says nothing of the quoting enclave
    // (QE identity) or of a revoked PCK chain (CRLs), so it meets no accepted status; the wire
    // collateral carries all three (attestation/collateral.ts), verify-evidence --collateral DIR may not.
    const status = evidence.tcbStatus;
    const unchecked = [
      ...(evidence.qeIdentity === null ? ["QE identity not checked"] : []),
      ...(evidence.revocationChecked ? [] : ["revocation not checked"]),
    ];
    if (status === null || !accepted.includes(status) || unchecked.length > 0) {
      push(
        "tcbStatus",
        "TDX_TCB_STATUS_NOT_ACCEPTED",
        `one of [${accepted.join(", ")}], with QE identity and revocation checked`,
        status === null
          ? "unknown (no TCB info collateral was verified)"
          : unchecked.length === 0
            ? status
            : `${status} (${unchecked.join("; ")})`,
      );
    }
  }
  checkTdxQeAndPceSvn(push, evidence.quote, {
    qeSvn: ruleOf(policy.minimumQeSvn, "minimumQeSvn"),
    pceSvn: ruleOf(policy.minimumPceSvn, "minimumPceSvn"),
    names: { qeSvn: "minimumQeSvn", pceSvn: "minimumPceSvn" },
  });
  const rejected = ruleOf(policy.rejectedAdvisoryIds, "rejectedAdvisoryIds");
  if (rejected !== null) checkAdvisories(push, evidence, rejected);
  if (!isSkip(policy.minimumTeeTcbSvn)) checkTeeTcbSvn(push, body, policy.minimumTeeTcbSvn as string);
}

/**
 * The TD's TCB SVNs that are signed: the QE report's ISVSVN (signed by the PCK key) and the PCK
 * certificate's PCESVN, never the quote header's QE_SVN / PCE_SVN, which only the attestation key
 * signs. A null minimum is not compared. `names` say which policy field each minimum is.
 */
export function checkTdxQeAndPceSvn(
  push: Push,
  quote: TdxQuote,
  min: {
    readonly qeSvn: number | null;
    readonly pceSvn: number | null;
    readonly names: { readonly qeSvn: string; readonly pceSvn: string };
  },
): void {
  if (min.qeSvn !== null && quote.qeReport.isvSvn < min.qeSvn) {
    push(
      "QE_REPORT.ISVSVN",
      "TDX_QE_SVN_TOO_LOW",
      `>= ${min.qeSvn} (${min.names.qeSvn})`,
      String(quote.qeReport.isvSvn),
    );
  }
  const pceSvn = quote.pckExtensions.pceSvn;
  if (min.pceSvn !== null && pceSvn < min.pceSvn) {
    push("PCK.PCESVN", "TDX_PCE_SVN_TOO_LOW", `>= ${min.pceSvn} (${min.names.pceSvn})`, String(pceSvn));
  }
}

/** TEE_TCB_SVN, byte by byte, against a minimum of 32 hex characters. */
export function checkTeeTcbSvn(push: Push, body: TdxTdReportBody, minimum: string): void {
  const svn = body.teeTcbSvn;
  for (let i = 0; i < 16; i++) {
    const want = Number.parseInt(minimum.slice(2 * i, 2 * i + 2), 16);
    const have = svn[i] as number;
    if (have < want) push(`TEE_TCB_SVN[${i}]`, "TDX_TEE_TCB_SVN_TOO_LOW", `>= ${want}`, String(have));
  }
}

/**
 * `rejectedAdvisoryIds` (Intel's appraisal policy `rejected_advisory_ids`): none may be among the
 * advisoryIDs of the TCB levels the platform, the TDX module and the QE matched. Where a level is
 * missing (no TCB info or QE identity verified, or none matched), the advisories are unknown and
 * the check fails: a list of rejected advisories says the relying party expects them to be known.
 */
function checkAdvisories(push: Push, evidence: VerifiedTdxQuote, rejected: readonly string[]): void {
  const ids = [...new Set(rejected)].sort();
  const expected = `none of [${ids.join(", ")}] (rejectedAdvisoryIds)`;
  const { tcb, qeIdentity } = evidence;
  const unknown =
    tcb === null
      ? "no TCB info collateral was verified"
      : tcb.platform.tcbDate === null
        ? "no TCB level of the TCB info matches the platform"
        : tcb.tdxModule !== null && tcb.tdxModule.tcbDate === null
          ? `no level of the TCB info's ${tcb.tdxModule.id} matches the TDX module`
          : qeIdentity === null
            ? "QE identity not checked"
            : qeIdentity.tcbDate === null
              ? "no level of the QE identity matches the QE"
              : null;
  if (tcb === null || qeIdentity === null || unknown !== null) {
    push("advisoryIDs", "TDX_ADVISORY_REJECTED", expected, `unknown (${unknown})`);
    return;
  }
  const listed = new Set([...tcb.advisoryIds, ...qeIdentity.advisoryIds].map((id) => id.toUpperCase()));
  const found = ids.filter((id) => listed.has(id));
  if (found.length > 0) push("advisoryIDs", "TDX_ADVISORY_REJECTED", expected, found.join(", "));
}

/**
 * The PCR part of Azure appraisal: every pinned PCR must be among the verified quote's PCRs
 * (`quoted`, by index) and hold one of its allowed values.
 */
export function azurePcrViolations(
  quoted: ReadonlyMap<number, Uint8Array>,
  pinned: AzurePolicy["pcrs"],
): AppraisalViolation[] {
  const violations: AppraisalViolation[] = [];
  for (const [index, allowed] of Object.entries(pinned)) {
    const value = quoted.get(Number(index));
    const field = `PCR[${index}]`;
    if (value === undefined) {
      violations.push({
        field,
        code: "AZURE_PCR_NOT_QUOTED",
        expected: allowList(allowed),
        found: "not covered by the vTPM quote",
      });
    } else if (!allowed.includes(toHex(value))) {
      violations.push({ field, code: "AZURE_PCR_NOT_ALLOWED", expected: allowList(allowed), found: toHex(value) });
    }
  }
  return violations;
}

/** The vm-configuration part of Azure appraisal (the runtime data the hardware report binds). */
export function azureVmConfigurationViolations(
  config: Readonly<Record<string, unknown>>,
  policy: Pick<AzurePolicy, "secureBootRequired" | "consoleAllowed">,
): AppraisalViolation[] {
  const violations: AppraisalViolation[] = [];
  const shown = (v: unknown) => (v === undefined ? "absent" : JSON.stringify(v));
  if (policy.secureBootRequired && config["secure-boot"] !== true) {
    violations.push({
      field: "vm-configuration.secure-boot",
      code: "AZURE_SECURE_BOOT_REQUIRED",
      expected: "true (secureBootRequired: true)",
      found: shown(config["secure-boot"]),
    });
  }
  // An absent value counts as enabled: only an explicit false shows the console is off.
  if (!policy.consoleAllowed && config["console-enabled"] !== false) {
    violations.push({
      field: "vm-configuration.console-enabled",
      code: "AZURE_CONSOLE_NOT_ALLOWED",
      expected: "false (consoleAllowed: false)",
      found: shown(config["console-enabled"]),
    });
  }
  return violations;
}

function appraiseAzure(push: Push, evidence: VerifiedAzureEvidence, policy: AzurePolicy): void {
  const hcl: Push = (field, code, expected, found) => push(`hcl.${field}`, code, expected, found);
  // The schema refuses these; checked again for policies built in code, which skip the schema.
  const unpinned = (field: string) =>
    push(field, "AZURE_PARAVISOR_NOT_PINNED", "an allow-list of the paravisor's measurements", "skipped");
  if (evidence.snp !== null) {
    if (policy.snp === null) push("tee", "TEE_NOT_ACCEPTED", "azure-tdx (policy.azure.snp is null)", "azure-snp");
    else {
      if (isSkip(policy.snp.measurements)) unpinned("hcl.MEASUREMENT");
      appraiseSnp(hcl, evidence.snp, policy.snp);
    }
  } else if (evidence.tdx !== null) {
    if (policy.tdx === null) push("tee", "TEE_NOT_ACCEPTED", "azure-snp (policy.azure.tdx is null)", "azure-tdx");
    else {
      if (isSkip(policy.tdx.mrtd)) unpinned("hcl.MRTD");
      appraiseTdx(hcl, evidence.tdx, policy.tdx);
    }
  }
  if (!AZURE_OS_PCRS.some((i) => i in policy.pcrs)) {
    push("PCRs", "AZURE_PCRS_NOT_PINNED", `at least one of PCR ${AZURE_OS_PCRS.join(", ")} pinned`, "none");
  }
  for (const v of azurePcrViolations(evidence.tpm.pcrs, policy.pcrs)) push(v.field, v.code, v.expected, v.found);
  for (const v of azureVmConfigurationViolations(evidence.runtimeData.vmConfiguration, policy)) {
    push(v.field, v.code, v.expected, v.found);
  }
}

/**
 * A claim of a verified MAA token that a check needs: absent, or not of its JSON type, is a violation
 * naming it (MAA_CLAIM_INVALID), never a check passed. The value is shown as untrusted text.
 */
function claimOf<T>(
  push: Push,
  claims: Readonly<Record<string, unknown>>,
  name: string,
  expected: string,
  is: (value: unknown) => value is T,
): T | undefined {
  const value = claims[name];
  if (is(value)) return value;
  push(name, "MAA_CLAIM_INVALID", expected, value === undefined ? "absent" : describeUntrusted(value));
  return undefined;
}

const isBoolean = (value: unknown): value is boolean => typeof value === "boolean";
const booleanClaim = (push: Push, claims: Readonly<Record<string, unknown>>, name: string) =>
  claimOf(push, claims, name, "true or false", isBoolean);
/** Widths of the report fields MAA copies: a TCB component's SVN is one byte, VMPL and GUEST_SVN four. */
const U8_MAX = 0xff;
const U32_MAX = 0xffff_ffff;
/**
 * A whole-number claim within its report field's width (0..`max`): a number beyond it is no value
 * the hardware reports, so it is invalid, never compared with a minimum.
 */
function numberClaim(
  push: Push,
  claims: Readonly<Record<string, unknown>>,
  name: string,
  max: number,
): number | undefined {
  const inRange = (value: unknown): value is number =>
    Number.isInteger(value) && (value as number) >= 0 && (value as number) <= max;
  return claimOf(push, claims, name, `a whole number 0..${max}`, inRange);
}
/** A hex claim of `bytes` bytes, as bytes (MAA writes them in lower case; either is accepted). */
function hexClaim(
  push: Push,
  claims: Readonly<Record<string, unknown>>,
  name: string,
  bytes: number,
): Uint8Array | undefined {
  const pattern = new RegExp(`^[0-9a-fA-F]{${2 * bytes}}$`);
  const isHex = (value: unknown): value is string => typeof value === "string" && pattern.test(value);
  const hex = claimOf(push, claims, name, `${bytes} bytes as ${2 * bytes} hex digits`, isHex);
  return hex === undefined ? undefined : fromHex(hex, name);
}

/** The x-ms-sevsnpvm-* claims MAA copies from the SEV-SNP report, against the policy's maa.snp. */
const MAA_MINIMUM_TCB_CLAIMS = [
  ["bootloader", "x-ms-sevsnpvm-bootloader-svn"],
  ["tee", "x-ms-sevsnpvm-tee-svn"],
  ["snp", "x-ms-sevsnpvm-snpfw-svn"],
  ["microcode", "x-ms-sevsnpvm-microcode-svn"],
] as const;

/**
 * An MAA token against policy.maa: `iss` in `issuers`, `x-ms-attestation-type` in `attestationTypes`,
 * then for a sevsnpvm token the SEV-SNP report fields its claims carry, with the SNP checks' codes.
 * A claim is read only when a check needs it (debugAllowed: true reads no is-debuggable claim).
 */
function appraiseMaa(push: Push, token: VerifiedMaaToken, policy: MaaPolicy): void {
  if (!policy.issuers.includes(token.issuer)) {
    push("iss", "MAA_ISSUER_NOT_ALLOWED", allowList(policy.issuers), describeUntrusted(token.issuer));
  }
  if (!(policy.attestationTypes as readonly string[]).includes(token.attestationType)) {
    push(
      "x-ms-attestation-type",
      "MAA_ATTESTATION_TYPE_NOT_ALLOWED",
      allowList(policy.attestationTypes),
      describeUntrusted(token.attestationType),
    );
    return;
  }
  const claims = token.claims;
  const p = policy.snp;
  for (const [allowed, name, code, field] of [
    [p.debugAllowed, "x-ms-sevsnpvm-is-debuggable", "SNP_DEBUG_NOT_ALLOWED", "debugAllowed"],
    [p.migrationAllowed, "x-ms-sevsnpvm-migration-allowed", "SNP_MIGRATION_AGENT_NOT_ALLOWED", "migrationAllowed"],
    [p.smtAllowed, "x-ms-sevsnpvm-smt-allowed", "SNP_SMT_NOT_ALLOWED", "smtAllowed"],
  ] as const) {
    if (!allowed && booleanClaim(push, claims, name) === true) push(name, code, `false (${field}: false)`, "true");
  }
  const vmpl = numberClaim(push, claims, "x-ms-sevsnpvm-vmpl", U32_MAX);
  if (vmpl !== undefined && !p.allowedVmpls.includes(vmpl)) {
    push("x-ms-sevsnpvm-vmpl", "SNP_VMPL_NOT_ALLOWED", `one of [${p.allowedVmpls.join(", ")}]`, String(vmpl));
  }
  for (const [component, name] of MAA_MINIMUM_TCB_CLAIMS) {
    const svn = numberClaim(push, claims, name, U8_MAX);
    const minimum = p.minimumTcb[component];
    if (svn !== undefined && svn < minimum) push(name, "SNP_TCB_TOO_LOW", `>= ${minimum}`, String(svn));
  }
  const hexChecks = [
    ["measurements", "x-ms-sevsnpvm-launchmeasurement", 48, "SNP_MEASUREMENT_NOT_ALLOWED"],
    ["hostData", "x-ms-sevsnpvm-hostdata", 32, "SNP_HOST_DATA_MISMATCH"],
    ["idKeyDigests", "x-ms-sevsnpvm-idkeydigest", 48, "SNP_ID_KEY_DIGEST_NOT_ALLOWED"],
    ["authorKeyDigests", "x-ms-sevsnpvm-authorkeydigest", 48, "SNP_AUTHOR_KEY_DIGEST_NOT_ALLOWED"],
  ] as const;
  for (const [field, name, bytes, code] of hexChecks) {
    // A skip without its reason (a policy built in code) is refused, never a check not made.
    const rule = ruleOf<string | readonly string[]>(p[field], `maa.snp.${field}`);
    if (rule === null) continue;
    const value = hexClaim(push, claims, name, bytes);
    if (value === undefined) continue;
    if (field === "authorKeyDigests" && isAllZero(value)) {
      // The report's AUTHOR_KEY_DIGEST is zero when AUTHOR_KEY_EN is clear, and the token does not
      // carry AUTHOR_KEY_EN: a pinned list refuses it, as the snp section does, even one naming zero.
      push(
        name,
        code,
        "an author key's digest (authorKeyDigests is pinned)",
        "all zero (no author key: AUTHOR_KEY_EN clear)",
      );
    } else if (typeof rule === "string") checkPinned(push, rule, value, name, code);
    else checkAllowList(push, rule, value, name, code);
  }
  const guestSvn = numberClaim(push, claims, "x-ms-sevsnpvm-guestsvn", U32_MAX);
  if (guestSvn !== undefined && guestSvn < p.minimumGuestSvn) {
    push("x-ms-sevsnpvm-guestsvn", "SNP_GUEST_SVN_TOO_LOW", `>= ${p.minimumGuestSvn}`, String(guestSvn));
  }
}

/**
 * The TEEs `policy` has a section for, in words: what a TEE_NOT_ACCEPTED violation expected, so
 * the message says what the policy does accept (the schema requires at least one section).
 */
function acceptedTees(policy: AttestationPolicy): string {
  const sections: [unknown, string][] = [
    [policy.snp, "SEV-SNP"],
    [policy.tdx, "TDX"],
    [policy.azure, "an Azure CVM"],
    [policy.maa ?? null, "an MAA token"],
  ];
  return sections
    .filter(([section]) => section !== null)
    .map(([, name]) => name)
    .join(" or ");
}

/**
 * Appraises verified evidence against `policy`; see the module comment. Never throws on a violation.
 * `policy` is taken as parsed (parseAttestationPolicy): every caller here passes one that is, since
 * verifyAttestationDocument parses what its caller gives and `cloister verify-evidence` reads its
 * policy file through the parser; appraise is not part of the SDK. A policy built in code that
 * reaches it anyway is refused where it lacks a hardening field (ruleOf), as defence in depth.
 */
export function appraise(
  evidence: AppraisableEvidence,
  policy: AttestationPolicy,
  options: AppraisalOptions,
): AppraisalResult {
  const isSnp = VerifiedSnpReport.isVerified(evidence);
  const isAzure = VerifiedAzureEvidence.isVerified(evidence);
  const isMaa = VerifiedMaaToken.isVerified(evidence);
  if (!isSnp && !isAzure && !isMaa && !isVerifiedTdxQuote(evidence)) {
    throw new ConfigurationError(
      "APPRAISAL_UNVERIFIED_EVIDENCE",
      "appraise: expected evidence returned by verifySnpReport, verifyTdxQuote or verifyAzureEvidence, or a token returned by verifyMaaToken",
    );
  }
  if (!(options.now instanceof Date) || Number.isNaN(options.now.getTime())) {
    throw new ConfigurationError("APPRAISAL_BAD_OPTION", "appraise: now must be a valid Date");
  }
  if (options.expectedReportData !== null && options.expectedReportData.length !== 64) {
    throw new ConfigurationError(
      "APPRAISAL_BAD_OPTION",
      `appraise: expectedReportData must be 64 bytes or null, found ${options.expectedReportData.length} bytes`,
    );
  }
  if (isMaa && options.expectedReportData !== null) {
    // An MAA token's x-ms-sevsnpvm-reportdata is what the guest asked MAA to attest (on an Azure CVM
    // the HCL runtime data's hash), not a Cloister binding: refused rather than compared with one.
    throw new ConfigurationError(
      "APPRAISAL_BAD_OPTION",
      "appraise: expectedReportData expected null for an MAA token (no Cloister binding is carried in its claims)",
    );
  }
  const violations: AppraisalViolation[] = [];
  const push: Push = (field, code, expected, found) => violations.push({ field, expected, found, code });
  const tee = isMaa ? "maa" : isAzure ? evidence.kind : isSnp ? "snp" : "tdx";

  if (evidence.simulated && !policy.trustSimulator) {
    push("simulated", "SIMULATED_EVIDENCE_NOT_TRUSTED", "hardware evidence (trustSimulator: false)", "simulator root");
  }
  const skewMs = Math.abs(options.now.getTime() - evidence.verifiedAt.getTime());
  if (skewMs > policy.maximumVerificationSkewSeconds * 1000) {
    push(
      "verifiedAt",
      "VERIFICATION_TIME_SKEW",
      `within ${policy.maximumVerificationSkewSeconds} s of ${options.now.toISOString()}`,
      evidence.verifiedAt.toISOString(),
    );
  }
  if (options.expectedReportData !== null) {
    const [field, bound, expected, described] = isAzure
      ? [
          "vTPM extraData",
          evidence.tpm.extraData,
          azureQuoteQualifyingData(options.expectedReportData),
          "SHA-256(REPORT_DATA) ",
        ]
      : [
          "REPORT_DATA",
          isSnp ? evidence.report.reportData : (evidence as VerifiedTdxQuote).quote.body.reportData,
          options.expectedReportData,
          "",
        ];
    if (!bytesEqual(bound, expected)) {
      push(field, "REPORT_DATA_MISMATCH", `${described}${toHex(expected)}`, toHex(bound));
    }
  }
  if (isMaa) {
    // Absent and null alike: MAA tokens are accepted only under a policy section of their own.
    const maa = policy.maa ?? null;
    if (maa === null) {
      push(
        "policy.maa",
        "TEE_NOT_ACCEPTED",
        `a policy section for MAA tokens (this policy accepts ${acceptedTees(policy)})`,
        policy.maa === null ? "null" : "absent",
      );
    } else appraiseMaa(push, evidence, maa);
  } else if (isAzure) {
    if (policy.azure === null) push("tee", "TEE_NOT_ACCEPTED", `${acceptedTees(policy)} (policy.azure is null)`, tee);
    else appraiseAzure(push, evidence, policy.azure);
  } else if (isSnp) {
    if (policy.snp === null) push("tee", "TEE_NOT_ACCEPTED", `${acceptedTees(policy)} (policy.snp is null)`, "SEV-SNP");
    else appraiseSnp(push, evidence, policy.snp);
  } else {
    if (policy.tdx === null) push("tee", "TEE_NOT_ACCEPTED", `${acceptedTees(policy)} (policy.tdx is null)`, "TDX");
    else appraiseTdx(push, evidence as VerifiedTdxQuote, policy.tdx);
  }
  return Object.freeze({
    ok: violations.length === 0,
    simulated: evidence.simulated,
    tee,
    violations: Object.freeze(violations),
  });
}
