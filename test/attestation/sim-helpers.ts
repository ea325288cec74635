/** Shared inputs for the simulator / appraisal tests: fixed clock, fixed evidence values, policies. */
import { toHex } from "../../attestation/bytes.ts";
import { type AttestationPolicy, parseAttestationPolicy } from "../../attestation/policy.ts";
import { type InsecureEcKey, signEcdsaDer } from "../../attestation/sim/keys.ts";
import { writeCertificate } from "../../attestation/sim/x509-writer.ts";
import { parseCertificate } from "../../attestation/x509.ts";

/** Frozen verification and appraisal time. */
export const AT = new Date("2026-01-01T00:00:00Z");

export const REPORT_DATA = Uint8Array.from({ length: 64 }, (_, i) => (i * 7 + 1) & 0xff);
export const MEASUREMENT = Uint8Array.from({ length: 48 }, (_, i) => (0xa0 + i) & 0xff);
export const MRTD = Uint8Array.from({ length: 48 }, (_, i) => (0x30 + i) & 0xff);
export const RTMRS = [0, 1, 2, 3].map((n) => Uint8Array.from({ length: 48 }, (_, i) => (n * 48 + i) & 0xff)) as [
  Uint8Array,
  Uint8Array,
  Uint8Array,
  Uint8Array,
];

const skip = (reason: string) => ({ skip: { reason } });

/** An SNP policy section that the default simulated report satisfies. */
export function snpPolicyJson(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    debugAllowed: false,
    migrationAgentAllowed: false,
    smtAllowed: true,
    allowedVmpls: [0],
    minimumTcb: { bootloader: 4, tee: 0, snp: 24, microcode: 219, fmc: 0 },
    measurements: [toHex(MEASUREMENT)],
    hostData: toHex(new Uint8Array(32)),
    idKeyDigests: skip("the simulated guest has no ID block"),
    authorKeyDigests: skip("the simulated guest has no ID block"),
    minimumGuestSvn: 0,
    allowedProducts: ["Milan"],
    signingKeys: ["vcek"],
    // The hardening checks as `cloister policy init` writes them (explicit, mostly skipped): a test
    // about one sets it.
    cxlAllowed: false,
    minimumAbi: skip("not the subject of these tests"),
    minimumFirmware: skip("not the subject of these tests"),
    requireGuestPolicy: skip("not the subject of these tests"),
    requirePlatformInfo: skip("not the subject of these tests"),
    tioAllowed: true,
    requireMitigations: skip("not the subject of these tests"),
    ...overrides,
  };
}

/** A TDX policy section that the default simulated quote (with MRTD, RTMRS) satisfies. */
export function tdxPolicyJson(mrseam: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    debugAllowed: false,
    xfam: { allowed: ["e702060000000000"] },
    tdAttributes: { allowed: ["0000001000000000"] },
    mrseam: [mrseam],
    mrtd: [toHex(MRTD)],
    rtmrs: RTMRS.map((r) => toHex(r)),
    mrconfigid: toHex(new Uint8Array(48)),
    mrowner: toHex(new Uint8Array(48)),
    mrownerconfig: toHex(new Uint8Array(48)),
    mrservicetd: toHex(new Uint8Array(48)),
    acceptedTcbStatuses: skip(
      "these tests verify quotes without collateral (sim-tdx-collateral.test.ts checks TCB status)",
    ),
    minimumTeeTcbSvn: "03000500000000000000000000000000",
    minimumQeSvn: skip("not the subject of these tests"),
    minimumPceSvn: skip("not the subject of these tests"),
    rejectedAdvisoryIds: skip("not the subject of these tests"),
    ...overrides,
  };
}

export function policy(parts: {
  snp?: Record<string, unknown> | null;
  tdx?: Record<string, unknown> | null;
  trustSimulator?: boolean;
}): AttestationPolicy {
  return parseAttestationPolicy({
    version: 1,
    trustSimulator: parts.trustSimulator ?? true,
    maximumVerificationSkewSeconds: 300,
    snp: parts.snp === undefined ? null : parts.snp,
    tdx: parts.tdx === undefined ? null : parts.tdx,
    azure: null,
  });
}

/**
 * `der` (an ECDSA P-256 certificate) re-certified by `signer` with the same key, serial and validity,
 * and another subject, issuer or extensions: its chain and signature verify, only what changed is
 * wrong. `extensions` gives each extension's new value, or undefined to leave it out.
 */
export function reissueCertificate(
  der: Uint8Array,
  signer: InsecureEcKey,
  changes: {
    readonly subject?: Uint8Array;
    readonly issuer?: Uint8Array;
    readonly extensions?: (oid: string, value: Uint8Array) => Uint8Array | undefined;
  },
): Uint8Array {
  const cert = parseCertificate(der);
  const extensions = changes.extensions ?? ((_oid: string, value: Uint8Array) => value);
  return writeCertificate(
    {
      serial: cert.serialNumber,
      signatureAlgorithm: "ecdsa-sha256",
      issuer: changes.issuer ?? cert.issuerDer,
      subject: changes.subject ?? cert.subjectDer,
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      spki: cert.publicKey.spki,
      extensions: [...cert.extensions].flatMap(([oid, e]) => {
        const value = extensions(oid, e.value);
        return value === undefined ? [] : [{ oid, critical: e.critical, value }];
      }),
    },
    (tbs) => signEcdsaDer(signer, tbs),
  );
}
