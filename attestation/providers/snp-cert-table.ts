/**
 * The SEV-SNP extended-report certificate table (GHCB specification, "SNP Extended Guest Request"),
 * as delivered in configfs-tsm `auxblob` or by SNP_GET_EXT_REPORT: a list of 24-byte entries
 * (16-byte GUID, u32 LE offset, u32 LE length) ending with an all-zero entry, followed by the
 * certificates the entries point at (offsets count from the start of the table).
 *
 * GUIDs are read in RFC 4122 byte order, as AMD's sev-tool (`uuid_parse`), go-sev-guest and
 * virtee/sev write them. Structure only: the certificates are not parsed or verified here; the
 * SNP verifier checks them against the pinned AMD roots. Platform-neutral.
 */
import { ByteReader, isAllZero, toHex } from "../bytes.ts";
import { ParseError } from "../errors.ts";

export type SnpCertificateName = "VCEK" | "VLEK" | "ASK" | "ARK";

export const SNP_CERT_GUIDS: Readonly<Record<SnpCertificateName, string>> = {
  VCEK: "63da758d-e664-4564-adc5-f4b93be8accd",
  VLEK: "a8074bc2-a25a-483e-aae6-39c045a0b8a1",
  ASK: "4ab7b379-bbac-4fe4-a02f-05aef327c782",
  ARK: "c0b406a4-a803-4952-9743-3fb6014cd0ae",
};

export const SNP_CERT_TABLE_ENTRY_SIZE = 24;

/** Upper bound on entries, so a hostile table cannot make the parser loop for long. */
const MAX_ENTRIES = 64;

export interface SnpCertificateEntry {
  /** Lower-case canonical GUID text. */
  readonly guid: string;
  /** The known certificate this GUID names, or null for a GUID this code does not know. */
  readonly name: SnpCertificateName | null;
  /** The certificate bytes (DER as provided by the host; not parsed here). */
  readonly data: Uint8Array;
}

export interface SnpCertificateTable {
  readonly entries: readonly SnpCertificateEntry[];
}

export const EMPTY_SNP_CERTIFICATE_TABLE: SnpCertificateTable = Object.freeze({ entries: Object.freeze([]) });

/** GUID text (8-4-4-4-12 hex) → 16 bytes in RFC 4122 order. */
export function guidToBytes(guid: string): Uint8Array {
  const hex = guid.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex) || !/^[0-9a-fA-F-]{36}$/.test(guid)) {
    throw new ParseError("BAD_GUID", `GUID: expected 8-4-4-4-12 hex digits, found ${guid.length} characters`);
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** 16 bytes in RFC 4122 order → lower-case GUID text. */
export function guidFromBytes(bytes: Uint8Array): string {
  const h = toHex(bytes);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

const NAME_BY_GUID = new Map<string, SnpCertificateName>(
  (Object.entries(SNP_CERT_GUIDS) as [SnpCertificateName, string][]).map(([name, guid]) => [guid, name]),
);

/**
 * Parses a certificate table. An empty blob or a table whose first entry is the terminator yields
 * no entries (the host supplied no certificates; the verifier then needs them from elsewhere).
 * Throws ParseError: SNP_CERT_TABLE_UNTERMINATED, SNP_CERT_TABLE_ENTRY_OUT_OF_BOUNDS,
 * SNP_CERT_TABLE_EMPTY_ENTRY, SNP_CERT_TABLE_DUPLICATE_GUID, SNP_CERT_TABLE_TOO_MANY_ENTRIES.
 */
export function parseSnpCertificateTable(input: Uint8Array): SnpCertificateTable {
  const reader = new ByteReader(input, "SNP certificate table");
  const blob = reader.bytes;
  if (blob.length === 0) return EMPTY_SNP_CERTIFICATE_TABLE;

  const headers: { guid: string; offset: number; length: number; index: number }[] = [];
  let terminated = false;
  for (let index = 0; index <= MAX_ENTRIES; index++) {
    const at = index * SNP_CERT_TABLE_ENTRY_SIZE;
    if (at + SNP_CERT_TABLE_ENTRY_SIZE > blob.length) break;
    const entry = reader.slice(at, SNP_CERT_TABLE_ENTRY_SIZE, `entry ${index}`);
    if (isAllZero(entry)) {
      terminated = true;
      break;
    }
    if (index === MAX_ENTRIES) {
      throw new ParseError(
        "SNP_CERT_TABLE_TOO_MANY_ENTRIES",
        `SNP certificate table: expected at most ${MAX_ENTRIES} entries before the all-zero terminator, found more`,
      );
    }
    headers.push({
      guid: guidFromBytes(entry.subarray(0, 16)),
      offset: reader.u32(at + 16, `entry ${index} offset`),
      length: reader.u32(at + 20, `entry ${index} length`),
      index,
    });
  }
  if (!terminated) {
    throw new ParseError(
      "SNP_CERT_TABLE_UNTERMINATED",
      `SNP certificate table: expected an all-zero terminator entry within ${blob.length} bytes, found none after ${headers.length} entries`,
    );
  }

  const tableEnd = (headers.length + 1) * SNP_CERT_TABLE_ENTRY_SIZE;
  const seen = new Set<string>();
  const entries: SnpCertificateEntry[] = [];
  for (const h of headers) {
    if (h.length === 0) {
      throw new ParseError(
        "SNP_CERT_TABLE_EMPTY_ENTRY",
        `SNP certificate table: entry ${h.index} (GUID ${h.guid}) expected a non-zero length, found 0`,
      );
    }
    if (h.offset < tableEnd || h.offset + h.length > blob.length) {
      throw new ParseError(
        "SNP_CERT_TABLE_ENTRY_OUT_OF_BOUNDS",
        `SNP certificate table: entry ${h.index} (GUID ${h.guid}) expected data within [${tableEnd}, ${blob.length}), found offset ${h.offset} length ${h.length}`,
      );
    }
    if (seen.has(h.guid)) {
      throw new ParseError(
        "SNP_CERT_TABLE_DUPLICATE_GUID",
        `SNP certificate table: entry ${h.index} expected a GUID not seen before, found ${h.guid} again`,
      );
    }
    seen.add(h.guid);
    entries.push({
      guid: h.guid,
      name: NAME_BY_GUID.get(h.guid) ?? null,
      data: reader.slice(h.offset, h.length, `entry ${h.index} data`),
    });
  }
  return { entries };
}

/** The certificate bytes for a known name, or undefined when the table has none. */
export function snpCertificate(table: SnpCertificateTable, name: SnpCertificateName): Uint8Array | undefined {
  return table.entries.find((e) => e.name === name)?.data;
}
