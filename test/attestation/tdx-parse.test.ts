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
import { encodeTlv } from "../../attestation/der.ts";
import { AttestationError, ParseError } from "../../attestation/errors.ts";
import { INTEL_ROOTS, INTEL_SGX_ROOT_CA_PEM, INTEL_SGX_ROOT_CA_SHA256 } from "../../attestation/roots/intel.ts";
import {
  insecureSimulatedIntelHierarchy,
  issueInsecureSimulatedPckLeaf,
  SIMULATED_PCK_DEFAULT_TCB,
  type SimulatedPckTcb,
  simulateTdxQuote,
} from "../../attestation/sim/index.ts";
import { intelName } from "../../attestation/sim/intel.ts";
import { der } from "../../attestation/sim/x509-writer.ts";
import {
  isDebugTd,
  parsePckSgxExtensions,
  parseSgxReportBody,
  parseTdxQuote,
  SGX_EXTENSION_OID,
  trailingIsZeroPadding,
} from "../../attestation/tdx/parse.ts";
import { type Certificate, parsePemCertificates, verifyChain } from "../../attestation/x509.ts";
import { thrownCode } from "../helpers/attestation.ts";

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

describe("the PCK certification data and the PCK leaf's SGX extension (simulated quotes)", () => {
  const h = insecureSimulatedIntelHierarchy();
  const quoteWith = (pck = h.pck) =>
    simulateTdxQuote(h, {
      reportData: new Uint8Array(64),
      mrtd: new Uint8Array(48),
      rtmrs: [new Uint8Array(48), new Uint8Array(48), new Uint8Array(48), new Uint8Array(48)],
      pck,
    });

  it("refuses PEM data that is not ASCII, has text outside its blocks, or holds other than 3 certificates", () => {
    const good = quoteWith();
    expect(parseTdxQuote(good).pckChain).toHaveLength(3);
    const pem = Buffer.from(good).indexOf("-----BEGIN CERTIFICATE-----");
    const edited = (edit: (q: Uint8Array) => void) => {
      const q = good.slice();
      edit(q);
      return q;
    };
    expect(thrownCode(() => parseTdxQuote(edited((q) => (q[pem + 40] = 0xc3))))).toBe("TDX_PCK_CHAIN_MALFORMED");
    // Named as what it is (the "ascii" TextDecoder would take it: it is windows-1252).
    expect(() => parseTdxQuote(edited((q) => (q[pem + 40] = 0xc3)))).toThrow(
      /PCK certification data: expected ASCII PEM text, found byte 0xc3 at offset 40$/,
    );
    expect(() => parseTdxQuote(edited((q) => (q[pem + 40] = 0x01)))).toThrow(/found byte 0x01 at offset 40$/);
    const between = Buffer.from(good).indexOf("-----END CERTIFICATE-----\n", pem) + 25; // the newline
    expect(thrownCode(() => parseTdxQuote(edited((q) => (q[between] = 0x78))))).toBe("TDX_PCK_CHAIN_MALFORMED");
    // The root's block replaced by NULs (the QE's terminator, stripped): two certificates, same sizes.
    const root = Buffer.from(good).lastIndexOf("-----BEGIN CERTIFICATE-----");
    expect(thrownCode(() => parseTdxQuote(edited((q) => q.fill(0, root))))).toBe("TDX_PCK_CHAIN_LENGTH");
  });

  it("refuses a PCK leaf TCB component above 255 or a PCESVN above 65535", () => {
    const components = [...SIMULATED_PCK_DEFAULT_TCB.tcbComponents];
    components[3] = 256;
    const leaf = (tcb: Partial<SimulatedPckTcb>) => issueInsecureSimulatedPckLeaf(h, { tcb, keyLabel: "PCK-range" });
    expect(thrownCode(() => parseTdxQuote(quoteWith(leaf({ tcbComponents: components }))))).toBe(
      "TDX_PCK_EXTENSION_MALFORMED",
    );
    expect(thrownCode(() => parseTdxQuote(quoteWith(leaf({ pceSvn: 0x10000 }))))).toBe("TDX_PCK_EXTENSION_MALFORMED");
  });

  describe("SGX extension structure", () => {
    const SGX = SGX_EXTENSION_OID;
    const leaf = parseTdxQuote(quoteWith()).pckChain[0];
    const entry = (suffix: string, ...values: Uint8Array[]) => der.seq(der.oid(`${SGX}.${suffix}`), ...values);
    const tcbEntries = (n = 18) =>
      Array.from({ length: n }, (_, i) =>
        entry(`2.${i + 1}`, i === 17 ? der.octets(new Uint8Array(16)) : der.int(i === 16 ? 11 : 2)),
      );
    const fields = {
      ppid: entry("1", der.octets(new Uint8Array(16))),
      tcb: entry("2", der.seq(...tcbEntries())),
      pceId: entry("3", der.octets(Uint8Array.of(0, 0))),
      fmspc: entry("4", der.octets(new Uint8Array(6))),
      sgxType: entry("5", der.enumerated(1)),
      platformInstanceId: entry("6", der.octets(new Uint8Array(16))) as Uint8Array | null,
      configuration: entry("7", der.seq(...configuration())) as Uint8Array | null,
    };
    function configuration(flags = [entry("7.1", der.boolean(true)), entry("7.2", der.boolean(false))]) {
      return [...flags, entry("7.3", der.boolean(true))];
    }
    /** The leaf (issued by the simulated PCK Platform CA), or as if issued by a PCK Processor CA. */
    const withExtension = (value: Uint8Array, issuerCn = "Intel SGX PCK Platform CA"): Certificate => ({
      ...leaf,
      issuerDer: intelName(issuerCn),
      extensions: new Map([...leaf.extensions, [SGX, { critical: false, value }]]),
    });
    const body = (changed: Partial<Record<keyof typeof fields, Uint8Array | null>>, extra: Uint8Array[]) =>
      der.seq(
        ...Object.entries({ ...fields, ...changed }).flatMap(([, v]) => (v === null || v === undefined ? [] : [v])),
        ...extra,
      );
    const extension = (changed: Partial<Record<keyof typeof fields, Uint8Array | null>>, ...extra: Uint8Array[]) =>
      withExtension(body(changed, extra));
    const processorLeaf = (changed: Partial<Record<keyof typeof fields, Uint8Array | null>>, ...extra: Uint8Array[]) =>
      withExtension(
        body({ platformInstanceId: null, configuration: null, ...changed }, extra),
        "Intel SGX PCK Processor CA",
      );

    it("reads the well-formed extension the cases below each change once", () => {
      expect(parsePckSgxExtensions(extension({}))).toMatchObject({
        pceSvn: 11,
        sgxType: 1,
        tcbComponents: Array(16).fill(2),
      });
      // A PCK Processor CA's leaf has no Platform Instance ID (.6) or Configuration (.7).
      expect(parsePckSgxExtensions(processorLeaf({ sgxType: entry("5", der.enumerated(0)) })).sgxType).toBe(0);
      // As Intel's QVL (PckCertificate.cpp), 5 or 7 entries whatever the issuer: the leaf is Intel-signed.
      expect(parsePckSgxExtensions(extension({ platformInstanceId: null, configuration: null })).sgxType).toBe(1);
      expect(parsePckSgxExtensions(extension({ sgxType: entry("5", der.enumerated(2)) })).sgxType).toBe(2);
    });

    it("names the entry that breaks Intel's layout", () => {
      const message = (cert: Certificate) => {
        try {
          parsePckSgxExtensions(cert);
        } catch (error) {
          return (error as Error).message;
        }
        return "accepted";
      };
      expect(message(extension({}, entry("99", der.int(1))))).toBe(`SGX extension: unknown entry ${SGX}.99`);
      expect(message(extension({ configuration: null }))).toBe(
        "SGX extension: expected entries .1,.2,.3,.4,.5,.6,.7, missing .7",
      );
      expect(message(processorLeaf({}, fields.platformInstanceId as Uint8Array))).toBe(
        "SGX extension: expected entries .1,.2,.3,.4,.5,.6,.7, missing .7",
      );
      expect(message(extension({ fmspc: entry("4", der.octets(new Uint8Array(6)), der.int(1)) }))).toBe(
        `SGX extension ${SGX}.4: expected 2 elements (id, value), found 3`,
      );
      expect(message(extension({ sgxType: entry("5", der.enumerated(3)) }))).toBe(
        "SGX Type: expected 0 (Standard), 1 (Scalable) or 2 (Scalable with Integrity), found 3",
      );
      expect(message(extension({ sgxType: entry("5", encodeTlv(0x0a, Uint8Array.of(0xff))) }))).toMatch(/found -1$/);
      // A DER error inside the extension: its detail (field, tags, offset) is in the message, not only in `cause`.
      const pceSvnAsOctets = entry(
        "2",
        der.seq(...tcbEntries(16), entry("2.17", der.octets(Uint8Array.of(11))), tcbEntries()[17] as Uint8Array),
      );
      expect(message(extension({ tcb: pceSvnAsOctets }))).toMatch(
        /^PCK leaf "CN=Intel SGX PCK Certificate,.*": malformed SGX extension: PCESVN: expected tag 0x2, found 0x4 at offset \d+$/,
      );
    });

    const cases: [string, () => Certificate, string][] = [
      [
        "no SGX extension (the PCK CA certificate)",
        () => parseTdxQuote(quoteWith()).pckChain[1],
        "TDX_PCK_EXTENSION_MISSING",
      ],
      ["an FMSPC missing", () => extension({ fmspc: null }), "TDX_PCK_EXTENSION_MALFORMED"],
      ["a PCE-ID twice", () => extension({}, fields.pceId), "TDX_PCK_EXTENSION_MALFORMED"],
      ["an entry without a value", () => extension({ ppid: entry("1") }), "TDX_PCK_EXTENSION_MALFORMED"],
      [
        "an FMSPC of 5 bytes",
        () => extension({ fmspc: entry("4", der.octets(new Uint8Array(5))) }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "a TCB without its CPUSVN (.2.18)",
        () => extension({ tcb: entry("2", der.seq(...tcbEntries(17))) }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "a TCB entry twice",
        () => extension({ tcb: entry("2", der.seq(...tcbEntries(), entry("2.1", der.int(2)))) }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "an SGX Type that is an INTEGER",
        () => extension({ sgxType: entry("5", der.int(1)) }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "an SGX Type of two bytes",
        () => extension({ sgxType: entry("5", encodeTlv(0x0a, Uint8Array.of(0, 1))) }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "an SGX Type above 2 (Scalable with Integrity)",
        () => extension({ sgxType: entry("5", der.enumerated(3)) }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "a negative SGX Type",
        () => extension({ sgxType: entry("5", encodeTlv(0x0a, Uint8Array.of(0x80))) }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "an entry of 3 elements",
        () => extension({ ppid: entry("1", der.octets(new Uint8Array(16)), der.octets(new Uint8Array(16))) }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      ["an unknown top-level entry", () => extension({}, entry("99", der.int(1))), "TDX_PCK_EXTENSION_MALFORMED"],
      [
        "an unknown TCB entry (.2.19)",
        () => extension({ tcb: entry("2", der.seq(...tcbEntries(), entry("2.19", der.int(1)))) }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "a TCB entry of 3 elements",
        () =>
          extension({
            tcb: entry("2", der.seq(...tcbEntries(17), entry("2.18", der.octets(new Uint8Array(16)), der.int(1)))),
          }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "a Platform CA leaf without its Configuration (.7)",
        () => extension({ configuration: null }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "a Processor CA leaf with a Platform Instance ID (.6)",
        () => processorLeaf({ platformInstanceId: fields.platformInstanceId }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "a Platform Instance ID of 3 bytes",
        () => extension({ platformInstanceId: entry("6", der.octets(new Uint8Array(3))) }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "a Configuration that is an INTEGER",
        () => extension({ configuration: entry("7", der.int(5)) }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "a Configuration without SMTEnabled (.7.3)",
        () => extension({ configuration: entry("7", der.seq(...configuration().slice(0, 2))) }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "a Configuration with an unknown entry (.7.4)",
        () => extension({ configuration: entry("7", der.seq(...configuration(), entry("7.4", der.boolean(true)))) }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "a Configuration flag that is an INTEGER",
        () =>
          extension({
            configuration: entry(
              "7",
              der.seq(...configuration([entry("7.1", der.int(1)), entry("7.2", der.boolean(false))])),
            ),
          }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "a Configuration flag that is not a DER BOOLEAN (01)",
        () =>
          extension({
            configuration: entry(
              "7",
              der.seq(
                ...configuration([entry("7.1", encodeTlv(0x01, Uint8Array.of(1))), entry("7.2", der.boolean(false))]),
              ),
            ),
          }),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
      [
        "a value that is not a SEQUENCE",
        () => withExtension(der.octets(new Uint8Array(4))),
        "TDX_PCK_EXTENSION_MALFORMED",
      ],
    ];
    it.each(cases)("refuses %s", (_name, cert, expected) => {
      expect(thrownCode(() => parsePckSgxExtensions(cert()))).toBe(expected);
    });
  });

  it("refuses a QE report of another size than an SGX report body", () => {
    expect(thrownCode(() => parseSgxReportBody(new Uint8Array(383)))).toBe("TDX_QE_REPORT_SIZE");
    expect(parseSgxReportBody(new Uint8Array(384)).isvProdId).toBe(0);
  });
});
