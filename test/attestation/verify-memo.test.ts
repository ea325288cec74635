/**
 * The signature memo of attestation/crypto.ts and the overlapped stages of verifyAttestationDocument:
 * once an enclave's evidence signatures are memoised, a re-verification skips only those ECDSA /
 * RSA-PSS computations; a changed document, nonce, report, trust anchors or verification time is
 * still rejected with the stage's own code, and failures are never memoised.
 */
import { base64url, CompactSign, importJWK } from "jose";
import nacl from "tweetnacl";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { clearVerifiedSignatureMemo, verifyEcdsa } from "../../attestation/crypto.ts";
import {
  clearVerifiedDocumentCache,
  createAttestationDocument,
  createNonceAnswer,
  type EnclaveKeys,
  verifyAttestationDocument,
} from "../../attestation/document.ts";
import type { TrustAnchors } from "../../attestation/evidence.ts";
import { SIMULATED_VCEK_NOT_AFTER } from "../../attestation/sim/amd.ts";
import { anchorsForPolicy, type ClientPolicy, manifestCheckForPolicy } from "../../client/policy.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { simulatedSnpEnclave } from "../helpers/simulated-document.ts";

const NOW = new Date("2026-06-01T12:00:00Z");
const MEASUREMENT = new Uint8Array(48).fill(0x5a);

let keys: EnclaveKeys;
let document: string;
let report: Uint8Array;
let vcek: Uint8Array;
let manifestJws: string;
let policy: ClientPolicy;

beforeAll(async () => {
  keys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
  ({ manifestJws, report, vcek, document, policy } = await simulatedSnpEnclave({
    keys,
    now: NOW,
    measurement: MEASUREMENT,
  }));
}, 120_000);

function makeDocument(reportBytes: Uint8Array, signer: EnclaveKeys = keys): Promise<string> {
  return createAttestationDocument({
    keys: signer,
    evidence: { type: "sev-snp", report: base64url.encode(reportBytes), endorsementKey: base64url.encode(vcek) },
    manifest: manifestJws,
    maaToken: null,
    now: NOW,
  });
}

async function verify(
  doc: string,
  options: { nonce?: Uint8Array; answer?: string; at?: Date; policy?: ClientPolicy; anchors?: TrustAnchors } = {},
) {
  const p = options.policy ?? policy;
  const nonce = options.nonce ?? nacl.randomBytes(32);
  const answer = options.answer ?? (await createNonceAnswer({ keys, document: doc, nonce, now: options.at ?? NOW }));
  return verifyAttestationDocument(doc, {
    policy: p.attestation,
    anchors: options.anchors ?? (await anchorsForPolicy(p)),
    manifest: manifestCheckForPolicy(p),
    at: options.at ?? NOW,
    nonce: { value: nonce, answer },
    maxClockSkewSeconds: 120,
  });
}

/** Counts WebCrypto verifications by algorithm name (the memo sits in front of ECDSA and RSA-PSS). */
function countVerifications() {
  const spy = vi.spyOn(globalThis.crypto.subtle, "verify");
  return () => {
    const counts: Record<string, number> = {};
    for (const call of spy.mock.calls) {
      const algorithm = call[0];
      const name = typeof algorithm === "string" ? algorithm : algorithm.name;
      counts[name] = (counts[name] ?? 0) + 1;
    }
    return counts;
  };
}

async function expectRejected(run: Promise<unknown>, stage: string, code: string): Promise<void> {
  expect(await rejectionOf(run, Error)).toMatchObject({ stage, code });
}

describe("signature memo in document verification", () => {
  beforeEach(async () => {
    clearVerifiedSignatureMemo();
    clearVerifiedDocumentCache();
    await verify(document); // memoises the report and certificate signatures, and the document
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("re-verifies an already verified document: only the fresh nonce answer is checked", async () => {
    const counts = countVerifications();
    const enclave = await verify(document);
    expect(enclave.measurement).toBe(toHex(MEASUREMENT));
    expect(counts().ECDSA).toBeUndefined();
    expect(counts()["RSA-PSS"]).toBeUndefined();
    // The nonce answer: one Ed25519 verification, every time.
    expect(counts().Ed25519).toBe(1);
  });

  it("without the document cache, re-verifies every JWS but not ECDSA/RSA-PSS (signature memo)", async () => {
    clearVerifiedDocumentCache();
    const counts = countVerifications();
    await verify(document);
    expect(counts().ECDSA).toBeUndefined();
    expect(counts()["RSA-PSS"]).toBeUndefined();
    // document JWS, nonce answer and manifest: three Ed25519 verifications.
    expect(counts().Ed25519).toBe(3);
  });

  it("does not reuse a verification at an earlier time, or one past the window", async () => {
    const counts = countVerifications();
    await verify(document, { at: new Date(NOW.getTime() - 1000) });
    await verify(document, { at: new Date(NOW.getTime() + 31_000) });
    expect(counts().Ed25519).toBe(6);
  });

  it("does not reuse a verification under an attestation policy or manifest policy with other content", async () => {
    const widerVmpls: ClientPolicy = {
      ...policy,
      attestation: { ...policy.attestation, snp: { ...policy.attestation.snp!, allowedVmpls: [0, 1] } },
    };
    const moreServices: ClientPolicy = {
      ...policy,
      manifest: { ...policy.manifest, allowedServices: ["cloister-dev", "another-service"] },
    };
    const counts = countVerifications();
    await verify(document, { policy: widerVmpls });
    expect(counts().Ed25519).toBe(3);
    await verify(document, { policy: moreServices });
    expect(counts().Ed25519).toBe(6);
  });

  it("recomputes everything once the memo is cleared", async () => {
    clearVerifiedSignatureMemo();
    clearVerifiedDocumentCache();
    const counts = countVerifications();
    await verify(document);
    expect(counts().ECDSA).toBe(1); // report signature (VCEK, P-384)
    expect(counts()["RSA-PSS"]).toBeGreaterThanOrEqual(2); // VCEK ← ASK ← ARK
  });

  it("still rejects a nonce answer for another nonce", async () => {
    const answer = await createNonceAnswer({ keys, document, nonce: nacl.randomBytes(32), now: NOW });
    await expectRejected(verify(document, { answer }), "nonce", "NONCE_MISMATCH");
  });

  it("still rejects a nonce answer signed by another key", async () => {
    const nonce = nacl.randomBytes(32);
    const other: EnclaveKeys = { signing: nacl.sign.keyPair(), sealing: keys.sealing };
    const answer = await createNonceAnswer({ keys: other, document, nonce, now: NOW });
    await expectRejected(verify(document, { nonce, answer }), "nonce", "NONCE_SIGNATURE_INVALID");
  });

  it("still rejects an altered document payload (same evidence)", async () => {
    const [h, p, s] = document.split(".") as [string, string, string];
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(p))) as Record<string, unknown>;
    payload.iat = 1;
    const altered = `${h}.${base64url.encode(JSON.stringify(payload))}.${s}`;
    await expectRejected(verify(altered), "document", "DOCUMENT_SIGNATURE_INVALID");
  });

  it("still rejects a re-signed document whose sealing key the evidence does not bind", async () => {
    const [, p] = document.split(".") as [string, string, string];
    const payload = JSON.parse(new TextDecoder().decode(base64url.decode(p))) as Record<string, unknown>;
    (payload.cnf as { jwk: { x: string } }).jwk.x = base64url.encode(nacl.box.keyPair().publicKey);
    const key = await importJWK(
      {
        kty: "OKP",
        crv: "Ed25519",
        x: base64url.encode(keys.signing.publicKey),
        d: base64url.encode(keys.signing.secretKey.subarray(0, 32)),
      },
      "EdDSA",
    );
    const resigned = await new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
      .setProtectedHeader({ alg: "EdDSA", typ: "cloister-attestation+jwt" })
      .sign(key);
    await expectRejected(verify(resigned), "binding", "BINDING_MISMATCH");
  });

  it("still rejects a report with one changed byte (the memo is keyed by the exact bytes)", async () => {
    const changed = new Uint8Array(report);
    changed[0x90] = (changed[0x90] as number) ^ 1; // MEASUREMENT, inside the signed area
    await expectRejected(verify(await makeDocument(changed)), "verify", "SNP_REPORT_SIGNATURE_INVALID");
  });

  it("still checks certificate validity at the new verification time", async () => {
    await expectRejected(verify(document, { at: new Date("2050-01-01T00:00:00Z") }), "verify", "CERT_EXPIRED");
  });

  it("does not reuse a verification past a certificate's notAfter, even inside the window", async () => {
    const justBefore = new Date(SIMULATED_VCEK_NOT_AFTER.getTime() - 10_000);
    const justAfter = new Date(SIMULATED_VCEK_NOT_AFTER.getTime() + 10_000);
    expect((await verify(document, { at: justBefore })).measurement).toBe(toHex(MEASUREMENT));
    await expectRejected(verify(document, { at: justAfter }), "verify", "CERT_EXPIRED");
  });

  it("does not reuse a verification under other trust anchors, with the same policy", async () => {
    // The policy still trusts the simulator; only the anchors handed in (the pinned roots) do not.
    const pinnedOnly = await anchorsForPolicy({
      ...policy,
      attestation: { ...policy.attestation, trustSimulator: false },
    });
    await expectRejected(verify(document, { anchors: pinnedOnly }), "verify", "ROOT_NOT_TRUSTED");
  });

  it("still rejects simulator evidence when the anchors do not trust the simulator", async () => {
    await expectRejected(
      verify(document, { policy: { ...policy, attestation: { ...policy.attestation, trustSimulator: false } } }),
      "verify",
      "ROOT_NOT_TRUSTED",
    );
  });
});

describe("signature memo in crypto.ts", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("never memoises a failed verification", async () => {
    const pair = (await globalThis.crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    const spki = new Uint8Array(await globalThis.crypto.subtle.exportKey("spki", pair.publicKey));
    const data = new TextEncoder().encode("memo test");
    const signature = new Uint8Array(
      await globalThis.crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, pair.privateKey, data),
    );
    const bad = new Uint8Array(signature);
    bad[5] = (bad[5] as number) ^ 0xff;
    const counts = countVerifications();
    const params = { curve: "P-256" as const, hash: "SHA-256" as const, spki, data };
    expect(await verifyEcdsa({ ...params, signature: bad })).toBe(false);
    expect(await verifyEcdsa({ ...params, signature: bad })).toBe(false);
    expect(counts().ECDSA).toBe(2);
    expect(await verifyEcdsa({ ...params, signature })).toBe(true);
    expect(await verifyEcdsa({ ...params, signature })).toBe(true);
    expect(counts().ECDSA).toBe(3);
    // Same key and signature over other data: not a memo hit.
    expect(await verifyEcdsa({ ...params, signature, data: new TextEncoder().encode("memo tesu") })).toBe(false);
    expect(counts().ECDSA).toBe(4);
  });
});
