/** SEV-SNP report parser: structure checks, one mutation per rule, and fast-check properties. */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ParseError } from "../../attestation/errors.ts";
import {
  decodeGuestPolicy,
  decodeTcbVersion,
  encodeTcbVersion,
  parseSnpReport,
  productFromCpuid,
  SNP_REPORT_SIZE,
  tcbHex,
} from "../../attestation/snp/parse.ts";
import { thrownCode } from "../helpers/attestation.ts";
import { thrownBy } from "../helpers/rejections.ts";

const F = new URL("../fixtures/attestation/snp/", import.meta.url);
const read = (p: string) => new Uint8Array(readFileSync(new URL(p, F)));
const V5 = read("milan-gcp-v5-report.bin");
const V3 = read("genoa-azure-v3-report.bin");
const V2 = read("milan-trustee-v2-report.bin");

function mutate(base: Uint8Array, edit: (b: Uint8Array, v: DataView) => void): Uint8Array {
  const out = new Uint8Array(base);
  edit(out, new DataView(out.buffer));
  return out;
}

function parseError(bytes: Uint8Array): ParseError {
  return thrownBy(() => parseSnpReport(bytes), ParseError);
}

describe("parseSnpReport structure checks", () => {
  it("accepts all genuine fixture reports (v2, v3, v5)", () => {
    for (const name of [
      "milan-gcp-v5-report.bin",
      "milan-gcp-v5-x25519-bound-report.bin",
      "milan-gosevguest-v2-report.bin",
      "milan-trustee-v2-report.bin",
      "milan-aws-vlek-v3-report.bin",
      "milan-virtee-v2-report.bin",
      "genoa-azure-v3-report.bin",
    ]) {
      expect(parseSnpReport(read(name)).raw.length, name).toBe(SNP_REPORT_SIZE);
    }
  });

  it("copies its input (later changes to the buffer do not alter the parsed report)", () => {
    const buf = Buffer.from(V5);
    const r = parseSnpReport(buf);
    buf.fill(0xee);
    expect(r.measurement[0]).toBe(0xb7);
    expect(r.raw[0]).toBe(5);
  });

  it("decodes version-specific fields", () => {
    const v5 = parseSnpReport(V5);
    expect(v5.launchMitVector).toBe(0xbn);
    expect(v5.currentMitVector).toBe(0xbn);
    expect(v5.product).toBe("Milan");
    const v3 = parseSnpReport(V3);
    expect(v3.launchMitVector).toBeNull();
    expect(v3.product).toBe("Genoa");
    const v2 = parseSnpReport(V2);
    expect([v2.cpuid, v2.product]).toEqual([null, null]);
    expect(v2.committedVersion).toEqual({ build: 4, minor: 52, major: 1 });
  });

  const cases: [string, Uint8Array, string][] = [
    ["too short", V5.slice(0, SNP_REPORT_SIZE - 1), "SNP_REPORT_SIZE"],
    ["too long", new Uint8Array([...V5, 0]), "SNP_REPORT_SIZE"],
    ["empty", new Uint8Array(), "SNP_REPORT_SIZE"],
    ["version 1", mutate(V5, (_, v) => v.setUint32(0, 1, true)), "SNP_REPORT_VERSION_UNSUPPORTED"],
    ["version 6", mutate(V5, (_, v) => v.setUint32(0, 6, true)), "SNP_REPORT_VERSION_UNSUPPORTED"],
    ["signature algo 0", mutate(V5, (_, v) => v.setUint32(0x34, 0, true)), "SNP_SIGNATURE_ALGO_UNSUPPORTED"],
    ["signature algo 2", mutate(V5, (_, v) => v.setUint32(0x34, 2, true)), "SNP_SIGNATURE_ALGO_UNSUPPORTED"],
    ["VMPL 4", mutate(V5, (_, v) => v.setUint32(0x30, 4, true)), "SNP_VMPL_INVALID"],
    ["policy bit 17 clear", mutate(V5, (_, v) => v.setBigUint64(0x08, 0x10000n, true)), "SNP_POLICY_INVALID"],
    [
      "policy bit 26 set",
      mutate(V5, (_, v) => v.setBigUint64(0x08, 0x30000n | (1n << 26n), true)),
      "SNP_POLICY_INVALID",
    ],
    [
      "policy bit 63 set",
      mutate(V5, (_, v) => v.setBigUint64(0x08, 0x30000n | (1n << 63n), true)),
      "SNP_POLICY_INVALID",
    ],
    ["platform info bit 6", mutate(V5, (_, v) => v.setBigUint64(0x40, 0x65n, true)), "SNP_RESERVED_NONZERO"],
    ["platform info bit 8", mutate(V5, (_, v) => v.setBigUint64(0x40, 0x125n, true)), "SNP_RESERVED_NONZERO"],
    ["signer info bit 5", mutate(V5, (_, v) => v.setUint32(0x48, 0x20, true)), "SNP_RESERVED_NONZERO"],
    ["signing key 2", mutate(V5, (_, v) => v.setUint32(0x48, 2 << 2, true)), "SNP_SIGNING_KEY_INVALID"],
    ["signing key 6", mutate(V5, (_, v) => v.setUint32(0x48, 6 << 2, true)), "SNP_SIGNING_KEY_INVALID"],
    ["0x4C reserved", mutate(V5, (b) => (b[0x4e] = 1)), "SNP_RESERVED_NONZERO"],
    ["0x18B reserved (v3+)", mutate(V5, (b) => (b[0x18b] = 1)), "SNP_RESERVED_NONZERO"],
    ["0x19F reserved", mutate(V5, (b) => (b[0x19f] = 1)), "SNP_RESERVED_NONZERO"],
    ["CPUID bytes in a v2 report", mutate(V2, (b) => (b[0x188] = 0x19)), "SNP_RESERVED_NONZERO"],
    ["0x1EB reserved", mutate(V5, (b) => (b[0x1eb] = 1)), "SNP_RESERVED_NONZERO"],
    ["0x1EF reserved", mutate(V5, (b) => (b[0x1ef] = 1)), "SNP_RESERVED_NONZERO"],
    ["0x208 reserved", mutate(V5, (b) => (b[0x208] = 1)), "SNP_RESERVED_NONZERO"],
    ["0x29F reserved", mutate(V5, (b) => (b[0x29f] = 1)), "SNP_RESERVED_NONZERO"],
    ["R high bytes", mutate(V5, (b) => (b[0x2a0 + 48] = 1)), "SNP_RESERVED_NONZERO"],
    ["S high bytes", mutate(V5, (b) => (b[0x2a0 + 72 + 71] = 1)), "SNP_RESERVED_NONZERO"],
    ["after signature", mutate(V5, (b) => (b[0x2a0 + 144] = 1)), "SNP_RESERVED_NONZERO"],
    ["last byte", mutate(V5, (b) => (b[SNP_REPORT_SIZE - 1] = 1)), "SNP_RESERVED_NONZERO"],
  ];
  it.each(cases)("rejects %s", (_name, bytes, code) => {
    expect(parseError(bytes).code).toBe(code);
  });

  it("accepts the allowed enum values: VMPL 3, SIGNING_KEY none, version 4, every defined policy bit", () => {
    expect(parseSnpReport(mutate(V5, (_, v) => v.setUint32(0x30, 3, true))).vmpl).toBe(3);
    expect(parseSnpReport(mutate(V5, (_, v) => v.setUint32(0x48, 7 << 2, true))).signingKey).toBe("NONE");
    // Version 4 has no mitigation vectors: the bytes where version 5 has them must be zero.
    const v4 = mutate(V5, (b, v) => {
      v.setUint32(0, 4, true);
      b.fill(0, 0x1f8, 0x208);
    });
    expect(parseSnpReport(v4).version).toBe(4);
    const all = decodeGuestPolicy((1n << 26n) - 1n);
    expect(Object.values(all).filter((x) => x === true).length).toBe(9);
    const flags = parseSnpReport(mutate(V5, (_, v) => v.setUint32(0x48, 3, true)));
    expect([flags.authorKeyEn, flags.maskChipKey]).toEqual([true, true]);
  });

  it("names the field in its messages", () => {
    expect(parseError(mutate(V5, (b) => (b[0x1eb] = 1))).message).toContain("0x1eb");
    // The GCP report's mitigation vectors, relabelled version 4: reserved there.
    const relabelled = parseError(mutate(V5, (_, v) => v.setUint32(0, 4, true)));
    expect([relabelled.code, relabelled.message]).toEqual([
      "SNP_RESERVED_NONZERO",
      "reserved after LAUNCH_TCB (version 4): reserved bytes [0x1f8, 0x2a0) must be zero",
    ]);
    expect(parseError(mutate(V5, (_, v) => v.setUint32(0x30, 9, true))).message).toMatch(/VMPL.*9/);
  });
});

describe("TCB_VERSION decoding per product", () => {
  it("uses the Milan/Genoa layout and the Turin layout", () => {
    const raw = 0xde1b000000000004n;
    expect(decodeTcbVersion(raw, "Milan")).toMatchObject({ fmc: null, bootloader: 4, tee: 0, snp: 27, microcode: 222 });
    expect(decodeTcbVersion(raw, "Genoa")).toMatchObject({ layout: "milan-genoa", snp: 27 });
    const turin = 0x0900000003020105n;
    expect(decodeTcbVersion(turin, "Turin")).toMatchObject({
      layout: "turin",
      fmc: 5,
      bootloader: 1,
      tee: 2,
      snp: 3,
      microcode: 9,
    });
    expect(tcbHex(turin)).toBe("0x0900000003020105");
  });

  it("refuses a raw value outside an unsigned 64-bit integer", () => {
    for (const raw of [-1n, 1n << 64n]) {
      expect(thrownCode(() => decodeTcbVersion(raw, "Milan"))).toBe("SNP_TCB_OUT_OF_RANGE");
    }
    expect(decodeTcbVersion((1n << 64n) - 1n, "Milan").microcode).toBe(255);
  });

  it("round-trips encode/decode for every product", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("Milan" as const, "Genoa" as const, "Turin" as const),
        fc.record({
          fmc: fc.integer({ min: 0, max: 255 }),
          bootloader: fc.integer({ min: 0, max: 255 }),
          tee: fc.integer({ min: 0, max: 255 }),
          snp: fc.integer({ min: 0, max: 255 }),
          microcode: fc.integer({ min: 0, max: 255 }),
        }),
        (product, parts) => {
          const d = decodeTcbVersion(encodeTcbVersion(parts, product), product);
          expect([d.bootloader, d.tee, d.snp, d.microcode]).toEqual([
            parts.bootloader,
            parts.tee,
            parts.snp,
            parts.microcode,
          ]);
          expect(d.fmc).toBe(product === "Turin" ? parts.fmc : null);
        },
      ),
      { seed: 7, numRuns: 300 },
    );
  });

  it("names products from CPUID with virtee/snpguest's model ranges", () => {
    const product = (family: number, model: number) => productFromCpuid({ family, model, stepping: 0 });
    expect([0x00, 0x01, 0x0f].map((m) => product(0x19, m))).toEqual(["Milan", "Milan", "Milan"]);
    expect([0x10, 0x11, 0x1f].map((m) => product(0x19, m))).toEqual(["Genoa", "Genoa", "Genoa"]);
    expect(product(0x19, 0x20)).toBeNull();
    // Turin (1Ah/02h) and Turin Dense (1Ah/11h) alike.
    expect([0x00, 0x02, 0x11].map((m) => product(0x1a, m))).toEqual(["Turin", "Turin", "Turin"]);
    expect(product(0x17, 0x31)).toBeNull();
  });

  it("names Bergamo and Siena (family 0x19, models 0xA0-0xAF) Genoa, KDS's product line for them", () => {
    expect(productFromCpuid({ family: 0x19, model: 0xa0, stepping: 2 })).toBe("Genoa");
    expect(productFromCpuid({ family: 0x19, model: 0xaf, stepping: 0 })).toBe("Genoa");
    expect(productFromCpuid({ family: 0x19, model: 0x9f, stepping: 0 })).toBeNull();
    expect(productFromCpuid({ family: 0x19, model: 0xb0, stepping: 0 })).toBeNull();
    // Not in go-sev-guest's or virtee's tables (virtee's Turin models stop at 0x11): left unknown.
    expect(productFromCpuid({ family: 0x1a, model: 0x12, stepping: 0 })).toBeNull();
  });
});

describe("parseSnpReport properties (fast-check)", () => {
  const onlyParseError = (bytes: Uint8Array) => {
    try {
      parseSnpReport(bytes);
    } catch (error) {
      if (!(error instanceof ParseError)) throw error;
      expect(error.code).toMatch(/^SNP_/);
    }
  };

  it("random inputs of any length throw only ParseError", () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 1300 }), onlyParseError), {
      seed: 11,
      numRuns: 300,
    });
  });

  it("random 1184-byte inputs throw only ParseError", () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: SNP_REPORT_SIZE, maxLength: SNP_REPORT_SIZE }), onlyParseError), {
      seed: 12,
      numRuns: 300,
    });
  });

  it("genuine reports with random byte edits throw only ParseError", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(V5, V3, V2),
        fc.array(fc.tuple(fc.integer({ min: 0, max: SNP_REPORT_SIZE - 1 }), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        (base, edits) => {
          const bytes = mutate(base, (b) => {
            for (const [i, v] of edits) b[i] = v;
          });
          onlyParseError(bytes);
        },
      ),
      { seed: 13, numRuns: 500 },
    );
  });

  it("non-Uint8Array junk throws ParseError", () => {
    for (const junk of [undefined, null, 42, "report", {}, [1, 2, 3]]) {
      expect(() => parseSnpReport(junk as unknown as Uint8Array)).toThrow(ParseError);
    }
    // What fails in the reader itself rather than a check (no length to read) is SNP_REPORT_MALFORMED.
    expect(thrownCode(() => parseSnpReport(null as unknown as Uint8Array))).toBe("SNP_REPORT_MALFORMED");
  });
});
