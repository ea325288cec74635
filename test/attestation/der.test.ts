/**
 * The strict DER reader (attestation/der.ts) under every certificate, CRL and extension the
 * verifiers read: each malformed encoding is refused with its own ParseError code, and the nearest
 * well-formed encoding is read.
 */
import { describe, expect, it } from "vitest";
import {
  decodeBitString,
  decodeOid,
  decodeSmallInteger,
  decodeTime,
  decodeUnsignedInteger,
  derChildren,
  expectTag,
  readDer,
  readDerExact,
  TAG,
} from "../../attestation/der.ts";
import { thrownCode } from "../helpers/attestation.ts";

const bytes = (...b: number[]) => Uint8Array.from(b);

describe("DER reader", () => {
  const cases: [string, () => unknown, string][] = [
    ["nothing to read", () => readDer(bytes()), "DER_TRUNCATED"],
    ["a tag without a length", () => readDer(bytes(0x04)), "DER_TRUNCATED"],
    ["length bytes past the end", () => readDer(bytes(0x04, 0x82, 0x01)), "DER_TRUNCATED"],
    ["a value past the end", () => readDer(bytes(0x04, 0x03, 0xaa, 0xbb)), "DER_TRUNCATED"],
    ["a high tag number (0x1f form)", () => readDer(bytes(0x1f, 0x20, 0x00)), "DER_UNSUPPORTED_TAG"],
    ["an indefinite length (BER)", () => readDer(bytes(0x30, 0x80, 0x00, 0x00)), "DER_INDEFINITE_LENGTH"],
    ["a length of five bytes", () => readDer(bytes(0x04, 0x85, 0, 0, 0, 0, 1, 0xaa)), "DER_BAD_LENGTH"],
    ["a long form for a short length", () => readDer(bytes(0x04, 0x81, 0x01, 0xaa)), "DER_BAD_LENGTH"],
    ["a long form with a leading zero byte", () => readDer(bytes(0x04, 0x82, 0x00, 0x80)), "DER_BAD_LENGTH"],
    ["children of a primitive value", () => derChildren(readDer(bytes(0x04, 0x01, 0xaa))), "DER_NOT_CONSTRUCTED"],
    ["bytes after the value", () => readDerExact(bytes(0x05, 0x00, 0x00), TAG.NULL, "x"), "DER_TRAILING_DATA"],
    ["a missing value", () => expectTag(undefined, TAG.INTEGER, "x"), "DER_MISSING"],
    ["another tag", () => readDerExact(bytes(0x05, 0x00), TAG.INTEGER, "x"), "DER_UNEXPECTED_TAG"],
    ["an empty OID", () => decodeOid(readDer(bytes(0x06, 0x00))), "DER_BAD_OID"],
    ["an OID ending inside an arc", () => decodeOid(readDer(bytes(0x06, 0x02, 0x2a, 0x86))), "DER_BAD_OID"],
    ["an OID arc past 2^53", () => decodeOid(readDer(bytes(0x06, 0x09, 0x2a, ...Array(8).fill(0xff)))), "DER_BAD_OID"],
    ["an empty INTEGER", () => decodeUnsignedInteger(readDer(bytes(0x02, 0x00)), "x"), "DER_BAD_INTEGER"],
    ["a negative small INTEGER", () => decodeSmallInteger(readDer(bytes(0x02, 0x01, 0x80)), "x"), "DER_BAD_INTEGER"],
    [
      "a 7-byte small INTEGER",
      () => decodeSmallInteger(readDer(bytes(0x02, 0x07, 1, 0, 0, 0, 0, 0, 0)), "x"),
      "DER_BAD_INTEGER",
    ],
    [
      "a BIT STRING with unused bits",
      () => decodeBitString(readDer(bytes(0x03, 0x02, 0x01, 0xfe)), "x"),
      "DER_BAD_BIT_STRING",
    ],
    ["an empty BIT STRING", () => decodeBitString(readDer(bytes(0x03, 0x00)), "x"), "DER_BAD_BIT_STRING"],
    // One value, one encoding (X.690 8.3.2, 8.19.2): a serial or an ECDSA r could otherwise be re-encoded.
    [
      "an INTEGER with a redundant leading 00",
      () => decodeUnsignedInteger(readDer(bytes(0x02, 0x03, 0x00, 0x00, 0x01)), "x"),
      "DER_BAD_INTEGER",
    ],
    [
      "a small INTEGER with a redundant leading 00",
      () => decodeSmallInteger(readDer(bytes(0x02, 0x02, 0x00, 0x05)), "x"),
      "DER_BAD_INTEGER",
    ],
    [
      "an INTEGER with a redundant leading ff",
      () => decodeUnsignedInteger(readDer(bytes(0x02, 0x02, 0xff, 0x80)), "x"),
      "DER_BAD_INTEGER",
    ],
    [
      "a negative INTEGER read as unsigned",
      () => decodeUnsignedInteger(readDer(bytes(0x02, 0x01, 0xff)), "x"),
      "DER_BAD_INTEGER",
    ],
    ["an OID arc padded with 0x80", () => decodeOid(readDer(bytes(0x06, 0x04, 0x55, 0x1d, 0x80, 0x13))), "DER_BAD_OID"],
    [
      "an OID first arc padded with 0x80",
      () => decodeOid(readDer(bytes(0x06, 0x04, 0x80, 0x55, 0x1d, 0x13))),
      "DER_BAD_OID",
    ],
  ];
  it.each(cases)("refuses %s", (_name, run, code) => {
    expect(thrownCode(run)).toBe(code);
  });

  it("reads the nearest well-formed encodings", () => {
    expect(readDer(bytes(0x04, 0x81, 0x80, ...Array(0x80).fill(7))).end).toBe(3 + 0x80);
    expect(derChildren(readDer(bytes(0x30, 0x03, 0x02, 0x01, 0x05))).length).toBe(1);
    expect(decodeOid(readDer(bytes(0x06, 0x03, 0x2a, 0x86, 0x48)))).toBe("1.2.840");
    expect(decodeSmallInteger(readDer(bytes(0x02, 0x02, 0x00, 0x80)), "x")).toBe(128);
    expect(decodeUnsignedInteger(readDer(bytes(0x02, 0x02, 0x00, 0x80)), "x")).toEqual(bytes(0x80));
    expect(decodeUnsignedInteger(readDer(bytes(0x02, 0x01, 0x00)), "x")).toEqual(bytes(0x00));
    expect(decodeUnsignedInteger(readDer(bytes(0x02, 0x02, 0x01, 0x00)), "x")).toEqual(bytes(0x01, 0x00));
    expect(decodeOid(readDer(bytes(0x06, 0x03, 0x55, 0x1d, 0x13)))).toBe("2.5.29.19");
    expect(decodeBitString(readDer(bytes(0x03, 0x02, 0x00, 0xfe)), "x")).toEqual(bytes(0xfe));
  });

  it("reads times in Zulu only, and only real dates", () => {
    const time = (tag: number, text: string) => decodeTime(readDer(bytes(tag, text.length, ...Buffer.from(text))), "t");
    expect(time(TAG.UTC_TIME, "491231235959Z").toISOString()).toBe("2049-12-31T23:59:59.000Z");
    expect(time(TAG.UTC_TIME, "500101000000Z").toISOString()).toBe("1950-01-01T00:00:00.000Z");
    expect(time(TAG.GENERALIZED_TIME, "20500101000000Z").toISOString()).toBe("2050-01-01T00:00:00.000Z");
    // Year 50 is year 50, not 1950 (Date.UTC's reading of two-digit years).
    expect(time(TAG.GENERALIZED_TIME, "00500101000000Z").toISOString()).toBe("0050-01-01T00:00:00.000Z");
    for (const [tag, text] of [
      [TAG.UTC_TIME, "491231235959+0100"],
      [TAG.UTC_TIME, "20500101000000Z"],
      [TAG.GENERALIZED_TIME, "491231235959Z"],
      [TAG.UTC_TIME, "490231000000Z"], // 31 February
      [TAG.UTC_TIME, "250101240000Z"], // hour 24: not 00:00 of the next day
      [TAG.UTC_TIME, "250101236000Z"],
      [TAG.UTC_TIME, "250101235960Z"],
      [TAG.GENERALIZED_TIME, "20251301000000Z"],
      [TAG.OCTET_STRING, "491231235959Z"],
    ] as const) {
      expect(thrownCode(() => time(tag, text))).toBe("DER_BAD_TIME");
    }
  });

  it("shows a bad time's text as untrusted text: no control or bidi characters, quoted, cut short", () => {
    const message = (tag: number, text: string) => {
      const content = Buffer.from(text);
      try {
        decodeTime(readDer(bytes(tag, content.length, ...content)), "notAfter");
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error("expected a refusal");
    };
    // A terminal escape and a line break in a certificate's UTCTime; a right-to-left override in a CRL's GeneralizedTime.
    expect(message(TAG.UTC_TIME, "4912\u001b[2J\n31Z")).toBe(
      'notAfter: expected UTCTime or GeneralizedTime in Zulu, found "4912\uFFFD[2J\uFFFD31Z"',
    );
    expect(message(TAG.GENERALIZED_TIME, "2025\u202e0101000000Z")).toBe(
      'notAfter: expected UTCTime or GeneralizedTime in Zulu, found "2025\uFFFD0101000000Z"',
    );
    const long = `${"9".repeat(70)}Z`;
    expect(message(TAG.GENERALIZED_TIME, long)).toBe(
      `notAfter: expected UTCTime or GeneralizedTime in Zulu, found "${"9".repeat(64)}"… (71 characters)`,
    );
  });
});
