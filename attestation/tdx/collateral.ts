/**
 * Intel PCS collateral for TDX: TCB info (`{"tcbInfo": {...}, "signature": "hex"}`, id "TDX",
 * version 3) and QE identity (`{"enclaveIdentity": {...}, "signature": "hex"}`, id "TD_QE",
 * version 2), each with its issuer chain (Intel SGX TCB Signing ← Intel SGX Root CA).
 *
 * Parsing: the signature covers the EXACT bytes of the `tcbInfo` / `enclaveIdentity` value as it
 * appears in the response body, so the parser locates that value's byte range in the original input
 * (a small scanner over the top-level object) and never re-serialises. The meaning is then read by
 * `JSON.parse` of exactly those bytes, so what we check is what Intel signed. Duplicate or unknown
 * top-level keys are refused (a second `tcbInfo` could otherwise be signed while another is read),
 * and so is a member named twice at any depth inside the signed value (JSON.parse reads the last of
 * the two, another reader of the same signed bytes may read the first). The body must be UTF-8.
 *
 * Verification (`verifyTdxCollateralSignature`): the issuer chain to the pinned root, the signer
 * being the root's TCB signing certificate (subject CN "Intel SGX TCB Signing", not a CA), the P-256
 * signature over the raw value, and the collateral's own validity window (issueDate ≤ at ≤
 * nextUpdate). The signer-certificate validity follows an EXPLICIT rule, because the only Intel TCB
 * Signing certificate available expired on 2025-05-21 while Intel kept signing collateral with the
 * same key (it re-issued the certificate; the re-issued one is not in our fixtures):
 *
 *   - "strict" (default): the signing chain must be valid at the verification time `at`.
 *     Fails COLLATERAL_SIGNER_EXPIRED for any collateral verified after 2025-05-21 with that cert.
 *   - "at-issue-date": the signing chain must be valid at the collateral's `issueDate` (the time
 *     Intel signed it), as for a time-stamped signature. Still fails for collateral issued after
 *     the signer's notAfter (every 2025-10 / 2026-02 file in the fixtures).
 *   - "accept-expired-signer": the signing chain's signatures and names are fully checked and the
 *     signer must have been valid at some point up to `issueDate` (notBefore ≤ issueDate), but its
 *     notAfter is NOT enforced. The result then carries `signerExpired: true` and a warning, which
 *     `verify-evidence` prints in its verdict (`warnings`). The appraisal policy has no field about
 *     it: the relaxation is the caller's explicit choice (the SDK and attestation documents pass
 *     the enclave's collateral always in strict mode). Use only when you know the key was
 *     re-certified.
 *
 * In every mode the signer's notBefore must be at or before the collateral's `issueDate`
 * (COLLATERAL_SIGNER_NOT_YET_VALID: it claims a signing time before its signer was certified).
 *
 * Collateral past its nextUpdate fails COLLATERAL_EXPIRED unless the caller sets
 * `acceptStaleCollateral: true` (then `stale: true` is reported); collateral issued after `at`
 * fails COLLATERAL_NOT_YET_VALID (never waived).
 */
import { readUtcTime } from "../../sealed/time.ts";
import { fromHex } from "../bytes.ts";
import { verifyEcdsa } from "../crypto.ts";
import { AttestationError, ConfigurationError, ParseError, VerifyError } from "../errors.ts";
import { DuplicateMemberError, parseJsonText } from "../json-text.ts";
import { describeUntrusted } from "../untrusted-text.ts";
import { notUtf8Found } from "../utf8.ts";
import { type Certificate, checkSubjectRole, checkValidity, parsePemCertificates, verifyChain } from "../x509.ts";

export const TCB_STATUSES = [
  "UpToDate",
  "SWHardeningNeeded",
  "ConfigurationNeeded",
  "ConfigurationAndSWHardeningNeeded",
  "OutOfDate",
  "OutOfDateConfigurationNeeded",
  "Revoked",
] as const;
export type TcbStatus = (typeof TCB_STATUSES)[number];

/**
 * The statuses an ISVSVN TCB level may have: a TDX module's (`tdxModuleIdentities[].tcbLevels`), in
 * Intel's PCS schema and Intel's QVL (VALID_MODULE_TCB_STATUSES; another is TCB_UNRECOGNIZED_STATUS
 * there), and a TD QE identity's (`enclaveIdentity.tcbLevels`), in Intel's PCS schema (QVL reads any
 * status there but treats all but UpToDate and Revoked as OutOfDate). The convergence with the
 * platform status knows only these, so another would be silently ignored.
 */
export const ISVSVN_TCB_STATUSES = ["UpToDate", "OutOfDate", "Revoked"] as const satisfies readonly TcbStatus[];
export type IsvSvnTcbStatus = (typeof ISVSVN_TCB_STATUSES)[number];

export type CollateralSignerValidity = "strict" | "at-issue-date" | "accept-expired-signer";
export const COLLATERAL_SIGNER_VALIDITY_MODES: readonly CollateralSignerValidity[] = [
  "strict",
  "at-issue-date",
  "accept-expired-signer",
];

export interface TdxTcbLevel {
  readonly sgxTcbComponents: readonly number[];
  readonly pceSvn: number;
  readonly tdxTcbComponents: readonly number[];
  readonly tcbDate: string;
  readonly tcbStatus: TcbStatus;
  readonly advisoryIds: readonly string[];
}

export interface IsvSvnTcbLevel {
  readonly isvSvn: number;
  readonly tcbDate: string;
  readonly tcbStatus: IsvSvnTcbStatus;
  readonly advisoryIds: readonly string[];
}

export interface TdxModuleIdentity {
  readonly id: string;
  readonly mrSigner: Uint8Array;
  readonly attributes: Uint8Array;
  readonly attributesMask: Uint8Array;
  readonly tcbLevels: readonly IsvSvnTcbLevel[];
}

interface SignedCollateralCommon {
  /** The exact signed bytes (the value of `tcbInfo` / `enclaveIdentity` in the body). */
  readonly signedBytes: Uint8Array;
  /** Raw r||s P-256 signature. */
  readonly signature: Uint8Array;
  readonly version: number;
  readonly issueDate: Date;
  readonly nextUpdate: Date;
  readonly tcbEvaluationDataNumber: number;
}

export interface TdxTcbInfo extends SignedCollateralCommon {
  readonly kind: "tdx-tcb-info";
  readonly id: "TDX";
  readonly fmspc: Uint8Array;
  readonly pceId: Uint8Array;
  /** Always 0 (the only type Intel's QVL supports; others are refused). */
  readonly tcbType: number;
  readonly tdxModule: {
    readonly mrSigner: Uint8Array;
    readonly attributes: Uint8Array;
    readonly attributesMask: Uint8Array;
  };
  readonly tdxModuleIdentities: readonly TdxModuleIdentity[];
  readonly tcbLevels: readonly TdxTcbLevel[];
}

export interface TdQeIdentity extends SignedCollateralCommon {
  readonly kind: "td-qe-identity";
  readonly id: "TD_QE";
  readonly miscSelect: number;
  readonly miscSelectMask: number;
  readonly attributes: Uint8Array;
  readonly attributesMask: Uint8Array;
  readonly mrSigner: Uint8Array;
  readonly isvProdId: number;
  readonly tcbLevels: readonly IsvSvnTcbLevel[];
}

// --- exact byte range of a top-level JSON value ------------------------------------------------

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

function malformed(what: string, message: string, cause?: unknown): never {
  throw new ParseError("TDX_COLLATERAL_MALFORMED", `${what}: ${message}`, cause === undefined ? undefined : { cause });
}

function skipWs(b: Uint8Array, i: number): number {
  while (i < b.length && WS.has(b[i] as number)) i++;
  return i;
}

/** End (exclusive) of the JSON string starting at `i` (which holds the opening quote). */
function stringEnd(b: Uint8Array, i: number, what: string): number {
  for (let j = i + 1; j < b.length; j++) {
    const c = b[j] as number;
    if (c === 0x5c) j++;
    else if (c === 0x22) return j + 1;
  }
  return malformed(what, "unterminated string");
}

/** End (exclusive) of the JSON value starting at `i`. Well-formedness is checked by JSON.parse later. */
function valueEnd(b: Uint8Array, i: number, what: string): number {
  const c = b[i];
  if (c === 0x22) return stringEnd(b, i, what);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (let j = i; j < b.length; j++) {
      const d = b[j] as number;
      if (d === 0x22) j = stringEnd(b, j, what) - 1;
      else if (d === 0x7b || d === 0x5b) depth++;
      else if (d === 0x7d || d === 0x5d) {
        depth--;
        if (depth === 0) return j + 1;
      }
    }
    return malformed(what, "unterminated object or array");
  }
  let j = i;
  while (j < b.length && !WS.has(b[j] as number) && b[j] !== 0x2c && b[j] !== 0x7d) j++;
  if (j === i) malformed(what, `expected a value at offset ${i}`);
  return j;
}

/**
 * Byte ranges of the values of a top-level JSON object's keys; duplicate keys are refused. `bytes`
 * are UTF-8 (splitSigned decodes the whole body strictly first), so a key's bytes are too.
 */
export function topLevelValueRanges(bytes: Uint8Array, what: string): Map<string, { start: number; end: number }> {
  const ranges = new Map<string, { start: number; end: number }>();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let i = skipWs(bytes, 0);
  if (bytes[i] !== 0x7b) malformed(what, "expected a JSON object");
  i = skipWs(bytes, i + 1);
  if (bytes[i] === 0x7d) return ranges;
  for (;;) {
    if (bytes[i] !== 0x22) malformed(what, `expected a key at offset ${i}`);
    const keyEnd = stringEnd(bytes, i, what);
    let key: string;
    try {
      key = JSON.parse(decoder.decode(bytes.subarray(i, keyEnd))) as string;
    } catch (error) {
      // Not reached through splitSigned, whose body parsed as JSON; refused all the same.
      malformed(what, `bad key at offset ${i}`, error);
    }
    i = skipWs(bytes, keyEnd);
    if (bytes[i] !== 0x3a) malformed(what, `expected ':' after key ${describeUntrusted(key)}`);
    const start = skipWs(bytes, i + 1);
    const end = valueEnd(bytes, start, what);
    if (ranges.has(key)) malformed(what, `key ${describeUntrusted(key)} appears twice`);
    ranges.set(key, { start, end });
    i = skipWs(bytes, end);
    if (bytes[i] === 0x2c) {
      i = skipWs(bytes, i + 1);
      continue;
    }
    if (bytes[i] === 0x7d) {
      if (skipWs(bytes, i + 1) !== bytes.length) malformed(what, "data after the JSON object");
      return ranges;
    }
    malformed(what, `expected ',' or '}' at offset ${i}`);
  }
}

function toBytes(input: Uint8Array | string): Uint8Array {
  return typeof input === "string" ? new TextEncoder().encode(input) : new Uint8Array(input);
}

function splitSigned(
  input: Uint8Array | string,
  valueKey: string,
  what: string,
): { signedBytes: Uint8Array; value: Record<string, unknown>; signature: Uint8Array } {
  const bytes = toBytes(input);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  // The whole body well-formed and each member once at every depth, in one call (parseJsonText).
  // A member named twice is refused only after the scanner's own refusals below: a key twice at
  // the top keeps the scanner's words, and a key other than the two is named before it.
  let duplicate: DuplicateMemberError | null = null;
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch (error) {
    malformed(what, `expected UTF-8 JSON, found ${notUtf8Found(bytes)}`, error);
  }
  try {
    parseJsonText(text);
  } catch (error) {
    if (!(error instanceof DuplicateMemberError)) malformed(what, "not valid UTF-8 JSON", error);
    duplicate = error;
  }
  const ranges = topLevelValueRanges(bytes, what);
  for (const key of ranges.keys()) {
    if (key !== valueKey && key !== "signature") malformed(what, `unexpected top-level key ${describeUntrusted(key)}`);
  }
  const valueRange = ranges.get(valueKey);
  const sigRange = ranges.get("signature");
  if (valueRange === undefined) malformed(what, `missing "${valueKey}"`);
  if (sigRange === undefined) malformed(what, `missing "signature"`);
  // A key twice at the top was refused above, in the scanner's words; this one is twice deeper,
  // inside the signed value (the signature is a string), and its message names its path from the top.
  if (duplicate !== null) malformed(what, duplicate.message, duplicate);
  const signedBytes = bytes.slice(valueRange.start, valueRange.end);
  const value = JSON.parse(decoder.decode(signedBytes)) as unknown;
  if (typeof value !== "object" || value === null || Array.isArray(value))
    malformed(what, `"${valueKey}" is not an object`);
  const sigText = JSON.parse(decoder.decode(bytes.subarray(sigRange.start, sigRange.end))) as unknown;
  if (typeof sigText !== "string" || !/^[0-9a-fA-F]{128}$/.test(sigText)) {
    malformed(what, `"signature": expected 128 hex characters (P-256 r||s)`);
  }
  return { signedBytes, value: value as Record<string, unknown>, signature: fromHex(sigText, "signature") };
}

// --- field readers -----------------------------------------------------------------------------

type Obj = Record<string, unknown>;

function obj(v: unknown, path: string, what: string): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) malformed(what, `${path}: expected an object`);
  return v as Obj;
}
function arr(v: unknown, path: string, what: string): unknown[] {
  if (!Array.isArray(v)) malformed(what, `${path}: expected an array`);
  return v;
}
function int(v: unknown, path: string, what: string, max = 0xffffffff): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
    malformed(what, `${path}: expected an integer 0..${max}, found ${describeUntrusted(v)}`);
  }
  return v;
}
function hex(v: unknown, bytes: number, path: string, what: string): Uint8Array {
  if (typeof v !== "string" || v.length !== bytes * 2 || !/^[0-9a-fA-F]*$/.test(v)) {
    malformed(what, `${path}: expected ${bytes * 2} hex characters`);
  }
  return fromHex(v, path);
}

/**
 * A collateral time in the one form Intel's PCS writes (issueDate, nextUpdate, tcbDate:
 * "2023-06-18T08:42:58Z", whole seconds, Zulu; every real document in the fixtures has it). The
 * round trip through Date refuses what Date would roll over (February 30, hour 24, second 60).
 */
function date(v: unknown, path: string, what: string): Date {
  const d = readUtcTime(v, "seconds");
  if (!(d instanceof Date)) {
    malformed(
      what,
      `${path}: expected an ISO-8601 UTC time to the second (YYYY-MM-DDTHH:MM:SSZ), found ${describeUntrusted(v)}`,
    );
  }
  return d;
}
function status(v: unknown, path: string, what: string): TcbStatus {
  if (typeof v !== "string" || !(TCB_STATUSES as readonly string[]).includes(v)) {
    malformed(what, `${path}: unknown tcbStatus ${describeUntrusted(v)}`);
  }
  return v as TcbStatus;
}
function isvSvnStatus(v: unknown, path: string, what: string): IsvSvnTcbStatus {
  if (typeof v !== "string" || !(ISVSVN_TCB_STATUSES as readonly string[]).includes(v)) {
    malformed(what, `${path}: expected one of ${ISVSVN_TCB_STATUSES.join(", ")}, found ${describeUntrusted(v)}`);
  }
  return v as IsvSvnTcbStatus;
}
function advisories(v: unknown, path: string, what: string): string[] {
  if (v === undefined) return [];
  return arr(v, path, what).map((a, i) => {
    if (typeof a !== "string") malformed(what, `${path}[${i}]: expected a string`);
    return a;
  });
}
function svnList(v: unknown, path: string, what: string): number[] {
  const list = arr(v, path, what);
  if (list.length !== 16) malformed(what, `${path}: expected 16 components, found ${list.length}`);
  return list.map((c, i) => int(obj(c, `${path}[${i}]`, what).svn, `${path}[${i}].svn`, what, 255));
}
function isvSvnLevels(v: unknown, path: string, what: string): IsvSvnTcbLevel[] {
  return arr(v, path, what).map((l, i) => {
    const level = obj(l, `${path}[${i}]`, what);
    return {
      isvSvn: int(obj(level.tcb, `${path}[${i}].tcb`, what).isvsvn, `${path}[${i}].tcb.isvsvn`, what, 0xffff),
      tcbDate: date(level.tcbDate, `${path}[${i}].tcbDate`, what).toISOString().replace(".000Z", "Z"),
      tcbStatus: isvSvnStatus(level.tcbStatus, `${path}[${i}].tcbStatus`, what),
      advisoryIds: advisories(level.advisoryIDs, `${path}[${i}].advisoryIDs`, what),
    };
  });
}

/**
 * The signed value of a TCB info or QE identity body (splitSigned) and the fields the two share,
 * once its `id` and `version` are the ones its parser reads (else TDX_COLLATERAL_UNSUPPORTED).
 */
function signedCollateral(
  input: Uint8Array | string,
  valueKey: "tcbInfo" | "enclaveIdentity",
  expected: { readonly id: string; readonly version: number },
  what: string,
): { value: Obj; common: SignedCollateralCommon } {
  const { signedBytes, value, signature } = splitSigned(input, valueKey, what);
  if (value.id !== expected.id) {
    throw new ParseError(
      "TDX_COLLATERAL_UNSUPPORTED",
      `${what}: id expected "${expected.id}", found ${describeUntrusted(value.id)}`,
    );
  }
  const version = int(value.version, "version", what);
  const common = {
    signedBytes,
    signature,
    version,
    issueDate: date(value.issueDate, "issueDate", what),
    nextUpdate: date(value.nextUpdate, "nextUpdate", what),
    tcbEvaluationDataNumber: int(value.tcbEvaluationDataNumber, "tcbEvaluationDataNumber", what),
  };
  if (version !== expected.version) {
    throw new ParseError(
      "TDX_COLLATERAL_UNSUPPORTED",
      `${what}: version expected ${expected.version}, found ${version}`,
    );
  }
  return { value, common };
}

/** Parses an Intel PCS TDX TCB info response body (v3). */
export function parseTdxTcbInfo(input: Uint8Array | string): TdxTcbInfo {
  const what = "TDX TCB info";
  try {
    const { value, common } = signedCollateral(input, "tcbInfo", { id: "TDX", version: 3 }, what);
    // QVL (TcbInfo.cpp) supports TCB type 0 only: the TCB levels' component SVNs compared one by one.
    const tcbType = int(value.tcbType, "tcbType", what);
    if (tcbType !== 0) {
      throw new ParseError("TDX_COLLATERAL_UNSUPPORTED", `${what}: tcbType expected 0, found ${tcbType}`);
    }
    const module = obj(value.tdxModule, "tdxModule", what);
    const identities =
      value.tdxModuleIdentities === undefined ? [] : arr(value.tdxModuleIdentities, "tdxModuleIdentities", what);
    return {
      kind: "tdx-tcb-info",
      id: "TDX",
      ...common,
      fmspc: hex(value.fmspc, 6, "fmspc", what),
      pceId: hex(value.pceId, 2, "pceId", what),
      tcbType,
      tdxModule: {
        mrSigner: hex(module.mrsigner, 48, "tdxModule.mrsigner", what),
        attributes: hex(module.attributes, 8, "tdxModule.attributes", what),
        attributesMask: hex(module.attributesMask, 8, "tdxModule.attributesMask", what),
      },
      tdxModuleIdentities: identities.map((m, i) => {
        const p = `tdxModuleIdentities[${i}]`;
        const identity = obj(m, p, what);
        if (typeof identity.id !== "string") malformed(what, `${p}.id: expected a string`);
        return {
          id: identity.id,
          mrSigner: hex(identity.mrsigner, 48, `${p}.mrsigner`, what),
          attributes: hex(identity.attributes, 8, `${p}.attributes`, what),
          attributesMask: hex(identity.attributesMask, 8, `${p}.attributesMask`, what),
          tcbLevels: isvSvnLevels(identity.tcbLevels, `${p}.tcbLevels`, what),
        };
      }),
      tcbLevels: arr(value.tcbLevels, "tcbLevels", what).map((l, i) => {
        const p = `tcbLevels[${i}]`;
        const level = obj(l, p, what);
        const tcb = obj(level.tcb, `${p}.tcb`, what);
        return {
          sgxTcbComponents: svnList(tcb.sgxtcbcomponents, `${p}.tcb.sgxtcbcomponents`, what),
          pceSvn: int(tcb.pcesvn, `${p}.tcb.pcesvn`, what, 0xffff),
          tdxTcbComponents: svnList(tcb.tdxtcbcomponents, `${p}.tcb.tdxtcbcomponents`, what),
          tcbDate: date(level.tcbDate, `${p}.tcbDate`, what).toISOString().replace(".000Z", "Z"),
          tcbStatus: status(level.tcbStatus, `${p}.tcbStatus`, what),
          advisoryIds: advisories(level.advisoryIDs, `${p}.advisoryIDs`, what),
        };
      }),
    };
  } catch (error) {
    if (error instanceof AttestationError) throw error;
    malformed(what, "malformed", error);
  }
}

/** Parses an Intel PCS TD_QE enclave identity response body (v2). */
export function parseTdQeIdentity(input: Uint8Array | string): TdQeIdentity {
  const what = "TD QE identity";
  try {
    const { value, common } = signedCollateral(input, "enclaveIdentity", { id: "TD_QE", version: 2 }, what);
    // The hex is the report's bytes in order, and MISCSELECT a little-endian word (Intel's QVL
    // EnclaveReportVerifier swaps the bytes; go-tdx-guest reads binary.LittleEndian): "01000000" is bit 0.
    const u32 = (v: unknown, path: string) => {
      const b = hex(v, 4, path, what);
      return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
    };
    return {
      kind: "td-qe-identity",
      id: "TD_QE",
      ...common,
      miscSelect: u32(value.miscselect, "miscselect"),
      miscSelectMask: u32(value.miscselectMask, "miscselectMask"),
      attributes: hex(value.attributes, 16, "attributes", what),
      attributesMask: hex(value.attributesMask, 16, "attributesMask", what),
      mrSigner: hex(value.mrsigner, 32, "mrsigner", what),
      isvProdId: int(value.isvprodid, "isvprodid", what, 0xffff),
      tcbLevels: isvSvnLevels(value.tcbLevels, "tcbLevels", what),
    };
  } catch (error) {
    if (error instanceof AttestationError) throw error;
    malformed(what, "malformed", error);
  }
}

/** Parses a PEM issuer chain (`*-Issuer-Chain` header of Intel PCS): [signer, root]. */
export function parseIssuerChain(pem: Uint8Array | string, what: string): readonly [Certificate, Certificate] {
  const text = typeof pem === "string" ? pem : new TextDecoder().decode(pem);
  const certs = parsePemCertificates(text);
  if (certs.length !== 2) {
    throw new ParseError(
      "TDX_COLLATERAL_CHAIN_LENGTH",
      `${what} issuer chain: expected 2 certificates (signer, root), found ${certs.length}`,
    );
  }
  return certs as [Certificate, Certificate];
}

/**
 * The signer the root issued must be its TCB signing certificate, as Intel's QVL and go-tdx-guest
 * require: subject CN "Intel SGX TCB Signing" and not a CA. The root issues other certificates (the
 * PCK CAs) whose keys are not meant to vouch for collateral. The simulator's signer carries the same
 * CN (under its own root, with its SIMULATED OU and O), so this does not tell the two apart: the
 * pinned root does.
 */
function checkTcbSigningIdentity(signer: Certificate, what: string): void {
  const tcbSigning = { commonNames: ["Intel SGX TCB Signing"], endEntity: true };
  checkSubjectRole(signer, `${what} signer`, tcbSigning, "COLLATERAL_SIGNER_NOT_TCB_SIGNING");
}

export interface CollateralCheckOptions {
  readonly at: Date;
  /** The pinned root the collateral must chain to (the same anchor as the PCK chain). */
  readonly root: Certificate;
  readonly signerValidity: CollateralSignerValidity;
  readonly acceptStaleCollateral: boolean;
}

export interface CollateralCheckResult {
  readonly signer: Certificate;
  /** True when the signer certificate's notAfter is before `at` (only possible under accept-expired-signer or at-issue-date). */
  readonly signerExpired: boolean;
  /** True when `at` is past nextUpdate (only possible with acceptStaleCollateral). */
  readonly stale: boolean;
}

/**
 * Verifies one signed collateral document: issuer chain to `root` (validity per
 * `signerValidity`), the signature over the exact signed bytes, and issueDate/nextUpdate at `at`.
 */
export async function verifyTdxCollateralSignature(
  doc: TdxTcbInfo | TdQeIdentity,
  issuerChain: readonly [Certificate, Certificate],
  options: CollateralCheckOptions,
): Promise<CollateralCheckResult> {
  const what = doc.kind === "tdx-tcb-info" ? "TDX TCB info" : "TD QE identity";
  if (!COLLATERAL_SIGNER_VALIDITY_MODES.includes(options.signerValidity)) {
    throw new ConfigurationError(
      "TDX_BAD_OPTION",
      `collateralSignerValidity: expected one of ${COLLATERAL_SIGNER_VALIDITY_MODES.join(", ")}, found ${String(options.signerValidity)}`,
    );
  }
  const [signer, chainRoot] = issuerChain;
  const chain = [
    { cert: signer, role: `${what} signer` },
    { cert: chainRoot, role: `${what} root` },
  ];
  const { at } = options;
  // 1. The signing chain: names, CA flags, signatures and pinned root are always checked in full
  //    (verifyChain); only the instant at which the signer's validity window is evaluated differs.
  const signerTime =
    options.signerValidity === "strict"
      ? at
      : options.signerValidity === "at-issue-date"
        ? doc.issueDate
        : new Date(Math.min(at.getTime(), signer.notAfter.getTime()));
  if (options.signerValidity !== "accept-expired-signer" && signerTime.getTime() > signer.notAfter.getTime()) {
    throw new VerifyError(
      "COLLATERAL_SIGNER_EXPIRED",
      `${what}: signer certificate "${signer.subject}" expired ${signer.notAfter.toISOString()}, checked at ${signerTime.toISOString()} (collateralSignerValidity "${options.signerValidity}", collateral issueDate ${doc.issueDate.toISOString()})`,
    );
  }
  // The signer's notBefore against the collateral's issueDate, not against `at` (verifyChain below
  // checks the window at signerTime, which is `at` under "strict"): collateral that claims to have
  // been signed before its signer was certified is refused in every mode. Intel's QVL has no such
  // check (TCBInfoVerifier / EnclaveIdentityVerifier compare only the signer's notAfter with the
  // expiration check date, and QvE reports issue dates in its supplemental data without judging
  // them); we keep it, stricter, because "at-issue-date" and "accept-expired-signer" take the
  // signer's validity at or up to issueDate and would mean nothing with a signer certified later.
  // Real collateral passes it (every fixture's issueDate is years after its signer's notBefore,
  // 2018-05-21; PCS serves the current chain with each document). Its own code, not
  // CERT_NOT_YET_VALID: no verification time (--at) makes it valid, so verify-evidence must not
  // point to one.
  if (signer.notBefore.getTime() > doc.issueDate.getTime()) {
    throw new VerifyError(
      "COLLATERAL_SIGNER_NOT_YET_VALID",
      `${what} signer certificate "${signer.subject}": not valid before ${signer.notBefore.toISOString()}, collateral issueDate ${doc.issueDate.toISOString()}`,
    );
  }
  checkValidity(chainRoot, at, `${what} root`);
  await verifyChain(chain, [options.root], signerTime);
  checkTcbSigningIdentity(signer, what);
  // 2. The signature over the exact raw bytes of the value.
  if (signer.publicKey.kind !== "ec" || signer.publicKey.curve !== "P-256") {
    throw new VerifyError("TDX_COLLATERAL_SIGNATURE_INVALID", `${what}: signer key is not ECDSA P-256`);
  }
  const valid = await verifyEcdsa({
    curve: "P-256",
    hash: "SHA-256",
    spki: signer.publicKey.spki,
    signature: doc.signature,
    data: doc.signedBytes,
  });
  if (!valid) {
    throw new VerifyError(
      "TDX_COLLATERAL_SIGNATURE_INVALID",
      `${what}: signature does not verify under "${signer.subject}" over the raw ${doc.kind === "tdx-tcb-info" ? "tcbInfo" : "enclaveIdentity"} bytes`,
    );
  }
  // 3. The collateral's own validity window.
  if (at.getTime() < doc.issueDate.getTime()) {
    throw new VerifyError(
      "COLLATERAL_NOT_YET_VALID",
      `${what}: issueDate ${doc.issueDate.toISOString()} is after the verification time ${at.toISOString()}`,
    );
  }
  const stale = at.getTime() > doc.nextUpdate.getTime();
  if (stale && !options.acceptStaleCollateral) {
    throw new VerifyError(
      "COLLATERAL_EXPIRED",
      `${what}: nextUpdate ${doc.nextUpdate.toISOString()} is before the verification time ${at.toISOString()} (issueDate ${doc.issueDate.toISOString()})`,
    );
  }
  return { signer, signerExpired: at.getTime() > signer.notAfter.getTime(), stale };
}
