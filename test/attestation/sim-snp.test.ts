/**
 * The simulated SEV-SNP path: simulator evidence goes through the PRODUCTION parser, verifier and
 * appraiser; it verifies only under the simulator's anchors, appraises only with trustSimulator;
 * and every single mutation of a signed field, a chain link or a policy-relevant value is rejected
 * with its own code.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { appraise } from "../../attestation/appraise.ts";
import { toHex } from "../../attestation/bytes.ts";
import { sha256 } from "../../attestation/crypto.ts";
import { AMD_ROOTS, type SnpTrustAnchor } from "../../attestation/roots/amd.ts";
import {
  AMD_OID,
  INSECURE_SIMULATOR_DEFAULT_SEED,
  type InsecureSimulatedAmdHierarchy,
  type InsecureSimulatedEndorsementKey,
  insecureSimulatedAmdHierarchy,
  insecureSimulatorAnchors,
  issueInsecureSimulatedEndorsementKey,
  type SimulatedSnpReportOptions,
  signSnpReportInPlace,
  simulateSnpReport,
  writeSimulatedAmdCaCertificate,
} from "../../attestation/sim/index.ts";
import { signRsaPssSha384 } from "../../attestation/sim/rsa.ts";
import { der, writeCertificate } from "../../attestation/sim/x509-writer.ts";
import { encodeTcbVersion, parseSnpReport, SNP_OFFSETS } from "../../attestation/snp/parse.ts";
import { verifySnpReport } from "../../attestation/snp/verify.ts";
import { extension, parseCertificate } from "../../attestation/x509.ts";
import { codeOf } from "../helpers/attestation.ts";
import { AT, MEASUREMENT, policy, REPORT_DATA, snpPolicyJson } from "./sim-helpers.ts";

/**
 * Golden SHA-256 of the default-seed simulated ARK (DER). Clients in other processes pin the
 * simulator by generating the same certificate from the same seed, so it must never change by
 * accident; change it only together with INSECURE_SIMULATOR_DEFAULT_SEED.
 */
const DEFAULT_SIMULATED_ARK_MILAN_SHA256 = "3a775d6a84b9203e4e4af0e8acf0f7740a47db3403587004702b805260833cdd";

let h: InsecureSimulatedAmdHierarchy;
let other: InsecureSimulatedAmdHierarchy;
let anchors: readonly SnpTrustAnchor[];

beforeAll(() => {
  h = insecureSimulatedAmdHierarchy();
  other = insecureSimulatedAmdHierarchy("cloister-test-other-seed");
  anchors = insecureSimulatorAnchors().snp;
});

const baseOptions = (): SimulatedSnpReportOptions => ({ reportData: REPORT_DATA, measurement: MEASUREMENT });

async function verifyBytes(
  report: Uint8Array,
  options: { cert?: Uint8Array; anchors?: readonly SnpTrustAnchor[]; at?: Date } = {},
) {
  return verifySnpReport({
    report: parseSnpReport(report),
    endorsementKey: parseCertificate(options.cert ?? h.vcek.certificate),
    anchors: options.anchors ?? anchors,
    at: options.at ?? AT,
  });
}

function flip(bytes: Uint8Array, offset: number): Uint8Array {
  const out = new Uint8Array(bytes);
  out[offset] = (out[offset] as number) ^ 0x01;
  return out;
}

describe("simulated AMD hierarchy", () => {
  it("is deterministic for a seed and pinned by a golden ARK digest", async () => {
    expect(toHex(await sha256(h.ark))).toBe(DEFAULT_SIMULATED_ARK_MILAN_SHA256);
    expect(h.seed).toBe(INSECURE_SIMULATOR_DEFAULT_SEED);
    expect(toHex(await sha256(other.ark))).not.toBe(DEFAULT_SIMULATED_ARK_MILAN_SHA256);
  });

  it("has AMD's certificate shapes with a SIMULATED marker", () => {
    const ark = parseCertificate(h.ark);
    const ask = parseCertificate(h.ask);
    const vcek = parseCertificate(h.vcek.certificate);
    expect(ark.subject).toBe(
      "OU=SIMULATED - NOT SECURE,C=US,L=Santa Clara,ST=CA,O=Cloister Insecure Simulator,CN=ARK-Milan",
    );
    expect(ark.issuer).toBe(ark.subject);
    expect(ask.subject).toContain("CN=SEV-Milan");
    expect(ask.isCA).toBe(true);
    for (const cert of [ark, ask, vcek]) {
      expect(cert.signatureAlgorithm).toEqual({ kind: "rsa-pss", hash: "SHA-384", saltLength: 48 });
      expect(cert.subject).toContain("O=Cloister Insecure Simulator");
    }
    expect(ark.publicKey.kind === "rsa" && ark.publicKey.modulusBits).toBe(2048);
    // VCEK: serial 0, no AKI, AMD extensions.
    expect(vcek.subject).toContain("CN=SEV-VCEK");
    expect(vcek.issuer).toBe(ask.subject);
    expect(toHex(vcek.serialNumber)).toBe("00");
    expect(extension(vcek, "2.5.29.35")).toBeUndefined();
    expect(vcek.publicKey.kind === "ec" && vcek.publicKey.curve).toBe("P-384");
    expect(new TextDecoder().decode(extension(vcek, AMD_OID.productName)?.subarray(2))).toBe("Milan-B0");
    expect(toHex(extension(vcek, AMD_OID.hwID) as Uint8Array)).toBe(toHex(h.vcek.chipId));
    expect(toHex(extension(vcek, AMD_OID.blSPL) as Uint8Array)).toBe("020104");
    expect(toHex(extension(vcek, AMD_OID.teeSPL) as Uint8Array)).toBe("020100");
    expect(toHex(extension(vcek, AMD_OID.snpSPL) as Uint8Array)).toBe("020118");
    expect(toHex(extension(vcek, AMD_OID.ucodeSPL) as Uint8Array)).toBe("020200db");
  });

  it("writes a 1184-byte report in AMD's layout with R and S little-endian", () => {
    const report = simulateSnpReport(h, { ...baseOptions(), vmpl: 2, hostData: new Uint8Array(32).fill(9) });
    expect(report.length).toBe(1184);
    const parsed = parseSnpReport(report);
    expect(parsed.version).toBe(5);
    expect(parsed.product).toBe("Milan");
    expect(parsed.vmpl).toBe(2);
    expect(parsed.signingKey).toBe("VCEK");
    expect(parsed.policy.raw).toBe(0x30000n);
    expect(parsed.policy.debugAllowed).toBe(false);
    expect(toHex(parsed.reportData)).toBe(toHex(REPORT_DATA));
    expect(toHex(parsed.measurement)).toBe(toHex(MEASUREMENT));
    expect(toHex(parsed.hostData)).toBe("09".repeat(32));
    expect(toHex(parsed.chipId)).toBe(toHex(h.defaultChipId));
    expect(parsed.reportedTcb.raw).toBe(encodeTcbVersion({ bootloader: 4, tee: 0, snp: 24, microcode: 219 }, "Milan"));
    // The signature's upper 24 bytes of each 72-byte field are zero (the parser checks it too).
    expect(report.subarray(0x2a0 + 48, 0x2a0 + 72).every((b) => b === 0)).toBe(true);
    expect(simulateSnpReport(h, { ...baseOptions(), version: 3 })[0]).toBe(3);
    // Mitigation vectors: zero unless given, and only in version 5 reports, which have the fields.
    expect([parsed.launchMitVector, parsed.currentMitVector]).toEqual([0n, 0n]);
    const mitigated = parseSnpReport(
      simulateSnpReport(h, { ...baseOptions(), launchMitVector: 0x3n, currentMitVector: 0xbn }),
    );
    expect([mitigated.launchMitVector, mitigated.currentMitVector]).toEqual([0x3n, 0xbn]);
    expect(() => simulateSnpReport(h, { ...baseOptions(), version: 3, currentMitVector: 1n })).toThrow(
      "a version 3 report has no mitigation vectors",
    );
    // Deterministic: the same inputs give the same bytes.
    expect(toHex(simulateSnpReport(h, baseOptions()))).toBe(toHex(simulateSnpReport(h, baseOptions())));
  });
});

describe("simulated SNP evidence through the production path", () => {
  it("parses, verifies under the simulator anchors and passes a matching policy", async () => {
    const verified = await verifyBytes(simulateSnpReport(h, baseOptions()));
    expect(verified.simulated).toBe(true);
    expect(verified.product).toBe("Milan");
    const result = appraise(verified, policy({ snp: snpPolicyJson() }), { now: AT, expectedReportData: REPORT_DATA });
    expect(result.violations).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.simulated).toBe(true);
    expect(result.tee).toBe("snp");
  });

  it("fails verification with the real AMD roots only", async () => {
    const report = simulateSnpReport(h, baseOptions());
    expect(await codeOf(verifyBytes(report, { anchors: AMD_ROOTS }))).toBe("ROOT_NOT_TRUSTED");
    // A simulator anchor marked as real would still only ever vouch for simulator evidence, and the
    // default anchors never include it.
    expect(AMD_ROOTS.every((a) => a.simulated === false)).toBe(true);
  });

  it("fails appraisal when the policy does not trust the simulator", async () => {
    const verified = await verifyBytes(simulateSnpReport(h, baseOptions()));
    const result = appraise(verified, policy({ snp: snpPolicyJson(), trustSimulator: false }), {
      now: AT,
      expectedReportData: REPORT_DATA,
    });
    expect(result.ok).toBe(false);
    expect(result.violations.map((v) => v.code)).toEqual(["SIMULATED_EVIDENCE_NOT_TRUSTED"]);
  });

  it("supports VLEK-signed evidence (ASVK chain)", async () => {
    const vlek = issueInsecureSimulatedEndorsementKey(h, { kind: "VLEK" });
    const report = simulateSnpReport(h, { ...baseOptions(), signer: vlek });
    const parsed = parseSnpReport(report);
    expect(parsed.signingKey).toBe("VLEK");
    expect(toHex(parsed.chipId)).toBe("00".repeat(64));
    const verified = await verifyBytes(report, { cert: vlek.certificate });
    expect(verified.signingKey).toBe("VLEK");
    const now = { now: AT, expectedReportData: REPORT_DATA };
    expect(appraise(verified, policy({ snp: snpPolicyJson({ signingKeys: ["vlek"] }) }), now).ok).toBe(true);
    expect(appraise(verified, policy({ snp: snpPolicyJson() }), now).violations.map((v) => v.code)).toEqual([
      "SNP_SIGNING_KEY_NOT_ALLOWED",
    ]);
  });
});

/** Changes bytes of a valid report and re-signs it with the same VCEK (valid signature, changed content). */
function resigned(edit: (report: Uint8Array) => void, signer?: InsecureSimulatedEndorsementKey): Uint8Array {
  const report = simulateSnpReport(h, baseOptions());
  edit(report);
  signSnpReportInPlace(report, signer ?? h.vcek);
  return report;
}

describe("single-mutation rejection (verification)", () => {
  const O = SNP_OFFSETS;
  const signedFields: [string, number][] = [
    ["VERSION", O.VERSION],
    ["GUEST_SVN", O.GUEST_SVN],
    ["POLICY", O.POLICY],
    ["FAMILY_ID", O.FAMILY_ID],
    ["IMAGE_ID", O.IMAGE_ID],
    ["VMPL", O.VMPL],
    ["CURRENT_TCB", O.CURRENT_TCB],
    ["REPORT_DATA", O.REPORT_DATA],
    ["MEASUREMENT", O.MEASUREMENT + 47],
    ["HOST_DATA", O.HOST_DATA],
    ["ID_KEY_DIGEST", O.ID_KEY_DIGEST],
    ["AUTHOR_KEY_DIGEST", O.AUTHOR_KEY_DIGEST],
    ["REPORT_ID", O.REPORT_ID],
    ["REPORT_ID_MA", O.REPORT_ID_MA],
    ["REPORTED_TCB", O.REPORTED_TCB],
    ["CHIP_ID", O.CHIP_ID],
    ["COMMITTED_TCB", O.COMMITTED_TCB],
    ["LAUNCH_TCB", O.LAUNCH_TCB],
  ];
  it.each(signedFields)("a flipped byte in %s breaks the report signature", async (_name, offset) => {
    expect(await codeOf(verifyBytes(flip(simulateSnpReport(h, baseOptions()), offset)))).toBe(
      "SNP_REPORT_SIGNATURE_INVALID",
    );
  });

  const cases: { name: string; run: () => Promise<unknown>; code: string }[] = [
    {
      name: "signature R flipped",
      run: () => verifyBytes(flip(simulateSnpReport(h, baseOptions()), O.SIGNATURE)),
      code: "SNP_REPORT_SIGNATURE_INVALID",
    },
    {
      name: "signature S flipped",
      run: () => verifyBytes(flip(simulateSnpReport(h, baseOptions()), O.SIGNATURE + 72)),
      code: "SNP_REPORT_SIGNATURE_INVALID",
    },
    {
      name: "report signed by another chip's VCEK, presented with this VCEK",
      run: () => {
        const foreign = issueInsecureSimulatedEndorsementKey(h, { chipId: new Uint8Array(64).fill(7) });
        return verifyBytes(simulateSnpReport(h, { ...baseOptions(), signer: foreign, chipId: h.defaultChipId }));
      },
      code: "SNP_REPORT_SIGNATURE_INVALID",
    },
    {
      name: "ASK signed by another ARK key",
      run: () => {
        const forgedAsk = writeSimulatedAmdCaCertificate({
          product: "Milan",
          role: "ASK",
          subjectKey: h.askKey,
          signer: other.arkKey,
        });
        const anchor = { ...(anchors[0] as SnpTrustAnchor), ask: parseCertificate(forgedAsk) };
        return verifyBytes(simulateSnpReport(h, baseOptions()), { anchors: [anchor] });
      },
      code: "CERT_SIGNATURE_INVALID",
    },
    {
      name: "VCEK signed by another ASK",
      run: () => {
        const vcek = issueInsecureSimulatedEndorsementKey(h, { signer: other.askKey });
        return verifyBytes(simulateSnpReport(h, { ...baseOptions(), signer: vcek }), { cert: vcek.certificate });
      },
      code: "CERT_SIGNATURE_INVALID",
    },
    {
      name: "expired VCEK (verification time after notAfter)",
      run: () => {
        const vcek = issueInsecureSimulatedEndorsementKey(h, { notAfter: new Date("2025-06-30T00:00:00Z") });
        return verifyBytes(simulateSnpReport(h, { ...baseOptions(), signer: vcek }), { cert: vcek.certificate });
      },
      code: "CERT_EXPIRED",
    },
    {
      name: "VCEK not yet valid",
      run: () => {
        const vcek = issueInsecureSimulatedEndorsementKey(h, { notBefore: new Date("2027-01-01T00:00:00Z") });
        return verifyBytes(simulateSnpReport(h, { ...baseOptions(), signer: vcek }), { cert: vcek.certificate });
      },
      code: "CERT_NOT_YET_VALID",
    },
    {
      // Only a misconfigured anchor can do this (AMD's ASK names differ by product): the product
      // line decides which anchors are tried, not the issuer name alone.
      name: "an anchor labelled for another product, though its ASK issued the VCEK",
      run: () =>
        verifyBytes(simulateSnpReport(h, baseOptions()), {
          anchors: [{ ...(anchors[0] as SnpTrustAnchor), product: "Genoa" }],
        }),
      code: "ROOT_NOT_TRUSTED",
    },
    {
      name: "VCEK (signed by the ASK) whose blSPL is out of the 0..255 range of a TCB byte",
      run: () => {
        const vcek = parseCertificate(h.vcek.certificate);
        const extensions = [...vcek.extensions].map(([oid, e]) => ({
          oid,
          critical: e.critical,
          // 260: its low byte is the report's bootloader SVN, 4 (a reader that kept one byte would match).
          value: oid === AMD_OID.blSPL ? der.int(256 + 4) : e.value,
        }));
        const reissued = writeCertificate(
          {
            serial: vcek.serialNumber,
            signatureAlgorithm: "rsa-pss-sha384",
            issuer: vcek.issuerDer,
            subject: vcek.subjectDer,
            notBefore: vcek.notBefore,
            notAfter: vcek.notAfter,
            spki: vcek.publicKey.spki,
            extensions,
          },
          (tbs) => signRsaPssSha384(h.askKey, tbs),
        );
        return verifyBytes(simulateSnpReport(h, baseOptions()), { cert: reissued });
      },
      code: "SNP_CERT_EXTENSION_INVALID",
    },
    {
      name: "wrong product's root (Milan evidence, Genoa simulator anchor only)",
      run: () =>
        verifyBytes(simulateSnpReport(h, baseOptions()), {
          anchors: insecureSimulatorAnchors(undefined, ["Genoa"]).snp,
        }),
      code: "ROOT_NOT_TRUSTED",
    },
    {
      name: "another seed's simulator root (same names, other keys)",
      run: () =>
        verifyBytes(simulateSnpReport(h, baseOptions()), {
          anchors: insecureSimulatorAnchors("cloister-test-other-seed").snp,
        }),
      code: "CERT_SIGNATURE_INVALID",
    },
    {
      name: "hwID mismatch (VCEK for another chip signs a report naming this chip)",
      run: () => {
        const vcek = issueInsecureSimulatedEndorsementKey(h, { chipId: new Uint8Array(64).fill(0x42) });
        return verifyBytes(simulateSnpReport(h, { ...baseOptions(), signer: vcek, chipId: h.defaultChipId }), {
          cert: vcek.certificate,
        });
      },
      code: "SNP_HWID_MISMATCH",
    },
    {
      name: "TCB mismatch (VCEK SPLs != REPORTED_TCB)",
      run: () => {
        const tcb = encodeTcbVersion({ bootloader: 3, tee: 0, snp: 24, microcode: 219 }, "Milan");
        return verifyBytes(simulateSnpReport(h, { ...baseOptions(), tcb }));
      },
      code: "SNP_TCB_MISMATCH",
    },
    {
      name: "SIGNING_KEY says VLEK, signed and presented with a VCEK",
      run: () => verifyBytes(resigned((r) => (r[O.SIGNER_INFO] = 1 << 2))),
      code: "SNP_SIGNING_KEY_MISMATCH",
    },
    {
      name: "CPUID names Genoa, VCEK is Milan",
      run: () => verifyBytes(resigned((r) => (r[O.CPUID_MOD_ID] = 0x11))),
      code: "SNP_PRODUCT_MISMATCH",
    },
    {
      name: "report truncated by one byte",
      run: () => verifyBytes(simulateSnpReport(h, baseOptions()).subarray(0, 1183)),
      code: "SNP_REPORT_SIZE",
    },
  ];
  it.each(cases)("$name → $code", async ({ run, code }) => {
    expect(await codeOf(run())).toBe(code);
  });
});

describe("single-mutation rejection (appraisal of validly signed evidence)", () => {
  const now = { now: AT, expectedReportData: REPORT_DATA };
  const otherMeasurement = new Uint8Array(48).fill(0xee);
  const cases: {
    name: string;
    report: () => SimulatedSnpReportOptions;
    policy?: Record<string, unknown>;
    trustSimulator?: boolean;
    expectedReportData?: Uint8Array;
    code: string;
    field: string;
  }[] = [
    {
      name: "debug policy bit with debugAllowed false",
      report: () => ({ ...baseOptions(), policy: 0x30000n | (1n << 19n) }),
      code: "SNP_DEBUG_NOT_ALLOWED",
      field: "POLICY.DEBUG",
    },
    {
      name: "migration agent allowed by the guest policy",
      report: () => ({ ...baseOptions(), policy: 0x30000n | (1n << 18n) }),
      code: "SNP_MIGRATION_AGENT_NOT_ALLOWED",
      field: "POLICY.MIGRATE_MA",
    },
    {
      name: "SMT allowed with smtAllowed false",
      report: () => ({ ...baseOptions(), platformInfo: 0x24n }),
      policy: { smtAllowed: false },
      code: "SNP_SMT_NOT_ALLOWED",
      field: "POLICY.SMT",
    },
    {
      // Firmware launches no such guest (POLICY.SMT clear refuses SMT), but appraisal does not rely on it.
      name: "SMT enabled on the platform (PLATFORM_INFO.SMT_EN) with smtAllowed false, the guest policy's SMT bit clear",
      report: () => ({ ...baseOptions(), policy: 0x20000n, platformInfo: 0x25n }),
      policy: { smtAllowed: false },
      code: "SNP_SMT_NOT_ALLOWED",
      field: "PLATFORM_INFO.SMT_EN",
    },
    {
      name: "VMPL 1 with allowedVmpls [0]",
      report: () => ({ ...baseOptions(), vmpl: 1 }),
      code: "SNP_VMPL_NOT_ALLOWED",
      field: "VMPL",
    },
    {
      name: "wrong measurement",
      report: () => ({ ...baseOptions(), measurement: otherMeasurement }),
      code: "SNP_MEASUREMENT_NOT_ALLOWED",
      field: "MEASUREMENT",
    },
    {
      name: "wrong REPORT_DATA",
      report: () => ({ ...baseOptions(), reportData: new Uint8Array(64) }),
      code: "REPORT_DATA_MISMATCH",
      field: "REPORT_DATA",
    },
    {
      name: "simulator roots without opt-in",
      report: baseOptions,
      trustSimulator: false,
      code: "SIMULATED_EVIDENCE_NOT_TRUSTED",
      field: "simulated",
    },
    {
      name: "TCB below the policy minimum",
      report: baseOptions,
      policy: { minimumTcb: { bootloader: 4, tee: 0, snp: 25, microcode: 219, fmc: 0 } },
      code: "SNP_TCB_TOO_LOW",
      field: "REPORTED_TCB.snp",
    },
    {
      name: "guest launched under firmware below the minimum (LAUNCH_TCB), though it reports a current TCB",
      report: () => ({ ...baseOptions(), launchTcb: 0xda18000000000004n }), // microcode 218 < 219
      code: "SNP_LAUNCH_TCB_TOO_LOW",
      field: "LAUNCH_TCB.microcode",
    },
    {
      name: "provisional firmware whose COMMITTED_TCB is below the minimum (a rollback target), though it reports a current TCB",
      report: () => ({ ...baseOptions(), committedTcb: 0xda18000000000004n }), // microcode 218 < 219
      code: "SNP_COMMITTED_TCB_TOO_LOW",
      field: "COMMITTED_TCB.microcode",
    },
    {
      name: "HOST_DATA not the pinned value",
      report: () => ({ ...baseOptions(), hostData: new Uint8Array(32).fill(1) }),
      code: "SNP_HOST_DATA_MISMATCH",
      field: "HOST_DATA",
    },
    {
      name: "GUEST_SVN below minimum",
      report: () => ({ ...baseOptions(), guestSvn: 1 }),
      policy: { minimumGuestSvn: 2 },
      code: "SNP_GUEST_SVN_TOO_LOW",
      field: "GUEST_SVN",
    },
    {
      name: "ID_KEY_DIGEST not in the allow-list",
      report: () => ({ ...baseOptions(), idKeyDigest: new Uint8Array(48).fill(3) }),
      policy: { idKeyDigests: ["04".repeat(48)] },
      code: "SNP_ID_KEY_DIGEST_NOT_ALLOWED",
      field: "ID_KEY_DIGEST",
    },
    {
      name: "AUTHOR_KEY_DIGEST pinned but AUTHOR_KEY_EN clear",
      report: baseOptions,
      policy: { authorKeyDigests: ["05".repeat(48)] },
      code: "SNP_AUTHOR_KEY_DIGEST_NOT_ALLOWED",
      field: "AUTHOR_KEY_EN",
    },
    {
      name: "AUTHOR_KEY_DIGEST not in the allow-list",
      report: () => ({ ...baseOptions(), authorKeyDigest: new Uint8Array(48).fill(6) }),
      policy: { authorKeyDigests: ["05".repeat(48)] },
      code: "SNP_AUTHOR_KEY_DIGEST_NOT_ALLOWED",
      field: "AUTHOR_KEY_DIGEST",
    },
    {
      name: "CXL_ALLOW set, cxlAllowed false",
      report: () => ({ ...baseOptions(), policy: 0x30000n | (1n << 21n) }),
      policy: { cxlAllowed: false },
      code: "SNP_CXL_NOT_ALLOWED",
      field: "POLICY.CXL_ALLOW",
    },
    {
      name: "guest POLICY ABI below minimumAbi",
      report: () => ({ ...baseOptions(), policy: 0x30000n | (1n << 8n) | 50n }), // ABI 1.50
      policy: { minimumAbi: { major: 1, minor: 51 } },
      code: "SNP_ABI_TOO_LOW",
      field: "POLICY.ABI_MAJOR.ABI_MINOR",
    },
    {
      name: "a required guest POLICY bit clear",
      report: () => ({ ...baseOptions(), policy: 0x30000n | (1n << 22n) }), // MEM_AES_256_XTS, not SINGLE_SOCKET
      policy: { requireGuestPolicy: ["MEM_AES_256_XTS", "SINGLE_SOCKET"] },
      code: "SNP_GUEST_POLICY_BIT_MISSING",
      field: "POLICY.SINGLE_SOCKET",
    },
    {
      name: "a required PLATFORM_INFO bit clear",
      report: baseOptions, // PLATFORM_INFO 0x25: SMT_EN, ECC_EN, ALIAS_CHECK_COMPLETE
      policy: { requirePlatformInfo: ["ECC_EN", "ALIAS_CHECK_COMPLETE", "TSME_EN"] },
      code: "SNP_PLATFORM_INFO_BIT_MISSING",
      field: "PLATFORM_INFO.TSME_EN",
    },
    {
      name: "a required mitigation not verified when the guest was launched (LAUNCH_MIT_VECTOR), though verified now",
      report: () => ({ ...baseOptions(), launchMitVector: 0x3n, currentMitVector: 0xbn }),
      policy: { requireMitigations: [0, 3] },
      code: "SNP_MITIGATION_MISSING",
      field: "LAUNCH_MIT_VECTOR",
    },
    {
      name: "a required mitigation not verified on the running firmware (CURRENT_MIT_VECTOR)",
      report: () => ({ ...baseOptions(), launchMitVector: 0xbn, currentMitVector: 0x9n }),
      policy: { requireMitigations: [0, 1] },
      code: "SNP_MITIGATION_MISSING",
      field: "CURRENT_MIT_VECTOR",
    },
    {
      name: "TIO_EN set with tioAllowed false",
      report: () => ({ ...baseOptions(), platformInfo: 0x25n | (1n << 7n) }),
      policy: { tioAllowed: false },
      code: "SNP_TIO_NOT_ALLOWED",
      field: "PLATFORM_INFO.TIO_EN",
    },
    {
      name: "product not allowed",
      report: baseOptions,
      policy: { allowedProducts: ["Genoa", "Turin"] },
      code: "SNP_PRODUCT_NOT_ALLOWED",
      field: "product",
    },
  ];
  it.each(cases)("$name → $code", async (c) => {
    const verified = await verifyBytes(simulateSnpReport(h, c.report()));
    const p = policy({ snp: snpPolicyJson(c.policy ?? {}), trustSimulator: c.trustSimulator ?? true });
    const result = appraise(verified, p, now);
    expect(result.ok).toBe(false);
    expect(result.violations.map((v) => [v.code, v.field])).toEqual([[c.code, c.field]]);
  });

  it.each(["bootloader", "tee", "snp", "microcode"] as const)(
    "judges minimumTcb.%s on its own (one above the report's REPORTED_TCB)",
    async (name) => {
      const verified = await verifyBytes(simulateSnpReport(h, baseOptions())); // REPORTED_TCB 4, 0, 24, 219
      const minimumTcb = { bootloader: 4, tee: 0, snp: 24, microcode: 219, fmc: 0 };
      const found = minimumTcb[name];
      const result = appraise(
        verified,
        policy({ snp: snpPolicyJson({ minimumTcb: { ...minimumTcb, [name]: found + 1 } }) }),
        now,
      );
      expect(result.violations).toEqual([
        { field: `REPORTED_TCB.${name}`, code: "SNP_TCB_TOO_LOW", expected: `>= ${found + 1}`, found: String(found) },
      ]);
    },
  );

  it.each([
    ["POLICY.DEBUG set, debugAllowed true", { policy: 0x30000n | (1n << 19n) }, { debugAllowed: true }],
    [
      "POLICY.MIGRATE_MA set, migrationAgentAllowed true",
      { policy: 0x30000n | (1n << 18n) },
      { migrationAgentAllowed: true },
    ],
    ["VMPL 2, allowedVmpls [0, 2]", { vmpl: 2 }, { allowedVmpls: [0, 2] }],
    ["GUEST_SVN equal to minimumGuestSvn", { guestSvn: 7 }, { minimumGuestSvn: 7 }],
    // Compared as (major, minor): a newer major passes whatever its minor.
    ["ABI 2.0, minimumAbi 1.51", { policy: 0x30000n | (2n << 8n) }, { minimumAbi: { major: 1, minor: 51 } }],
  ] as const)("accepts what the policy allows: %s", async (_name, report, allowed) => {
    const verified = await verifyBytes(simulateSnpReport(h, { ...baseOptions(), ...report }));
    expect(appraise(verified, policy({ snp: snpPolicyJson(allowed) }), now).violations).toEqual([]);
  });

  it("checks minimumFirmware against CURRENT and COMMITTED firmware versions, and accepts what the optional checks allow", async () => {
    const verified = await verifyBytes(simulateSnpReport(h, baseOptions())); // firmware 1.55.23 (current and committed)
    const violations = (extra: Record<string, unknown>) =>
      appraise(verified, policy({ snp: snpPolicyJson(extra) }), now).violations;
    expect(violations({ minimumFirmware: { major: 1, minor: 55, build: 24 } })).toEqual([
      { field: "CURRENT_MAJOR.MINOR.BUILD", code: "SNP_FIRMWARE_TOO_OLD", expected: ">= 1.55.24", found: "1.55.23" },
      { field: "COMMITTED_MAJOR.MINOR.BUILD", code: "SNP_FIRMWARE_TOO_OLD", expected: ">= 1.55.24", found: "1.55.23" },
    ]);
    // Compared as (major, minor, build): a newer minor passes whatever its build.
    expect(violations({ minimumFirmware: { major: 1, minor: 54, build: 99 } })).toEqual([]);
    expect(violations({ minimumFirmware: { major: 2, minor: 0, build: 0 } })).toHaveLength(2);
    // Provisional firmware: committed below the minimum, current above it.
    const provisional = Uint8Array.from(simulateSnpReport(h, baseOptions()));
    provisional[SNP_OFFSETS.COMMITTED_BUILD] = 20;
    signSnpReportInPlace(provisional, h.vcek);
    const p = policy({ snp: snpPolicyJson({ minimumFirmware: { major: 1, minor: 55, build: 21 } }) });
    expect(appraise(await verifyBytes(provisional), p, now).violations).toEqual([
      { field: "COMMITTED_MAJOR.MINOR.BUILD", code: "SNP_FIRMWARE_TOO_OLD", expected: ">= 1.55.21", found: "1.55.20" },
    ]);

    const all = await verifyBytes(
      simulateSnpReport(h, {
        ...baseOptions(),
        policy: 0x30000n | (0x3fn << 20n) | (1n << 8n) | 55n, // ABI 1.55, bits 20..25 (CXL_ALLOW among them)
        platformInfo: 0xbfn, // every PLATFORM_INFO bit, TIO_EN included
      }),
    );
    const permissive = snpPolicyJson({
      cxlAllowed: true,
      minimumAbi: { major: 1, minor: 55 },
      minimumFirmware: { major: 1, minor: 55, build: 23 },
      requireGuestPolicy: ["SINGLE_SOCKET", "MEM_AES_256_XTS", "RAPL_DIS", "CIPHERTEXT_HIDING", "PAGE_SWAP_DISABLE"],
      requirePlatformInfo: ["TSME_EN", "ECC_EN", "RAPL_DIS", "CIPHERTEXT_HIDING_EN", "ALIAS_CHECK_COMPLETE"],
      tioAllowed: true,
    });
    expect(appraise(all, policy({ snp: permissive }), now).violations).toEqual([]);
    // The fields as policy init writes them (sim-helpers.ts) check nothing but CXL: TIO_EN and the rest pass.
    expect(appraise(all, policy({ snp: snpPolicyJson() }), now).violations.map((v) => v.code)).toEqual([
      "SNP_CXL_NOT_ALLOWED",
    ]);
  });

  it("a skipped hardening check is not made: evidence an explicit value refuses passes a skip", async () => {
    const weak = await verifyBytes(
      simulateSnpReport(h, {
        ...baseOptions(),
        policy: 0x30000n | (1n << 8n) | 50n, // ABI 1.50, no guest POLICY bit of 20..25
        platformInfo: 0x25n, // SMT_EN, ECC_EN, ALIAS_CHECK_COMPLETE: not TSME_EN
        launchMitVector: 0x1n,
        currentMitVector: 0x1n,
      }),
    ); // firmware 1.55.23
    const explicit = {
      minimumAbi: { major: 1, minor: 51 },
      minimumFirmware: { major: 1, minor: 56, build: 0 },
      requireGuestPolicy: ["SINGLE_SOCKET"],
      requirePlatformInfo: ["TSME_EN"],
      requireMitigations: [3],
    };
    const codes = (fields: Record<string, unknown>) =>
      appraise(weak, policy({ snp: snpPolicyJson(fields) }), now).violations.map((v) => v.code);
    expect(codes(explicit)).toEqual([
      "SNP_ABI_TOO_LOW",
      "SNP_FIRMWARE_TOO_OLD",
      "SNP_FIRMWARE_TOO_OLD",
      "SNP_GUEST_POLICY_BIT_MISSING",
      "SNP_PLATFORM_INFO_BIT_MISSING",
      "SNP_MITIGATION_MISSING",
      "SNP_MITIGATION_MISSING",
    ]);
    const skipped = Object.fromEntries(
      Object.keys(explicit).map((field) => [field, { skip: { reason: `${field} not wanted here` } }]),
    );
    expect(codes(skipped)).toEqual([]);
    // Each on its own: a skip turns off its check only.
    for (const field of Object.keys(explicit)) {
      expect(codes({ ...explicit, [field]: skipped[field] }).length).toBeLessThan(codes(explicit).length);
      expect(codes({ ...explicit, [field]: skipped[field] }).length).toBeGreaterThan(0);
    }
  });

  // Every bit set but one: each required name is judged by its own bit (AMD's guest POLICY bits 20..25, PLATFORM_INFO bits 0..5).
  it.each([
    ["SINGLE_SOCKET", 20],
    ["MEM_AES_256_XTS", 22],
    ["RAPL_DIS", 23],
    ["CIPHERTEXT_HIDING", 24],
    ["PAGE_SWAP_DISABLE", 25],
  ] as const)("requireGuestPolicy %s reads guest POLICY bit %i", async (name, bit) => {
    const guestPolicy = 0x30000n | (0x3fn << 20n); // bits 20..25 (CXL_ALLOW, 21, among them)
    const verified = await verifyBytes(
      simulateSnpReport(h, { ...baseOptions(), policy: guestPolicy & ~(1n << BigInt(bit)) }),
    );
    const required = snpPolicyJson({
      cxlAllowed: true,
      requireGuestPolicy: ["SINGLE_SOCKET", "MEM_AES_256_XTS", "RAPL_DIS", "CIPHERTEXT_HIDING", "PAGE_SWAP_DISABLE"],
    });
    expect(appraise(verified, policy({ snp: required }), now).violations.map((v) => [v.code, v.field])).toEqual([
      ["SNP_GUEST_POLICY_BIT_MISSING", `POLICY.${name}`],
    ]);
  });

  it.each([
    ["TSME_EN", 1],
    ["ECC_EN", 2],
    ["RAPL_DIS", 3],
    ["CIPHERTEXT_HIDING_EN", 4],
    ["ALIAS_CHECK_COMPLETE", 5],
  ] as const)("requirePlatformInfo %s reads PLATFORM_INFO bit %i", async (name, bit) => {
    const platformInfo = 0x3fn & ~(1n << BigInt(bit));
    const verified = await verifyBytes(simulateSnpReport(h, { ...baseOptions(), platformInfo }));
    const required = snpPolicyJson({
      requirePlatformInfo: ["TSME_EN", "ECC_EN", "RAPL_DIS", "CIPHERTEXT_HIDING_EN", "ALIAS_CHECK_COMPLETE"],
    });
    expect(appraise(verified, policy({ snp: required }), now).violations.map((v) => [v.code, v.field])).toEqual([
      ["SNP_PLATFORM_INFO_BIT_MISSING", `PLATFORM_INFO.${name}`],
    ]);
  });

  it("judges a Turin report's FMC SPL against minimumTcb.fmc, in REPORTED_TCB and in LAUNCH_TCB", async () => {
    const turin = insecureSimulatedAmdHierarchy(INSECURE_SIMULATOR_DEFAULT_SEED, "Turin");
    const turinAnchors = insecureSimulatorAnchors(INSECURE_SIMULATOR_DEFAULT_SEED, ["Turin"]).snp;
    const current = { fmc: 1, bootloader: 1, tee: 1, snp: 3, microcode: 9 }; // the simulated Turin VCEK's
    const appraised = async (report: SimulatedSnpReportOptions, fmc: number) => {
      const verified = await verifyBytes(simulateSnpReport(turin, report), {
        cert: turin.vcek.certificate,
        anchors: turinAnchors,
      });
      expect(verified.reportedTcb.fmc).toBe(current.fmc);
      const p = snpPolicyJson({ allowedProducts: ["Turin"], minimumTcb: { ...current, fmc } });
      return appraise(verified, policy({ snp: p }), now).violations;
    };
    expect(await appraised(baseOptions(), 1)).toEqual([]);
    expect(await appraised(baseOptions(), 2)).toEqual([
      { field: "REPORTED_TCB.fmc", code: "SNP_TCB_TOO_LOW", expected: ">= 2", found: "1" },
    ]);
    // Launched under an older FMC than it now reports.
    const launchTcb = encodeTcbVersion({ ...current, fmc: 0 }, "Turin");
    expect(await appraised({ ...baseOptions(), launchTcb }, 1)).toEqual([
      { field: "LAUNCH_TCB.fmc", code: "SNP_LAUNCH_TCB_TOO_LOW", expected: ">= 1", found: "0" },
    ]);
  });

  it("decodes a Turin Dense guest's TCBs (CPUID family 1Ah, model 11h) with the Turin layout", async () => {
    const turin = insecureSimulatedAmdHierarchy(INSECURE_SIMULATOR_DEFAULT_SEED, "Turin");
    const turinAnchors = insecureSimulatorAnchors(INSECURE_SIMULATOR_DEFAULT_SEED, ["Turin"]).snp;
    const current = { fmc: 1, bootloader: 1, tee: 1, snp: 3, microcode: 9 }; // the simulated Turin VCEK's
    /** The simulated Turin report with CPUID model `model`, signed again by the Turin VCEK. */
    const appraised = async (model: number) => {
      const bytes = simulateSnpReport(turin, baseOptions());
      bytes[SNP_OFFSETS.CPUID_MOD_ID] = model;
      signSnpReportInPlace(bytes, turin.vcek);
      const verified = await verifyBytes(bytes, { cert: turin.vcek.certificate, anchors: turinAnchors });
      const p = snpPolicyJson({ allowedProducts: ["Turin"], minimumTcb: current });
      return { verified, violations: appraise(verified, policy({ snp: p }), now).violations };
    };
    const dense = await appraised(0x11);
    expect(dense.verified.report.product).toBe("Turin");
    expect(dense.verified.report.launchTcb).toMatchObject({ layout: "turin", ...current });
    expect(dense.violations).toEqual([]);
    // A model no table names (1Ah/12h): the report itself falls back to the Milan layout, but the
    // verified VCEK names Turin, and the TCBs are appraised with its layout.
    const unknown = await appraised(0x12);
    expect(unknown.verified.report.product).toBeNull();
    expect(unknown.verified.report.launchTcb.layout).toBe("milan-genoa");
    expect(unknown.violations).toEqual([]);
    for (const tcb of ["reportedTcb", "launchTcb", "currentTcb", "committedTcb"] as const) {
      expect(unknown.verified[tcb]).toMatchObject({ layout: "turin", ...current });
    }
  });

  it("a report verified at another time than now is rejected", async () => {
    const verified = await verifyBytes(simulateSnpReport(h, baseOptions()), { at: new Date("2025-01-01T00:00:00Z") });
    const result = appraise(verified, policy({ snp: snpPolicyJson() }), now);
    expect(result.violations.map((v) => v.code)).toEqual(["VERIFICATION_TIME_SKEW"]);
  });

  it("SNP evidence under a TDX-only policy is rejected", async () => {
    const verified = await verifyBytes(simulateSnpReport(h, baseOptions()));
    const tdxOnly = policy({ tdx: (await import("./sim-helpers.ts")).tdxPolicyJson("00".repeat(48)) });
    // The expected value names what the policy does accept, not what it refuses.
    expect(appraise(verified, tdxOnly, now).violations).toEqual([
      { field: "tee", code: "TEE_NOT_ACCEPTED", expected: "TDX (policy.snp is null)", found: "SEV-SNP" },
    ]);
  });
});
