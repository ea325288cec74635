/**
 * INSECURE simulated Intel SGX/TDX provisioning hierarchy: a self-signed P-256 root CA ("Intel SGX
 * Root CA"), a PCK Platform CA, and PCK leaf certificates with Intel's SGX extension
 * (1.2.840.113741.1.13.1: PPID, TCB component SVNs, PCESVN, CPUSVN, PCE-ID, FMSPC, SGX type,
 * platform instance, configuration) in the real DER shape (see the PCK chains of the fixtures);
 * plus a quoting-enclave attestation key. Names carry O=Cloister Insecure Simulator and
 * OU=SIMULATED - NOT SECURE.
 *
 * All keys derive from a public seed; simulated roots are trusted only when passed explicitly as
 * anchors (`simulated: true`) and appraisal requires `trustSimulator: true`.
 */
import { toHex } from "../bytes.ts";
import { encodeTlv } from "../der.ts";
import { INSECURE_SIMULATOR_DEFAULT_SEED } from "./amd.ts";
import { InsecureSeededDrbg } from "./drbg.ts";
import { deriveInsecureEcKey, type InsecureEcKey, signEcdsaDer } from "./keys.ts";
import { INSECURE_SIMULATOR_ORGANIZATION } from "./names.ts";
import { der, type ExtensionSpec, encodeName, writeCertificate, X509_OID } from "./x509-writer.ts";

export const SGX_EXTENSION_OID = "1.2.840.113741.1.13.1";

export const SIMULATED_INTEL_NOT_BEFORE = new Date("2024-01-01T00:00:00Z");
export const SIMULATED_INTEL_ROOT_NOT_AFTER = new Date("2049-12-31T23:59:59Z");
export const SIMULATED_PCK_NOT_AFTER = new Date("2048-12-31T00:00:00Z");

/** Values a PCK leaf certificate asserts about the platform. */
export interface SimulatedPckTcb {
  /** The 16 SGX TCB component SVNs. */
  readonly tcbComponents: readonly number[];
  readonly pceSvn: number;
  /** CPUSVN (16 bytes). */
  readonly cpuSvn: Uint8Array;
  /** FMSPC (6 bytes). */
  readonly fmspc: Uint8Array;
  /** PCE-ID (2 bytes). */
  readonly pceId: Uint8Array;
}

export interface InsecureSimulatedPckLeaf {
  readonly key: InsecureEcKey;
  /** DER certificate. */
  readonly certificate: Uint8Array;
  readonly tcb: SimulatedPckTcb;
}

export interface InsecureSimulatedIntelHierarchy {
  readonly seed: string;
  readonly rootKey: InsecureEcKey;
  readonly pckCaKey: InsecureEcKey;
  /** DER certificates. */
  readonly root: Uint8Array;
  readonly pckCa: Uint8Array;
  /** The default PCK leaf of the simulated platform. */
  readonly pck: InsecureSimulatedPckLeaf;
  /** The simulated quoting enclave's ECDSA P-256 attestation key. */
  readonly attestationKey: InsecureEcKey;
}

/** A simulated Intel certificate or CRL issuer name (CN, then the simulator's OU and O). */
export function intelName(cn: string): Uint8Array {
  return encodeName([
    ["CN", cn],
    ["OU", "SIMULATED - NOT SECURE"],
    ["O", INSECURE_SIMULATOR_ORGANIZATION],
    ["L", "Santa Clara"],
    ["ST", "CA"],
    ["C", "US"],
  ]);
}

/** The key identifier (SKI/AKI) the simulated Intel hierarchy gives `key`. */
export function keyId(key: InsecureEcKey): Uint8Array {
  return new InsecureSeededDrbg(toHex(key.point), "key-id").bytes(20);
}

/** A simulated certificate's serial number for `label` (positive, 20 bytes). */
export function serial(seed: string, label: string): Uint8Array {
  const s = new InsecureSeededDrbg(seed, `serial:${label}`).bytes(20);
  s[0] = ((s[0] as number) & 0x7f) | 0x01;
  return s;
}

function crlDp(path: string): ExtensionSpec {
  const uri = new TextEncoder().encode(`https://simulator.invalid/sgx/${path}`);
  return {
    oid: X509_OID.crlDistributionPoints,
    critical: false,
    value: der.seq(der.seq(der.explicit(0, der.explicit(0, encodeTlv(0x86, uri))))),
  };
}

function caCertificate(params: {
  seed: string;
  cn: string;
  issuerCn: string;
  subjectKey: InsecureEcKey;
  signer: InsecureEcKey;
  pathLen: number;
  notAfter: Date;
}): Uint8Array {
  return writeCertificate(
    {
      serial: serial(params.seed, params.cn),
      signatureAlgorithm: "ecdsa-sha256",
      issuer: intelName(params.issuerCn),
      subject: intelName(params.cn),
      notBefore: SIMULATED_INTEL_NOT_BEFORE,
      notAfter: params.notAfter,
      spki: params.subjectKey.spki,
      extensions: [
        {
          oid: X509_OID.authorityKeyIdentifier,
          critical: false,
          value: der.seq(encodeTlv(0x80, keyId(params.signer))),
        },
        crlDp("IntelSGXRootCA.der"),
        { oid: X509_OID.subjectKeyIdentifier, critical: false, value: der.octets(keyId(params.subjectKey)) },
        { oid: X509_OID.keyUsage, critical: true, value: der.bits(Uint8Array.of(0x06)) },
        {
          oid: X509_OID.basicConstraints,
          critical: true,
          value: der.seq(der.boolean(true), der.int(params.pathLen)),
        },
      ],
    },
    (tbs) => signEcdsaDer(params.signer, tbs),
  );
}

/** The SGX extension value (DER) in the shape of a PCK Platform CA leaf. */
export function encodeSgxExtension(tcb: SimulatedPckTcb, ppid: Uint8Array, platformInstanceId: Uint8Array): Uint8Array {
  const sub = (suffix: string) => der.oid(`${SGX_EXTENSION_OID}.${suffix}`);
  const tcbEntries: Uint8Array[] = tcb.tcbComponents.map((svn, i) => der.seq(sub(`2.${i + 1}`), der.int(svn)));
  tcbEntries.push(der.seq(sub("2.17"), der.int(tcb.pceSvn)));
  tcbEntries.push(der.seq(sub("2.18"), der.octets(tcb.cpuSvn)));
  return der.seq(
    der.seq(sub("1"), der.octets(ppid)),
    der.seq(sub("2"), der.seq(...tcbEntries)),
    der.seq(sub("3"), der.octets(tcb.pceId)),
    der.seq(sub("4"), der.octets(tcb.fmspc)),
    der.seq(sub("5"), der.enumerated(1)), // SGX Type: Scalable
    der.seq(sub("6"), der.octets(platformInstanceId)),
    der.seq(
      sub("7"),
      der.seq(
        der.seq(sub("7.1"), der.boolean(false)), // dynamicPlatform
        der.seq(sub("7.2"), der.boolean(false)), // cachedKeys
        der.seq(sub("7.3"), der.boolean(false)), // SMTEnabled
      ),
    ),
  );
}

/** Default TCB of the simulated platform (values in the range real Sapphire Rapids parts report). */
export const SIMULATED_PCK_DEFAULT_TCB: SimulatedPckTcb = Object.freeze({
  tcbComponents: Object.freeze([5, 5, 13, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]),
  pceSvn: 11,
  cpuSvn: Uint8Array.of(5, 5, 13, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0),
  // An FMSPC that no Intel platform uses (family 0x0000 in the top bytes), marking the simulator.
  fmspc: Uint8Array.of(0x00, 0x00, 0x51, 0x4d, 0x00, 0x00),
  pceId: Uint8Array.of(0, 0),
});

export interface SimulatedPckOptions {
  readonly tcb?: Partial<SimulatedPckTcb>;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Sign with this key instead of the PCK CA (rejection tests only). */
  readonly signer?: InsecureEcKey;
  /** Label for the leaf key (a different label gives a different PCK key). */
  readonly keyLabel?: string;
}

/** Issues a PCK leaf certificate under the simulated PCK Platform CA. */
export function issueInsecureSimulatedPckLeaf(
  hierarchy: Pick<InsecureSimulatedIntelHierarchy, "seed" | "pckCaKey">,
  options: SimulatedPckOptions = {},
): InsecureSimulatedPckLeaf {
  const tcb: SimulatedPckTcb = { ...SIMULATED_PCK_DEFAULT_TCB, ...options.tcb };
  const label = options.keyLabel ?? "PCK";
  const key = deriveInsecureEcKey(hierarchy.seed, `intel:${label}`, "P-256");
  const drbg = new InsecureSeededDrbg(hierarchy.seed, `intel:${label}:ids`);
  const ppid = drbg.bytes(16);
  const platformInstanceId = drbg.bytes(16);
  const signer = options.signer ?? hierarchy.pckCaKey;
  const certificate = writeCertificate(
    {
      serial: serial(hierarchy.seed, `pck:${label}`),
      signatureAlgorithm: "ecdsa-sha256",
      issuer: intelName("Intel SGX PCK Platform CA"),
      subject: intelName("Intel SGX PCK Certificate"),
      notBefore: options.notBefore ?? SIMULATED_INTEL_NOT_BEFORE,
      notAfter: options.notAfter ?? SIMULATED_PCK_NOT_AFTER,
      spki: key.spki,
      extensions: [
        { oid: X509_OID.authorityKeyIdentifier, critical: false, value: der.seq(encodeTlv(0x80, keyId(signer))) },
        crlDp("pckcrl?ca=platform&encoding=der"),
        { oid: X509_OID.subjectKeyIdentifier, critical: false, value: der.octets(keyId(key)) },
        { oid: X509_OID.keyUsage, critical: true, value: der.bits(Uint8Array.of(0xc0)) },
        { oid: X509_OID.basicConstraints, critical: true, value: der.seq() },
        { oid: SGX_EXTENSION_OID, critical: false, value: encodeSgxExtension(tcb, ppid, platformInstanceId) },
      ],
    },
    (tbs) => signEcdsaDer(signer, tbs),
  );
  return { key, certificate, tcb };
}

const hierarchies = new Map<string, InsecureSimulatedIntelHierarchy>();

/** The simulated Intel hierarchy for `seed` (memoised; cheap: ECDSA keys only). */
export function insecureSimulatedIntelHierarchy(
  seed: string = INSECURE_SIMULATOR_DEFAULT_SEED,
): InsecureSimulatedIntelHierarchy {
  const cached = hierarchies.get(seed);
  if (cached !== undefined) return cached;
  const rootKey = deriveInsecureEcKey(seed, "intel:root", "P-256");
  const pckCaKey = deriveInsecureEcKey(seed, "intel:pck-platform-ca", "P-256");
  const root = caCertificate({
    seed,
    cn: "Intel SGX Root CA",
    issuerCn: "Intel SGX Root CA",
    subjectKey: rootKey,
    signer: rootKey,
    pathLen: 1,
    notAfter: SIMULATED_INTEL_ROOT_NOT_AFTER,
  });
  const pckCa = caCertificate({
    seed,
    cn: "Intel SGX PCK Platform CA",
    issuerCn: "Intel SGX Root CA",
    subjectKey: pckCaKey,
    signer: rootKey,
    pathLen: 0,
    notAfter: SIMULATED_PCK_NOT_AFTER,
  });
  const hierarchy: InsecureSimulatedIntelHierarchy = {
    seed,
    rootKey,
    pckCaKey,
    root,
    pckCa,
    pck: issueInsecureSimulatedPckLeaf({ seed, pckCaKey }),
    attestationKey: deriveInsecureEcKey(seed, "intel:qe-attestation-key", "P-256"),
  };
  hierarchies.set(seed, hierarchy);
  return hierarchy;
}

/** Writes a PCK Platform CA certificate signed by `signer` (rejection tests: wrong issuer key). */
export function writeSimulatedPckCaCertificate(
  seed: string,
  subjectKey: InsecureEcKey,
  signer: InsecureEcKey,
): Uint8Array {
  return caCertificate({
    seed,
    cn: "Intel SGX PCK Platform CA",
    issuerCn: "Intel SGX Root CA",
    subjectKey,
    signer,
    pathLen: 0,
    notAfter: SIMULATED_PCK_NOT_AFTER,
  });
}
