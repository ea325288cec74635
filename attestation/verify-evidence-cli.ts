/**
 * The shared part of `cloister verify-evidence`: its options, the verdict every TEE branch
 * returns, and how a verdict is printed. Each TEE has its own lazily loaded implementation
 * (`attestation/<tee>/cli-verify.ts`) exporting `verifyEvidence(options): Promise<EvidenceVerdict>`.
 *
 * CLI-only module: it reads files with node:fs, so the platform-neutral verification code must not
 * import it.
 */
import { optionFileUnreadable, readBoundedFile, readText, readTrustFile } from "../client/cli/bounded-file.ts";
import { optionsUsageError } from "../client/cli/output.ts";
import { visibleOnOneLine } from "../client/cli/terminal-text.ts";
import { ClientError } from "../client/errors.ts";
import { type AppraisalResult, describeViolation } from "./appraise.ts";
import { fileMessage, type InputBound } from "./bounded-read.ts";
import { AttestationError } from "./errors.ts";
import { jsonTextRefusal, parseJsonText } from "./json-text.ts";
import { type AttestationPolicy, parseAttestationPolicy } from "./policy.ts";
import { MAX_VCEK_BYTES } from "./providers/amd-kds.ts";
import { stringifyJsonVisibly } from "./untrusted-text.ts";

/** The TEE kinds `--tee` accepts (attestation/providers/types.ts uses the same names). */
export const VERIFY_EVIDENCE_TEES = ["snp", "tdx", "azure-snp", "azure-tdx"] as const;
export type VerifyEvidenceTee = (typeof VERIFY_EVIDENCE_TEES)[number];

/** Options of `cloister verify-evidence` as commander hands them over. */
export interface VerifyEvidenceOptions {
  readonly tee: VerifyEvidenceTee;
  /** SNP: ATTESTATION_REPORT file (1184 bytes). */
  readonly report?: string | undefined;
  /** SNP: VCEK/VLEK certificate file (PEM or DER). */
  readonly cert?: string | undefined;
  /** TDX: quote file. */
  readonly quote?: string | undefined;
  /** TDX: collateral (TCB info, QE identity, CRLs). */
  readonly collateral?: string | undefined;
  /** Azure: CVM evidence file. */
  readonly evidence?: string | undefined;
  /** Azure: MAA token file. */
  readonly token?: string | undefined;
  /** Azure: MAA JWKS file. */
  readonly jwks?: string | undefined;
  /** Verification time (default: now). */
  readonly at?: Date | undefined;
  /** Policy file for appraisal: an attestation policy or a client policy (readPolicyOption). */
  readonly policy?: string | undefined;
  readonly json?: boolean | undefined;
}

export interface EvidenceTcb {
  /** The raw TCB value as hex (SNP: the TCB_VERSION u64; TDX: TEE_TCB_SVN). */
  readonly raw: string;
  readonly [component: string]: number | string | null;
}

/**
 * The result of one verification, printed as JSON with `--json`. Hex is lower-case. When `valid`
 * is false, `stage`/`code`/`reason` say why, and the evidence fields (if the evidence parsed at all)
 * are the *unverified* values, for diagnosis only.
 */
export interface EvidenceVerdict {
  readonly valid: boolean;
  /** The failing stage (parse, verify, appraise, configuration ...), null when valid. */
  readonly stage: string | null;
  readonly code: string | null;
  readonly reason: string | null;
  readonly tee: VerifyEvidenceTee;
  /** True when verified under a simulator root; null when verification did not get that far. */
  readonly simulated: boolean | null;
  readonly version: number | null;
  readonly measurement: string | null;
  readonly reportData: string | null;
  readonly chipId: string | null;
  readonly reportedTcb: EvidenceTcb | null;
  /** TEE-specific policy value (SNP: guest POLICY as hex; TDX: TD_ATTRIBUTES as hex). */
  readonly policy: string | null;
  readonly debug: boolean | null;
  readonly signingKey: string | null;
  /** TDX TCB status from the collateral; null for SNP. */
  readonly tcbStatus: string | null;
  /** TEE-specific extra fields (product, vmpl, endorsement certificate ...). */
  readonly details?: Readonly<Record<string, unknown>>;
  /**
   * What the evidence is valid despite: a debuggable guest, a TCB status that was not checked,
   * relaxed collateral rules. `valid` does not judge these (that is what `--policy` is for).
   */
  readonly warnings?: readonly string[];
  /**
   * What verification checked, in its order, named from the verified result: a check it skipped (a
   * TCB status without collateral, revocation without CRLs, extraData without `--nonce`) is not
   * here (`warnings` says so), nor is the appraisal (`appraisal`). Absent when verification failed.
   */
  readonly checked?: readonly string[];
  /** With `--policy`: the appraisal (every violation); null or absent without a policy. */
  readonly appraisal?: {
    readonly ok: boolean;
    readonly violations: readonly { field: string; expected: string; found: string; code: string }[];
    /** Whether the bound data was compared (Azure: with `--nonce`); otherwise no document binds it here. */
    readonly reportDataChecked: boolean;
  } | null;
}

/**
 * The verdict fields of verified evidence after an optional appraisal (null: no `--policy`):
 * valid exactly when no violation; the first violation's code, and every violation in `reason` (the
 * others with their codes).
 */
export function appraisalVerdict(
  appraisal: AppraisalResult | null,
  reportDataChecked = false,
): Pick<EvidenceVerdict, "valid" | "stage" | "code" | "reason" | "appraisal"> {
  const violations = appraisal?.violations ?? [];
  const first = violations[0];
  return {
    valid: first === undefined,
    stage: first === undefined ? null : "appraise",
    code: first === undefined ? null : first.code,
    reason:
      first === undefined
        ? null
        : // The first violation's code is `code` (the error line's prefix): named again only for the others.
          violations
            .map((v, i) => `${describeViolation(v, appraisal?.simulated === true)}${i === 0 ? "" : ` (${v.code})`}`)
            .join("; "),
    appraisal: appraisal === null ? null : { ok: appraisal.ok, violations, reportDataChecked },
  };
}

/** The evidence fields of a verdict, before anything could be parsed. */
export type EvidenceFields = Omit<EvidenceVerdict, "valid" | "stage" | "code" | "reason" | "simulated" | "tee">;

export const EMPTY_EVIDENCE_FIELDS: EvidenceFields = Object.freeze({
  version: null,
  measurement: null,
  reportData: null,
  chipId: null,
  reportedTcb: null,
  policy: null,
  debug: null,
  signingKey: null,
  tcbStatus: null,
});

/** Warnings for verified evidence whose guest is debuggable (the host can read its memory). */
export const DEBUG_WARNING = {
  snp: "the guest policy allows debugging (POLICY.DEBUG): its memory is readable and writable by the host",
  tdx: "the TD is debuggable (TDATTRIBUTES.DEBUG): its memory is readable by the host",
} as const;

/**
 * What each input file may hold, by its option: a file past its bound is refused (USAGE, naming
 * the option, the file and the bound) before it is held whole.
 */
export const INPUT_FILE_BOUNDS = {
  // An SNP report is 0x4a0 bytes, a TD quote some 5 KiB with its PCK chain; the kernel's configfs-tsm
  // hands out at most 32 KiB (TSM_OUTBLOB_MAX). Twice that: the parser, not the read, says what is wrong.
  "--report": { bytes: 64 * 1024, expected: "an SNP report, 1184 bytes" },
  "--quote": { bytes: 64 * 1024, expected: "a TD quote, some 5 KiB; configfs-tsm hands out 32 KiB at most" },
  "--cert": { bytes: MAX_VCEK_BYTES, expected: "a VCEK, some 1.4 KB of DER or 2 KB of PEM" },
  // parseAzureEvidence takes 1 MiB of JSON at most (base64 fields: one byte per character).
  "--evidence": { bytes: 1024 * 1024, expected: "Azure evidence, JSON that is read to 1 MiB" },
  // A token and a key set are some 10 KiB each (claims; a few keys with their certificate chains).
  "--token": { bytes: 1024 * 1024, expected: "an MAA token, some 10 KiB" },
  "--jwks": { bytes: 1024 * 1024, expected: "MAA's signing key set, some 10 KiB" },
  // As every --policy: 1 MiB holds some 10,000 allow-list entries.
  "--policy": { bytes: 1024 * 1024, expected: "an attestation or client policy, a few KiB" },
} as const satisfies Record<string, InputBound>;
export type InputFileOption = keyof typeof INPUT_FILE_BOUNDS;

/** The path of a required input file, or a UsageError (exit 2) naming the option. */
function requiredPath(path: string | undefined, option: InputFileOption, tee: string): string {
  if (path === undefined) throw optionsUsageError(`verify-evidence --tee ${tee}: ${option} FILE is required`);
  return path;
}

/** Reads a required input file named by `option`, to its bound, or throws UsageError (exit 2). */
export async function readInputFile(
  path: string | undefined,
  option: InputFileOption,
  tee: string,
): Promise<Uint8Array> {
  const file = requiredPath(path, option, tee);
  const bytes = await readBoundedFile(file, option, INPUT_FILE_BOUNDS[option], optionFileUnreadable(file, option));
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

/**
 * readInputFile's text, as strict UTF-8: a byte that is not UTF-8 is a UsageError naming it. One
 * leading byte order mark (as Windows PowerShell 5's `Out-File -Encoding utf8` writes) is dropped,
 * as TextDecoder dropped it before these files were read to a bound: each is JSON or a token, never
 * text whose bytes are hashed or signed, and kept, the BOM made a valid file "not valid JSON".
 */
export async function readInputText(path: string | undefined, option: InputFileOption, tee: string): Promise<string> {
  const file = requiredPath(path, option, tee);
  return withoutByteOrderMark(
    await readText(file, option, INPUT_FILE_BOUNDS[option], optionFileUnreadable(file, option)),
  );
}

/** `text` without one leading byte order mark (readInputText says why). */
function withoutByteOrderMark(text: string): string {
  return text.startsWith("\uFEFF") ? text.slice(1) : text;
}

/**
 * The policy of `--policy FILE` (null without the option), read and checked before any evidence so
 * that a bad policy is bad input (exit 2, `cloister: POLICY_INVALID: --policy FILE: ...`, as
 * `attest --policy` reports it, and as a file that cannot be read is), never a silent pass. Two
 * formats: an attestation policy (attestation/policy.ts), or a client policy (client/policy.ts, e.g.
 * the `.cloister/policy.json` that `cloister up` writes), recognised by its `attestation` field,
 * checked whole by the client-policy parser, and of which the attestation section is used.
 */
export async function readPolicyOption(path: string | undefined, tee: string): Promise<AttestationPolicy | null> {
  if (path === undefined) return null;
  // The trust anchor of this check: refused when someone else could change it (readTrustFile).
  const text = withoutByteOrderMark(
    await readTrustFile(path, "--policy", INPUT_FILE_BOUNDS["--policy"], "what evidence this check accepts"),
  );
  // A ClientError of kind configuration: bad input (client/cli/program.ts isBadInput), as every
  // other refusal of the file is, its code kept.
  const invalid = (reason: string, cause: unknown) =>
    new ClientError("configuration", "POLICY_INVALID", fileMessage(path, "--policy", reason), { cause });
  let value: unknown;
  try {
    value = parseJsonText(text);
  } catch (error) {
    throw invalid(jsonTextRefusal(error, "a JSON policy"), error);
  }
  try {
    if (typeof value === "object" && value !== null && Object.hasOwn(value, "attestation")) {
      const { parseClientPolicy } = await import("../client/policy.ts");
      const client = parseClientPolicy(value);
      return acceptedOnly(client.attestation, client.acceptedEvidence, tee);
    }
    return parseAttestationPolicy(value);
  } catch (error) {
    if ((error as { code?: unknown }).code !== "POLICY_INVALID") throw error;
    throw invalid((error as Error).message, error);
  }
}

/**
 * A client policy's attestation section as appraisal should apply it to `tee` evidence: its section
 * for that evidence type null (TEE_NOT_ACCEPTED) when the policy's `acceptedEvidence` leaves the
 * type out, as the SDK refuses such an enclave after verification. `acceptedEvidence` cannot name
 * MAA tokens, and parseClientPolicy refuses a `maa` section, so with a client policy `--tee maa`
 * refuses every token (TEE_NOT_ACCEPTED).
 */
function acceptedOnly(policy: AttestationPolicy, accepted: readonly string[], tee: string): AttestationPolicy {
  if (tee === "snp" && !accepted.includes("sev-snp")) return { ...policy, snp: null };
  if (tee === "tdx" && !accepted.includes("tdx")) return { ...policy, tdx: null };
  if (policy.azure !== null && (tee === "azure-snp" || tee === "azure-tdx") && !accepted.includes(tee)) {
    return { ...policy, azure: { ...policy.azure, [tee === "azure-snp" ? "snp" : "tdx"]: null } };
  }
  return policy;
}

/** Throws UsageError when an option of another TEE was given (so a typo cannot be silently ignored). */
export function rejectForeignOptions(
  options: VerifyEvidenceOptions,
  allowed: readonly (keyof VerifyEvidenceOptions)[],
): void {
  const inputs: (keyof VerifyEvidenceOptions)[] = [
    "report",
    "cert",
    "quote",
    "collateral",
    "evidence",
    "token",
    "jwks",
  ];
  for (const name of inputs) {
    if (options[name] !== undefined && !allowed.includes(name)) {
      throw optionsUsageError(`verify-evidence --tee ${options.tee}: --${name} does not apply to this TEE`);
    }
  }
}

/** The failure fields of a verdict from an attestation error. Other errors are rethrown. */
export function failureFrom(error: unknown): { stage: string; code: string; reason: string } {
  if (error instanceof AttestationError) return { stage: error.stage, code: error.code, reason: error.message };
  throw error;
}

/**
 * The codes of a certificate, CRL, TCB info or MAA token past its validity at the verification time
 * (a collateral signer's too: the default, strict, rule checks it at --at): at the default time,
 * now, evidence captured a while ago fails with these, and `--at` is the way out.
 */
const EXPIRED_CODES: ReadonlySet<string> = new Set([
  "CERT_EXPIRED",
  "CRL_EXPIRED",
  "COLLATERAL_EXPIRED",
  "COLLATERAL_SIGNER_EXPIRED",
  "MAA_SIGNING_CERT_EXPIRED",
  "MAA_TOKEN_EXPIRED",
]);

/**
 * The codes of a certificate, CRL, TCB info / QE identity or MAA token not yet valid at the
 * verification time. At now they mean a clock that is behind (or evidence dated after it); at an
 * `--at`, a time before the evidence's. Neither hint waves the refusal away: at the true time, or
 * at a time when it was valid, the evidence is checked in full. COLLATERAL_SIGNER_NOT_YET_VALID
 * is not one of them: collateral issued before its signer's notBefore fails at every time.
 */
const NOT_YET_VALID_CODES: ReadonlySet<string> = new Set([
  "CERT_NOT_YET_VALID",
  "CRL_NOT_YET_VALID",
  "COLLATERAL_NOT_YET_VALID",
  "MAA_SIGNING_CERT_NOT_YET_VALID",
  "MAA_TOKEN_NOT_YET_VALID",
]);

/**
 * What else `--tee tdx` offers for collateral that is stale, or whose signer expired, at the
 * verification time, with `--at` as without: the two remedies docs/platforms.md names.
 */
const STALE_COLLATERAL_REMEDY =
  "get current collateral from Intel PCS for that time, or pass --accept-stale-collateral to accept it and report it stale";
const COLLATERAL_REMEDIES: Readonly<Record<string, string>> = {
  CRL_EXPIRED: STALE_COLLATERAL_REMEDY,
  COLLATERAL_EXPIRED: STALE_COLLATERAL_REMEDY,
  COLLATERAL_SIGNER_EXPIRED:
    "put the re-issued TCB signing certificate's chain in the --collateral folder, or pass --collateral-signer-validity accept-expired-signer knowingly",
};

/** What an invalid verdict's code suggests about the verification time, as the end of its error line. */
function timeHint(code: string | null, atGiven: boolean, tee: string): string {
  if (code === null) return "";
  if (EXPIRED_CODES.has(code)) {
    const remedy = tee === "tdx" ? COLLATERAL_REMEDIES[code] : undefined;
    if (atGiven) return remedy === undefined ? "" : `; ${remedy}`;
    const at = "; for evidence captured earlier, pass --at with a time it was valid";
    return remedy === undefined ? at : `${at}; otherwise ${remedy}`;
  }
  if (NOT_YET_VALID_CODES.has(code)) {
    return atGiven
      ? "; --at is before it became valid: to check evidence as of a past time, pass an --at at which it was already valid"
      : "; the verification time is now by this machine's clock: if the clock is wrong, correct it or pass --at with the correct time";
  }
  return "";
}

/**
 * The error line of an invalid verdict. The hints about the verification time are given here, not
 * in the verifiers' messages: clients see those during live attestation, where there is no `--at`.
 */
function errorLine(verdict: EvidenceVerdict, atGiven: boolean): string {
  // One line, its untrusted text (a value found in the evidence) escaped, as formatCliError writes every error line.
  return `${visibleOnOneLine(`cloister: ${verdict.code}: ${verdict.reason}${timeHint(verdict.code, atGiven, verdict.tee)}`)}\n`;
}

/** Prints the verdict (JSON or a readable summary) and sets the exit code: 0 iff valid. */
export function printVerdict(verdict: EvidenceVerdict, options: Pick<VerifyEvidenceOptions, "json" | "at">): void {
  if (options.json === true) {
    // Escaped: the verdict carries untrusted text (collateral file names) a terminal shows.
    process.stdout.write(`${stringifyJsonVisibly(verdict, 2)}\n`);
  } else {
    const lines: string[] = [];
    lines.push(
      `${verdict.tee}: ${verdict.valid ? "VALID" : "INVALID"}${verdict.simulated ? " (SIMULATED - not hardware evidence)" : ""}`,
    );
    const row = (label: string, value: unknown) => {
      if (value !== null && value !== undefined) lines.push(`  ${label.padEnd(16)} ${String(value)}`);
    };
    row("version", verdict.version);
    row("signing key", verdict.signingKey);
    row("measurement", verdict.measurement);
    row("report data", verdict.reportData);
    row("chip id", verdict.chipId);
    if (verdict.reportedTcb !== null) {
      const { raw, ...parts } = verdict.reportedTcb;
      const decoded = Object.entries(parts)
        .filter(([, v]) => v !== null)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ");
      row("reported TCB", decoded === "" ? raw : `${raw} (${decoded})`);
    }
    row("policy", verdict.policy);
    row("debug", verdict.debug);
    row("tcb status", verdict.tcbStatus);
    if (verdict.checked !== undefined && verdict.checked.length > 0) row("checked", verdict.checked.join("; "));
    for (const [k, v] of Object.entries(verdict.details ?? {})) {
      // details.warnings (TDX) repeats verdict.warnings, printed below one per line.
      if (k === "warnings" && verdict.warnings !== undefined) continue;
      if (v !== null && v !== undefined && typeof v !== "object") row(k, v);
    }
    if (verdict.appraisal !== null && verdict.appraisal !== undefined) {
      const n = verdict.appraisal.violations.length;
      row("appraisal", n === 0 ? "policy satisfied" : `${n} violation${n === 1 ? "" : "s"}`);
      for (const v of verdict.appraisal.violations) {
        lines.push(`    ${describeViolation(v, verdict.simulated === true)} (${v.code})`);
      }
    }
    // Only when a field was printed (an MAA token refused before its claims were read shows none).
    const fieldsPrinted = lines.length > 1;
    for (const warning of verdict.warnings ?? []) lines.push(`  WARNING: ${warning}`);
    if (!verdict.valid && fieldsPrinted && verdict.stage !== "parse" && verdict.stage !== "appraise") {
      lines.push("  (fields above are unverified)");
    }
    // Each line escaped (visibleOnOneLine): fields, details and warnings hold the evidence's text, as --json escapes it.
    process.stdout.write(`${lines.map(visibleOnOneLine).join("\n")}\n`);
    if (!verdict.valid) process.stderr.write(errorLine(verdict, options.at !== undefined));
  }
  process.exitCode = verdict.valid ? 0 : 1;
}
