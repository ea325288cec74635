/**
 * End-to-end verification of attestation documents (attestation/document.ts) on simulated
 * evidence: every stage's rejection has its own code, in the order DESIGN.md gives.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { base64url, CompactSign, importJWK, type JWK } from "jose";
import nacl from "tweetnacl";
import { beforeAll, describe, expect, it } from "vitest";
import { serializeAzureEvidence } from "../../attestation/azure/evidence.ts";
import { computeReportData } from "../../attestation/binding.ts";
import { fromHex, toHex } from "../../attestation/bytes.ts";
import {
  clearVerifiedDocumentCache,
  createAttestationDocument,
  createNonceAnswer,
  DOCUMENT_TYPE,
  type EnclaveKeys,
  MAX_REMEMBERED_DOCUMENTS,
  type ManifestCheck,
  NONCE_ANSWER_TYPE,
  verifyAttestationDocument,
} from "../../attestation/document.ts";
import {
  type DocumentEvidence,
  parseDocumentEvidence,
  type TrustAnchors,
  verifyDocumentEvidence,
} from "../../attestation/evidence.ts";
import { insecureSimulatedAmdHierarchy, simulateSnpReport } from "../../attestation/sim/index.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import {
  anchorsForPolicy,
  type ClientPolicy,
  manifestCheckForPolicy,
  verifyWithClientPolicy,
} from "../../client/policy.ts";
import { DEV_MANIFEST, devManifest } from "../../manifests/dev.ts";
import { manifestDigest } from "../../manifests/digest.ts";
import { generateManifestSigningKey, signManifest } from "../../manifests/sign.ts";
import {
  SIMULATED_AZURE_MEASUREMENT,
  SIMULATED_PCRS,
  simulatedAzureSnpAnchors,
  simulatedAzureSnpEvidence,
} from "../helpers/azure-sim.ts";
import { simulatedSnpTeeEvidence } from "../helpers/manifest-tee-evidence.ts";

const NOW = new Date("2026-06-01T12:00:00Z");
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const MEASUREMENT = new Uint8Array(48).fill(0x5a);

interface Fixture {
  keys: EnclaveKeys;
  /** The operator's manifest signing key (the policy trusts its public half). */
  operatorJwk: JWK;
  manifestJws: string;
  evidence: DocumentEvidence;
  document: string;
  policy: ClientPolicy;
}

async function makeEvidence(
  keys: EnclaveKeys,
  manifestJws: string,
  measurement = MEASUREMENT,
): Promise<DocumentEvidence> {
  const hierarchy = insecureSimulatedAmdHierarchy();
  const reportData = await computeReportData({
    signingPublicKey: keys.signing.publicKey,
    sealingPublicKey: keys.sealing.publicKey,
    manifestDigest: await manifestDigest(manifestJws),
  });
  const report = simulateSnpReport(hierarchy, { reportData, measurement });
  return {
    type: "sev-snp",
    report: base64url.encode(report),
    endorsementKey: base64url.encode(hierarchy.vcek.certificate),
  };
}

let f: Fixture;

beforeAll(async () => {
  const operator = await generateManifestSigningKey("EdDSA");
  const manifest = devManifest();
  const manifestJws = await signManifest(manifest, operator.privateJwk);
  const keys: EnclaveKeys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
  const evidence = await makeEvidence(keys, manifestJws);
  const document = await createAttestationDocument({ keys, evidence, manifest: manifestJws, maaToken: null, now: NOW });
  const policy = simulatorClientPolicy({
    tee: "sim-snp",
    measurement: toHex(MEASUREMENT),
    operatorKey: operator.publicJwk,
    modelSha256: manifest.model.sha256,
    serviceName: manifest.service.name,
  });
  f = { keys, operatorJwk: operator.privateJwk, manifestJws, evidence, document, policy };
}, 120_000);

/** The fixture's manifest check, counting full verifications (a remembered document's manifest is not checked again). */
function countingManifestCheck(): { counting: ManifestCheck; checks: () => number } {
  let manifestChecks = 0;
  const check = manifestCheckForPolicy(f.policy);
  const counting: ManifestCheck = {
    ...check,
    verify: (jws, context) => {
      manifestChecks++;
      return check.verify(jws, context);
    },
  };
  return { counting, checks: () => manifestChecks };
}

async function verify(
  document: string,
  options: { policy?: ClientPolicy; nonce?: Uint8Array; answer?: string; at?: Date } = {},
) {
  const policy = options.policy ?? f.policy;
  const nonce = options.nonce ?? nacl.randomBytes(32);
  const answer = options.answer ?? (await createNonceAnswer({ keys: f.keys, document, nonce, now: NOW }));
  return verifyAttestationDocument(document, {
    policy: policy.attestation,
    anchors: await anchorsForPolicy(policy),
    manifest: manifestCheckForPolicy(policy),
    at: options.at ?? NOW,
    nonce: { value: nonce, answer },
    maxClockSkewSeconds: 120,
  });
}

/** A nonce and the enclave's answer to it an hour before NOW: stale under any clock skew allowed. */
async function staleAnswer() {
  const nonce = nacl.randomBytes(32);
  const answer = await createNonceAnswer({
    keys: f.keys,
    document: f.document,
    nonce,
    now: new Date(NOW.getTime() - 3600_000),
  });
  return { nonce, answer };
}

/** A JWS over `payload` by the enclave signing key of `keys`, with header typ `typ`. */
async function signAs(keys: EnclaveKeys, typ: string, payload: unknown): Promise<string> {
  const key = await importJWK(
    {
      kty: "OKP",
      crv: "Ed25519",
      x: base64url.encode(keys.signing.publicKey),
      d: base64url.encode(keys.signing.secretKey.subarray(0, 32)),
    },
    "EdDSA",
  );
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: "EdDSA", typ })
    .sign(key);
}

/**
 * A compact JWS of exactly these header and payload bytes (jose would re-serialise a header),
 * signed by the enclave signing key of `keys`.
 */
function signBytes(keys: EnclaveKeys, header: string | Uint8Array, payload: string | Uint8Array): string {
  const signingInput = `${base64url.encode(header)}.${base64url.encode(payload)}`;
  const signature = nacl.sign.detached(new TextEncoder().encode(signingInput), keys.signing.secretKey);
  return `${signingInput}.${base64url.encode(signature)}`;
}

function payloadOf(jws: string): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(base64url.decode(jws.split(".")[1]!))) as Record<string, unknown>;
}

function resignPayload(
  document: string,
  edit: (payload: Record<string, unknown>) => void,
  keys = f.keys,
): Promise<string> {
  const payload = payloadOf(document);
  edit(payload);
  return signAs(keys, DOCUMENT_TYPE, payload);
}

/** A document of this enclave (f.keys) whose evidence binds the manifest `manifestJws`. */
async function documentFor(manifestJws: string): Promise<string> {
  return createAttestationDocument({
    keys: f.keys,
    evidence: await makeEvidence(f.keys, manifestJws),
    manifest: manifestJws,
    maaToken: null,
    now: NOW,
  });
}

describe("attestation document", () => {
  it("verifies a simulated enclave end to end and reports what was verified", async () => {
    const enclave = await verify(f.document);
    expect(enclave.tee).toBe("sev-snp");
    expect(enclave.simulated).toBe(true);
    expect(enclave.measurement).toBe(toHex(MEASUREMENT));
    expect(enclave.sealingPublicKey).toEqual(f.keys.sealing.publicKey);
    expect(enclave.manifestDigest).toBe(toHex(await manifestDigest(f.manifestJws)));
    expect(enclave.manifest.model.sha256).toBe(devManifest().model.sha256);
  });

  /** `message`: the error's whole message, for the cases that pin it. */
  type Case = { name: string; stage: string; code: string; message?: string; run: () => Promise<unknown> };
  const cases: Case[] = [
    {
      name: "simulator roots without opt-in",
      stage: "verify",
      code: "ROOT_NOT_TRUSTED",
      run: () =>
        verify(f.document, {
          policy: { ...f.policy, attestation: { ...f.policy.attestation, trustSimulator: false } },
        }),
    },
    {
      name: "wrong measurement",
      stage: "appraise",
      code: "SNP_MEASUREMENT_NOT_ALLOWED",
      // It names the policy field to change and where a new measurement comes from (it named neither).
      message:
        `policy violations: MEASUREMENT: expected ${"5a".repeat(48)}, found ${"01".repeat(48)} ` +
        "(not in the policy's snp.measurements, attestation.snp.measurements in a client policy; simulated: " +
        "a policy `cloister up` wrote is written again when the enclave code changes, so restart what holds the " +
        "old one (a proxy, web page or key broker); a policy written by hand (a key broker's release policy, a " +
        "client's): add this measurement if this enclave is yours)",
      run: async () => {
        const other = await makeEvidence(f.keys, f.manifestJws, new Uint8Array(48).fill(1));
        const doc = await createAttestationDocument({
          keys: f.keys,
          evidence: other,
          manifest: f.manifestJws,
          maaToken: null,
          now: NOW,
        });
        return verify(doc);
      },
    },
    {
      name: "wrong REPORT_DATA (sealing key swapped, re-signed by the same key)",
      stage: "binding",
      code: "BINDING_MISMATCH",
      run: async () =>
        verify(
          await resignPayload(f.document, (p) => {
            (p.cnf as { jwk: { x: string } }).jwk.x = base64url.encode(nacl.box.keyPair().publicKey);
          }),
        ),
    },
    {
      name: "manifest swapped for another signed manifest",
      stage: "binding",
      code: "BINDING_MISMATCH",
      run: async () => {
        const operator = await generateManifestSigningKey("EdDSA");
        const other = await signManifest(devManifest({ service: { version: "9.9.9" } }), operator.privateJwk);
        return verify(await resignPayload(f.document, (p) => (p.manifest = other)));
      },
    },
    {
      name: "document signed by another key (evidence binds the original key)",
      stage: "binding",
      code: "BINDING_MISMATCH",
      run: async () => {
        const intruder: EnclaveKeys = { signing: nacl.sign.keyPair(), sealing: f.keys.sealing };
        const doc = await resignPayload(
          f.document,
          (p) => ((p.sig_jwk as { x: string }).x = base64url.encode(intruder.signing.publicKey)),
          intruder,
        );
        return verify(doc, {
          answer: await createNonceAnswer({ keys: intruder, document: doc, nonce: new Uint8Array(32), now: NOW }),
          nonce: new Uint8Array(32),
        });
      },
    },
    {
      name: "document payload altered without re-signing",
      stage: "document",
      code: "DOCUMENT_SIGNATURE_INVALID",
      run: async () => {
        const [h, , s] = f.document.split(".");
        const payload = payloadOf(f.document);
        payload.iat = 1;
        return verify(`${h}.${base64url.encode(JSON.stringify(payload))}.${s}`);
      },
    },
    {
      name: "wrong nonce",
      stage: "nonce",
      code: "NONCE_MISMATCH",
      run: async () => {
        const answer = await createNonceAnswer({
          keys: f.keys,
          document: f.document,
          nonce: new Uint8Array(32).fill(9),
          now: NOW,
        });
        return verify(f.document, { nonce: new Uint8Array(32).fill(8), answer });
      },
    },
    {
      name: "nonce answer signed by another key",
      stage: "nonce",
      code: "NONCE_SIGNATURE_INVALID",
      run: async () => {
        const nonce = new Uint8Array(32).fill(3);
        const other: EnclaveKeys = { signing: nacl.sign.keyPair(), sealing: f.keys.sealing };
        return verify(f.document, {
          nonce,
          answer: await createNonceAnswer({ keys: other, document: f.document, nonce, now: NOW }),
        });
      },
    },
    {
      name: "stale nonce answer",
      stage: "nonce",
      code: "NONCE_STALE",
      run: async () => {
        const nonce = new Uint8Array(32).fill(4);
        const answer = await createNonceAnswer({
          keys: f.keys,
          document: f.document,
          nonce,
          now: new Date(NOW.getTime() - 3_600_000),
        });
        return verify(f.document, { nonce, answer });
      },
    },
    {
      name: "nonce answer about another document",
      stage: "nonce",
      code: "NONCE_DOCUMENT_MISMATCH",
      run: async () => {
        const nonce = new Uint8Array(32).fill(5);
        const otherDoc = await createAttestationDocument({
          keys: f.keys,
          evidence: f.evidence,
          manifest: f.manifestJws,
          maaToken: null,
          now: new Date(NOW.getTime() + 1000),
        });
        return verify(f.document, {
          nonce,
          answer: await createNonceAnswer({ keys: f.keys, document: otherDoc, nonce, now: NOW }),
        });
      },
    },
    {
      name: "manifest signer not trusted by the client",
      stage: "manifest",
      code: "MANIFEST_SIGNATURE_INVALID",
      run: async () => {
        const stranger = await generateManifestSigningKey("EdDSA");
        return verify(f.document, {
          policy: { ...f.policy, manifest: { ...f.policy.manifest, trustedSigners: [stranger.publicJwk] } },
        });
      },
    },
    {
      name: "model digest not allowed by the client",
      stage: "manifest",
      code: "MODEL_NOT_ALLOWED",
      run: () =>
        verify(f.document, {
          policy: { ...f.policy, manifest: { ...f.policy.manifest, allowedModelDigests: ["0".repeat(64)] } },
        }),
    },
    {
      name: "document signed under another algorithm than EdDSA (header alg)",
      stage: "document",
      code: "DOCUMENT_BAD_ALGORITHM",
      run: () => {
        const [, p, s] = f.document.split(".");
        const header = base64url.encode(JSON.stringify({ alg: "ES256", typ: DOCUMENT_TYPE }));
        return verify(`${header}.${p}.${s}`);
      },
    },
    {
      name: "nonce answer of another JWS type, signed by the attested key",
      stage: "nonce",
      code: "NONCE_MALFORMED",
      run: async () => {
        const nonce = new Uint8Array(32).fill(7);
        const answer = await createNonceAnswer({ keys: f.keys, document: f.document, nonce, now: NOW });
        // Re-signed as a nonce answer it verifies; the same claims signed as (say) a document do not:
        // only the JWS type tells them apart.
        await verify(f.document, { nonce, answer: await signAs(f.keys, NONCE_ANSWER_TYPE, payloadOf(answer)) });
        return verify(f.document, { nonce, answer: await signAs(f.keys, DOCUMENT_TYPE, payloadOf(answer)) });
      },
    },
    {
      name: "service not allowed by the client",
      stage: "manifest",
      code: "SERVICE_NOT_ALLOWED",
      run: () =>
        verify(f.document, {
          policy: { ...f.policy, manifest: { ...f.policy.manifest, allowedServices: ["another-service"] } },
        }),
    },
    {
      name: "manifest, bound by the evidence, signed for another platform only (sim-tdx, for sim-snp evidence)",
      stage: "manifest",
      code: "MANIFEST_PLATFORM_MISMATCH",
      run: async () => {
        const tdxOnly = devManifest({
          tee: { platforms: ["sim-tdx"], minimumTcb: { snp: null, tdx: DEV_MANIFEST.tee.minimumTcb.tdx } },
        });
        return verify(await documentFor(await signManifest(tdxOnly, f.operatorJwk)));
      },
    },
    {
      name: "malformed document",
      stage: "document",
      code: "DOCUMENT_MALFORMED",
      run: () => verify("not.a.jws"),
    },
    {
      // Split no further than a fourth part: 4 MiB of dots made four million strings.
      name: "document of dots",
      stage: "document",
      code: "DOCUMENT_MALFORMED",
      message: "document: expected 3 JWS parts, found more than 3",
      run: () => verify(".".repeat(4 * 1024 * 1024), { answer: "unused" }),
    },
    {
      name: "document over its 4 MiB bound",
      stage: "document",
      code: "DOCUMENT_MALFORMED",
      message:
        "document: expected a compact JWS of at most 4194304 characters (4 MiB), found a string of 4194305 characters",
      run: () => verify("a".repeat(4 * 1024 * 1024 + 1), { answer: "unused" }),
    },
    {
      name: "document that is not a string",
      stage: "document",
      code: "DOCUMENT_MALFORMED",
      message: "document: expected a compact JWS of at most 4194304 characters (4 MiB), found an object with keys jws",
      run: () => verify({ jws: "a.b.c" } as unknown as string, { answer: "unused" }),
    },
    // The manifest member's form, checked here (a TypeError from the manifest digest before, when
    // it was only checked to be a string); what is found is named by its kind and length only.
    ...(
      [
        [
          "a string but not a compact JWS (three parts and a space)",
          "eyJhbGciOiJFZERTQSJ9.e30.c2ln ",
          "a string of 30 characters",
        ],
        ["a string whose first part (its protected header) is empty", ".e30.c2ln", "a string of 9 characters"],
        ["absent", undefined, "nothing"],
        ["an object", { payload: "eyJhbGciOiJFZERTQSJ9.e30.c2ln" }, "an object with keys payload"],
      ] as const
    ).map(
      ([what, manifest, found]): Case => ({
        name: `manifest member that is ${what}`,
        stage: "document",
        code: "DOCUMENT_MALFORMED",
        message: `document manifest: expected a compact JWS (three base64url parts, the first non-empty, no white space), found ${found}`,
        run: async () => verify(await resignPayload(f.document, (p) => Object.assign(p, { manifest }))),
      }),
    ),
  ];

  it.each(cases)("rejects: $name → $stage / $code", async ({ run, stage, code, message }) => {
    const error = await run().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ stage, code, ...(message === undefined ? {} : { message }) });
  });

  // Curve25519's points of small order and their encodings below 2^255, the last with the top bit
  // set (X25519 ignores it): X25519 with any of them gives all zeros, so requests sealed to it would
  // be readable.
  it.each([
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
  ])("rejects an attested sealing key of small order, %s → document / DOCUMENT_MALFORMED", async (hex) => {
    const sealingPublicKey = Uint8Array.from(Buffer.from(hex, "hex"));
    expect(nacl.scalarMult(nacl.randomBytes(32), sealingPublicKey).every((b) => b === 0)).toBe(true);
    const keys: EnclaveKeys = {
      signing: f.keys.signing,
      sealing: { publicKey: sealingPublicKey, secretKey: new Uint8Array(32) },
    };
    const document = await createAttestationDocument({
      keys,
      evidence: await makeEvidence(keys, f.manifestJws),
      manifest: f.manifestJws,
      maaToken: null,
      now: NOW,
    });
    const error = await verify(document).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({
      stage: "document",
      code: "DOCUMENT_MALFORMED",
      message: "cnf.jwk.x: expected an X25519 public key, found a low-order point",
    });
  });

  it("appraises Azure CVM evidence in a document with policy.azure: PCRs pinned, then the binding is checked", async () => {
    const evidenceJson = readFileSync(
      new URL("../fixtures/attestation/azure/snp-vtpm/genoa-evidence.trustee.json", import.meta.url),
      "utf8",
    );
    const at = new Date("2026-01-01T00:00:00Z");
    const doc = await createAttestationDocument({
      keys: f.keys,
      evidence: { type: "azure-snp", evidence: evidenceJson },
      manifest: f.manifestJws,
      maaToken: null,
      now: at,
    });
    const nonce = new Uint8Array(32).fill(6);
    const answer = await createNonceAnswer({ keys: f.keys, document: doc, nonce, now: at });
    const fixture = (name: string) => readFileSync(new URL(`../fixtures/attestation/${name}`, import.meta.url), "utf8");
    const genoa = {
      ...(JSON.parse(fixture("EXPECTED.json")).azure_vtpm["azure/snp-vtpm/genoa-evidence.trustee.json"] as {
        measurement: string;
        pcr0: string;
      }),
      pcrs: (JSON.parse(fixture("azure/snp-vtpm/genoa-tpm-pcrs.json")) as { pcrs: string[] }).pcrs,
    };
    const azurePolicy = (pcr7: string) => ({
      snp: {
        ...f.policy.attestation.snp!,
        allowedProducts: ["Genoa" as const],
        measurements: [genoa.measurement],
        allowedVmpls: [0],
        smtAllowed: true,
      },
      tdx: null,
      pcrs: { "0": [genoa.pcr0], "4": [genoa.pcrs[4] as string], "7": [pcr7] },
      secureBootRequired: true,
      consoleAllowed: true,
    });
    const withAzure = (azure: ReturnType<typeof azurePolicy> | null): ClientPolicy => ({
      ...f.policy,
      acceptedEvidence: azure === null ? ["sev-snp"] : ["sev-snp", "azure-snp"],
      attestation: { ...f.policy.attestation, trustSimulator: false, azure },
    });
    const run = (policy: ClientPolicy) => verify(doc, { policy, at, nonce, answer }).catch((e: unknown) => e);
    // Without an azure section (the bare snp section does not apply): refused at appraisal.
    expect(await run(withAzure(null))).toMatchObject({ stage: "appraise", code: "TEE_NOT_ACCEPTED" });
    // Naming azure-snp without the section does not parse: the policy would accept nothing by it.
    expect(await run({ ...withAzure(null), acceptedEvidence: ["sev-snp", "azure-snp"] })).toMatchObject({
      stage: "configuration",
      code: "POLICY_INVALID",
      message: expect.stringContaining(
        'acceptedEvidence.1: "azure-snp" expected a policy section attestation.azure.snp',
      ),
    });
    // A PCR of another image: refused at appraisal, naming the PCR.
    const wrongPcr = await run(withAzure(azurePolicy("cd".repeat(32))));
    expect(wrongPcr).toMatchObject({ stage: "appraise", code: "AZURE_PCR_NOT_ALLOWED" });
    expect((wrongPcr as Error).message).toContain("PCR[7]");
    // Everything the policy pins holds, so appraisal passes; this captured quote's qualifying data is
    // not this document's binding (it was made for another verifier), so the binding stage refuses it.
    expect(await run(withAzure(azurePolicy(genoa.pcrs[7] as string)))).toMatchObject({
      stage: "binding",
      code: "BINDING_MISMATCH",
    });
  });

  it("binds Azure evidence through the vTPM quote's qualifying data, which must be SHA-256(REPORT_DATA)", async () => {
    const reportData = await computeReportData({
      signingPublicKey: f.keys.signing.publicKey,
      sealingPublicKey: f.keys.sealing.publicKey,
      manifestDigest: await manifestDigest(f.manifestJws),
    });
    const qualifying = new Uint8Array(createHash("sha256").update(reportData).digest());
    const policy = {
      ...f.policy.attestation,
      azure: {
        snp: {
          ...f.policy.attestation.snp!,
          allowedProducts: ["Genoa" as const],
          measurements: [toHex(SIMULATED_AZURE_MEASUREMENT)],
          smtAllowed: true,
        },
        tdx: null,
        pcrs: { "4": [toHex(SIMULATED_PCRS[4] as Uint8Array)] },
        secureBootRequired: true,
        consoleAllowed: true,
      },
    };
    const run = async (extraData: Uint8Array) => {
      const evidence = simulatedAzureSnpEvidence({ extraData });
      const document = await createAttestationDocument({
        keys: f.keys,
        evidence: {
          type: "azure-snp",
          evidence: serializeAzureEvidence({
            hclReport: evidence.hclReport,
            tpmQuote: evidence.tpmQuote,
            vcekDer: evidence.vcek!,
          }),
        },
        manifest: f.manifestJws,
        maaToken: null,
        now: NOW,
      });
      const nonce = nacl.randomBytes(32);
      return verifyAttestationDocument(document, {
        policy,
        anchors: { snp: simulatedAzureSnpAnchors, tdx: [] },
        manifest: manifestCheckForPolicy(f.policy),
        at: NOW,
        nonce: { value: nonce, answer: await createNonceAnswer({ keys: f.keys, document, nonce, now: NOW }) },
        maxClockSkewSeconds: 120,
      });
    };
    // 32 bytes, what the provider asks the vTPM for: accepted; the enclave's REPORT_DATA is the 64-byte value.
    const enclave = await run(qualifying);
    expect([enclave.tee, enclave.simulated, enclave.reportData]).toEqual(["azure-snp", true, toHex(reportData)]);
    // The raw 64-byte REPORT_DATA (which a TPM refuses to quote anyway), or any other value: refused.
    for (const extraData of [reportData, qualifying.map((b) => b ^ 1), qualifying.subarray(0, 31)]) {
      const error = await run(extraData).catch((e: unknown) => e);
      expect(error).toMatchObject({
        stage: "binding",
        code: "BINDING_MISMATCH",
        message: `vTPM quote extraData: expected SHA-256(REPORT_DATA) ${toHex(qualifying)} (REPORT_DATA ${toHex(reportData)}, the hash of the document's keys and manifest), found ${toHex(extraData)} (${extraData.length} bytes)`,
      });
    }
  });

  it("checks the manifest's platforms against the verified evidence: a manifest for sim-snp only is no manifest for hardware SNP or for sim-tdx", async () => {
    const snpOnly = await signManifest(
      devManifest({ tee: { platforms: ["sim-snp"], minimumTcb: { snp: DEV_MANIFEST.tee.minimumTcb.snp, tdx: null } } }),
      f.operatorJwk,
    );
    const check = manifestCheckForPolicy(f.policy);
    const evidence = simulatedSnpTeeEvidence();
    expect((await check.verify(snpOnly, { tee: "sev-snp", simulated: true, evidence })).service.name).toBe(
      "cloister-dev",
    );
    for (const [context, platform] of [
      [{ tee: "sev-snp", simulated: false }, "snp"],
      [{ tee: "tdx", simulated: true }, "sim-tdx"],
      [{ tee: "azure-snp", simulated: false }, "azure-snp"],
      [{ tee: "tdx", simulated: false }, "tdx"],
      [{ tee: "azure-tdx", simulated: false }, "azure-tdx"],
    ] as const) {
      await expect(check.verify(snpOnly, { ...context, evidence })).rejects.toMatchObject({
        stage: "manifest",
        code: "MANIFEST_PLATFORM_MISMATCH",
        message: `manifest tee.platforms: expected to include ${platform}, found [sim-snp]`,
      });
    }
  });

  it("lets any model digest or service through only where the policy skips that list, and keeps its own copy of the lists", async () => {
    const context = { tee: "sev-snp", simulated: true, evidence: simulatedSnpTeeEvidence() } as const;
    const skip = { skip: { reason: "test: any model, any service" } };
    const manifest = { ...f.policy.manifest, allowedModelDigests: ["0".repeat(64)], allowedServices: ["another"] };
    const anyModel = manifestCheckForPolicy({ ...f.policy, manifest: { ...manifest, allowedModelDigests: skip } });
    await expect(anyModel.verify(f.manifestJws, context)).rejects.toMatchObject({ code: "SERVICE_NOT_ALLOWED" });
    const anyService = manifestCheckForPolicy({ ...f.policy, manifest: { ...manifest, allowedServices: skip } });
    await expect(anyService.verify(f.manifestJws, context)).rejects.toMatchObject({ code: "MODEL_NOT_ALLOWED" });
    const policy = { ...f.policy, manifest: { ...manifest, allowedModelDigests: skip, allowedServices: skip } };
    const any = manifestCheckForPolicy(policy);
    expect((await any.verify(f.manifestJws, context)).service.name).toBe("cloister-dev");
    // The caller's list changed afterwards: the check made from it keeps deciding as it did then.
    const digests = ["0".repeat(64)];
    const strict = manifestCheckForPolicy({
      ...f.policy,
      manifest: { ...f.policy.manifest, allowedModelDigests: digests },
    });
    digests.push(...(f.policy.manifest.allowedModelDigests as readonly string[]));
    await expect(strict.verify(f.manifestJws, context)).rejects.toMatchObject({ code: "MODEL_NOT_ALLOWED" });
  });

  it("refuses inputs it cannot use, each with its own code", async () => {
    for (const length of [15, 65]) {
      await expect(
        createNonceAnswer({ keys: f.keys, document: f.document, nonce: new Uint8Array(length), now: NOW }),
      ).rejects.toMatchObject({ stage: "nonce", code: "NONCE_BAD_LENGTH" });
    }
    for (const evidence of [null, { type: "sgx" }, { type: "sev-snp", report: 7, endorsementKey: "AA" }]) {
      expect(() => parseDocumentEvidence(evidence)).toThrow(
        expect.objectContaining({ code: "DOCUMENT_EVIDENCE_MALFORMED" }),
      );
    }
    const anchors = await anchorsForPolicy(f.policy);
    // Base64url in its one spelling (jws.ts' decodeStrictBase64url): another spelling of the same
    // bytes (padding, white space, unused bits set) is refused, naming the field and what was found.
    const report = (f.evidence as { report: string }).report;
    expect(report.length % 4).toBe(3); // 1184 bytes: the last character's low 2 bits are unused
    const last = report.length - 1;
    const unusedBitsSet = report.slice(0, last) + BASE64URL[BASE64URL.indexOf(report.charAt(last)) | 1];
    for (const [spelling, found] of [
      ["not-base64url!", '"!" at character 13'],
      [`${report}=`, `"=" at character ${report.length}`],
      [`${report.slice(0, 64)}\n${report.slice(64)}`, "at character 64"],
      [unusedBitsSet, "unused bits set in its last character"],
    ] as const) {
      await expect(
        verifyDocumentEvidence({ ...f.evidence, type: "sev-snp", report: spelling } as DocumentEvidence, anchors, NOW),
      ).rejects.toMatchObject({
        code: "DOCUMENT_EVIDENCE_MALFORMED",
        message: expect.stringMatching(
          new RegExp(`^evidence\\.report: expected base64url \\(.*\\), found .*${found.replace(/[.()]/g, "\\$&")}`),
        ),
      });
    }
    // A failure that is no AttestationError (here anchors that are not lists, from a plain-JavaScript
    // caller) still comes out as one, in the verify stage.
    await expect(
      verifyDocumentEvidence(f.evidence, { snp: null, tdx: null } as unknown as TrustAnchors, NOW),
    ).rejects.toMatchObject({ stage: "verify", code: "EVIDENCE_INVALID" });
    await expect(
      computeReportData({
        signingPublicKey: f.keys.signing.publicKey.subarray(0, 31),
        sealingPublicKey: f.keys.sealing.publicKey,
        manifestDigest: await manifestDigest(f.manifestJws),
      }),
    ).rejects.toMatchObject({ stage: "binding", code: "BINDING_BAD_INPUT" });
    expect(() => fromHex("abc")).toThrow(expect.objectContaining({ code: "BAD_HEX" }));
    expect(() => fromHex("zz")).toThrow(expect.objectContaining({ code: "BAD_HEX" }));
  });

  it("verifies only under a policy that parses: one built in code is held to the policy file's rules", async () => {
    const snp = f.policy.attestation.snp as NonNullable<ClientPolicy["attestation"]["snp"]>;
    const { minimumGuestSvn: _, ...noGuestSvn } = snp;
    // Absent, GUEST_SVN was compared with undefined: the check silently not made, the enclave let through.
    const built = { ...f.policy, attestation: { ...f.policy.attestation, snp: noGuestSvn } } as unknown as ClientPolicy;
    await expect(verify(f.document, { policy: built })).rejects.toMatchObject({
      stage: "configuration",
      code: "POLICY_INVALID",
      message: expect.stringContaining("snp.minimumGuestSvn: required field is missing"),
    });
    // Parsed once per policy object, but a policy changed in place since is parsed again.
    const changed = structuredClone(f.policy);
    await expect(verify(f.document, { policy: changed })).resolves.toBeDefined();
    (changed.attestation.snp as Record<string, unknown>).minimumGuestSvn = "0";
    await expect(verify(f.document, { policy: changed })).rejects.toMatchObject({
      code: "POLICY_INVALID",
      message: expect.stringContaining("snp.minimumGuestSvn: expected number, found a string of 1 character"),
    });
  });

  it("refuses a policy with a maa section when it is given, not when it is used: no document's MAA token is appraised", async () => {
    // A maa section that parses, its claims' rules taken from the policy's own snp section.
    const snp = f.policy.attestation.snp as NonNullable<ClientPolicy["attestation"]["snp"]>;
    const { debugAllowed, smtAllowed, allowedVmpls, measurements, hostData, minimumGuestSvn } = snp;
    const { fmc: _, ...minimumTcb } = snp.minimumTcb;
    const rules = { debugAllowed, smtAllowed, allowedVmpls, measurements, hostData, minimumGuestSvn, minimumTcb };
    const maa = {
      issuers: ["https://example.attest.azure.net"],
      attestationTypes: ["sevsnpvm"],
      snp: {
        ...rules,
        idKeyDigests: snp.idKeyDigests,
        authorKeyDigests: snp.authorKeyDigests,
        migrationAllowed: false,
      },
    };
    const { nonce, answer } = await staleAnswer();
    // Alone it accepted nothing (TEE_NOT_ACCEPTED, found at appraisal); beside snp it was ignored.
    for (const attestation of [
      { ...f.policy.attestation, snp: null, maa },
      { ...f.policy.attestation, maa },
    ]) {
      await expect(
        verifyAttestationDocument(f.document, {
          policy: attestation as unknown as ClientPolicy["attestation"],
          anchors: await anchorsForPolicy(f.policy),
          manifest: manifestCheckForPolicy(f.policy),
          at: NOW,
          nonce: { value: nonce, answer },
          maxClockSkewSeconds: 120,
        }),
        attestation.snp === null ? "maa alone" : "maa beside snp",
      ).rejects.toMatchObject({
        stage: "configuration",
        code: "POLICY_INVALID",
        message: expect.stringMatching(/^attestation policy: maa: expected null or absent, found a policy section/),
      });
    }
  });

  it("refuses a clock skew that is no number of seconds rather than not checking the nonce answer's time", async () => {
    const { nonce, answer } = await staleAnswer();
    for (const maxClockSkewSeconds of [undefined, Number.NaN, -1, "120"]) {
      await expect(
        verifyAttestationDocument(f.document, {
          policy: f.policy.attestation,
          anchors: await anchorsForPolicy(f.policy),
          manifest: manifestCheckForPolicy(f.policy),
          at: NOW,
          nonce: { value: nonce, answer },
          maxClockSkewSeconds: maxClockSkewSeconds as number,
        }),
      ).rejects.toMatchObject({
        stage: "configuration",
        code: "DOCUMENT_BAD_OPTION",
        message: expect.stringContaining("maxClockSkewSeconds: expected a number of seconds >= 0, found"),
      });
    }
  });

  it("refuses a verification time that is no valid Date rather than comparing validity periods with NaN", async () => {
    const { nonce, answer } = await staleAnswer();
    // Verified once at NOW first (its stale answer refused after), so the document is remembered:
    // the warm path must refuse the time too.
    await verifyAttestationDocument(f.document, {
      policy: f.policy.attestation,
      anchors: await anchorsForPolicy(f.policy),
      manifest: manifestCheckForPolicy(f.policy),
      at: NOW,
      nonce: { value: nonce, answer },
      maxClockSkewSeconds: 120,
    }).catch(() => undefined);
    for (const at of [new Date(Number.NaN), NOW.getTime(), undefined]) {
      await expect(
        verifyAttestationDocument(f.document, {
          policy: f.policy.attestation,
          anchors: await anchorsForPolicy(f.policy),
          manifest: manifestCheckForPolicy(f.policy),
          at: at as Date,
          nonce: { value: nonce, answer },
          maxClockSkewSeconds: 120,
        }),
      ).rejects.toMatchObject({
        stage: "configuration",
        code: "VERIFY_TIME_INVALID",
        message: "verification time: expected a valid Date",
      });
    }
  });

  it("verifyWithClientPolicy verifies only under a client policy that parses (built in code: its freshness too)", async () => {
    const { nonce, answer } = await staleAnswer();
    const built = { ...f.policy, freshness: {} } as unknown as ClientPolicy;
    await expect(verifyWithClientPolicy(f.document, built, { value: nonce, answer }, NOW)).rejects.toMatchObject({
      stage: "configuration",
      code: "POLICY_INVALID",
      message: expect.stringContaining("freshness.maxClockSkewSeconds: expected number, found nothing"),
    });
    // The same answer under the parsed policy: stale.
    await expect(verifyWithClientPolicy(f.document, f.policy, { value: nonce, answer }, NOW)).rejects.toMatchObject({
      code: "NONCE_STALE",
    });
  });

  it("manifestCheckForPolicy parses its policy: a skip without its reason, built in code, is refused, not a skip", () => {
    const reasonless = { ...f.policy, manifest: { ...f.policy.manifest, allowedModelDigests: { skip: {} } } };
    expect(() => manifestCheckForPolicy(reasonless as unknown as ClientPolicy)).toThrow(
      expect.objectContaining({
        stage: "configuration",
        code: "POLICY_INVALID",
        message: expect.stringContaining("manifest.allowedModelDigests"),
      }),
    );
  });

  it("refuses a document or nonce answer part not spelled as base64url's one spelling: the document's digest is the boot's id", async () => {
    // An Ed25519 signature is 64 bytes, 86 characters: the last one's low 4 bits are unused, and
    // jose's decoder ignored them (and white space and padding), so the host could re-spell a
    // document's signature and have it verify under another digest.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unusedBitSet = (part: string) => part.slice(0, -1) + alphabet[alphabet.indexOf(part.at(-1) as string) ^ 1];
    const [header, payload, signature] = f.document.split(".") as [string, string, string];
    const respelled: [string, "header" | "payload" | "signature", string][] = [
      ["unused bits set", "signature", `${header}.${payload}.${unusedBitSet(signature)}`],
      ["padding", "signature", `${header}.${payload}.${signature}==`],
      ["white space", "signature", `${header}.${payload}.${signature.slice(0, 40)} ${signature.slice(40)}`],
      ["white space", "header", `${header.slice(0, 8)}\n${header.slice(8)}.${payload}.${signature}`],
      ["padding", "payload", `${header}.${payload}${"=".repeat((4 - (payload.length % 4)) % 4 || 4)}.${signature}`],
    ];
    for (const [name, part, document] of respelled) {
      await expect(verify(document), `${part} with ${name}`).rejects.toMatchObject({
        stage: "document",
        code: "DOCUMENT_MALFORMED",
        message: expect.stringMatching(new RegExp(`^document ${part}: expected base64url \\(`)),
      });
    }
    const nonce = nacl.randomBytes(32);
    const answer = await createNonceAnswer({ keys: f.keys, document: f.document, nonce, now: NOW });
    const [answerHeader, answerPayload, answerSignature] = answer.split(".") as [string, string, string];
    const respelledAnswer = `${answerHeader}.${answerPayload}.${unusedBitSet(answerSignature)}`;
    // Fresh, then with the document remembered as verified (the nonce answer is checked each time).
    for (const round of ["fresh", "remembered"]) {
      if (round === "fresh") clearVerifiedDocumentCache();
      else await verify(f.document);
      await expect(verify(f.document, { nonce, answer: respelledAnswer }), round).rejects.toMatchObject({
        stage: "nonce",
        code: "NONCE_MALFORMED",
        message: expect.stringMatching(/^nonce answer signature: expected base64url \(/),
      });
    }
    // The keys inside the payload, as audit verify reads sig_jwk.x: one spelling each (32 bytes
    // are 43 characters, the last one's low 2 bits unused).
    for (const field of ["cnf.jwk", "sig_jwk"]) {
      const document = await resignPayload(f.document, (payload) => {
        const jwk = (field === "cnf.jwk" ? (payload.cnf as { jwk: unknown }).jwk : payload.sig_jwk) as { x: string };
        jwk.x = unusedBitSet(jwk.x);
      });
      await expect(verify(document), field).rejects.toMatchObject({
        stage: "document",
        code: "DOCUMENT_MALFORMED",
        message: `${field}.x: expected base64url (A-Z, a-z, 0-9, "-", "_"; no padding; unused bits zero), found unused bits set in its last character`,
      });
    }
    // The nonce the answer repeats (eat_nonce), signed by the attested key: one spelling too.
    const spelled = base64url.encode(nonce);
    for (const [name, eatNonce, found] of [
      ["padding", `${spelled}=`, '"=" at character 43'],
      ["white space", `${spelled.slice(0, 20)} ${spelled.slice(20)}`, '" " at character 20'],
      ["unused bits set", unusedBitSet(spelled), "unused bits set in its last character"],
      // 4k+1 characters: no byte string has that length in base64url.
      ["a length of 4k+1", `${spelled}AA`, "a length of 4k+1 (45 characters)"],
    ]) {
      const respelled = await signAs(f.keys, NONCE_ANSWER_TYPE, { ...payloadOf(answer), eat_nonce: eatNonce });
      await expect(verify(f.document, { nonce, answer: respelled }), `eat_nonce with ${name}`).rejects.toMatchObject({
        stage: "nonce",
        code: "NONCE_MALFORMED",
        message: `nonce answer eat_nonce: expected base64url (A-Z, a-z, 0-9, "-", "_"; no padding; unused bits zero), found ${found}`,
      });
    }
  });

  it("refuses a header or payload whose bytes could mean two things: a member named twice, at any depth, or bytes that are not UTF-8", async () => {
    // Signed as given (jose would re-serialise): each document below verified before, its
    // duplicate read as the last member (the first, another reader's), its bad bytes as U+FFFD.
    const header = JSON.stringify({ alg: "EdDSA", typ: DOCUMENT_TYPE });
    const payload = new TextDecoder().decode(base64url.decode(f.document.split(".")[1] as string));
    const otherKey = base64url.encode(nacl.box.keyPair().publicKey);
    const bytes = (text: string) => new TextEncoder().encode(text);
    /** `text`'s bytes with `inserted` at the byte offset of `before`'s first occurrence (checked). */
    const withBytes = (text: string, before: string, inserted: number[]) => {
      const at = bytes(text.slice(0, text.indexOf(before))).length;
      expect(text.indexOf(before)).toBeGreaterThan(0);
      const all = bytes(text);
      return { at, bytes: Uint8Array.from([...all.subarray(0, at), ...inserted, ...all.subarray(at)]) };
    };
    const badIss = withBytes(payload, "-enclave", [0xff]);
    const surrogate = withBytes(payload, "-enclave", [0xed, 0xa0, 0x80]);
    const badTyp = withBytes(header, "+jwt", [0xc3, 0x28]);
    const cases: [string, string, string | RegExp][] = [
      [
        "alg twice",
        signBytes(f.keys, `{"alg":"none",${header.slice(1)}`, payload),
        /^document header: alg appears twice in one object \(the second at position 14\): expected each member once/,
      ],
      [
        "typ twice",
        signBytes(f.keys, header.replace("{", '{"typ":"JWT",'), payload),
        /^document header: typ appears twice/,
      ],
      [
        "manifest twice, at the top",
        signBytes(f.keys, header, payload.replace("{", '{"manifest":"a.b.c",')),
        /^document payload: manifest appears twice/,
      ],
      [
        "cnf.jwk.x twice, inside two objects",
        signBytes(f.keys, header, payload.replace('"cnf":{"jwk":{', `"cnf":{"jwk":{"x":"${otherKey}",`)),
        /^document payload: cnf\.jwk\.x appears twice/,
      ],
      [
        "a name that is no field name twice (named by its length, as it may be anything)",
        signBytes(f.keys, header, payload.replace("{", '{"sk live":1,"sk live":2,')),
        /^document payload: \(a name of 7 characters\) appears twice/,
      ],
      [
        "a byte that is no UTF-8 in the payload",
        signBytes(f.keys, header, badIss.bytes),
        `document payload: expected UTF-8 JSON, found bytes that are not UTF-8 (from offset ${badIss.at})`,
      ],
      [
        "a UTF-16 surrogate spelled in UTF-8 (CESU-8) in the payload",
        signBytes(f.keys, header, surrogate.bytes),
        `document payload: expected UTF-8 JSON, found bytes that are not UTF-8 (from offset ${surrogate.at})`,
      ],
      [
        "a UTF-8 lead byte without its continuation in the header",
        signBytes(f.keys, badTyp.bytes, payload),
        `document header: expected UTF-8 JSON, found bytes that are not UTF-8 (from offset ${badTyp.at})`,
      ],
      [
        "a byte order mark before the payload (TextDecoder drops it unasked)",
        signBytes(f.keys, header, Uint8Array.from([0xef, 0xbb, 0xbf, ...bytes(payload)])),
        "document payload: expected UTF-8 JSON, found a byte order mark before it (offsets 0 to 2)",
      ],
    ];
    // The same texts without the duplicate or the bad bytes verify: only those are refused.
    await expect(verify(signBytes(f.keys, header, payload))).resolves.toBeDefined();
    for (const [name, document, message] of cases) {
      clearVerifiedDocumentCache();
      const error = await verify(document).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error, name).toMatchObject({ stage: "document", code: "DOCUMENT_MALFORMED", message });
      expect((error as Error).message, name).not.toMatch(/sk live|none|JWT|a\.b\.c/);
    }
    // The nonce answer, signed by the attested key, is read the same way.
    const nonce = nacl.randomBytes(32);
    const answer = new TextDecoder().decode(
      base64url.decode(
        (await createNonceAnswer({ keys: f.keys, document: f.document, nonce, now: NOW })).split(".")[1]!,
      ),
    );
    const answerHeader = JSON.stringify({ alg: "EdDSA", typ: NONCE_ANSWER_TYPE });
    await expect(verify(f.document, { nonce, answer: signBytes(f.keys, answerHeader, answer) })).resolves.toBeDefined();
    const twice = answer.replace("{", `{"eat_nonce":"${base64url.encode(nacl.randomBytes(32))}",`);
    await expect(verify(f.document, { nonce, answer: signBytes(f.keys, answerHeader, twice) })).rejects.toMatchObject({
      stage: "nonce",
      code: "NONCE_MALFORMED",
      message: expect.stringMatching(/^nonce answer payload: eat_nonce appears twice/),
    });
    // Its header too: jose would read the last of two typ members, a reader the first.
    const typTwice = `{"alg":"EdDSA","typ":"JWT","typ":"${NONCE_ANSWER_TYPE}"}`;
    await expect(verify(f.document, { nonce, answer: signBytes(f.keys, typTwice, answer) })).rejects.toMatchObject({
      stage: "nonce",
      code: "NONCE_MALFORMED",
      message: `nonce answer header: typ appears twice in one object (the second at position ${typTwice.lastIndexOf('"typ"')}): expected each member once (JSON.parse would use the last while a reader sees the first); remove one`,
    });
  });

  it("refuses a document whose header or payload is JSON but no object, naming what it is", async () => {
    // Signed by the attested key as given: named as the nonce answer's payload is, not a TypeError.
    const header = JSON.stringify({ alg: "EdDSA", typ: DOCUMENT_TYPE });
    const payload = new TextDecoder().decode(base64url.decode(f.document.split(".")[1] as string));
    for (const [document, message] of [
      [signBytes(f.keys, "null", payload), "document header: expected a JSON object, found null"],
      [signBytes(f.keys, "[]", payload), "document header: expected a JSON object, found an empty array"],
      [signBytes(f.keys, header, "7"), "document payload: expected a JSON object, found 7"],
      [signBytes(f.keys, header, `[${payload}]`), "document payload: expected a JSON object, found an array of 1 item"],
    ] as const) {
      clearVerifiedDocumentCache();
      await expect(verify(document), message).rejects.toMatchObject({
        stage: "document",
        code: "DOCUMENT_MALFORMED",
        message,
      });
    }
  });

  it("refuses a nonce answer whose payload or eat_nonce is of another kind, naming it", async () => {
    const nonce = nacl.randomBytes(32);
    const answer = await createNonceAnswer({ keys: f.keys, document: f.document, nonce, now: NOW });
    const spelled = base64url.encode(nonce);
    // A payload that is no object, signed by the attested key: named, not a TypeError.
    for (const [payload, found] of [
      [null, "null"],
      [[], "an empty array"],
    ] as const) {
      const odd = await signAs(f.keys, NONCE_ANSWER_TYPE, payload);
      await expect(verify(f.document, { nonce, answer: odd }), `payload ${found}`).rejects.toMatchObject({
        stage: "nonce",
        code: "NONCE_MALFORMED",
        message: `nonce answer payload: expected a JSON object, found ${found}`,
      });
    }
    // Not a string at all: absent, it was read as the text "undefined", decoded, and compared.
    for (const [eatNonce, found] of [
      [undefined, "nothing"],
      [[spelled], "an array of 1 item"],
    ] as const) {
      const { eat_nonce: _, ...rest } = payloadOf(answer);
      const respelled = await signAs(f.keys, NONCE_ANSWER_TYPE, { ...rest, eat_nonce: eatNonce });
      await expect(verify(f.document, { nonce, answer: respelled }), `eat_nonce ${found}`).rejects.toMatchObject({
        stage: "nonce",
        code: "NONCE_MALFORMED",
        message: `nonce answer eat_nonce: expected a string, found ${found}`,
      });
    }
  });

  it("takes a nonce answer whose iat is maxClockSkewSeconds away at most, and none without a number for it", async () => {
    const nonce = nacl.randomBytes(32);
    const answer = payloadOf(await createNonceAnswer({ keys: f.keys, document: f.document, nonce, now: NOW }));
    const withIat = (iat: unknown) => signAs(f.keys, NONCE_ANSWER_TYPE, { ...answer, iat });
    const seconds = NOW.getTime() / 1000;
    for (const iat of [seconds - 120, seconds + 120]) {
      const verified = await verify(f.document, { nonce, answer: await withIat(iat) });
      expect(verified.documentDigest, `iat ${iat - seconds} s`).toMatch(/^[0-9a-f]{64}$/);
    }
    // Past the skew either way.
    for (const iat of [seconds - 121, seconds + 121]) {
      await expect(
        verify(f.document, { nonce, answer: await withIat(iat) }),
        `iat ${String(iat)}`,
      ).rejects.toMatchObject({
        stage: "nonce",
        code: "NONCE_STALE",
      });
    }
  });

  it("refuses a nonce answer whose iat is no whole number of seconds, naming what it is", async () => {
    const nonce = nacl.randomBytes(32);
    const answer = payloadOf(await createNonceAnswer({ keys: f.keys, document: f.document, nonce, now: NOW }));
    const withIat = (iat: unknown) => signAs(f.keys, NONCE_ANSWER_TYPE, { ...answer, iat });
    const seconds = NOW.getTime() / 1000;
    // Each within the skew if read with Number(): the text and the one-element array of the right
    // time were taken as that time. None is the number of seconds createNonceAnswer writes.
    for (const [iat, found] of [
      [String(seconds), `a string of ${String(seconds).length} characters`],
      [[seconds], "an array of 1 item"],
      [seconds + 0.5, String(seconds + 0.5)],
      [undefined, "nothing"],
      [null, "null"],
      [true, "true"],
    ] as const) {
      await expect(verify(f.document, { nonce, answer: await withIat(iat) }), `iat ${found}`).rejects.toMatchObject({
        stage: "nonce",
        code: "NONCE_MALFORMED",
        message: `nonce answer iat: expected a whole number of seconds (a safe integer), found ${found}`,
      });
    }
  });

  it("keeps a document verified again as the newest remembered, not first to be forgotten", async () => {
    clearVerifiedDocumentCache();
    const { counting, checks } = countingManifestCheck();
    const anchors = await anchorsForPolicy(f.policy);
    const verifyAt = async (document: string, at: Date) => {
      const nonce = nacl.randomBytes(32);
      const answer = await createNonceAnswer({ keys: f.keys, document, nonce, now: at });
      const options = { policy: f.policy.attestation, anchors, manifest: counting, at, maxClockSkewSeconds: 120 };
      return verifyAttestationDocument(document, { ...options, nonce: { value: nonce, answer } });
    };
    const other = (i: number) =>
      createAttestationDocument({
        keys: f.keys,
        evidence: f.evidence,
        manifest: f.manifestJws,
        maaToken: null,
        now: new Date(NOW.getTime() + i * 1000),
      });
    const later = new Date(NOW.getTime() + 31_000);
    const first = await other(1);
    await verifyAt(f.document, NOW);
    await verifyAt(first, NOW);
    // Past the 30 s a verification is remembered for: verified again, and remembered again, after `first`.
    await verifyAt(f.document, later);
    expect(checks()).toBe(3);
    // As many other documents (another iat each) as fill the memory, and one more.
    for (let i = 2; i <= MAX_REMEMBERED_DOCUMENTS; i++) await verifyAt(await other(i), later);
    expect(checks()).toBe(2 + MAX_REMEMBERED_DOCUMENTS);
    // The document verified again is still remembered; `first`, now the oldest, was forgotten.
    await verifyAt(f.document, later);
    expect(checks()).toBe(2 + MAX_REMEMBERED_DOCUMENTS);
    await verifyAt(first, later);
    expect(checks()).toBe(3 + MAX_REMEMBERED_DOCUMENTS);
  });

  it("serves a remembered verification to an equal policy given as another object, never to another policy", async () => {
    clearVerifiedDocumentCache();
    const { counting, checks } = countingManifestCheck();
    const anchors = await anchorsForPolicy(f.policy);
    const verifyWith = async (policy: unknown) => {
      const nonce = nacl.randomBytes(32);
      const answer = await createNonceAnswer({ keys: f.keys, document: f.document, nonce, now: NOW });
      const options = { policy, anchors, manifest: counting, at: NOW, maxClockSkewSeconds: 120 };
      return verifyAttestationDocument(f.document, {
        ...(options as typeof options & { policy: ClientPolicy["attestation"] }),
        nonce: { value: nonce, answer },
      });
    };
    const copy = () => JSON.parse(JSON.stringify(f.policy.attestation));
    await verifyWith(f.policy.attestation);
    expect(checks()).toBe(1);
    // The same content, as a fresh object twice (as each attest parses its file): remembered.
    await verifyWith(copy());
    await verifyWith(copy());
    expect(checks()).toBe(1);
    // Another policy that also accepts this enclave (one more measurement): verified in full.
    const wider = copy();
    wider.snp.measurements = [...wider.snp.measurements, "ab".repeat(48)];
    await verifyWith(wider);
    expect(checks()).toBe(2);
    // And one that refuses it is refused, not served the remembered acceptance.
    const narrower = copy();
    narrower.snp.measurements = ["ab".repeat(48)];
    await expect(verifyWith(narrower)).rejects.toMatchObject({ code: "SNP_MEASUREMENT_NOT_ALLOWED" });
  });

  it("lists every appraisal violation in the error", async () => {
    const policy: ClientPolicy = {
      ...f.policy,
      attestation: {
        ...f.policy.attestation,
        snp: { ...f.policy.attestation.snp!, measurements: ["11".repeat(48)], minimumGuestSvn: 5 },
      },
    };
    await expect(verify(f.document, { policy })).rejects.toThrow(/MEASUREMENT.*GUEST_SVN|GUEST_SVN.*MEASUREMENT/);
  });
});
