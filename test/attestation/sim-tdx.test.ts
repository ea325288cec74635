/**
 * The simulated TDX path: a v4 quote in the real layout goes through the PRODUCTION parser,
 * verifier and appraiser; verifies only under the simulator's Intel root; appraises only with
 * trustSimulator; and single mutations are each rejected with their own code.
 */
import { describe, expect, it } from "vitest";
import { appraise } from "../../attestation/appraise.ts";
import { fromHex, toHex } from "../../attestation/bytes.ts";
import { INTEL_ROOTS, type TdxTrustAnchor } from "../../attestation/roots/intel.ts";
import {
  deriveInsecureEcKey,
  insecureSimulatedIntelHierarchy,
  insecureSimulatorAnchors,
  issueInsecureSimulatedPckLeaf,
  SIMULATED_PCK_DEFAULT_TCB,
  type SimulatedTdxQuoteOptions,
  simulateTdxQuote,
} from "../../attestation/sim/index.ts";
import { intelName } from "../../attestation/sim/intel.ts";
import { INSECURE_SIMULATOR_ORGANIZATION } from "../../attestation/sim/names.ts";
import { der, X509_OID } from "../../attestation/sim/x509-writer.ts";
import { parseTdxQuote } from "../../attestation/tdx/parse.ts";
import { verifyTdxQuote } from "../../attestation/tdx/verify.ts";
import { codeOf, rejection } from "../helpers/attestation.ts";
import {
  AT,
  MRTD,
  policy,
  REPORT_DATA,
  RTMRS,
  reissueCertificate,
  snpPolicyJson,
  tdxPolicyJson,
} from "./sim-helpers.ts";

const h = insecureSimulatedIntelHierarchy();
const anchors = insecureSimulatorAnchors().tdx;
const baseOptions = (): SimulatedTdxQuoteOptions => ({ reportData: REPORT_DATA, mrtd: MRTD, rtmrs: RTMRS });
const MRSEAM = toHex(parseTdxQuote(simulateTdxQuote(h, baseOptions())).body.mrSeam);

// Offsets in a v4 quote: header 48, body 584 (MRTD at body+136, RTMR0 at body+328), signature data
// length 4, quote signature 64, attestation key 64, cert data type/size 6, QE report 384.
const BODY = 48;
const SIGNATURE = BODY + 584 + 4;
const ATTESTATION_KEY = SIGNATURE + 64;
const QE_REPORT = ATTESTATION_KEY + 64 + 6;

function verifyBytes(quote: Uint8Array, options: { anchors?: readonly TdxTrustAnchor[]; at?: Date } = {}) {
  return verifyTdxQuote({ quote: parseTdxQuote(quote), anchors: options.anchors ?? anchors, at: options.at ?? AT });
}

function flip(bytes: Uint8Array, offset: number): Uint8Array {
  const out = new Uint8Array(bytes);
  out[offset] = (out[offset] as number) ^ 0x01;
  return out;
}

describe("simulated Intel hierarchy and quote layout", () => {
  it("writes a v4 quote with the real header, body and certification data", () => {
    const quote = parseTdxQuote(simulateTdxQuote(h, { ...baseOptions(), mrconfigid: new Uint8Array(48).fill(5) }));
    expect(quote.header.version).toBe(4);
    expect(quote.header.attestationKeyType).toBe(2);
    expect(quote.header.teeType).toBe(0x81);
    expect(quote.tdxVersion).toBe("1.0");
    expect(quote.trailingBytes).toBe(0);
    expect(toHex(quote.body.mrTd)).toBe(toHex(MRTD));
    expect(quote.body.rtmrs.map((r) => toHex(r))).toEqual(RTMRS.map((r) => toHex(r)));
    expect(toHex(quote.body.reportData)).toBe(toHex(REPORT_DATA));
    expect(toHex(quote.body.mrConfigId)).toBe("05".repeat(48));
    expect(toHex(quote.body.tdAttributes)).toBe("0000001000000000");
    expect(toHex(quote.attestationKey)).toBe(toHex(h.attestationKey.point.subarray(1)));
    expect(quote.qeReport.isvProdId).toBe(2);
    expect(toHex(quote.qeAuthData)).toBe(toHex(Uint8Array.from({ length: 32 }, (_, i) => i)));
    // PCK chain: leaf, PCK Platform CA, root — Intel's names with the simulator marker.
    const [leaf, ca, root] = quote.pckChain;
    expect(leaf.subject).toContain("CN=Intel SGX PCK Certificate");
    expect(ca.subject).toContain("CN=Intel SGX PCK Platform CA");
    expect(root.subject).toBe(root.issuer);
    expect(root.subject).toContain(`O=${INSECURE_SIMULATOR_ORGANIZATION}`);
    for (const cert of [leaf, ca, root]) {
      expect(cert.signatureAlgorithm).toEqual({ kind: "ecdsa", hash: "SHA-256" });
      expect(cert.publicKey.kind === "ec" && cert.publicKey.curve).toBe("P-256");
    }
    // SGX extension in the real shape, as decoded by the production parser.
    expect(quote.pckExtensions.tcbComponents).toEqual([...SIMULATED_PCK_DEFAULT_TCB.tcbComponents]);
    expect(quote.pckExtensions.pceSvn).toBe(SIMULATED_PCK_DEFAULT_TCB.pceSvn);
    expect(toHex(quote.pckExtensions.fmspc)).toBe(toHex(SIMULATED_PCK_DEFAULT_TCB.fmspc));
    expect(toHex(quote.pckExtensions.cpuSvn)).toBe(toHex(SIMULATED_PCK_DEFAULT_TCB.cpuSvn));
    expect(quote.pckExtensions.sgxType).toBe(1);
    // Deterministic.
    expect(toHex(simulateTdxQuote(h, baseOptions()))).toBe(toHex(simulateTdxQuote(h, baseOptions())));
  });
});

describe("simulated TDX evidence through the production path", () => {
  it("parses, verifies under the simulator anchor and passes a matching policy", async () => {
    const verified = await verifyBytes(simulateTdxQuote(h, baseOptions()));
    expect(verified.simulated).toBe(true);
    expect(verified.debug).toBe(false);
    const result = appraise(verified, policy({ tdx: tdxPolicyJson(MRSEAM) }), {
      now: AT,
      expectedReportData: REPORT_DATA,
    });
    expect(result.violations).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.simulated).toBe(true);
    expect(result.tee).toBe("tdx");
  });

  it("fails verification with the real Intel root only", async () => {
    expect(await codeOf(verifyBytes(simulateTdxQuote(h, baseOptions()), { anchors: INTEL_ROOTS }))).toBe(
      "ROOT_NOT_TRUSTED",
    );
  });

  it("fails appraisal when the policy does not trust the simulator", async () => {
    const verified = await verifyBytes(simulateTdxQuote(h, baseOptions()));
    const result = appraise(verified, policy({ tdx: tdxPolicyJson(MRSEAM), trustSimulator: false }), {
      now: AT,
      expectedReportData: REPORT_DATA,
    });
    expect(result.violations.map((v) => v.code)).toEqual(["SIMULATED_EVIDENCE_NOT_TRUSTED"]);
  });
});

describe("single-mutation rejection (verification)", () => {
  const otherAk = deriveInsecureEcKey("cloister-test-other-seed", "intel:qe-attestation-key", "P-256");
  const cases: { name: string; quote: () => Uint8Array; anchors?: () => readonly TdxTrustAnchor[]; code: string }[] = [
    {
      name: "quote signature flipped",
      quote: () => flip(simulateTdxQuote(h, baseOptions()), SIGNATURE),
      code: "TDX_QUOTE_SIGNATURE_INVALID",
    },
    {
      name: "MRTD flipped",
      quote: () => flip(simulateTdxQuote(h, baseOptions()), BODY + 136),
      code: "TDX_QUOTE_SIGNATURE_INVALID",
    },
    {
      name: "RTMR3 flipped",
      quote: () => flip(simulateTdxQuote(h, baseOptions()), BODY + 328 + 3 * 48),
      code: "TDX_QUOTE_SIGNATURE_INVALID",
    },
    {
      name: "TDATTRIBUTES debug bit flipped",
      quote: () => flip(simulateTdxQuote(h, baseOptions()), BODY + 120),
      code: "TDX_QUOTE_SIGNATURE_INVALID",
    },
    {
      name: "REPORTDATA flipped",
      quote: () => flip(simulateTdxQuote(h, baseOptions()), BODY + 520),
      code: "TDX_QUOTE_SIGNATURE_INVALID",
    },
    {
      name: "header flipped (user_data)",
      quote: () => flip(simulateTdxQuote(h, baseOptions()), 30),
      code: "TDX_QUOTE_SIGNATURE_INVALID",
    },
    {
      name: "QE report flipped (MRENCLAVE)",
      quote: () => flip(simulateTdxQuote(h, baseOptions()), QE_REPORT + 64),
      code: "TDX_QE_REPORT_SIGNATURE_INVALID",
    },
    {
      name: "QE report signed by another PCK key than the leaf's",
      quote: () =>
        simulateTdxQuote(h, {
          ...baseOptions(),
          pck: { ...h.pck, key: deriveInsecureEcKey(h.seed, "intel:another-pck", "P-256") },
        }),
      code: "TDX_QE_REPORT_SIGNATURE_INVALID",
    },
    {
      name: "QE report does not bind the attestation key",
      quote: () => simulateTdxQuote(h, { ...baseOptions(), insecureQeReportData: new Uint8Array(64) }),
      code: "TDX_QE_BINDING_MISMATCH",
    },
    {
      name: "QE report from another SGX enclave (not Intel's TD QE), properly PCK-signed",
      quote: () => simulateTdxQuote(h, { ...baseOptions(), insecureQeMrSigner: new Uint8Array(32).fill(0x42) }),
      code: "TDX_QE_NOT_INTEL",
    },
    {
      name: "QE report binds the attestation key but its upper 32 REPORTDATA bytes are not zero",
      quote: () => {
        const bound = parseTdxQuote(simulateTdxQuote(h, baseOptions())).qeReport.reportData.subarray(0, 32);
        return simulateTdxQuote(h, {
          ...baseOptions(),
          insecureQeReportData: Uint8Array.from([...bound, ...new Uint8Array(32).fill(1)]),
        });
      },
      code: "TDX_QE_BINDING_MISMATCH",
    },
    {
      // No collateral here: only verify.ts's own check can refuse it (the QE identity's isvprodid is not read).
      name: "QE report from Intel's SGX QE (ISVPRODID 1), not the TD QE (2), properly PCK-signed",
      quote: () => simulateTdxQuote(h, { ...baseOptions(), insecureQeIsvProdId: 1 }),
      code: "TDX_QE_NOT_INTEL",
    },
    {
      // No collateral here: the refusal must not depend on the QE identity's ATTRIBUTES mask.
      name: "QE report from Intel's TD QE in debug mode (ATTRIBUTES.DEBUG), properly PCK-signed",
      quote: () =>
        simulateTdxQuote(h, { ...baseOptions(), insecureQeAttributes: fromHex("1700000000000000e700000000000000") }),
      code: "TDX_QE_DEBUG",
    },
    {
      name: "attestation key swapped for another (quote re-signed by it)",
      quote: () => {
        // QE report endorses the hierarchy's AK; the quote carries and is signed by another key.
        const honest = simulateTdxQuote(h, baseOptions());
        const forged = simulateTdxQuote(h, { ...baseOptions(), attestationKey: otherAk });
        const out = new Uint8Array(forged);
        out.set(honest.subarray(QE_REPORT, QE_REPORT + 384 + 64), QE_REPORT);
        return out;
      },
      code: "TDX_QE_BINDING_MISMATCH",
    },
    {
      name: "PCK leaf signed by another CA key",
      quote: () =>
        simulateTdxQuote(h, {
          ...baseOptions(),
          pck: issueInsecureSimulatedPckLeaf(h, { signer: deriveInsecureEcKey(h.seed, "intel:rogue-ca", "P-256") }),
        }),
      code: "CERT_SIGNATURE_INVALID",
    },
    {
      name: "PCK leaf expired",
      quote: () =>
        simulateTdxQuote(h, {
          ...baseOptions(),
          pck: issueInsecureSimulatedPckLeaf(h, {
            notAfter: new Date("2025-12-31T00:00:00Z"),
            keyLabel: "PCK-expired",
          }),
        }),
      code: "CERT_EXPIRED",
    },
    {
      name: "another seed's simulator root",
      quote: () => simulateTdxQuote(h, baseOptions()),
      anchors: () => insecureSimulatorAnchors("cloister-test-other-seed").tdx,
      code: "ROOT_NOT_TRUSTED",
    },
  ];
  it.each(cases)("$name → $code", async (c) => {
    expect(await codeOf(verifyBytes(c.quote(), c.anchors === undefined ? {} : { anchors: c.anchors() }))).toBe(c.code);
  });
});

describe("single-mutation rejection (appraisal of validly signed quotes)", () => {
  const now = { now: AT, expectedReportData: REPORT_DATA };
  const cases: {
    name: string;
    quote: () => SimulatedTdxQuoteOptions;
    policy?: Record<string, unknown>;
    code: string;
    field: string;
  }[] = [
    {
      name: "debug TD with debugAllowed false",
      quote: () => ({ ...baseOptions(), tdAttributes: fromHex("0100001000000000") }),
      code: "TDX_DEBUG_NOT_ALLOWED",
      field: "TDATTRIBUTES.DEBUG",
    },
    {
      name: "wrong MRTD",
      quote: () => ({ ...baseOptions(), mrtd: new Uint8Array(48).fill(0xee) }),
      code: "TDX_MRTD_NOT_ALLOWED",
      field: "MRTD",
    },
    {
      name: "wrong RTMR2",
      quote: () => ({ ...baseOptions(), rtmrs: [RTMRS[0], RTMRS[1], new Uint8Array(48), RTMRS[3]] }),
      code: "TDX_RTMR_MISMATCH",
      field: "RTMR2",
    },
    {
      name: "wrong MRSEAM",
      quote: () => ({ ...baseOptions(), mrseam: new Uint8Array(48).fill(1) }),
      code: "TDX_MRSEAM_NOT_ALLOWED",
      field: "MRSEAM",
    },
    {
      name: "XFAM not allowed",
      quote: () => ({ ...baseOptions(), xfam: fromHex("e700000000000000") }),
      code: "TDX_XFAM_NOT_ALLOWED",
      field: "XFAM",
    },
    {
      name: "XFAM fails the mask rule",
      quote: baseOptions,
      policy: { xfam: { mask: "ff00000000000000", value: "0300000000000000" } },
      code: "TDX_XFAM_NOT_ALLOWED",
      field: "XFAM",
    },
    {
      name: "wrong MRCONFIGID",
      quote: () => ({ ...baseOptions(), mrconfigid: new Uint8Array(48).fill(2) }),
      code: "TDX_MRCONFIGID_MISMATCH",
      field: "MRCONFIGID",
    },
    {
      name: "wrong MROWNER",
      quote: () => ({ ...baseOptions(), mrowner: new Uint8Array(48).fill(3) }),
      code: "TDX_MROWNER_MISMATCH",
      field: "MROWNER",
    },
    {
      name: "wrong MROWNERCONFIG",
      quote: () => ({ ...baseOptions(), mrownerconfig: new Uint8Array(48).fill(5) }),
      code: "TDX_MROWNERCONFIG_MISMATCH",
      field: "MROWNERCONFIG",
    },
    {
      name: "MRSERVICETD pinned to a service TD, but the quote (TDX 1.0 body layout) does not carry it",
      quote: baseOptions,
      policy: { mrservicetd: "ab".repeat(48) },
      code: "TDX_MRSERVICETD_MISMATCH",
      field: "MRSERVICETD",
    },
    {
      name: "MRSERVICETD pinned to none, the quote does not carry it, and the TD is MIGRATABLE",
      quote: () => ({ ...baseOptions(), tdAttributes: fromHex("0000003000000000") }),
      policy: { tdAttributes: { allowed: ["0000003000000000"] } },
      code: "TDX_MRSERVICETD_MISMATCH",
      field: "MRSERVICETD",
    },
    {
      name: "a TDX module not signed by Intel (MRSIGNERSEAM), whatever the policy",
      quote: () => ({ ...baseOptions(), insecureMrSignerSeam: new Uint8Array(48).fill(6) }),
      code: "TDX_MODULE_NOT_INTEL",
      field: "MRSIGNERSEAM",
    },
    {
      name: "a TDX module with SEAM attributes set (debug module), whatever the policy",
      quote: () => ({ ...baseOptions(), insecureSeamAttributes: fromHex("0000000000000080") }),
      code: "TDX_MODULE_NOT_INTEL",
      field: "SEAMATTRIBUTES",
    },
    {
      name: "TCB status required but no collateral was verified",
      quote: baseOptions,
      policy: { acceptedTcbStatuses: ["UpToDate"] },
      code: "TDX_TCB_STATUS_NOT_ACCEPTED",
      field: "tcbStatus",
    },
    {
      name: "TEE_TCB_SVN below minimum",
      quote: () => ({ ...baseOptions(), teeTcbSvn: fromHex("03000400000000000000000000000000") }),
      code: "TDX_TEE_TCB_SVN_TOO_LOW",
      field: "TEE_TCB_SVN[2]",
    },
    {
      name: "the QE's ISVSVN below minimumQeSvn (the simulated QE has 4)",
      quote: baseOptions,
      policy: { minimumQeSvn: 5 },
      code: "TDX_QE_SVN_TOO_LOW",
      field: "QE_REPORT.ISVSVN",
    },
    {
      name: "the PCK certificate's PCESVN below minimumPceSvn (the simulated PCK has 11)",
      quote: baseOptions,
      policy: { minimumPceSvn: 12 },
      code: "TDX_PCE_SVN_TOO_LOW",
      field: "PCK.PCESVN",
    },
    {
      name: "wrong REPORTDATA",
      quote: () => ({ ...baseOptions(), reportData: new Uint8Array(64).fill(4) }),
      code: "REPORT_DATA_MISMATCH",
      field: "REPORT_DATA",
    },
  ];
  it.each(cases)("$name → $code", async (c) => {
    const verified = await verifyBytes(simulateTdxQuote(h, c.quote()));
    const result = appraise(verified, policy({ tdx: tdxPolicyJson(MRSEAM, c.policy ?? {}) }), now);
    expect(result.ok).toBe(false);
    expect(result.violations.map((v) => [v.code, v.field])).toEqual([[c.code, c.field]]);
  });

  it.each([0, 15])("compares TEE_TCB_SVN byte %i with the minimum too", async (i) => {
    const verified = await verifyBytes(simulateTdxQuote(h, baseOptions())); // TEE_TCB_SVN 03 00 05 00 …
    const minimum = fromHex("03000500000000000000000000000000");
    minimum[i] = (verified.quote.body.teeTcbSvn[i] as number) + 1;
    const result = appraise(
      verified,
      policy({ tdx: tdxPolicyJson(MRSEAM, { minimumTeeTcbSvn: toHex(minimum) }) }),
      now,
    );
    expect(result.violations.map((v) => [v.code, v.field])).toEqual([["TDX_TEE_TCB_SVN_TOO_LOW", `TEE_TCB_SVN[${i}]`]]);
  });

  it("minimumQeSvn and minimumPceSvn are met by equal values, and compare the signed ones, not the header's", async () => {
    const quote = simulateTdxQuote(h, baseOptions());
    // The header's QE_SVN and PCE_SVN (not signed by the PCK key) are 0 in the simulated quote.
    expect([parseTdxQuote(quote).header.qeSvn, parseTdxQuote(quote).header.pceSvn]).toEqual([0, 0]);
    const p = policy({ tdx: tdxPolicyJson(MRSEAM, { minimumQeSvn: 4, minimumPceSvn: 11 }) });
    expect(appraise(await verifyBytes(quote), p, now).ok).toBe(true);
    const raised = policy({ tdx: tdxPolicyJson(MRSEAM, { minimumQeSvn: 5, minimumPceSvn: 12 }) });
    expect(appraise(await verifyBytes(quote), raised, now).violations).toEqual([
      { field: "QE_REPORT.ISVSVN", code: "TDX_QE_SVN_TOO_LOW", expected: ">= 5 (minimumQeSvn)", found: "4" },
      { field: "PCK.PCESVN", code: "TDX_PCE_SVN_TOO_LOW", expected: ">= 12 (minimumPceSvn)", found: "11" },
    ]);
  });

  it("a skipped minimumQeSvn or minimumPceSvn is not made: a quote an explicit minimum refuses passes a skip", async () => {
    const verified = await verifyBytes(simulateTdxQuote(h, baseOptions())); // QE ISVSVN 4, PCESVN 11
    const codes = (fields: Record<string, unknown>) =>
      appraise(verified, policy({ tdx: tdxPolicyJson(MRSEAM, fields) }), now).violations.map((v) => v.code);
    const raised = { minimumQeSvn: 5, minimumPceSvn: 12 };
    expect(codes(raised)).toEqual(["TDX_QE_SVN_TOO_LOW", "TDX_PCE_SVN_TOO_LOW"]);
    expect(codes({ ...raised, minimumQeSvn: { skip: { reason: "the QE is judged by its TCB status" } } })).toEqual([
      "TDX_PCE_SVN_TOO_LOW",
    ]);
    expect(codes({ ...raised, minimumPceSvn: { skip: { reason: "the PCE is judged by its TCB status" } } })).toEqual([
      "TDX_QE_SVN_TOO_LOW",
    ]);
  });

  it("TDX evidence under an SEV-SNP-only policy is rejected", async () => {
    const verified = await verifyBytes(simulateTdxQuote(h, baseOptions()));
    const snpOnly = policy({ snp: snpPolicyJson() });
    expect(appraise(verified, snpOnly, now).violations).toEqual([
      { field: "tee", code: "TEE_NOT_ACCEPTED", expected: "SEV-SNP (policy.tdx is null)", found: "TDX" },
    ]);
  });

  it("an XFAM mask rule that holds passes", async () => {
    const verified = await verifyBytes(simulateTdxQuote(h, baseOptions()));
    const p = policy({ tdx: tdxPolicyJson(MRSEAM, { xfam: { mask: "ff00000000000000", value: "e700000000000000" } }) });
    expect(appraise(verified, p, now).ok).toBe(true);
  });
});

const NO_SERVICE_TD_PIN = { skip: { reason: "test: TDATTRIBUTES judged alone" } };

describe("TDATTRIBUTES beyond DEBUG (policy tdAttributes)", () => {
  it("refuses a TD the host launched with other attributes than the policy pins (SEPT_VE_DISABLE cleared, MIGRATABLE set)", async () => {
    const quoteWith = (tdAttributes: Uint8Array) =>
      verifyTdxQuote({
        quote: parseTdxQuote(simulateTdxQuote(h, { ...baseOptions(), tdAttributes })),
        anchors,
        at: AT,
      });
    for (const attributes of ["0000000000000000", "0000003000000000"]) {
      const verified = await quoteWith(fromHex(attributes));
      // (MRSERVICETD unpinned: a migratable TD's v4 quote would also fail a pin of "none bound".)
      const result = appraise(verified, policy({ tdx: tdxPolicyJson(MRSEAM, { mrservicetd: NO_SERVICE_TD_PIN }) }), {
        now: AT,
        expectedReportData: REPORT_DATA,
      });
      expect(result.violations.map((v) => [v.code, v.field, v.found])).toEqual([
        ["TDX_ATTRIBUTES_NOT_ALLOWED", "TDATTRIBUTES", attributes],
      ]);
    }
    // A mask checks only the bits it names: here SEPT_VE_DISABLE (bit 28) set, MIGRATABLE (bit 29) clear.
    const migratable = await quoteWith(fromHex("0000003000000000"));
    const masked = policy({
      tdx: tdxPolicyJson(MRSEAM, {
        tdAttributes: { mask: "0000003000000000", value: "0000001000000000" },
      }),
    });
    expect(appraise(migratable, masked, { now: AT, expectedReportData: REPORT_DATA }).ok).toBe(false);
    const plain = await quoteWith(fromHex("0000001000000000"));
    expect(appraise(plain, masked, { now: AT, expectedReportData: REPORT_DATA }).ok).toBe(true);
  });
});

describe("RTMR sets (policy rtmrs.allowed)", () => {
  it("accepts a quote matching one whole allowed set, and refuses one mixing RTMRs of two sets", async () => {
    const verify = (rtmrs: [Uint8Array, Uint8Array, Uint8Array, Uint8Array]) =>
      verifyTdxQuote({ quote: parseTdxQuote(simulateTdxQuote(h, { ...baseOptions(), rtmrs })), anchors, at: AT });
    const hex = (r: Uint8Array) => toHex(r);
    const newKernel = new Uint8Array(48).fill(0x11);
    const newCmdline = new Uint8Array(48).fill(0x22);
    const oldSet = RTMRS.map(hex);
    const newSet = [hex(RTMRS[0]), hex(newKernel), hex(newCmdline), hex(RTMRS[3])];
    const both = policy({ tdx: tdxPolicyJson(MRSEAM, { rtmrs: { allowed: [oldSet, newSet] } }) });
    const appraised = async (rtmrs: [Uint8Array, Uint8Array, Uint8Array, Uint8Array]) =>
      appraise(await verify(rtmrs), both, { now: AT, expectedReportData: REPORT_DATA });
    expect((await appraised([RTMRS[0], RTMRS[1], RTMRS[2], RTMRS[3]])).ok).toBe(true);
    expect((await appraised([RTMRS[0], newKernel, newCmdline, RTMRS[3]])).ok).toBe(true);
    const mixed = await appraised([RTMRS[0], newKernel, RTMRS[2], RTMRS[3]]);
    expect(mixed.ok).toBe(false);
    expect(mixed.ok ? [] : mixed.violations.map((v) => [v.code, v.field])).toEqual([["TDX_RTMR_MISMATCH", "RTMR0..3"]]);
  });
});

describe("the PCK chain's validity at the verification time, each certificate", () => {
  it("refuses an expired PCK CA under a PCK leaf still valid, naming the CA", async () => {
    // The simulated PCK CA expires 2048-12-31 and the root 2049-12-31; this leaf outlives the CA.
    const pck = issueInsecureSimulatedPckLeaf(h, {
      notAfter: new Date("2049-06-01T00:00:00Z"),
      keyLabel: "PCK-outlives-CA",
    });
    const quote = simulateTdxQuote(h, { ...baseOptions(), pck });
    expect(await codeOf(verifyBytes(quote))).toBe("ACCEPTED");
    const at = new Date("2049-03-01T00:00:00Z");
    await expect(verifyBytes(quote, { at })).rejects.toMatchObject({
      code: "CERT_EXPIRED",
      message: expect.stringMatching(/^PCK CA certificate "CN=Intel SGX PCK Platform CA.*": expired 2048-12-31/),
    });
  });
});

describe("the PCK chain's names: a PCK leaf under a PCK Platform or Processor CA", () => {
  // Each certificate re-certified with its own key by its own issuer: the chain and every signature
  // verify, only the changed name or flag is wrong.
  const quoteWith = (chain: { leaf?: Uint8Array; ca?: Uint8Array }) =>
    simulateTdxQuote(
      { ...h, pckCa: chain.ca ?? h.pckCa },
      { ...baseOptions(), pck: { ...h.pck, certificate: chain.leaf ?? h.pck.certificate } },
    );
  const leafAs = (changes: Parameters<typeof reissueCertificate>[2]) =>
    reissueCertificate(h.pck.certificate, h.pckCaKey, changes);
  const basicConstraints = (value: Uint8Array | undefined) => (oid: string, old: Uint8Array) =>
    oid === X509_OID.basicConstraints ? value : old;

  it("accepts the unchanged re-issue, and a leaf under a PCK Processor CA", async () => {
    expect(await codeOf(verifyBytes(quoteWith({ leaf: leafAs({}) })))).toBe("ACCEPTED");
    const processor = intelName("Intel SGX PCK Processor CA");
    const ca = reissueCertificate(h.pckCa, h.rootKey, { subject: processor });
    expect(await codeOf(verifyBytes(quoteWith({ ca, leaf: leafAs({ issuer: processor }) })))).toBe("ACCEPTED");
  });

  it("refuses a leaf that is not a PCK certificate: another CN, a CA, no basicConstraints", async () => {
    const renamed = await rejection(
      verifyBytes(quoteWith({ leaf: leafAs({ subject: intelName("Intel SGX TCB Signing") }) })),
    );
    expect(renamed.code).toBe("TDX_PCK_CHAIN_NOT_PCK");
    expect(renamed.message).toMatch(
      /^PCK leaf certificate "CN=Intel SGX TCB Signing,OU=SIMULATED - NOT SECURE,.*": subject CN expected "Intel SGX PCK Certificate", found "Intel SGX TCB Signing"$/,
    );
    const asCa = leafAs({ extensions: basicConstraints(der.seq(der.boolean(true))) });
    await expect(verifyBytes(quoteWith({ leaf: asCa }))).rejects.toMatchObject({
      code: "TDX_PCK_CHAIN_NOT_PCK",
      message: expect.stringMatching(
        /^PCK leaf certificate "CN=Intel SGX PCK Certificate,.*": basicConstraints expected cA false, found cA true$/,
      ),
    });
    const unconstrained = leafAs({ extensions: basicConstraints(undefined) });
    await expect(verifyBytes(quoteWith({ leaf: unconstrained }))).rejects.toMatchObject({
      code: "TDX_PCK_CHAIN_NOT_PCK",
      message: expect.stringMatching(/: basicConstraints expected cA false, found no basicConstraints$/),
    });
  });

  it("refuses a CA the root issued that is not a PCK CA, naming both accepted CNs; and one that is not a CA", async () => {
    const other = intelName("Intel SGX TCB Signing CA");
    const ca = reissueCertificate(h.pckCa, h.rootKey, { subject: other });
    const error = await rejection(verifyBytes(quoteWith({ ca, leaf: leafAs({ issuer: other }) })));
    expect(error.code).toBe("TDX_PCK_CHAIN_NOT_PCK");
    expect(error.message).toMatch(
      /^PCK CA certificate "CN=Intel SGX TCB Signing CA,.*": subject CN expected "Intel SGX PCK Platform CA" or "Intel SGX PCK Processor CA", found "Intel SGX TCB Signing CA"$/,
    );
    // A PCK CA that is not a CA cannot issue the leaf: the chain check refuses it first.
    const notCa = reissueCertificate(h.pckCa, h.rootKey, { extensions: basicConstraints(der.seq()) });
    expect(await codeOf(verifyBytes(quoteWith({ ca: notCa })))).toBe("CERT_NOT_CA");
  });
});

describe("RTMR sets compare every RTMR they pin, RTMR3 included", () => {
  it.each([0, 1, 2, 3])("a quote differing from the only allowed set in RTMR%i alone is refused", async (i) => {
    const rtmrs = [...RTMRS] as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    rtmrs[i] = new Uint8Array(48).fill(0x33);
    const verified = await verifyTdxQuote({
      quote: parseTdxQuote(simulateTdxQuote(h, { ...baseOptions(), rtmrs })),
      anchors,
      at: AT,
    });
    const only = (set: string[]) => policy({ tdx: tdxPolicyJson(MRSEAM, { rtmrs: { allowed: [set] } }) });
    const now = { now: AT, expectedReportData: REPORT_DATA };
    expect(appraise(verified, only(rtmrs.map((r) => toHex(r))), now).ok).toBe(true);
    const result = appraise(verified, only(RTMRS.map((r) => toHex(r))), now);
    expect(result.ok ? [] : result.violations.map((v) => [v.code, v.field])).toEqual([
      ["TDX_RTMR_MISMATCH", "RTMR0..3"],
    ]);
  });
});

describe("tdAttributes leaves DEBUG to debugAllowed", () => {
  it("refuses a policy value with the DEBUG bit, naming the field", () => {
    const bad = tdxPolicyJson(MRSEAM, { tdAttributes: { allowed: ["0100001000000000"] } });
    expect(() => policy({ tdx: bad })).toThrow(/tdAttributes.*expected DEBUG \(bit 0\) clear: debugAllowed decides it/);
    const badMask = tdxPolicyJson(MRSEAM, { tdAttributes: { mask: "0100000000000000", value: "0000000000000000" } });
    expect(() => policy({ tdx: badMask })).toThrow(/DEBUG \(bit 0\)/);
  });

  it("with debugAllowed, judges the other bits and reports the quote's own value", async () => {
    const verified = await verifyTdxQuote({
      quote: parseTdxQuote(simulateTdxQuote(h, { ...baseOptions(), tdAttributes: fromHex("0100003000000000") })),
      anchors,
      at: AT,
    });
    const tdx = tdxPolicyJson(MRSEAM, { debugAllowed: true, mrservicetd: NO_SERVICE_TD_PIN });
    const result = appraise(verified, policy({ tdx }), {
      now: AT,
      expectedReportData: REPORT_DATA,
    });
    expect(result.violations.map((v) => [v.code, v.found])).toEqual([
      ["TDX_ATTRIBUTES_NOT_ALLOWED", "0100003000000000"],
    ]);
  });
});
