/**
 * `cloister verify-evidence --tee azure-snp|azure-tdx --evidence FILE [--nonce HEX] [--at TIME]`
 * and `cloister verify-evidence --tee maa --token FILE --jwks FILE [--issuer URL] [--at TIME]`: verify Azure CVM
 * evidence under the pinned AMD / Intel roots, or an MAA token under the given key set, and turn
 * the outcome into an EvidenceVerdict. CLI-only (reads files).
 *
 * Without `--nonce` the vTPM quote's extraData is reported (details.tpmExtraData) but not
 * compared: details.nonceChecked says so. With `--policy`, the verified evidence is appraised
 * against its `azure` section (hardware report, vTPM PCRs, vm-configuration; attestation/appraise.ts),
 * and an MAA token's claims against its `maa` section (issuers, attestation type, x-ms-sevsnpvm-*
 * claims); a policy without a `maa` section refuses every MAA token (TEE_NOT_ACCEPTED). Without
 * `--issuer` or a policy, the token's `iss` is reported (details.issuer) but not compared:
 * details.issuerChecked says so.
 */

import { optionsUsageError } from "../../client/cli/output.ts";
import { appraise } from "../appraise.ts";
import { fromHex, toHex } from "../bytes.ts";
import { ConfigurationError } from "../errors.ts";
import { AMD_ROOTS } from "../roots/amd.ts";
import { INTEL_ROOTS } from "../roots/intel.ts";
import { snpChecked, tcbFields } from "../snp/cli-verify.ts";
import { tdxChecked, tdxPlatformTcbDetails, tdxPlatformTcbFields, tdxTcbFields } from "../tdx/cli-verify.ts";
import { isDebugTd } from "../tdx/parse.ts";
import {
  appraisalVerdict,
  DEBUG_WARNING,
  EMPTY_EVIDENCE_FIELDS,
  type EvidenceFields,
  type EvidenceVerdict,
  failureFrom,
  readInputText,
  readPolicyOption,
  rejectForeignOptions,
  type VerifyEvidenceOptions,
} from "../verify-evidence-cli.ts";
import { parseAzureEvidence } from "./evidence.ts";
import { parseMaaJwks, verifyMaaToken } from "./maa.ts";
import { type AzureEvidenceParts, type VerifiedAzureEvidence, verifyAzureEvidence } from "./verify.ts";

export interface AzureVerifyEvidenceOptions extends Omit<VerifyEvidenceOptions, "tee"> {
  readonly tee: "azure-snp" | "azure-tdx" | "maa";
  readonly nonce?: string | undefined;
  /** maa: the MAA instance URL the token's iss must equal. */
  readonly issuer?: string | undefined;
}

type Fields = EvidenceFields;
const EMPTY = EMPTY_EVIDENCE_FIELDS;

/**
 * Why an azure-tdx verdict has no TCB status: verifyAzureEvidence is given no Intel collateral here,
 * so the TD quote is checked to its PCK chain and signatures only (as --tee tdx without --collateral).
 */
const AZURE_TDX_TCB_WARNING =
  "TCB status not checked: --tee azure-tdx takes no collateral (TCB info, QE identity, CRLs)";

/** The verdict's evidence fields, plus the TD's platform TCB (as --tee tdx reports it) for azure-tdx. */
function fieldsOf(parts: AzureEvidenceParts, verified: VerifiedAzureEvidence | null): Fields & Record<string, unknown> {
  const hcl = parts.hcl;
  if (hcl === null) return EMPTY;
  const details: Record<string, unknown> = {
    hclVersion: hcl.version,
    hclReportType: hcl.reportType,
    runtimeDataSha256: verified === null ? null : toHex(verified.runtimeDataSha256),
    vmUniqueId: hcl.runtimeData.vmUniqueId,
    userData: hcl.runtimeData.userData,
    vmConfiguration: hcl.runtimeData.vmConfiguration,
    tpmExtraData: parts.attest === null ? null : toHex(parts.attest.extraData),
    tpmClock: parts.attest === null ? null : parts.attest.clock.toString(),
    nonceChecked: verified?.nonceChecked ?? null,
    pcrs: verified === null ? null : Object.fromEntries([...verified.tpm.pcrs].map(([i, v]) => [String(i), toHex(v)])),
  };
  if (parts.snpReport !== null) {
    const r = parts.snpReport;
    return {
      version: r.version,
      measurement: toHex(r.measurement),
      reportData: toHex(r.reportData),
      chipId: toHex(r.chipId),
      reportedTcb: tcbFields(verified?.snp?.reportedTcb ?? r.reportedTcb),
      policy: `0x${r.policy.raw.toString(16)}`,
      debug: r.policy.debugAllowed,
      signingKey: r.signingKey,
      tcbStatus: null,
      warnings: verified !== null && r.policy.debugAllowed ? [DEBUG_WARNING.snp] : [],
      details: { ...details, vmpl: r.vmpl, product: verified?.snp?.product ?? r.product, hostData: toHex(r.hostData) },
    };
  }
  if (parts.tdQuote !== null) {
    const q = parts.tdQuote;
    return {
      version: q.header.version,
      measurement: toHex(q.body.mrTd),
      reportData: toHex(q.body.reportData),
      chipId: null,
      reportedTcb: tdxTcbFields(q.body.teeTcbSvn),
      policy: toHex(q.body.tdAttributes),
      debug: isDebugTd(q.body),
      signingKey: null,
      ...tdxPlatformTcbFields(q),
      warnings:
        verified === null
          ? []
          : [
              ...(isDebugTd(q.body) ? [DEBUG_WARNING.tdx] : []),
              ...((verified.tdx?.tcbStatus ?? null) === null ? [AZURE_TDX_TCB_WARNING] : []),
            ],
      tcbStatus: verified?.tdx?.tcbStatus ?? null,
      details: { ...details, rtmrs: q.body.rtmrs.map(toHex), ...tdxPlatformTcbDetails(q) },
    };
  }
  return { ...EMPTY, details };
}

/** What verifyAzureEvidence checked of `verified` (EvidenceVerdict.checked), in its order. */
function azureChecked(verified: VerifiedAzureEvidence): string[] {
  return [
    ...(verified.snp !== null ? [...snpChecked(verified.snp), "VMPL 0 (the paravisor's report)"] : []),
    ...(verified.tdx !== null ? [...tdxChecked(verified.tdx), "HCL TDREPORT = TD quote"] : []),
    "runtime data bound by REPORT_DATA",
    "vTPM quote signature (HCLAkPub)",
    "PCR digest",
    ...(verified.nonceChecked ? ["vTPM extraData = --nonce"] : []),
  ];
}

async function verifyAzure(
  options: AzureVerifyEvidenceOptions & { tee: "azure-snp" | "azure-tdx" },
): Promise<EvidenceVerdict> {
  rejectForeignOptions(options as VerifyEvidenceOptions, ["evidence"]);
  // The policy is read and checked before any evidence: an unusable --policy is bad input (exit 2), not a verdict.
  const policy = await readPolicyOption(options.policy, options.tee);
  let nonce: Uint8Array | null = null;
  if (options.nonce !== undefined) {
    if (!/^([0-9a-fA-F]{2}){1,64}$/.test(options.nonce)) {
      throw optionsUsageError(`--nonce: expected 1..64 bytes as hex, found ${options.nonce.length} characters`);
    }
    nonce = fromHex(options.nonce, "--nonce");
  }
  const text = await readInputText(options.evidence, "--evidence", options.tee);
  const at = options.at ?? new Date();
  const parts: AzureEvidenceParts = { hcl: null, attest: null, snpReport: null, tdQuote: null };
  try {
    const evidence = parseAzureEvidence(text);
    if (evidence.kind !== options.tee) {
      throw new ConfigurationError(
        "AZURE_EVIDENCE_KIND_MISMATCH",
        `--evidence: expected ${options.tee} evidence, found ${evidence.kind}`,
      );
    }
    const verified = await verifyAzureEvidence(
      { evidence, at, expectedNonce: nonce, snpAnchors: AMD_ROOTS, tdxAnchors: INTEL_ROOTS },
      parts,
    );
    return {
      // With --nonce the vTPM quote's qualifying data was compared by verifyAzureEvidence.
      ...appraisalVerdict(
        policy === null ? null : appraise(verified, policy, { now: at, expectedReportData: null }),
        nonce !== null,
      ),
      tee: options.tee,
      simulated: verified.simulated,
      ...fieldsOf(parts, verified),
      checked: azureChecked(verified),
    };
  } catch (error) {
    return { valid: false, ...failureFrom(error), tee: options.tee, simulated: null, ...fieldsOf(parts, null) };
  }
}

async function readJwks(path: string | undefined): Promise<string> {
  if (path === undefined)
    throw optionsUsageError("verify-evidence --tee maa: --jwks FILE is required (no key set is fetched)");
  return readInputText(path, "--jwks", "maa");
}

/** The verdict of an MAA token. Its `tee` is "maa", outside EvidenceVerdict's TEE list. */
export type MaaVerdict = Omit<EvidenceVerdict, "tee"> & { readonly tee: "maa" };

async function verifyMaa(options: AzureVerifyEvidenceOptions): Promise<MaaVerdict> {
  rejectForeignOptions({ ...(options as VerifyEvidenceOptions) }, ["token", "jwks"]);
  if (options.nonce !== undefined)
    throw optionsUsageError("verify-evidence --tee maa: --nonce does not apply to this TEE");
  // The policy is read and checked before the token: an unusable --policy is bad input (exit 2), not a verdict.
  const policy = await readPolicyOption(options.policy, "maa");
  const token = await readInputText(options.token, "--token", "maa");
  const jwksText = await readJwks(options.jwks);
  const at = options.at ?? new Date();
  try {
    const jwks = parseMaaJwks(jwksText);
    // `iss` is compared here only with --issuer. Without it, expectedIssuer null is the explicit
    // choice that iss is checked elsewhere: with --policy by appraisal (maa.issuers, or its refusal
    // of every token when the policy has no maa section); with neither, it is only reported
    // (details.issuerChecked: false). With both, both must hold.
    const verified = await verifyMaaToken(token, { jwks, at, expectedIssuer: options.issuer ?? null });
    const claims = verified.claims;
    const snpMeasurement = claims["x-ms-sevsnpvm-launchmeasurement"];
    const snpReportData = claims["x-ms-sevsnpvm-reportdata"];
    return {
      ...appraisalVerdict(policy === null ? null : appraise(verified, policy, { now: at, expectedReportData: null })),
      tee: "maa",
      simulated: false,
      ...EMPTY,
      checked: [
        "token signature (--jwks key)",
        // nbf is optional (RFC 7519): a token without one is checked against exp alone.
        verified.notBefore === null ? "token validity (exp)" : "token validity (exp, nbf)",
        ...(options.issuer === undefined ? [] : ["iss = --issuer"]),
      ],
      measurement: typeof snpMeasurement === "string" ? snpMeasurement.toLowerCase() : null,
      reportData: typeof snpReportData === "string" ? snpReportData.toLowerCase() : null,
      details: {
        kid: verified.kid,
        attestationType: verified.attestationType,
        issuer: verified.issuer,
        issuerChecked: options.issuer !== undefined || (policy?.maa ?? null) !== null,
        expiresAt: verified.expiresAt.toISOString(),
        notBefore: verified.notBefore?.toISOString() ?? null,
        claims,
      },
    };
  } catch (error) {
    return { valid: false, ...failureFrom(error), tee: "maa", simulated: null, ...EMPTY };
  }
}

/** Entry used by attestation/cli.ts for --tee azure-snp, azure-tdx and maa. */
export async function verifyEvidence(options: AzureVerifyEvidenceOptions): Promise<EvidenceVerdict> {
  if (options.tee === "maa") {
    // printVerdict only shows `tee` as text; "maa" is a verdict of its own kind.
    return (await verifyMaa(options)) as unknown as EvidenceVerdict;
  }
  return verifyAzure({ ...options, tee: options.tee });
}
