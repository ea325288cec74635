/**
 * An attestation policy that pins what one deployment's *verified* evidence shows (`cloister policy
 * init`): its launch measurement (SNP) or MRTD, RTMRs, XFAM and owner fields (TDX; not MRSEAM, which
 * changes with the cloud's TDX module updates: the TCB SVN minimum bounds it), its
 * TCB as the minimum, its VMPL, product and signing-key kind, and its host data / ID block when it
 * has them. Trust on first use, made explicit: the operator runs it against a deployment built
 * from an image they reviewed, then compares the pinned measurement with their build's before
 * shipping the policy. Every check the evidence gives no value for is a skip with its reason. The
 * hardening checks whose value one machine would set for the whole fleet (SNP: ABI and firmware
 * minimums, required guest POLICY and PLATFORM_INFO bits, mitigations; TDX: QE and PCE SVN
 * minimums, rejected advisories) are written as skips with their reasons and named in a note as not
 * checked; CXL_ALLOW is refused (`cxlAllowed: false`) and TIO_EN not (`tioAllowed: true`). The SNP
 * mitigation bits a version 5 report shows verified are named in a note, not pinned.
 *
 * Azure CVM evidence gets an `azure` section: the hardware report behind Microsoft's paravisor pinned
 * as above (it measures the paravisor, not the image), the vTPM PCRs the image's boot chain is
 * measured into (PCR 4, 7, 8, 9, 11, 12 and 13 as the quote shows them), Secure Boot required and
 * no serial console (a VM without the one or with the other only when the operator says so).
 *
 * Refuses evidence a policy should never accept (a debuggable guest, a TD on a TDX module that is
 * not Intel's) and simulated evidence unless asked for. Platform-neutral.
 */
import type { VerifiedAzureEvidence } from "./azure/verify.ts";
import { isAllZero, toHex } from "./bytes.ts";
import { ConfigurationError } from "./errors.ts";
import type { VerifiedDocumentEvidence } from "./evidence.ts";
import { type AttestationPolicy, AZURE_OS_PCRS, type AzurePolicy, type SnpPolicy, type TdxPolicy } from "./policy.ts";
import { INSECURE_SIMULATOR_EVIDENCE_FOUND } from "./sim/names.ts";
import type { VerifiedSnpReport } from "./snp/verify.ts";
import { isMigratableTd, type TdxTdReportBody } from "./tdx/parse.ts";
import { collateralEvaluation, type VerifiedTdxQuote } from "./tdx/verify.ts";

/**
 * How an operator checks the TCB status of a TDX deployment whose policy skips it (no collateral
 * served): `attest --evidence-out` saves the quote it verified (Azure: the TD quote of the
 * evidence), and `verify-evidence --tee tdx --collateral` checks it against Intel's collateral.
 * docs/platforms.md, "Command line", shows the same two commands.
 */
export const TCB_CHECK_NOTE = {
  guest:
    'check the platform\'s TCB: cloister attest --url URL --policy POLICY_FILE --api-key-file API_KEY_FILE --evidence-out DIR saves the verified quote as DIR/quote.bin, then cloister verify-evidence --tee tdx --quote DIR/quote.bin --collateral COLLATERAL_DIR (docs/platforms.md, "Command line")',
  azure:
    "check the platform's TCB: cloister attest --url URL --policy POLICY_FILE --api-key-file API_KEY_FILE --evidence-out DIR saves the verified evidence's TD quote as DIR/td-quote.bin, then cloister verify-evidence --tee tdx --quote DIR/td-quote.bin --collateral COLLATERAL_DIR (docs/platforms.md, \"Command line\")",
} as const;

export interface PolicyFromEvidence {
  readonly policy: AttestationPolicy;
  /** What the operator must check or know about what was pinned (printed by the CLI). */
  readonly notes: readonly string[];
}

const skip = (reason: string) => ({ skip: { reason } });

/**
 * SNP hardening fields as `policy init` writes them (and `cloister up`'s simulated policy, which runs
 * the checks a policy init policy makes): nothing pinned from one machine's evidence, where other
 * hosts of the fleet may be updated or configured otherwise; each skip says why. CXL_ALLOW is refused
 * (policy init refuses evidence that sets it), TIO_EN is not checked. New objects each call.
 */
export const snpHardeningNotPinned = () =>
  ({
    cxlAllowed: false,
    tioAllowed: true,
    minimumAbi: skip("not pinned: the guest POLICY's ABI minimum is a launch setting; minimumTcb bounds the firmware"),
    minimumFirmware: skip(
      "not pinned: one machine's firmware version would refuse hosts of the fleet not yet updated; minimumTcb bounds the firmware",
    ),
    requireGuestPolicy: skip(
      "not pinned: the guest POLICY bits are a launch setting; require those your deployment launches with",
    ),
    requirePlatformInfo: skip(
      "not pinned: one machine's platform configuration would refuse hosts of the fleet configured otherwise",
    ),
    requireMitigations: skip(
      "not pinned: hosts verify mitigations at run time (SNP_VERIFY_MITIGATION); AMD's security bulletins say which bit a fix needs",
    ),
  }) satisfies Partial<SnpPolicy>;

/** TDX hardening fields as `policy init` writes them (as snpHardeningNotPinned); new objects each call. */
export const tdxHardeningNotPinned = () =>
  ({
    minimumQeSvn: skip(
      "not pinned: one machine's quoting enclave would refuse hosts of the fleet not yet updated; acceptedTcbStatuses judges the QE when collateral is served",
    ),
    minimumPceSvn: skip(
      "not pinned: one machine's PCE would refuse hosts of the fleet not yet updated; acceptedTcbStatuses judges the platform when collateral is served",
    ),
    rejectedAdvisoryIds: skip(
      "not pinned: which advisories to refuse is the operator's decision from Intel's bulletins; acceptedTcbStatuses judges the platform when collateral is served",
    ),
  }) satisfies Partial<TdxPolicy>;

/** The note naming the hardening checks a policy init policy skips; `section`: their path ("snp", "azure.tdx"). */
function hardeningNote(section: string, tee: "snp" | "tdx"): string {
  const fields = Object.entries(tee === "snp" ? snpHardeningNotPinned() : tdxHardeningNotPinned())
    .filter(([, value]) => typeof value === "object")
    .map(([field]) => `${section}.${field}`)
    .join(", ");
  return tee === "snp"
    ? `not checked (skipped in the policy, each with its reason): ${fields}; ${section}.tioAllowed is true (PLATFORM_INFO.TIO_EN not refused): set them from your fleet's firmware and launch configuration to check them`
    : `not checked (skipped in the policy, each with its reason): ${fields}: set them from your fleet's quoting enclave, PCE and Intel's advisories to check them`;
}

function refuse(code: string, message: string): never {
  throw new ConfigurationError(code, message);
}

export interface PolicyFromEvidenceOptions {
  readonly allowSimulator: boolean;
  readonly allowMigrationAgent?: boolean;
  /** TDX: write a policy that skips the TCB status when the deployment served no collateral. */
  readonly allowNoCollateral?: boolean;
  /** Azure: accept a VM without Secure Boot. */
  readonly allowNoSecureBoot?: boolean;
  /** Azure: accept a VM with a serial console. */
  readonly allowConsole?: boolean;
}

/**
 * The refusal of simulated evidence without --allow-simulator (POLICY_INIT_SIMULATED), also thrown
 * by `cloister policy init` when such evidence fails to verify under the pinned roots (`cause`).
 */
export function simulatedEvidenceRefusal(cause?: unknown): ConfigurationError {
  return new ConfigurationError(
    "POLICY_INIT_SIMULATED",
    `${INSECURE_SIMULATOR_EVIDENCE_FOUND}; this deployment runs on the simulator: pass --allow-simulator to write ` +
      "a policy that trusts it for local development, or run policy init against a deployment on SEV-SNP or TDX hardware",
    cause === undefined ? undefined : { cause },
  );
}

export function attestationPolicyFromEvidence(
  verified: VerifiedDocumentEvidence,
  options: PolicyFromEvidenceOptions,
): PolicyFromEvidence {
  if (verified.simulated && !options.allowSimulator) throw simulatedEvidenceRefusal();
  const notes: string[] = [];
  if (verified.simulated) notes.push("INSECURE: the policy trusts the simulator; use it for development only");
  let snp: SnpPolicy | null = null;
  let tdx: TdxPolicy | null = null;
  let azure: AzurePolicy | null = null;
  switch (verified.type) {
    case "sev-snp":
      snp = snpPolicy(verified.evidence as VerifiedSnpReport, notes, options.allowMigrationAgent === true, "guest");
      break;
    case "tdx":
      tdx = tdxPolicy(verified.evidence as VerifiedTdxQuote, notes, options.allowNoCollateral === true, "guest");
      break;
    case "azure-snp":
    case "azure-tdx":
      azure = azurePolicy(verified.evidence as VerifiedAzureEvidence, notes, options);
      break;
    default:
      refuse("POLICY_INIT_UNSUPPORTED", `${String(verified.type)} evidence: no policy can be made from it`);
  }
  return {
    policy: {
      version: 1,
      trustSimulator: verified.simulated,
      maximumVerificationSkewSeconds: 300,
      snp,
      tdx,
      azure,
    },
    notes,
  };
}

/**
 * The vTPM PCRs pinned: the image's boot chain (4 boot loader and kernel, 8-9 GRUB's commands and
 * files, 11 a unified kernel image), 7 (the Secure Boot policy) and 12-13 (what systemd-stub adds:
 * a command-line override, credentials and device trees from the ESP, system extensions), none of
 * which Secure Boot alone vouches for. Not the firmware's (0-3, 5, 6: the paravisor's pinned report
 * covers its firmware, and they change with Microsoft's updates) nor IMA's (10: changes at run time).
 */
const AZURE_PINNED_PCRS = ["4", "7", "8", "9", "11", "12", "13"] as const;

function azurePolicy(
  verified: VerifiedAzureEvidence,
  notes: string[],
  options: PolicyFromEvidenceOptions,
): AzurePolicy {
  const pcrs: Record<string, string[]> = {};
  for (const index of AZURE_PINNED_PCRS) {
    const value = verified.tpm.pcrs.get(Number(index));
    if (value !== undefined) pcrs[index] = [toHex(value)];
  }
  // An OS PCR that is all zero (or all ones) had nothing measured into it: it pins no kernel.
  const measured = (hex: string) => !/^(?:0+|f+)$/.test(hex);
  if (!AZURE_OS_PCRS.some((index) => pcrs[index]?.some(measured))) {
    refuse(
      "POLICY_INIT_AZURE_PCRS",
      `the vTPM quote has nothing measured into PCR ${AZURE_OS_PCRS.join(", ")} (none quoted, or only unused values), where the guest OS is measured: a policy without them would accept any image on this platform`,
    );
  }
  notes.push(
    `PCR ${Object.keys(pcrs).join(", ")} pinned as this VM's vTPM reports them: they measure your image's boot chain (PCR 7 the Secure Boot policy, 12-13 systemd-stub's additions); check them against a boot of your image, and run policy init again after changing the image or the paravisor`,
  );
  notes.push(
    "the PCRs cover the kernel, initrd and command line, not the root file system: unless the command line carries its dm-verity root hash (or a UKI contains it), another root file system, and so other enclave code, passes this policy (docs/platforms.md)",
  );
  const config = verified.runtimeData.vmConfiguration;
  const secureBoot = config["secure-boot"] === true;
  if (!secureBoot && options.allowNoSecureBoot !== true) {
    refuse(
      "POLICY_INIT_AZURE_SECURE_BOOT",
      `the VM runs without Secure Boot (vm-configuration secure-boot: ${JSON.stringify(config["secure-boot"] ?? null)}): enable it on the VM, or pass --allow-no-secure-boot to write a policy that accepts that`,
    );
  }
  if (!secureBoot) notes.push("the policy accepts a VM without Secure Boot (--allow-no-secure-boot)");
  // A serial console gives the subscription owner, who is not trusted, a login prompt, SysRq and an
  // emergency shell on the guest: refused unless the operator says the deployment needs one.
  const serialConsole = config["console-enabled"] !== false;
  if (serialConsole && options.allowConsole !== true) {
    refuse(
      "POLICY_INIT_AZURE_CONSOLE",
      `the VM has a serial console (vm-configuration console-enabled: ${JSON.stringify(config["console-enabled"] ?? null)}), which gives the subscription owner a shell on the guest: disable it on the VM (Azure documents no way to set console-enabled yet; see docs/platforms.md, "Creating the VM"), or pass --allow-console to write a policy that accepts that`,
    );
  }
  if (serialConsole) notes.push("the policy accepts a VM with a serial console (--allow-console)");
  return {
    snp:
      verified.snp === null
        ? null
        : snpPolicy(verified.snp, notes, options.allowMigrationAgent === true, "azure-paravisor"),
    tdx:
      verified.tdx === null
        ? null
        : tdxPolicy(verified.tdx, notes, options.allowNoCollateral === true, "azure-paravisor"),
    pcrs,
    secureBootRequired: secureBoot,
    consoleAllowed: serialConsole,
  };
}

/**
 * MRSERVICETD as the evidence shows it, zero (none bound) included: a migration TD bound later could
 * export the TD. A quote without the field (the TDX 1.0 body layout) pins zero when the TD is not
 * migratable (appraise.ts); a migratable one gets a skip, since the field is needed to know.
 */
function serviceTd(body: TdxTdReportBody, notes: string[]): TdxPolicy["mrservicetd"] {
  if (body.mrServiceTd !== null) return toHex(body.mrServiceTd);
  if (!isMigratableTd(body)) return toHex(new Uint8Array(48));
  notes.push(
    "MRSERVICETD not pinned: this quote's TDX 1.0 body layout does not carry it and the TD is MIGRATABLE, so a migration TD may be bound; with v5 quotes in the TDX 1.5 layout, pin it",
  );
  return skip("the quote does not carry MRSERVICETD (TDX 1.0 body layout) and the TD is MIGRATABLE");
}

function tcbText(tcb: VerifiedSnpReport["reportedTcb"]): string {
  return `bootloader ${tcb.bootloader}, tee ${tcb.tee}, snp ${tcb.snp}, microcode ${tcb.microcode}${tcb.fmc === null ? "" : `, fmc ${tcb.fmc}`}`;
}

/** Whose report it is: the guest's own, or (Azure) Microsoft's paravisor's, which does not measure the image. */
type ReportOf = "guest" | "azure-paravisor";

function snpPolicy(
  verified: VerifiedSnpReport,
  notes: string[],
  allowMigrationAgent: boolean,
  of: ReportOf,
): SnpPolicy {
  const r = verified.report;
  if (r.policy.debugAllowed) {
    refuse(
      "POLICY_INIT_DEBUG",
      "the evidence has POLICY.DEBUG set: the host can read this guest's memory; not pinning it",
    );
  }
  // The host sets the guest policy at launch and the launch measurement does not cover it: a policy
  // made from evidence must not accept a migration agent because the host asked for one.
  if (r.policy.migrateMA && !allowMigrationAgent) {
    refuse(
      "POLICY_INIT_MIGRATION_AGENT",
      "the evidence has POLICY.MIGRATE_MA set (the host chose it at launch): pass --allow-migration-agent if your deployment really uses one",
    );
  }
  // The policy written refuses CXL_ALLOW (cxlAllowed: false): no policy is written that refuses its own evidence.
  if (r.policy.cxlAllowed) {
    refuse(
      "POLICY_INIT_CXL",
      "the evidence has POLICY.CXL_ALLOW set (the guest may use CXL-attached memory): no policy is written for it; if your deployment really uses CXL, write the policy by hand with cxlAllowed: true",
    );
  }
  if (r.policy.migrateMA) notes.push("POLICY.MIGRATE_MA is set in this evidence: the policy accepts a migration agent");
  const tcb = verified.reportedTcb;
  // REPORTED_TCB is the host's choice (it may report an older TCB than the firmware runs): the
  // minimum pinned from it is no better than that machine's host made it.
  const committed = verified.committedTcb;
  const below = (a: typeof tcb, b: typeof tcb) =>
    a.bootloader < b.bootloader ||
    a.tee < b.tee ||
    a.snp < b.snp ||
    a.microcode < b.microcode ||
    (a.fmc ?? 0) < (b.fmc ?? 0);
  // The minimum applies to LAUNCH_TCB too (appraise.ts): a guest launched under older firmware than
  // it reports would be refused by the very policy written from it.
  const launch = verified.launchTcb;
  if (below(launch, tcb)) {
    refuse(
      "POLICY_INIT_LAUNCH_TCB",
      `the guest was launched under older firmware (LAUNCH_TCB ${tcbText(launch)}) than it reports (REPORTED_TCB ${tcbText(tcb)}): relaunch it on the current firmware, then run policy init again`,
    );
  }
  // And to COMMITTED_TCB: provisional firmware not committed below what the guest reports would be
  // refused by the policy written from it (the platform can roll back to the committed firmware).
  if (below(committed, tcb)) {
    refuse(
      "POLICY_INIT_COMMITTED_TCB",
      `the platform runs provisional firmware: its COMMITTED_TCB (${tcbText(committed)}) is older than the TCB it reports (REPORTED_TCB ${tcbText(tcb)}), and it can be rolled back to it: commit the firmware on the host (SNP_COMMIT), then run policy init again`,
    );
  }
  if (below(tcb, committed) || below(tcb, verified.currentTcb)) {
    notes.push(
      `REPORTED_TCB is below the TCB this machine runs (committed: ${tcbText(committed)}): the host reports an older TCB; raise minimumTcb to AMD's current TCB for your product`,
    );
  }
  notes.push(
    of === "guest"
      ? `MEASUREMENT ${toHex(r.measurement)} pins the launch image; check it against your build, and that on this platform it covers the kernel and root file system (docs/deploy.md, step 1)`
      : `hcl MEASUREMENT ${toHex(r.measurement)} pins Microsoft's paravisor (not your image): a paravisor update changes it, and the policy then needs the new value`,
  );
  notes.push(
    `minimum TCB pinned at this machine's REPORTED_TCB (${tcbText(tcb)}): hosts with older firmware are refused`,
  );
  notes.push(hardeningNote(of === "guest" ? "snp" : "azure.snp", "snp"));
  const mitigations = verifiedMitigations(r);
  if (mitigations !== null) notes.push(mitigations);
  return {
    debugAllowed: false,
    migrationAgentAllowed: r.policy.migrateMA,
    smtAllowed: r.policy.smtAllowed || r.platformInfo.smtEnabled,
    allowedVmpls: [r.vmpl],
    minimumTcb: {
      bootloader: tcb.bootloader,
      tee: tcb.tee,
      snp: tcb.snp,
      microcode: tcb.microcode,
      fmc: tcb.fmc ?? 0,
    },
    measurements: [toHex(r.measurement)],
    // Pinned even when zero (unused): the host chooses it at launch, and a deployment that starts to
    // use it gets a new policy rather than accepting whatever a host puts there.
    hostData: toHex(r.hostData),
    idKeyDigests: isAllZero(r.idKeyDigest) ? skip("no ID block in this deployment's evidence") : [toHex(r.idKeyDigest)],
    authorKeyDigests: r.authorKeyEn
      ? [toHex(r.authorKeyDigest)]
      : skip("no author key in this deployment's evidence (AUTHOR_KEY_EN clear)"),
    minimumGuestSvn: r.guestSvn,
    allowedProducts: [verified.product],
    signingKeys: [verified.signingKey === "VCEK" ? "vcek" : "vlek"],
    ...snpHardeningNotPinned(),
  };
}

/**
 * A note naming the mitigation bits set in both of a version 5 report's vectors, or null when none
 * is. They are not pinned (unlike the TCB): the host verifies a mitigation at run time
 * (SNP_VERIFY_MITIGATION), by AMD's bug-specific procedure, so another host of the same fleet may not
 * have run it yet; the operator decides from AMD's bulletins.
 */
function verifiedMitigations(r: VerifiedSnpReport["report"]): string | null {
  if (r.launchMitVector === null || r.currentMitVector === null) return null;
  const both = r.launchMitVector & r.currentMitVector;
  const bits = Array.from({ length: 64 }, (_, n) => n).filter((n) => ((both >> BigInt(n)) & 1n) === 1n);
  if (bits.length === 0) return null;
  return `mitigation bits ${bits.join(", ")} are verified in this report (LAUNCH_MIT_VECTOR 0x${r.launchMitVector.toString(16)}, CURRENT_MIT_VECTOR 0x${r.currentMitVector.toString(16)}): set "requireMitigations": [${bits.join(", ")}] in place of its skip to refuse hosts that have not verified them (not pinned: hosts verify mitigations at run time, SNP_VERIFY_MITIGATION; AMD's security bulletins say which bit a fix needs)`;
}

function tdxPolicy(verified: VerifiedTdxQuote, notes: string[], allowNoCollateral: boolean, of: ReportOf): TdxPolicy {
  const body = verified.quote.body;
  if (verified.debug) {
    refuse(
      "POLICY_INIT_DEBUG",
      "the evidence has TDATTRIBUTES.DEBUG set: the host can read this TD's memory; not pinning it",
    );
  }
  // Appraisal refuses a module that is not Intel's production module whatever the policy
  // (TDX_MODULE_NOT_INTEL): a policy pinned from it would refuse its own deployment.
  if (!isAllZero(body.mrSignerSeam) || !isAllZero(body.seamAttributes)) {
    const field = isAllZero(body.mrSignerSeam) ? "SEAMATTRIBUTES" : "MRSIGNERSEAM";
    const found = toHex(field === "MRSIGNERSEAM" ? body.mrSignerSeam : body.seamAttributes);
    refuse(
      "POLICY_INIT_TDX_MODULE",
      `${field} is ${found}, expected all zero: the TD runs on a TDX module that is not Intel's production module, which can report anything about the TD and which appraisal always refuses (TDX_MODULE_NOT_INTEL); not pinning it`,
    );
  }
  notes.push(
    of === "guest"
      ? `MRTD ${toHex(body.mrTd)} and RTMR0-3 pin the TD's firmware, kernel, command line and what the boot measured; check them against your build`
      : `hcl MRTD ${toHex(body.mrTd)} and RTMR0-3 pin Microsoft's paravisor TD (not your image): a paravisor update changes them, and the policy then needs the new values`,
  );
  // With the collateral the enclave serves (attestation/collateral.ts), the converged TCB status of
  // platform, TDX module and QE was checked, and the PCK chain's revocation: require it from now on.
  const status = verified.tcbStatus;
  const evaluation = collateralEvaluation(verified);
  if (status === "Revoked" || status === "NotSupported") {
    refuse(
      "POLICY_INIT_TCB_REJECTED",
      `the platform's TCB status is ${status} (Intel's TCB info): a policy should not accept it; move the deployment to an updated platform`,
    );
  }
  if (status === null && !allowNoCollateral) {
    // The host passes the collateral on and can withhold it: a policy pinned without it would never
    // check the TCB status or revocation of this deployment, so that takes the operator's word.
    refuse(
      "POLICY_INIT_NO_COLLATERAL",
      of === "guest"
        ? "the deployment served no TCB collateral with its document (its enclave needs --tdx-collateral DIR, or the host withheld it): pass --allow-no-collateral to write a policy that does not check the TCB status"
        : "Azure TDX evidence comes without TCB collateral (not served for Azure): pass --allow-no-collateral to write a policy that does not check the TCB status",
    );
  }
  if (status === null) {
    notes.push(
      of === "guest"
        ? `acceptedTcbStatuses is skipped: the deployment serves no TCB collateral (start its enclave with --tdx-collateral DIR); ${TCB_CHECK_NOTE.guest}`
        : `acceptedTcbStatuses is skipped: Azure TDX evidence comes without TCB collateral; ${TCB_CHECK_NOTE.azure}`,
    );
  } else {
    if (status !== "UpToDate") {
      notes.push(
        `the platform's TCB status is ${status}: the policy accepts UpToDate and ${status}; once the platform is updated, remove ${status}`,
      );
    }
    notes.push(
      `TCB status ${status} by Intel's collateral (TCB evaluation ${evaluation}) is required, and that evaluation is the oldest accepted (collateral of an older one is refused): check it is Intel's current evaluation, since a host could have passed on an older one, and raise minimumTcbEvaluationDataNumber after each Intel TCB recovery`,
    );
  }
  notes.push(hardeningNote(of === "guest" ? "tdx" : "azure.tdx", "tdx"));
  notes.push(
    `TDATTRIBUTES ${toHex(body.tdAttributes)} pinned exactly: the host chooses them at launch (SEPT_VE_DISABLE, MIGRATABLE, PKS, PERFMON); check they are what your deployment expects`,
  );
  return {
    debugAllowed: false,
    xfam: { allowed: [toHex(body.xfam)] },
    tdAttributes: { allowed: [toHex(body.tdAttributes)] },
    // MRSEAM identifies the TDX module build of the host the evidence came from and changes with the
    // cloud's module updates; the module's security version is TEE_TCB_SVN, pinned as a minimum.
    mrseam: skip("MRSEAM changes with TDX module updates; minimumTeeTcbSvn bounds the module's version instead"),
    mrtd: [toHex(body.mrTd)],
    rtmrs: [toHex(body.rtmrs[0]), toHex(body.rtmrs[1]), toHex(body.rtmrs[2]), toHex(body.rtmrs[3])],
    mrconfigid: toHex(body.mrConfigId),
    mrowner: toHex(body.mrOwner),
    mrownerconfig: toHex(body.mrOwnerConfig),
    mrservicetd: serviceTd(body, notes),
    // With the collateral's evaluation as the oldest accepted: older collateral that is still within
    // its validity (a host replaying it after Intel's next TCB recovery) no longer passes.
    acceptedTcbStatuses:
      status === null || evaluation === null
        ? skip("the deployment served no TCB collateral")
        : {
            statuses: status === "UpToDate" ? ["UpToDate"] : ["UpToDate", status],
            minimumTcbEvaluationDataNumber: evaluation,
          },
    minimumTeeTcbSvn: toHex(body.teeTcbSvn),
    ...tdxHardeningNotPinned(),
  };
}
