/**
 * Attestation policy: what a relying party (client, key broker, host pool) accepts from verified
 * TEE evidence, given as data (JSON) and checked by attestation/appraise.ts.
 *
 * It fails closed. Every field is required and unknown fields are rejected; there are no defaults.
 * Turning a check off is an explicit value with a reason — `{ "skip": { "reason": "…" } }` — never an
 * absent field, so an auditor reading a policy sees every check that is not made and why; a boolean
 * is written `true` or `false`. That holds for the later additions too (the SNP section's
 * guest-policy and platform checks from go-sev-guest: `cxlAllowed`, `minimumAbi`, `minimumFirmware`,
 * `requireGuestPolicy`, `requirePlatformInfo`, `tioAllowed`, `requireMitigations`; the TDX
 * section's `minimumQeSvn`, `minimumPceSvn`, `rejectedAdvisoryIds`): a policy written before they
 * were required is refused, naming each one absent, its forms and the value that keeps its verdict
 * (a skip; `cxlAllowed: false`; `tioAllowed: true`). A TEE whose section is `null` is not accepted
 * at all. Hex values are lower- or upper-case and are normalised to lower case.
 *
 * Example (SNP only, simulator trusted — never do this in production):
 *   { "version": 1, "trustSimulator": true, "maximumVerificationSkewSeconds": 300,
 *     "snp": { "debugAllowed": false, "migrationAgentAllowed": false, "smtAllowed": true,
 *              "allowedVmpls": [0], "minimumTcb": { "bootloader": 0, "tee": 0, "snp": 0, "microcode": 0, "fmc": 0 },
 *              "measurements": ["<96 hex>"], "hostData": { "skip": { "reason": "host data unused" } },
 *              "idKeyDigests": { "skip": { "reason": "no ID block" } },
 *              "authorKeyDigests": { "skip": { "reason": "no ID block" } },
 *              "minimumGuestSvn": 0, "allowedProducts": ["Milan", "Genoa"], "signingKeys": ["vcek"],
 *              "cxlAllowed": false, "tioAllowed": true,
 *              "minimumAbi": { "skip": { "reason": "no ABI minimum" } },
 *              "minimumFirmware": { "skip": { "reason": "minimumTcb bounds the firmware" } },
 *              "requireGuestPolicy": { "skip": { "reason": "no guest POLICY bit required" } },
 *              "requirePlatformInfo": { "skip": { "reason": "no PLATFORM_INFO bit required" } },
 *              "requireMitigations": { "skip": { "reason": "no mitigation required" } } },
 *     "tdx": null, "azure": null }
 *
 * An `azure` section has snp/tdx sections of the same shape for the hardware report behind the
 * paravisor, plus `pcrs` (e.g. { "4": ["<64 hex>"], "7": ["<64 hex>"], "11": ["<64 hex>"] }),
 * `secureBootRequired` and `consoleAllowed`.
 *
 * A `maa` section accepts Microsoft Azure Attestation tokens by their claims: `issuers`,
 * `attestationTypes` (["sevsnpvm"]) and an `snp` part for the x-ms-sevsnpvm-* claims (MaaPolicySchema).
 * It is the one member that may be absent: absent or null, no MAA token is accepted. Its absence
 * skips no check but refuses a kind of evidence, so policies written before it keep their meaning;
 * within it every field is required, as everywhere else.
 */
import { z } from "zod";
import {
  describeUnknownFields,
  expectedOneOf,
  explainIssue,
  fieldPaths,
  fittingAlternative,
} from "../manifests/issues.ts";
import { ConfigurationError } from "./errors.ts";
import { parseJsonText } from "./json-text.ts";
import { TCB_STATUSES } from "./tdx/collateral.ts";

/** An explicit, justified decision not to make one check. */
export const SkipSchema = z.strictObject({
  skip: z.strictObject({ reason: z.string().trim().min(1, "expected a non-empty reason (a skipped check needs one)") }),
});
/** `T` as a parsed policy is: deep-frozen (registeredParser), so every member and element readonly. */
export type DeepReadonly<T> = T extends string | number | boolean | bigint | null | undefined
  ? T
  : T extends readonly (infer E)[]
    ? readonly DeepReadonly<E>[]
    : { readonly [K in keyof T]: DeepReadonly<T[K]> };
export type Skip = DeepReadonly<z.infer<typeof SkipSchema>>;
/** The skip form, in the words of a union's message (expectedOneOf). */
export const SKIP_FORM = 'a skip { "skip": { "reason": "…" } }';

/** `bytes` bytes as hex digits in either case, lower-cased (policy files, client and attestation alike). */
export function hexOf(bytes: number) {
  return z
    .string()
    .regex(new RegExp(`^[0-9a-fA-F]{${2 * bytes}}$`), `expected ${bytes} bytes as ${2 * bytes} hex digits`)
    .transform((s) => s.toLowerCase());
}

const u8 = z.int().min(0).max(255);
const hex48 = hexOf(48);
const HEX48_FORM = "48 bytes as 96 hex digits";
const allowList48 = z.union([z.array(hex48).min(1, "expected an allow-list of at least one entry"), SkipSchema], {
  error: expectedOneOf([`an allow-list [${HEX48_FORM}, …]`, SKIP_FORM]),
});
const pinned48 = z.union([hex48, SkipSchema], { error: expectedOneOf([HEX48_FORM, SKIP_FORM]) });
/** RTMRs' forms, in words: 4 values, or sets of them. */
const RTMRS_FORMS = `expected 4 values, each ${HEX48_FORM} or ${SKIP_FORM}, or { "allowed": [[4 such values], …] }`;
/** XFAM's and TDATTRIBUTES' forms, in words. */
const BITS_RULE_FORMS = [
  'an allow-list { "allowed": [8 bytes as 16 hex digits, …] }',
  'a rule { "mask", "value" } (8 bytes as 16 hex digits each)',
  SKIP_FORM,
] as const;

export const SNP_POLICY_PRODUCTS = ["Milan", "Genoa", "Turin"] as const;
/** Guest POLICY bits a policy can require (`requireGuestPolicy`), by their names in AMD's spec. */
export const SNP_REQUIRABLE_GUEST_POLICY = [
  "SINGLE_SOCKET",
  "MEM_AES_256_XTS",
  "RAPL_DIS",
  "CIPHERTEXT_HIDING",
  "PAGE_SWAP_DISABLE",
] as const;
/** PLATFORM_INFO bits a policy can require (`requirePlatformInfo`), by their names in AMD's spec. */
export const SNP_REQUIRABLE_PLATFORM_INFO = [
  "TSME_EN",
  "ECC_EN",
  "RAPL_DIS",
  "CIPHERTEXT_HIDING_EN",
  "ALIAS_CHECK_COMPLETE",
] as const;

/** A boolean's form, in words: said when it is absent or of another type. */
const BOOLEAN_FORM = "expected true or false";

/**
 * The non-skip form of each field added after policies were first written, in words: what a
 * missing field's message says is expected (with the skip form), and a union's own message.
 */
const FORMS = {
  minimumAbi: '{ "major", "minor" } (0..255 each)',
  minimumFirmware: '{ "major", "minor", "build" } (0..255 each)',
  requireGuestPolicy: `a list of guest POLICY bits [${SNP_REQUIRABLE_GUEST_POLICY.join(", ")}]`,
  requirePlatformInfo: `a list of PLATFORM_INFO bits [${SNP_REQUIRABLE_PLATFORM_INFO.join(", ")}]`,
  requireMitigations: "a list of mitigation bit numbers (0..63)",
  minimumQeSvn: "a whole number 0..65535",
  minimumPceSvn: "a whole number 0..65535",
  rejectedAdvisoryIds: 'a list of advisory IDs such as ["INTEL-SA-00837"]',
} as const;

/** `schema`, or the skip form: a check a policy makes, or turns off explicitly with a reason. */
function skippable<T extends z.ZodType>(schema: T, form: string) {
  return z.union([schema, SkipSchema], { error: expectedOneOf([form, SKIP_FORM]) });
}

export const SnpPolicySchema = z.strictObject({
  /** Accept guests whose POLICY.DEBUG bit (19) is set (the host can read guest memory). */
  debugAllowed: z.boolean(),
  /** Accept guests whose POLICY.MIGRATE_MA bit (18) is set. */
  migrationAgentAllowed: z.boolean(),
  /** Accept guests whose POLICY.SMT bit (16) or PLATFORM_INFO.SMT_EN is set. */
  smtAllowed: z.boolean(),
  /** Accepted VMPL values (0 = the most privileged level, where the enclave runs without a paravisor). */
  allowedVmpls: z.array(z.int().min(0).max(3)).min(1),
  /**
   * Minimum TCB components of REPORTED_TCB (the TCB the VCEK/VLEK certifies), of LAUNCH_TCB (the
   * firmware the guest was launched under) and of COMMITTED_TCB (the firmware the platform can be
   * rolled back to: provisional firmware whose committed TCB is below the minimum is refused).
   * `fmc` applies to Turin only.
   */
  minimumTcb: z.strictObject({ bootloader: u8, tee: u8, snp: u8, microcode: u8, fmc: u8 }),
  /** Allowed launch MEASUREMENT values (48 bytes each). */
  measurements: allowList48,
  /** Expected HOST_DATA (32 bytes). */
  hostData: z.union([hexOf(32), SkipSchema], { error: expectedOneOf(["32 bytes as 64 hex digits", SKIP_FORM]) }),
  /** Allowed ID_KEY_DIGEST values (ID block signer). */
  idKeyDigests: allowList48,
  /** Allowed AUTHOR_KEY_DIGEST values; when pinned, AUTHOR_KEY_EN must be set too. */
  authorKeyDigests: allowList48,
  /** Minimum GUEST_SVN. */
  minimumGuestSvn: z.int().min(0).max(0xffff_ffff),
  /** Accepted product lines (from the endorsement certificate). */
  allowedProducts: z.array(z.enum(SNP_POLICY_PRODUCTS)).min(1),
  /** Accepted endorsement key kinds: "vcek" (per chip) and/or "vlek" (per cloud provider). */
  signingKeys: z.array(z.enum(["vcek", "vlek"])).min(1),
  // The fields below came later (go-sev-guest's guest-policy and platform checks); required like the
  // rest: a check not wanted is `false`/`true` or a skip, never an absent field.
  /**
   * Accept guests whose POLICY.CXL_ALLOW bit (21) is set (CXL-attached memory may be used). No known
   * SNP deployment sets the bit; false is go-sev-guest's default.
   */
  cxlAllowed: z.boolean({ error: BOOLEAN_FORM }),
  /**
   * Minimum guest POLICY.ABI_MAJOR.ABI_MINOR: the oldest firmware ABI the guest let itself launch on;
   * or a skip.
   */
  minimumAbi: skippable(z.strictObject({ major: u8, minor: u8 }), FORMS.minimumAbi),
  /**
   * Minimum SEV firmware version, compared as (major, minor, build) with CURRENT_MAJOR/MINOR/BUILD and
   * with COMMITTED_MAJOR/MINOR/BUILD (the firmware a provisional update can be rolled back to); or a skip.
   */
  minimumFirmware: skippable(z.strictObject({ major: u8, minor: u8, build: u8 }), FORMS.minimumFirmware),
  /** Guest POLICY bits that must be set, or a skip. */
  requireGuestPolicy: skippable(z.array(z.enum(SNP_REQUIRABLE_GUEST_POLICY)).min(1), FORMS.requireGuestPolicy),
  /** PLATFORM_INFO bits that must be set, or a skip. */
  requirePlatformInfo: skippable(z.array(z.enum(SNP_REQUIRABLE_PLATFORM_INFO)).min(1), FORMS.requirePlatformInfo),
  /**
   * Accept platforms with PLATFORM_INFO.TIO_EN (bit 7, SEV-TIO: trusted devices) set; true does not
   * check the bit.
   */
  tioAllowed: z.boolean({ error: BOOLEAN_FORM }),
  /**
   * Mitigation bits (0..63, as AMD's security bulletins number them) that must be set in both
   * LAUNCH_MIT_VECTOR (verified when the guest was launched) and CURRENT_MIT_VECTOR (verified on the
   * firmware running now): the host verifies a firmware mitigation with SNP_VERIFY_MITIGATION, e.g.
   * after a live firmware update, and the firmware reports it there. Version 5 reports carry them;
   * an older report meets no requirement. Or a skip.
   */
  requireMitigations: skippable(z.array(z.int().min(0).max(63)).min(1), FORMS.requireMitigations),
});
export type SnpPolicy = DeepReadonly<z.infer<typeof SnpPolicySchema>>;

/** TCB statuses a TDX policy may accept (Intel's, plus NotSupported from the TCB evaluation). */
export const TDX_POLICY_TCB_STATUSES = [...TCB_STATUSES, "NotSupported"] as const;

/** 8 bytes of TDATTRIBUTES with bit 0 (DEBUG) clear: `debugAllowed` alone decides DEBUG. */
const attributes8 = hexOf(8).refine((hex) => (Number.parseInt(hex.slice(0, 2), 16) & 1) === 0, {
  message: "expected DEBUG (bit 0) clear: debugAllowed decides it",
});

export const TdxPolicySchema = z.strictObject({
  /** Accept TDs whose TDATTRIBUTES.DEBUG bit (0) is set. */
  debugAllowed: z.boolean(),
  /**
   * XFAM: either an allow-list of exact values, or `{ mask, value }` requiring (XFAM & mask) == value
   * (8 bytes each, as they appear in the quote), or an explicit skip.
   */
  xfam: z.union(
    [
      z.strictObject({ allowed: z.array(hexOf(8)).min(1) }),
      z.strictObject({ mask: hexOf(8), value: hexOf(8) }),
      SkipSchema,
    ],
    { error: expectedOneOf(BITS_RULE_FORMS) },
  ),
  /**
   * TDATTRIBUTES (8 bytes as in the quote): an allow-list of exact values, `{ mask, value }`
   * requiring (TDATTRIBUTES & mask) == value, or an explicit skip. The DEBUG bit (bit 0) is left
   * out of this comparison (taken as 0): `debugAllowed` decides it. This covers the rest the host
   * chooses at launch (e.g. SEPT_VE_DISABLE, PKS, PERFMON, MIGRATABLE).
   */
  tdAttributes: z.union(
    [
      z.strictObject({ allowed: z.array(attributes8).min(1) }),
      z.strictObject({ mask: attributes8, value: attributes8 }),
      SkipSchema,
    ],
    { error: expectedOneOf(BITS_RULE_FORMS) },
  ),
  /** Allowed MRSEAM values (TDX module). */
  mrseam: allowList48,
  /** Allowed MRTD values (TD build-time measurement). */
  mrtd: allowList48,
  /**
   * RTMR0..RTMR3, each pinned or skipped; or `{ allowed: [[r0, r1, r2, r3], …] }`, several such sets
   * (e.g. the old and the new image during a rolling upgrade), of which the quote must match one
   * whole set — never RTMR1 of one image with RTMR2 of another.
   */
  rtmrs: z.union(
    [
      z.tuple([pinned48, pinned48, pinned48, pinned48]),
      z.strictObject({ allowed: z.array(z.tuple([pinned48, pinned48, pinned48, pinned48])).min(1) }),
    ],
    { error: RTMRS_FORMS },
  ),
  /** Expected MRCONFIGID. */
  mrconfigid: pinned48,
  /** Expected MROWNER. */
  mrowner: pinned48,
  /** Expected MROWNERCONFIG (owner-defined configuration, set by the host at launch like MRCONFIGID). */
  mrownerconfig: pinned48,
  /**
   * Expected MRSERVICETD (TDX 1.5): the measurement of the service TDs bound to this TD, e.g. a
   * migration TD, which can export the TD's memory. All zero: none is bound. A quote in the TDX 1.0
   * body layout (every v4 quote) does not carry it: such a quote meets a zero pin only while
   * TDATTRIBUTES.MIGRATABLE is clear (a migration TD can be bound only to a migratable TD), and
   * never a pinned service TD.
   */
  mrservicetd: pinned48,
  /**
   * Accepted converged TCB statuses; evidence without TCB-info collateral has no status and fails.
   * The object form also sets the oldest Intel TCB evaluation (`tcbEvaluationDataNumber` of the TCB
   * info and QE identity) accepted: collateral is signed for about 30 days, so without it a host can
   * keep serving an older issue that still rates the platform UpToDate after Intel's TCB recovery.
   */
  acceptedTcbStatuses: z.union(
    [
      z.array(z.enum(TDX_POLICY_TCB_STATUSES)).min(1),
      z.strictObject({
        statuses: z.array(z.enum(TDX_POLICY_TCB_STATUSES)).min(1),
        minimumTcbEvaluationDataNumber: z.int().min(0).max(0xffff_ffff),
      }),
      SkipSchema,
    ],
    {
      error: expectedOneOf(["a list of TCB statuses", '{ "statuses", "minimumTcbEvaluationDataNumber" }', SKIP_FORM]),
    },
  ),
  /** Minimum TEE_TCB_SVN, compared byte by byte (16 bytes). */
  minimumTeeTcbSvn: z.union([hexOf(16), SkipSchema], {
    error: expectedOneOf(["16 bytes as 32 hex digits", SKIP_FORM]),
  }),
  // The fields below came later; required like the rest (a check not wanted is a skip).
  /**
   * Minimum ISVSVN of the quoting enclave, from the QE report the PCK key signs (not the quote
   * header's QE_SVN, which the PCK key does not sign), or a skip. A floor that holds without
   * collateral, e.g. on Azure TDX, where no TCB status is evaluated.
   */
  minimumQeSvn: skippable(z.int().min(0).max(0xffff), FORMS.minimumQeSvn),
  /**
   * Minimum PCESVN, from the PCK certificate's SGX extension (what Intel's TCB levels compare; not
   * the quote header's PCE_SVN), or a skip.
   */
  minimumPceSvn: skippable(z.int().min(0).max(0xffff), FORMS.minimumPceSvn),
  /**
   * Intel security advisories (e.g. "INTEL-SA-00837", any case) refused even under an accepted TCB
   * status, as Intel's appraisal policy `rejected_advisory_ids`: each the advisoryIDs of the TCB
   * levels the platform, the TDX module and the QE matched list. Advisories that cannot be known (no
   * TCB info, no matching level, no QE identity) are refused too. Or a skip.
   */
  rejectedAdvisoryIds: skippable(
    z
      .array(
        z
          .string()
          .regex(/^[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*$/, "expected an advisory ID such as INTEL-SA-00837")
          .transform((id) => id.toUpperCase()),
      )
      .min(1),
    FORMS.rejectedAdvisoryIds,
  ),
});
export type TdxPolicy = DeepReadonly<z.infer<typeof TdxPolicySchema>>;

/** vTPM PCR indices of the SHA-256 bank, as JSON object keys ("0".."23"). */
const PCR_INDEX = /^(?:[0-9]|1[0-9]|2[0-3])$/;

/**
 * PCRs a Linux boot chain measures the OS into: 4 (the boot loader / kernel / UKI images the
 * firmware starts), 8 and 9 (GRUB's commands and files), 11 (a unified kernel image's sections).
 * An Azure policy must pin at least one: firmware PCRs alone (0-3, 5-7) accept any guest OS.
 */
export const AZURE_OS_PCRS = ["4", "8", "9", "11"] as const;

export const AzurePolicySchema = z
  .strictObject({
    /**
     * The SEV-SNP report inside the HCL report (azure-snp evidence), or null when azure-snp is not
     * accepted. On an Azure CVM it measures Microsoft's paravisor firmware, not the guest image.
     * `measurements` must be an allow-list: the vTPM quote is trusted only because this report,
     * from the paravisor it names, vouches for the vTPM's key; any SEV-SNP guest elsewhere could
     * otherwise present a report and a "vTPM quote" of its own making. `allowedVmpls` must be [0]:
     * only the paravisor's own (VMPL 0) report vouches for the vTPM.
     */
    snp: SnpPolicySchema.refine((p) => !isSkip(p.measurements), {
      message:
        "expected an allow-list of the paravisor's launch measurements (skipping them accepts any SEV-SNP guest as a vTPM)",
      path: ["measurements"],
    })
      .refine((p) => p.allowedVmpls.every((vmpl) => vmpl === 0), {
        message:
          "expected [0]: the paravisor's report is VMPL 0, and the verifier refuses any other (AZURE_HCL_VMPL_INVALID)",
        path: ["allowedVmpls"],
      })
      .nullable(),
    /** The TD quote of azure-tdx evidence (the paravisor's TD), or null; `mrtd` must be an allow-list (as above). */
    tdx: TdxPolicySchema.refine((p) => !isSkip(p.mrtd), {
      message: "expected an allow-list of the paravisor's MRTD values (skipping them accepts any TD as a vTPM)",
      path: ["mrtd"],
    }).nullable(),
    /**
     * The guest image is measured only in the vTPM's PCRs: accepted SHA-256 values by PCR index
     * ("0".."23"). Every listed PCR must be covered by the verified quote and hold one of its values.
     * At least one PCR is required: with none, any guest on the platform would be accepted.
     */
    pcrs: z
      .record(z.string().regex(PCR_INDEX, 'expected a PCR index "0".."23"'), z.array(hexOf(32)).min(1))
      .refine((r) => AZURE_OS_PCRS.some((i) => i in r), {
        message: `expected at least one of the PCRs the OS is measured into (${AZURE_OS_PCRS.join(", ")}) pinned: the guest image is measured only in the vTPM PCRs`,
      }),
    /** Require the runtime data's vm-configuration to say "secure-boot": true. */
    secureBootRequired: z.boolean(),
    /** Accept a VM whose vm-configuration does not say "console-enabled": false (a serial console). */
    consoleAllowed: z.boolean(),
  })
  .refine((a) => a.snp !== null || a.tdx !== null, {
    message: "expected at least one of azure.snp, azure.tdx to be a policy (both null accepts nothing)",
    path: ["snp"],
  });
export type AzurePolicy = DeepReadonly<z.infer<typeof AzurePolicySchema>>;

/** MAA attestation types (`x-ms-attestation-type`) whose claims a policy can appraise. */
export const MAA_POLICY_ATTESTATION_TYPES = ["sevsnpvm"] as const;

/**
 * The `x-ms-sevsnpvm-*` claims of an MAA token: the SEV-SNP report fields MAA copies into the token,
 * with the SNP section's names and forms where the report field is the same. Not the SNP section
 * itself: the token shows no ABI, firmware version, PLATFORM_INFO, CXL, TIO, mitigation vectors,
 * product or signing key, and skips forced there would weaken a policy for bare SEV-SNP hardware.
 */
export const MaaSnpPolicySchema = SnpPolicySchema.pick({
  debugAllowed: true,
  smtAllowed: true,
  allowedVmpls: true,
  measurements: true,
  hostData: true,
  idKeyDigests: true,
  authorKeyDigests: true,
  minimumGuestSvn: true,
}).extend({
  /** Accept a guest whose x-ms-sevsnpvm-migration-allowed is true (POLICY.MIGRATE_MA). */
  migrationAllowed: z.boolean(),
  /**
   * Minimum SVNs as the token gives them: x-ms-sevsnpvm-bootloader-svn, -tee-svn, -snpfw-svn and
   * -microcode-svn (MAA does not say which of the report's TCBs they come from, and has no FMC).
   */
  minimumTcb: z.strictObject({ bootloader: u8, tee: u8, snp: u8, microcode: u8 }),
});
export type MaaSnpPolicy = DeepReadonly<z.infer<typeof MaaSnpPolicySchema>>;

/**
 * Microsoft Azure Attestation tokens (`verify-evidence --tee maa`), appraised by their claims. Only
 * what an `/attest/SevSnpVm` token carries: x-ms-compliance-status and secureboot come with Azure's
 * guest attestation of a CVM, in a token of another shape, not in a sevsnpvm token.
 */
export const MaaPolicySchema = z.strictObject({
  /** MAA instance URLs `iss` must equal exactly: the instance whose attestation policy issued the token. */
  issuers: z.array(z.string().regex(/^https:\/\/\S+$/, "expected an https URL of an MAA instance")).min(1),
  /** Accepted `x-ms-attestation-type` values: only "sevsnpvm" so far. */
  attestationTypes: z.array(z.enum(MAA_POLICY_ATTESTATION_TYPES)).min(1),
  /** Requirements on the x-ms-sevsnpvm-* claims. */
  snp: MaaSnpPolicySchema,
});
export type MaaPolicy = DeepReadonly<z.infer<typeof MaaPolicySchema>>;

export const AttestationPolicySchema = z
  .strictObject({
    version: z.literal(1),
    /** Accept evidence that chains to the INSECURE simulator's roots. Never true in production. */
    trustSimulator: z.boolean(),
    /**
     * Largest accepted distance between the time the evidence was verified at (certificate
     * validity) and the appraisal time: evidence verified at some other instant (e.g. to make an
     * expired certificate pass) is rejected.
     */
    maximumVerificationSkewSeconds: z.int().min(0).max(86_400),
    /** SEV-SNP requirements, or null when SNP evidence is not accepted. */
    snp: SnpPolicySchema.nullable(),
    /** TDX requirements, or null when TDX evidence is not accepted. */
    tdx: TdxPolicySchema.nullable(),
    /**
     * Azure confidential VMs (evidence behind Microsoft's paravisor: HCL report and vTPM quote), or
     * null when Azure evidence is not accepted. Its own snp/tdx sections apply to the hardware
     * report there; the top-level snp/tdx apply to bare SEV-SNP and TDX guests only.
     */
    azure: AzurePolicySchema.nullable(),
    /**
     * MAA tokens, or absent or null when they are not accepted. The one member that may be absent:
     * its absence skips no check but refuses a kind of evidence, so policies written before it stay
     * valid and accept no MAA token.
     */
    maa: MaaPolicySchema.nullable().optional(),
  })
  .refine((p) => p.snp !== null || p.tdx !== null || p.azure !== null || (p.maa ?? null) !== null, {
    message: "expected at least one of snp, tdx, azure, maa to be a policy (all null accepts nothing)",
    path: ["snp"],
  });
export type AttestationPolicy = DeepReadonly<z.infer<typeof AttestationPolicySchema>>;

function describePath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(policy)";
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`)).join("");
}

/** Every field of an attestation policy, dotted (fieldPaths). */
const POLICY_FIELDS = fieldPaths(AttestationPolicySchema);

const MISSING = "required field is missing";
const MISSING_HINT = ' (every field is required; a check is turned off explicitly with { "skip": { "reason": "…" } })';

/**
 * Fields added to the (version 1) format after policies were first written: a policy from before
 * lacks them, and the message says what to do rather than only that they are missing.
 */
const ADDED_FIELDS: Readonly<Record<string, string>> = {
  mrownerconfig: "MROWNERCONFIG",
  mrservicetd: "MRSERVICETD",
};

/**
 * Fields that were optional before they were required, and what their absence did: a policy written
 * then lacks them, and the message names the value that keeps its verdict.
 */
const MADE_REQUIRED: Readonly<Record<string, string>> = {
  cxlAllowed: "refused CXL_ALLOW without it: false keeps that verdict",
  tioAllowed: "did not check TIO_EN without it: true keeps that verdict",
  ...Object.fromEntries(Object.keys(FORMS).map((field) => [field, "did not check it: a skip keeps that verdict"])),
};

/** `issue`: the absent field's own, whose message (the schema's words) says the forms expected. */
function missing(path: readonly PropertyKey[], issue: z.core.$ZodIssue): string {
  const field = String(path.at(-1));
  const added = ADDED_FIELDS[field];
  const line = `${describePath(path)}: ${MISSING}`;
  if (added !== undefined) {
    return `${line} (a TDX policy written before ${added} was checked: pin it, run \`cloister policy init\` again, or skip it with a reason)`;
  }
  const verdict = MADE_REQUIRED[field];
  return verdict === undefined
    ? line
    : `${line}, ${issue.message} (a policy written before ${field} was required ${verdict})`;
}

/** The issue is about an absent field (issues carry their input: parsed with reportInput). */
function isMissing(issue: z.core.$ZodIssue): boolean {
  return "input" in issue && issue.input === undefined && issue.code !== "custom";
}

/**
 * One line per problem, each naming the full field path, the expected and the found value
 * (manifests/issues.ts; a string found is described by its length only). For a value that matches
 * none of the alternatives of a union (e.g. a pinned value or a skip), the problems of the
 * alternative it was meant for (fittingAlternative) are reported, so the message points at the wrong
 * inner field; when none is, the union's own words list the forms allowed. `input`: the whole policy.
 */
function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  prefix: readonly PropertyKey[],
  known: readonly string[],
): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === "unrecognized_keys") {
      // Named only when they look like field names, in the shared formatter's words (manifests/issues.ts),
      // and a field of one level down said to belong there.
      lines.push(...describeUnknownFields(issue.keys, path, input, describePath, known));
    } else if (issue.code === "invalid_union" && issue.errors.length > 0) {
      const fitting = fittingAlternative(issue);
      if (isMissing(issue) || issue.errors.every((b) => b.some((i) => i.path.length === 0 && isMissing(i)))) {
        lines.push(missing(path, issue));
      } else if (fitting !== undefined) {
        lines.push(...describeIssues(fitting, input, path, known));
      } else {
        lines.push(describeIssue(issue, input, prefix));
      }
    } else if (isMissing(issue)) {
      lines.push(missing(path, issue));
    } else {
      lines.push(describeIssue(issue, input, prefix));
    }
  }
  return lines;
}

function describeIssue(issue: z.core.$ZodIssue, input: unknown, prefix: readonly PropertyKey[]): string {
  const e = explainIssue(issue, input, prefix);
  return `${describePath(e.path)}: ${e.expected}, found ${e.found}`;
}

/**
 * Parses and checks a policy given as JSON text or as an already-parsed value. Throws a
 * ConfigurationError (code POLICY_INVALID) listing every problem with its field path, e.g.
 * `snp.minimumTcb.microcode: expected a number <= 255, found 1000`.
 */
export const parseAttestationPolicy = registeredParser(function parseAttestationPolicy(
  input: unknown,
  options: {
    /**
     * The parsed file the policy was taken from (`input` itself, at `path` in it), when it is part
     * of a larger one: each problem is then named by its field path in that file.
     */
    readonly within?: { readonly file: unknown; readonly path: readonly PropertyKey[] };
  } = {},
): AttestationPolicy {
  let value = input;
  if (typeof input === "string") {
    try {
      value = parseJsonText(input);
    } catch (error) {
      // The cause is parseJsonText's SyntaxError, which (unlike V8's) does not quote the text.
      throw new ConfigurationError("POLICY_INVALID", `attestation policy: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
  // reportInput: isMissing tells an absent field by the issue's input. The issues stay here.
  const result = AttestationPolicySchema.safeParse(value, { reportInput: true });
  if (!result.success) {
    const { file, path } = options.within ?? { file: value, path: [] };
    // The policy's fields as paths in `file` (where a misplaced field belongs: describeUnknownFields).
    const at = path.map(String).join(".");
    const known = at === "" ? POLICY_FIELDS : POLICY_FIELDS.map((field) => `${at}.${field}`);
    const problems = describeIssues(result.error.issues, file, path, known);
    const hint = problems.some((p) => p.endsWith(MISSING)) ? MISSING_HINT : "";
    // No cause: the issues hold the input (values, and the names of unknown fields), which may be
    // misplaced secrets; the message lists every problem.
    throw new ConfigurationError("POLICY_INVALID", `attestation policy: ${problems.join("; ")}${hint}`);
  }
  return result.data;
});

/**
 * What each policy parser returned, with the parser that returned it: deep-frozen values, which
 * cannot change in place, so parsedPerObject takes one its parser made as parsed without looking
 * at it. Only registeredParser adds to it, with what its parser returned: no caller can mark a value
 * of its own as parsed.
 */
const parsedBy = new WeakMap<object, unknown>();

/**
 * `parse`, returning a deep-frozen copy of its plain objects and arrays (a part some parser already
 * returned is frozen, and kept), registered for parsedPerObject. A copy, so nothing of the caller's
 * input is frozen or shared: zod keeps a loose object's unknown members (a JWK's) by reference. Only
 * JSON's kinds of value are in a parsed policy.
 */
export function registeredParser<A extends readonly unknown[], T>(parse: (...args: A) => T): (...args: A) => T {
  const parser = (...args: A): T => {
    const frozen = frozenCopy(parse(...args));
    if (typeof frozen === "object" && frozen !== null) parsedBy.set(frozen, parser);
    return frozen;
  };
  return parser;
}

function frozenCopy<T>(value: T): T {
  if (typeof value !== "object" || value === null || parsedBy.has(value)) return value;
  const copy = Array.isArray(value)
    ? value.map(frozenCopy)
    : Object.fromEntries(Object.entries(value).map(([key, member]) => [key, frozenCopy(member)]));
  return Object.freeze(copy) as T;
}

/**
 * `parse`, once per input object, for the entry points that take a policy object from their caller
 * on every verification (verifyAttestationDocument, verifyWithClientPolicy, connect()): each parses
 * what it is given, as the key broker does once, so a policy built in code (a cast, a JavaScript
 * caller) that lacks a field is refused, never read as a check not made. A value `parse` itself
 * returned (registeredParser: frozen) is taken as it is. Any other object is remembered with the JSON it
 * had and what it parsed to, and recognised by its JSON (a few µs; parsing costs tens), so one
 * changed in place since is parsed again. Only successes are remembered; the input is never changed.
 */
export function parsedPerObject<T>(parse: (input: unknown) => T): (input: unknown) => T {
  const known = new WeakMap<object, { readonly json: string; readonly parsed: T }>();
  return (input) => {
    if (typeof input === "object" && input !== null && parsedBy.get(input) === parse) return input as T;
    let json: string | undefined;
    try {
      json = JSON.stringify(input);
    } catch {
      // not JSON (a cycle, a BigInt): the parser says what is wrong
    }
    if (typeof input !== "object" || input === null || json === undefined) return parse(input);
    const seen = known.get(input);
    if (seen !== undefined && seen.json === json) return seen.parsed;
    const parsed = parse(input);
    known.set(input, { json, parsed });
    return parsed;
  };
}

/** parseAttestationPolicy, once per policy object (parsedPerObject). */
export const parsedAttestationPolicy = parsedPerObject(parseAttestationPolicy);

export function isSkip(value: unknown): value is Skip {
  return typeof value === "object" && value !== null && "skip" in value;
}
