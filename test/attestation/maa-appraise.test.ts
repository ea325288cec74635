/**
 * Appraisal of MAA tokens against a policy's `maa` section (attestation/appraise.ts), its schema
 * (attestation/policy.ts) and `verify-evidence --tee maa --policy` (attestation/azure/cli-verify.ts).
 *
 * The one public sevsnpvm token (test/fixtures/attestation/azure/maa/) is signed by a key in no key
 * set published with it, so its signature cannot be verified here (maa.test.ts: MAA_UNKNOWN_KEY).
 * Its claims, exactly as MAA wrote them, are signed again with the test key of
 * test/helpers/maa-token.ts, and verified at the fixture's own time.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { appraise } from "../../attestation/appraise.ts";
import { verifyEvidence } from "../../attestation/azure/cli-verify.ts";
import { verifyMaaToken } from "../../attestation/azure/maa.ts";
import { parseAttestationPolicy, type Skip } from "../../attestation/policy.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { parseClientPolicy } from "../../client/policy.ts";
import { thrownCode } from "../helpers/attestation.ts";
import { testMaaSigner } from "../helpers/maa-token.ts";
import { tdxPolicyJson } from "./sim-helpers.ts";

const FIXTURE = new URL(
  "../fixtures/attestation/azure/maa/maa-sevsnpvm-sharedweu-test-2025-04-08.jwt",
  import.meta.url,
);
const CLAIMS: Readonly<Record<string, unknown>> = decodeJwt(readFileSync(FIXTURE, "utf8"));
/** Within the fixture's iat 04:15 → exp 12:15. */
const AT = new Date("2025-04-08T05:00:00Z");
const ISSUER = "https://sharedweu.weu.test.attest.azure.net";
const MEASUREMENT = "02c3b0d5bf1d256fa4e3b5deefc07b55ff2f7029085ed350f60959140a1a51f1310753ba5ab2c03a0536b1c0c193af47";
const HOST_DATA = "73973b78d70cc68353426de188db5dfc57e5b766e399935fb73a61127ea26d20";
const ID_KEY_DIGEST =
  "812cef5567e78efca073fde8894b180eaaef3b56084090c64782b5ad536bcf103d194914b229caac5c5408afce91fc86";
const OTHER48 = "ab".repeat(48);

/** A policy pinning every claim of the fixture token that its maa section can check. */
function fixturePolicy() {
  return {
    version: 1,
    trustSimulator: false,
    maximumVerificationSkewSeconds: 300,
    snp: null,
    tdx: null,
    azure: null,
    maa: {
      issuers: [ISSUER],
      attestationTypes: ["sevsnpvm"],
      snp: {
        debugAllowed: false,
        migrationAllowed: false,
        smtAllowed: true,
        allowedVmpls: [0],
        minimumTcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 },
        measurements: [MEASUREMENT],
        hostData: HOST_DATA,
        idKeyDigests: [ID_KEY_DIGEST],
        // The token's digest is all zero: no author key signed its ID block.
        authorKeyDigests: { skip: { reason: "no author key in the ID block" } } as string[] | Skip,
        minimumGuestSvn: 2,
      },
    },
  };
}
type FixturePolicy = ReturnType<typeof fixturePolicy>;
type MaaSnp = FixturePolicy["maa"]["snp"];

/** A token of `claims`, signed by a test MAA key and verified at AT. */
async function verifiedToken(claims: Readonly<Record<string, unknown>> = CLAIMS) {
  const { jwks, sign } = await testMaaSigner();
  return verifyMaaToken(await sign(claims), { jwks, at: AT, expectedIssuer: null });
}

async function appraised(
  policy: unknown,
  claims: Readonly<Record<string, unknown>> = CLAIMS,
): Promise<ReturnType<typeof appraise>> {
  return appraise(await verifiedToken(claims), parseAttestationPolicy(policy), { now: AT, expectedReportData: null });
}

const withSnp = (change: Partial<MaaSnp>) => {
  const p = fixturePolicy();
  return { ...p, maa: { ...p.maa, snp: { ...p.maa.snp, ...change } } };
};
const withClaims = (change: Record<string, unknown>) => ({ ...CLAIMS, ...change });
const tcb = (change: Partial<MaaSnp["minimumTcb"]>) =>
  withSnp({ minimumTcb: { ...fixturePolicy().maa.snp.minimumTcb, ...change } });

describe("MAA appraisal of the real sevsnpvm token's claims", () => {
  it("accepts them under a policy pinning them", async () => {
    const result = await appraised(fixturePolicy());
    expect(result).toEqual({ ok: true, simulated: false, tee: "maa", violations: [] });
  });

  // name, policy, claims, the one violation [field, code, expected, found]
  const cases: [string, unknown, Record<string, unknown>, [string, string, string, string]][] = [
    [
      "issuers",
      { ...fixturePolicy(), maa: { ...fixturePolicy().maa, issuers: ["https://sharedeus.eus.attest.azure.net"] } },
      CLAIMS,
      ["iss", "MAA_ISSUER_NOT_ALLOWED", "https://sharedeus.eus.attest.azure.net", JSON.stringify(ISSUER)],
    ],
    // Another TEE's token, and a type that only begins with the allowed one (compared exactly).
    ...(["tdxvm", "sgx", "sevsnpvm2"] as const).map((type): (typeof cases)[number] => [
      `attestationTypes (${type})`,
      fixturePolicy(),
      withClaims({ "x-ms-attestation-type": type }),
      ["x-ms-attestation-type", "MAA_ATTESTATION_TYPE_NOT_ALLOWED", "sevsnpvm", JSON.stringify(type)],
    ]),
    [
      "debugAllowed",
      fixturePolicy(),
      withClaims({ "x-ms-sevsnpvm-is-debuggable": true }),
      ["x-ms-sevsnpvm-is-debuggable", "SNP_DEBUG_NOT_ALLOWED", "false (debugAllowed: false)", "true"],
    ],
    [
      "migrationAllowed",
      fixturePolicy(),
      withClaims({ "x-ms-sevsnpvm-migration-allowed": true }),
      ["x-ms-sevsnpvm-migration-allowed", "SNP_MIGRATION_AGENT_NOT_ALLOWED", "false (migrationAllowed: false)", "true"],
    ],
    [
      "smtAllowed",
      withSnp({ smtAllowed: false }),
      CLAIMS,
      ["x-ms-sevsnpvm-smt-allowed", "SNP_SMT_NOT_ALLOWED", "false (smtAllowed: false)", "true"],
    ],
    [
      "allowedVmpls",
      withSnp({ allowedVmpls: [1, 2] }),
      CLAIMS,
      ["x-ms-sevsnpvm-vmpl", "SNP_VMPL_NOT_ALLOWED", "one of [1, 2]", "0"],
    ],
    [
      "minimumTcb.bootloader",
      tcb({ bootloader: 4 }),
      CLAIMS,
      ["x-ms-sevsnpvm-bootloader-svn", "SNP_TCB_TOO_LOW", ">= 4", "3"],
    ],
    ["minimumTcb.tee", tcb({ tee: 1 }), CLAIMS, ["x-ms-sevsnpvm-tee-svn", "SNP_TCB_TOO_LOW", ">= 1", "0"]],
    ["minimumTcb.snp", tcb({ snp: 9 }), CLAIMS, ["x-ms-sevsnpvm-snpfw-svn", "SNP_TCB_TOO_LOW", ">= 9", "8"]],
    [
      "minimumTcb.microcode",
      tcb({ microcode: 116 }),
      CLAIMS,
      ["x-ms-sevsnpvm-microcode-svn", "SNP_TCB_TOO_LOW", ">= 116", "115"],
    ],
    [
      "measurements",
      withSnp({ measurements: [OTHER48] }),
      CLAIMS,
      ["x-ms-sevsnpvm-launchmeasurement", "SNP_MEASUREMENT_NOT_ALLOWED", OTHER48, MEASUREMENT],
    ],
    [
      "hostData",
      withSnp({ hostData: "cd".repeat(32) }),
      CLAIMS,
      ["x-ms-sevsnpvm-hostdata", "SNP_HOST_DATA_MISMATCH", "cd".repeat(32), HOST_DATA],
    ],
    [
      "idKeyDigests",
      withSnp({ idKeyDigests: [OTHER48, "ef".repeat(48)] }),
      CLAIMS,
      [
        "x-ms-sevsnpvm-idkeydigest",
        "SNP_ID_KEY_DIGEST_NOT_ALLOWED",
        `one of [${OTHER48}, ${"ef".repeat(48)}]`,
        ID_KEY_DIGEST,
      ],
    ],
    [
      "authorKeyDigests",
      withSnp({ authorKeyDigests: [OTHER48] }),
      withClaims({ "x-ms-sevsnpvm-authorkeydigest": "cd".repeat(48) }),
      ["x-ms-sevsnpvm-authorkeydigest", "SNP_AUTHOR_KEY_DIGEST_NOT_ALLOWED", OTHER48, "cd".repeat(48)],
    ],
    // An all-zero AUTHOR_KEY_DIGEST is no author key (AUTHOR_KEY_EN clear), which a pinned list
    // refuses as the snp section does, even a list that names the zero digest.
    [
      "authorKeyDigests pinned, the token showing no author key",
      withSnp({ authorKeyDigests: ["00".repeat(48)] }),
      CLAIMS,
      [
        "x-ms-sevsnpvm-authorkeydigest",
        "SNP_AUTHOR_KEY_DIGEST_NOT_ALLOWED",
        "an author key's digest (authorKeyDigests is pinned)",
        "all zero (no author key: AUTHOR_KEY_EN clear)",
      ],
    ],
    [
      "minimumGuestSvn",
      withSnp({ minimumGuestSvn: 3 }),
      CLAIMS,
      ["x-ms-sevsnpvm-guestsvn", "SNP_GUEST_SVN_TOO_LOW", ">= 3", "2"],
    ],
    [
      "an issuer differing only in case (iss is compared as the exact string)",
      fixturePolicy(),
      withClaims({ iss: ISSUER.toUpperCase() }),
      ["iss", "MAA_ISSUER_NOT_ALLOWED", ISSUER, JSON.stringify(ISSUER.toUpperCase())],
    ],
    [
      "an issuer differing only by a trailing slash",
      { ...fixturePolicy(), maa: { ...fixturePolicy().maa, issuers: [`${ISSUER}/`] } },
      CLAIMS,
      ["iss", "MAA_ISSUER_NOT_ALLOWED", `${ISSUER}/`, JSON.stringify(ISSUER)],
    ],
  ];

  it.each(cases)("%s: exactly its violation", async (_name, policy, claims, [field, code, expected, found]) => {
    const result = await appraised(policy, claims);
    expect(result.ok).toBe(false);
    expect(result.violations).toEqual([{ field, code, expected, found }]);
  });

  // A claim a check needs, absent, of another JSON type, or a number beyond its report field's width
  // (no value the hardware reports), fails closed naming it: [name, claim, value, expected, found].
  const invalidClaims: [string, string, unknown, string, string][] = [
    ["a missing claim", "x-ms-sevsnpvm-launchmeasurement", undefined, "48 bytes as 96 hex digits", "absent"],
    ["a boolean claim given as a string", "x-ms-sevsnpvm-is-debuggable", "false", "true or false", '"false"'],
    [
      "debugAllowed: false, the is-debuggable claim absent",
      "x-ms-sevsnpvm-is-debuggable",
      undefined,
      "true or false",
      "absent",
    ],
    ["a VMPL claim given as a string", "x-ms-sevsnpvm-vmpl", "0", "a whole number 0..4294967295", '"0"'],
    ["a TCB claim that is not whole", "x-ms-sevsnpvm-snpfw-svn", 8.5, "a whole number 0..255", "8.5"],
    ["a number claim given as a string", "x-ms-sevsnpvm-guestsvn", "2", "a whole number 0..4294967295", '"2"'],
    [
      "a hex claim of the wrong length",
      "x-ms-sevsnpvm-hostdata",
      HOST_DATA.slice(2),
      "32 bytes as 64 hex digits",
      JSON.stringify(HOST_DATA.slice(2)),
    ],
    ["a TCB claim given as an object", "x-ms-sevsnpvm-tee-svn", { svn: 0 }, "a whole number 0..255", "an object"],
    ["a TCB claim above 255 (an SVN is one byte)", "x-ms-sevsnpvm-microcode-svn", 256, "a whole number 0..255", "256"],
    [
      "a GUEST_SVN claim above 2^32 - 1",
      "x-ms-sevsnpvm-guestsvn",
      2 ** 32,
      "a whole number 0..4294967295",
      String(2 ** 32),
    ],
    ["a negative VMPL claim", "x-ms-sevsnpvm-vmpl", -1, "a whole number 0..4294967295", "-1"],
  ];

  it.each(invalidClaims)("%s: MAA_CLAIM_INVALID naming it", async (_name, claim, value, expected, found) => {
    const result = await appraised(fixturePolicy(), withClaims({ [claim]: value }));
    expect(result.violations).toEqual([{ field: claim, code: "MAA_CLAIM_INVALID", expected, found }]);
  });

  it("reports every violation at once: a wrong issuer does not hide what the claims say", async () => {
    const policy = {
      ...withSnp({ hostData: "cd".repeat(32) }),
      maa: { ...withSnp({ hostData: "cd".repeat(32) }).maa, issuers: [`${ISSUER}/`] },
    };
    expect((await appraised(policy)).violations.map((v) => v.code)).toEqual([
      "MAA_ISSUER_NOT_ALLOWED",
      "SNP_HOST_DATA_MISMATCH",
    ]);
  });

  it("takes the widest value of each number claim's report field as a value, not an invalid claim", async () => {
    const widest = withClaims({ "x-ms-sevsnpvm-microcode-svn": 255, "x-ms-sevsnpvm-guestsvn": 2 ** 32 - 1 });
    expect((await appraised(fixturePolicy(), widest)).violations).toEqual([]);
    expect((await appraised(fixturePolicy(), withClaims({ "x-ms-sevsnpvm-vmpl": 2 ** 32 - 1 }))).violations).toEqual([
      { field: "x-ms-sevsnpvm-vmpl", code: "SNP_VMPL_NOT_ALLOWED", expected: "one of [0]", found: "4294967295" },
    ]);
  });

  it("refuses a hex claim longer than its report field as invalid, never compared with the policy", async () => {
    const longer = withClaims({ "x-ms-sevsnpvm-launchmeasurement": `${MEASUREMENT}00` });
    const [violation, ...more] = (await appraised(fixturePolicy(), longer)).violations;
    expect(more).toEqual([]);
    expect([violation?.field, violation?.code, violation?.expected]).toEqual([
      "x-ms-sevsnpvm-launchmeasurement",
      "MAA_CLAIM_INVALID",
      "48 bytes as 96 hex digits",
    ]);
  });

  it("compares hex as bytes: an upper-case claim or policy value is the same value", async () => {
    const upper = withClaims({ "x-ms-sevsnpvm-launchmeasurement": MEASUREMENT.toUpperCase() });
    expect((await appraised(fixturePolicy(), upper)).violations).toEqual([]);
    expect((await appraised(withSnp({ hostData: HOST_DATA.toUpperCase() }))).violations).toEqual([]);
  });

  it("reads a claim only for a check the policy makes (a skip or an allowing boolean needs none)", async () => {
    const policy = withSnp({
      debugAllowed: true,
      authorKeyDigests: { skip: { reason: "no author key in the ID block" } } as unknown as string[],
    });
    const claims = withClaims({ "x-ms-sevsnpvm-is-debuggable": undefined, "x-ms-sevsnpvm-authorkeydigest": undefined });
    expect((await appraised(policy, claims)).violations).toEqual([]);
  });

  it("refuses an MAA token under a policy whose maa section is absent or null, naming it", async () => {
    const { maa: _, ...absent } = { ...fixturePolicy(), snp: null, azure: null, tdx: tdxPolicyJson(OTHER48) };
    for (const [policy, found] of [
      [absent, "absent"],
      [{ ...absent, maa: null }, "null"],
    ] as const) {
      expect((await appraised(policy)).violations).toEqual([
        {
          field: "policy.maa",
          code: "TEE_NOT_ACCEPTED",
          expected: "a policy section for MAA tokens (this policy accepts TDX)",
          found,
        },
      ]);
    }
  });

  it("refuses a field-by-field copy of a verified token, and one on its prototype (not made by verifyMaaToken)", async () => {
    const verified = await verifiedToken();
    const copy = { ...verified } as unknown as typeof verified;
    // Nor an object on the class's prototype, which `instanceof` would accept.
    const forged = Object.assign(Object.create(Object.getPrototypeOf(verified)), verified) as typeof verified;
    const policy = parseAttestationPolicy(fixturePolicy());
    for (const unverified of [copy, forged]) {
      expect(thrownCode(() => appraise(unverified, policy, { now: AT, expectedReportData: null }))).toBe(
        "APPRAISAL_UNVERIFIED_EVIDENCE",
      );
    }
  });

  it("refuses a policy built in code whose maa.snp skip has no reason (never taken for a check not made)", async () => {
    const verified = await verifiedToken();
    const parsed = parseAttestationPolicy(fixturePolicy());
    const maa = parsed.maa as NonNullable<typeof parsed.maa>;
    for (const field of ["measurements", "hostData", "idKeyDigests", "authorKeyDigests"] as const) {
      const policy = { ...parsed, maa: { ...maa, snp: { ...maa.snp, [field]: { skip: {} } } } } as typeof parsed;
      expect(thrownCode(() => appraise(verified, policy, { now: AT, expectedReportData: null }))).toBe(
        "APPRAISAL_BAD_OPTION",
      );
    }
  });

  it("takes no expected REPORT_DATA for an MAA token (its claims carry no Cloister binding)", async () => {
    const verified = await verifiedToken();
    const policy = parseAttestationPolicy(fixturePolicy());
    expect(thrownCode(() => appraise(verified, policy, { now: AT, expectedReportData: new Uint8Array(64) }))).toBe(
      "APPRAISAL_BAD_OPTION",
    );
  });
});

describe("the maa policy section (schema)", () => {
  it("is optional: a policy without it still parses, and reads as absent", () => {
    const { maa: _, ...without } = { ...fixturePolicy(), tdx: tdxPolicyJson(OTHER48) };
    expect(parseAttestationPolicy(without).maa).toBeUndefined();
    expect(parseAttestationPolicy({ ...without, maa: null }).maa).toBeNull();
  });

  it("counts as the one section a policy needs", () => {
    expect(parseAttestationPolicy(fixturePolicy()).maa?.issuers).toEqual([ISSUER]);
    const { maa: _, ...none } = fixturePolicy();
    expect(() => parseAttestationPolicy({ ...none, maa: null })).toThrow(
      "snp: expected at least one of snp, tdx, azure, maa to be a policy (all null accepts nothing)",
    );
  });

  it.each(["hostData", "migrationAllowed", "minimumTcb"] as const)(
    "names a missing maa.snp.%s (POLICY_INVALID)",
    (field) => {
      const policy = fixturePolicy();
      const { [field]: _, ...snp } = policy.maa.snp;
      expect(() => parseAttestationPolicy({ ...policy, maa: { ...policy.maa, snp } })).toThrow(
        expect.objectContaining({
          code: "POLICY_INVALID",
          message: expect.stringContaining(`maa.snp.${field}: required field is missing`),
        }),
      );
    },
  );

  it.each(["issuers", "attestationTypes", "snp"] as const)("names a missing maa.%s (POLICY_INVALID)", (field) => {
    const policy = fixturePolicy();
    const { [field]: _, ...maa } = policy.maa;
    expect(() => parseAttestationPolicy({ ...policy, maa })).toThrow(
      expect.objectContaining({
        code: "POLICY_INVALID",
        message: expect.stringContaining(`maa.${field}: required field is missing`),
      }),
    );
  });

  it("refuses an attestation type it cannot appraise, an issuer that is not https, and the SNP section's fields", () => {
    const policy = fixturePolicy();
    for (const maa of [
      { ...policy.maa, attestationTypes: ["sgx"] },
      { ...policy.maa, issuers: ["http://sharedweu.weu.test.attest.azure.net"] },
      { ...policy.maa, snp: { ...policy.maa.snp, cxlAllowed: false } },
    ]) {
      expect(() => parseAttestationPolicy({ ...policy, maa })).toThrow(
        expect.objectContaining({ code: "POLICY_INVALID" }),
      );
    }
  });
});

/** A client policy (client/policy.ts) accepting simulated SEV-SNP documents, and the same with a maa section. */
const OPERATOR_KEY = { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" };
const MANIFEST_CHECKS = { operatorKey: OPERATOR_KEY, modelSha256: HOST_DATA, serviceName: "svc" };
const client = simulatorClientPolicy({ tee: "sim-snp", measurement: MEASUREMENT, ...MANIFEST_CHECKS });
const withMaa = (attestation: Record<string, unknown>) => ({
  ...client,
  attestation: { ...client.attestation, ...attestation, maa: fixturePolicy().maa },
});
const CLIENT_MAA_REFUSAL =
  "client policy: attestation.maa: expected null or absent, found a policy section (the SDK, attest and the key broker appraise no MAA token: acceptedEvidence cannot name one, and a document's maa_token is not read; appraise MAA tokens with an attestation policy, verify-evidence --tee maa --policy)";

describe("a client policy (SDK, kbs serve, attest: attestation documents, never MAA tokens)", () => {
  it("refuses a maa section, alone or beside the sections it uses, naming it", () => {
    expect(() => parseClientPolicy(withMaa({}))).toThrow(
      expect.objectContaining({ code: "POLICY_INVALID", message: CLIENT_MAA_REFUSAL }),
    );
    // Alone, what acceptedEvidence names is refused with it (in one pass: client/policy.ts).
    expect(() => parseClientPolicy(withMaa({ snp: null }))).toThrow(
      expect.objectContaining({
        code: "POLICY_INVALID",
        message: `${CLIENT_MAA_REFUSAL}; acceptedEvidence.0: "sev-snp" expected a policy section attestation.snp, found null (write the section, or take "sev-snp" out of acceptedEvidence)`,
      }),
    );
  });

  it("takes a null or absent maa section as before", () => {
    expect(parseClientPolicy({ ...client, attestation: { ...client.attestation, maa: null } }).attestation.maa).toBe(
      null,
    );
    expect(parseClientPolicy(client).attestation.maa).toBeUndefined();
  });
});

describe("verify-evidence --tee maa --policy", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloister-maa-policy-"));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  async function run(policy: unknown, extra: { issuer?: string } = {}) {
    const { jwks, sign } = await testMaaSigner();
    return verifyEvidence({
      tee: "maa",
      token: file("token.jwt", await sign(CLAIMS)),
      jwks: file("jwks.json", JSON.stringify(jwks)),
      policy: file("policy.json", JSON.stringify(policy)),
      at: AT,
      ...extra,
    });
  }

  it("accepts the token under a policy pinning its claims; the verdict carries the appraisal", async () => {
    const verdict = await run(fixturePolicy());
    expect(verdict).toMatchObject({
      valid: true,
      code: null,
      tee: "maa",
      measurement: MEASUREMENT,
      appraisal: { ok: true, violations: [], reportDataChecked: false },
      details: { issuer: ISSUER, issuerChecked: true },
    });
  });

  it("reports each violation like the other appraisals (field, expected, found)", async () => {
    const verdict = await run(withSnp({ minimumGuestSvn: 3, smtAllowed: false }));
    expect(verdict).toMatchObject({
      valid: false,
      stage: "appraise",
      code: "SNP_SMT_NOT_ALLOWED",
      reason:
        "x-ms-sevsnpvm-smt-allowed: expected false (smtAllowed: false), found true; x-ms-sevsnpvm-guestsvn: expected >= 3, found 2 (SNP_GUEST_SVN_TOO_LOW)",
    });
  });

  it("refuses the real SGX token under its real key set, naming its type", async () => {
    const maa = new URL("../fixtures/attestation/azure/maa/", import.meta.url);
    const issuer = "https://sharedwus.wus.attest.azure.net";
    const verdict = await verifyEvidence({
      tee: "maa",
      token: new URL("maa-sgx-sharedwus-2022-05-31.jwt", maa).pathname,
      jwks: new URL("jwks-sharedwus-2022-05-31T22-47-56Z.json", maa).pathname,
      policy: file(
        "sgx-policy.json",
        JSON.stringify({ ...fixturePolicy(), maa: { ...fixturePolicy().maa, issuers: [issuer] } }),
      ),
      at: new Date("2022-05-31T23:00:00Z"),
    });
    expect(verdict).toMatchObject({
      valid: false,
      code: "MAA_ATTESTATION_TYPE_NOT_ALLOWED",
      appraisal: {
        ok: false,
        violations: [
          {
            field: "x-ms-attestation-type",
            code: "MAA_ATTESTATION_TYPE_NOT_ALLOWED",
            expected: "sevsnpvm",
            found: '"sgx"',
          },
        ],
      },
    });
  });

  it("refuses every token under a policy without a maa section", async () => {
    const { maa: _, ...absent } = { ...fixturePolicy(), tdx: tdxPolicyJson(OTHER48) };
    const verdict = await run(absent);
    expect(verdict).toMatchObject({
      valid: false,
      code: "TEE_NOT_ACCEPTED",
      reason: "policy.maa: expected a policy section for MAA tokens (this policy accepts TDX), found absent",
    });
  });

  it("with --issuer and the policy's issuers, both must hold", async () => {
    const other = "https://sharedeus.eus.attest.azure.net";
    expect(await run(fixturePolicy(), { issuer: other })).toMatchObject({ valid: false, code: "MAA_ISSUER_MISMATCH" });
    const policy = { ...fixturePolicy(), maa: { ...fixturePolicy().maa, issuers: [other] } };
    expect(await run(policy, { issuer: ISSUER })).toMatchObject({ valid: false, code: "MAA_ISSUER_NOT_ALLOWED" });
    expect(await run(fixturePolicy(), { issuer: ISSUER })).toMatchObject({ valid: true });
  });

  it("refuses a client policy's maa section (POLICY_INVALID); under one without it, every token", async () => {
    // Bad input (exit 2), the file named, as every other refusal of a --policy file.
    await expect(run(withMaa({}))).rejects.toMatchObject({
      code: "POLICY_INVALID",
      kind: "configuration",
      message: `--policy ${join(dir, "policy.json")}: ${CLIENT_MAA_REFUSAL}`,
    });
    expect(await run(client)).toMatchObject({
      valid: false,
      code: "TEE_NOT_ACCEPTED",
      reason: "policy.maa: expected a policy section for MAA tokens (this policy accepts SEV-SNP), found absent",
    });
  });

  it("refuses an invalid maa section before reading the token (POLICY_INVALID)", async () => {
    const policy = fixturePolicy();
    const { hostData: _, ...snp } = policy.maa.snp;
    await expect(run({ ...policy, maa: { ...policy.maa, snp } })).rejects.toMatchObject({
      code: "POLICY_INVALID",
      message: expect.stringContaining("maa.snp.hostData: required field is missing"),
    });
  });
});
