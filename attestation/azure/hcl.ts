/**
 * Structure of the Azure confidential-VM HCL report (the paravisor's "HCLA" attestation report,
 * read from vTPM NV index 0x01400001). Parse only: sizes, magic, enums and the runtime-data JSON
 * shape. Nothing here is trusted until attestation/azure/verify.ts has verified the hardware report
 * and checked that REPORT_DATA binds the runtime data.
 *
 * Layout (little-endian):
 *   0x000  header (0x20): signature "HCLA", version u32, report_size u32, request_type u32,
 *          status u32, reserved 12 bytes
 *   0x020  hardware report, 1184 bytes: an SEV-SNP ATTESTATION_REPORT, or for TDX a 1024-byte
 *          TDREPORT followed by padding
 *   0x4C0  runtime-data header: data_size u32, version u32, report_type u32 (2 SNP, 4 TDX),
 *          hash_type u32 (1 SHA-256), variable_data_size u32
 *   0x4D4  runtime data: UTF-8 JSON {"keys":[JWK...], "vm-configuration":{...}, "user-data":"HEX"}
 */

import { describeValue } from "../../manifests/issues.ts";
import { ByteReader, bytesEqual, isAllZero, toHex, utf8 } from "../bytes.ts";
import { ParseError } from "../errors.ts";
import { parseUtf8Json } from "../json-text.ts";

export const HCL_HEADER_SIZE = 0x20;
export const HCL_HW_REPORT_OFFSET = 0x20;
export const HCL_HW_REPORT_SIZE = 0x4a0;
export const HCL_RUNTIME_HEADER_OFFSET = 0x4c0;
export const HCL_RUNTIME_HEADER_SIZE = 20;
export const HCL_RUNTIME_DATA_OFFSET = HCL_RUNTIME_HEADER_OFFSET + HCL_RUNTIME_HEADER_SIZE;
export const TDREPORT_SIZE = 1024;

export const HCL_REPORT_TYPE = { snp: 2, tdx: 4 } as const;
export const HCL_HASH_TYPE_SHA256 = 1;

/**
 * Size of `user-data`: the paravisor copies NV index 0x01400002, which the guest writes with its
 * REPORT_DATA (64 bytes, attestation/providers/azure-vtpm.ts), as hex.
 */
const USER_DATA_BYTES = 64;
const USER_DATA_HEX = new RegExp(`^[0-9a-fA-F]{${2 * USER_DATA_BYTES}}$`);

/** Upper bound on the runtime JSON, far above what Azure emits (~1.2 KiB). */
const MAX_RUNTIME_DATA = 64 * 1024;

export interface RsaPublicJwk {
  readonly kid: string;
  readonly kty: "RSA";
  readonly n: string;
  readonly e: string;
}

export interface HclRuntimeData {
  /** The exact bytes REPORT_DATA commits to. */
  readonly json: Uint8Array;
  readonly keys: readonly Readonly<Record<string, unknown>>[];
  /** The vTPM attestation key (kid "HCLAkPub"). */
  readonly akPub: RsaPublicJwk;
  readonly vmConfiguration: Readonly<Record<string, unknown>>;
  /** `vmUniqueId` from vm-configuration, when present. */
  readonly vmUniqueId: string | null;
  /** `user-data` as written (64 bytes as 128 hex digits, either case), or null when absent. */
  readonly userData: string | null;
}

export interface HclReport {
  /** The report as given: in a verified result, bytes for re-encoding or archiving, not a verified value (its header is unauthenticated). */
  readonly raw: Uint8Array;
  readonly version: number;
  readonly reportSize: number;
  readonly requestType: number;
  readonly status: number;
  readonly reportType: "snp" | "tdx";
  /** The 1184-byte hardware report region. */
  readonly hardwareReport: Uint8Array;
  /** For TDX: the 1024-byte TDREPORT; null for SNP. */
  readonly tdReport: Uint8Array | null;
  readonly runtimeDataVersion: number;
  readonly runtimeData: HclRuntimeData;
}

function fail(message: string, cause?: unknown): ParseError {
  return new ParseError(
    "AZURE_HCL_REPORT_MALFORMED",
    `HCL report: ${message}`,
    cause === undefined ? undefined : { cause },
  );
}

function parseRuntimeData(json: Uint8Array): HclRuntimeData {
  // Read as every reader of hashed or signed JSON reads it (parseUtf8Json): JSON.parse keeps the
  // last of two equal names, so the hashed bytes could hold a member the parsed object does not (a
  // second "keys" or "vm-configuration" replacing the first), and a byte order mark or a byte that
  // is not UTF-8 would be two spellings of one text.
  let value: unknown;
  try {
    value = parseUtf8Json(json);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw fail(`runtime data: ${error.message}`, error);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw fail("runtime data: expected a JSON object");
  const obj = value as Record<string, unknown>;
  const keys = obj.keys;
  if (!Array.isArray(keys) || !keys.every((k) => k !== null && typeof k === "object")) {
    throw fail("runtime data keys: expected an array of JWK objects");
  }
  const aks = keys.filter((k) => (k as { kid?: unknown }).kid === "HCLAkPub") as Record<string, unknown>[];
  if (aks.length !== 1) throw fail(`runtime data keys: expected exactly one HCLAkPub, found ${aks.length}`);
  const ak = aks[0] as Record<string, unknown>;
  if (ak.kty !== "RSA" || typeof ak.n !== "string" || typeof ak.e !== "string") {
    throw fail("runtime data HCLAkPub: expected an RSA JWK with n and e");
  }
  const config = obj["vm-configuration"];
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    throw fail("runtime data vm-configuration: expected an object");
  }
  const vmUniqueId = (config as Record<string, unknown>).vmUniqueId;
  const userData = obj["user-data"];
  if (userData !== undefined && !(typeof userData === "string" && USER_DATA_HEX.test(userData))) {
    const found =
      typeof userData !== "string"
        ? describeValue(userData)
        : /^[0-9a-fA-F]*$/.test(userData)
          ? `${userData.length} hex digits`
          : `${userData.length} characters that are not all hex digits`;
    throw fail(
      `runtime data user-data: expected ${USER_DATA_BYTES} bytes as ${2 * USER_DATA_BYTES} hex digits, found ${found}`,
    );
  }
  return {
    json,
    keys: keys as Record<string, unknown>[],
    akPub: { kid: "HCLAkPub", kty: "RSA", n: ak.n, e: ak.e },
    vmConfiguration: config as Record<string, unknown>,
    vmUniqueId: typeof vmUniqueId === "string" ? vmUniqueId : null,
    userData: typeof userData === "string" ? userData : null,
  };
}

/** Parses an HCL report; throws ParseError AZURE_HCL_REPORT_MALFORMED / AZURE_HCL_UNSUPPORTED. */
export function parseHclReport(input: Uint8Array): HclReport {
  const r = new ByteReader(input, "HCL report");
  if (!bytesEqual(r.slice(0, 4, "signature"), utf8("HCLA"))) {
    throw fail(`signature: expected "HCLA", found ${toHex(r.bytes.subarray(0, 4))}`);
  }
  const version = r.u32(4, "version");
  const reportSize = r.u32(8, "report_size");
  const requestType = r.u32(12, "request_type");
  const status = r.u32(16, "status");
  const hardwareReport = r.slice(HCL_HW_REPORT_OFFSET, HCL_HW_REPORT_SIZE, "hardware report");
  const dataSize = r.u32(HCL_RUNTIME_HEADER_OFFSET, "runtime data_size");
  const runtimeDataVersion = r.u32(HCL_RUNTIME_HEADER_OFFSET + 4, "runtime version");
  const reportTypeCode = r.u32(HCL_RUNTIME_HEADER_OFFSET + 8, "runtime report_type");
  const hashType = r.u32(HCL_RUNTIME_HEADER_OFFSET + 12, "runtime hash_type");
  const variableSize = r.u32(HCL_RUNTIME_HEADER_OFFSET + 16, "runtime variable_data_size");

  if (status !== 0) throw fail(`status: expected 0, found ${status}`);
  const reportType =
    reportTypeCode === HCL_REPORT_TYPE.snp ? "snp" : reportTypeCode === HCL_REPORT_TYPE.tdx ? "tdx" : undefined;
  if (reportType === undefined) {
    throw new ParseError(
      "AZURE_HCL_UNSUPPORTED",
      `HCL report: report_type expected 2 (SNP) or 4 (TDX), found ${reportTypeCode}`,
    );
  }
  if (hashType !== HCL_HASH_TYPE_SHA256) {
    throw new ParseError("AZURE_HCL_UNSUPPORTED", `HCL report: hash_type expected 1 (SHA-256), found ${hashType}`);
  }
  if (variableSize === 0 || variableSize > MAX_RUNTIME_DATA) {
    throw fail(`variable_data_size: expected 1..${MAX_RUNTIME_DATA}, found ${variableSize}`);
  }
  if (dataSize !== HCL_RUNTIME_HEADER_SIZE + variableSize) {
    throw fail(
      `data_size: expected ${HCL_RUNTIME_HEADER_SIZE + variableSize} (header + variable data), found ${dataSize}`,
    );
  }
  if (reportSize !== HCL_RUNTIME_HEADER_OFFSET + dataSize) {
    throw fail(`report_size: expected ${HCL_RUNTIME_HEADER_OFFSET + dataSize}, found ${reportSize}`);
  }
  const json = r.slice(HCL_RUNTIME_DATA_OFFSET, variableSize, "runtime data");
  // Whatever follows the runtime data is outside the report (Azure pads the NV index with zeros).
  if (!isAllZero(r.bytes.subarray(HCL_RUNTIME_DATA_OFFSET + variableSize))) {
    throw fail("padding after the runtime data: expected zero bytes, found data");
  }
  return {
    raw: r.bytes.slice(),
    version,
    reportSize,
    requestType,
    status,
    reportType,
    hardwareReport,
    tdReport: reportType === "tdx" ? hardwareReport.slice(0, TDREPORT_SIZE) : null,
    runtimeDataVersion,
    runtimeData: parseRuntimeData(json),
  };
}

/** TDREPORT fields (Intel TDX module ABI: REPORTMACSTRUCT, TEE_TCB_INFO, TDINFO). */
export const TDREPORT_FIELDS = {
  reportData: [128, 64],
  teeTcbSvn: [264, 16],
  mrSeam: [280, 48],
  mrSignerSeam: [328, 48],
  seamAttributes: [376, 8],
  tdAttributes: [512, 8],
  xfam: [520, 8],
  mrTd: [528, 48],
  mrConfigId: [576, 48],
  mrOwner: [624, 48],
  mrOwnerConfig: [672, 48],
  rtmr0: [720, 48],
  rtmr1: [768, 48],
  rtmr2: [816, 48],
  rtmr3: [864, 48],
} as const satisfies Record<string, readonly [number, number]>;

export type TdReportField = keyof typeof TDREPORT_FIELDS;

export function tdReportField(tdReport: Uint8Array, field: TdReportField): Uint8Array {
  const [offset, size] = TDREPORT_FIELDS[field];
  return new ByteReader(tdReport, "TDREPORT").slice(offset, size, field);
}
