/**
 * attestation/manifest-tee.ts: the manifest's tee section (allowedMeasurements, minimumTcb,
 * policyFlags) against simulated SNP reports and TDX quotes in the real formats, parsed. The dev
 * manifest's section passes the simulator's default evidence; each constraint the evidence breaks is
 * one violation naming the manifest field, the evidence field, the expected and the found value.
 */
import { readFileSync } from "node:fs";
import { base64url } from "jose";
import { describe, expect, it } from "vitest";
import { parseAzureEvidence } from "../../attestation/azure/evidence.ts";
import { verifyAzureEvidence } from "../../attestation/azure/verify.ts";
import { toHex } from "../../attestation/bytes.ts";
import {
  type ManifestTee,
  type ManifestTeeEvidence,
  manifestTeeEvidenceOfDocument,
  manifestTeeEvidenceOfVerified,
  manifestTeeViolations,
} from "../../attestation/manifest-tee.ts";
import { AMD_ROOTS } from "../../attestation/roots/amd.ts";
import { INTEL_ROOTS } from "../../attestation/roots/intel.ts";
import { insecureSimulatedAmdHierarchy, simulateSnpReport } from "../../attestation/sim/index.ts";
import { encodeTcbVersion } from "../../attestation/snp/parse.ts";
import { DEV_MANIFEST } from "../../manifests/dev.ts";
import { SIM_MEASUREMENT, simulatedSnpTeeEvidence, simulatedTdxTeeEvidence } from "../helpers/manifest-tee-evidence.ts";

const DEV_TEE: ManifestTee = DEV_MANIFEST.tee;
const OTHER = "b".repeat(96);
const tee = (change: Partial<ManifestTee>): ManifestTee => ({ ...DEV_TEE, ...change });
const flags = (change: Partial<ManifestTee["policyFlags"]>) =>
  tee({ policyFlags: { ...DEV_TEE.policyFlags, ...change } });

describe("the manifest's tee section against SNP evidence", () => {
  it("the simulator's default report passes the dev manifest (any measurement, TCB zeros, SMT allowed)", () => {
    expect(manifestTeeViolations(simulatedSnpTeeEvidence(), DEV_TEE)).toEqual([]);
  });

  it("a measurement outside allowedMeasurements is refused, naming it; a listed one passes", () => {
    const evidence = simulatedSnpTeeEvidence();
    expect(manifestTeeViolations(evidence, tee({ allowedMeasurements: [OTHER] }))).toEqual([
      {
        manifestField: "tee.allowedMeasurements",
        field: "MEASUREMENT",
        code: "MANIFEST_MEASUREMENT_NOT_ALLOWED",
        expected: OTHER,
        found: toHex(SIM_MEASUREMENT),
      },
    ]);
    expect(manifestTeeViolations(evidence, tee({ allowedMeasurements: [OTHER, toHex(SIM_MEASUREMENT)] }))).toEqual([]);
  });

  it("a TCB below minimumTcb.snp is refused per component, REPORTED_TCB once (not again as LAUNCH/COMMITTED)", () => {
    const evidence = simulatedSnpTeeEvidence({
      tcb: encodeTcbVersion({ bootloader: 3, tee: 0, snp: 8, microcode: 115 }, "Milan"),
    });
    const min = { bootloader: 3, tee: 0, snp: 9, microcode: 115, fmc: null };
    expect(manifestTeeViolations(evidence, tee({ minimumTcb: { snp: min, tdx: DEV_TEE.minimumTcb.tdx } }))).toEqual([
      {
        manifestField: "tee.minimumTcb.snp",
        field: "REPORTED_TCB.snp",
        code: "MANIFEST_TCB_TOO_LOW",
        expected: ">= 9",
        found: "8",
      },
    ]);
    const equal = { ...min, snp: 8 };
    expect(manifestTeeViolations(evidence, tee({ minimumTcb: { snp: equal, tdx: DEV_TEE.minimumTcb.tdx } }))).toEqual(
      [],
    );
  });

  it("a guest launched under older firmware (LAUNCH_TCB) than the minimum is refused", () => {
    const tcb = encodeTcbVersion({ bootloader: 3, tee: 0, snp: 9, microcode: 115 }, "Milan");
    const launchTcb = encodeTcbVersion({ bootloader: 3, tee: 0, snp: 8, microcode: 115 }, "Milan");
    const evidence = simulatedSnpTeeEvidence({ tcb, launchTcb });
    const min = { bootloader: 0, tee: 0, snp: 9, microcode: 0, fmc: null };
    expect(manifestTeeViolations(evidence, tee({ minimumTcb: { snp: min, tdx: null } }))).toMatchObject([
      { manifestField: "tee.minimumTcb.snp", field: "LAUNCH_TCB.snp", code: "MANIFEST_TCB_TOO_LOW" },
    ]);
  });

  it("policy flags: DEBUG is refused always, MIGRATE_MA unless migrationAgentAllowed, SMT (guest POLICY and the platform's SMT_EN) unless smtAllowed", () => {
    const DEBUG = 1n << 19n;
    const MIGRATE_MA = 1n << 18n;
    const base = 0x30000n; // SMT allowed, reserved bit 17
    expect(manifestTeeViolations(simulatedSnpTeeEvidence({ policy: base | DEBUG }), DEV_TEE)).toEqual([
      {
        manifestField: "tee.policyFlags",
        field: "POLICY.DEBUG",
        code: "MANIFEST_POLICY_FLAG",
        expected: "clear (debugAllowed: false)",
        found: "set",
      },
    ]);
    const migrating = simulatedSnpTeeEvidence({ policy: base | MIGRATE_MA });
    expect(manifestTeeViolations(migrating, DEV_TEE)).toMatchObject([
      {
        manifestField: "tee.policyFlags",
        field: "POLICY.MIGRATE_MA",
        expected: "clear (migrationAgentAllowed: false)",
      },
    ]);
    expect(manifestTeeViolations(migrating, flags({ migrationAgentAllowed: true }))).toEqual([]);
    expect(manifestTeeViolations(simulatedSnpTeeEvidence(), flags({ smtAllowed: false }))).toMatchObject([
      { manifestField: "tee.policyFlags", field: "POLICY.SMT", code: "MANIFEST_POLICY_FLAG", found: "set" },
      { manifestField: "tee.policyFlags", field: "PLATFORM_INFO.SMT_EN", code: "MANIFEST_POLICY_FLAG", found: "set" },
    ]);
  });

  it("lists every violation at once", () => {
    const evidence = simulatedSnpTeeEvidence({ policy: 0x30000n | (1n << 19n) });
    const min = { bootloader: 255, tee: 0, snp: 0, microcode: 0, fmc: null };
    const all = manifestTeeViolations(evidence, {
      ...flags({ smtAllowed: false }),
      allowedMeasurements: [OTHER],
      minimumTcb: { snp: min, tdx: null },
    });
    expect(all.map((v) => v.field)).toEqual([
      "MEASUREMENT",
      "REPORTED_TCB.bootloader",
      "POLICY.DEBUG",
      "POLICY.SMT",
      "PLATFORM_INFO.SMT_EN",
    ]);
  });

  it("SNP evidence under a manifest without an SNP minimum is refused, not left unbounded", () => {
    expect(
      manifestTeeViolations(simulatedSnpTeeEvidence(), tee({ minimumTcb: { snp: null, tdx: DEV_TEE.minimumTcb.tdx } })),
    ).toMatchObject([{ manifestField: "tee.minimumTcb.snp", code: "MANIFEST_TCB_TOO_LOW", found: "null" }]);
  });
});

describe("the manifest's tee section against TDX evidence", () => {
  it("the simulator's default quote passes the dev manifest", () => {
    expect(manifestTeeViolations(simulatedTdxTeeEvidence(), DEV_TEE)).toEqual([]);
  });

  it("an MRTD outside allowedMeasurements is refused", () => {
    expect(manifestTeeViolations(simulatedTdxTeeEvidence(), tee({ allowedMeasurements: [OTHER] }))).toEqual([
      {
        manifestField: "tee.allowedMeasurements",
        field: "MRTD",
        code: "MANIFEST_MEASUREMENT_NOT_ALLOWED",
        expected: OTHER,
        found: toHex(SIM_MEASUREMENT),
      },
    ]);
  });

  it("TEE_TCB_SVN below the minimum component-wise, and the signed QE and PCE SVNs below theirs, are refused", () => {
    const evidence = simulatedTdxTeeEvidence({
      teeTcbSvn: Uint8Array.of(3, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    });
    const min = { teeTcbSvn: `0300${"06"}${"00".repeat(13)}`, qeSvn: 65535, pceSvn: 65535 };
    const found = manifestTeeViolations(evidence, tee({ minimumTcb: { snp: null, tdx: min } }));
    expect(found.map((v) => [v.manifestField, v.field, v.code, v.expected])).toEqual([
      ["tee.minimumTcb.tdx", "TEE_TCB_SVN[2]", "MANIFEST_TCB_TOO_LOW", ">= 6"],
      ["tee.minimumTcb.tdx", "QE_REPORT.ISVSVN", "MANIFEST_TCB_TOO_LOW", ">= 65535 (tee.minimumTcb.tdx.qeSvn)"],
      ["tee.minimumTcb.tdx", "PCK.PCESVN", "MANIFEST_TCB_TOO_LOW", ">= 65535 (tee.minimumTcb.tdx.pceSvn)"],
    ]);
  });

  it("TDATTRIBUTES.DEBUG is refused; MIGRATABLE only where migrationAgentAllowed", () => {
    const attributes = (byte0: number, byte3: number) => Uint8Array.of(byte0, 0, 0, byte3, 0, 0, 0, 0);
    expect(manifestTeeViolations(simulatedTdxTeeEvidence({ tdAttributes: attributes(1, 0x10) }), DEV_TEE)).toEqual([
      {
        manifestField: "tee.policyFlags",
        field: "TDATTRIBUTES.DEBUG",
        code: "MANIFEST_POLICY_FLAG",
        expected: "clear (debugAllowed: false)",
        found: "set",
      },
    ]);
    const migratable = simulatedTdxTeeEvidence({ tdAttributes: attributes(0, 0x30) });
    expect(manifestTeeViolations(migratable, DEV_TEE)).toMatchObject([
      { field: "TDATTRIBUTES.MIGRATABLE", code: "MANIFEST_POLICY_FLAG" },
    ]);
    expect(manifestTeeViolations(migratable, flags({ migrationAgentAllowed: true }))).toEqual([]);
  });

  it("TDATTRIBUTES.DEBUG is read against debugAllowed, as SNP's POLICY.DEBUG is (the schema fixes it false)", () => {
    const debug = simulatedTdxTeeEvidence({ tdAttributes: Uint8Array.of(1, 0, 0, 0x10, 0, 0, 0, 0) });
    const allowing = flags({ debugAllowed: true as false });
    expect(manifestTeeViolations(debug, allowing)).toEqual([]);
    const snpDebug = simulatedSnpTeeEvidence({ policy: 0x30000n | (1n << 19n) });
    expect([manifestTeeViolations(snpDebug, DEV_TEE).length, manifestTeeViolations(snpDebug, allowing)]).toEqual([
      1,
      [],
    ]);
  });

  it("smtAllowed false is refused on TDX, which cannot attest it (fail closed, never a signed constraint passed unchecked)", () => {
    expect(manifestTeeViolations(simulatedTdxTeeEvidence(), flags({ smtAllowed: false }))).toEqual([
      {
        manifestField: "tee.policyFlags",
        field: "SMT",
        code: "MANIFEST_POLICY_FLAG",
        expected: "smtAllowed: true on TDX (a TD quote does not attest the host's SMT)",
        found: "smtAllowed: false",
      },
    ]);
    expect(manifestTeeViolations(simulatedTdxTeeEvidence(), flags({ smtAllowed: true }))).toEqual([]);
  });
});

describe("the facts of the enclave's own document evidence (boot)", () => {
  // A version 2 report names no processor: a Turin guest's, decoded with Milan's layout, has its
  // TCB components in the wrong bytes. The enclave's --snp-product says which layout.
  const turinV2 = () => {
    const parts = { fmc: 2, bootloader: 3, tee: 4, snp: 5, microcode: 6 };
    const hierarchy = insecureSimulatedAmdHierarchy(undefined, "Turin");
    const report = simulateSnpReport(hierarchy, {
      reportData: new Uint8Array(64),
      measurement: SIM_MEASUREMENT,
      tcb: encodeTcbVersion(parts, "Turin"),
      version: 3,
    });
    new DataView(report.buffer).setUint32(0, 2, true); // VERSION 2
    report.fill(0, 0x188, 0x18b); // no CPUID before version 3
    const evidence = { type: "sev-snp" as const, report: base64url.encode(report), endorsementKey: "" };
    return { parts, evidence };
  };

  it("decodes a version 2 report's TCBs with the layout of the product given, Milan/Genoa's when none is", () => {
    const { parts, evidence } = turinV2();
    const turin = manifestTeeEvidenceOfDocument(evidence, "Turin");
    if (turin.kind !== "snp") throw new Error("expected SNP facts");
    expect([turin.reportedTcb, turin.launchTcb, turin.committedTcb]).toMatchObject([parts, parts, parts]);
    const milan = manifestTeeEvidenceOfDocument(evidence);
    if (milan.kind !== "snp") throw new Error("expected SNP facts");
    expect(milan.reportedTcb).toMatchObject({ bootloader: 2, tee: 3 });
  });

  it("a report that names its processor (version 3 and later) keeps its own layout whatever the product given", () => {
    const report = simulateSnpReport(insecureSimulatedAmdHierarchy(), {
      reportData: new Uint8Array(64),
      measurement: SIM_MEASUREMENT,
    });
    const evidence = { type: "sev-snp" as const, report: base64url.encode(report), endorsementKey: "" };
    const [milan, givenTurin] = [
      manifestTeeEvidenceOfDocument(evidence),
      manifestTeeEvidenceOfDocument(evidence, "Turin"),
    ];
    expect(givenTurin).toEqual(milan);
  });
});

describe("the manifest's tee section against real Azure evidence (the paravisor's hardware report under the vTPM)", () => {
  const FIXTURES = new URL("../fixtures/attestation/", import.meta.url);
  const cases = [
    ["azure/snp-vtpm/genoa-evidence.trustee.json", new Date("2026-01-01T00:00:00Z")],
    ["azure/snp-vtpm/milan-evidence-v2.trustee.json", new Date("2026-01-01T00:00:00Z")],
    ["azure/tdx-vtpm/tdx-evidence-v1.trustee.json", new Date("2024-01-01T00:00:00Z")],
  ] as const;
  const measurementOf = (facts: ManifestTeeEvidence) =>
    toHex(facts.kind === "snp" ? facts.report.measurement : facts.quote.body.mrTd);

  it.each(cases)(
    "%s: the verified hardware report's measurement is compared, the boot's parse finds the same",
    async (fixture, at) => {
      const text = readFileSync(new URL(fixture, FIXTURES), "utf8");
      const evidence = parseAzureEvidence(text);
      const verified = await verifyAzureEvidence({
        evidence,
        at,
        expectedNonce: null,
        snpAnchors: AMD_ROOTS,
        tdxAnchors: INTEL_ROOTS,
      });
      const facts = manifestTeeEvidenceOfVerified(verified);
      const hardware = verified.snp === null ? toHex(verified.tdx?.quote.body.mrTd as Uint8Array) : null;
      expect(measurementOf(facts)).toBe(hardware ?? toHex(verified.snp?.report.measurement as Uint8Array));
      const parsed = manifestTeeEvidenceOfDocument({ type: evidence.kind, evidence: text });
      expect([parsed.kind, measurementOf(parsed)]).toEqual([facts.kind, measurementOf(facts)]);
      if (parsed.kind === "snp" && facts.kind === "snp") {
        expect([parsed.reportedTcb, parsed.launchTcb, parsed.committedTcb]).toEqual([
          facts.reportedTcb,
          facts.launchTcb,
          facts.committedTcb,
        ]);
      }
      const platform = evidence.kind;
      const minimumTcb =
        facts.kind === "snp"
          ? { snp: { bootloader: 0, tee: 0, snp: 0, microcode: 0, fmc: null }, tdx: null }
          : { snp: null, tdx: { teeTcbSvn: "00".repeat(16), qeSvn: 0, pceSvn: 0 } };
      const section = (allowedMeasurements: string[]) =>
        tee({ platforms: [platform], allowedMeasurements, minimumTcb, policyFlags: DEV_TEE.policyFlags });
      expect(manifestTeeViolations(facts, section([measurementOf(facts)]))).toEqual([]);
      expect(manifestTeeViolations(facts, section([OTHER]))).toMatchObject([
        {
          manifestField: "tee.allowedMeasurements",
          field: facts.kind === "snp" ? "MEASUREMENT" : "MRTD",
          code: "MANIFEST_MEASUREMENT_NOT_ALLOWED",
          found: measurementOf(facts),
        },
      ]);
    },
  );
});
