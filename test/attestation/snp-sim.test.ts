/**
 * SEV-SNP rejection paths that real fixtures cannot reach (a validly signed report whose CHIP_ID
 * or TCB does not match its VCEK, unsigned reports, ...), driven by the simulator's seeded fake AMD
 * hierarchy: table-driven (name, mutation, expected code). The production parser and verifier run
 * unchanged; only the anchors differ.
 */
import { describe, expect, it } from "vitest";
import { AttestationError } from "../../attestation/errors.ts";
import { AMD_ROOTS } from "../../attestation/roots/amd.ts";
import {
  type InsecureSimulatedEndorsementKey,
  insecureSimulatedAmdHierarchy,
  insecureSimulatorAnchors,
  issueInsecureSimulatedEndorsementKey,
  signSnpReportInPlace,
  simulateSnpReport,
} from "../../attestation/sim/index.ts";
import { encodeTcbVersion, parseSnpReport, SNP_OFFSETS } from "../../attestation/snp/parse.ts";
import { verifySnpReport } from "../../attestation/snp/verify.ts";
import { parseCertificate, parseCertificateBytes } from "../../attestation/x509.ts";

const SEED = "cloister-snp-verify-tests";
const AT = new Date("2026-01-01T00:00:00Z");
const milan = insecureSimulatedAmdHierarchy(SEED, "Milan");
const anchors = insecureSimulatorAnchors(SEED, ["Milan", "Turin"]).snp;
const measurement = new Uint8Array(48).fill(0x42);
const reportData = new Uint8Array(64).fill(0x17);

async function outcome(report: Uint8Array, signer: InsecureSimulatedEndorsementKey, at = AT): Promise<string> {
  try {
    const v = await verifySnpReport({
      report: parseSnpReport(report),
      endorsementKey: parseCertificate(signer.certificate),
      anchors,
      at,
    });
    return v.simulated ? "accepted (simulated)" : "accepted";
  } catch (error) {
    expect(error).toBeInstanceOf(AttestationError);
    return (error as AttestationError).code;
  }
}

/** Edits the report bytes and re-signs them with `signer`, so only the edited field is wrong. */
function edited(signer: InsecureSimulatedEndorsementKey, edit: (b: Uint8Array, v: DataView) => void): Uint8Array {
  const bytes = simulateSnpReport(milan, { reportData, measurement, signer });
  edit(bytes, new DataView(bytes.buffer));
  signSnpReportInPlace(bytes, signer);
  return bytes;
}

/**
 * The simulated VCEK report with CURRENT_TCB or COMMITTED_TCB alone differing from REPORTED_TCB (the
 * VCEK's SPLs) by `change` in its components.
 */
function oneTcbChanged(
  which: "currentTcb" | "committedTcb",
  change: Partial<Record<"bootloader" | "tee" | "snp" | "microcode", number>>,
): Uint8Array {
  const reported = parseSnpReport(simulateSnpReport(milan, { reportData, measurement })).reportedTcb;
  const parts = {
    bootloader: reported.bootloader,
    tee: reported.tee,
    snp: reported.snp,
    microcode: reported.microcode,
  };
  for (const [name, delta] of Object.entries(change)) parts[name as keyof typeof parts] += delta;
  return simulateSnpReport(milan, { reportData, measurement, [which]: encodeTcbVersion(parts, "Milan") });
}

/** verifySnpReport of `report` under the simulated Milan VCEK at AT. */
function verify(report: Uint8Array) {
  return verifySnpReport({
    report: parseSnpReport(report),
    endorsementKey: parseCertificate(milan.vcek.certificate),
    anchors,
    at: AT,
  });
}

/** The simulated VCEK report (firmware 1.55.23, current and committed) with COMMITTED 1.`minor`.`build`. */
function committedFirmware(minor: number, build: number): Uint8Array {
  return edited(milan.vcek, (b) => {
    b[SNP_OFFSETS.COMMITTED_MINOR] = minor;
    b[SNP_OFFSETS.COMMITTED_BUILD] = build;
  });
}

describe("SNP verification with the simulator's fake AMD hierarchy", () => {
  const vcek = milan.vcek;
  const vlek = issueInsecureSimulatedEndorsementKey(milan, { kind: "VLEK" });
  const otherTcb = encodeTcbVersion({ bootloader: 4, tee: 0, snp: 24, microcode: 220 }, "Milan");

  const cases: [string, () => Promise<string>, string][] = [
    [
      "genuine simulated VCEK report",
      () => outcome(simulateSnpReport(milan, { reportData, measurement }), vcek),
      "accepted (simulated)",
    ],
    [
      "genuine simulated VLEK report",
      () => outcome(simulateSnpReport(milan, { reportData, measurement, signer: vlek }), vlek),
      "accepted (simulated)",
    ],
    [
      "CHIP_ID of another chip, validly signed",
      () =>
        outcome(
          edited(vcek, (b) => (b[SNP_OFFSETS.CHIP_ID] = (b[SNP_OFFSETS.CHIP_ID] as number) ^ 1)),
          vcek,
        ),
      "SNP_HWID_MISMATCH",
    ],
    [
      "CHIP_ID all zero (the host's MASK_CHIP_ID), validly VCEK-signed",
      () =>
        outcome(
          edited(vcek, (b) => b.fill(0, SNP_OFFSETS.CHIP_ID, SNP_OFFSETS.CHIP_ID + 64)),
          vcek,
        ),
      "SNP_HWID_MISMATCH",
    ],
    [
      "MASK_CHIP_KEY set: the firmware writes zeros into SIGNATURE instead of signing",
      () => {
        const bytes = simulateSnpReport(milan, { reportData, measurement });
        new DataView(bytes.buffer).setUint32(SNP_OFFSETS.SIGNER_INFO, 2, true);
        bytes.fill(0, SNP_OFFSETS.SIGNATURE, bytes.length);
        return outcome(bytes, vcek);
      },
      "SNP_REPORT_UNSIGNED",
    ],
    [
      "REPORTED_TCB other than the VCEK's SPLs",
      () =>
        outcome(
          edited(vcek, (_, v) => v.setBigUint64(SNP_OFFSETS.REPORTED_TCB, otherTcb, true)),
          vcek,
        ),
      "SNP_TCB_MISMATCH",
    ],
    [
      "REPORTED_TCB (the VCEK's) above CURRENT_TCB in one component",
      () => outcome(oneTcbChanged("currentTcb", { snp: -1 }), vcek),
      "SNP_REPORTED_TCB_ABOVE_CURRENT",
    ],
    [
      "CURRENT_TCB above REPORTED_TCB (the host reports an older TCB than it runs)",
      () => outcome(oneTcbChanged("currentTcb", { microcode: +1 }), vcek),
      "accepted (simulated)",
    ],
    [
      "COMMITTED_TCB above CURRENT_TCB in one component (the firmware runs below what it committed)",
      () => outcome(oneTcbChanged("committedTcb", { microcode: +1 }), vcek),
      "SNP_COMMITTED_TCB_ABOVE_CURRENT",
    ],
    [
      "COMMITTED_TCB below CURRENT_TCB (provisional firmware: a newer one runs, not yet committed)",
      () => outcome(oneTcbChanged("committedTcb", { microcode: -1 }), vcek),
      "accepted (simulated)",
    ],
    [
      "COMMITTED firmware version above CURRENT by build (1.55.24 committed, 1.55.23 runs)",
      () => outcome(committedFirmware(55, 24), vcek),
      "SNP_COMMITTED_FIRMWARE_ABOVE_CURRENT",
    ],
    [
      "COMMITTED firmware version above CURRENT by minor, with a lower build (1.56.0 committed, 1.55.23 runs)",
      () => outcome(committedFirmware(56, 0), vcek),
      "SNP_COMMITTED_FIRMWARE_ABOVE_CURRENT",
    ],
    [
      // Compared as (major, minor, build): a build number is only ordered within its minor version.
      "COMMITTED firmware version below CURRENT by minor, with a higher build (1.54.99 committed, 1.55.23 runs)",
      () => outcome(committedFirmware(54, 99), vcek),
      "accepted (simulated)",
    ],
    [
      "version 3 report with nonzero bytes where version 5 has LAUNCH_MIT_VECTOR (reserved before version 5)",
      () => {
        const bytes = simulateSnpReport(milan, { reportData, measurement, version: 3 });
        bytes[SNP_OFFSETS.LAUNCH_MIT_VECTOR] = 1;
        signSnpReportInPlace(bytes, vcek);
        return outcome(bytes, vcek);
      },
      "SNP_RESERVED_NONZERO",
    ],
    [
      "version 5 report with mitigation vectors",
      () =>
        outcome(
          edited(vcek, (_, v) => {
            v.setBigUint64(SNP_OFFSETS.LAUNCH_MIT_VECTOR, 0xbn, true);
            v.setBigUint64(SNP_OFFSETS.CURRENT_MIT_VECTOR, 0xbn, true);
          }),
          vcek,
        ),
      "accepted (simulated)",
    ],
    [
      "version 2 report signed by a Turin VCEK (Turin firmware writes version 3 and later)",
      () => {
        const turin = insecureSimulatedAmdHierarchy(SEED, "Turin");
        const bytes = simulateSnpReport(turin, { reportData, measurement, version: 3 });
        const v = new DataView(bytes.buffer);
        v.setUint32(SNP_OFFSETS.VERSION, 2, true);
        bytes.fill(0, SNP_OFFSETS.CPUID_FAM_ID, SNP_OFFSETS.CPUID_STEP + 1); // no CPUID in version 2
        signSnpReportInPlace(bytes, turin.vcek);
        return outcome(bytes, turin.vcek);
      },
      "SNP_REPORT_VERSION_MISMATCH",
    ],
    [
      "SIGNING_KEY = none",
      () =>
        outcome(
          edited(vcek, (_, v) => v.setUint32(SNP_OFFSETS.SIGNER_INFO, 7 << 2, true)),
          vcek,
        ),
      "SNP_REPORT_UNSIGNED",
    ],
    [
      "CPUID says Genoa, certificate says Milan",
      () =>
        outcome(
          edited(vcek, (b) => (b[SNP_OFFSETS.CPUID_MOD_ID] = 0x11)),
          vcek,
        ),
      "SNP_PRODUCT_MISMATCH",
    ],
    [
      "VLEK-signed report presented with the VCEK",
      () => outcome(simulateSnpReport(milan, { reportData, measurement, signer: vlek }), vcek),
      "SNP_SIGNING_KEY_MISMATCH",
    ],
    [
      "report signed by the VLEK key but SIGNING_KEY says VCEK",
      () =>
        outcome(
          edited(vlek, (_, v) => v.setUint32(SNP_OFFSETS.SIGNER_INFO, 0, true)),
          vlek,
        ),
      "SNP_SIGNING_KEY_MISMATCH",
    ],
    [
      "report signed by another chip's VCEK",
      () => {
        const other = issueInsecureSimulatedEndorsementKey(milan, { chipId: new Uint8Array(64).fill(9) });
        return outcome(simulateSnpReport(milan, { reportData, measurement, signer: other }), vcek);
      },
      "SNP_REPORT_SIGNATURE_INVALID",
    ],
    [
      "VCEK signed by the ARK instead of the ASK",
      () => {
        const forged = issueInsecureSimulatedEndorsementKey(milan, { signer: milan.arkKey });
        return outcome(simulateSnpReport(milan, { reportData, measurement, signer: forged }), forged);
      },
      "CERT_SIGNATURE_INVALID",
    ],
    [
      "expired VLEK",
      () => {
        const old = issueInsecureSimulatedEndorsementKey(milan, {
          kind: "VLEK",
          notBefore: new Date("2024-01-01T00:00:00Z"),
          notAfter: new Date("2025-01-01T00:00:00Z"),
        });
        return outcome(simulateSnpReport(milan, { reportData, measurement, signer: old }), old);
      },
      "CERT_EXPIRED",
    ],
    [
      "VCEK not yet valid",
      () => outcome(simulateSnpReport(milan, { reportData, measurement }), vcek, new Date("2023-06-01T00:00:00Z")),
      "CERT_NOT_YET_VALID",
    ],
  ];

  it.each(cases.map(([name, run, expected]) => ({ name, run, expected })))(
    "$name → $expected",
    async ({ run, expected }) => {
      expect(await run()).toBe(expected);
    },
  );

  it("a Turin report verifies with the 8-byte hwID and fmcSPL; a wrong FMC SPL is SNP_TCB_MISMATCH", async () => {
    const turin = insecureSimulatedAmdHierarchy(SEED, "Turin");
    const report = simulateSnpReport(turin, { reportData, measurement });
    const v = await verifySnpReport({
      report: parseSnpReport(report),
      endorsementKey: parseCertificate(turin.vcek.certificate),
      anchors,
      at: AT,
    });
    expect([v.product, v.reportedTcb.layout, v.extensions.hwId?.length, v.simulated]).toEqual([
      "Turin",
      "turin",
      8,
      true,
    ]);
    expect(v.reportedTcb.fmc).toBe(v.extensions.fmcSPL);

    const bad = new Uint8Array(report);
    bad[SNP_OFFSETS.REPORTED_TCB] = (bad[SNP_OFFSETS.REPORTED_TCB] as number) + 1; // byte 0 = FMC on Turin
    signSnpReportInPlace(bad, turin.vcek);
    const verifyTurin = (bytes: Uint8Array) =>
      verifySnpReport({
        report: parseSnpReport(bytes),
        endorsementKey: parseCertificate(turin.vcek.certificate),
        anchors,
        at: AT,
      });
    await expect(verifyTurin(bad)).rejects.toMatchObject({ code: "SNP_TCB_MISMATCH" });

    // CURRENT_TCB's FMC (byte 0 on Turin) below the VCEK's: compared in the Turin layout.
    const olderFmc = new Uint8Array(report);
    olderFmc[SNP_OFFSETS.CURRENT_TCB] = (olderFmc[SNP_OFFSETS.CURRENT_TCB] as number) - 1;
    signSnpReportInPlace(olderFmc, turin.vcek);
    await expect(verifyTurin(olderFmc)).rejects.toMatchObject({
      code: "SNP_REPORTED_TCB_ABOVE_CURRENT",
      message: expect.stringContaining(`found fmc ${v.reportedTcb.fmc}`),
    });
  });

  // Only this comparison ties REPORTED_TCB (what minimumTcb judges) to the key that signed it: a key
  // from old firmware must not vouch for a newer TCB in any single component.
  const components = {
    Milan: ["bootloader", "tee", "snp", "microcode"],
    Turin: ["fmc", "bootloader", "tee", "snp", "microcode"],
  } as const;
  const oneComponent = (["Milan", "Turin"] as const).flatMap((product) =>
    components[product].map((component) => [product, component] as const),
  );
  it.each(oneComponent)(
    "%s: REPORTED_TCB (and CURRENT_TCB) one above the VCEK's %s SPL alone is SNP_TCB_MISMATCH",
    async (product, component) => {
      const hierarchy = product === "Milan" ? milan : insecureSimulatedAmdHierarchy(SEED, "Turin");
      const own = parseSnpReport(simulateSnpReport(hierarchy, { reportData, measurement })).reportedTcb;
      const parts = { fmc: own.fmc, bootloader: own.bootloader, tee: own.tee, snp: own.snp, microcode: own.microcode };
      expect(await outcome(simulateSnpReport(hierarchy, { reportData, measurement }), hierarchy.vcek)).toBe(
        "accepted (simulated)",
      );
      const raised = encodeTcbVersion({ ...parts, [component]: (parts[component] ?? 0) + 1 }, product);
      const report = simulateSnpReport(hierarchy, { reportData, measurement, tcb: raised });
      expect(parseSnpReport(report).currentTcb.raw).toBe(raised);
      expect(await outcome(report, hierarchy.vcek)).toBe("SNP_TCB_MISMATCH");
    },
  );

  it("names the committed field, what CURRENT holds and what COMMITTED holds when the firmware runs below its commitment", async () => {
    await expect(verify(oneTcbChanged("committedTcb", { snp: +1 }))).rejects.toMatchObject({
      code: "SNP_COMMITTED_TCB_ABOVE_CURRENT",
      message:
        "COMMITTED_TCB: expected each component <= CURRENT_TCB's (bl 4, tee 0, snp 24, ucode 219), found snp 25 (bl 4, tee 0, snp 25, ucode 219): the firmware runs below the TCB the platform committed to",
    });
    await expect(verify(committedFirmware(55, 24))).rejects.toMatchObject({
      code: "SNP_COMMITTED_FIRMWARE_ABOVE_CURRENT",
      message:
        "COMMITTED_MAJOR.MINOR.BUILD: expected <= CURRENT_MAJOR.MINOR.BUILD (1.55.23), found 1.55.24: the firmware runs below the version the platform committed to",
    });
  });

  it("says why a VCEK-signed report with an all-zero CHIP_ID is refused, and why MASK_CHIP_KEY makes a report unsigned", async () => {
    const zeroChip = edited(vcek, (b) => b.fill(0, SNP_OFFSETS.CHIP_ID, SNP_OFFSETS.CHIP_ID + 64));
    await expect(verify(zeroChip)).rejects.toThrow(/CHIP_ID is all zero: the host masks it with MASK_CHIP_ID/);
    // Another chip's CHIP_ID gets no such explanation.
    const otherChip = edited(vcek, (b) => (b[SNP_OFFSETS.CHIP_ID] = (b[SNP_OFFSETS.CHIP_ID] as number) ^ 1));
    await expect(verify(otherChip)).rejects.not.toThrow(/MASK_CHIP_ID/);
    // MASK_CHIP_KEY set on a report that is signed anyway (no firmware makes one) is still unsigned.
    const signedAnyway = edited(vcek, (_, v) => v.setUint32(SNP_OFFSETS.SIGNER_INFO, 2, true));
    await expect(verify(signedAnyway)).rejects.toMatchObject({
      code: "SNP_REPORT_UNSIGNED",
      message: expect.stringContaining("MaskChipKey setting makes the firmware write zeros into SIGNATURE"),
    });
  });

  it("makes verified reports only through verifySnpReport (SNP_VERIFIED_FORGED)", async () => {
    const v = await verifySnpReport({
      report: parseSnpReport(simulateSnpReport(milan, { reportData, measurement })),
      endorsementKey: parseCertificate(milan.vcek.certificate),
      anchors,
      at: AT,
    });
    const Verified = v.constructor as new (token: symbol, fields: unknown) => unknown;
    expect(() => new Verified(Symbol("verified"), { ...v, anchor: anchors[0] })).toThrow(
      expect.objectContaining({ code: "SNP_VERIFIED_FORGED" }),
    );
  });

  it("simulated evidence never verifies under the real AMD roots", async () => {
    await expect(
      verifySnpReport({
        report: parseSnpReport(simulateSnpReport(milan, { reportData, measurement })),
        endorsementKey: parseCertificate(milan.vcek.certificate),
        anchors: AMD_ROOTS,
        at: AT,
      }),
    ).rejects.toMatchObject({ code: "ROOT_NOT_TRUSTED" });
  });

  it("real evidence does not verify under the simulator's anchors", async () => {
    const { readFileSync } = await import("node:fs");
    const F = new URL("../fixtures/attestation/snp/", import.meta.url);
    await expect(
      verifySnpReport({
        report: parseSnpReport(readFileSync(new URL("milan-gcp-v5-report.bin", F))),
        endorsementKey: parseCertificateBytes(readFileSync(new URL("milan-gcp-v5-vcek.pem", F))),
        anchors,
        at: AT,
      }),
    ).rejects.toMatchObject({ code: "ROOT_NOT_TRUSTED" });
  });
});
