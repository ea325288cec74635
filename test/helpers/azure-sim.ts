/**
 * Azure SNP evidence re-made around the captured Genoa runtime data: the hardware report is the
 * simulator's (so REPORT_DATA can bind runtime data naming a vTPM key the tests hold), and the vTPM
 * quote is written and signed here with any qualifying data and PCR selections. It verifies only
 * under the simulator's Genoa anchor (`simulatedAzureSnpAnchors`).
 */
import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import type { AzureEvidence } from "../../attestation/azure/evidence.ts";
import { parseHclReport } from "../../attestation/azure/hcl.ts";
import {
  INSECURE_SIMULATOR_DEFAULT_SEED,
  insecureSimulatedAmdHierarchy,
  insecureSimulatorAnchors,
  simulateSnpReport,
} from "../../attestation/sim/index.ts";

export const TPM_ALG_SHA1 = 0x0004;
export const TPM_ALG_SHA256 = 0x000b;
export const ALL_PCRS: readonly number[] = Array.from({ length: 24 }, (_, i) => i);
/** The PCR values the simulated quotes cover: PCR i holds 32 bytes of i + 1. */
export const SIMULATED_PCRS: readonly Uint8Array[] = ALL_PCRS.map((i) => new Uint8Array(32).fill(i + 1));
/** The simulated paravisor's SNP MEASUREMENT. */
export const SIMULATED_AZURE_MEASUREMENT = new Uint8Array(48).fill(0xa5);

const hardware = insecureSimulatedAmdHierarchy(INSECURE_SIMULATOR_DEFAULT_SEED, "Genoa");
export const simulatedAzureSnpAnchors = insecureSimulatorAnchors(INSECURE_SIMULATOR_DEFAULT_SEED, ["Genoa"]).snp;
const ak = generateKeyPairSync("rsa", { modulusLength: 2048 });

export interface PcrSelection {
  readonly hashAlg: number;
  readonly pcrs: readonly number[];
}

const CAPTURED_HCL = parseHclReport(
  new Uint8Array(readFileSync(new URL("../fixtures/attestation/azure/snp-vtpm/genoa-hcl-report.bin", import.meta.url))),
);

/** An HCL report's layout fields (attestation/azure/hcl.ts); each defaults to what makes a well-formed report. */
export interface HclReportLayout {
  /** The 1184-byte hardware report region (default: zero bytes). */
  readonly hardwareReport?: Uint8Array;
  /** The runtime-data bytes. */
  readonly json: Uint8Array;
  readonly status?: number;
  readonly reportType?: number;
  readonly hashType?: number;
  readonly variableSize?: number;
  readonly dataSize?: number;
  readonly reportSize?: number;
  /** Bytes after the runtime data (Azure pads the NV index with zeros). */
  readonly trailing?: Uint8Array;
}

/** HCL report bytes: the captured Genoa header with these layout fields (a malformed report when one is off). */
export function hclReportBytes(layout: HclReportLayout): Uint8Array {
  const { json } = layout;
  const trailing = layout.trailing ?? new Uint8Array(0);
  const out = new Uint8Array(0x4d4 + json.length + trailing.length);
  const view = new DataView(out.buffer);
  out.set(CAPTURED_HCL.raw.subarray(0, 0x20));
  view.setUint32(8, layout.reportSize ?? 0x4c0 + 20 + json.length, true); // report_size
  view.setUint32(16, layout.status ?? 0, true);
  out.set(layout.hardwareReport ?? new Uint8Array(0x4a0), 0x20);
  view.setUint32(0x4c0, layout.dataSize ?? 20 + json.length, true); // data_size
  view.setUint32(0x4c4, CAPTURED_HCL.runtimeDataVersion, true);
  view.setUint32(0x4c8, layout.reportType ?? 2, true); // report_type: SNP
  view.setUint32(0x4cc, layout.hashType ?? 1, true); // hash_type: SHA-256
  view.setUint32(0x4d0, layout.variableSize ?? json.length, true);
  out.set(json, 0x4d4);
  out.set(trailing, 0x4d4 + json.length);
  return out;
}

/** The captured Genoa runtime-data JSON text (keys with HCLAkPub, vm-configuration, user-data). */
export const CAPTURED_RUNTIME_JSON = new TextDecoder().decode(CAPTURED_HCL.runtimeData.json);

/**
 * The captured HCL report with its HCLAkPub replaced by `jwk` (or with the runtime-data JSON text
 * `edit` returns for the captured JSON text and the key), over a simulated SNP report at `vmpl` binding it.
 */
function hclReport(
  jwk: { n?: string; e?: string },
  vmpl: number,
  edit?: (runtimeJson: string, jwk: { n?: string; e?: string }) => string,
  reportDataUpper?: Uint8Array,
): Uint8Array {
  const runtime = JSON.parse(CAPTURED_RUNTIME_JSON) as { keys: { kid: string }[] };
  runtime.keys = runtime.keys.map((k) => (k.kid === "HCLAkPub" ? { ...k, n: jwk.n, e: jwk.e } : k));
  const json = new TextEncoder().encode(
    edit === undefined ? JSON.stringify(runtime) : edit(CAPTURED_RUNTIME_JSON, jwk),
  );
  const reportData = new Uint8Array(64);
  reportData.set(createHash("sha256").update(json).digest());
  if (reportDataUpper !== undefined) reportData.set(reportDataUpper, 32);
  const hardwareReport = simulateSnpReport(hardware, { reportData, measurement: SIMULATED_AZURE_MEASUREMENT, vmpl });
  return hclReportBytes({ hardwareReport, json });
}

/** TPMS_ATTEST fields a test may set (TPM 2.0 Part 2); each defaults to what makes a well-formed quote. */
export interface TpmsAttestFields {
  /** The qualifying data (nonce). */
  readonly extraData: Uint8Array;
  /** PCR selections (default: one SHA-256 selection of the 24 PCRs), each with a 3-byte bitmap unless `sizeofSelect` says otherwise. */
  readonly selections?: readonly (PcrSelection & { readonly sizeofSelect?: number })[];
  readonly magic?: number;
  readonly type?: number;
  readonly qualifiedSigner?: Uint8Array;
  readonly safe?: number;
  /** Default: SHA-256 of the first selection's SIMULATED_PCRS values. */
  readonly pcrDigest?: Uint8Array;
}

/** A TPMS_ATTEST quote (big-endian), unsigned. */
export function tpmsAttest(fields: TpmsAttestFields): Uint8Array {
  const selections = fields.selections ?? [{ hashAlg: TPM_ALG_SHA256, pcrs: ALL_PCRS }];
  const digest =
    fields.pcrDigest ??
    createHash("sha256")
      .update(Buffer.concat((selections[0]?.pcrs ?? []).map((i) => SIMULATED_PCRS[i] as Uint8Array)))
      .digest();
  const parts: Buffer[] = [];
  const u = (bytes: number, value: number | bigint) => {
    const b = Buffer.alloc(bytes);
    if (bytes === 8) b.writeBigUInt64BE(BigInt(value));
    else b.writeUIntBE(Number(value), 0, bytes);
    parts.push(b);
  };
  const sized = (bytes: Uint8Array) => {
    u(2, bytes.length);
    parts.push(Buffer.from(bytes));
  };
  u(4, fields.magic ?? 0xff544347); // TPM_GENERATED_VALUE
  u(2, fields.type ?? 0x8018); // TPM_ST_ATTEST_QUOTE
  sized(fields.qualifiedSigner ?? new Uint8Array(34).fill(0x11));
  sized(fields.extraData);
  u(8, 1234n); // clock
  u(4, 1); // resetCount
  u(4, 0); // restartCount
  u(1, fields.safe ?? 1);
  u(8, 0x2020n); // firmwareVersion
  u(4, selections.length);
  for (const s of selections) {
    const size = s.sizeofSelect ?? 3;
    u(2, s.hashAlg);
    u(1, size);
    const bitmap = Buffer.alloc(size);
    for (const i of s.pcrs) bitmap[i >> 3] = (bitmap[i >> 3] as number) | (1 << (i & 7));
    parts.push(bitmap);
  }
  sized(digest);
  return new Uint8Array(Buffer.concat(parts));
}

/** A TPMS_ATTEST quote with this qualifying data and these PCR selections, signed by the test key. */
function quoteWith(extraData: Uint8Array, selections: readonly PcrSelection[]) {
  const message = tpmsAttest({ extraData, selections });
  return { message, signature: new Uint8Array(sign("sha256", message, ak.privateKey)), pcrs: [...SIMULATED_PCRS] };
}

/**
 * Simulated azure-snp evidence whose vTPM quote carries `extraData` as qualifying data (default:
 * one SHA-256 selection of the 24 PCRs, signed by the attested test HCLAkPub).
 */
export function simulatedAzureSnpEvidence(options: {
  readonly extraData: Uint8Array;
  readonly selections?: readonly PcrSelection[];
  /** Another HCLAkPub in the runtime data than the key that signs the quote. */
  readonly akJwk?: { n?: string; e?: string };
  /** The SNP report's VMPL (default 0, the paravisor's). */
  readonly vmpl?: number;
  /** The runtime-data JSON text, made from the captured text and the HCLAkPub JWK (default: the captured JSON with that key). */
  readonly runtimeJson?: (capturedJson: string, akJwk: { n?: string; e?: string }) => string;
  /** REPORT_DATA[32..64] of the SNP report (default zero, as the paravisor writes; rejection tests only). */
  readonly insecureReportDataUpper?: Uint8Array;
}): AzureEvidence {
  return {
    kind: "azure-snp",
    format: "v2",
    hclReport: hclReport(
      options.akJwk ?? ak.publicKey.export({ format: "jwk" }),
      options.vmpl ?? 0,
      options.runtimeJson,
      options.insecureReportDataUpper,
    ),
    tpmQuote: quoteWith(options.extraData, options.selections ?? [{ hashAlg: TPM_ALG_SHA256, pcrs: ALL_PCRS }]),
    vcek: hardware.vcek.certificate,
    tdQuote: null,
  };
}
