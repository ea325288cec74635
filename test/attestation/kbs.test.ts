/**
 * The key broker (attestation/kbs/): it releases a model key only to an enclave whose document
 * passes the key's release policy and whose attested manifest seals its model under that key id,
 * only against a fresh single-use challenge, and only boxed to the attested X25519 key.
 */
import { request as httpRequest } from "node:http";
import { base64url } from "jose";
import nacl from "tweetnacl";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { appraise } from "../../attestation/appraise.ts";
import { computeReportData } from "../../attestation/binding.ts";
import { fromHex, toHex } from "../../attestation/bytes.ts";
import { tdxCollateralWire } from "../../attestation/collateral.ts";
import {
  clearVerifiedDocumentCache,
  createAttestationDocument,
  createNonceAnswer,
  type EnclaveKeys,
} from "../../attestation/document.ts";
import { ConfigurationError } from "../../attestation/errors.ts";
import { parseDocumentEvidence, verifyDocumentEvidence } from "../../attestation/evidence.ts";
import { BrokerError, type BrokerKey, CLIENT_LIMITS, KeyBroker, releaseRisks } from "../../attestation/kbs/broker.ts";
import { serveBroker } from "../../attestation/kbs/cli-impl.ts";
import { unwrapModelKey, wrapModelKey } from "../../attestation/kbs/protocol.ts";
import {
  type BrokerLogEntry,
  createBrokerApp,
  limitBucket,
  listenBroker,
  MAX_RELEASE_BYTES,
  type ReleaseLogEntry,
} from "../../attestation/kbs/server.ts";
import {
  type InsecureSimulatedTdxCollateralOptions,
  insecureSimulatedAmdHierarchy,
  insecureSimulatedIntelHierarchy,
  insecureSimulatedTdxCollateral,
  type SimulatedSnpReportOptions,
  type SimulatedTdxQuoteOptions,
  simulateSnpReport,
} from "../../attestation/sim/index.ts";
import { INSECURE_SIMULATOR_EVIDENCE_FOUND } from "../../attestation/sim/names.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { anchorsForPolicy, type ClientPolicy, policyRisks } from "../../client/policy.ts";
import { devManifest } from "../../manifests/dev.ts";
import { manifestDigest } from "../../manifests/digest.ts";
import { generateManifestSigningKey, signManifest } from "../../manifests/sign.ts";
import { encodeEnvelopePrefix } from "../../sealed/envelope.ts";
import { enclaveSealingKeyFromSecretKey } from "../../sealed/keys.ts";
import { ReplayGuard } from "../../sealed/replay.ts";
import { openRequest } from "../../sealed/request.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { simulatedTdxDocument } from "../helpers/simulated-document.ts";

// Counted: a refused release verifies the evidence once, not again for its log line.
vi.mock("../../attestation/evidence.ts", async (importOriginal) => {
  const actual = await importOriginal<typeof import("../../attestation/evidence.ts")>();
  return { ...actual, verifyDocumentEvidence: vi.fn(actual.verifyDocumentEvidence) };
});

const MEASUREMENT = new Uint8Array(48).fill(0x5a);
const KEY_ID = "tiny-v1";
const SEALED_SHA256 = "ab".repeat(32);
const MODEL_KEY = nacl.randomBytes(32);

interface Deployment {
  keys: EnclaveKeys;
  document: string;
  documentDigest: string;
  manifestDigest: string;
}

let operatorPublic: Awaited<ReturnType<typeof generateManifestSigningKey>>["publicJwk"];
let sealedDeployment: Deployment;
let plainDeployment: Deployment;
let otherKeyDeployment: Deployment;
/** Sealed as sealedDeployment, under a manifest whose policyFlags refuse SMT (which the simulated guest has). */
let noSmtDeployment: Deployment;
let policy: ClientPolicy;

async function deploy(
  model: NonNullable<NonNullable<Parameters<typeof devManifest>[0]>["model"]>,
  operator: { privateJwk: unknown },
  reportOptions: Partial<SimulatedSnpReportOptions> = {},
  tee: NonNullable<Parameters<typeof devManifest>[0]>["tee"] = {},
) {
  const manifestJws = await signManifest(devManifest({ model, tee }), operator.privateJwk as never);
  const keys: EnclaveKeys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
  const hierarchy = insecureSimulatedAmdHierarchy();
  const manifestSha256 = await manifestDigest(manifestJws);
  const reportData = await computeReportData({
    signingPublicKey: keys.signing.publicKey,
    sealingPublicKey: keys.sealing.publicKey,
    manifestDigest: manifestSha256,
  });
  const report = simulateSnpReport(hierarchy, { reportData, measurement: MEASUREMENT, ...reportOptions });
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
  return { keys, document, documentDigest: digest, manifestDigest: toHex(manifestSha256) };
}

/** A simulated TD deployment (the sealed dev manifest signed by `operator`), its quote made with `quote`'s options. */
async function tdxDeployment(
  operator: { privateJwk: unknown },
  quote: Partial<SimulatedTdxQuoteOptions> = {},
): Promise<Deployment> {
  const manifestJws = await signManifest(
    devManifest({ model: { sha256: SEALED_SHA256, sealedAtRest: true, keyId: KEY_ID } }),
    operator.privateJwk as never,
  );
  const keys: EnclaveKeys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
  const document = await simulatedTdxDocument({ keys, manifestJws, mrtd: MEASUREMENT, now: new Date(), quote });
  return {
    keys,
    document,
    documentDigest: toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(document)))),
    manifestDigest: toHex(await manifestDigest(manifestJws)),
  };
}

/** The collateral a simulated TD's enclave serves (issued an hour back, as it does), with `options`. */
function simulatedTdxCollateral(options: Partial<InsecureSimulatedTdxCollateralOptions> = {}) {
  const issueDate = new Date(Date.now() - 3600_000);
  return {
    tdx: tdxCollateralWire(
      insecureSimulatedTdxCollateral(insecureSimulatedIntelHierarchy(), { issueDate, ...options }),
    ),
  };
}

/** The release policy `cloister up` writes for `tee`: this operator's key and the sealed model. */
function upReleasePolicy(tee: "sim-snp" | "sim-tdx", operatorKey: typeof operatorPublic): ClientPolicy {
  return simulatorClientPolicy({
    tee,
    measurement: toHex(MEASUREMENT),
    operatorKey,
    modelSha256: SEALED_SHA256,
    serviceName: devManifest().service.name,
  });
}

beforeAll(async () => {
  const operator = await generateManifestSigningKey("EdDSA");
  operatorPublic = operator.publicJwk;
  const sealedModel = { sha256: SEALED_SHA256, sealedAtRest: true, keyId: KEY_ID };
  sealedDeployment = await deploy(sealedModel, operator);
  plainDeployment = await deploy({}, operator);
  otherKeyDeployment = await deploy({ ...sealedModel, keyId: "another-key" }, operator);
  noSmtDeployment = await deploy(
    sealedModel,
    operator,
    {},
    {
      platforms: ["sim-snp"],
      minimumTcb: { tdx: null },
      policyFlags: { smtAllowed: false },
    },
  );
  policy = upReleasePolicy("sim-snp", operatorPublic);
}, 120_000);

function broker(releasePolicy: ClientPolicy = policy, options: ConstructorParameters<typeof KeyBroker>[1] = {}) {
  return new KeyBroker([{ keyId: KEY_ID, key: MODEL_KEY, policy: releasePolicy }], options);
}

/** A broker log that keeps its release lines in `lines` and fails on a fault line (none expected). */
function releaseLines(lines: ReleaseLogEntry[]): (entry: BrokerLogEntry) => void {
  return (entry) => {
    if (entry.event !== "release") throw new Error(`a fault was logged: ${entry.reason}`);
    lines.push(entry);
  };
}

/** A broker (holding KEY_ID under `policy`) whose `failing` members throw `error` (a stand-in fault). */
class FailingBroker extends KeyBroker {
  constructor(
    readonly error: unknown,
    readonly failing: readonly ("release" | "challenge" | "keyIds")[],
  ) {
    super([{ keyId: KEY_ID, key: MODEL_KEY, policy }]);
  }
  #fails(member: FailingBroker["failing"][number]): void {
    if (this.failing.includes(member)) throw this.error;
  }
  override release(request: unknown) {
    this.#fails("release");
    return super.release(request);
  }
  override challenge() {
    this.#fails("challenge");
    return super.challenge();
  }
  override get keyIds() {
    this.#fails("keyIds");
    return super.keyIds;
  }
}

async function request(kbs: KeyBroker, d: Deployment, overrides: Record<string, unknown> = {}) {
  const { challenge } = kbs.challenge();
  const answer = await createNonceAnswer({
    keys: d.keys,
    document: d.document,
    nonce: base64url.decode(challenge),
    now: new Date(),
  });
  return { body: { keyId: KEY_ID, document: d.document, challenge, answer, ...overrides }, challenge };
}

/** A release request for `d` (by default the sealed deployment), answering `challenge`. */
async function releaseBody(challenge: string, d: Deployment = sealedDeployment) {
  const answer = await createNonceAnswer({
    keys: d.keys,
    document: d.document,
    nonce: base64url.decode(challenge),
    now: new Date(),
  });
  return { keyId: KEY_ID, document: d.document, challenge, answer };
}

/** Takes a challenge from `app` and posts `d`'s release (by default the sealed deployment's) answering it. */
async function releaseThrough(
  app: ReturnType<typeof createBrokerApp>,
  d: Deployment = sealedDeployment,
): Promise<Response> {
  const { challenge } = (await (await app.request("/v1/kbs/challenge", { method: "POST" })).json()) as {
    challenge: string;
  };
  return app.request("/v1/kbs/release", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(await releaseBody(challenge, d)),
  });
}

/**
 * A release posted to `app` from `address` whose body is sent, and ended, only when `send` is
 * called: the broker has looked at the request (its limits, its place among those under way) by then.
 */
function heldRelease(app: ReturnType<typeof createBrokerApp>, address: string) {
  let send: (text: string) => void = () => {};
  const response = app.request(
    "/v1/kbs/release",
    {
      method: "POST",
      headers: { "content-type": "application/json" },
      duplex: "half",
      body: new ReadableStream<Uint8Array>({
        start(controller) {
          send = (text) => {
            controller.enqueue(new TextEncoder().encode(text));
            controller.close();
          };
        },
      }),
    } as RequestInit,
    { incoming: { socket: { remoteAddress: address } } },
  );
  return { response, send: (text: string) => send(text) };
}

/**
 * The wrapping key as docs/protocol.md states it, written out apart from protocol.ts:
 * SHA-512("cloister/kbs/model-key/v2" ‖ nacl.box.before(peer, own))'s first 32 bytes.
 */
function brokerWrapKey(peerPublicKey: Uint8Array, ownSecretKey: Uint8Array): Uint8Array {
  const label = new TextEncoder().encode("cloister/kbs/model-key/v2");
  const shared = nacl.box.before(peerPublicKey, ownSecretKey);
  const input = new Uint8Array(label.length + shared.length);
  input.set(label);
  input.set(shared, label.length);
  return nacl.hash(input).slice(0, 32);
}

describe("key broker", () => {
  it("releases the key to the attested enclave only: boxed to its attested X25519 key, bound to the challenge and document", async () => {
    const kbs = broker();
    const { body, challenge } = await request(kbs, sealedDeployment);
    const { wrapped, record } = await kbs.release(body);
    expect(record).toEqual({
      keyId: KEY_ID,
      tee: "sev-snp",
      simulated: true,
      measurement: toHex(MEASUREMENT),
      manifestDigest: sealedDeployment.manifestDigest,
      documentDigest: sealedDeployment.documentDigest,
    });
    expect(JSON.stringify(wrapped)).not.toContain(base64url.encode(MODEL_KEY));
    const expected = {
      keyId: KEY_ID,
      challenge: base64url.decode(challenge),
      documentDigest: sealedDeployment.documentDigest,
    };
    const key = unwrapModelKey(wrapped, sealedDeployment.keys.sealing.secretKey, expected);
    expect(toHex(key)).toBe(toHex(MODEL_KEY));
    // Any other X25519 key (another enclave, the host) cannot open it.
    expect(() => unwrapModelKey(wrapped, nacl.box.keyPair().secretKey, expected)).toThrow(
      expect.objectContaining({ code: "KBS_UNWRAP_FAILED" }),
    );
    // Bound: the same box presented for another challenge, document or key id is refused, naming
    // the field (the challenge is not shown).
    const unwrapFor = (changed: Partial<typeof expected>) => () =>
      unwrapModelKey(wrapped, sealedDeployment.keys.sealing.secretKey, { ...expected, ...changed });
    expect(unwrapFor({ challenge: nacl.randomBytes(32) })).toThrow(
      expect.objectContaining({
        code: "KBS_BINDING_MISMATCH",
        message:
          "wrapped model key challenge: expected the challenge this boot answered, found another (a box for another release)",
      }),
    );
    expect(unwrapFor({ documentDigest: "00".repeat(32) })).toThrow(
      expect.objectContaining({
        code: "KBS_BINDING_MISMATCH",
        message: `wrapped model key document digest: expected ${"00".repeat(32)}, found ${sealedDeployment.documentDigest}`,
      }),
    );
    expect(() =>
      unwrapModelKey({ ...wrapped, keyId: "another-key" }, sealedDeployment.keys.sealing.secretKey, {
        ...expected,
        keyId: "another-key",
      }),
    ).toThrow(
      expect.objectContaining({
        code: "KBS_BINDING_MISMATCH",
        message: `wrapped model key keyId: expected "another-key", found "${KEY_ID}"`,
      }),
    );
    // A box of another layout (an impostor broker's): its length is named; nothing of it is shown.
    const epk = nacl.box.keyPair();
    const nonce = nacl.randomBytes(24);
    /** `plaintext` boxed to this enclave as a broker would box it. */
    const rebox = (plaintext: Uint8Array) => ({
      ...wrapped,
      epk: base64url.encode(epk.publicKey),
      nonce: base64url.encode(nonce),
      box: base64url.encode(
        nacl.secretbox(plaintext, nonce, brokerWrapKey(sealedDeployment.keys.sealing.publicKey, epk.secretKey)),
      ),
    });
    // 40 bytes, and 123: one short of a box with a 1-byte key id (one announcing none is never whole).
    for (const length of [40, 123]) {
      expect(() =>
        unwrapModelKey(rebox(new Uint8Array(length)), sealedDeployment.keys.sealing.secretKey, expected),
      ).toThrow(
        expect.objectContaining({
          code: "KBS_BINDING_MISMATCH",
          message: `wrapped model key plaintext: expected at least 124 bytes, found ${length}`,
        }),
      );
    }
    // The broker's own plaintext with one byte of its domain tag changed, boxed again to this enclave:
    // every other field is this boot's, so only the tag refuses it (a box made for another purpose).
    const opened = nacl.secretbox.open(
      base64url.decode(wrapped.box),
      base64url.decode(wrapped.nonce),
      brokerWrapKey(base64url.decode(wrapped.epk), sealedDeployment.keys.sealing.secretKey),
    ) as Uint8Array;
    expect(new TextDecoder().decode(opened.subarray(0, 25))).toBe("cloister/kbs/model-key/v2");
    // One byte more than its key id announces: every field is this boot's, but the key would be
    // read one byte off, so the length refuses it.
    expect(() =>
      unwrapModelKey(rebox(Uint8Array.of(...opened, 0)), sealedDeployment.keys.sealing.secretKey, expected),
    ).toThrow(
      expect.objectContaining({
        code: "KBS_BINDING_MISMATCH",
        message: "wrapped model key plaintext: expected 130 bytes (with the 7-byte key id it announces), found 131",
      }),
    );
    opened[24] = 0x33; // ".../v3"
    expect(() => unwrapModelKey(rebox(opened), sealedDeployment.keys.sealing.secretKey, expected)).toThrow(
      expect.objectContaining({
        code: "KBS_BINDING_MISMATCH",
        message: 'wrapped model key tag: expected "cloister/kbs/model-key/v2", found other bytes',
      }),
    );
    expect(() => unwrapModelKey({ ...wrapped, keyId: "x" }, sealedDeployment.keys.sealing.secretKey, expected)).toThrow(
      expect.objectContaining({ code: "KBS_KEY_MISMATCH" }),
    );
    // Whoever answers in the broker's place chooses this text: it cannot break the one-line error,
    // and its quote is escaped, so it cannot end the quoted value early and add words of its own.
    expect(() =>
      unwrapModelKey(
        { ...wrapped, keyId: 'x"\n{"event":"ready"}\r\u001b[2J' },
        sealedDeployment.keys.sealing.secretKey,
        expected,
      ),
    ).toThrow(
      expect.objectContaining({
        code: "KBS_KEY_MISMATCH",
        message: `wrapped model key keyId: expected "${KEY_ID}", found "x\\"\uFFFD{\\"event\\":\\"ready\\"}\uFFFD\uFFFD[2J"`,
      }),
    );
    // The broker refuses to wrap to a low-order point (an enclave key it could not keep secret).
    expect(() =>
      wrapModelKey({
        keyId: KEY_ID,
        key: new Uint8Array(32),
        enclaveSealingPublicKey: new Uint8Array(32),
        challenge: new Uint8Array(32),
        documentDigest: "00".repeat(32),
      }),
    ).toThrow("enclaveSealingPublicKey: expected an X25519 public key, found a low-order point");
    // An answer not shaped as a wrapped key: refused before anything is opened, naming the field.
    for (const [answer, message] of [
      [null, "wrapped model key: expected a JSON object"],
      [{ ...wrapped, v: 3 }, "wrapped model key v: expected 2, found 3"],
      // A string v is quoted as keyId is (describeUntrusted): it reaches one-line errors and logs.
      [
        { ...wrapped, v: '2\n{"event":"ready"}\u001b[2J' },
        'wrapped model key v: expected 2, found "2\uFFFD{\\"event\\":\\"ready\\"}\uFFFD[2J"',
      ],
      [{ ...wrapped, v: { v: 2 } }, "wrapped model key v: expected 2, found an object"],
      [{ ...wrapped, epk: 7 }, "wrapped model key epk: expected base64url"],
      [
        { ...wrapped, nonce: base64url.encode(new Uint8Array(12)) },
        "wrapped model key nonce: expected 24 bytes, found 12",
      ],
      // A low-order point (here 0, and 1): the X25519 output is all zero, a wrapping key anyone knows.
      [
        { ...wrapped, epk: base64url.encode(new Uint8Array(32)) },
        "wrapped model key epk: expected an X25519 public key, found a low-order point",
      ],
      [
        { ...wrapped, epk: base64url.encode(Uint8Array.of(1, ...new Uint8Array(31))) },
        "wrapped model key epk: expected an X25519 public key, found a low-order point",
      ],
    ] as const) {
      expect(() => unwrapModelKey(answer, sealedDeployment.keys.sealing.secretKey, expected)).toThrow(
        expect.objectContaining({ code: "KBS_RESPONSE_MALFORMED", message }),
      );
    }
  });

  it("wraps under a key of its own: a wrapped key repackaged as a sealed request does not decrypt (DECRYPTION_FAILED)", async () => {
    // The enclave's X25519 key opens both wrapped model keys and clients' sealed requests; the
    // host holds every wrapped key it relayed and may hand one to the enclave as a request.
    const kbs = broker();
    const { body } = await request(kbs, sealedDeployment);
    const { wrapped } = await kbs.release(body);
    const enclaveKey = await enclaveSealingKeyFromSecretKey(sealedDeployment.keys.sealing.secretKey);
    const box = base64url.decode(wrapped.box);
    const prefix = encodeEnvelopePrefix(
      "chat",
      enclaveKey.keyId,
      box.length,
      base64url.decode(wrapped.epk),
      base64url.decode(wrapped.nonce),
    );
    const envelope = new Uint8Array(prefix.length + box.length);
    envelope.set(prefix);
    envelope.set(box, prefix.length);
    const error = await openRequest(envelope, enclaveKey, new ReplayGuard(), Date.now()).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: "DECRYPTION_FAILED" });
  });

  it("refuses a v 1 wrapped key (nacl.box straight to the sealing key), naming v, before opening it", async () => {
    const kbs = broker();
    const { body, challenge } = await request(kbs, sealedDeployment);
    const { wrapped } = await kbs.release(body);
    // What a broker from before v 2 answered: the same plaintext (v1 tag), nacl.box to the enclave.
    const epk = nacl.box.keyPair();
    const nonce = nacl.randomBytes(24);
    const id = new TextEncoder().encode(KEY_ID);
    const plaintext = new Uint8Array([
      ...new TextEncoder().encode("cloister/kbs/model-key/v1\u0000"),
      ...base64url.decode(challenge),
      ...fromHex(sealedDeployment.documentDigest),
      id.length,
      ...id,
      ...MODEL_KEY,
    ]);
    const v1 = {
      v: 1,
      keyId: KEY_ID,
      epk: base64url.encode(epk.publicKey),
      nonce: base64url.encode(nonce),
      box: base64url.encode(nacl.box(plaintext, nonce, sealedDeployment.keys.sealing.publicKey, epk.secretKey)),
    };
    const expected = {
      keyId: KEY_ID,
      challenge: base64url.decode(challenge),
      documentDigest: sealedDeployment.documentDigest,
    };
    expect(() => unwrapModelKey(v1, sealedDeployment.keys.sealing.secretKey, expected)).toThrow(
      expect.objectContaining({
        code: "KBS_RESPONSE_MALFORMED",
        message: "wrapped model key v: expected 2, found 1",
      }),
    );
    // Relabelled v 2, the old box does not open under the v 2 wrapping key.
    expect(() => unwrapModelKey({ ...v1, v: 2 }, sealedDeployment.keys.sealing.secretKey, expected)).toThrow(
      expect.objectContaining({ code: "KBS_UNWRAP_FAILED" }),
    );
    expect(wrapped.v).toBe(2);
  });

  it("refuses the simulator unless the release policy trusts it (the default policy does not)", async () => {
    const strict = { ...policy, attestation: { ...policy.attestation, trustSimulator: false } };
    const kbs = broker(strict);
    const body = (await request(kbs, sealedDeployment)).body;
    const verifications = vi.mocked(verifyDocumentEvidence).mock.calls.length;
    const error = await rejectionOf(kbs.release(body), BrokerError);
    // The evidence is verified once: not again under the simulator's roots to name the refusal.
    expect(vi.mocked(verifyDocumentEvidence).mock.calls.length - verifications).toBe(1);
    // Named as simulated evidence, from the ASK's bytes: no simulated hierarchy is derived for it.
    expect(error).toMatchObject({ code: "KBS_ATTESTATION_FAILED", status: 403, stage: "appraise" });
    expect(error.message).toContain("SIMULATED_EVIDENCE_NOT_TRUSTED");
    // The broker's log says what fits a release policy written by hand: its trustSimulator, or hardware.
    expect(error.detail).toBe(
      `attestation failed at stage appraise: SIMULATED_EVIDENCE_NOT_TRUSTED: ${INSECURE_SIMULATOR_EVIDENCE_FOUND}, ` +
        `which the release policy of key "${KEY_ID}" does not trust (attestation.trustSimulator: false); this enclave ` +
        "runs on the simulator: deploy it on SEV-SNP or TDX hardware, or, for development only, set " +
        "attestation.trustSimulator: true in that release policy and restart the broker (kbs serve then keeps the " +
        "key on loopback: anyone who reaches it can forge such evidence)",
    );
    // The SDK's refusal (its cause, the same code) keeps its words for a client: `cloister up`'s policy.
    expect(error.cause).toMatchObject({ code: "SIMULATED_EVIDENCE_NOT_TRUSTED", stage: "appraise" });
    const sdkWords =
      "use a policy that trusts it for local development (`cloister up` writes one: .cloister/policy.json)";
    expect((error.cause as Error).message).toContain(sdkWords);
    expect(error.detail).not.toContain(".cloister/policy.json");
    // And so does the log line of the attempt (its reason, the detail).
    const logs: BrokerLogEntry[] = [];
    expect((await releaseThrough(createBrokerApp(broker(strict), (e) => logs.push(e)))).status).toBe(403);
    expect(logs).toEqual([
      expect.objectContaining({ code: "KBS_ATTESTATION_FAILED", stage: "appraise", reason: error.detail }),
    ]);
  });

  it("refuses a measurement the release policy does not list", async () => {
    const other = simulatorClientPolicy({
      tee: "sim-snp",
      measurement: "11".repeat(48),
      operatorKey: operatorPublic,
      modelSha256: SEALED_SHA256,
      serviceName: devManifest().service.name,
    });
    const kbs = broker(other);
    const body = (await request(kbs, sealedDeployment)).body;
    const verifications = vi.mocked(verifyDocumentEvidence).mock.calls.length;
    const error = await rejectionOf(kbs.release(body), BrokerError);
    expect(vi.mocked(verifyDocumentEvidence).mock.calls.length - verifications).toBe(1);
    // The stage and the verifier's code (its AttestationError, the cause) in what the caller is told;
    // the field, the listed and the found measurement in the reason the broker logs.
    expect(error).toMatchObject({
      code: "KBS_ATTESTATION_FAILED",
      stage: "appraise",
      message:
        "attestation failed at stage appraise (SNP_MEASUREMENT_NOT_ALLOWED); the key broker's log has the reason",
      cause: expect.objectContaining({ stage: "appraise", code: "SNP_MEASUREMENT_NOT_ALLOWED" }),
    });
    expect(error.detail).toMatch(/^attestation failed at stage appraise: SNP_MEASUREMENT_NOT_ALLOWED: /);
    expect(error.detail).toContain(`MEASUREMENT: expected ${"11".repeat(48)}, found ${toHex(MEASUREMENT)} (`);
    // The broker's log says which measurement it refused (how an operator learns a new image's).
    expect(error.evidence).toEqual({ tee: "sev-snp", simulated: true, measurement: toHex(MEASUREMENT) });
    // Also for an evidence type the policy does not accept (checked after the document verified).
    // Both sections set, only TDX accepted (a policy naming a type whose section is null does not parse).
    const tdxSection = upReleasePolicy("sim-tdx", operatorPublic).attestation.tdx;
    const snpRefused = broker({
      ...policy,
      acceptedEvidence: ["tdx"],
      attestation: { ...policy.attestation, tdx: tdxSection },
    });
    const notAccepted = await rejectionOf(
      snpRefused.release((await request(snpRefused, sealedDeployment)).body),
      BrokerError,
    );
    expect(notAccepted).toMatchObject({ stage: "appraise", message: expect.stringContaining("TEE_NOT_ACCEPTED") });
    expect(notAccepted.evidence).toEqual({ tee: "sev-snp", simulated: true, measurement: toHex(MEASUREMENT) });
    const logs: BrokerLogEntry[] = [];
    await releaseThrough(createBrokerApp(kbs, (e) => logs.push(e)));
    expect(logs).toEqual([
      expect.objectContaining({ outcome: "refused", code: "KBS_ATTESTATION_FAILED", measurement: toHex(MEASUREMENT) }),
    ]);
  });

  it("refuses a manifest that does not seal its model under this key id", async () => {
    const anyModel = { ...policy, manifest: { ...policy.manifest, allowedModelDigests: { skip: { reason: "test" } } } };
    for (const d of [plainDeployment, otherKeyDeployment]) {
      const kbs = broker(anyModel);
      const error = await rejectionOf(kbs.release((await request(kbs, d)).body), BrokerError);
      expect(error).toMatchObject({ code: "KBS_KEY_NOT_IN_MANIFEST", status: 403 });
    }
    // Refused after the enclave verified: its log line names what was verified (public values), as
    // a release's does, so an operator can tell which boot and manifest asked for the key.
    const logs: BrokerLogEntry[] = [];
    const response = await releaseThrough(
      createBrokerApp(broker(anyModel), (e) => logs.push(e)),
      otherKeyDeployment,
    );
    expect(response.status).toBe(403);
    expect(logs).toEqual([
      {
        event: "release",
        outcome: "refused",
        keyId: KEY_ID,
        code: "KBS_KEY_NOT_IN_MANIFEST",
        stage: null,
        reason: `manifest model.keyId: expected "${KEY_ID}" with sealedAtRest true, found "another-key" (sealedAtRest true)`,
        tee: "sev-snp",
        simulated: true,
        measurement: toHex(MEASUREMENT),
        manifestDigest: otherKeyDeployment.manifestDigest,
        documentDigest: otherKeyDeployment.documentDigest,
        peer: null,
        ms: expect.any(Number),
      },
    ]);
  });

  it("needs only model.keyId to know the model is sealed: a manifest with the key id and no sealing does not parse", () => {
    // The broker's KBS_KEY_NOT_IN_MANIFEST check compares the key id alone, as parseManifest ties it to sealedAtRest.
    for (const model of [
      { sha256: SEALED_SHA256, sealedAtRest: false, keyId: KEY_ID },
      { sha256: SEALED_SHA256, sealedAtRest: true, keyId: null },
    ]) {
      expect(() => devManifest({ model })).toThrow(
        expect.objectContaining({
          code: "MANIFEST_FIELD_INVALID",
          issues: [expect.objectContaining({ path: "model.keyId" })],
        }),
      );
    }
  });

  it("refuses an enclave whose evidence breaks its signed manifest's tee section, though the release policy accepts it", async () => {
    const kbs = broker();
    const error = await rejectionOf(kbs.release((await request(kbs, noSmtDeployment)).body), BrokerError);
    expect(error).toMatchObject({ code: "KBS_ATTESTATION_FAILED", stage: "manifest", status: 403 });
    expect(error.detail).toBe(
      "attestation failed at stage manifest: MANIFEST_POLICY_FLAG: manifest tee.policyFlags: POLICY.SMT expected clear (smtAllowed: false), found set; " +
        "manifest tee.policyFlags: PLATFORM_INFO.SMT_EN expected clear (smtAllowed: false), found set",
    );
  });

  it("refuses a manifest signed by a key the release policy does not trust, and a TCB below its minimum", async () => {
    // The same deployment the release policy otherwise accepts (released below), refused for one field each.
    const accepting = broker();
    const released = await accepting.release((await request(accepting, sealedDeployment)).body);
    expect(released.record.keyId).toBe(KEY_ID);
    const stranger = await generateManifestSigningKey("EdDSA");
    const otherSigner = broker({ ...policy, manifest: { ...policy.manifest, trustedSigners: [stranger.publicJwk] } });
    const unsigned = await rejectionOf(
      otherSigner.release((await request(otherSigner, sealedDeployment)).body),
      BrokerError,
    );
    expect(unsigned).toMatchObject({ code: "KBS_ATTESTATION_FAILED", status: 403, stage: "manifest" });
    expect(unsigned.detail).toContain("MANIFEST_SIGNATURE_INVALID");
    const snp = policy.attestation.snp!;
    const newerTcb = broker({
      ...policy,
      attestation: { ...policy.attestation, snp: { ...snp, minimumTcb: { ...snp.minimumTcb, snp: 255 } } },
    });
    const oldTcb = await rejectionOf(newerTcb.release((await request(newerTcb, sealedDeployment)).body), BrokerError);
    expect(oldTcb).toMatchObject({ code: "KBS_ATTESTATION_FAILED", status: 403, stage: "appraise" });
    expect(oldTcb.detail).toContain("SNP_TCB_TOO_LOW");
  });

  it("refuses a model digest the release policy does not allow", async () => {
    const kbs = broker({ ...policy, manifest: { ...policy.manifest, allowedModelDigests: ["cd".repeat(32)] } });
    const error = await rejectionOf(kbs.release((await request(kbs, sealedDeployment)).body), BrokerError);
    expect(error).toMatchObject({ code: "KBS_ATTESTATION_FAILED", stage: "manifest" });
  });

  it("spends a challenge on any attempt that looks at it: a replayed, unknown or expired challenge is refused", async () => {
    let now = Date.now();
    const kbs = broker(policy, { now: () => new Date(now), challengeTtlMs: 1000 });
    const { body } = await request(kbs, sealedDeployment);
    // Refused as malformed before the challenge is looked at: it stays usable.
    const tooLong = { ...body, answer: "x".repeat(4097) };
    expect(await rejectionOf(kbs.release(tooLong), BrokerError)).toMatchObject({
      code: "KBS_REQUEST_MALFORMED",
      message: "release request: answer: expected at most 4096 characters, found 4097",
    });
    expect(
      await rejectionOf(kbs.release({ ...body, document: "x".repeat(512 * 1024 + 1) }), BrokerError),
    ).toMatchObject({
      message: `release request: document: expected at most ${512 * 1024} characters (512 Ki, the key broker's bound; a client reads documents of up to 4 MiB, so such an enclave may verify for clients but gets no key from this broker), found ${512 * 1024 + 1}`,
    });
    await kbs.release(body);
    expect(await rejectionOf(kbs.release(body), BrokerError)).toMatchObject({
      code: "KBS_CHALLENGE_UNKNOWN",
      status: 400,
    });
    const forged = base64url.encode(nacl.randomBytes(32));
    expect(await rejectionOf(kbs.release({ ...body, challenge: forged }), BrokerError)).toMatchObject({
      code: "KBS_CHALLENGE_UNKNOWN",
    });
    const late = await request(kbs, sealedDeployment);
    now += 1001;
    expect(await rejectionOf(kbs.release(late.body), BrokerError)).toMatchObject({ code: "KBS_CHALLENGE_UNKNOWN" });
  });

  it("spends a challenge on a refused attempt too: answered right afterwards, it is refused (docs/protocol.md)", async () => {
    const kbs = broker();
    // Refused after the challenge was looked at: an unknown key id, and a nonce answer that fails.
    const unknownKey = (await request(kbs, sealedDeployment)).body;
    expect(await rejectionOf(kbs.release({ ...unknownKey, keyId: "nope" }), BrokerError)).toMatchObject({
      code: "KBS_KEY_UNKNOWN",
    });
    const badAnswer = (await request(kbs, sealedDeployment)).body;
    const other = (await request(kbs, sealedDeployment)).body;
    expect(await rejectionOf(kbs.release({ ...badAnswer, answer: other.answer }), BrokerError)).toMatchObject({
      code: "KBS_ATTESTATION_FAILED",
    });
    for (const body of [unknownKey, badAnswer]) {
      expect(await rejectionOf(kbs.release(body), BrokerError)).toMatchObject({ code: "KBS_CHALLENGE_UNKNOWN" });
    }
    // The same request on a challenge no attempt spent is released.
    await expect(kbs.release(other)).resolves.toMatchObject({ record: { keyId: KEY_ID } });
  });

  it("expires a challenge at exactly its lifetime: released 1 ms before it, refused at it", async () => {
    let now = Date.now();
    const kbs = broker(policy, { now: () => new Date(now), challengeTtlMs: 1000 });
    const atEdge = await request(kbs, sealedDeployment);
    const justBefore = await request(kbs, sealedDeployment);
    now += 999;
    await expect(kbs.release(justBefore.body)).resolves.toBeDefined();
    now += 1;
    expect(await rejectionOf(kbs.release(atEdge.body), BrokerError)).toMatchObject({
      code: "KBS_CHALLENGE_UNKNOWN",
      status: 400,
    });
  });

  it("refuses a nonce answer for another challenge (a replayed answer from an earlier release)", async () => {
    const kbs = broker();
    const first = await request(kbs, sealedDeployment);
    const second = await request(kbs, sealedDeployment);
    const error = await rejectionOf(kbs.release({ ...second.body, answer: first.body.answer }), BrokerError);
    expect(error).toMatchObject({ code: "KBS_ATTESTATION_FAILED", stage: "nonce" });
    expect(error.evidence).toEqual({ tee: "sev-snp", simulated: true, measurement: toHex(MEASUREMENT) });
  });

  it("TDX: releases with the collateral the enclave serves, refuses without it or with a malformed one", async () => {
    const operator = await generateManifestSigningKey("EdDSA");
    const tdx = await tdxDeployment(operator);
    const tdxPolicy = upReleasePolicy("sim-tdx", operator.publicJwk);
    const collateral = simulatedTdxCollateral();
    const kbs = broker(tdxPolicy);
    const released = await kbs.release((await request(kbs, tdx, { collateral })).body);
    expect(released.record).toMatchObject({ tee: "tdx", simulated: true });

    const withheld = await rejectionOf(kbs.release((await request(kbs, tdx)).body), BrokerError);
    expect(withheld).toMatchObject({ code: "KBS_ATTESTATION_FAILED", status: 403, stage: "appraise" });
    expect(withheld.message).toContain("TDX_TCB_STATUS_NOT_ACCEPTED");
    const malformed = await rejectionOf(
      kbs.release((await request(kbs, tdx, { collateral: { tdx: { ...collateral.tdx, crls: [] } } })).body),
      BrokerError,
    );
    expect(malformed).toMatchObject({ code: "KBS_REQUEST_MALFORMED", status: 400 });
  });

  it("TDX: the release policy `cloister up` writes pins what the simulated TD reports, and warns of the simulator only", async () => {
    const operator = await generateManifestSigningKey("EdDSA");
    const tdxPolicy = upReleasePolicy("sim-tdx", operator.publicJwk);
    // What `cloister up`'s key broker warns of at start: no TDX check skipped or left open.
    expect(releaseRisks(tdxPolicy)).toEqual(["trusts the INSECURE simulator: anyone can forge its evidence"]);
    const kbs = broker(tdxPolicy);
    const collateral = simulatedTdxCollateral();
    const released = await kbs.release((await request(kbs, await tdxDeployment(operator), { collateral })).body);
    expect(released.record).toMatchObject({ tee: "tdx", simulated: true });

    /** The violation codes a refused release names. */
    const refusedFor = async (quote: Partial<SimulatedTdxQuoteOptions>, served = collateral) => {
      const deployment = await tdxDeployment(operator, quote);
      const error = await rejectionOf(
        kbs.release((await request(kbs, deployment, { collateral: served })).body),
        BrokerError,
      );
      expect(error).toMatchObject({ code: "KBS_ATTESTATION_FAILED", status: 403, stage: "appraise" });
      return error.message.match(/\b(?:TDX|SNP)_[A-Z_]+/g);
    };
    // A TD the host launched with #VE on EPT violations (SEPT_VE_DISABLE clear).
    expect(await refusedFor({ tdAttributes: new Uint8Array(8) })).toEqual(["TDX_ATTRIBUTES_NOT_ALLOWED"]);
    expect(await refusedFor({ xfam: fromHex("0300000000000000") })).toEqual(["TDX_XFAM_NOT_ALLOWED"]);
    expect(await refusedFor({ mrseam: new Uint8Array(48).fill(7) })).toEqual(["TDX_MRSEAM_NOT_ALLOWED"]);
    // An older TDX module, with collateral that rates it UpToDate: refused by its TEE_TCB_SVN.
    const olderModule = Uint8Array.of(2, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    expect(await refusedFor({ teeTcbSvn: olderModule }, simulatedTdxCollateral({ teeTcbSvn: olderModule }))).toEqual([
      "TDX_TEE_TCB_SVN_TOO_LOW",
    ]);
    // Collateral of an older Intel TCB evaluation, still within its validity.
    expect(await refusedFor({}, simulatedTdxCollateral({ tcbEvaluationDataNumber: 16 }))).toEqual([
      "TDX_TCB_EVALUATION_TOO_OLD",
    ]);
  });

  it("SNP: the release policy `cloister up` writes pins HOST_DATA as the simulated guest reports it", async () => {
    const operator = await generateManifestSigningKey("EdDSA");
    const sealedModel = { sha256: SEALED_SHA256, sealedAtRest: true, keyId: KEY_ID };
    const snpPolicy = upReleasePolicy("sim-snp", operator.publicJwk);
    const kbs = broker(snpPolicy);
    const released = await kbs.release((await request(kbs, await deploy(sealedModel, operator))).body);
    expect(released.record).toMatchObject({ tee: "sev-snp", simulated: true });
    const hostData = await deploy(sealedModel, operator, { hostData: new Uint8Array(32).fill(1) });
    const error = await rejectionOf(kbs.release((await request(kbs, hostData)).body), BrokerError);
    expect(error).toMatchObject({ code: "KBS_ATTESTATION_FAILED", status: 403, stage: "appraise" });
    expect(error.message).toContain("SNP_HOST_DATA_MISMATCH");
  });

  it("refuses unknown keys and malformed requests with stable codes", async () => {
    const kbs = broker();
    expect(
      await rejectionOf(kbs.release((await request(kbs, sealedDeployment, { keyId: "nope" })).body), BrokerError),
    ).toMatchObject({
      code: "KBS_KEY_UNKNOWN",
      status: 404,
    });
    for (const bad of [null, [], "x", { keyId: KEY_ID }, { keyId: 1, document: "", challenge: "", answer: "" }]) {
      expect(await rejectionOf(kbs.release(bad), BrokerError)).toMatchObject({
        code: "KBS_REQUEST_MALFORMED",
        status: 400,
      });
    }
    for (const notObject of [null, [], "x"]) {
      expect((await rejectionOf(kbs.release(notObject), BrokerError)).message).toBe(
        "release request: expected a JSON object {keyId, document, challenge, answer}",
      );
    }
    // A key id no broker could hold is malformed (400), not an unknown key (404).
    expect(
      await rejectionOf(kbs.release((await request(kbs, sealedDeployment, { keyId: "has space" })).body), BrokerError),
    ).toMatchObject({
      code: "KBS_REQUEST_MALFORMED",
      status: 400,
      message: "release request: keyId: expected 1..200 characters of A-Z a-z 0-9 . _ : -",
    });
    // The lifetime a challenge is given with, in whole seconds.
    expect(kbs.challenge().expiresInSeconds).toBe(60);
    expect(broker(policy, { challengeTtlMs: 1999 }).challenge().expiresInSeconds).toBe(1);
  });

  it("keeps no challenge until it is answered: asking never fills anything; spent ones are bounded per lifetime", async () => {
    let now = Date.now();
    const kbs = broker(policy, { now: () => new Date(now), challengeTtlMs: 1000, maxSpentChallenges: 2 });
    for (let i = 0; i < 20_000; i++) kbs.challenge();
    await kbs.release((await request(kbs, sealedDeployment)).body);
    await rejectionOf(kbs.release((await request(kbs, sealedDeployment, { keyId: "nope" })).body), BrokerError);
    now += 900;
    const third = await request(kbs, sealedDeployment);
    expect(await rejectionOf(kbs.release(third.body), BrokerError)).toMatchObject({ code: "KBS_BUSY", status: 503 });
    // Refused for room, the challenge was not spent: it is good once the next lifetime begins.
    now += 100;
    expect((await kbs.release(third.body)).record.keyId).toBe(KEY_ID);
  });

  it("times challenges on a clock that steps of the wall clock do not move", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    try {
      const kbs = broker(policy, { challengeTtlMs: 300 });
      const start = Date.now();
      // The wall clock steps a day ahead and back (an NTP correction) while a challenge is issued.
      vi.setSystemTime(start + 86_400_000);
      kbs.challenge();
      vi.setSystemTime(start);
      const { body } = await request(kbs, sealedDeployment);
      await new Promise((resolve) => setTimeout(resolve, 400)); // real time: its lifetime is over
      expect(await rejectionOf(kbs.release(body), BrokerError)).toMatchObject({ code: "KBS_CHALLENGE_UNKNOWN" });
    } finally {
      vi.useRealTimers();
    }
  });

  it("recognises only its own challenges, spelled as it issued them, and remembers spent ones until they expire", async () => {
    let now = Date.now();
    const kbs = broker(policy, { now: () => new Date(now), challengeTtlMs: 1000 });
    const unknown = async (challenge: string) =>
      expect(await rejectionOf(kbs.release(await releaseBody(challenge)), BrokerError)).toMatchObject({
        code: "KBS_CHALLENGE_UNKNOWN",
      });
    // Another broker's challenge; one with a changed issue time or MAC; the same bytes spelled otherwise.
    await unknown(broker(policy, { now: () => new Date(now) }).challenge().challenge);
    const issued = kbs.challenge().challenge;
    const bytes = base64url.decode(issued);
    for (const at of [7, 31]) {
      const changed = bytes.slice();
      changed[at] = (changed[at] as number) ^ 1;
      await unknown(base64url.encode(changed));
    }
    const respelled = issued.slice(0, -1) + String.fromCharCode(issued.charCodeAt(42) + 1);
    expect(toHex(base64url.decode(respelled))).toBe(toHex(bytes));
    await unknown(respelled);
    await kbs.release(await releaseBody(issued));
    await unknown(issued);

    // Spent late in one generation, replayed in the next before it expires: still refused.
    now += 900;
    const late = await releaseBody(kbs.challenge().challenge);
    await kbs.release(late);
    now += 200;
    await kbs.release(await releaseBody(kbs.challenge().challenge)); // begins the next generation
    expect(await rejectionOf(kbs.release(late), BrokerError)).toMatchObject({ code: "KBS_CHALLENGE_UNKNOWN" });
    // Two generations on it is forgotten, and expired; a clock stepped back does not revive it.
    now += 1000;
    await kbs.release(await releaseBody(kbs.challenge().challenge));
    now += 1000;
    await kbs.release(await releaseBody(kbs.challenge().challenge));
    now -= 1500;
    expect(await rejectionOf(kbs.release(late), BrokerError)).toMatchObject({ code: "KBS_CHALLENGE_UNKNOWN" });
  });

  it("names release policies that give the key to more than a known image", () => {
    expect(releaseRisks(policy)).toEqual(["trusts the INSECURE simulator: anyone can forge its evidence"]);
    const snp = policy.attestation.snp as NonNullable<ClientPolicy["attestation"]["snp"]>;
    const loose = {
      ...policy,
      attestation: {
        ...policy.attestation,
        trustSimulator: false,
        snp: { ...snp, measurements: { skip: { reason: "t" } }, migrationAgentAllowed: true, debugAllowed: true },
      },
    } as ClientPolicy;
    expect(releaseRisks(loose)).toEqual([
      "snp.measurements skipped: any SEV-SNP guest that presents the manifest gets the key",
      "snp.debugAllowed: a debuggable guest's memory is open to the host",
      "snp.migrationAgentAllowed: a migration agent (chosen by the host at launch) can export the guest",
    ]);
    const zero = "00".repeat(48);
    const tdxLoose = {
      ...policy,
      acceptedEvidence: ["tdx"],
      attestation: {
        ...policy.attestation,
        trustSimulator: false,
        snp: null,
        tdx: {
          debugAllowed: false,
          xfam: { skip: { reason: "t" } },
          tdAttributes: { skip: { reason: "t" } },
          mrseam: { skip: { reason: "t" } },
          mrtd: [zero],
          rtmrs: [zero, { skip: { reason: "t" } }, zero, zero],
          mrconfigid: zero,
          mrowner: zero,
          mrownerconfig: zero,
          mrservicetd: { skip: { reason: "t" } },
          acceptedTcbStatuses: { skip: { reason: "t" } },
          minimumTeeTcbSvn: { skip: { reason: "t" } },
          minimumQeSvn: { skip: { reason: "t" } },
          minimumPceSvn: { skip: { reason: "t" } },
          rejectedAdvisoryIds: { skip: { reason: "t" } },
        },
      },
    } as ClientPolicy;
    expect(releaseRisks(tdxLoose)).toEqual([
      "tdx.tdAttributes skipped: a TD the host launched migratable or with #VE on EPT violations gets the key",
      "tdx.mrservicetd skipped: a TD with a migration TD bound (which can export its memory) gets the key",
      "tdx.acceptedTcbStatuses skipped: a TD on a platform Intel rates out of date or revoked, or with a revoked PCK certificate, gets the key",
      "tdx.rtmrs[1]/[2] skipped: MRTD covers the firmware only, so any kernel and image gets the key",
    ]);
    // Statuses without the oldest evaluation accepted: older collateral still within its validity.
    const statusesOnly = {
      ...tdxLoose,
      attestation: {
        ...tdxLoose.attestation,
        tdx: { ...tdxLoose.attestation.tdx!, acceptedTcbStatuses: ["UpToDate" as const] },
      },
    } as ClientPolicy;
    expect(releaseRisks(statusesOnly)).toContain(
      "tdx.acceptedTcbStatuses has no minimumTcbEvaluationDataNumber: older Intel collateral, still within its validity, that rates the platform better gets the key",
    );
    const withMinimum = {
      ...tdxLoose,
      attestation: {
        ...tdxLoose.attestation,
        tdx: {
          ...tdxLoose.attestation.tdx!,
          acceptedTcbStatuses: { statuses: ["UpToDate" as const], minimumTcbEvaluationDataNumber: 17 },
        },
      },
    } as ClientPolicy;
    expect(releaseRisks(withMinimum).filter((r) => r.includes("acceptedTcbStatuses"))).toEqual([]);

    // Azure: what its section leaves open is the VM's configuration (and a debuggable paravisor guest).
    const azure = (secureBootRequired: boolean, consoleAllowed: boolean) =>
      ({
        ...policy,
        acceptedEvidence: ["azure-snp"],
        attestation: {
          ...policy.attestation,
          trustSimulator: false,
          snp: null,
          tdx: null,
          azure: {
            snp: {
              ...(policy.attestation.snp as NonNullable<ClientPolicy["attestation"]["snp"]>),
              measurements: ["ab".repeat(48)],
            },
            tdx: null,
            pcrs: { "4": ["cd".repeat(32)] },
            secureBootRequired,
            consoleAllowed,
          },
        },
      }) as ClientPolicy;
    expect(releaseRisks(azure(true, false))).toEqual([]);
    expect(releaseRisks(azure(false, true))).toEqual([
      "azure.secureBootRequired false: a VM booted without Secure Boot gets the key",
      "azure.consoleAllowed: a VM with a serial console enabled (a way in besides the image) gets the key",
    ]);
    // An Azure TDX paravisor whose MRSERVICETD is not pinned (policy init's choice for a migratable TD).
    const azureTdx = azure(true, false);
    const withTdx = {
      ...azureTdx,
      acceptedEvidence: ["azure-tdx"],
      attestation: {
        ...azureTdx.attestation,
        azure: {
          ...azureTdx.attestation.azure!,
          snp: null,
          tdx: { ...tdxLoose.attestation.tdx!, mrtd: ["ef".repeat(48)] },
        },
      },
    } as ClientPolicy;
    expect(releaseRisks(withTdx)).toContain(
      "azure.tdx.mrservicetd skipped: a paravisor TD with a migration TD bound gets the key",
    );
  });

  it("refuses to list the risks of a release policy built in code that does not parse, as the verifier refuses it", () => {
    // A JavaScript caller's "true" is no `=== true`: read unparsed, this debuggable guest was no risk.
    const snp = policy.attestation.snp as NonNullable<ClientPolicy["attestation"]["snp"]>;
    const stringly = {
      ...policy,
      attestation: { ...policy.attestation, trustSimulator: false, snp: { ...snp, debugAllowed: "true" } },
    } as unknown as ClientPolicy;
    const refused = expect.objectContaining({
      stage: "configuration",
      code: "POLICY_INVALID",
      message: expect.stringContaining("attestation.snp.debugAllowed"),
    });
    expect(() => releaseRisks(stringly)).toThrow(refused);
    expect(() => policyRisks(stringly, "is sent your prompts")).toThrow(refused);
  });

  it("kbs serve zeroes the keys it was given when its broker is built, and when it is refused", () => {
    const keyOf = (keyId: string, fill: number) => ({ keyId, key: new Uint8Array(32).fill(fill), policy });
    const zeroed = (keys: readonly { key: Uint8Array }[]) => keys.every((k) => k.key.every((byte) => byte === 0));
    const serve = (keys: BrokerKey[]) => serveBroker({ keys, limits: CLIENT_LIMITS });
    const built = [keyOf("tiny-v1", 7), keyOf("tiny-v2", 8)];
    const served = serve(built);
    expect(served.broker.keyIds).toEqual(["tiny-v1", "tiny-v2"]);
    // Where a simulator's key may be served is decided on the address bound (kbs-cli.test.ts).
    expect(served.simulatorKeyId).toBe("tiny-v1");
    expect(zeroed(built)).toBe(true);
    // new KeyBroker refuses a key id listed twice (loadBrokerConfig does too; a caller may not).
    const twice = [keyOf("tiny-v1", 7), keyOf("tiny-v1", 8)];
    expect(() => serve(twice)).toThrow('key id "tiny-v1": listed twice');
    expect(zeroed(twice)).toBe(true);
  });

  it("checks its keys when built, keeps its own copy of each, and sizes its spent set by the limits it is given", async () => {
    const entry = { keyId: KEY_ID, key: MODEL_KEY, policy };
    for (const [keys, message] of [
      [[{ ...entry, keyId: "has space" }], 'key id "has space": not a valid key id'],
      [[{ ...entry, key: new Uint8Array(31) }], `key "${KEY_ID}": expected 32 bytes, found 31`],
      [[entry, { ...entry, key: nacl.randomBytes(32) }], `key id "${KEY_ID}": listed twice`],
    ] as const) {
      expect(() => new KeyBroker(keys)).toThrow(new RangeError(message));
    }
    // The caller's buffer, zeroed after the broker was built: the key released is still the key.
    const given = MODEL_KEY.slice();
    const kbs = new KeyBroker([{ ...entry, key: given }]);
    given.fill(0);
    const { body, challenge } = await request(kbs, sealedDeployment);
    const { wrapped } = await kbs.release(body);
    const key = unwrapModelKey(wrapped, sealedDeployment.keys.sealing.secretKey, {
      keyId: KEY_ID,
      challenge: base64url.decode(challenge),
      documentDigest: sealedDeployment.documentDigest,
    });
    expect(toHex(key)).toBe(toHex(MODEL_KEY));
    // 3 clients x 2 attempts a minute x 2 windows in a 60 s lifetime.
    expect(new KeyBroker([entry], { clientLimits: { releasesPerMinute: 2, maxClients: 3 } }).maxSpentChallenges).toBe(
      12,
    );
  });

  it("wrapping checks its inputs", () => {
    const base = {
      keyId: KEY_ID,
      key: MODEL_KEY,
      enclaveSealingPublicKey: nacl.box.keyPair().publicKey,
      challenge: nacl.randomBytes(32),
      documentDigest: "00".repeat(32),
    };
    expect(() => wrapModelKey({ ...base, key: new Uint8Array(16) })).toThrow(/key: expected 32 bytes/);
    expect(() => wrapModelKey({ ...base, keyId: "bad id" })).toThrow(/keyId/);
    expect(() => wrapModelKey({ ...base, challenge: new Uint8Array(8) })).toThrow(/challenge/);
    // The digest is written into the box as 32 bytes: 31, 33 or upper-case hex is refused.
    for (const documentDigest of ["00".repeat(31), "00".repeat(33), "AB".repeat(32)]) {
      expect(() => wrapModelKey({ ...base, documentDigest })).toThrow(
        new RangeError("documentDigest: expected 64 lower-case hex digits"),
      );
    }
  });
});

describe("key broker HTTP API", () => {
  it("limits challenges per client address (429 with Retry-After), so no caller can fill the table", async () => {
    let now = 1_000_000;
    const app = createBrokerApp(broker(), () => {}, { challengesPerMinute: 2, now: () => now });
    const ask = () => app.request("/v1/kbs/challenge", { method: "POST" });
    expect((await ask()).status).toBe(200);
    expect((await ask()).status).toBe(200);
    const limited = await ask();
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("60");
    expect(await limited.json()).toMatchObject({ error: { code: "KBS_RATE_LIMITED" } });
    // The window is a whole minute: half-way through, and 1 ms before its end, still refused.
    now += 30_000;
    const halfway = await ask();
    expect([halfway.status, halfway.headers.get("retry-after")]).toEqual([429, "30"]);
    now += 29_999;
    const lastMs = await ask();
    expect([lastMs.status, lastMs.headers.get("retry-after")]).toEqual([429, "1"]);
    now += 1;
    expect((await ask()).status).toBe(200);
  });

  it("counts an IPv6 client by its /64 and an IPv4-mapped address as the IPv4 address", async () => {
    expect(limitBucket("2001:DB8:0:1:aaaa::1%eth0")).toBe("2001:db8:0:1::/64");
    expect(limitBucket("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(limitBucket("::ffff:c000:207")).toBe("192.0.2.7");
    expect(limitBucket("192.0.2.7")).toBe("192.0.2.7");
    expect(limitBucket("::1")).toBe("0:0:0:0::/64");
    expect(limitBucket("1::2::3")).toBe("1::2::3");
    // Not addresses either, so each is a bucket of its own: a dotted part over 255, "::" twice
    // beside eight groups, "::" standing for no group.
    for (const text of ["::ffff:1.256.0.1", "1:2:3:4::5:6:7:8::9", "1:2:3:4::5:6:7:8"]) {
      expect(limitBucket(text)).toBe(text);
    }
    const app = createBrokerApp(broker(), () => {}, { challengesPerMinute: 2 });
    const ask = (address: string) =>
      app.request("/v1/kbs/challenge", { method: "POST" }, { incoming: { socket: { remoteAddress: address } } });
    for (const address of ["2001:db8:0:1::1", "2001:db8:0:1:ffff:ffff:ffff:ffff"])
      expect((await ask(address)).status).toBe(200);
    expect((await ask("2001:db8:0:1::2")).status).toBe(429);
    expect((await ask("2001:db8:0:2::1")).status).toBe(200);
    expect((await ask("::ffff:192.0.2.7")).status).toBe(200);
    expect((await ask("192.0.2.7")).status).toBe(200);
    expect((await ask("::ffff:192.0.2.7")).status).toBe(429);
  });

  it("counts at most maxClients addresses at once: a new one waits for a window to end, a counted one keeps its window", async () => {
    let now = 1_000_000;
    const app = createBrokerApp(broker(), () => {}, { challengesPerMinute: 1, maxClients: 3, now: () => now });
    const ask = (address: string) =>
      app.request("/v1/kbs/challenge", { method: "POST" }, { incoming: { socket: { remoteAddress: address } } });
    const counted = ["2001:db8:0:1::1", "2001:db8:0:2::1", "2001:db8:0:3::1"];
    for (const address of counted) expect((await ask(address)).status).toBe(200);
    now += 20_000;
    // Refused for room, not dropping a live window (which would give its client a fresh budget, so
    // a client cycling through more /64s than the limiter counts would never be limited).
    for (const address of ["2001:db8:0:4::1", "2001:db8:0:5::1", "2001:db8:0:4::1"]) {
      const refused = await ask(address);
      expect(refused.status).toBe(503);
      expect(refused.headers.get("retry-after")).toBe("40");
      expect(await refused.json()).toEqual({
        error: {
          code: "KBS_BUSY",
          message:
            "key broker: already counting 3 client addresses within their minute, the most it counts at once; retry later",
        },
      });
    }
    for (const address of counted) expect((await ask(address)).status).toBe(429);
    now += 40_000; // the counted windows end: room again
    expect((await ask("2001:db8:0:4::1")).status).toBe(200);
    expect((await ask(counted[0] as string)).status).toBe(200);
  });

  it("limits release attempts per address too: strangers with many addresses cannot fill the spent set, so a counted enclave's release succeeds", async () => {
    const logs: BrokerLogEntry[] = [];
    // Room for exactly what the limits admit in one lifetime: 4 clients x 2 attempts x 2 windows.
    const kbs = broker(policy, { maxSpentChallenges: 16 });
    const limits = { releasesPerMinute: 2, maxClients: 4 };
    expect(() => createBrokerApp(broker(policy, { maxSpentChallenges: 15 }), () => {}, limits)).toThrow(
      new RangeError(
        "key broker maxSpentChallenges: expected at least 16 (4 clients, 2 release attempts a minute each, over a 60000 ms challenge lifetime), found 15",
      ),
    );
    const app = createBrokerApp(kbs, (e) => logs.push(e), { ...limits, now: () => 1_000_000 });
    const env = (address: string) => ({ incoming: { socket: { remoteAddress: address } } });
    const challengeFor = (address: string) => app.request("/v1/kbs/challenge", { method: "POST" }, env(address));
    const release = (address: string, body: unknown) =>
      app.request(
        "/v1/kbs/release",
        { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) },
        env(address),
      );
    // The enclave takes its challenge first: its address is counted from then on.
    const enclave = "192.0.2.1";
    const { challenge } = (await (await challengeFor(enclave)).json()) as { challenge: string };
    // Strangers from 50 /64s take challenges and spend each on a junk release as often as let.
    const tally = new Map<string, number>();
    const count = (what: string) => tally.set(what, (tally.get(what) ?? 0) + 1);
    for (let n = 0; n < 50; n++) {
      const address = `2001:db8:${n.toString(16)}::1`;
      for (let i = 0; i < 5; i++) {
        const asked = await challengeFor(address);
        count(`challenge ${asked.status}`);
        if (asked.status !== 200) continue;
        const junk = (await asked.json()) as { challenge: string };
        const refused = await release(address, {
          keyId: KEY_ID,
          document: "x",
          challenge: junk.challenge,
          answer: "x",
        });
        count(`release ${refused.status}`);
        if (refused.status === 429) expect(refused.headers.get("retry-after")).toBe("60");
      }
    }
    // Three strangers are counted beside the enclave: two junk releases each (spent, refused), the
    // rest rate-limited unspent; every other address is refused a challenge for room.
    expect(Object.fromEntries(tally)).toEqual({
      "challenge 200": 15,
      "release 403": 6,
      "release 429": 9,
      "challenge 503": 235,
    });
    const released = await release(enclave, await releaseBody(challenge));
    expect(released.status).toBe(200);
    expect(logs.filter((l) => l.code === "KBS_RATE_LIMITED")).toHaveLength(9);
    expect(logs.find((l) => l.code === "KBS_RATE_LIMITED")).toMatchObject({
      outcome: "refused",
      keyId: null,
      reason: "key broker: over 2 release attempts a minute from this address; retry later",
    });
    expect(logs.at(-1)).toMatchObject({ outcome: "released", keyId: KEY_ID });
  });

  it("counts a release attempt when it spends its challenge: a body sent slowly cannot spend outside the window it was counted in", async () => {
    let now = 1_000_000;
    const app = createBrokerApp(broker(), () => {}, { releasesPerMinute: 1, now: () => now });
    const env = { incoming: { socket: { remoteAddress: "192.0.2.9" } } };
    const challenge = async () =>
      ((await (await app.request("/v1/kbs/challenge", { method: "POST" }, env)).json()) as { challenge: string })
        .challenge;
    const post = (body: BodyInit) =>
      app.request(
        "/v1/kbs/release",
        { method: "POST", headers: { "content-type": "application/json" }, body, duplex: "half" } as RequestInit,
        env,
      );
    // A release arrives, and its body comes a minute later, with a challenge taken then.
    let send: (text: string) => void = () => {};
    const slow = post(
      new ReadableStream<Uint8Array>({
        start(controller) {
          send = (text) => {
            controller.enqueue(new TextEncoder().encode(text));
            controller.close();
          };
        },
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    now += 61_000;
    send(JSON.stringify(await releaseBody(await challenge())));
    expect((await slow).status).toBe(200);
    // Its attempt counts in this minute, in which it spent: no second one now.
    const second = await post(JSON.stringify(await releaseBody(await challenge())));
    expect(second.status).toBe(429);
    expect(await second.json()).toMatchObject({ error: { code: "KBS_RATE_LIMITED" } });
  });

  it("refuses a second attempt whose body comes after the first one spent, though both were let in before their bodies", async () => {
    const app = createBrokerApp(broker(), () => {}, { releasesPerMinute: 1, now: () => 1_000_000 });
    const env = { incoming: { socket: { remoteAddress: "192.0.2.10" } } };
    const challenge = async () =>
      ((await (await app.request("/v1/kbs/challenge", { method: "POST" }, env)).json()) as { challenge: string })
        .challenge;
    const slowPost = () => heldRelease(app, "192.0.2.10");
    const [first, second] = [slowPost(), slowPost()];
    await new Promise((resolve) => setTimeout(resolve, 20));
    first.send(JSON.stringify(await releaseBody(await challenge())));
    expect((await first.response).status).toBe(200);
    second.send(JSON.stringify(await releaseBody(await challenge())));
    const refused = await second.response;
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ error: { code: "KBS_RATE_LIMITED" } });
  });

  it("reads at most maxReleasesAtOncePerClient release requests at once from one address and maxReleasesAtOnce in all (503 KBS_BUSY), so no client makes it hold more bodies", async () => {
    // Bodies were counted only once read: one address under its limit could open as many
    // connections as the server holds (1 024) and send each a body of nearly 1 MiB, all held until
    // node's request timeout (about 1 GiB held by one stranger).
    const logs: BrokerLogEntry[] = [];
    const app = createBrokerApp(broker(), (e) => logs.push(e), {
      maxReleasesAtOnce: 3,
      maxReleasesAtOncePerClient: 2,
      now: () => 1_000_000,
    });
    const env = (address: string) => ({ incoming: { socket: { remoteAddress: address } } });
    const held = (address: string) => heldRelease(app, address);
    const post = (address: string) =>
      app.request("/v1/kbs/release", { method: "POST", body: "not json" }, env(address));
    const [a1, a2] = [held("192.0.2.20"), held("192.0.2.20")];
    await new Promise((resolve) => setTimeout(resolve, 20));
    const perClient = await post("192.0.2.20");
    expect(perClient.status).toBe(503);
    expect(perClient.headers.get("retry-after")).toBe("1");
    expect(await perClient.json()).toEqual({
      error: {
        code: "KBS_BUSY",
        message:
          "key broker: already reading 2 release requests from this address at once, the most it reads from one; retry later",
      },
    });
    const b1 = held("192.0.2.21");
    await new Promise((resolve) => setTimeout(resolve, 20));
    const total = await post("192.0.2.22");
    expect(total.status).toBe(503);
    expect(await total.json()).toEqual({
      error: {
        code: "KBS_BUSY",
        message: "key broker: already reading 3 release requests at once, the most it reads at a time; retry later",
      },
    });
    // A request that ends frees its place, in all and for its address.
    a1.send("not json");
    expect((await a1.response).status).toBe(400);
    expect((await post("192.0.2.22")).status).toBe(400);
    expect((await post("192.0.2.20")).status).toBe(400);
    a2.send("not json");
    b1.send("not json");
    expect((await a2.response).status).toBe(400);
    expect((await b1.response).status).toBe(400);
    expect(logs.map((l) => l.code)).toEqual([
      "KBS_BUSY",
      "KBS_BUSY",
      "KBS_REQUEST_MALFORMED",
      "KBS_REQUEST_MALFORMED",
      "KBS_REQUEST_MALFORMED",
      "KBS_REQUEST_MALFORMED",
      "KBS_REQUEST_MALFORMED",
    ]);
  });

  it("reads a release body of at most MAX_RELEASE_BYTES, and none from a client already over its limit", async () => {
    const logs: BrokerLogEntry[] = [];
    const app = createBrokerApp(broker(), (e) => logs.push(e), { releasesPerMinute: 1, now: () => 1_000_000 });
    const post = (address: string, body: string) =>
      app.request(
        "/v1/kbs/release",
        { method: "POST", headers: { "content-type": "application/json" }, body },
        { incoming: { socket: { remoteAddress: address } } },
      );
    /** A request body of exactly `bytes` bytes, with no challenge: refused once read, spending nothing. */
    const sized = (bytes: number) => {
      const shape = JSON.stringify({ keyId: KEY_ID, document: "" });
      return JSON.stringify({ keyId: KEY_ID, document: "x".repeat(bytes - shape.length) });
    };
    expect(sized(MAX_RELEASE_BYTES)).toHaveLength(MAX_RELEASE_BYTES);
    const atLimit = await post("192.0.2.11", sized(MAX_RELEASE_BYTES));
    expect(atLimit.status).toBe(400);
    expect(await atLimit.json()).toMatchObject({ error: { code: "KBS_REQUEST_MALFORMED" } });
    const over = await post("192.0.2.12", sized(MAX_RELEASE_BYTES + 1));
    expect(over.status).toBe(413);
    expect(await over.json()).toMatchObject({ error: { code: "KBS_REQUEST_TOO_LARGE" } });
    // 192.0.2.11 has made its one attempt this minute: its next is refused before its body is read,
    // so a body over the limit is answered 429, not 413.
    const limited = await post("192.0.2.11", sized(MAX_RELEASE_BYTES + 1));
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("60");
    expect(logs.map((l) => l.code)).toEqual(["KBS_REQUEST_MALFORMED", "KBS_REQUEST_TOO_LARGE", "KBS_RATE_LIMITED"]);
  });

  it("gives no client slot to a release refused before it spends, and logs a key id only when it is well formed", async () => {
    const logs: ReleaseLogEntry[] = [];
    const app = createBrokerApp(broker(), releaseLines(logs), { maxClients: 1, now: () => 1_000_000 });
    const env = (address: string) => ({ incoming: { socket: { remoteAddress: address } } });
    const notJson = await app.request("/v1/kbs/release", { method: "POST", body: "not json" }, env("192.0.2.13"));
    expect(notJson.status).toBe(400);
    // The one slot is still free: the refused release was looked at, not counted.
    const asked = await app.request("/v1/kbs/challenge", { method: "POST" }, env("192.0.2.14"));
    expect(asked.status).toBe(200);
    const { challenge } = (await asked.json()) as { challenge: string };
    for (const keyId of ["has space", 'x"\n{"event":"ready"}']) {
      const refused = await app.request(
        "/v1/kbs/release",
        {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ ...(await releaseBody(challenge)), keyId }),
        },
        env("192.0.2.14"),
      );
      expect(refused.status).toBe(400);
    }
    expect(logs.map((l) => [l.code, l.keyId])).toEqual([
      ["KBS_REQUEST_MALFORMED", null],
      ["KBS_REQUEST_MALFORMED", null],
      ["KBS_CHALLENGE_UNKNOWN", null],
    ]);
  });

  it("answers a full spent set with 503 KBS_BUSY and Retry-After: 1", async () => {
    // Room for what the app's limits admit (1 client x 1 attempt x 2 windows), filled by direct calls.
    const kbs = broker(policy, { maxSpentChallenges: 2 });
    const app = createBrokerApp(kbs, () => {}, { releasesPerMinute: 1, maxClients: 1 });
    for (let i = 0; i < 2; i++)
      await rejectionOf(kbs.release({ ...(await releaseBody(kbs.challenge().challenge)), answer: "x" }), BrokerError);
    const busy = await releaseThrough(app);
    expect(busy.status).toBe(503);
    expect(busy.headers.get("retry-after")).toBe("1");
    expect(await busy.json()).toMatchObject({ error: { code: "KBS_BUSY" } });
  });

  it("cuts a refusal's reason in its log line at 1000 characters", async () => {
    // A release policy listing twelve other measurements: the verifier's message lists them all.
    const snp = policy.attestation.snp as NonNullable<ClientPolicy["attestation"]["snp"]>;
    const measurements = Array.from({ length: 12 }, (_, i) => i.toString(16).padStart(2, "1").repeat(48));
    const many = { ...policy, attestation: { ...policy.attestation, snp: { ...snp, measurements } } } as ClientPolicy;
    const logs: BrokerLogEntry[] = [];
    const app = createBrokerApp(broker(many), (e) => logs.push(e));
    const refused = await releaseThrough(app);
    expect(refused.status).toBe(403);
    const reason = logs[0]?.reason as string;
    expect(reason).toMatch(/^attestation failed at stage appraise: SNP_MEASUREMENT_NOT_ALLOWED: .*…$/);
    expect(reason).toHaveLength(1001);
  });

  it("logs a reason of 1000 characters whole and cuts one of 1001 to 1000 and …", async () => {
    /** A broker that refuses every release with a reason of `length` characters. */
    class RefusingBroker extends KeyBroker {
      constructor(readonly length: number) {
        super([{ keyId: KEY_ID, key: MODEL_KEY, policy }]);
      }
      override release(): never {
        throw new BrokerError("KBS_ATTESTATION_FAILED", 403, "refused", { detail: "r".repeat(this.length) });
      }
    }
    const reasons: (string | null)[] = [];
    for (const length of [1000, 1001]) {
      const app = createBrokerApp(new RefusingBroker(length), (e) => reasons.push(e.reason));
      expect((await releaseThrough(app)).status).toBe(403);
    }
    expect(reasons).toEqual(["r".repeat(1000), `${"r".repeat(1000)}…`]);
  });

  it("answers a fault of its own (the verifier failing, not refusing) with 500 INTERNAL, not 403, and logs its cause", async () => {
    // The document is fine: the broker fails to verify it (a bug, or its verifier called wrongly:
    // a ConfigurationError is the broker's, not the enclave's). Not a refusal of the enclave.
    const faults = [
      new TypeError("a stand-in bug in the verifier"),
      new ConfigurationError("VERIFY_TIME_INVALID", "verification time: expected a valid Date"),
    ];
    const logs: BrokerLogEntry[] = [];
    const app = createBrokerApp(broker(), (e) => logs.push(e));
    for (const fault of faults) {
      clearVerifiedDocumentCache(); // the document verified before: verified again here
      vi.mocked(verifyDocumentEvidence).mockRejectedValueOnce(fault);
      const failed = await releaseThrough(app);
      expect(failed.status).toBe(500);
      expect(await failed.json()).toEqual({
        error: { code: "INTERNAL", message: "internal error in the key broker; its log has the reason" },
      });
    }
    expect(logs).toEqual([
      expect.objectContaining({
        outcome: "refused",
        keyId: KEY_ID,
        code: "INTERNAL",
        stage: null,
        reason: "internal error while verifying the document: TypeError: a stand-in bug in the verifier",
      }),
      expect.objectContaining({
        outcome: "refused",
        keyId: KEY_ID,
        code: "INTERNAL",
        stage: null,
        reason:
          "internal error while verifying the document: configuration VERIFY_TIME_INVALID: verification time: expected a valid Date",
      }),
    ]);
    // The BrokerError keeps the fault as its cause.
    const kbs = broker();
    const bug = new RangeError("another stand-in bug");
    clearVerifiedDocumentCache();
    vi.mocked(verifyDocumentEvidence).mockRejectedValueOnce(bug);
    const error = await rejectionOf(kbs.release((await request(kbs, sealedDeployment)).body), BrokerError);
    expect(error).toMatchObject({ code: "INTERNAL", status: 500, stage: undefined });
    expect(error.cause).toBe(bug);
  });

  it("refuses to be built with a release policy that does not parse (built in code), naming the key and the field", () => {
    const snp = policy.attestation.snp as NonNullable<ClientPolicy["attestation"]["snp"]>;
    /** `policy` with its snp section replaced: a policy built in code, never parsed. */
    const withSnp = (section: unknown) =>
      ({ ...policy, attestation: { ...policy.attestation, snp: section } }) as unknown as ClientPolicy;
    const { requireMitigations: _m, ...noMitigations } = snp;
    const { minimumGuestSvn: _g, ...noGuestSvn } = snp;
    const { freshness: _f, ...noFreshness } = policy;
    for (const [built, problem] of [
      // A hardening field (appraisal's ruleOf refuses it too) and a field required from the start
      // (appraisal compared it with undefined: the check was silently not made).
      [withSnp(noMitigations), "attestation.snp.requireMitigations: required field is missing"],
      [withSnp(noGuestSvn), "attestation.snp.minimumGuestSvn: required field is missing"],
      [withSnp({ ...snp, minimumGuestSvn: "0" }), "attestation.snp.minimumGuestSvn: expected number, found a string"],
      [noFreshness as unknown as ClientPolicy, "freshness: expected object, found nothing"],
    ] as const) {
      const other = { keyId: "other-v1", key: MODEL_KEY, policy };
      // The key named is the one whose policy does not parse, wherever it is in the list.
      expect(() => new KeyBroker([other, { keyId: KEY_ID, key: MODEL_KEY, policy: built }])).toThrow(
        expect.objectContaining({
          name: "RangeError",
          message: expect.stringContaining(`key "${KEY_ID}" policy: ${problem}`),
        }),
      );
    }
  });

  it("appraisal still refuses a release policy without a hardening field if one reaches it unparsed", async () => {
    const { requireMitigations: _, ...snp } = policy.attestation.snp as NonNullable<ClientPolicy["attestation"]["snp"]>;
    const built = { ...policy.attestation, snp } as unknown as ClientPolicy["attestation"];
    const at = new Date();
    const payload = JSON.parse(
      new TextDecoder().decode(base64url.decode(sealedDeployment.document.split(".")[1] as string)),
    ) as { evidence: unknown };
    const anchors = await anchorsForPolicy(policy);
    const verified = await verifyDocumentEvidence(parseDocumentEvidence(payload.evidence), anchors, at);
    const options = { now: at, expectedReportData: null };
    expect(appraise(verified.evidence, policy.attestation, options).ok).toBe(true);
    expect(() => appraise(verified.evidence, built, options)).toThrow(
      expect.objectContaining({
        code: "APPRAISAL_BAD_OPTION",
        message: expect.stringContaining("policy requireMitigations:"),
      }),
    );
  });

  it("tells a body it could not read whole (KBS_REQUEST_INCOMPLETE) from one that is not JSON (KBS_REQUEST_MALFORMED)", async () => {
    const logs: BrokerLogEntry[] = [];
    const app = createBrokerApp(broker(), (e) => logs.push(e));
    const post = (body: ReadableStream<Uint8Array> | string, length?: number) =>
      app.request("/v1/kbs/release", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(length === undefined ? {} : { "content-length": `${length}` }),
        },
        duplex: "half",
        body,
      } as RequestInit);
    // The connection fails half-way through the body (the client went away): a body of unknown
    // length (read by the size limit) and one of a stated length (read by the handler).
    for (const length of [undefined, 100]) {
      const cut = await post(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode('{"keyId":'));
            controller.error(new Error("aborted"));
          },
        }),
        length,
      );
      expect(cut.status).toBe(400);
      expect(await cut.json()).toEqual({
        error: {
          code: "KBS_REQUEST_INCOMPLETE",
          message: "release request: the body could not be read whole (the connection closed or failed before its end)",
        },
      });
    }
    const notJson = await post('{"keyId":');
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ error: { code: "KBS_REQUEST_MALFORMED" } });
    const incomplete = [
      "KBS_REQUEST_INCOMPLETE",
      "release request: the body could not be read whole (the connection closed or failed before its end): Error: aborted",
    ];
    expect(logs.map((l) => [l.code, l.reason])).toEqual([
      incomplete,
      incomplete,
      ["KBS_REQUEST_MALFORMED", "release request: body is not JSON"],
    ]);
  });

  it("answers and logs an error thrown outside the verifier as INTERNAL with its cause, and a refusal with its own code", async () => {
    const logs: BrokerLogEntry[] = [];
    const answers: [number, unknown][] = [];
    for (const error of [
      new Error("wrapping failed (a stand-in)"),
      "a thrown string",
      new BrokerError("KBS_KEY_UNKNOWN", 404, 'keyId: this broker holds no key "x"'),
    ]) {
      const app = createBrokerApp(new FailingBroker(error, ["release"]), (e) => logs.push(e));
      const response = await releaseThrough(app);
      answers.push([response.status, await response.json()]);
    }
    const internal = {
      error: { code: "INTERNAL", message: "internal error in the key broker; its log has the reason" },
    };
    expect(answers).toEqual([
      [500, internal],
      [500, internal],
      [404, { error: { code: "KBS_KEY_UNKNOWN", message: 'keyId: this broker holds no key "x"' } }],
    ]);
    expect(logs.map((l) => [l.code, l.reason])).toEqual([
      ["INTERNAL", "internal error while answering a release request: Error: wrapping failed (a stand-in)"],
      ["INTERNAL", "internal error while answering a release request: a thrown string (not an Error)"],
      ["KBS_KEY_UNKNOWN", 'keyId: this broker holds no key "x"'],
    ]);
  });

  it("logs one line for a fault on any route, not only release: what failed, its class, code and message", async () => {
    const internal = {
      error: { code: "INTERNAL", message: "internal error in the key broker; its log has the reason" },
    };
    const bug = Object.assign(new TypeError("a stand-in bug"), { code: "ERR_STAND_IN" });
    for (const [error, what] of [
      [bug, "TypeError ERR_STAND_IN: a stand-in bug"],
      ["a thrown string", "a thrown string (not an Error)"],
    ] as const) {
      const logs: BrokerLogEntry[] = [];
      const app = createBrokerApp(new FailingBroker(error, ["challenge", "keyIds"]), (e) => logs.push(e));
      const challenge = await app.request("/v1/kbs/challenge", { method: "POST" });
      // From a socket (as node's server passes it), its line names the TCP peer; in process, none.
      const from = { incoming: { socket: { remoteAddress: "2001:db8::7", remotePort: 47123 } } };
      const health = await app.request("/healthz", {}, from);
      expect([challenge.status, await challenge.json(), health.status, await health.json()]).toEqual([
        500,
        internal,
        500,
        internal,
      ]);
      expect(logs).toEqual([
        {
          event: "fault",
          code: "INTERNAL",
          reason: `internal error while answering POST /v1/kbs/challenge: ${what}`,
          peer: null,
        },
        {
          event: "fault",
          code: "INTERNAL",
          reason: `internal error while answering GET /healthz: ${what}`,
          peer: "[2001:db8::7]:47123",
        },
      ]);
    }
  });

  it("serves challenge and release, maps refusals to their status, and logs no key material", async () => {
    const logs: ReleaseLogEntry[] = [];
    const kbs = broker();
    const app = createBrokerApp(kbs, releaseLines(logs));
    const post = (path: string, body: unknown) =>
      app.request(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
    const challengeResponse = await post("/v1/kbs/challenge", {});
    expect(challengeResponse.status).toBe(200);
    const { challenge } = (await challengeResponse.json()) as { challenge: string };
    const answer = await createNonceAnswer({
      keys: sealedDeployment.keys,
      document: sealedDeployment.document,
      nonce: base64url.decode(challenge),
      now: new Date(),
    });
    const released = await post("/v1/kbs/release", {
      keyId: KEY_ID,
      document: sealedDeployment.document,
      challenge,
      answer,
    });
    expect(released.status).toBe(200);
    const { wrapped } = (await released.json()) as { wrapped: unknown };
    const key = unwrapModelKey(wrapped, sealedDeployment.keys.sealing.secretKey, {
      keyId: KEY_ID,
      challenge: base64url.decode(challenge),
      documentDigest: sealedDeployment.documentDigest,
    });
    expect(toHex(key)).toBe(toHex(MODEL_KEY));

    const replay = await post("/v1/kbs/release", {
      keyId: KEY_ID,
      document: sealedDeployment.document,
      challenge,
      answer,
    });
    expect(replay.status).toBe(400);
    expect(await replay.json()).toMatchObject({ error: { code: "KBS_CHALLENGE_UNKNOWN" } });
    expect((await post("/v1/kbs/release", "not json")).status).toBe(400);
    const huge = await post("/v1/kbs/release", { keyId: KEY_ID, document: "x".repeat(2 * 1024 * 1024) });
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ error: { code: "KBS_REQUEST_TOO_LARGE" } });
    expect((await app.request("/healthz")).status).toBe(200);

    expect(logs.map((l) => [l.outcome, l.code])).toEqual([
      ["released", null],
      ["refused", "KBS_CHALLENGE_UNKNOWN"],
      ["refused", "KBS_REQUEST_MALFORMED"],
      ["refused", "KBS_REQUEST_TOO_LARGE"],
    ]);
    expect(logs[3]).toMatchObject({
      keyId: null,
      stage: null,
      measurement: null,
      manifestDigest: null,
      documentDigest: null,
    });
    // Which manifest and which boot's document the key went to: public digests an audit matches
    // with the enclave's own records and documents.
    expect(logs[0]).toMatchObject({
      keyId: KEY_ID,
      tee: "sev-snp",
      simulated: true,
      manifestDigest: sealedDeployment.manifestDigest,
      documentDigest: sealedDeployment.documentDigest,
    });
    const logged = JSON.stringify(logs);
    expect(logged).not.toContain(base64url.encode(MODEL_KEY));
    expect(logged).not.toContain(toHex(MODEL_KEY));
    expect(logged).not.toContain((wrapped as { box: string }).box);
  });

  it("with loopbackHostOnly, answers 421 to a request naming another host (DNS rebinding), before any route, and logs a release attempt", async () => {
    // A page whose own name is rebound to 127.0.0.1 reaches a loopback broker with that name as
    // Host: it could take a challenge and, as the simulator's evidence is anyone's to forge, get a
    // key whose release policy trusts the simulator, wrapped to a key of its own.
    const logs: BrokerLogEntry[] = [];
    const app = createBrokerApp(broker(), (e) => logs.push(e), { loopbackHostOnly: true });
    // A name in brackets is no IPv6 address: refused, as cloister proxy and web refuse it (one rule).
    const hosts = [
      "rebound.example:8790",
      "127.0.0.1.rebound.example",
      "10.0.0.1:8790",
      "[::2]:8790",
      "[localhost]:8790",
      "[127.0.0.1]",
    ];
    // The rule and the words of cloister proxy's and web's 421 (client/loopback.ts), with the reason.
    const refusedHost = (host: string) =>
      `request Host: expected a loopback name (127.0.0.0/8, [::1] or localhost; any port): this broker releases a key to the INSECURE simulator, so it answers this machine only; found ${JSON.stringify(host)}`;
    for (const host of hosts) {
      for (const path of ["/v1/kbs/challenge", "/v1/kbs/release", "/healthz"]) {
        const rebound = await app.request(path, { method: path === "/healthz" ? "GET" : "POST", headers: { host } });
        expect(rebound.status, `${host} ${path}`).toBe(421);
        expect(await rebound.json()).toEqual({
          error: {
            code: "KBS_HOST_NOT_LOOPBACK",
            message: refusedHost(host),
          },
        });
      }
    }
    // One log line per release attempt, as for every other refusal.
    expect(logs).toHaveLength(hosts.length);
    expect(logs.map((e) => (e.event === "release" ? e.reason : null))).toEqual(hosts.map(refusedHost));
    expect(logs[0]).toMatchObject({ outcome: "refused", keyId: null, code: "KBS_HOST_NOT_LOOPBACK" });
    for (const host of ["127.0.0.1:8790", "127.3.2.1", "localhost:8790", "LOCALHOST", "[::1]:8790"]) {
      const local = await app.request("/v1/kbs/challenge", { method: "POST", headers: { host } });
      expect(local.status, host).toBe(200);
    }
    // The whole release, through a loopback Host.
    const released = await releaseThrough(app);
    expect(released.status).toBe(200);
    // Without the option (a broker on a network address, or one whose keys need genuine evidence),
    // the Host is not looked at: a proxy in front may pass on its own.
    const open = createBrokerApp(broker());
    expect((await open.request("/v1/kbs/challenge", { method: "POST", headers: { host: "kbs.example" } })).status).toBe(
      200,
    );
  });

  it("tells a caller the release policy refused only the stage and the verifier's code; the reason goes to the broker's log", async () => {
    // A release policy pinning another measurement and model: its values must not reach the caller,
    // who may be anyone with genuine evidence.
    const pinned = "11".repeat(48);
    const otherModel = "cd".repeat(32);
    const strict = simulatorClientPolicy({
      tee: "sim-snp",
      measurement: pinned,
      operatorKey: operatorPublic,
      modelSha256: otherModel,
      serviceName: devManifest().service.name,
    });
    const logs: BrokerLogEntry[] = [];
    const app = createBrokerApp(broker(strict), (e) => logs.push(e));
    const refused = await releaseThrough(app);
    expect(refused.status).toBe(403);
    const body = await refused.text();
    expect(JSON.parse(body)).toEqual({
      error: {
        code: "KBS_ATTESTATION_FAILED",
        message:
          "attestation failed at stage appraise (SNP_MEASUREMENT_NOT_ALLOWED); the key broker's log has the reason",
      },
    });
    expect(body).not.toContain(pinned);
    expect(logs).toEqual([
      expect.objectContaining({
        outcome: "refused",
        code: "KBS_ATTESTATION_FAILED",
        stage: "appraise",
        measurement: toHex(MEASUREMENT),
        reason: expect.stringMatching(/^attestation failed at stage appraise: SNP_MEASUREMENT_NOT_ALLOWED: .*/),
      }),
    ]);
    expect(logs[0]?.reason).toContain(pinned);
    // Key ids are public: an unknown one is told apart (404) from a refused attestation (403).
    const { challenge: another } = (await (await app.request("/v1/kbs/challenge", { method: "POST" })).json()) as {
      challenge: string;
    };
    const unknown = await app.request("/v1/kbs/release", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...(await releaseBody(another)), keyId: "nope" }),
    });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: "KBS_KEY_UNKNOWN" } });
  });

  it("names in a release's and a refusal's log line the TCP peer that asked, as its socket reports it, not a header", async () => {
    const logs: BrokerLogEntry[] = [];
    const log = (e: BrokerLogEntry) => logs.push(e);
    const server = await listenBroker(() => createBrokerApp(broker(), log), log, "127.0.0.1", 0);
    try {
      const { challenge } = (await (await fetch(`${server.url}/v1/kbs/challenge`, { method: "POST" })).json()) as {
        challenge: string;
      };
      const body = JSON.stringify(await releaseBody(challenge));
      // Posted twice from a port this test knows (the second spends nothing: its challenge is used),
      // each naming another address in X-Forwarded-For, which the broker does not trust.
      const released = await postFrom(server.port, "/v1/kbs/release", body, "198.51.100.1");
      const refused = await postFrom(server.port, "/v1/kbs/release", body, "198.51.100.2");
      expect([released.status, refused.status]).toEqual([200, 400]);
      expect(logs).toEqual([
        expect.objectContaining({ outcome: "released", peer: `127.0.0.1:${released.localPort}` }),
        expect.objectContaining({
          outcome: "refused",
          code: "KBS_CHALLENGE_UNKNOWN",
          peer: `127.0.0.1:${refused.localPort}`,
        }),
      ]);
      expect(released.localPort).not.toBe(refused.localPort);
      expect(JSON.stringify(logs)).not.toContain("198.51.100.");
    } finally {
      await server.close();
    }
    // An IPv6 peer in brackets (its port follows the last colon), a refusal before the body too.
    const limited = createBrokerApp(broker(), log, { releasesPerMinute: 1, now: () => 0 });
    const from = { incoming: { socket: { remoteAddress: "2001:db8::7", remotePort: 47123 } } };
    for (let attempt = 0; attempt < 2; attempt++) {
      await limited.request("/v1/kbs/release", { method: "POST", body: "{}" }, from);
    }
    expect(logs.slice(2)).toEqual([
      expect.objectContaining({ code: "KBS_REQUEST_MALFORMED", peer: "[2001:db8::7]:47123" }),
      expect.objectContaining({ code: "KBS_RATE_LIMITED", peer: "[2001:db8::7]:47123" }),
    ]);
  });
});

/** POSTs `body` to 127.0.0.1:`port` on a connection of its own; its status and the local port it came from. */
function postFrom(
  port: number,
  path: string,
  body: string,
  forwardedFor: string,
): Promise<{ status: number; localPort: number }> {
  return new Promise((resolve, reject) => {
    const sent = httpRequest(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json", "x-forwarded-for": forwardedFor },
      },
      (answer) => {
        const localPort = answer.socket.localPort as number;
        answer.resume();
        answer.on("end", () => resolve({ status: answer.statusCode as number, localPort }));
      },
    );
    sent.on("error", reject);
    sent.end(body);
  });
}
