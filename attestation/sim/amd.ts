/**
 * INSECURE simulated AMD SEV-SNP key hierarchy: ARK → ASK → VCEK (and ARK → ASVK → VLEK), with
 * the certificate shapes of AMD's Key Distribution Service (see the fixtures README): RSASSA-PSS
 * (SHA-384, MGF1-SHA-384, salt 48) on ARK/ASK/ASVK and on the VCEK, VCEK serial 0 and no AKI, the
 * AMD extensions (structVersion, productName, blSPL/teeSPL/snpSPL/ucodeSPL and fmcSPL on Turin,
 * hwID = CHIP_ID; cspID on VLEKs). Every name says O=Cloister Insecure Simulator and
 * OU=SIMULATED - NOT SECURE so a simulated certificate can never be mistaken for AMD's.
 *
 * All keys derive from a public seed: anyone can forge evidence under these roots. Simulated roots
 * are trusted only when passed explicitly as anchors (with `simulated: true`), and appraisal
 * rejects simulated evidence unless the policy says `trustSimulator: true`.
 *
 * Differences from AMD, on purpose: ARK/ASK/ASVK are RSA-2048 (AMD: RSA-4096) so generating them
 * takes about a second; hierarchies are memoised per (seed, product) for the life of the process.
 */

import { toHex } from "../bytes.ts";
import { encodeTlv } from "../der.ts";
import type { SnpProduct } from "../snp/parse.ts";
import { encodeTcbVersion } from "../snp/parse.ts";
import { AMD_OID } from "../snp/verify.ts";
import { InsecureSeededDrbg } from "./drbg.ts";
import { deriveInsecureEcKey, type InsecureEcKey } from "./keys.ts";
import { INSECURE_SIMULATOR_ORGANIZATION } from "./names.ts";
import { generateInsecureRsaKey, type InsecureRsaKey, signRsaPssSha384 } from "./rsa.ts";
import { der, type ExtensionSpec, encodeName, type NameAttribute, writeCertificate, X509_OID } from "./x509-writer.ts";

/** The seed of the well-known simulator hierarchy (enclave simulator mode, opted-in clients). */
export const INSECURE_SIMULATOR_DEFAULT_SEED = "cloister-insecure-simulator-v1";

const SIMULATED_OU = "SIMULATED - NOT SECURE";

/** AMD's VCEK extension OIDs: one definition, shared with the verifier. */
export { AMD_OID };

/** Fixed validity of the simulated ARK/ASK/ASVK (AMD's roots are valid for 25 years). */
export const SIMULATED_AMD_CA_NOT_BEFORE = new Date("2024-01-01T00:00:00Z");
export const SIMULATED_AMD_CA_NOT_AFTER = new Date("2049-01-01T00:00:00Z");
/** Default validity of a simulated VCEK (AMD issues VCEKs for 7 years; the simulator covers the CA's span). */
export const SIMULATED_VCEK_NOT_BEFORE = new Date("2024-01-01T00:00:00Z");
export const SIMULATED_VCEK_NOT_AFTER = new Date("2048-12-31T00:00:00Z");

export interface InsecureSimulatedAmdHierarchy {
  readonly seed: string;
  readonly product: SnpProduct;
  readonly arkKey: InsecureRsaKey;
  readonly askKey: InsecureRsaKey;
  readonly asvkKey: InsecureRsaKey;
  /** DER certificates. */
  readonly ark: Uint8Array;
  readonly ask: Uint8Array;
  readonly asvk: Uint8Array;
  /** The default endorsement key: a VCEK for `defaultChipId` at `defaultTcb`. */
  readonly vcek: InsecureSimulatedEndorsementKey;
  readonly defaultChipId: Uint8Array;
  /** Default TCB_VERSION (raw u64) of the simulated platform. */
  readonly defaultTcb: bigint;
}

/** A simulated VCEK or VLEK: its private key, certificate and what the certificate asserts. */
export interface InsecureSimulatedEndorsementKey {
  readonly kind: "VCEK" | "VLEK";
  readonly product: SnpProduct;
  readonly key: InsecureEcKey;
  /** DER certificate. */
  readonly certificate: Uint8Array;
  /** CHIP_ID the certificate's hwID names (64 bytes; zero for a VLEK). */
  readonly chipId: Uint8Array;
  /** TCB_VERSION the certificate's SPLs name. */
  readonly tcb: bigint;
}

// productName exactly as real KDS VCEKs write it (see the fixtures: "Milan-B0", "Genoa", "Turin").
const PRODUCT_NAME: Record<SnpProduct, string> = { Milan: "Milan-B0", Genoa: "Genoa", Turin: "Turin" };

function amdName(cn: string): Uint8Array {
  const attrs: NameAttribute[] = [
    ["OU", SIMULATED_OU],
    ["C", "US"],
    ["L", "Santa Clara"],
    ["ST", "CA"],
    ["O", INSECURE_SIMULATOR_ORGANIZATION],
    ["CN", cn],
  ];
  return encodeName(attrs);
}

function serialOf(value: number): Uint8Array {
  return Uint8Array.of((value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff);
}

function caExtensions(
  subjectKey: InsecureRsaKey,
  issuerKey: InsecureRsaKey | null,
  product: SnpProduct,
  pathLen: boolean,
): ExtensionSpec[] {
  // Key identifiers: 20 bytes derived from the SPKI — any stable value works; AMD's are opaque.
  const keyId = (k: InsecureRsaKey) => new InsecureSeededDrbg(toHex(k.spki), "key-id").bytes(20);
  // CRLDistributionPoints: one fullName URI ([6] IA5String), like AMD's; the host is unresolvable.
  const uri = new TextEncoder().encode(`https://simulator.invalid/vcek/v1/${product}/crl`);
  const crl = der.seq(der.seq(der.explicit(0, der.explicit(0, encodeTlv(0x86, uri)))));
  const exts: ExtensionSpec[] = [];
  if (issuerKey === null) {
    exts.push({ oid: X509_OID.keyUsage, critical: true, value: der.bits(Uint8Array.of(0x06)) });
    exts.push({ oid: X509_OID.subjectKeyIdentifier, critical: false, value: der.octets(keyId(subjectKey)) });
    exts.push({ oid: X509_OID.basicConstraints, critical: true, value: der.seq(der.boolean(true)) });
  } else {
    exts.push({ oid: X509_OID.subjectKeyIdentifier, critical: false, value: der.octets(keyId(subjectKey)) });
    exts.push({
      oid: X509_OID.authorityKeyIdentifier,
      critical: false,
      value: der.seq(Uint8Array.of(0x80, 20, ...keyId(issuerKey))),
    });
    exts.push({
      oid: X509_OID.basicConstraints,
      critical: true,
      value: pathLen ? der.seq(der.boolean(true), der.int(0)) : der.seq(der.boolean(true)),
    });
    exts.push({ oid: X509_OID.keyUsage, critical: true, value: der.bits(Uint8Array.of(0x04)) });
  }
  exts.push({ oid: X509_OID.crlDistributionPoints, critical: false, value: crl });
  return exts;
}

/**
 * Writes an AMD-shaped CA certificate. Exposed for rejection tests that need a certificate signed
 * by the wrong key (`signer`), with the right names.
 */
export function writeSimulatedAmdCaCertificate(params: {
  product: SnpProduct;
  role: "ARK" | "ASK" | "ASVK";
  subjectKey: InsecureRsaKey;
  signer: InsecureRsaKey;
  notBefore?: Date;
  notAfter?: Date;
}): Uint8Array {
  const { product, role } = params;
  const cn = role === "ARK" ? `ARK-${product}` : role === "ASK" ? `SEV-${product}` : `SEV-VLEK-${product}`;
  const issuerCn = `ARK-${product}`;
  return writeCertificate(
    {
      serial: serialOf(role === "ARK" ? 0x10000 : role === "ASK" ? 0x10001 : 0x10002),
      signatureAlgorithm: "rsa-pss-sha384",
      issuer: amdName(issuerCn),
      subject: amdName(cn),
      notBefore: params.notBefore ?? SIMULATED_AMD_CA_NOT_BEFORE,
      notAfter: params.notAfter ?? SIMULATED_AMD_CA_NOT_AFTER,
      spki: params.subjectKey.spki,
      extensions: caExtensions(params.subjectKey, role === "ARK" ? null : params.signer, product, role !== "ARK"),
    },
    (tbs) => signRsaPssSha384(params.signer, tbs),
  );
}

function splExtensions(tcb: bigint, product: SnpProduct): ExtensionSpec[] {
  const byte = (n: number) => Number((tcb >> BigInt(8 * n)) & 0xffn);
  const int = (oid: string, value: number): ExtensionSpec => ({ oid, critical: false, value: der.int(value) });
  const turin = product === "Turin";
  const exts = [
    int(AMD_OID.blSPL, turin ? byte(1) : byte(0)),
    int(AMD_OID.teeSPL, turin ? byte(2) : byte(1)),
    int(AMD_OID.spl4, 0),
    int(AMD_OID.spl5, 0),
    int(AMD_OID.spl6, 0),
    int(AMD_OID.spl7, 0),
    int(AMD_OID.snpSPL, turin ? byte(3) : byte(6)),
    int(AMD_OID.ucodeSPL, byte(7)),
  ];
  if (turin) exts.unshift(int(AMD_OID.fmcSPL, byte(0)));
  return exts;
}

export interface SimulatedEndorsementKeyOptions {
  /** VCEK (default) or VLEK. */
  readonly kind?: "VCEK" | "VLEK";
  /** 64-byte CHIP_ID for the hwID extension (VCEK only). Default: the hierarchy's simulated chip. */
  readonly chipId?: Uint8Array;
  /** TCB_VERSION (raw u64) for the SPL extensions. Default: the hierarchy's default TCB. */
  readonly tcb?: bigint;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Sign with this key instead of the hierarchy's ASK/ASVK (rejection tests only). */
  readonly signer?: InsecureRsaKey;
}

/** Issues a VCEK (or VLEK) certificate under the simulated ASK (or ASVK), AMD's KDS shape. */
export function issueInsecureSimulatedEndorsementKey(
  hierarchy: Omit<InsecureSimulatedAmdHierarchy, "vcek">,
  options: SimulatedEndorsementKeyOptions = {},
): InsecureSimulatedEndorsementKey {
  const kind = options.kind ?? "VCEK";
  const product = hierarchy.product;
  const tcb = options.tcb ?? hierarchy.defaultTcb;
  const chipId = kind === "VCEK" ? new Uint8Array(options.chipId ?? hierarchy.defaultChipId) : new Uint8Array(64);
  if (chipId.length !== 64) throw new Error(`CHIP_ID: expected 64 bytes, found ${chipId.length}`);
  const key = deriveEndorsementKey(hierarchy.seed, kind, product, chipId, tcb);
  const extensions: ExtensionSpec[] = [
    { oid: AMD_OID.structVersion, critical: false, value: der.int(0) },
    { oid: AMD_OID.productName, critical: false, value: der.ia5(kind === "VCEK" ? PRODUCT_NAME[product] : product) },
    ...splExtensions(tcb, product),
  ];
  if (kind === "VCEK") {
    // Turin VCEKs carry an 8-byte hwID (the KDS URL uses only those 8 bytes); the others 64 bytes.
    const hwId = product === "Turin" ? chipId.slice(0, 8) : chipId;
    extensions.push({ oid: AMD_OID.hwID, critical: false, value: hwId });
  } else {
    extensions.push({ oid: AMD_OID.cspID, critical: false, value: der.ia5(`CN=${INSECURE_SIMULATOR_ORGANIZATION}`) });
  }
  const certificate = writeCertificate(
    {
      serial: Uint8Array.of(0),
      signatureAlgorithm: "rsa-pss-sha384",
      issuer: amdName(kind === "VCEK" ? `SEV-${product}` : `SEV-VLEK-${product}`),
      subject: amdName(kind === "VCEK" ? "SEV-VCEK" : "SEV-VLEK"),
      notBefore: options.notBefore ?? SIMULATED_VCEK_NOT_BEFORE,
      notAfter: options.notAfter ?? SIMULATED_VCEK_NOT_AFTER,
      spki: key.spki,
      extensions,
    },
    (tbs) => signRsaPssSha384(options.signer ?? (kind === "VCEK" ? hierarchy.askKey : hierarchy.asvkKey), tbs),
  );
  return { kind, product, key, certificate, chipId, tcb };
}

/** The private key of the VCEK (VLEK) for (seed, product, CHIP_ID, TCB_VERSION). */
export function deriveEndorsementKey(
  seed: string,
  kind: "VCEK" | "VLEK",
  product: SnpProduct,
  chipId: Uint8Array,
  tcb: bigint,
): InsecureEcKey {
  return deriveInsecureEcKey(seed, `${kind}:${product}:${toHex(chipId)}:${tcb.toString(16)}`, "P-384");
}

const DEFAULT_TCB: Record<
  SnpProduct,
  { fmc?: number; bootloader: number; tee: number; snp: number; microcode: number }
> = {
  Milan: { bootloader: 4, tee: 0, snp: 24, microcode: 219 },
  Genoa: { bootloader: 10, tee: 0, snp: 23, microcode: 84 },
  Turin: { fmc: 1, bootloader: 1, tee: 1, snp: 3, microcode: 9 },
};

/** The simulated platform of (seed, product): its CHIP_ID and TCB_VERSION. */
export function simulatedPlatform(
  seed: string,
  product: SnpProduct,
): Pick<InsecureSimulatedAmdHierarchy, "defaultChipId" | "defaultTcb"> {
  const chipId = new InsecureSeededDrbg(seed, `amd:${product}:CHIP_ID`).bytes(64);
  // Turin CHIP_IDs are 8 significant bytes (the rest of the 64-byte field is zero).
  if (product === "Turin") chipId.fill(0, 8);
  return { defaultChipId: chipId, defaultTcb: encodeTcbVersion(DEFAULT_TCB[product], product) };
}

const hierarchies = new Map<string, InsecureSimulatedAmdHierarchy>();

/**
 * The simulated AMD hierarchy for (seed, product), generated once per process (RSA key
 * generation is the slow part). The default seed is INSECURE_SIMULATOR_DEFAULT_SEED.
 */
export function insecureSimulatedAmdHierarchy(
  seed: string = INSECURE_SIMULATOR_DEFAULT_SEED,
  product: SnpProduct = "Milan",
): InsecureSimulatedAmdHierarchy {
  const cacheKey = `${product}\u0000${seed}`;
  const cached = hierarchies.get(cacheKey);
  if (cached !== undefined) return cached;
  const arkKey = generateInsecureRsaKey(seed, `amd:${product}:ARK`);
  const askKey = generateInsecureRsaKey(seed, `amd:${product}:ASK`);
  const asvkKey = generateInsecureRsaKey(seed, `amd:${product}:ASVK`);
  const ark = writeSimulatedAmdCaCertificate({ product, role: "ARK", subjectKey: arkKey, signer: arkKey });
  const ask = writeSimulatedAmdCaCertificate({ product, role: "ASK", subjectKey: askKey, signer: arkKey });
  const asvk = writeSimulatedAmdCaCertificate({ product, role: "ASVK", subjectKey: asvkKey, signer: arkKey });
  const base = { seed, product, arkKey, askKey, asvkKey, ark, ask, asvk, ...simulatedPlatform(seed, product) };
  const hierarchy: InsecureSimulatedAmdHierarchy = { ...base, vcek: issueInsecureSimulatedEndorsementKey(base) };
  hierarchies.set(cacheKey, hierarchy);
  return hierarchy;
}
