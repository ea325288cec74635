/**
 * INSECURE simulated Intel TDX quote, version 4, in the real layout (see the fixtures README and
 * tdx/parse.ts): 48-byte header, 584-byte TD report body (TDX 1.0), signature data with the
 * attestation key's ECDSA-P256 signature over header‖body, the attestation key, certification data
 * type 6 holding the QE report (signed by the PCK leaf key), QE auth data and certification data
 * type 5 with the PEM PCK chain (leaf, PCK Platform CA, root). The QE report's REPORTDATA binds the
 * attestation key: SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { concatBytes, fromHex } from "../bytes.ts";
import { INTEL_QE_VENDOR_ID } from "../tdx/parse.ts";
import { INSECURE_SIMULATOR_DEFAULT_SEED } from "./amd.ts";
import { InsecureSeededDrbg } from "./drbg.ts";
import type { InsecureSimulatedIntelHierarchy, InsecureSimulatedPckLeaf } from "./intel.ts";
import { type InsecureEcKey, signEcdsaRaw } from "./keys.ts";
import { toPem } from "./x509-writer.ts";

/** TDATTRIBUTES with only SEPT_VE_DISABLE (bit 28) set: not a debug TD. */
export const SIMULATED_TD_ATTRIBUTES = fromHex("0000001000000000");
/** A typical XFAM (x87, SSE, AVX, AVX-512, PKRU, AMX state components). */
export const SIMULATED_XFAM = fromHex("e702060000000000");

/** The default TEE_TCB_SVN (TDX module SVN 3, major version 0, late microcode SVN 5). */
export const SIMULATED_TEE_TCB_SVN = Uint8Array.of(3, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

/**
 * The MRSEAM a quote gets by default under the hierarchy of `seed` (default the enclave's,
 * INSECURE_SIMULATOR_DEFAULT_SEED): a seed-derived digest of a simulated TDX module, the same in
 * every quote of that hierarchy.
 */
export function simulatedMrSeam(seed: string = INSECURE_SIMULATOR_DEFAULT_SEED): Uint8Array {
  return new InsecureSeededDrbg(seed, "tdx:MRSEAM").bytes(48);
}

export interface SimulatedTdxQuoteOptions {
  /** REPORTDATA (64 bytes). */
  readonly reportData: Uint8Array;
  /** MRTD (48 bytes): the TD's build-time measurement. */
  readonly mrtd: Uint8Array;
  /** RTMR0..3 (48 bytes each). */
  readonly rtmrs: readonly [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  /** MRSEAM (48 bytes; default simulatedMrSeam(hierarchy.seed)). */
  readonly mrseam?: Uint8Array;
  /** TDATTRIBUTES (8 bytes; default SIMULATED_TD_ATTRIBUTES, no debug). */
  readonly tdAttributes?: Uint8Array;
  /** XFAM (8 bytes; default SIMULATED_XFAM). */
  readonly xfam?: Uint8Array;
  /** MRCONFIGID, MROWNER, MROWNERCONFIG (48 bytes each, default zero). */
  readonly mrconfigid?: Uint8Array;
  readonly mrowner?: Uint8Array;
  readonly mrownerconfig?: Uint8Array;
  /** TEE_TCB_SVN (16 bytes; default 03 00 05 00 …: TDX module 1.5-era SVNs). */
  readonly teeTcbSvn?: Uint8Array;
  /** The PCK leaf that signs the QE report (default: the hierarchy's). */
  readonly pck?: InsecureSimulatedPckLeaf;
  /** The attestation key that signs the quote (default: the hierarchy's). */
  readonly attestationKey?: InsecureEcKey;
  /** QE auth data (default the 32 bytes 00..1f, as real QEs send). */
  readonly qeAuthData?: Uint8Array;
  /**
   * Override of the QE report's REPORTDATA (rejection tests only: breaks the attestation-key
   * binding). Default: SHA-256(attestation key ‖ QE auth data) ‖ 0³².
   */
  readonly insecureQeReportData?: Uint8Array;
  /** MRSIGNERSEAM (48 bytes; default zero, Intel's module; rejection tests only). */
  readonly insecureMrSignerSeam?: Uint8Array;
  /** SEAMATTRIBUTES (8 bytes; default zero, a production module; rejection tests only). */
  readonly insecureSeamAttributes?: Uint8Array;
  /** Override of the QE report's MRSIGNER (rejection tests only: a quoting enclave not Intel's). */
  readonly insecureQeMrSigner?: Uint8Array;
  /**
   * Override of the QE report's ATTRIBUTES (16 bytes; rejection tests only, e.g. DEBUG set). Default
   * 15 00.. e7 00..: INIT, MODE64BIT, PROVISIONKEY; XFRM e7, as real TD QEs report.
   */
  readonly insecureQeAttributes?: Uint8Array;
  /** Override of the QE report's MISCSELECT (rejection tests only; default 0, as real TD QEs report). */
  readonly insecureQeMiscSelect?: number;
  /** Override of the QE report's ISVPRODID (rejection tests only: e.g. 1, Intel's SGX QE; default 2, the TD QE). */
  readonly insecureQeIsvProdId?: number;
}

/** The TD QE's ATTRIBUTES in every real quote: INIT, MODE64BIT, PROVISIONKEY (no DEBUG); XFRM e7. */
const QE_ATTRIBUTES = fromHex("1500000000000000e700000000000000");
const INTEL_TD_QE_MRSIGNER = fromHex("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5");

function put(out: Uint8Array, offset: number, bytes: Uint8Array, size: number, field: string): void {
  if (bytes.length !== size) throw new Error(`simulateTdxQuote: ${field} must be ${size} bytes, found ${bytes.length}`);
  out.set(bytes, offset);
}

const u16 = (v: number) => Uint8Array.of(v & 0xff, (v >> 8) & 0xff);
const u32 = (v: number) => Uint8Array.of(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff);

/** Builds and signs a simulated TDX v4 quote. Deterministic for given inputs. */
export function simulateTdxQuote(
  hierarchy: InsecureSimulatedIntelHierarchy,
  options: SimulatedTdxQuoteOptions,
): Uint8Array {
  const pck = options.pck ?? hierarchy.pck;
  const ak = options.attestationKey ?? hierarchy.attestationKey;
  const drbg = (label: string, n: number) => new InsecureSeededDrbg(hierarchy.seed, `tdx:${label}`).bytes(n);

  // Header (48 bytes).
  const header = new Uint8Array(48);
  header.set(u16(4), 0); // version
  header.set(u16(2), 2); // attestation key type: ECDSA-P256
  header.set(u32(0x81), 4); // TEE type: TDX
  header.set(fromHex(INTEL_QE_VENDOR_ID), 12);
  header.set(drbg("user-data", 16), 28); // QE identifier in user_data[0..16); [16..20) zero

  // TD report body, TDX 1.0 (584 bytes).
  const body = new Uint8Array(584);
  put(body, 0, options.teeTcbSvn ?? SIMULATED_TEE_TCB_SVN, 16, "TEE_TCB_SVN");
  put(body, 16, options.mrseam ?? simulatedMrSeam(hierarchy.seed), 48, "MRSEAM");
  // MRSIGNERSEAM and SEAMATTRIBUTES zero: an Intel-signed production TDX module.
  put(body, 64, options.insecureMrSignerSeam ?? new Uint8Array(48), 48, "MRSIGNERSEAM");
  put(body, 112, options.insecureSeamAttributes ?? new Uint8Array(8), 8, "SEAMATTRIBUTES");
  put(body, 120, options.tdAttributes ?? SIMULATED_TD_ATTRIBUTES, 8, "TDATTRIBUTES");
  put(body, 128, options.xfam ?? SIMULATED_XFAM, 8, "XFAM");
  put(body, 136, options.mrtd, 48, "MRTD");
  put(body, 184, options.mrconfigid ?? new Uint8Array(48), 48, "MRCONFIGID");
  put(body, 232, options.mrowner ?? new Uint8Array(48), 48, "MROWNER");
  put(body, 280, options.mrownerconfig ?? new Uint8Array(48), 48, "MROWNERCONFIG");
  if (options.rtmrs.length !== 4) throw new Error("simulateTdxQuote: expected 4 RTMRs");
  for (const [i, rtmr] of options.rtmrs.entries()) put(body, 328 + 48 * i, rtmr, 48, `RTMR${i}`);
  put(body, 520, options.reportData, 64, "REPORTDATA");

  const signed = concatBytes(header, body);
  const quoteSignature = signEcdsaRaw(ak, signed);
  const akRaw = ak.point.slice(1); // x‖y without the 0x04 prefix

  // QE report (SGX report body, 384 bytes).
  const qeAuthData = options.qeAuthData ?? Uint8Array.from({ length: 32 }, (_, i) => i);
  const qeReport = new Uint8Array(384);
  qeReport.set(pck.tcb.cpuSvn, 0); // CPUSVN
  qeReport.set(u32(options.insecureQeMiscSelect ?? 0), 16); // MISCSELECT
  put(qeReport, 48, options.insecureQeAttributes ?? QE_ATTRIBUTES, 16, "QE ATTRIBUTES");
  qeReport.set(drbg("QE MRENCLAVE", 32), 64);
  // Intel's TD QE signer, as on real hardware (attestation/tdx/verify.ts requires it); the report is
  // still signed by the simulator's PCK key, so it is trusted only under simulator anchors.
  qeReport.set(options.insecureQeMrSigner ?? INTEL_TD_QE_MRSIGNER, 128);
  qeReport.set(u16(options.insecureQeIsvProdId ?? 2), 256); // ISVPRODID 2: the TD quoting enclave
  qeReport.set(u16(4), 258); // ISVSVN
  const qeReportData =
    options.insecureQeReportData ?? concatBytes(sha256(concatBytes(akRaw, qeAuthData)), new Uint8Array(32));
  put(qeReport, 320, qeReportData, 64, "QE REPORTDATA");
  const qeReportSignature = signEcdsaRaw(pck.key, qeReport);

  // PCK chain as PEM, NUL-terminated like the real QE output.
  const pem = new TextEncoder().encode(`${toPem([pck.certificate, hierarchy.pckCa, hierarchy.root])}\u0000`);
  const inner = concatBytes(u16(5), u32(pem.length), pem);
  const certData = concatBytes(qeReport, qeReportSignature, u16(qeAuthData.length), qeAuthData, inner);
  const signatureData = concatBytes(quoteSignature, akRaw, u16(6), u32(certData.length), certData);
  return concatBytes(signed, u32(signatureData.length), signatureData);
}
