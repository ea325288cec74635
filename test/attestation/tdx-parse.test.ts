/**
 * TDX quote parsing against the real fixtures (every TDX row of EXPECTED.json: version, length,
 * trailing bytes, TD report fields, PCK extension values, QE report), the pinned Intel root, and a
 * fast-check property: arbitrary or mutated input never escapes as anything but a ParseError.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { AttestationError, ParseError } from "../../attestation/errors.ts";
import { INTEL_ROOTS, INTEL_SGX_ROOT_CA_PEM, INTEL_SGX_ROOT_CA_SHA256 } from "../../attestation/roots/intel.ts";
import { isDebugTd, parseTdxQuote, trailingIsZeroPadding } from "../../attestation/tdx/parse.ts";
import { parsePemCertificates, verifyChain } from "../../attestation/x509.ts";

const F = new URL("../fixtures/attestation/", import.meta.url);
const read = (p: string) => new Uint8Array(readFileSync(new URL(p, F)));
interface TdxRow {
  sha256: string;
  verifyAt: string;
  length: number;
  version: number;
  teeType: string;
  bodyType: number | null;
  trailingBytesAfterSignatureData: number;
  pckLeafValidity: [string, string];
  pckIssuer: string;
  fmspc: string;
  pceSvn: number;
  sgxTcbComponents: number[];
  sgxType: number;
  qeIsvSvn: number;
  qeMrSigner: string;
  qeMrEnclave: string;
  teeTcbSvn: string;
  mrSeam: string;
  mrSignerSeam: string;
  seamAttributes: string;
  tdAttributes: string;
  xfam: string;
  mrTd: string;
  mrConfigId: string;
  mrOwner: string;
  mrOwnerConfig: string;
  rtmr0: string;
  rtmr1: string;
  rtmr2: string;
  rtmr3: string;
  reportData: string;
  teeTcbSvn2: string | null;
  mrServiceTd: string | null;
}
const EXPECTED = JSON.parse(readFileSync(new URL("EXPECTED.json", F), "utf8")) as {
  tdx: Record<string, TdxRow>;
  intel_roots: Record<string, { sha256: string; subject: string; validity: [string, string] }>;
};
const ROWS = Object.entries(EXPECTED.tdx);
const pyTime = (s: string) => new Date(s.replace(" ", "T").replace("+00:00", "Z")).toISOString();

describe("TDX quote parsing (EXPECTED.json rows)", () => {
  it("covers all 13 TDX rows", () => {
    expect(ROWS.length).toBe(13);
  });

  it.each(ROWS)("%s parses to the expected values", (file, row) => {
    const bytes = read(file);
    expect(bytes.length).toBe(row.length);
    expect(createHash("sha256").update(bytes).digest("hex")).toBe(row.sha256);
    const q = parseTdxQuote(bytes);
    expect(q.header.version).toBe(row.version);
    expect(`0x${q.header.teeType.toString(16)}`).toBe(row.teeType);
    expect(q.bodyType).toBe(row.bodyType);
    expect(q.tdxVersion).toBe(row.bodyType === 3 ? "1.5" : "1.0");
    expect(q.trailingBytes).toBe(row.trailingBytesAfterSignatureData);
    expect(q.signedBytes.length).toBe(row.version === 5 ? 702 : 632);
    const b = q.body;
    expect(toHex(b.teeTcbSvn)).toBe(row.teeTcbSvn);
    expect(toHex(b.mrSeam)).toBe(row.mrSeam);
    expect(toHex(b.mrSignerSeam)).toBe(row.mrSignerSeam);
    expect(toHex(b.seamAttributes)).toBe(row.seamAttributes);
    expect(toHex(b.tdAttributes)).toBe(row.tdAttributes);
    expect(toHex(b.xfam)).toBe(row.xfam);
    expect(toHex(b.mrTd)).toBe(row.mrTd);
    expect(toHex(b.mrConfigId)).toBe(row.mrConfigId);
    expect(toHex(b.mrOwner)).toBe(row.mrOwner);
    expect(toHex(b.mrOwnerConfig)).toBe(row.mrOwnerConfig);
    expect(b.rtmrs.map(toHex)).toEqual([row.rtmr0, row.rtmr1, row.rtmr2, row.rtmr3]);
    expect(toHex(b.reportData)).toBe(row.reportData);
    expect(b.teeTcbSvn2 === null ? null : toHex(b.teeTcbSvn2)).toBe(row.teeTcbSvn2);
    expect(b.mrServiceTd === null ? null : toHex(b.mrServiceTd)).toBe(row.mrServiceTd);
    // TD DEBUG is TDATTRIBUTES bit 0 (little-endian): set only on the trustee quote and its copies.
    expect(isDebugTd(b)).toBe(file.includes("quote-v4-trustee.bin") || file.includes("tampered"));
    const pck = q.pckExtensions;
    expect(toHex(pck.fmspc)).toBe(row.fmspc);
    expect(pck.pceSvn).toBe(row.pceSvn);
    expect(pck.tcbComponents).toEqual(row.sgxTcbComponents);
    expect(pck.sgxType).toBe(row.sgxType);
    expect(toHex(pck.pceId)).toBe("0000");
    const leaf = q.pckChain[0];
    expect([leaf.notBefore.toISOString(), leaf.notAfter.toISOString()]).toEqual(row.pckLeafValidity.map(pyTime));
    expect(leaf.issuer.split(",").sort()).toEqual(row.pckIssuer.split(",").sort());
    expect(q.qeReport.isvSvn).toBe(row.qeIsvSvn);
    expect(toHex(q.qeReport.mrSigner)).toBe(row.qeMrSigner);
    expect(toHex(q.qeReport.mrEnclave)).toBe(row.qeMrEnclave);
    expect(q.qeReport.isvProdId).toBe(2);
  });

  it("reports the go-tdx-guest ASCII trailer and zero padding as trailing bytes, outside the signed bytes", () => {
    const spr = parseTdxQuote(read("tdx/quote-v4-spr-e4-gotdxguest.bin"));
    expect(new TextDecoder().decode(spr.trailing)).toBe("\nextra bytes(only for testing purpose)\n");
    expect(trailingIsZeroPadding(spr)).toBe(false);
    const gcp = parseTdxQuote(read("tdx/quote-v4-gcp-2025.bin"));
    expect(gcp.trailingBytes).toBe(3065);
    expect(trailingIsZeroPadding(gcp)).toBe(true);
    const base = parseTdxQuote(read("tdx/quote-v4-trustee.bin"));
    const extended = parseTdxQuote(new Uint8Array([...read("tdx/quote-v4-trustee.bin"), 1, 2, 3]));
    expect(extended.trailingBytes).toBe(3);
    expect(extended.signedBytes).toEqual(base.signedBytes);
  });

  it("refuses structural errors with typed codes", () => {
    const good = read("tdx/quote-v4-trustee.bin");
    const withByte = (offset: number, value: number) => {
      const copy = good.slice();
      copy[offset] = value;
      return copy;
    };
    const code = (bytes: Uint8Array) => {
      try {
        parseTdxQuote(bytes);
        return "parsed";
      } catch (error) {
        expect(error).toBeInstanceOf(ParseError);
        return (error as ParseError).code;
      }
    };
    expect(code(withByte(0, 3))).toBe("TDX_UNSUPPORTED_VERSION");
    expect(code(withByte(2, 3))).toBe("TDX_UNSUPPORTED_KEY_TYPE");
    expect(code(withByte(4, 0))).toBe("TDX_WRONG_TEE_TYPE");
    expect(code(withByte(12, 0))).toBe("TDX_UNSUPPORTED_QE_VENDOR");
    expect(code(good.subarray(0, 40))).toBe("TDX_QUOTE_TRUNCATED");
    expect(code(good.subarray(0, 700))).toBe("TDX_QUOTE_TRUNCATED");
    expect(code(good.subarray(0, good.length - 1))).toBe("TDX_QUOTE_TRUNCATED");
    // certification data type at signature data + 128 (632 + 4 + 128)
    expect(code(withByte(764, 5))).toBe("TDX_UNSUPPORTED_CERT_DATA");
    // signature_data_len one smaller: nested lengths no longer add up
    const shorter = good.slice();
    new DataView(shorter.buffer).setUint32(632, new DataView(good.buffer).getUint32(632, true) - 1, true);
    expect(code(shorter)).toBe("TDX_LENGTH_MISMATCH");
    // v5 with an SGX body type
    const v5 = read("tdx/quote-v5-trustee.bin").slice();
    v5[48] = 1;
    expect(code(v5)).toBe("TDX_UNSUPPORTED_BODY");
  });

  it("never fails with anything but a ParseError on arbitrary bytes (fast-check)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        try {
          parseTdxQuote(bytes);
          return false; // random bytes are never a valid quote
        } catch (error) {
          return error instanceof AttestationError && error.stage === "parse";
        }
      }),
      { seed: 20240601, numRuns: 300 },
    );
  });

  it("parses or rejects with a ParseError every single-byte mutation and truncation of a real quote (fast-check)", () => {
    const good = read("tdx/quote-v4-trustee.bin");
    fc.assert(
      fc.property(fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 255 }), fc.boolean(), (pos, xor, cut) => {
        const bytes = cut ? good.slice(0, pos) : good.slice();
        if (!cut) bytes[pos] = (bytes[pos] as number) ^ xor;
        try {
          const q = parseTdxQuote(bytes);
          // Mutations outside length fields may parse; the signed range then still ends at the body.
          return !cut && q.signedBytes.length === 632;
        } catch (error) {
          return error instanceof AttestationError && error.stage === "parse";
        }
      }),
      { seed: 7, numRuns: 300 },
    );
  });
});

describe("pinned Intel SGX Root CA", () => {
  const root = INTEL_ROOTS[0]!.root;

  it("is byte-for-byte the fixture file, with the documented SHA-256", () => {
    const fixture = readFileSync(new URL("intel-roots/intel-sgx-root-ca.pem", F), "utf8");
    expect(INTEL_SGX_ROOT_CA_PEM).toBe(fixture);
    expect(createHash("sha256").update(root.der).digest("hex")).toBe(INTEL_SGX_ROOT_CA_SHA256);
    expect(INTEL_SGX_ROOT_CA_SHA256).toBe(EXPECTED.intel_roots["intel-roots/intel-sgx-root-ca.pem"]!.sha256);
    expect(INTEL_ROOTS).toHaveLength(1);
    expect(INTEL_ROOTS[0]!.simulated).toBe(false);
  });

  it.each(Object.entries(EXPECTED.intel_roots))(
    "%s has the expected subject, validity and digest",
    async (file, row) => {
      const cert = parsePemCertificates(readFileSync(new URL(file, F), "utf8"))[0]!;
      expect(cert.subject.split(",").sort()).toEqual(row.subject.split(",").sort());
      expect([cert.notBefore.toISOString(), cert.notAfter.toISOString()]).toEqual(row.validity.map(pyTime));
      expect(createHash("sha256").update(cert.der).digest("hex")).toBe(row.sha256);
      const chain =
        cert.subject === root.subject
          ? [{ cert, role: "root" }]
          : [
              { cert, role: "intermediate" },
              { cert: root, role: "root" },
            ];
      // Each verifies under the pinned root at a time inside its validity window.
      // A PCK CA is verified as an issuer (keyCertSign); the TCB signing certificate as what it
      // is, a data signer (digitalSignature).
      const leaf = /PCK (Platform|Processor) CA/.test(cert.subject) ? "issuer" : "signs-data";
      await expect(verifyChain(chain, [root], new Date("2024-01-01T00:00:00Z"), { leaf })).resolves.toBeUndefined();
    },
  );
});
