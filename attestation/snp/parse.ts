/**
 * AMD SEV-SNP ATTESTATION_REPORT parsing (SEV-SNP ABI spec 56860, "ATTESTATION_REPORT Structure";
 * layout cross-checked with google/go-sev-guest `abi.ReportToProto`).
 *
 * What it checks (structure only): the exact size (1184 bytes), a supported VERSION (2..5),
 * SIGNATURE_ALGO = 1 (ECDSA P-384 with SHA-384), VMPL 0..3, the guest POLICY (bit 17 must be 1,
 * bits 26..63 must be zero), PLATFORM_INFO (reserved bit 6 and bits 8..63 zero), the signer-info
 * word at 0x48 (bits 5..31 zero, SIGNING_KEY not one of the reserved values 2..6), every
 * must-be-zero range (0x4C, 0x188/0x18B..0x1A0, 0x1EB, 0x1EF, 0x1F8..0x2A0 before version 5 and
 * 0x208..0x2A0 from version 5 on (LAUNCH_MIT_VECTOR and CURRENT_MIT_VECTOR came with version 5, as
 * in virtee/sev's decoder), the high 24 bytes of the 72-byte R and S, and 0x330..0x4A0).
 * What it does not check: the signature, the endorsement key, any policy. Those are verify.ts and
 * appraise.ts. A parsed `SnpReport` is not evidence of anything until verify.ts has accepted it.
 *
 * Every malformed input throws a `ParseError`; nothing else escapes (property-tested).
 */
import { ByteReader, isAllZero, reversed } from "../bytes.ts";
import { AttestationError, ParseError } from "../errors.ts";

/** Size of every supported report version (0x4A0). */
export const SNP_REPORT_SIZE = 0x4a0;
/** The signature covers bytes [0, SNP_SIGNED_LENGTH). */
export const SNP_SIGNED_LENGTH = 0x2a0;
/** Offset of the 512-byte SIGNATURE field (R: 72 bytes LE, S: 72 bytes LE, 368 reserved). */
export const SNP_SIGNATURE_OFFSET = 0x2a0;
export const SNP_SUPPORTED_VERSIONS: readonly number[] = [2, 3, 4, 5];
/** SIGNATURE_ALGO value for ECDSA P-384 with SHA-384, the only one defined. */
export const SNP_SIGNATURE_ALGO_ECDSA_P384_SHA384 = 1;

/** Field offsets (spec Table "ATTESTATION_REPORT Structure"); the simulator writes with these. */
export const SNP_OFFSETS = {
  VERSION: 0x00,
  GUEST_SVN: 0x04,
  POLICY: 0x08,
  FAMILY_ID: 0x10,
  IMAGE_ID: 0x20,
  VMPL: 0x30,
  SIGNATURE_ALGO: 0x34,
  CURRENT_TCB: 0x38,
  PLATFORM_INFO: 0x40,
  SIGNER_INFO: 0x48,
  REPORT_DATA: 0x50,
  MEASUREMENT: 0x90,
  HOST_DATA: 0xc0,
  ID_KEY_DIGEST: 0xe0,
  AUTHOR_KEY_DIGEST: 0x110,
  REPORT_ID: 0x140,
  REPORT_ID_MA: 0x160,
  REPORTED_TCB: 0x180,
  CPUID_FAM_ID: 0x188,
  CPUID_MOD_ID: 0x189,
  CPUID_STEP: 0x18a,
  CHIP_ID: 0x1a0,
  COMMITTED_TCB: 0x1e0,
  CURRENT_BUILD: 0x1e8,
  CURRENT_MINOR: 0x1e9,
  CURRENT_MAJOR: 0x1ea,
  COMMITTED_BUILD: 0x1ec,
  COMMITTED_MINOR: 0x1ed,
  COMMITTED_MAJOR: 0x1ee,
  LAUNCH_TCB: 0x1f0,
  LAUNCH_MIT_VECTOR: 0x1f8,
  CURRENT_MIT_VECTOR: 0x200,
  SIGNATURE: 0x2a0,
} as const;

export type SnpProduct = "Milan" | "Genoa" | "Turin";
export const SNP_PRODUCTS: readonly SnpProduct[] = ["Milan", "Genoa", "Turin"];

/** SIGNING_KEY (flags bits 4:2): 0 = VCEK, 1 = VLEK, 7 = none (report unsigned). */
export type SnpSigningKey = "VCEK" | "VLEK" | "NONE";

/** Guest POLICY (spec "Guest Policy Structure"). */
export interface SnpGuestPolicy {
  readonly raw: bigint;
  /** ABI_MINOR (bits 7:0): minimum firmware ABI minor version. */
  readonly abiMinor: number;
  /** ABI_MAJOR (bits 15:8). */
  readonly abiMajor: number;
  /** SMT (bit 16): SMT is allowed. */
  readonly smtAllowed: boolean;
  /** MIGRATE_MA (bit 18): association with a migration agent is allowed. */
  readonly migrateMA: boolean;
  /** DEBUG (bit 19): debugging is allowed (the hypervisor can read guest memory). */
  readonly debugAllowed: boolean;
  /** SINGLE_SOCKET (bit 20). */
  readonly singleSocket: boolean;
  /** CXL_ALLOW (bit 21). */
  readonly cxlAllowed: boolean;
  /** MEM_AES_256_XTS (bit 22). */
  readonly memAes256Xts: boolean;
  /** RAPL_DIS (bit 23). */
  readonly raplDisabled: boolean;
  /** CIPHERTEXT_HIDING (bit 24). */
  readonly ciphertextHiding: boolean;
  /** PAGE_SWAP_DISABLE (bit 25). */
  readonly pageSwapDisabled: boolean;
}

/** PLATFORM_INFO. */
export interface SnpPlatformInfo {
  readonly raw: bigint;
  readonly smtEnabled: boolean;
  readonly tsmeEnabled: boolean;
  readonly eccEnabled: boolean;
  readonly raplDisabled: boolean;
  readonly ciphertextHidingEnabled: boolean;
  readonly aliasCheckComplete: boolean;
  readonly tioEnabled: boolean;
}

/**
 * A decoded TCB_VERSION. Milan/Genoa: byte0 BOOT_LOADER, byte1 TEE, bytes2-5 reserved, byte6 SNP,
 * byte7 MICROCODE. Turin: byte0 FMC, byte1 BOOT_LOADER, byte2 TEE, byte3 SNP, bytes4-6 reserved,
 * byte7 MICROCODE. `fmc` is null for the Milan/Genoa layout.
 */
export interface SnpTcbVersion {
  readonly raw: bigint;
  readonly layout: "milan-genoa" | "turin";
  readonly fmc: number | null;
  readonly bootloader: number;
  readonly tee: number;
  readonly snp: number;
  readonly microcode: number;
}

export interface SnpCpuid {
  /** Combined family (CPUID_FAM_ID), e.g. 0x19 (Zen 3/4) or 0x1A (Zen 5). */
  readonly family: number;
  readonly model: number;
  readonly stepping: number;
}

export interface SnpFirmwareVersion {
  readonly build: number;
  readonly minor: number;
  readonly major: number;
}

/** A structurally valid SNP report. Not verified: see verify.ts. */
export interface SnpReport {
  /** Exact copy of the 1184 input bytes. */
  readonly raw: Uint8Array;
  readonly version: number;
  /** GUEST_SVN. */
  readonly guestSvn: number;
  readonly policy: SnpGuestPolicy;
  /** FAMILY_ID (16 bytes). */
  readonly familyId: Uint8Array;
  /** IMAGE_ID (16 bytes). */
  readonly imageId: Uint8Array;
  /** VMPL at which the guest requested the report (0..3). */
  readonly vmpl: number;
  /** SIGNATURE_ALGO (always 1 after parsing). */
  readonly signatureAlgo: number;
  /** CURRENT_TCB. Decoded with the product layout known from CPUID (Milan/Genoa layout when unknown). */
  readonly currentTcb: SnpTcbVersion;
  readonly platformInfo: SnpPlatformInfo;
  /** AUTHOR_KEY_EN (flags bit 0). */
  readonly authorKeyEn: boolean;
  /**
   * MASK_CHIP_KEY (flags bit 1): the host's MaskChipKey setting. When set the VCEK is not used: the
   * firmware writes zeros into SIGNATURE instead of signing, so the report is unsigned (verify.ts
   * refuses it). It says nothing about CHIP_ID: that is the host's MASK_CHIP_ID setting, which no
   * bit signals (CHIP_ID is then all zero).
   */
  readonly maskChipKey: boolean;
  /** SIGNING_KEY (flags bits 4:2). */
  readonly signingKey: SnpSigningKey;
  /** REPORT_DATA (64 bytes), chosen by the guest. */
  readonly reportData: Uint8Array;
  /** MEASUREMENT (48 bytes): the launch digest. */
  readonly measurement: Uint8Array;
  /** HOST_DATA (32 bytes), chosen by the host at launch. */
  readonly hostData: Uint8Array;
  /** ID_KEY_DIGEST (48 bytes). */
  readonly idKeyDigest: Uint8Array;
  /** AUTHOR_KEY_DIGEST (48 bytes). */
  readonly authorKeyDigest: Uint8Array;
  /** REPORT_ID (32 bytes). */
  readonly reportId: Uint8Array;
  /** REPORT_ID_MA (32 bytes). */
  readonly reportIdMa: Uint8Array;
  /** REPORTED_TCB: the TCB the VCEK/VLEK was derived from. */
  readonly reportedTcb: SnpTcbVersion;
  /** CPUID_FAM_ID/MOD_ID/STEP (version 3 and later); null for version 2. */
  readonly cpuid: SnpCpuid | null;
  /** The product implied by CPUID (v3+), or null when not known. */
  readonly product: SnpProduct | null;
  /**
   * CHIP_ID (64 bytes). All zero when the host set MASK_CHIP_ID (no report bit says so) and, on some
   * platforms, in VLEK-signed reports; a VCEK cannot be tied to such a report's chip.
   */
  readonly chipId: Uint8Array;
  readonly committedTcb: SnpTcbVersion;
  /** CURRENT_BUILD / CURRENT_MINOR / CURRENT_MAJOR. */
  readonly currentVersion: SnpFirmwareVersion;
  /** COMMITTED_BUILD / COMMITTED_MINOR / COMMITTED_MAJOR. */
  readonly committedVersion: SnpFirmwareVersion;
  readonly launchTcb: SnpTcbVersion;
  /** LAUNCH_MIT_VECTOR (version 5 and later), else null. */
  readonly launchMitVector: bigint | null;
  /** CURRENT_MIT_VECTOR (version 5 and later), else null. */
  readonly currentMitVector: bigint | null;
  /** SIGNATURE R and S as 48-byte big-endian integers (converted from the 72-byte LE fields). */
  readonly signature: { readonly r: Uint8Array; readonly s: Uint8Array };
  /** The signed bytes [0, 0x2A0). */
  readonly signedBytes: Uint8Array;
}

const POLICY_RESERVED_ONE = 1n << 17n;
const POLICY_MBZ_MASK = ~((1n << 26n) - 1n) & 0xffff_ffff_ffff_ffffn;
const PLATFORM_INFO_MBZ_MASK = (1n << 6n) | (~((1n << 8n) - 1n) & 0xffff_ffff_ffff_ffffn);

const bit = (value: bigint, n: number): boolean => ((value >> BigInt(n)) & 1n) === 1n;
const byteOf = (value: bigint, n: number): number => Number((value >> BigInt(8 * n)) & 0xffn);
const hex64 = (value: bigint): string => `0x${value.toString(16)}`;

/** Decodes a raw TCB_VERSION u64 (read little-endian) with the layout of `product`. */
export function decodeTcbVersion(raw: bigint, product: SnpProduct): SnpTcbVersion {
  if (raw < 0n || raw > 0xffff_ffff_ffff_ffffn) {
    throw new ParseError("SNP_TCB_OUT_OF_RANGE", `TCB_VERSION: expected an unsigned 64-bit value, found ${raw}`);
  }
  if (product === "Turin") {
    return {
      raw,
      layout: "turin",
      fmc: byteOf(raw, 0),
      bootloader: byteOf(raw, 1),
      tee: byteOf(raw, 2),
      snp: byteOf(raw, 3),
      microcode: byteOf(raw, 7),
    };
  }
  return {
    raw,
    layout: "milan-genoa",
    fmc: null,
    bootloader: byteOf(raw, 0),
    tee: byteOf(raw, 1),
    snp: byteOf(raw, 6),
    microcode: byteOf(raw, 7),
  };
}

/** Composes a raw TCB_VERSION from its parts (inverse of decodeTcbVersion; reserved bytes zero). */
export function encodeTcbVersion(
  parts: { fmc?: number | null; bootloader: number; tee: number; snp: number; microcode: number },
  product: SnpProduct,
): bigint {
  const b = (v: number, n: number): bigint => BigInt(v & 0xff) << BigInt(8 * n);
  if (product === "Turin") {
    return b(parts.fmc ?? 0, 0) | b(parts.bootloader, 1) | b(parts.tee, 2) | b(parts.snp, 3) | b(parts.microcode, 7);
  }
  return b(parts.bootloader, 0) | b(parts.tee, 1) | b(parts.snp, 6) | b(parts.microcode, 7);
}

/**
 * The product named by CPUID family/model (AMD KDS spec "Determining the Product Name"), or null:
 * the ranges of virtee/snpguest's get_processor_model. Family 19h: models 00h-0Fh Milan, 10h-1Fh
 * Genoa, A0h-AFh Bergamo and Siena (Genoa's product line in KDS); family 1Ah: models 00h-11h Turin
 * (Turin 02h, Turin Dense 11h).
 */
export function productFromCpuid(cpuid: SnpCpuid): SnpProduct | null {
  const { family, model } = cpuid;
  if (family === 0x19 && model <= 0x0f) return "Milan";
  if (family === 0x19 && ((model >= 0x10 && model <= 0x1f) || (model >= 0xa0 && model <= 0xaf))) return "Genoa";
  if (family === 0x1a && model <= 0x11) return "Turin";
  return null;
}

/** Decodes a guest POLICY value; throws ParseError SNP_POLICY_INVALID on reserved bits. */
export function decodeGuestPolicy(raw: bigint): SnpGuestPolicy {
  if ((raw & POLICY_RESERVED_ONE) === 0n) {
    throw new ParseError("SNP_POLICY_INVALID", `POLICY: reserved bit 17 must be 1, found policy ${hex64(raw)}`);
  }
  if ((raw & POLICY_MBZ_MASK) !== 0n) {
    throw new ParseError("SNP_POLICY_INVALID", `POLICY: bits 63:26 must be zero, found policy ${hex64(raw)}`);
  }
  return {
    raw,
    abiMinor: byteOf(raw, 0),
    abiMajor: byteOf(raw, 1),
    smtAllowed: bit(raw, 16),
    migrateMA: bit(raw, 18),
    debugAllowed: bit(raw, 19),
    singleSocket: bit(raw, 20),
    cxlAllowed: bit(raw, 21),
    memAes256Xts: bit(raw, 22),
    raplDisabled: bit(raw, 23),
    ciphertextHiding: bit(raw, 24),
    pageSwapDisabled: bit(raw, 25),
  };
}

function decodePlatformInfo(raw: bigint): SnpPlatformInfo {
  if ((raw & PLATFORM_INFO_MBZ_MASK) !== 0n) {
    throw new ParseError(
      "SNP_RESERVED_NONZERO",
      `PLATFORM_INFO: reserved bit 6 and bits 63:8 must be zero, found ${hex64(raw)}`,
    );
  }
  return {
    raw,
    smtEnabled: bit(raw, 0),
    tsmeEnabled: bit(raw, 1),
    eccEnabled: bit(raw, 2),
    raplDisabled: bit(raw, 3),
    ciphertextHidingEnabled: bit(raw, 4),
    aliasCheckComplete: bit(raw, 5),
    tioEnabled: bit(raw, 7),
  };
}

function mustBeZero(r: ByteReader, from: number, to: number, field: string): void {
  if (!isAllZero(r.slice(from, to - from, field))) {
    throw new ParseError(
      "SNP_RESERVED_NONZERO",
      `${field}: reserved bytes [0x${from.toString(16)}, 0x${to.toString(16)}) must be zero`,
    );
  }
}

/** 72-byte little-endian ECDSA component → 48-byte big-endian (upper 24 bytes must be zero). */
function signatureComponent(r: ByteReader, offset: number, field: string): Uint8Array {
  mustBeZero(r, offset + 48, offset + 72, `SIGNATURE.${field}`);
  return reversed(r.slice(offset, 48, `SIGNATURE.${field}`));
}

function parseUnchecked(input: Uint8Array): SnpReport {
  if (input.length !== SNP_REPORT_SIZE) {
    throw new ParseError(
      "SNP_REPORT_SIZE",
      `SNP report: expected exactly ${SNP_REPORT_SIZE} bytes, found ${input.length}`,
    );
  }
  const r = new ByteReader(input, "SNP report");
  const O = SNP_OFFSETS;
  const version = r.u32(O.VERSION, "VERSION");
  if (!SNP_SUPPORTED_VERSIONS.includes(version)) {
    throw new ParseError(
      "SNP_REPORT_VERSION_UNSUPPORTED",
      `VERSION: expected one of ${SNP_SUPPORTED_VERSIONS.join(", ")}, found ${version}`,
    );
  }
  const signatureAlgo = r.u32(O.SIGNATURE_ALGO, "SIGNATURE_ALGO");
  if (signatureAlgo !== SNP_SIGNATURE_ALGO_ECDSA_P384_SHA384) {
    throw new ParseError(
      "SNP_SIGNATURE_ALGO_UNSUPPORTED",
      `SIGNATURE_ALGO: expected 1 (ECDSA P-384 with SHA-384), found ${signatureAlgo}`,
    );
  }
  const vmpl = r.u32(O.VMPL, "VMPL");
  if (vmpl > 3) throw new ParseError("SNP_VMPL_INVALID", `VMPL: expected 0..3, found ${vmpl}`);
  const policy = decodeGuestPolicy(r.u64(O.POLICY, "POLICY"));
  const platformInfo = decodePlatformInfo(r.u64(O.PLATFORM_INFO, "PLATFORM_INFO"));

  const signerInfo = r.u32(O.SIGNER_INFO, "SIGNER_INFO");
  if (signerInfo >>> 5 !== 0) {
    throw new ParseError(
      "SNP_RESERVED_NONZERO",
      `SIGNER_INFO: bits 31:5 at 0x48 must be zero, found 0x${signerInfo.toString(16)}`,
    );
  }
  const signingKeyValue = (signerInfo >>> 2) & 7;
  let signingKey: SnpSigningKey;
  if (signingKeyValue === 0) signingKey = "VCEK";
  else if (signingKeyValue === 1) signingKey = "VLEK";
  else if (signingKeyValue === 7) signingKey = "NONE";
  else {
    throw new ParseError(
      "SNP_SIGNING_KEY_INVALID",
      `SIGNING_KEY: expected 0 (VCEK), 1 (VLEK) or 7 (none), found reserved value ${signingKeyValue}`,
    );
  }
  mustBeZero(r, 0x4c, 0x50, "reserved after SIGNER_INFO");

  let cpuid: SnpCpuid | null = null;
  if (version >= 3) {
    cpuid = {
      family: r.u8(O.CPUID_FAM_ID, "CPUID_FAM_ID"),
      model: r.u8(O.CPUID_MOD_ID, "CPUID_MOD_ID"),
      stepping: r.u8(O.CPUID_STEP, "CPUID_STEP"),
    };
    mustBeZero(r, 0x18b, 0x1a0, "reserved after CPUID_STEP");
  } else {
    mustBeZero(r, 0x188, 0x1a0, "reserved after REPORTED_TCB");
  }
  mustBeZero(r, 0x1eb, 0x1ec, "reserved after CURRENT_MAJOR");
  mustBeZero(r, 0x1ef, 0x1f0, "reserved after COMMITTED_MAJOR");
  if (version >= 5) mustBeZero(r, 0x208, SNP_SIGNATURE_OFFSET, "reserved before SIGNATURE");
  else mustBeZero(r, O.LAUNCH_MIT_VECTOR, SNP_SIGNATURE_OFFSET, `reserved after LAUNCH_TCB (version ${version})`);
  mustBeZero(r, SNP_SIGNATURE_OFFSET + 144, SNP_REPORT_SIZE, "reserved after SIGNATURE.S");

  const product = cpuid === null ? null : productFromCpuid(cpuid);
  // Version 2 reports predate Turin, so the Milan/Genoa layout is the right default.
  const layout: SnpProduct = product ?? "Milan";
  const tcb = (offset: number, field: string): SnpTcbVersion => decodeTcbVersion(r.u64(offset, field), layout);

  return {
    raw: r.slice(0, SNP_REPORT_SIZE, "report"),
    version,
    guestSvn: r.u32(O.GUEST_SVN, "GUEST_SVN"),
    policy,
    familyId: r.slice(O.FAMILY_ID, 16, "FAMILY_ID"),
    imageId: r.slice(O.IMAGE_ID, 16, "IMAGE_ID"),
    vmpl,
    signatureAlgo,
    currentTcb: tcb(O.CURRENT_TCB, "CURRENT_TCB"),
    platformInfo,
    authorKeyEn: (signerInfo & 1) === 1,
    maskChipKey: (signerInfo & 2) === 2,
    signingKey,
    reportData: r.slice(O.REPORT_DATA, 64, "REPORT_DATA"),
    measurement: r.slice(O.MEASUREMENT, 48, "MEASUREMENT"),
    hostData: r.slice(O.HOST_DATA, 32, "HOST_DATA"),
    idKeyDigest: r.slice(O.ID_KEY_DIGEST, 48, "ID_KEY_DIGEST"),
    authorKeyDigest: r.slice(O.AUTHOR_KEY_DIGEST, 48, "AUTHOR_KEY_DIGEST"),
    reportId: r.slice(O.REPORT_ID, 32, "REPORT_ID"),
    reportIdMa: r.slice(O.REPORT_ID_MA, 32, "REPORT_ID_MA"),
    reportedTcb: tcb(O.REPORTED_TCB, "REPORTED_TCB"),
    cpuid,
    product,
    chipId: r.slice(O.CHIP_ID, 64, "CHIP_ID"),
    committedTcb: tcb(O.COMMITTED_TCB, "COMMITTED_TCB"),
    currentVersion: {
      build: r.u8(O.CURRENT_BUILD, "CURRENT_BUILD"),
      minor: r.u8(O.CURRENT_MINOR, "CURRENT_MINOR"),
      major: r.u8(O.CURRENT_MAJOR, "CURRENT_MAJOR"),
    },
    committedVersion: {
      build: r.u8(O.COMMITTED_BUILD, "COMMITTED_BUILD"),
      minor: r.u8(O.COMMITTED_MINOR, "COMMITTED_MINOR"),
      major: r.u8(O.COMMITTED_MAJOR, "COMMITTED_MAJOR"),
    },
    launchTcb: tcb(O.LAUNCH_TCB, "LAUNCH_TCB"),
    launchMitVector: version >= 5 ? r.u64(O.LAUNCH_MIT_VECTOR, "LAUNCH_MIT_VECTOR") : null,
    currentMitVector: version >= 5 ? r.u64(O.CURRENT_MIT_VECTOR, "CURRENT_MIT_VECTOR") : null,
    signature: {
      r: signatureComponent(r, SNP_SIGNATURE_OFFSET, "R"),
      s: signatureComponent(r, SNP_SIGNATURE_OFFSET + 72, "S"),
    },
    signedBytes: r.slice(0, SNP_SIGNED_LENGTH, "signed part"),
  };
}

/** Parses an SNP ATTESTATION_REPORT (versions 2..5). Throws only ParseError. */
export function parseSnpReport(bytes: Uint8Array): SnpReport {
  try {
    return parseUnchecked(bytes);
  } catch (error) {
    if (error instanceof AttestationError) throw error;
    throw new ParseError("SNP_REPORT_MALFORMED", "SNP report: malformed input", { cause: error });
  }
}

/** Lower-case hex of a TCB_VERSION u64, zero-padded to 16 digits, with 0x. */
export function tcbHex(tcb: SnpTcbVersion | bigint): string {
  const raw = typeof tcb === "bigint" ? tcb : tcb.raw;
  return `0x${raw.toString(16).padStart(16, "0")}`;
}
