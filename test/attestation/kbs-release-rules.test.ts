/**
 * The key broker's release rules that test/attestation/kbs.test.ts did not check through the broker
 * itself (an audit, session 41): a debug-enabled guest, a REPORT_DATA that does not bind the sealing
 * key the key would be boxed to, evidence whose signature or chain does not verify, a nonce answer
 * signed by another key, a model digest the policy does not allow (by its verifier code, not only
 * its stage), each key released under its own release policy only, and which malformed requests
 * spend their challenge. Each refusal is checked by its code and stage, so a check dropped in the
 * verifier or the broker makes the enclave either get the key or be refused for another reason.
 */
import { base64url } from "jose";
import nacl from "tweetnacl";
import { beforeAll, describe, expect, it } from "vitest";
import { computeReportData } from "../../attestation/binding.ts";
import { toHex } from "../../attestation/bytes.ts";
import { createAttestationDocument, createNonceAnswer, type EnclaveKeys } from "../../attestation/document.ts";
import { BrokerError, type BrokerKey, KeyBroker } from "../../attestation/kbs/broker.ts";
import { unwrapModelKey } from "../../attestation/kbs/protocol.ts";
import {
  insecureSimulatedAmdHierarchy,
  SIMULATED_SNP_DEFAULT_POLICY,
  type SimulatedSnpReportOptions,
  simulateSnpReport,
} from "../../attestation/sim/index.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import type { ClientPolicy } from "../../client/policy.ts";
import { devManifest } from "../../manifests/dev.ts";
import { manifestDigest } from "../../manifests/digest.ts";
import { generateManifestSigningKey, signManifest } from "../../manifests/sign.ts";
import { rejectionOf } from "../helpers/rejections.ts";

const MEASUREMENT = new Uint8Array(48).fill(0x5a);
const OTHER_MEASUREMENT = new Uint8Array(48).fill(0x11);
const KEY_A = "model-a";
const KEY_B = "model-b";
const SEALED_SHA256 = "ab".repeat(32);
const KEY_BYTES_A = nacl.randomBytes(32);
const KEY_BYTES_B = nacl.randomBytes(32);
/** The guest POLICY's DEBUG bit (SEV-SNP ABI, bit 19). */
const SNP_POLICY_DEBUG = 1n << 19n;

interface Deployment {
  readonly keys: EnclaveKeys;
  readonly document: string;
  readonly documentDigest: string;
}

interface DeployOptions {
  readonly keyId?: string;
  readonly measurement?: Uint8Array;
  readonly report?: Partial<SimulatedSnpReportOptions>;
  /** The keys REPORT_DATA binds (default: the document's own). */
  readonly boundKeys?: EnclaveKeys;
  /** The simulated AMD hierarchy whose VCEK signs the report and is presented (default: the simulator's). */
  readonly seed?: string;
  /** Changes the signed report before it goes into the document. */
  readonly alter?: (report: Uint8Array) => void;
}

let operator: Awaited<ReturnType<typeof generateManifestSigningKey>>;

/** A simulated SNP enclave whose manifest seals its model under `keyId`, its document built as options say. */
async function deploy(options: DeployOptions = {}): Promise<Deployment> {
  const model = { sha256: SEALED_SHA256, sealedAtRest: true, keyId: options.keyId ?? KEY_A };
  const manifestJws = await signManifest(devManifest({ model }), operator.privateJwk as never);
  const keys: EnclaveKeys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
  const bound = options.boundKeys ?? keys;
  const hierarchy = insecureSimulatedAmdHierarchy(options.seed);
  const reportData = await computeReportData({
    signingPublicKey: bound.signing.publicKey,
    sealingPublicKey: bound.sealing.publicKey,
    manifestDigest: await manifestDigest(manifestJws),
  });
  const report = simulateSnpReport(hierarchy, {
    reportData,
    measurement: options.measurement ?? MEASUREMENT,
    ...options.report,
  });
  options.alter?.(report);
  const document = await createAttestationDocument({
    keys,
    evidence: {
      type: "sev-snp",
      report: base64url.encode(report),
      endorsementKey: base64url.encode(hierarchy.vcek.certificate),
    },
    manifest: manifestJws,
    maaToken: null,
    now: new Date(),
  });
  const digest = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(document))));
  return { keys, document, documentDigest: digest };
}

/** The release policy `cloister up` writes for the simulated SNP guest measuring `measurement`. */
function releasePolicy(measurement: Uint8Array = MEASUREMENT): ClientPolicy {
  return simulatorClientPolicy({
    tee: "sim-snp",
    measurement: toHex(measurement),
    operatorKey: operator.publicJwk,
    modelSha256: SEALED_SHA256,
    serviceName: devManifest().service.name,
  });
}

function broker(keys: readonly BrokerKey[] = [{ keyId: KEY_A, key: KEY_BYTES_A, policy: releasePolicy() }]) {
  return new KeyBroker(keys);
}

/** `d`'s release request for `keyId`, answering a fresh challenge of `kbs` (signed by `answerKeys`, by default d's). */
async function requestFor(kbs: KeyBroker, d: Deployment, keyId = KEY_A, answerKeys: EnclaveKeys = d.keys) {
  const { challenge } = kbs.challenge();
  const answer = await createNonceAnswer({
    keys: answerKeys,
    document: d.document,
    nonce: base64url.decode(challenge),
    now: new Date(),
  });
  return { keyId, document: d.document, challenge, answer };
}

/** The refusal of `d`'s release by `kbs`: KBS_ATTESTATION_FAILED, 403, at `stage`, with the verifier's `code`. */
async function expectAttestationRefusal(kbs: KeyBroker, d: Deployment, stage: string, code: string) {
  const error = await rejectionOf(kbs.release(await requestFor(kbs, d)), BrokerError);
  expect({ code: error.code, status: error.status, stage: error.stage }).toEqual({
    code: "KBS_ATTESTATION_FAILED",
    status: 403,
    stage,
  });
  // The caller is told the verifier's code; the log's reason (detail) begins with it.
  expect(error.message).toBe(`attestation failed at stage ${stage} (${code}); the key broker's log has the reason`);
  expect(error.detail.startsWith(`attestation failed at stage ${stage}: ${code}: `)).toBe(true);
  return error;
}

beforeAll(async () => {
  operator = await generateManifestSigningKey("EdDSA");
}, 120_000);

describe("key broker release rules", () => {
  it("releases the undoctored deployment these tests alter (each refusal below is for its one change)", async () => {
    const kbs = broker();
    const d = await deploy();
    const body = await requestFor(kbs, d);
    const { wrapped } = await kbs.release(body);
    const key = unwrapModelKey(wrapped, d.keys.sealing.secretKey, {
      keyId: KEY_A,
      challenge: base64url.decode(body.challenge),
      documentDigest: d.documentDigest,
    });
    expect(toHex(key)).toBe(toHex(KEY_BYTES_A));
  });

  it("refuses a debug-enabled guest (POLICY.DEBUG set): SNP_DEBUG_NOT_ALLOWED at appraise", async () => {
    const d = await deploy({ report: { policy: SIMULATED_SNP_DEFAULT_POLICY | SNP_POLICY_DEBUG } });
    const error = await expectAttestationRefusal(broker(), d, "appraise", "SNP_DEBUG_NOT_ALLOWED");
    expect(error.detail).toContain("POLICY.DEBUG");
  });

  it("refuses a REPORT_DATA that binds another sealing key than the document's (the key would be boxed to it): BINDING_MISMATCH", async () => {
    // A genuine report of an enclave whose keys the host does not hold, relayed in a document with
    // the host's own sealing key: the report verifies, but does not bind that key.
    const attested: EnclaveKeys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
    const hostSealing = nacl.box.keyPair();
    const d = await deploy({ boundKeys: { signing: attested.signing, sealing: hostSealing } });
    // The document's sealing key is its own (d.keys), REPORT_DATA binds hostSealing: refused.
    await expectAttestationRefusal(broker(), d, "binding", "BINDING_MISMATCH");
  });

  it("refuses a report whose signature does not verify (one byte changed after signing), at verify", async () => {
    // Signed over a measurement one byte off, then changed to MEASUREMENT (at 0x90), which the
    // policy lists: only the signature is wrong.
    const d = await deploy({
      measurement: Uint8Array.of(0x5b, ...MEASUREMENT.subarray(1)),
      alter: (report) => {
        report[0x90] = 0x5a;
      },
    });
    await expectAttestationRefusal(broker(), d, "verify", "SNP_REPORT_SIGNATURE_INVALID");
  });

  it("refuses evidence whose VCEK chains to another AMD root than the simulator's, at verify", async () => {
    const d = await deploy({ seed: "an-other-root-of-trust" });
    // Same names as the simulator's certificates, another key: the VCEK does not verify under its ASK.
    await expectAttestationRefusal(broker(), d, "verify", "CERT_SIGNATURE_INVALID");
  });

  it("refuses a nonce answer signed by another key than the attested signing key, at nonce", async () => {
    const d = await deploy();
    const kbs = broker();
    const forger: EnclaveKeys = { signing: nacl.sign.keyPair(), sealing: d.keys.sealing };
    const error = await rejectionOf(kbs.release(await requestFor(kbs, d, KEY_A, forger)), BrokerError);
    expect({ code: error.code, stage: error.stage }).toEqual({ code: "KBS_ATTESTATION_FAILED", stage: "nonce" });
  });

  it("refuses a model digest the release policy does not allow: MODEL_NOT_ALLOWED at manifest", async () => {
    const policy = releasePolicy();
    const kbs = broker([
      {
        keyId: KEY_A,
        key: KEY_BYTES_A,
        policy: { ...policy, manifest: { ...policy.manifest, allowedModelDigests: ["cd".repeat(32)] } },
      },
    ]);
    await expectAttestationRefusal(kbs, await deploy(), "manifest", "MODEL_NOT_ALLOWED");
  });

  it("releases each key under its own release policy only, and boxes that key's bytes", async () => {
    // Key A's policy accepts MEASUREMENT; key B's accepts only OTHER_MEASUREMENT.
    const kbs = broker([
      { keyId: KEY_A, key: KEY_BYTES_A, policy: releasePolicy(MEASUREMENT) },
      { keyId: KEY_B, key: KEY_BYTES_B, policy: releasePolicy(OTHER_MEASUREMENT) },
    ]);
    // An enclave measuring MEASUREMENT whose manifest seals under B: A's policy would pass it.
    const underB = await deploy({ keyId: KEY_B });
    const refused = await rejectionOf(kbs.release(await requestFor(kbs, underB, KEY_B)), BrokerError);
    expect({ code: refused.code, stage: refused.stage }).toEqual({ code: "KBS_ATTESTATION_FAILED", stage: "appraise" });
    expect(refused.detail).toContain("SNP_MEASUREMENT_NOT_ALLOWED");
    // Each key to the enclave its own policy accepts, with its own bytes.
    for (const [keyId, measurement, bytes] of [
      [KEY_A, MEASUREMENT, KEY_BYTES_A],
      [KEY_B, OTHER_MEASUREMENT, KEY_BYTES_B],
    ] as const) {
      const d = await deploy({ keyId, measurement });
      const body = await requestFor(kbs, d, keyId);
      const { wrapped, record } = await kbs.release(body);
      expect(record.keyId).toBe(keyId);
      const key = unwrapModelKey(wrapped, d.keys.sealing.secretKey, {
        keyId,
        challenge: base64url.decode(body.challenge),
        documentDigest: d.documentDigest,
      });
      expect(toHex(key)).toBe(toHex(bytes));
    }
  });

  it("spends the challenge of a request whose key id is malformed, but not of one refused before (docs/errors.md)", async () => {
    const kbs = broker();
    const d = await deploy();
    // A field that is not a string: refused before the challenge is looked at; it stays usable.
    const kept = await requestFor(kbs, d);
    expect(await rejectionOf(kbs.release({ ...kept, keyId: 7 }), BrokerError)).toMatchObject({
      code: "KBS_REQUEST_MALFORMED",
      message: "release request: keyId: expected a string, found number",
    });
    await expect(kbs.release(kept)).resolves.toMatchObject({ record: { keyId: KEY_A } });
    // A key id of the wrong form: checked after the challenge is spent, so the challenge is gone.
    const spent = await requestFor(kbs, d);
    expect(await rejectionOf(kbs.release({ ...spent, keyId: "not a key id" }), BrokerError)).toMatchObject({
      code: "KBS_REQUEST_MALFORMED",
      message: "release request: keyId: expected 1..200 characters of A-Z a-z 0-9 . _ : -",
    });
    expect(await rejectionOf(kbs.release(spent), BrokerError)).toMatchObject({ code: "KBS_CHALLENGE_UNKNOWN" });
  });
});
