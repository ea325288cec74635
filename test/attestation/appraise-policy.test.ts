/** The attestation policy schema: strict, every field required, skips explicit, errors name the path. */
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { ConfigurationError } from "../../attestation/errors.ts";
import { parseAttestationPolicy } from "../../attestation/policy.ts";
import { thrownBy } from "../helpers/rejections.ts";
import { snpPolicyJson, tdxPolicyJson } from "./sim-helpers.ts";

const MRSEAM = "ab".repeat(48);

function base(): Record<string, unknown> {
  return {
    version: 1,
    trustSimulator: false,
    maximumVerificationSkewSeconds: 300,
    snp: snpPolicyJson(),
    tdx: tdxPolicyJson(MRSEAM),
    azure: null,
  };
}

function without(obj: Record<string, unknown>, key: string): Record<string, unknown> {
  const { [key]: _, ...rest } = obj;
  return rest;
}

/** The ConfigurationError parseAttestationPolicy throws for `input`. */
function errorOf(input: unknown): ConfigurationError {
  return thrownBy(() => parseAttestationPolicy(input), ConfigurationError);
}

describe("parseAttestationPolicy", () => {
  it("accepts a complete policy, from JSON text too, and normalises hex to lower case", () => {
    const upper = { ...base(), snp: snpPolicyJson({ measurements: ["AB".repeat(48)] }) };
    const p = parseAttestationPolicy(JSON.stringify(upper));
    expect(p.snp?.measurements).toEqual(["ab".repeat(48)]);
    expect(p.tdx?.rtmrs).toHaveLength(4);
  });

  const snp = snpPolicyJson();
  const tdx = tdxPolicyJson(MRSEAM);
  const cases: [string, unknown, string][] = [
    ["missing top-level field", without(base(), "trustSimulator"), "trustSimulator: required field is missing"],
    [
      "missing snp field",
      { ...base(), snp: without(snp, "debugAllowed") },
      "snp.debugAllowed: required field is missing",
    ],
    [
      "missing nested field",
      { ...base(), snp: { ...snp, minimumTcb: { bootloader: 0, tee: 0, snp: 0, fmc: 0 } } },
      "snp.minimumTcb.microcode: required field is missing",
    ],
    ["missing skip-able field", { ...base(), tdx: without(tdx, "mrowner") }, "tdx.mrowner: required field is missing"],
    [
      "a TDX policy from before MRSERVICETD was checked",
      { ...base(), tdx: without(tdx, "mrservicetd") },
      "tdx.mrservicetd: required field is missing (a TDX policy written before MRSERVICETD was checked: pin it, run `cloister policy init` again, or skip it with a reason)",
    ],
    [
      "extra top-level field",
      { ...base(), allowEverything: true },
      "allowEverything: expected no such field, found true",
    ],
    [
      "extra snp field",
      { ...base(), snp: { ...snp, checkNothing: true } },
      "snp.checkNothing: expected no such field, found true",
    ],
    [
      // It said only "mrtd: expected no such field" (a client policy's own fields said where they belong).
      "a TDX field at the top: said where it belongs",
      { ...base(), mrtd: [] },
      "mrtd: expected no such field here (it belongs in tdx.mrtd), found an empty array",
    ],
    [
      "a field of both TEE sections at the top: both named",
      { ...base(), debugAllowed: false },
      "debugAllowed: expected no such field here (it belongs in snp.debugAllowed or tdx.debugAllowed), found false",
    ],
    [
      "extra field inside a skip",
      { ...base(), snp: { ...snp, hostData: { skip: { reason: "x", until: "never" } } } },
      "snp.hostData.skip.until: expected no such field, found a string of 5 characters",
    ],
    [
      "wrong type",
      { ...base(), snp: { ...snp, debugAllowed: "false" } },
      "snp.debugAllowed: expected boolean, found a string of 5 characters",
    ],
    ["wrong version", { ...base(), version: 2 }, "version:"],
    ["bad hex length", { ...base(), snp: { ...snp, measurements: ["ab"] } }, "snp.measurements[0]: expected 48 bytes"],
    ["empty allow-list", { ...base(), tdx: { ...tdx, mrtd: [] } }, "tdx.mrtd:"],
    [
      "skip without a reason",
      { ...base(), snp: { ...snp, hostData: { skip: { reason: " " } } } },
      "snp.hostData.skip.reason",
    ],
    ["skip as a bare flag", { ...base(), snp: { ...snp, hostData: { skip: true } } }, "snp.hostData.skip"],
    ["three RTMRs", { ...base(), tdx: { ...tdx, rtmrs: (tdx.rtmrs as string[]).slice(0, 3) } }, "tdx.rtmrs"],
    ["VMPL out of range", { ...base(), snp: { ...snp, allowedVmpls: [4] } }, "snp.allowedVmpls[0]"],
    ["unknown signing key", { ...base(), snp: { ...snp, signingKeys: ["ark"] } }, "snp.signingKeys[0]"],
    [
      "a guest POLICY bit that cannot be required",
      { ...base(), snp: { ...snp, requireGuestPolicy: ["DEBUG"] } },
      "snp.requireGuestPolicy[0]",
    ],
    [
      "an empty requirePlatformInfo",
      { ...base(), snp: { ...snp, requirePlatformInfo: [] } },
      "snp.requirePlatformInfo: expected an array of at least 1 item",
    ],
    [
      "a minimumQeSvn beyond 16 bits",
      { ...base(), tdx: { ...tdx, minimumQeSvn: 65_536 } },
      "tdx.minimumQeSvn: expected a number <= 65535, found 65536",
    ],
    [
      "a negative minimumQeSvn",
      { ...base(), tdx: { ...tdx, minimumQeSvn: -1 } },
      "tdx.minimumQeSvn: expected a number >= 0, found -1",
    ],
    [
      "a fractional minimumQeSvn",
      { ...base(), tdx: { ...tdx, minimumQeSvn: 4.5 } },
      'tdx.minimumQeSvn: expected a whole number 0..65535 or a skip { "skip": { "reason": "…" } }, found 4.5',
    ],
    [
      "a negative minimumPceSvn",
      { ...base(), tdx: { ...tdx, minimumPceSvn: -1 } },
      "tdx.minimumPceSvn: expected a number >= 0, found -1",
    ],
    [
      "a minimumPceSvn beyond 16 bits",
      { ...base(), tdx: { ...tdx, minimumPceSvn: 65_536 } },
      "tdx.minimumPceSvn: expected a number <= 65535, found 65536",
    ],
    [
      "an empty rejectedAdvisoryIds",
      { ...base(), tdx: { ...tdx, rejectedAdvisoryIds: [] } },
      "tdx.rejectedAdvisoryIds: expected an array of at least 1 item",
    ],
    [
      "an advisory ID that is not one",
      { ...base(), tdx: { ...tdx, rejectedAdvisoryIds: ["INTEL-SA-00837", "INTEL SA 00615"] } },
      "tdx.rejectedAdvisoryIds[1]: expected an advisory ID such as INTEL-SA-00837",
    ],
    [
      "a mitigation bit beyond the 64-bit vectors",
      { ...base(), snp: { ...snp, requireMitigations: [0, 64] } },
      "snp.requireMitigations[1]: expected a number <= 63, found 64",
    ],
    [
      "a negative mitigation bit",
      { ...base(), snp: { ...snp, requireMitigations: [-1] } },
      "snp.requireMitigations[0]: expected a number >= 0, found -1",
    ],
    [
      "an empty requireMitigations",
      { ...base(), snp: { ...snp, requireMitigations: [] } },
      "snp.requireMitigations: expected an array of at least 1 item",
    ],
    [
      "a mitigation vector written as a number rather than its bits",
      { ...base(), snp: { ...snp, requireMitigations: 11 } },
      'snp.requireMitigations: expected a list of mitigation bit numbers (0..63) or a skip { "skip": { "reason": "…" } }, found 11',
    ],
    [
      "minimumFirmware without its build",
      { ...base(), snp: { ...snp, minimumFirmware: { major: 1, minor: 55 } } },
      "snp.minimumFirmware.build",
    ],
    ["unknown TCB status", { ...base(), tdx: { ...tdx, acceptedTcbStatuses: ["Fine"] } }, "tdx.acceptedTcbStatuses[0]"],
    ["nothing accepted", { ...base(), snp: null, tdx: null }, "at least one of snp, tdx"],
    ["undefined TEE section", without(base(), "tdx"), "tdx: required field is missing"],
    ["not JSON", "{", "not valid JSON"],
    // Every bound and every strict object, one field at a time.
    [
      "a field beside a skip",
      { ...base(), snp: { ...snp, hostData: { skip: { reason: "x" }, until: "never" } } },
      "snp.hostData.until: expected no such field, found a string of 5 characters",
    ],
    [
      "hex longer than the field",
      { ...base(), snp: { ...snp, measurements: ["ab".repeat(49)] } },
      "snp.measurements[0]: expected 48 bytes as 96 hex digits, found a string of 98 characters",
    ],
    [
      "hex with a prefix",
      { ...base(), snp: { ...snp, measurements: [`0x${"ab".repeat(48)}`] } },
      "snp.measurements[0]: expected 48 bytes as 96 hex digits, found a string of 98 characters",
    ],
    [
      "a TCB component above 255",
      { ...base(), snp: { ...snp, minimumTcb: { bootloader: 0, tee: 0, snp: 0, microcode: 256, fmc: 0 } } },
      "snp.minimumTcb.microcode: expected a number <= 255, found 256",
    ],
    [
      "a negative TCB component",
      { ...base(), snp: { ...snp, minimumTcb: { bootloader: 0, tee: -1, snp: 0, microcode: 0, fmc: 0 } } },
      "snp.minimumTcb.tee: expected a number >= 0, found -1",
    ],
    [
      "a fractional TCB component",
      { ...base(), snp: { ...snp, minimumTcb: { bootloader: 0, tee: 0, snp: 1.5, microcode: 0, fmc: 0 } } },
      "snp.minimumTcb.snp: expected int, found 1.5",
    ],
    [
      "an unknown TCB component",
      { ...base(), snp: { ...snp, minimumTcb: { bootloader: 0, tee: 0, snp: 0, microcode: 0, fmc: 0, sev: 1 } } },
      "snp.minimumTcb.sev: expected no such field, found 1",
    ],
    [
      "no VMPL allowed",
      { ...base(), snp: { ...snp, allowedVmpls: [] } },
      "snp.allowedVmpls: expected an array of at least 1 item, found an empty array",
    ],
    [
      "a negative VMPL",
      { ...base(), snp: { ...snp, allowedVmpls: [-1] } },
      "snp.allowedVmpls[0]: expected a number >= 0, found -1",
    ],
    [
      "a negative minimumGuestSvn",
      { ...base(), snp: { ...snp, minimumGuestSvn: -1 } },
      "snp.minimumGuestSvn: expected a number >= 0, found -1",
    ],
    [
      "a minimumGuestSvn above 32 bits",
      { ...base(), snp: { ...snp, minimumGuestSvn: 2 ** 32 } },
      "snp.minimumGuestSvn: expected a number <= 4294967295, found 4294967296",
    ],
    [
      "no product allowed",
      { ...base(), snp: { ...snp, allowedProducts: [] } },
      "snp.allowedProducts: expected an array of at least 1 item, found an empty array",
    ],
    [
      "no signing key allowed",
      { ...base(), snp: { ...snp, signingKeys: [] } },
      "snp.signingKeys: expected an array of at least 1 item, found an empty array",
    ],
    [
      "minimumAbi with a build",
      { ...base(), snp: { ...snp, minimumAbi: { major: 1, minor: 0, build: 1 } } },
      "snp.minimumAbi.build: expected no such field, found 1",
    ],
    [
      "minimumFirmware with a patch level",
      { ...base(), snp: { ...snp, minimumFirmware: { major: 1, minor: 0, build: 1, patch: 1 } } },
      "snp.minimumFirmware.patch: expected no such field, found 1",
    ],
    [
      "an empty requireGuestPolicy",
      { ...base(), snp: { ...snp, requireGuestPolicy: [] } },
      "snp.requireGuestPolicy: expected an array of at least 1 item, found an empty array",
    ],
    [
      "an empty XFAM allow-list",
      { ...base(), tdx: { ...tdx, xfam: { allowed: [] } } },
      "tdx.xfam.allowed: expected an array of at least 1 item, found an empty array",
    ],
    [
      "an XFAM allow-list with a mask beside it",
      { ...base(), tdx: { ...tdx, xfam: { allowed: ["e702060000000000"], mask: "ff00000000000000" } } },
      "tdx.xfam.mask: expected no such field, found a string of 16 characters",
    ],
    [
      "an XFAM mask rule with another field",
      { ...base(), tdx: { ...tdx, xfam: { mask: "ff00000000000000", value: "e700000000000000", note: 1 } } },
      "tdx.xfam.note: expected no such field, found 1",
    ],
    // A value of the type of several forms of a union (objects of different fields): the form whose
    // fields it has, when one does; else the forms in words, never zod's raw text.
    [
      "an XFAM mask rule without its value",
      { ...base(), tdx: { ...tdx, xfam: { mask: "ff00000000000000" } } },
      "tdx.xfam.value: required field is missing",
    ],
    [
      "an XFAM with the fields of two forms",
      { ...base(), tdx: { ...tdx, xfam: { allowed: ["e702060000000000"], skip: { reason: "x" } } } },
      'tdx.xfam: expected an allow-list { "allowed": [8 bytes as 16 hex digits, …] }, a rule { "mask", "value" } (8 bytes as 16 hex digits each) or a skip { "skip": { "reason": "…" } }, found an object with keys allowed, skip',
    ],
    [
      "an empty TDATTRIBUTES rule",
      { ...base(), tdx: { ...tdx, tdAttributes: {} } },
      'tdx.tdAttributes: expected an allow-list { "allowed": [8 bytes as 16 hex digits, …] }, a rule { "mask", "value" } (8 bytes as 16 hex digits each) or a skip { "skip": { "reason": "…" } }, found an empty object',
    ],
    [
      "a TCB status object without its statuses",
      { ...base(), tdx: { ...tdx, acceptedTcbStatuses: { minimumTcbEvaluationDataNumber: 1 } } },
      "tdx.acceptedTcbStatuses.statuses: required field is missing",
    ],
    [
      "TCB statuses as a number",
      { ...base(), tdx: { ...tdx, acceptedTcbStatuses: 5 } },
      'tdx.acceptedTcbStatuses: expected a list of TCB statuses, { "statuses", "minimumTcbEvaluationDataNumber" } or a skip { "skip": { "reason": "…" } }, found 5',
    ],
    [
      "RTMRs as a number",
      { ...base(), tdx: { ...tdx, rtmrs: 5 } },
      'tdx.rtmrs: expected 4 values, each 48 bytes as 96 hex digits or a skip { "skip": { "reason": "…" } }, or { "allowed": [[4 such values], …] }, found 5',
    ],
    [
      "host data as a number",
      { ...base(), snp: { ...snp, hostData: 5 } },
      'snp.hostData: expected 32 bytes as 64 hex digits or a skip { "skip": { "reason": "…" } }, found 5',
    ],
    [
      "measurements as null",
      { ...base(), snp: { ...snp, measurements: null } },
      'snp.measurements: expected an allow-list [48 bytes as 96 hex digits, …] or a skip { "skip": { "reason": "…" } }, found null',
    ],
    [
      "no RTMR set allowed",
      { ...base(), tdx: { ...tdx, rtmrs: { allowed: [] } } },
      "tdx.rtmrs.allowed: expected an array of at least 1 item, found an empty array",
    ],
    [
      "five RTMRs",
      { ...base(), tdx: { ...tdx, rtmrs: [...(tdx.rtmrs as string[]), "00".repeat(48)] } },
      "tdx.rtmrs: expected an array of at most 4 items, found an array of 5 items",
    ],
    [
      "no TCB status accepted",
      { ...base(), tdx: { ...tdx, acceptedTcbStatuses: [] } },
      "tdx.acceptedTcbStatuses: expected an array of at least 1 item, found an empty array",
    ],
    [
      "no TCB status accepted, in the object form",
      { ...base(), tdx: { ...tdx, acceptedTcbStatuses: { statuses: [], minimumTcbEvaluationDataNumber: 1 } } },
      "tdx.acceptedTcbStatuses.statuses: expected an array of at least 1 item, found an empty array",
    ],
    [
      "a negative minimumTcbEvaluationDataNumber",
      {
        ...base(),
        tdx: { ...tdx, acceptedTcbStatuses: { statuses: ["UpToDate"], minimumTcbEvaluationDataNumber: -1 } },
      },
      "tdx.acceptedTcbStatuses.minimumTcbEvaluationDataNumber: expected a number >= 0, found -1",
    ],
    [
      "another field in the TCB status object",
      {
        ...base(),
        tdx: {
          ...tdx,
          acceptedTcbStatuses: { statuses: ["UpToDate"], minimumTcbEvaluationDataNumber: 1, maximum: 2 },
        },
      },
      "tdx.acceptedTcbStatuses.maximum: expected no such field, found 2",
    ],
    [
      "a skew above a day",
      { ...base(), maximumVerificationSkewSeconds: 86_401 },
      "maximumVerificationSkewSeconds: expected a number <= 86400, found 86401",
    ],
    [
      "a negative skew",
      { ...base(), maximumVerificationSkewSeconds: -1 },
      "maximumVerificationSkewSeconds: expected a number >= 0, found -1",
    ],
    [
      "TDX debugAllowed absent",
      { ...base(), tdx: without(tdx, "debugAllowed") },
      "tdx.debugAllowed: required field is missing",
    ],
  ];
  it.each(cases)("rejects %s, naming the path", (_name, input, message) => {
    const error = errorOf(input);
    expect(error.code).toBe("POLICY_INVALID");
    expect(error.stage).toBe("configuration");
    expect(error.message).toContain(message);
  });

  it("accepts each bound itself", () => {
    const p = parseAttestationPolicy({
      ...base(),
      maximumVerificationSkewSeconds: 86_400,
      snp: {
        ...snp,
        minimumGuestSvn: 2 ** 32 - 1,
        allowedVmpls: [0, 1, 2, 3],
        minimumTcb: { bootloader: 255, tee: 255, snp: 255, microcode: 255, fmc: 255 },
      },
      tdx: { ...tdx, acceptedTcbStatuses: { statuses: ["UpToDate"], minimumTcbEvaluationDataNumber: 2 ** 32 - 1 } },
    });
    expect(p.maximumVerificationSkewSeconds).toBe(86_400);
    expect(p.snp?.minimumGuestSvn).toBe(2 ** 32 - 1);
    expect(
      parseAttestationPolicy({ ...base(), maximumVerificationSkewSeconds: 0 }).maximumVerificationSkewSeconds,
    ).toBe(0);
  });

  it("names an unknown field only when it looks like a field name (a pasted secret as a key is not shown)", () => {
    const error = errorOf({ ...base(), snp: { ...snp, "SECRET-k=abc": 1, typo: 1 } });
    expect(error.message).toContain("snp.typo: expected no such field, found 1");
    expect(error.message).toContain(
      "snp: expected no such field, found 1 field (names not shown: not plain identifiers)",
    );
    expect(error.message).not.toContain("SECRET");
  });

  it("keeps no input in the error, its cause included: a misplaced secret is never printed by inspecting it", () => {
    const secret = "sk-live-0123456789abcdefSECRET";
    for (const [input, message] of [
      [{ ...base(), trustSimulator: secret }, "trustSimulator: expected boolean, found a string of 30 characters"],
      [{ ...base(), snp: { ...snp, hostData: secret } }, "snp.hostData: expected 32 bytes as 64 hex digits"],
      [
        { ...base(), tdx: { ...tdx, apiKey: secret } },
        "tdx.apiKey: expected no such field, found a string of 30 characters",
      ],
      [
        { ...base(), [secret]: 1 },
        "(policy): expected no such field, found 1 field (names not shown: not plain identifiers)",
      ],
    ] as const) {
      const error = errorOf(input);
      expect(error.message).toContain(message);
      expect(inspect(error, { depth: 10 })).not.toContain(secret);
      // From JSON text too.
      expect(inspect(errorOf(JSON.stringify(input)), { depth: 10 })).not.toContain(secret);
    }
  });

  it("lists every problem at once", () => {
    const error = errorOf({ ...without(base(), "version"), extra: 1, snp: { ...snp, smtAllowed: 1 } });
    expect(error.message).toContain("version: required field is missing");
    expect(error.message).toContain("extra: expected no such field, found 1");
    expect(error.message).toContain("snp.smtAllowed:");
    // A missing field adds, once, how to turn a check off; other problems do not.
    expect(error.message.split("every field is required")).toHaveLength(2);
    expect(error.message).toMatch(
      / \(every field is required; a check is turned off explicitly with \{ "skip": \{ "reason": "…" \} \}\)$/,
    );
    expect(errorOf({ ...base(), version: 2 }).message).toBe("attestation policy: version: expected 1, found 2");
  });

  it("lists every problem inside the alternative of a union that the value's type matched", () => {
    expect(errorOf({ ...base(), snp: { ...snp, hostData: { skip: { reason: "" }, until: 1 } } }).message).toBe(
      "attestation policy: snp.hostData.skip.reason: expected a non-empty reason (a skipped check needs one), found a string of 0 characters; snp.hostData.until: expected no such field, found 1",
    );
  });

  it("lists every problem inside the matched alternative when one of them is a wrong type", () => {
    // zod reports these as a union no alternative passed (not as the alternative's problems alone),
    // and its own summary of the union names only the first problem.
    expect(errorOf({ ...base(), snp: { ...snp, hostData: { skip: { reason: 5 }, until: 1 } } }).message).toBe(
      "attestation policy: snp.hostData.skip.reason: expected string, found 5; snp.hostData.until: expected no such field, found 1",
    );
    expect(errorOf({ ...base(), snp: { ...snp, measurements: [5, "ab"] } }).message).toBe(
      "attestation policy: snp.measurements[0]: expected string, found 5; snp.measurements[1]: expected 48 bytes as 96 hex digits, found a string of 2 characters",
    );
  });
});

describe("the later hardening fields are required: absent is refused, a check turned off is an explicit value", () => {
  const SKIP = 'a skip { "skip": { "reason": "…" } }';
  const skip = (reason: string) => ({ skip: { reason } });
  // Every one of them given explicitly: booleans as true/false, the others skipped with a reason.
  const explicit = {
    snp: {
      cxlAllowed: false,
      minimumAbi: skip("no ABI minimum for this deployment"),
      minimumFirmware: skip("minimumTcb bounds the firmware"),
      requireGuestPolicy: skip("no guest POLICY bits required"),
      requirePlatformInfo: skip("no PLATFORM_INFO bits required"),
      tioAllowed: true,
      requireMitigations: skip("no mitigation required"),
    },
    tdx: {
      minimumQeSvn: skip("acceptedTcbStatuses judges the QE"),
      minimumPceSvn: skip("acceptedTcbStatuses judges the PCE"),
      rejectedAdvisoryIds: skip("acceptedTcbStatuses judges the platform"),
    },
  } as const;
  const complete = () => ({
    ...base(),
    snp: { ...snpPolicyJson(), ...explicit.snp },
    tdx: { ...tdxPolicyJson(MRSEAM), ...explicit.tdx },
  });

  it("accepts each of them explicit: true/false, or a skip with its reason, kept as written", () => {
    const p = parseAttestationPolicy(complete());
    expect(p.snp).toMatchObject(explicit.snp);
    expect(p.tdx).toMatchObject(explicit.tdx);
    expect(
      parseAttestationPolicy({ ...complete(), snp: { ...complete().snp, cxlAllowed: true, tioAllowed: false } }).snp,
    ).toMatchObject({ cxlAllowed: true, tioAllowed: false });
  });

  it.each([
    [
      "snp",
      "cxlAllowed",
      "expected true or false (a policy written before cxlAllowed was required refused CXL_ALLOW without it: false keeps that verdict)",
    ],
    [
      "snp",
      "tioAllowed",
      "expected true or false (a policy written before tioAllowed was required did not check TIO_EN without it: true keeps that verdict)",
    ],
    ["snp", "minimumAbi", `expected { "major", "minor" } (0..255 each) or ${SKIP}`],
    ["snp", "minimumFirmware", `expected { "major", "minor", "build" } (0..255 each) or ${SKIP}`],
    [
      "snp",
      "requireGuestPolicy",
      `expected a list of guest POLICY bits [SINGLE_SOCKET, MEM_AES_256_XTS, RAPL_DIS, CIPHERTEXT_HIDING, PAGE_SWAP_DISABLE] or ${SKIP}`,
    ],
    [
      "snp",
      "requirePlatformInfo",
      `expected a list of PLATFORM_INFO bits [TSME_EN, ECC_EN, RAPL_DIS, CIPHERTEXT_HIDING_EN, ALIAS_CHECK_COMPLETE] or ${SKIP}`,
    ],
    ["snp", "requireMitigations", `expected a list of mitigation bit numbers (0..63) or ${SKIP}`],
    ["tdx", "minimumQeSvn", `expected a whole number 0..65535 or ${SKIP}`],
    ["tdx", "minimumPceSvn", `expected a whole number 0..65535 or ${SKIP}`],
    ["tdx", "rejectedAdvisoryIds", `expected a list of advisory IDs such as ["INTEL-SA-00837"] or ${SKIP}`],
  ] as const)(
    "refuses a policy without %s.%s, naming the path, the forms expected and that it is absent",
    (section, field, expected) => {
      const policy = complete();
      const error = errorOf({ ...policy, [section]: without(policy[section], field) });
      expect(error.code).toBe("POLICY_INVALID");
      expect(error.message).toContain(`${section}.${field}: required field is missing, ${expected}`);
      // Azure's sections are the same schema: the path names them there.
      const azure = {
        ...policy,
        snp: null,
        tdx: null,
        azure: {
          snp: section === "snp" ? without(policy.snp, field) : null,
          tdx: section === "tdx" ? without({ ...policy.tdx, mrtd: ["ab".repeat(48)] }, field) : null,
          pcrs: { "4": ["cd".repeat(32)] },
          secureBootRequired: true,
          consoleAllowed: false,
        },
      };
      expect(errorOf(azure).message).toContain(`azure.${section}.${field}: required field is missing, ${expected}`);
    },
  );
});
