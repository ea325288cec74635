/**
 * Structure of a TPM 2.0 quote (TPMS_ATTEST with TPM_ST_ATTEST_QUOTE), as signed by the Azure
 * vTPM's attestation key. TPM structures are big-endian. Parse only: the signature and the PCR
 * digest are checked by attestation/azure/verify.ts.
 */
import { ParseError } from "../errors.ts";

export const TPM_GENERATED_VALUE = 0xff544347;
export const TPM_ST_ATTEST_QUOTE = 0x8018;
export const TPM_ALG_SHA256 = 0x000b;

export interface TpmPcrSelection {
  readonly hashAlg: number;
  /** Selected PCR indices, ascending. */
  readonly pcrs: readonly number[];
}

export interface TpmQuoteAttest {
  readonly raw: Uint8Array;
  readonly qualifiedSigner: Uint8Array;
  /** The caller's qualifying data (nonce). */
  readonly extraData: Uint8Array;
  readonly clock: bigint;
  readonly resetCount: number;
  readonly restartCount: number;
  readonly safe: boolean;
  readonly firmwareVersion: bigint;
  readonly pcrSelections: readonly TpmPcrSelection[];
  readonly pcrDigest: Uint8Array;
}

class BigEndianReader {
  offset = 0;
  private readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(size: number, field: string): void {
    if (this.offset + size > this.bytes.length) {
      throw new ParseError(
        "TRUNCATED",
        `TPMS_ATTEST: field ${field} at offset ${this.offset} needs ${size} bytes, but only ${this.bytes.length - this.offset} remain`,
      );
    }
  }
  u8(field: string): number {
    this.need(1, field);
    return this.view.getUint8(this.offset++);
  }
  u16(field: string): number {
    this.need(2, field);
    const v = this.view.getUint16(this.offset, false);
    this.offset += 2;
    return v;
  }
  u32(field: string): number {
    this.need(4, field);
    const v = this.view.getUint32(this.offset, false);
    this.offset += 4;
    return v;
  }
  u64(field: string): bigint {
    this.need(8, field);
    const v = this.view.getBigUint64(this.offset, false);
    this.offset += 8;
    return v;
  }
  bytesOf(size: number, field: string): Uint8Array {
    this.need(size, field);
    const out = this.bytes.slice(this.offset, this.offset + size);
    this.offset += size;
    return out;
  }
  sized(field: string, max: number): Uint8Array {
    const size = this.u16(`${field} size`);
    if (size > max) throw malformed(`${field}: expected at most ${max} bytes, found ${size}`);
    return this.bytesOf(size, field);
  }
}

function malformed(message: string): ParseError {
  return new ParseError("AZURE_TPM_QUOTE_MALFORMED", `TPMS_ATTEST: ${message}`);
}

/** Parses a TPMS_ATTEST quote; the whole input must be consumed. */
export function parseTpmQuoteAttest(input: Uint8Array): TpmQuoteAttest {
  const raw = new Uint8Array(input);
  const r = new BigEndianReader(raw);
  const magic = r.u32("magic");
  if (magic !== TPM_GENERATED_VALUE) {
    throw malformed(`magic: expected 0xff544347 (TPM_GENERATED_VALUE), found 0x${magic.toString(16)}`);
  }
  const type = r.u16("type");
  if (type !== TPM_ST_ATTEST_QUOTE) {
    throw malformed(`type: expected 0x8018 (TPM_ST_ATTEST_QUOTE), found 0x${type.toString(16)}`);
  }
  const qualifiedSigner = r.sized("qualifiedSigner", 68);
  const extraData = r.sized("extraData", 64);
  const clock = r.u64("clockInfo.clock");
  const resetCount = r.u32("clockInfo.resetCount");
  const restartCount = r.u32("clockInfo.restartCount");
  const safe = r.u8("clockInfo.safe");
  if (safe > 1) throw malformed(`clockInfo.safe: expected 0 or 1, found ${safe}`);
  const firmwareVersion = r.u64("firmwareVersion");
  const count = r.u32("pcrSelect.count");
  if (count > 16) throw malformed(`pcrSelect.count: expected at most 16, found ${count}`);
  const pcrSelections: TpmPcrSelection[] = [];
  for (let i = 0; i < count; i++) {
    const hashAlg = r.u16(`pcrSelections[${i}].hash`);
    const sizeofSelect = r.u8(`pcrSelections[${i}].sizeofSelect`);
    if (sizeofSelect > 32)
      throw malformed(`pcrSelections[${i}].sizeofSelect: expected at most 32, found ${sizeofSelect}`);
    const bitmap = r.bytesOf(sizeofSelect, `pcrSelections[${i}].pcrSelect`);
    const pcrs: number[] = [];
    bitmap.forEach((byte, index) => {
      for (let bit = 0; bit < 8; bit++) if ((byte >> bit) & 1) pcrs.push(index * 8 + bit);
    });
    pcrSelections.push({ hashAlg, pcrs });
  }
  const pcrDigest = r.sized("pcrDigest", 64);
  if (r.offset !== raw.length) {
    throw malformed(`expected ${r.offset} bytes, found ${raw.length} (trailing data)`);
  }
  return {
    raw,
    qualifiedSigner,
    extraData,
    clock,
    resetCount,
    restartCount,
    safe: safe === 1,
    firmwareVersion,
    pcrSelections,
    pcrDigest,
  };
}
