/**
 * Wording shared by the CLI and the browser page when they show what was verified, and what of the
 * attested manifest they and the SDK read (attestedRules, attestedPii).
 */
import type { VerifiedEnclave } from "../attestation/document.ts";
import type { Manifest } from "../manifests/schema.ts";
import { visibleOnOneLine } from "./cli/terminal-text.ts";

/**
 * On Azure the hardware report is the paravisor's (HCL): its measurement is Microsoft's firmware,
 * not the guest OS, which the vTPM PCRs in the policy's `azure.pcrs` cover instead.
 */
export function measurementNote(enclave: VerifiedEnclave): string {
  return enclave.tee === "azure-snp" || enclave.tee === "azure-tdx"
    ? "  (Azure paravisor's; the guest OS is covered by the pinned vTPM PCRs)"
    : "";
}

/**
 * A sealed-at-rest model (the attested manifest's model.sealedAtRest and keyId): the weights on
 * the host's disk are ciphertext, and the operator's key broker releases the key only to an
 * enclave whose attestation passes its policy. The client sees what the manifest promises.
 */
export function modelNote(enclave: VerifiedEnclave): string {
  const model = (enclave.manifest.manifest as { model?: { sealedAtRest?: unknown; keyId?: unknown } } | null)?.model;
  return model?.sealedAtRest === true && typeof model.keyId === "string"
    ? `  (sealed at rest under key "${model.keyId}": the key broker releases it only to an attested enclave)`
    : "";
}

/** What policyFacts reads of the attested manifest, as manifests/schema.ts types it (type-only: erased). */
type AttestedRules = Pick<Manifest, "requestPolicy" | "audit">;

/** Most rules policyFacts names one by one; `attest --json` gives them all. */
const RULES_SHOWN = 10;

/**
 * The attested manifest's request policy and audit settings (`requestPolicy`, `audit`), or null
 * when the verified manifest holds none (a ManifestCheck other than the client policy's, which
 * returns the schema-checked manifest). Only ever read from the VerifiedEnclave: what was attested.
 */
export function attestedRules(enclave: VerifiedEnclave): AttestedRules | null {
  const m = enclave.manifest.manifest as Partial<AttestedRules> | null | undefined;
  return m?.requestPolicy === undefined || m.audit === undefined
    ? null
    : { requestPolicy: m.requestPolicy, audit: m.audit };
}

/**
 * The attested manifest's PII handling (`requestPolicy.pii`: mode and entities), or null when the
 * verified manifest does not show one (a ManifestCheck other than the client policy's). Only ever
 * read from the VerifiedEnclave: what was attested.
 */
export function attestedPii(
  enclave: VerifiedEnclave,
): { readonly mode: string; readonly entities: readonly string[] } | null {
  return attestedRules(enclave)?.requestPolicy.pii ?? null;
}

/**
 * What will be done to a prompt, as the attested manifest says (label, value): the rules in order
 * with the default action, the PII filter, the audit. The manifest is operator-written text: every
 * value is made visible on one line (terminal-text.ts visibleOnOneLine), so no control character
 * reaches a terminal, whatever the manifest's schema lets through. [] when attestedRules is null.
 */
export function policyFacts(enclave: VerifiedEnclave): [string, string][] {
  const attested = attestedRules(enclave);
  if (attested === null) return [];
  const { requestPolicy: policy, audit } = attested;
  const shown = policy.rules.slice(0, RULES_SHOWN).map((rule) => {
    const limit = rule.kind === "maxPromptTokens" ? ` over ${String(rule.limit)}` : "";
    return `${rule.action} ${rule.id} (${rule.kind}${limit})`;
  });
  const more = policy.rules.length - shown.length;
  const rules =
    shown.length === 0
      ? "no rules"
      : `the first rule that matches decides: ${shown.join(", ")}${more > 0 ? `, and ${more} more in the manifest` : ""}`;
  const pii =
    policy.pii.mode === "off" ? `off: ${policy.pii.reason}` : `${policy.pii.mode}: ${policy.pii.entities.join(", ")}`;
  const recorded = (what: string, yes: boolean) => `${what} hash ${yes ? "recorded" : "not recorded"}`;
  const auditText = audit.enabled
    ? `on (${recorded("prompt", audit.recordPromptHash)}, ${recorded("answer", audit.recordResponseHash)})`
    : `off: ${audit.reason}`;
  const facts: [string, string][] = [
    ["rules", `${policy.defaultAction} by default; ${rules}`],
    ["PII", pii],
    ["audit", auditText],
  ];
  return facts.map(([name, value]) => [name, visibleOnOneLine(value)]);
}

/** What teeFacts reads of the attested manifest's tee section, and attest --json gives whole (type-only). */
type AttestedTee = Pick<Manifest["tee"], "allowedMeasurements" | "minimumTcb" | "policyFlags">;

/** Most allowed launch measurements teeFacts names (shortened) one by one; `attest --json` gives them all. */
const MEASUREMENTS_SHOWN = 8;

/**
 * The attested manifest's tee constraints (`tee.allowedMeasurements`, `minimumTcb`, `policyFlags`),
 * as signed, or null when the verified manifest holds no tee section (a ManifestCheck other than
 * the client policy's, which compares them with the evidence: attestation/manifest-tee.ts).
 */
export function attestedTee(enclave: VerifiedEnclave): AttestedTee | null {
  const tee = (enclave.manifest.manifest as { tee?: Partial<AttestedTee> } | null | undefined)?.tee;
  const { allowedMeasurements, minimumTcb, policyFlags } = tee ?? {};
  return allowedMeasurements === undefined || minimumTcb === undefined || policyFlags === undefined
    ? null
    : { allowedMeasurements, minimumTcb, policyFlags };
}

/**
 * The attested manifest's tee constraints the evidence was held to (label, value), for `cloister
 * attest` and the page: the allowed launch measurements (SNP MEASUREMENT, TDX MRTD; each shortened
 * to 16 hex digits as other digests are, the enclave's own marked), or any and the operator's
 * reason (simulator platforms only); the minimum TCB of the evidence's family; the policy flags (on
 * TDX, SMT is not in the quote: a TDX manifest must allow it, else it is refused). Each value names
 * the manifest, so that a newcomer does not take it for the client policy's pins or for the
 * enclave's own values. Operator-written text (the reason) is made visible on one line, as
 * policyFacts does. [] when attestedTee is null.
 */
export function teeFacts(enclave: VerifiedEnclave): [string, string][] {
  const tee = attestedTee(enclave);
  if (tee === null) return [];
  const tdx = enclave.tee === "tdx" || enclave.tee === "azure-tdx";
  const field = tdx ? "MRTD" : "MEASUREMENT";
  const allowed = tee.allowedMeasurements;
  let measurements: string;
  if (Array.isArray(allowed)) {
    // The enclave's own stays in view when the manifest lists it past the first ones shown: it
    // takes the last place shown, and the count of the others left out follows.
    const own = allowed.indexOf(enclave.measurement);
    const listed =
      own < MEASUREMENTS_SHOWN
        ? allowed.slice(0, MEASUREMENTS_SHOWN)
        : [...allowed.slice(0, MEASUREMENTS_SHOWN - 1), enclave.measurement];
    const shown = listed.map((m) => `${m.slice(0, 16)}…${m === enclave.measurement ? " (this enclave's)" : ""}`);
    const more = allowed.length - shown.length;
    measurements = `${field} ${shown.join(", ")}${more > 0 ? `, and ${more} more in the manifest` : ""}`;
  } else {
    measurements = `any ${field} (reason: ${allowed.reason})`;
  }
  const minimum = tdx ? tdxMinimum(tee.minimumTcb.tdx) : snpMinimum(tee.minimumTcb.snp);
  const flags = tee.policyFlags;
  const allowedOrNot = (yes: boolean) => (yes ? "allowed" : "not allowed");
  const smt = tdx ? "SMT not reported by TDX (a TDX manifest must allow it)" : `SMT ${allowedOrNot(flags.smtAllowed)}`;
  const migration = tdx ? "migratable TD" : "migration agent";
  const facts: [string, string][] = [
    ["measurements", `manifest allows ${measurements}`],
    ["minimum TCB", minimum],
    [
      "TEE flags",
      `manifest: debug ${allowedOrNot(flags.debugAllowed)}, ${migration} ${allowedOrNot(flags.migrationAgentAllowed)}, ${smt}`,
    ],
  ];
  return facts.map(([name, value]) => [name, visibleOnOneLine(value)]);
}

type MinimumTcb = AttestedTee["minimumTcb"];

function snpMinimum(min: MinimumTcb["snp"]): string {
  if (min === null) return "manifest sets none for SNP evidence";
  const fmc = min.fmc === null ? "" : `, FMC ${min.fmc}`;
  const components = `bootloader ${min.bootloader}, TEE ${min.tee}, SNP ${min.snp}, microcode ${min.microcode}${fmc}`;
  return `manifest requires SNP ${components} or above (of the reported, launch and committed TCB each)`;
}

function tdxMinimum(min: MinimumTcb["tdx"]): string {
  return min === null
    ? "manifest sets none for TDX evidence"
    : `manifest requires TDX TEE_TCB_SVN ${min.teeTcbSvn}, PCE SVN ${min.pceSvn}, QE SVN ${min.qeSvn} or above`;
}
