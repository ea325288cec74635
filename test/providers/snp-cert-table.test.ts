import { describe, expect, it } from "vitest";
import { AttestationError } from "../../attestation/errors.ts";
import {
  guidFromBytes,
  guidToBytes,
  parseSnpCertificateTable,
  SNP_CERT_GUIDS,
  snpCertificate,
} from "../../attestation/providers/snp-cert-table.ts";
import { thrownBy } from "../helpers/rejections.ts";
import { encodeCertificateTable } from "./tsm-emulator.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

function parseError(input: Uint8Array): AttestationError {
  const error = thrownBy(() => parseSnpCertificateTable(input), AttestationError);
  expect(error.stage).toBe("parse");
  return error;
}

describe("SNP certificate table", () => {
  it("pins the wire bytes of the VCEK GUID (RFC 4122 order, not the mixed-endian form)", () => {
    expect(Array.from(guidToBytes(SNP_CERT_GUIDS.VCEK).subarray(0, 4))).toEqual([0x63, 0xda, 0x75, 0x8d]);
    expect(guidFromBytes(guidToBytes(SNP_CERT_GUIDS.ARK))).toBe("c0b406a4-a803-4952-9743-3fb6014cd0ae");
    for (const guid of [
      "63da758d-e664-4564-adc5-f4b93be8accd0",
      "63da758de6644564adc5f4b93be8accd",
      "x3da758d-e664-4564-adc5-f4b93be8accd",
    ]) {
      expect(() => guidToBytes(guid)).toThrow(expect.objectContaining({ code: "BAD_GUID" }));
    }
  });

  it("parses VLEK/ASK/ARK and keeps an unknown GUID as unnamed", () => {
    const other = "92f81bc3-5811-4d3d-97ff-d19f88dc67ea";
    const table = parseSnpCertificateTable(
      encodeCertificateTable([
        { guid: SNP_CERT_GUIDS.VLEK, data: bytes("vlek") },
        { guid: SNP_CERT_GUIDS.ASK, data: bytes("ask") },
        { guid: SNP_CERT_GUIDS.ARK, data: bytes("ark") },
        { guid: other, data: bytes("crl") },
      ]),
    );
    expect(table.entries.map((e) => e.name)).toEqual(["VLEK", "ASK", "ARK", null]);
    expect(table.entries[3]?.guid).toBe(other);
    expect(snpCertificate(table, "VLEK")).toEqual(bytes("vlek"));
    expect(snpCertificate(table, "VCEK")).toBeUndefined();
  });

  it("reads an empty blob or a lone terminator as no certificates", () => {
    expect(parseSnpCertificateTable(new Uint8Array(0)).entries).toEqual([]);
    expect(parseSnpCertificateTable(new Uint8Array(24)).entries).toEqual([]);
    expect(parseSnpCertificateTable(new Uint8Array(4096)).entries).toEqual([]);
  });

  it.each([
    [
      "no terminator",
      () => encodeCertificateTable([{ guid: SNP_CERT_GUIDS.VCEK, data: bytes("v") }]).subarray(0, 24),
      "SNP_CERT_TABLE_UNTERMINATED",
    ],
    [
      "entry data past the end",
      () => {
        const t = encodeCertificateTable([{ guid: SNP_CERT_GUIDS.VCEK, data: bytes("vcek") }]);
        new DataView(t.buffer).setUint32(20, 1000, true);
        return t;
      },
      "SNP_CERT_TABLE_ENTRY_OUT_OF_BOUNDS",
    ],
    [
      "entry pointing into the table header",
      () => {
        const t = encodeCertificateTable([{ guid: SNP_CERT_GUIDS.VCEK, data: bytes("vcek") }]);
        new DataView(t.buffer).setUint32(16, 0, true);
        return t;
      },
      "SNP_CERT_TABLE_ENTRY_OUT_OF_BOUNDS",
    ],
    [
      "zero-length entry",
      () => {
        const t = encodeCertificateTable([{ guid: SNP_CERT_GUIDS.VCEK, data: bytes("vcek") }]);
        new DataView(t.buffer).setUint32(20, 0, true);
        return t;
      },
      "SNP_CERT_TABLE_EMPTY_ENTRY",
    ],
    [
      "duplicate GUID",
      () =>
        encodeCertificateTable([
          { guid: SNP_CERT_GUIDS.VCEK, data: bytes("a") },
          { guid: SNP_CERT_GUIDS.VCEK, data: bytes("b") },
        ]),
      "SNP_CERT_TABLE_DUPLICATE_GUID",
    ],
    [
      "more than 64 entries",
      () =>
        encodeCertificateTable(
          Array.from({ length: 65 }, (_, i) => ({
            guid: `00000000-0000-0000-0000-${i.toString(16).padStart(12, "0")}`,
            data: bytes("x"),
          })),
        ),
      "SNP_CERT_TABLE_TOO_MANY_ENTRIES",
    ],
  ])("rejects %s", (_name, make, code) => {
    expect(parseError(make()).code).toBe(code);
  });
});
