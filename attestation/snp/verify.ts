/**
 * AMD SEV-SNP report verification: is this parsed report signed by a genuine AMD endorsement key
 * (VCEK or VLEK) that chains to a trusted root at time `at`, and does that key belong to the chip
 * and TCB the report names?
 *
 * Checks, in this order (the first failure is thrown as a VerifyError with its own code):
 *  1. the report is signed at all: SIGNING_KEY ≠ 7 (none) and MASK_CHIP_KEY clear (when the host
 *     set MaskChipKey the firmware writes zeros into SIGNATURE instead of signing)  SNP_REPORT_UNSIGNED
 *  2. the endorsement certificate is a KDS VCEK/VLEK: ECDSA P-384 key, RSA-PSS SHA-384 signature,
 *     well-formed AMD extensions                       SNP_ENDORSEMENT_KEY_INVALID, SNP_CERT_EXTENSION_INVALID
 *  3. its kind (VCEK: hwID, CN=SEV-VCEK; VLEK: cspID, CN=SEV-VLEK) is the report's SIGNING_KEY
 *                                                                           SNP_SIGNING_KEY_MISMATCH
 *  4. its productName is the product the report's CPUID names (v3+)         SNP_PRODUCT_MISMATCH
 *     and a Turin certificate goes with a version 3+ report (Turin firmware writes no version 2
 *     report; snpguest checks the same)                                    SNP_REPORT_VERSION_MISMATCH
 *  5. a trust anchor of that product whose ASK (VCEK) or ASVK (VLEK) issued the certificate
 *                                                                           ROOT_NOT_TRUSTED
 *  6. the chain VCEK ← ASK ← ARK (VLEK ← ASVK ← ARK), each valid at `at`, ARK pinned (x509.ts)
 *                                 CERT_EXPIRED, CERT_NOT_YET_VALID, CERT_SIGNATURE_INVALID, ...
 *  7. the report's ECDSA P-384/SHA-384 signature over bytes [0, 0x2A0)      SNP_REPORT_SIGNATURE_INVALID
 *  8. VCEK hwID == CHIP_ID (Turin: the 8-byte hwID == CHIP_ID[0..8))        SNP_HWID_MISMATCH
 *     An all-zero CHIP_ID (the host's MASK_CHIP_ID) is refused too, as snpguest does (go-sev-guest
 *     skips the comparison then): nothing ties such a report's VCEK to its chip.
 *  9. the certificate's SPLs == REPORTED_TCB (fmcSPL too on Turin)          SNP_TCB_MISMATCH
 * 10. REPORTED_TCB <= CURRENT_TCB in every component (decoded with the certificate's product): the
 *     host may report an older TCB than the firmware runs, never a newer one (go-sev-guest
 *     validateTcb)                                                        SNP_REPORTED_TCB_ABOVE_CURRENT
 * 11. COMMITTED_TCB <= CURRENT_TCB in every component, and COMMITTED_MAJOR.MINOR.BUILD <=
 *     CURRENT_MAJOR.MINOR.BUILD: firmware may run ahead of what it committed (provisional), never
 *     below (go-sev-guest checks both, with or without PermitProvisionalFirmware)
 *                               SNP_COMMITTED_TCB_ABOVE_CURRENT, SNP_COMMITTED_FIRMWARE_ABOVE_CURRENT
 * The signature is checked before any field of the report is compared (a tampered CHIP_ID is
 * therefore reported as a signature failure).
 *
 * Not checked here: guest policy, measurement, TCB minimums, REPORT_DATA binding (appraise.ts and
 * binding.ts), and revocation (AMD publishes CRLs only for ARK/ASK; none is bundled).
 */
import { bytesEqual, isAllZero, toHex } from "../bytes.ts";
import { verifyEcdsa } from "../crypto.ts";
import { decodeSmallInteger, derContent, readDerExact, TAG } from "../der.ts";
import { AttestationError, ConfigurationError, VerifyError } from "../errors.ts";
import type { SnpTrustAnchor } from "../roots/amd.ts";
import { type Certificate, commonNameOf, extension, parseCertificate, verifyChain } from "../x509.ts";
import {
  decodeTcbVersion,
  parseSnpReport,
  SNP_PRODUCTS,
  type SnpFirmwareVersion,
  type SnpProduct,
  type SnpReport,
  type SnpSigningKey,
  type SnpTcbVersion,
} from "./parse.ts";

/** AMD KDS certificate extension OIDs (AMD spec 57230, "VCEK Certificate Extensions"). */
export const AMD_OID = {
  structVersion: "1.3.6.1.4.1.3704.1.1",
  productName: "1.3.6.1.4.1.3704.1.2",
  blSPL: "1.3.6.1.4.1.3704.1.3.1",
  teeSPL: "1.3.6.1.4.1.3704.1.3.2",
  snpSPL: "1.3.6.1.4.1.3704.1.3.3",
  spl4: "1.3.6.1.4.1.3704.1.3.4",
  spl5: "1.3.6.1.4.1.3704.1.3.5",
  spl6: "1.3.6.1.4.1.3704.1.3.6",
  spl7: "1.3.6.1.4.1.3704.1.3.7",
  ucodeSPL: "1.3.6.1.4.1.3704.1.3.8",
  fmcSPL: "1.3.6.1.4.1.3704.1.3.9",
  hwID: "1.3.6.1.4.1.3704.1.4",
  cspID: "1.3.6.1.4.1.3704.1.5",
} as const;

/** The AMD-specific extensions of a VCEK/VLEK certificate, decoded. */
export interface SnpEndorsementExtensions {
  /** productName as written, e.g. "Milan-B0", "Genoa", "Turin". */
  readonly productName: string;
  /** The product line: productName up to the first "-". */
  readonly product: SnpProduct;
  /** hwID (VCEK): 64 bytes on Milan/Genoa, 8 on Turin; null on a VLEK. */
  readonly hwId: Uint8Array | null;
  /** cspID (VLEK): the cloud provider, e.g. "CN=cc-us-east-2.amazonaws.com"; null on a VCEK. */
  readonly cspId: string | null;
  readonly blSPL: number;
  readonly teeSPL: number;
  readonly snpSPL: number;
  readonly ucodeSPL: number;
  /** fmcSPL (Turin only), else null. */
  readonly fmcSPL: number | null;
}

const VERIFIED = Symbol("VerifiedSnpReport");

/**
 * A report whose signature chains to a trust anchor and whose endorsement key matches its chip and
 * TCB. Only `verifySnpReport` can construct one.
 */
export class VerifiedSnpReport {
  readonly report: SnpReport;
  readonly product: SnpProduct;
  readonly signingKey: Exclude<SnpSigningKey, "NONE">;
  /** True when the anchor was a simulator hierarchy: this is not hardware evidence. */
  readonly simulated: boolean;
  readonly endorsementKey: Certificate;
  readonly extensions: SnpEndorsementExtensions;
  readonly anchor: SnpTrustAnchor;
  /**
   * REPORTED_TCB, LAUNCH_TCB, CURRENT_TCB and COMMITTED_TCB decoded with the layout of the product
   * the verified certificate names (the report's own decoding follows its CPUID, and the Milan
   * layout when that names no product it knows).
   */
  readonly reportedTcb: SnpTcbVersion;
  readonly launchTcb: SnpTcbVersion;
  readonly currentTcb: SnpTcbVersion;
  readonly committedTcb: SnpTcbVersion;
  /** The time at which the chain was checked. */
  readonly verifiedAt: Date;

  constructor(
    token: symbol,
    fields: {
      report: SnpReport;
      product: SnpProduct;
      signingKey: Exclude<SnpSigningKey, "NONE">;
      endorsementKey: Certificate;
      extensions: SnpEndorsementExtensions;
      anchor: SnpTrustAnchor;
      verifiedAt: Date;
    },
  ) {
    if (token !== VERIFIED) {
      throw new ConfigurationError("SNP_VERIFIED_FORGED", "VerifiedSnpReport can only be created by verifySnpReport");
    }
    this.report = fields.report;
    this.product = fields.product;
    this.signingKey = fields.signingKey;
    this.simulated = fields.anchor.simulated;
    this.endorsementKey = fields.endorsementKey;
    this.extensions = fields.extensions;
    this.anchor = fields.anchor;
    this.reportedTcb = decodeTcbVersion(fields.report.reportedTcb.raw, fields.product);
    this.launchTcb = decodeTcbVersion(fields.report.launchTcb.raw, fields.product);
    this.currentTcb = decodeTcbVersion(fields.report.currentTcb.raw, fields.product);
    this.committedTcb = decodeTcbVersion(fields.report.committedTcb.raw, fields.product);
    this.verifiedAt = new Date(fields.verifiedAt.getTime());
    Object.freeze(this);
    CONSTRUCTED_SNP.add(this);
  }

  /**
   * True only for objects this constructor made (so by verifySnpReport): `instanceof` also holds
   * for an object made with Object.create(VerifiedSnpReport.prototype).
   */
  static isVerified(value: unknown): value is VerifiedSnpReport {
    return typeof value === "object" && value !== null && CONSTRUCTED_SNP.has(value);
  }
}

const CONSTRUCTED_SNP = new WeakSet<object>();

export interface VerifySnpReportInput {
  readonly report: SnpReport;
  /** The VCEK or VLEK certificate (from the extended report, the KDS, or a cache). */
  readonly endorsementKey: Certificate;
  /** Trusted anchors; pass AMD_ROOTS for real hardware. Simulator anchors only when intended. */
  readonly anchors: readonly SnpTrustAnchor[];
  /** Verification time for every certificate's validity window. */
  readonly at: Date;
  /**
   * Says more about a VCEK/VLEK whose chain reaches none of `anchors` (appended to the
   * ROOT_NOT_TRUSTED message; "" for nothing): the CLI passes the simulator's (sim/hint.ts), kept
   * out of this module so verifiers built for browsers carry no simulator code.
   */
  readonly explainUntrustedRoot?: (
    cert: Certificate,
    product: SnpProduct,
    signingKey: "VCEK" | "VLEK",
  ) => Promise<string>;
}

function extensionError(field: string, message: string, cause?: unknown): VerifyError {
  return new VerifyError(
    "SNP_CERT_EXTENSION_INVALID",
    `endorsement certificate extension ${field}: ${message}`,
    cause === undefined ? undefined : { cause },
  );
}

function splExtension(cert: Certificate, oid: string, field: string): number {
  const value = extension(cert, oid);
  if (value === undefined) throw extensionError(field, "missing");
  try {
    const n = decodeSmallInteger(readDerExact(value, TAG.INTEGER, field), field);
    if (n < 0 || n > 255) throw extensionError(field, `expected 0..255, found ${n}`);
    return n;
  } catch (error) {
    if (error instanceof VerifyError) throw error;
    throw extensionError(field, "expected a DER INTEGER", error);
  }
}

function ia5Extension(cert: Certificate, oid: string, field: string): string | null {
  const value = extension(cert, oid);
  if (value === undefined) return null;
  try {
    const bytes = derContent(readDerExact(value, TAG.IA5_STRING, field));
    for (const b of bytes) if (b > 0x7e || b < 0x20) throw extensionError(field, "expected printable IA5 text");
    return String.fromCharCode(...bytes);
  } catch (error) {
    if (error instanceof VerifyError) throw error;
    throw extensionError(field, "expected a DER IA5String", error);
  }
}

/** hwID is raw bytes in real KDS certificates; some tools wrap it in an OCTET STRING. Accept both. */
function hwIdExtension(cert: Certificate, size: number): Uint8Array | null {
  const value = extension(cert, AMD_OID.hwID);
  if (value === undefined) return null;
  if (value.length === size) return value.slice();
  try {
    const inner = derContent(readDerExact(value, TAG.OCTET_STRING, "hwID"));
    if (inner.length === size) return inner.slice();
  } catch (error) {
    throw extensionError("hwID", `expected ${size} bytes (raw or as an OCTET STRING), found ${value.length}`, error);
  }
  throw extensionError("hwID", `expected ${size} bytes, found a different length`);
}

/** Decodes (and checks the form of) the AMD extensions of a VCEK/VLEK certificate. */
export function decodeSnpEndorsementExtensions(cert: Certificate): SnpEndorsementExtensions {
  const productName = ia5Extension(cert, AMD_OID.productName, "productName");
  if (productName === null) throw extensionError("productName", "missing");
  const line = productName.split("-")[0] as string;
  const product = SNP_PRODUCTS.find((p) => p === line);
  if (product === undefined) {
    throw extensionError(
      "productName",
      `expected one of ${SNP_PRODUCTS.join(", ")} (optionally -stepping), found "${productName}"`,
    );
  }
  const hwId = hwIdExtension(cert, product === "Turin" ? 8 : 64);
  const cspId = ia5Extension(cert, AMD_OID.cspID, "cspID");
  if (hwId !== null && cspId !== null) throw extensionError("hwID/cspID", "a certificate cannot carry both");
  return {
    productName,
    product,
    hwId,
    cspId,
    blSPL: splExtension(cert, AMD_OID.blSPL, "blSPL"),
    teeSPL: splExtension(cert, AMD_OID.teeSPL, "teeSPL"),
    snpSPL: splExtension(cert, AMD_OID.snpSPL, "snpSPL"),
    ucodeSPL: splExtension(cert, AMD_OID.ucodeSPL, "ucodeSPL"),
    fmcSPL: product === "Turin" ? splExtension(cert, AMD_OID.fmcSPL, "fmcSPL") : null,
  };
}

function commonName(cert: Certificate, which: "subject" | "issuer"): string {
  return commonNameOf(which === "subject" ? cert.subjectDer : cert.issuerDer);
}

function checkEndorsementKeyShape(cert: Certificate, role: string): void {
  if (cert.publicKey.kind !== "ec" || cert.publicKey.curve !== "P-384") {
    throw new VerifyError(
      "SNP_ENDORSEMENT_KEY_INVALID",
      `${role} certificate "${cert.subject}": expected an ECDSA P-384 public key, found ${
        cert.publicKey.kind === "ec" ? cert.publicKey.curve : cert.publicKey.kind
      }`,
    );
  }
  const alg = cert.signatureAlgorithm;
  if (alg.kind !== "rsa-pss" || alg.hash !== "SHA-384") {
    throw new VerifyError(
      "SNP_ENDORSEMENT_KEY_INVALID",
      `${role} certificate "${cert.subject}": expected an RSASSA-PSS SHA-384 signature, found ${alg.kind} ${alg.hash}`,
    );
  }
}

function describeTcb(t: {
  fmc?: number | null;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
}): string {
  const fmc = t.fmc === null || t.fmc === undefined ? "" : `fmc ${t.fmc}, `;
  return `${fmc}bl ${t.bootloader}, tee ${t.tee}, snp ${t.snp}, ucode ${t.microcode}`;
}

/** SEV firmware version as major.minor.build. */
export function firmwareVersionText(v: SnpFirmwareVersion): string {
  return `${v.major}.${v.minor}.${v.build}`;
}

/**
 * Orders two SEV firmware versions as (major, minor, build): negative, zero or positive as `a` is
 * older than, the same as or newer than `b`. A build number is ordered only within its minor version.
 */
export function firmwareVersionOrder(a: SnpFirmwareVersion, b: SnpFirmwareVersion): number {
  return a.major - b.major || a.minor - b.minor || a.build - b.build;
}

export type SnpTcbComponent = "fmc" | "bootloader" | "tee" | "snp" | "microcode";

/** The components of a decoded TCB_VERSION, as [name, value]; fmc only on Turin. */
export function tcbComponents(tcb: SnpTcbVersion): [SnpTcbComponent, number][] {
  const parts: [SnpTcbComponent, number][] = [
    ["bootloader", tcb.bootloader],
    ["tee", tcb.tee],
    ["snp", tcb.snp],
    ["microcode", tcb.microcode],
  ];
  if (tcb.fmc !== null) parts.unshift(["fmc", tcb.fmc]);
  return parts;
}

/**
 * `field: expected …, found …` naming each component of `tcb` above CURRENT_TCB's, or null when
 * none is (both decoded with the same product's layout).
 */
function aboveCurrent(field: string, tcb: SnpTcbVersion, current: SnpTcbVersion): string | null {
  const above = tcbComponents(tcb).filter(([name, value]) => value > (current[name] ?? 0));
  if (above.length === 0) return null;
  const found = above.map(([name, value]) => `${name} ${value}`).join(", ");
  return `${field}: expected each component <= CURRENT_TCB's (${describeTcb(current)}), found ${found} (${describeTcb(tcb)})`;
}

/** Verifies `report` under `endorsementKey` and `anchors` at `at` (see the module comment). */
export async function verifySnpReport(input: VerifySnpReportInput): Promise<VerifiedSnpReport> {
  const { anchors, at } = input;
  // Every field is read again from the report's and the certificate's own bytes: what is verified
  // and returned is what the signatures cover, never fields a caller parsed (or changed) on its own
  // (e.g. a certificate object whose public key was swapped while its DER stayed genuine).
  const report = parseSnpReport(input.report.raw);
  const cert = parseCertificate(input.endorsementKey.der);
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) {
    throw new ConfigurationError("VERIFY_TIME_INVALID", "verification time: expected a valid Date");
  }
  if (anchors.length === 0) {
    throw new ConfigurationError("SNP_NO_TRUST_ANCHOR", "SNP verification: no trust anchors given");
  }

  // 1. An unsigned report proves nothing.
  const unsigned = snpReportUnsigned(report);
  if (unsigned !== null) throw new VerifyError("SNP_REPORT_UNSIGNED", `${unsigned}: it proves nothing`);
  const signingKey = report.signingKey as Exclude<SnpSigningKey, "NONE">;

  // 2. The certificate must be an AMD KDS endorsement key certificate.
  checkEndorsementKeyShape(cert, signingKey);
  const ext = decodeSnpEndorsementExtensions(cert);

  // 3. Its kind must be the one the report says signed it.
  const certKind: "VCEK" | "VLEK" | null =
    commonName(cert, "subject") === "SEV-VCEK" && ext.hwId !== null && ext.cspId === null
      ? "VCEK"
      : commonName(cert, "subject") === "SEV-VLEK" && ext.cspId !== null && ext.hwId === null
        ? "VLEK"
        : null;
  if (certKind !== signingKey) {
    throw new VerifyError(
      "SNP_SIGNING_KEY_MISMATCH",
      `SIGNING_KEY: the report names ${signingKey}, but the certificate "${cert.subject}" is ${
        certKind ?? "neither a VCEK (CN=SEV-VCEK with hwID) nor a VLEK (CN=SEV-VLEK with cspID)"
      }`,
    );
  }

  // 4. The product line must agree with the report's CPUID (when the report carries one).
  if (report.product !== null && report.product !== ext.product) {
    throw new VerifyError(
      "SNP_PRODUCT_MISMATCH",
      `product: the report's CPUID names ${report.product}, the ${signingKey} certificate names ${ext.productName}`,
    );
  }

  if (report.version < 3 && ext.product === "Turin") {
    throw new VerifyError(
      "SNP_REPORT_VERSION_MISMATCH",
      `VERSION: expected 3 or later for a report signed on Turin (the ${signingKey} certificate names ${ext.productName}; Turin firmware writes version 3+ reports), found ${report.version}`,
    );
  }

  // 5. Anchors of that product whose intermediate issued the certificate.
  const candidates = anchors.filter((a) => {
    if (a.product !== ext.product) return false;
    const intermediate = signingKey === "VCEK" ? a.ask : a.asvk;
    return intermediate !== null && bytesEqual(intermediate.subjectDer, cert.issuerDer);
  });
  if (candidates.length === 0) {
    throw new VerifyError(
      "ROOT_NOT_TRUSTED",
      `${signingKey} certificate (issuer "${commonName(cert, "issuer")}", product ${ext.productName}): no trust anchor for it among the ${anchors.length} given (${anchors
        .map((a) => `${a.product}${a.simulated ? " simulated" : ""}`)
        .join(", ")})${(await input.explainUntrustedRoot?.(cert, ext.product, signingKey)) ?? ""}`,
    );
  }

  const signatureCheck = reportSignedBy(report, cert);

  // 6. The chain, valid at `at`, to a pinned ARK. With several candidates the first that verifies wins.
  let anchor: SnpTrustAnchor | undefined;
  let firstError: unknown;
  for (const candidate of candidates) {
    const intermediate = (signingKey === "VCEK" ? candidate.ask : candidate.asvk) as Certificate;
    try {
      await verifyChain(
        [
          { cert, role: signingKey },
          { cert: intermediate, role: signingKey === "VCEK" ? "ASK" : "ASVK" },
          { cert: candidate.ark, role: "ARK" },
        ],
        [candidate.ark],
        at,
      );
      anchor = candidate;
      break;
    } catch (error) {
      if (!(error instanceof AttestationError)) throw error;
      firstError ??= error;
    }
  }
  if (anchor === undefined) throw firstError;

  // 7. The report's signature, before any of its fields is trusted. (Started before the chain check
  // so both run concurrently on WebCrypto's thread pool; its result is only looked at after step 6.)
  const valid = await signatureCheck;
  if (!valid) {
    throw new VerifyError(
      "SNP_REPORT_SIGNATURE_INVALID",
      `SIGNATURE: the report's ECDSA P-384 signature over bytes [0, 0x2A0) does not verify under the ${signingKey} key "${commonName(cert, "subject")}" (${ext.productName})`,
    );
  }

  // 8. The VCEK belongs to this chip.
  if (signingKey === "VCEK") {
    const hwId = ext.hwId as Uint8Array;
    const chipId = report.chipId.subarray(0, hwId.length);
    if (!bytesEqual(hwId, chipId)) {
      const masked = isAllZero(report.chipId)
        ? " (CHIP_ID is all zero: the host masks it with MASK_CHIP_ID, so no VCEK can be tied to this chip; such a host must sign with a VLEK, or unmask CHIP_ID)"
        : "";
      throw new VerifyError(
        "SNP_HWID_MISMATCH",
        `CHIP_ID: expected the VCEK hwID ${toHex(hwId)}, found ${toHex(chipId)}${masked}`,
      );
    }
  }

  // 9. The certificate was issued for the TCB the report says it was derived from.
  const tcb = decodeTcbVersion(report.reportedTcb.raw, ext.product);
  const expected = {
    fmc: ext.fmcSPL,
    bootloader: ext.blSPL,
    tee: ext.teeSPL,
    snp: ext.snpSPL,
    microcode: ext.ucodeSPL,
  };
  if (
    tcb.bootloader !== expected.bootloader ||
    tcb.tee !== expected.tee ||
    tcb.snp !== expected.snp ||
    tcb.microcode !== expected.microcode ||
    (ext.product === "Turin" && tcb.fmc !== expected.fmc)
  ) {
    throw new VerifyError(
      "SNP_TCB_MISMATCH",
      `REPORTED_TCB: expected the ${signingKey} SPLs (${describeTcb(expected)}), found ${describeTcb(tcb)}`,
    );
  }

  // 10. The firmware runs at least the TCB the report (and so its certificate) names.
  const current = decodeTcbVersion(report.currentTcb.raw, ext.product);
  const above = aboveCurrent("REPORTED_TCB", tcb, current);
  if (above !== null) {
    throw new VerifyError(
      "SNP_REPORTED_TCB_ABOVE_CURRENT",
      `${above}: the firmware does not run the TCB the report and its ${signingKey} name`,
    );
  }

  // 11. The firmware runs at least what the platform committed to (go-sev-guest validateTcb and
  // validateVersion, whichever PermitProvisionalFirmware says). COMMITTED_TCB below CURRENT_TCB is
  // provisional firmware, accepted (appraise.ts holds COMMITTED_TCB to the policy's minimum); above it,
  // the platform would run firmware older than its anti-rollback floor, which AMD's firmware does
  // not allow: the report is not what genuine firmware writes, so nothing in it is taken as such.
  const ahead = aboveCurrent("COMMITTED_TCB", decodeTcbVersion(report.committedTcb.raw, ext.product), current);
  if (ahead !== null) {
    throw new VerifyError(
      "SNP_COMMITTED_TCB_ABOVE_CURRENT",
      `${ahead}: the firmware runs below the TCB the platform committed to`,
    );
  }
  if (firmwareVersionOrder(report.committedVersion, report.currentVersion) > 0) {
    throw new VerifyError(
      "SNP_COMMITTED_FIRMWARE_ABOVE_CURRENT",
      `COMMITTED_MAJOR.MINOR.BUILD: expected <= CURRENT_MAJOR.MINOR.BUILD (${firmwareVersionText(report.currentVersion)}), found ${firmwareVersionText(report.committedVersion)}: the firmware runs below the version the platform committed to`,
    );
  }

  return new VerifiedSnpReport(VERIFIED, {
    report,
    product: ext.product,
    signingKey,
    endorsementKey: cert,
    extensions: ext,
    anchor,
    verifiedAt: at,
  });
}

/**
 * Why `report` is unsigned, or null when it names a signing key: SIGNING_KEY 7 (none), or
 * MASK_CHIP_KEY set (the host's MaskChipKey: the firmware then writes zeros into SIGNATURE instead
 * of signing, whatever SIGNING_KEY says).
 */
export function snpReportUnsigned(report: SnpReport): string | null {
  if (report.signingKey === "NONE") {
    return "SIGNING_KEY: expected 0 (VCEK) or 1 (VLEK), found 7 (none): the report is not signed";
  }
  if (report.maskChipKey) {
    return "MASK_CHIP_KEY (SIGNER_INFO bit 1): expected clear, found set: the host's MaskChipKey setting makes the firmware write zeros into SIGNATURE instead of signing the report";
  }
  return null;
}

/** Whether the report's ECDSA P-384/SHA-384 signature over bytes [0, 0x2A0) verifies under `cert`'s key. */
export function reportSignedBy(report: SnpReport, cert: Certificate): Promise<boolean> {
  const signature = new Uint8Array(96);
  signature.set(report.signature.r, 0);
  signature.set(report.signature.s, 48);
  return verifyEcdsa({
    curve: "P-384",
    hash: "SHA-384",
    spki: cert.publicKey.spki,
    signature,
    data: report.signedBytes,
  }).catch(() => false);
}

// --- VCEK fetching (the enclave's, attestation/providers/amd-kds.ts; tests use no real network) ---

/** Gets the VCEK certificate (DER) for a chip and TCB, e.g. from the AMD KDS or a local cache. */
export interface VcekFetcher {
  /**
   * `check`, when given, runs on a fetched certificate before it is returned; a certificate it
   * throws on is not kept (the next call fetches again).
   */
  fetchVcek(
    product: SnpProduct,
    chipId: Uint8Array,
    reportedTcb: SnpTcbVersion,
    check?: (vcek: Uint8Array, url: string) => Promise<void>,
  ): Promise<Uint8Array>;
}

/** AMD's Key Distribution Service; the VCEK path below it is `/vcek/v1/{product}/{hwID}?{SPLs}`. */
export const AMD_KDS_URL = "https://kdsintf.amd.com";

/**
 * The AMD KDS URL of the VCEK for a chip at a TCB. Turin uses the first 8 bytes of CHIP_ID and
 * adds fmcSPL; Milan and Genoa use the whole 64-byte CHIP_ID. `base` replaces AMD's service with
 * a cache or proxy that serves the same paths.
 */
export function kdsVcekUrl(
  product: SnpProduct,
  chipId: Uint8Array,
  tcb: SnpTcbVersion | bigint,
  base: string = AMD_KDS_URL,
): string {
  const t = decodeTcbVersion(typeof tcb === "bigint" ? tcb : tcb.raw, product);
  if (chipId.length !== 64) {
    throw new ConfigurationError("SNP_CHIP_ID_INVALID", `CHIP_ID: expected 64 bytes, found ${chipId.length}`);
  }
  const hwId = toHex(product === "Turin" ? chipId.subarray(0, 8) : chipId);
  const fmc = product === "Turin" ? `fmcSPL=${t.fmc}&` : "";
  return `${base}/vcek/v1/${product}/${hwId}?${fmc}blSPL=${t.bootloader}&teeSPL=${t.tee}&snpSPL=${t.snp}&ucodeSPL=${t.microcode}`;
}

/**
 * A VcekFetcher over an injected transport (`get(url)` returns the response body), caching by
 * URL; every call returns a fresh copy of the cached bytes. Failed fetches are not cached. The
 * caller decides whether network access is allowed.
 */
export function cachedVcekFetcher(
  get: (url: string) => Promise<Uint8Array>,
  limit = 64,
  base: string = AMD_KDS_URL,
): VcekFetcher {
  const cache = new Map<string, Promise<Uint8Array>>();
  return {
    fetchVcek(product, chipId, reportedTcb, check) {
      const url = kdsVcekUrl(product, chipId, reportedTcb, base);
      let pending = cache.get(url);
      if (pending === undefined) {
        if (cache.size >= limit) cache.clear();
        pending = get(url).then(async (bytes) => {
          const vcek = new Uint8Array(bytes);
          await check?.(vcek, url);
          return vcek;
        });
        pending.catch(() => cache.delete(url));
        cache.set(url, pending);
      }
      // Each caller gets its own copy: one that writes into the bytes it was given must not change
      // the certificate served to the next.
      return pending.then((vcek) => vcek.slice());
    },
  };
}
