/**
 * Intel TDX quote parsing (structure only): quote versions 4 and 5 with ECDSA-P256 attestation keys
 * and certification data type 6 (QE report + PCK certificate chain), following Intel's "TDX DCAP
 * Quote Generation Library and Quote Verification Library" layout (see the fixtures README).
 *
 * What it checks: every size and length field, the version / key type / TEE type / QE vendor enums,
 * the certification-data types (6, then 5 = PEM PCK chain), that the nested lengths add up exactly,
 * the PEM chain (three certificates, nothing else besides whitespace and NUL terminators), and the
 * DER of the PCK leaf's SGX extension (FMSPC, PCE-ID, TCB component SVNs, PCESVN, CPUSVN, SGX type;
 * Platform Instance ID and Configuration of a Platform CA's leaf), entry by entry as Intel's QVL reads it.
 * What it does not check: any signature, certificate validity, key binding or TCB level; that is
 * verify.ts. A parsed quote is untrusted data.
 *
 * Trailing bytes: real quotes often sit in a larger buffer (configfs-tsm outblobs, GCP's 8000-byte
 * buffer, go-tdx-guest's test trailer). Bytes after `signature data` are ACCEPTED, counted in
 * `trailingBytes` and kept apart in `trailing`; they are never part of any signed or hashed input
 * (`signedBytes` ends at the body), so they cannot influence a verdict. Callers that display a quote
 * show the count, so a non-zero trailer is visible rather than silently dropped.
 */
import { ByteReader, isAllZero, toHex } from "../bytes.ts";
import {
  type DerNode,
  decodeOid,
  decodeSmallInteger,
  derChildren,
  derContent,
  expectTag,
  readDerExact,
  TAG,
} from "../der.ts";
import { AttestationError, ParseError } from "../errors.ts";
import { type Certificate, extension, parsePemCertificates } from "../x509.ts";

export const TDX_HEADER_SIZE = 48;
export const TDX_10_BODY_SIZE = 584;
export const TDX_15_BODY_SIZE = 648;
export const SGX_REPORT_BODY_SIZE = 384;
export const ATTESTATION_KEY_TYPE_ECDSA_P256 = 2;
export const TEE_TYPE_TDX = 0x81;
export const CERT_DATA_TYPE_QE_REPORT = 6;
export const CERT_DATA_TYPE_PCK_CHAIN_PEM = 5;
/** Intel's QE vendor ID (939a7233-f79c-4ca9-940a-0db3957f0607). */
export const INTEL_QE_VENDOR_ID = "939a7233f79c4ca9940a0db3957f0607";
/** OID of the SGX extension in PCK certificates. */
export const SGX_EXTENSION_OID = "1.2.840.113741.1.13.1";

export interface TdxQuoteHeader {
  readonly version: 4 | 5;
  readonly attestationKeyType: 2;
  readonly teeType: 0x81;
  /** Bytes 8..12: QE SVN and PCE SVN in the QE's own encoding (informational, not signed by the PCK). */
  readonly qeSvn: number;
  readonly pceSvn: number;
  readonly qeVendorId: Uint8Array;
  readonly userData: Uint8Array;
}

/**
 * The TD report body in the quote: the TDX 1.0 layout (584 bytes; every v4 quote and v5 body type 2,
 * whatever version the TDX module is) or the TDX 1.5 layout (648 bytes, v5 body type 3), which adds
 * TEE_TCB_SVN2 and MRSERVICETD.
 */
export interface TdxTdReportBody {
  readonly teeTcbSvn: Uint8Array;
  readonly mrSeam: Uint8Array;
  readonly mrSignerSeam: Uint8Array;
  readonly seamAttributes: Uint8Array;
  readonly tdAttributes: Uint8Array;
  readonly xfam: Uint8Array;
  readonly mrTd: Uint8Array;
  readonly mrConfigId: Uint8Array;
  readonly mrOwner: Uint8Array;
  readonly mrOwnerConfig: Uint8Array;
  readonly rtmrs: readonly [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  readonly reportData: Uint8Array;
  /**
   * The TDX 1.5 layout only: null when the quote uses the 1.0 layout, which does not carry them even
   * when the module has them (not reported, not zero).
   */
  readonly teeTcbSvn2: Uint8Array | null;
  readonly mrServiceTd: Uint8Array | null;
}

/** The QE's SGX report body (384 bytes), signed by the PCK key. */
export interface SgxReportBody {
  readonly cpuSvn: Uint8Array;
  readonly miscSelect: number;
  readonly attributes: Uint8Array;
  readonly mrEnclave: Uint8Array;
  readonly mrSigner: Uint8Array;
  readonly isvProdId: number;
  readonly isvSvn: number;
  readonly reportData: Uint8Array;
}

/** The SGX extension (1.2.840.113741.1.13.1) of a PCK leaf certificate. */
export interface PckSgxExtensions {
  readonly ppid: Uint8Array;
  /** The 16 SGX TCB component SVNs (…13.1.2.1 … 13.1.2.16). */
  readonly tcbComponents: readonly number[];
  readonly pceSvn: number;
  readonly cpuSvn: Uint8Array;
  readonly pceId: Uint8Array;
  readonly fmspc: Uint8Array;
  /** 0 = Standard, 1 = Scalable, 2 = Scalable with Integrity. */
  readonly sgxType: number;
}

export interface TdxQuote {
  readonly kind: "tdx-quote";
  /** A private copy of the input, trailing bytes included. */
  readonly raw: Uint8Array;
  readonly header: TdxQuoteHeader;
  /** Quote v5 body_type (2 = TDX 1.0 layout, 3 = TDX 1.5 layout); null for v4. */
  readonly bodyType: 2 | 3 | null;
  /** The body's layout (not the TDX module's version: a 1.5 module's v4 quote has the 1.0 layout). */
  readonly tdxVersion: "1.0" | "1.5";
  readonly body: TdxTdReportBody;
  /** Header + (v5 body descriptor) + body: the bytes the attestation key signed. */
  readonly signedBytes: Uint8Array;
  readonly signatureDataLength: number;
  /** Quote signature by the attestation key, raw r||s (64 bytes, big-endian). */
  readonly signature: Uint8Array;
  /** ECDSA-P256 attestation public key, raw x||y (64 bytes). */
  readonly attestationKey: Uint8Array;
  readonly qeReport: SgxReportBody;
  /** The 384 raw bytes of the QE report (what the PCK key signed). */
  readonly qeReportBytes: Uint8Array;
  readonly qeReportSignature: Uint8Array;
  readonly qeAuthData: Uint8Array;
  /** PCK chain as parsed from the PEM cert data: [leaf, PCK Platform/Processor CA, root]. */
  readonly pckChain: readonly [Certificate, Certificate, Certificate];
  readonly pckExtensions: PckSgxExtensions;
  /** Bytes after the signature data: accepted, never signed, never hashed (see module comment). */
  readonly trailingBytes: number;
  readonly trailing: Uint8Array;
}

function fail(code: string, message: string, cause?: unknown): never {
  throw new ParseError(code, message, cause === undefined ? undefined : { cause });
}

function parseBody(r: ByteReader, at: number, size: number): TdxTdReportBody {
  const f = (offset: number, length: number, name: string) => r.slice(at + offset, length, name);
  return {
    teeTcbSvn: f(0, 16, "TEE_TCB_SVN"),
    mrSeam: f(16, 48, "MRSEAM"),
    mrSignerSeam: f(64, 48, "MRSIGNERSEAM"),
    seamAttributes: f(112, 8, "SEAMATTRIBUTES"),
    tdAttributes: f(120, 8, "TDATTRIBUTES"),
    xfam: f(128, 8, "XFAM"),
    mrTd: f(136, 48, "MRTD"),
    mrConfigId: f(184, 48, "MRCONFIGID"),
    mrOwner: f(232, 48, "MROWNER"),
    mrOwnerConfig: f(280, 48, "MROWNERCONFIG"),
    rtmrs: [f(328, 48, "RTMR0"), f(376, 48, "RTMR1"), f(424, 48, "RTMR2"), f(472, 48, "RTMR3")],
    reportData: f(520, 64, "REPORTDATA"),
    teeTcbSvn2: size === TDX_15_BODY_SIZE ? f(584, 16, "TEE_TCB_SVN2") : null,
    mrServiceTd: size === TDX_15_BODY_SIZE ? f(600, 48, "MRSERVICETD") : null,
  };
}

/** Parses a 384-byte SGX report body (the QE report). */
export function parseSgxReportBody(bytes: Uint8Array): SgxReportBody {
  if (bytes.length !== SGX_REPORT_BODY_SIZE) {
    fail("TDX_QE_REPORT_SIZE", `QE report: expected ${SGX_REPORT_BODY_SIZE} bytes, found ${bytes.length}`);
  }
  const r = new ByteReader(bytes, "QE report");
  return {
    cpuSvn: r.slice(0, 16, "CPUSVN"),
    miscSelect: r.u32(16, "MISCSELECT"),
    attributes: r.slice(48, 16, "ATTRIBUTES"),
    mrEnclave: r.slice(64, 32, "MRENCLAVE"),
    mrSigner: r.slice(128, 32, "MRSIGNER"),
    isvProdId: r.u16(256, "ISVPRODID"),
    isvSvn: r.u16(258, "ISVSVN"),
    reportData: r.slice(320, 64, "REPORTDATA"),
  };
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]*?-----END CERTIFICATE-----/g;

function parsePckChain(pemBytes: Uint8Array): [Certificate, Certificate, Certificate] {
  // Real QEs NUL-terminate the PEM text; strip trailing NULs, then allow only PEM blocks and whitespace.
  let end = pemBytes.length;
  while (end > 0 && pemBytes[end - 1] === 0) end--;
  // Checked byte by byte: the "ascii" TextDecoder is windows-1252, which takes any byte.
  const nonAscii = pemBytes
    .subarray(0, end)
    .findIndex((b) => b > 0x7e || (b < 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09));
  if (nonAscii !== -1) {
    fail(
      "TDX_PCK_CHAIN_MALFORMED",
      `PCK certification data: expected ASCII PEM text, found byte 0x${(pemBytes[nonAscii] as number).toString(16).padStart(2, "0")} at offset ${nonAscii}`,
    );
  }
  const text = new TextDecoder().decode(pemBytes.subarray(0, end));
  if (text.replace(PEM_BLOCK, "").trim() !== "") {
    fail("TDX_PCK_CHAIN_MALFORMED", "PCK certification data: text outside the CERTIFICATE blocks");
  }
  const certs = parsePemCertificates(text);
  if (certs.length !== 3) {
    fail(
      "TDX_PCK_CHAIN_LENGTH",
      `PCK certification data: expected 3 certificates (leaf, CA, root), found ${certs.length}`,
    );
  }
  return certs as [Certificate, Certificate, Certificate];
}

function octets(node: DerNode | undefined, size: number, name: string): Uint8Array {
  const value = derContent(expectTag(node, TAG.OCTET_STRING, name));
  if (value.length !== size)
    fail("TDX_PCK_EXTENSION_MALFORMED", `${name}: expected ${size} bytes, found ${value.length}`);
  return value.slice();
}

const MALFORMED = "TDX_PCK_EXTENSION_MALFORMED";

/**
 * The top-level entries of the SGX extension (…13.1.N): .1–.5, and on a Platform CA's leaf also .6
 * and .7 (Intel's PCK certificate profile). As Intel's QVL (PckCertificate.cpp), either set is taken
 * whatever the issuer: the leaf is Intel-signed, so a stricter rule could only refuse genuine ones.
 */
const PROCESSOR_CA_ENTRIES = ["1", "2", "3", "4", "5"];
const PLATFORM_CA_ENTRIES = [...PROCESSOR_CA_ENTRIES, "6", "7"];
/** TCB (…13.1.2.N): 16 SGX TCB component SVNs, PCESVN (.17) and CPUSVN (.18). */
const TCB_ENTRIES = Array.from({ length: 18 }, (_, i) => `${i + 1}`);
/** Configuration (…13.1.7.N): dynamicPlatform, cachedKeys, SMTEnabled (all three, as Intel's QVL requires). */
const CONFIGURATION_ENTRIES = ["1", "2", "3"];

const listed = (suffixes: readonly string[]) => suffixes.map((s) => `.${s}`).join(",");

/**
 * A SEQUENCE of (OID, value) pairs, each exactly 2 elements, as the OID suffix after `prefix` → value;
 * the suffixes must be exactly `expected` (no unknown, missing or repeated entry), as Intel's QVL
 * (PckCertificate.cpp, Tcb.cpp, Configuration.cpp) reads them.
 */
function sgxEntries(node: DerNode, prefix: string, expected: readonly string[], what: string): Map<string, DerNode> {
  const entries = new Map<string, DerNode>();
  for (const item of derChildren(expectTag(node, TAG.SEQUENCE, what))) {
    const children = derChildren(expectTag(item, TAG.SEQUENCE, `${what} entry`));
    const oid = decodeOid(expectTag(children[0], TAG.OID, `${what} entry id`));
    if (children.length !== 2) {
      fail(MALFORMED, `${what} ${oid}: expected 2 elements (id, value), found ${children.length}`);
    }
    const suffix = oid.startsWith(`${prefix}.`) ? oid.slice(prefix.length + 1) : oid;
    if (!expected.includes(suffix)) fail(MALFORMED, `${what}: unknown entry ${oid}`);
    if (entries.has(suffix)) fail(MALFORMED, `${what} ${oid}: appears twice`);
    entries.set(suffix, children[1] as DerNode);
  }
  const missing = expected.filter((s) => !entries.has(s));
  if (missing.length > 0) {
    fail(MALFORMED, `${what}: expected entries ${listed(expected)}, missing ${listed(missing)}`);
  }
  return entries;
}

/** Decodes the SGX extension of a PCK leaf certificate. */
export function parsePckSgxExtensions(leaf: Certificate): PckSgxExtensions {
  const value = extension(leaf, SGX_EXTENSION_OID);
  if (value === undefined) {
    fail("TDX_PCK_EXTENSION_MISSING", `PCK leaf "${leaf.subject}": no SGX extension ${SGX_EXTENSION_OID}`);
  }
  try {
    const top = readDerExact(value, TAG.SEQUENCE, "SGX extension");
    const expected = derChildren(top).length > PROCESSOR_CA_ENTRIES.length ? PLATFORM_CA_ENTRIES : PROCESSOR_CA_ENTRIES;
    const entries = sgxEntries(top, SGX_EXTENSION_OID, expected, "SGX extension");
    const need = (suffix: string) => entries.get(suffix) as DerNode;
    const tcb = sgxEntries(need("2"), `${SGX_EXTENSION_OID}.2`, TCB_ENTRIES, "SGX TCB");
    const tcbEntry = (n: number) => tcb.get(`${n}`) as DerNode;
    const tcbComponents: number[] = [];
    for (let n = 1; n <= 16; n++) {
      const svn = decodeSmallInteger(tcbEntry(n), `SGX TCB component ${n}`);
      if (svn > 255) fail(MALFORMED, `SGX TCB component ${n}: ${svn} > 255`);
      tcbComponents.push(svn);
    }
    const pceSvn = decodeSmallInteger(tcbEntry(17), "PCESVN");
    if (pceSvn > 0xffff) fail(MALFORMED, `PCESVN: ${pceSvn} > 65535`);
    const sgxTypeNode = need("5");
    if (sgxTypeNode.tag !== 0x0a) {
      fail(MALFORMED, `SGX Type: expected ENUMERATED, found tag 0x${sgxTypeNode.tag.toString(16)}`);
    }
    const sgxTypeBytes = derContent(sgxTypeNode);
    if (sgxTypeBytes.length !== 1) fail(MALFORMED, `SGX Type: expected one byte, found ${sgxTypeBytes.length}`);
    const sgxType = ((sgxTypeBytes[0] as number) << 24) >> 24; // two's complement
    if (sgxType < 0 || sgxType > 2) {
      fail(MALFORMED, `SGX Type: expected 0 (Standard), 1 (Scalable) or 2 (Scalable with Integrity), found ${sgxType}`);
    }
    if (entries.has("6")) octets(need("6"), 16, "Platform Instance ID");
    if (entries.has("7")) {
      const configuration = sgxEntries(need("7"), `${SGX_EXTENSION_OID}.7`, CONFIGURATION_ENTRIES, "SGX Configuration");
      for (const [suffix, node] of configuration) {
        const flag = derContent(expectTag(node, TAG.BOOLEAN, `SGX Configuration .7.${suffix}`));
        if (flag.length !== 1 || (flag[0] !== 0x00 && flag[0] !== 0xff)) {
          fail(MALFORMED, `SGX Configuration .7.${suffix}: expected a DER BOOLEAN (00 or ff)`);
        }
      }
    }
    return {
      ppid: octets(need("1"), 16, "PPID"),
      tcbComponents,
      pceSvn,
      cpuSvn: octets(tcbEntry(18), 16, "CPUSVN"),
      pceId: octets(need("3"), 2, "PCE-ID"),
      fmspc: octets(need("4"), 6, "FMSPC"),
      sgxType,
    };
  } catch (error) {
    if (error instanceof AttestationError && error.code.startsWith("TDX_")) throw error;
    // The DER reader's message names the field, the tag expected and found, and the offset.
    const detail = error instanceof AttestationError ? `: ${error.message}` : "";
    fail(MALFORMED, `PCK leaf "${leaf.subject}": malformed SGX extension${detail}`, error);
  }
}

/**
 * Parses a TDX quote (v4, or v5 with body type 2 or 3). Throws ParseError with a TDX_* code (or the
 * X509_/DER_ code of a malformed PCK certificate) on any structural problem.
 */
export function parseTdxQuote(input: Uint8Array): TdxQuote {
  const r = new ByteReader(input, "TDX quote");
  const raw = r.bytes;
  if (raw.length < TDX_HEADER_SIZE) {
    fail("TDX_QUOTE_TRUNCATED", `TDX quote: expected at least ${TDX_HEADER_SIZE} header bytes, found ${raw.length}`);
  }
  const version = r.u16(0, "version");
  if (version !== 4 && version !== 5)
    fail("TDX_UNSUPPORTED_VERSION", `TDX quote version: expected 4 or 5, found ${version}`);
  const attestationKeyType = r.u16(2, "att_key_type");
  if (attestationKeyType !== ATTESTATION_KEY_TYPE_ECDSA_P256) {
    fail("TDX_UNSUPPORTED_KEY_TYPE", `TDX quote att_key_type: expected 2 (ECDSA-P256), found ${attestationKeyType}`);
  }
  const teeType = r.u32(4, "tee_type");
  if (teeType !== TEE_TYPE_TDX) {
    fail("TDX_WRONG_TEE_TYPE", `TDX quote tee_type: expected 0x81 (TDX), found 0x${teeType.toString(16)}`);
  }
  const qeVendorId = r.slice(12, 16, "qe_vendor_id");
  if (toHex(qeVendorId) !== INTEL_QE_VENDOR_ID) {
    fail(
      "TDX_UNSUPPORTED_QE_VENDOR",
      `TDX quote qe_vendor_id: expected ${INTEL_QE_VENDOR_ID}, found ${toHex(qeVendorId)}`,
    );
  }
  const header: TdxQuoteHeader = {
    version,
    attestationKeyType: ATTESTATION_KEY_TYPE_ECDSA_P256,
    teeType: TEE_TYPE_TDX,
    qeSvn: r.u16(8, "qe_svn"),
    pceSvn: r.u16(10, "pce_svn"),
    qeVendorId,
    userData: r.slice(28, 20, "user_data"),
  };

  let bodyOffset = TDX_HEADER_SIZE;
  let bodySize = TDX_10_BODY_SIZE;
  let bodyType: 2 | 3 | null = null;
  if (version === 5) {
    const type = r.u16(48, "body_type");
    const size = r.u32(50, "body_size");
    if (type === 2 && size === TDX_10_BODY_SIZE) bodyType = 2;
    else if (type === 3 && size === TDX_15_BODY_SIZE) bodyType = 3;
    else {
      fail(
        "TDX_UNSUPPORTED_BODY",
        `TDX quote v5 body_type/body_size: expected 2/${TDX_10_BODY_SIZE} or 3/${TDX_15_BODY_SIZE}, found ${type}/${size}`,
      );
    }
    bodySize = size;
    bodyOffset = 54;
  }
  const body = parseBody(r, bodyOffset, bodySize);
  const signedEnd = bodyOffset + bodySize;
  const signedBytes = r.slice(0, signedEnd, "header and body");

  const signatureDataLength = r.u32(signedEnd, "signature_data_len");
  const sd = signedEnd + 4;
  const sdEnd = sd + signatureDataLength;
  if (sdEnd > raw.length) {
    fail(
      "TDX_QUOTE_TRUNCATED",
      `TDX quote signature_data_len: ${signatureDataLength} bytes declared, ${raw.length - sd} present`,
    );
  }
  const signature = r.slice(sd, 64, "quote signature");
  const attestationKey = r.slice(sd + 64, 64, "attestation key");
  const certDataType = r.u16(sd + 128, "certification_data_type");
  if (certDataType !== CERT_DATA_TYPE_QE_REPORT) {
    fail(
      "TDX_UNSUPPORTED_CERT_DATA",
      `TDX quote certification_data_type: expected 6 (QE report), found ${certDataType}`,
    );
  }
  const certDataSize = r.u32(sd + 130, "certification_data_size");
  const cd = sd + 134;
  if (cd + certDataSize !== sdEnd) {
    fail(
      "TDX_LENGTH_MISMATCH",
      `TDX quote certification_data_size: ${certDataSize} does not fill signature_data_len ${signatureDataLength} (expected ${signatureDataLength - 134})`,
    );
  }
  const qeReportBytes = r.slice(cd, SGX_REPORT_BODY_SIZE, "QE report");
  const qeReportSignature = r.slice(cd + 384, 64, "QE report signature");
  const qeAuthSize = r.u16(cd + 448, "qe_auth_data_size");
  const qeAuthData = r.slice(cd + 450, qeAuthSize, "QE auth data");
  const inner = cd + 450 + qeAuthSize;
  const innerType = r.u16(inner, "inner certification_data_type");
  if (innerType !== CERT_DATA_TYPE_PCK_CHAIN_PEM) {
    fail(
      "TDX_UNSUPPORTED_CERT_DATA",
      `TDX quote inner certification_data_type: expected 5 (PEM PCK chain), found ${innerType}`,
    );
  }
  const innerSize = r.u32(inner + 2, "inner certification_data_size");
  if (inner + 6 + innerSize !== sdEnd) {
    fail(
      "TDX_LENGTH_MISMATCH",
      `TDX quote inner certification_data_size: ${innerSize} does not end at the signature data end (expected ${sdEnd - inner - 6})`,
    );
  }
  const pckChain = parsePckChain(r.slice(inner + 6, innerSize, "PCK certificate chain"));
  const pckExtensions = parsePckSgxExtensions(pckChain[0]);
  const trailing = raw.slice(sdEnd);
  return {
    kind: "tdx-quote",
    raw,
    header,
    bodyType,
    tdxVersion: bodySize === TDX_15_BODY_SIZE ? "1.5" : "1.0",
    body,
    signedBytes,
    signatureDataLength,
    signature,
    attestationKey,
    qeReport: parseSgxReportBody(qeReportBytes),
    qeReportBytes,
    qeReportSignature,
    qeAuthData,
    pckChain,
    pckExtensions,
    trailingBytes: trailing.length,
    trailing,
  };
}

/** TD is a debug TD: TDATTRIBUTES bit 0 (TUD.DEBUG), little-endian u64. */
export function isDebugTd(body: TdxTdReportBody): boolean {
  return ((body.tdAttributes[0] as number) & 1) === 1;
}

/** TDATTRIBUTES.MIGRATABLE (bit 29 of the little-endian 64-bit value): the TD may be migrated. */
export function isMigratableTd(body: TdxTdReportBody): boolean {
  return ((body.tdAttributes[3] as number) & 0x20) !== 0;
}

/** True when the trailing bytes are all zero (buffer padding) rather than other data. */
export function trailingIsZeroPadding(quote: TdxQuote): boolean {
  return isAllZero(quote.trailing);
}
