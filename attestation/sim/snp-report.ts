/**
 * INSECURE simulated SEV-SNP ATTESTATION_REPORT: 1184 bytes in AMD's layout (offsets from
 * snp/parse.ts, the production parser), signed with ECDSA P-384/SHA-384 by a simulated VCEK/VLEK,
 * R and S little-endian in 72-byte fields. The production parser and verifier run on it unchanged;
 * only the trust anchor differs (see amd.ts).
 */
import { toHex } from "../bytes.ts";
import { SNP_OFFSETS, SNP_REPORT_SIZE, SNP_SIGNED_LENGTH, type SnpProduct } from "../snp/parse.ts";
import type { InsecureSimulatedEndorsementKey } from "./amd.ts";
import type { InsecureSimulatedSnpSigner } from "./default-milan.ts";
import { InsecureSeededDrbg } from "./drbg.ts";
import { signEcdsaRaw } from "./keys.ts";

/** Guest POLICY with SMT allowed (bit 16) and the reserved-one bit 17: 0x30000, no debug, no MA. */
export const SIMULATED_SNP_DEFAULT_POLICY = 0x30000n;

const CPUID: Record<SnpProduct, readonly [number, number, number]> = {
  Milan: [0x19, 0x01, 0x01],
  Genoa: [0x19, 0x11, 0x01],
  Turin: [0x1a, 0x02, 0x00],
};

export interface SimulatedSnpReportOptions {
  /** REPORT_DATA (64 bytes): what the guest binds (see attestation/binding.ts). */
  readonly reportData: Uint8Array;
  /** MEASUREMENT (48 bytes): the launch digest, e.g. simulatedLaunchMeasurement(). */
  readonly measurement: Uint8Array;
  /** Guest POLICY (default 0x30000). */
  readonly policy?: bigint;
  /** VMPL 0..3 (default 0). */
  readonly vmpl?: number;
  /** HOST_DATA (32 bytes, default zero). */
  readonly hostData?: Uint8Array;
  /** TCB_VERSION written to CURRENT/REPORTED/COMMITTED/LAUNCH_TCB (default: the signer's TCB). */
  readonly tcb?: bigint;
  /** LAUNCH_TCB only (default `tcb`): a guest launched under older firmware than it now reports. */
  readonly launchTcb?: bigint;
  /** COMMITTED_TCB only (default `tcb`): provisional firmware, not yet committed, above it. */
  readonly committedTcb?: bigint;
  /** CURRENT_TCB only (default `tcb`): the firmware the platform runs now. */
  readonly currentTcb?: bigint;
  /** Report VERSION (default 5). */
  readonly version?: 3 | 5;
  /** LAUNCH_MIT_VECTOR / CURRENT_MIT_VECTOR (version 5 only; default zero: no mitigation verified). */
  readonly launchMitVector?: bigint;
  readonly currentMitVector?: bigint;
  readonly guestSvn?: number;
  /** FAMILY_ID / IMAGE_ID (16 bytes each, default zero). */
  readonly familyId?: Uint8Array;
  readonly imageId?: Uint8Array;
  /** ID_KEY_DIGEST / AUTHOR_KEY_DIGEST (48 bytes each, default zero). AUTHOR_KEY_EN is set when the author digest is given. */
  readonly idKeyDigest?: Uint8Array;
  readonly authorKeyDigest?: Uint8Array;
  /** PLATFORM_INFO (default 0x25: SMT enabled, ECC enabled, alias check complete). */
  readonly platformInfo?: bigint;
  /** The endorsement key that signs (default: the hierarchy's VCEK). */
  readonly signer?: InsecureSimulatedEndorsementKey;
  /** CHIP_ID written into the report (default: the signer's; zero for a VLEK). */
  readonly chipId?: Uint8Array;
}

function put(out: Uint8Array, offset: number, bytes: Uint8Array, size: number, field: string): void {
  if (bytes.length !== size)
    throw new Error(`simulateSnpReport: ${field} must be ${size} bytes, found ${bytes.length}`);
  out.set(bytes, offset);
}

/** Builds and signs a simulated SNP report. Deterministic for given inputs. */
export function simulateSnpReport(
  hierarchy: InsecureSimulatedSnpSigner,
  options: SimulatedSnpReportOptions,
): Uint8Array {
  const signer = options.signer ?? hierarchy.vcek;
  const product = signer.product;
  const version = options.version ?? 5;
  const vmpl = options.vmpl ?? 0;
  if (!Number.isInteger(vmpl) || vmpl < 0 || vmpl > 3) throw new Error(`simulateSnpReport: VMPL ${vmpl} not in 0..3`);
  const tcb = options.tcb ?? signer.tcb;
  const out = new Uint8Array(SNP_REPORT_SIZE);
  const view = new DataView(out.buffer);
  const O = SNP_OFFSETS;
  view.setUint32(O.VERSION, version, true);
  view.setUint32(O.GUEST_SVN, options.guestSvn ?? 0, true);
  view.setBigUint64(O.POLICY, options.policy ?? SIMULATED_SNP_DEFAULT_POLICY, true);
  put(out, O.FAMILY_ID, options.familyId ?? new Uint8Array(16), 16, "FAMILY_ID");
  put(out, O.IMAGE_ID, options.imageId ?? new Uint8Array(16), 16, "IMAGE_ID");
  view.setUint32(O.VMPL, vmpl, true);
  view.setUint32(O.SIGNATURE_ALGO, 1, true);
  view.setBigUint64(O.CURRENT_TCB, options.currentTcb ?? tcb, true);
  view.setBigUint64(O.PLATFORM_INFO, options.platformInfo ?? 0x25n, true);
  const authorKeyEn = options.authorKeyDigest !== undefined;
  const signingKey = signer.kind === "VCEK" ? 0 : 1;
  view.setUint32(O.SIGNER_INFO, (authorKeyEn ? 1 : 0) | (signingKey << 2), true);
  put(out, O.REPORT_DATA, options.reportData, 64, "REPORT_DATA");
  put(out, O.MEASUREMENT, options.measurement, 48, "MEASUREMENT");
  put(out, O.HOST_DATA, options.hostData ?? new Uint8Array(32), 32, "HOST_DATA");
  put(out, O.ID_KEY_DIGEST, options.idKeyDigest ?? new Uint8Array(48), 48, "ID_KEY_DIGEST");
  put(out, O.AUTHOR_KEY_DIGEST, options.authorKeyDigest ?? new Uint8Array(48), 48, "AUTHOR_KEY_DIGEST");
  // REPORT_ID: a per-guest random value on hardware; here derived from the inputs.
  const reportId = new InsecureSeededDrbg(hierarchy.seed, `REPORT_ID:${toHex(options.measurement)}`).bytes(32);
  out.set(reportId, O.REPORT_ID);
  out.fill(0xff, O.REPORT_ID_MA, O.REPORT_ID_MA + 32); // no migration agent: all ones, as on hardware
  view.setBigUint64(O.REPORTED_TCB, tcb, true);
  if (version >= 3) {
    const [family, model, stepping] = CPUID[product];
    out[O.CPUID_FAM_ID] = family;
    out[O.CPUID_MOD_ID] = model;
    out[O.CPUID_STEP] = stepping;
  }
  put(out, O.CHIP_ID, options.chipId ?? signer.chipId, 64, "CHIP_ID");
  view.setBigUint64(O.COMMITTED_TCB, options.committedTcb ?? tcb, true);
  out[O.CURRENT_BUILD] = 23;
  out[O.CURRENT_MINOR] = 55;
  out[O.CURRENT_MAJOR] = 1;
  out[O.COMMITTED_BUILD] = 23;
  out[O.COMMITTED_MINOR] = 55;
  out[O.COMMITTED_MAJOR] = 1;
  view.setBigUint64(O.LAUNCH_TCB, options.launchTcb ?? tcb, true);
  if (version >= 5) {
    view.setBigUint64(O.LAUNCH_MIT_VECTOR, options.launchMitVector ?? 0n, true);
    view.setBigUint64(O.CURRENT_MIT_VECTOR, options.currentMitVector ?? 0n, true);
  } else if (options.launchMitVector !== undefined || options.currentMitVector !== undefined) {
    throw new Error(`simulateSnpReport: a version ${version} report has no mitigation vectors (version 5 and later)`);
  }
  signSnpReportInPlace(out, signer);
  return out;
}

/**
 * (Re-)signs bytes [0, 0x2A0) of a report in place with `signer`. Rejection tests use it to make a
 * report whose signature is valid but whose contents were changed after the fact.
 */
export function signSnpReportInPlace(report: Uint8Array, signer: InsecureSimulatedEndorsementKey): void {
  const raw = signEcdsaRaw(signer.key, report.subarray(0, SNP_SIGNED_LENGTH));
  const r = raw.slice(0, 48).reverse();
  const s = raw.slice(48, 96).reverse();
  report.fill(0, SNP_OFFSETS.SIGNATURE, SNP_REPORT_SIZE);
  report.set(r, SNP_OFFSETS.SIGNATURE);
  report.set(s, SNP_OFFSETS.SIGNATURE + 72);
}
