/**
 * End to end against an adversarial host: a tampering proxy (test/e2e/helpers/tamper-proxy.ts)
 * sits between the SDK and the real host, in front of a real simulated SEV-SNP enclave.
 *
 * - The client sends nothing when verification fails: a policy that does not match, a forged
 *   attestation document or an old nonce answer replayed makes `connect` throw an attestation error
 *   naming the stage, and neither the proxy nor the host saw a single POST /v1/sealed.
 * - Altered, misrouted or replayed requests are refused by the enclave with a specific code.
 * - Altered, dropped, reordered, replayed or cut response frames give their specific integrity
 *   error, and the iterator never yields `done`: no answer is ever shown as whole. What it did
 *   yield before the error is authentic (a prefix of the genuine answer).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClientPolicy } from "../../client/policy.ts";
import { connect, type Session } from "../../client/sdk.ts";
import { verifyAuditLog } from "../../enclave/pipeline/audit.ts";
import { generateManifestSigningKey } from "../../manifests/sign.ts";
import { bootDeployment, type E2eDeployment } from "./helpers/deployment.ts";
import {
  attackerKeys,
  resignOnly,
  rewriteDocumentResponse,
  swapKeysAndResign,
  swapSealingKeyKeepSignature,
} from "./helpers/document.ts";
import { clientErrorOf, drain } from "./helpers/stream.ts";
import {
  ENVELOPE_OFFSETS,
  FRAME_OFFSETS,
  flipBit,
  frameSeq,
  joinFrames,
  splitFrames,
  startTamperProxy,
  type TamperProxy,
} from "./helpers/tamper-proxy.ts";

const GREEDY_CHAT_ANSWER =
  " The host only forwards sealed bytes and the enclave keeps every prompt private inside a confidential virtual machine.";
const QUESTION = [{ role: "user" as const, content: "What does the enclave do?" }];

let deployment: E2eDeployment;
let proxy: TamperProxy;
let policy: ClientPolicy;
let apiKey: string;

beforeAll(async () => {
  deployment = await bootDeployment("sim-snp");
  proxy = await startTamperProxy(deployment.running.hostUrl);
  policy = deployment.files.policy;
  apiKey = deployment.files.apiKey;
});

afterAll(async () => {
  await proxy?.close();
  await deployment?.stop();
});

/** The fields the policy cases below change. */
interface MutablePolicy {
  attestation: { trustSimulator: boolean; snp: { measurements: string[] } };
  manifest: { trustedSigners: unknown[] };
}

function withPolicy(change: (p: MutablePolicy) => void): ClientPolicy {
  const copy = structuredClone(policy);
  change(copy as unknown as MutablePolicy);
  return copy;
}

const connectViaProxy = (p: ClientPolicy = policy) => connect({ url: proxy.url, policy: p, apiKey });

/**
 * Counts the sealed requests in the host's own access log, after a barrier: a /healthz request sent
 * now is logged after everything the host handled before it.
 */
async function hostSealedRequestCount(): Promise<number> {
  const healthz = () => deployment.hostAccessLog().filter((r) => r.path === "/healthz").length;
  const before = healthz();
  const response = await fetch(`${deployment.running.hostUrl}/healthz`);
  expect(response.status).toBe(200);
  await deployment.waitForLog(() => healthz() > before);
  return deployment.hostAccessLog().filter((r) => r.path === "/v1/sealed").length;
}

describe("the client sends nothing when verification fails", () => {
  const cases: {
    name: string;
    policy?: () => Promise<ClientPolicy> | ClientPolicy;
    document?: (jws: string) => Promise<string> | string;
    stage: string;
    code: string;
  }[] = [
    {
      name: "the policy allows another launch measurement",
      policy: () =>
        withPolicy((p) => {
          p.attestation.snp.measurements = ["ab".repeat(48)];
        }),
      stage: "appraise",
      code: "SNP_MEASUREMENT_NOT_ALLOWED",
    },
    {
      name: "the policy does not trust the simulator",
      policy: () =>
        withPolicy((p) => {
          p.attestation.trustSimulator = false;
        }),
      stage: "appraise",
      code: "SIMULATED_EVIDENCE_NOT_TRUSTED",
    },
    {
      name: "the policy trusts another manifest signer",
      policy: async () => {
        const other = await generateManifestSigningKey("EdDSA");
        return withPolicy((p) => {
          p.manifest.trustedSigners = [other.publicJwk];
        });
      },
      stage: "manifest",
      code: "MANIFEST_SIGNATURE_INVALID",
    },
    {
      name: "the host swaps the X25519 sealing key in the document (enclave signature left as it was)",
      document: (jws) => swapSealingKeyKeepSignature(jws, attackerKeys().sealing.publicKey),
      stage: "binding",
      code: "BINDING_MISMATCH",
    },
    {
      name: "the host swaps both keys and re-signs the document with its own Ed25519 key",
      document: (jws) => swapKeysAndResign(jws, attackerKeys()),
      stage: "binding",
      code: "BINDING_MISMATCH",
    },
    {
      name: "the host re-signs the unchanged document with its own Ed25519 key",
      document: (jws) => resignOnly(jws, attackerKeys().signing),
      stage: "document",
      code: "DOCUMENT_SIGNATURE_INVALID",
    },
  ];

  for (const c of cases) {
    it(`${c.name} → attestation error at stage ${c.stage}, nothing sealed sent`, async () => {
      proxy.reset();
      const p = c.policy === undefined ? policy : await c.policy();
      if (c.document !== undefined) {
        // Forge asynchronously first (jose signs asynchronously), then let the proxy substitute it.
        const genuine = (await await fetch(`${deployment.running.hostUrl}/v1/attestation`, {
          headers: { authorization: `Bearer ${apiKey}` },
        }).then((r) => r.json())) as { document: string };
        const forged = await c.document(genuine.document);
        expect(forged).not.toBe(genuine.document);
        proxy.tamper({
          method: "GET",
          path: "/v1/attestation",
          response: (body) => rewriteDocumentResponse(body, () => forged),
        });
        // The nonce question names the forged document's key id: a host that forges documents has its
        // one enclave answer it whatever it names (the honest host behind the proxy would refuse a name
        // not its enclave's, WRONG_ENCLAVE_KEY, before the client's verification is reached).
        proxy.tamper({
          method: "POST",
          path: "/v1/attestation/challenge",
          forwardUrl: (url) => url.split("?")[0] as string,
        });
      }
      const error = await clientErrorOf(connectViaProxy(p));
      expect(error.kind).toBe("attestation");
      expect(error.stage).toBe(c.stage);
      expect(error.code).toBe(c.code);
      expect(error.message).toContain(`stage ${c.stage}`);
      // The verification did happen through the proxy, and nothing sealed followed it.
      expect(proxy.observed("GET", "/v1/attestation")).toHaveLength(1);
      expect(proxy.observed("POST", "/v1/sealed")).toHaveLength(0);
    });
  }

  it("the host answers the client's nonce with an earlier genuine answer → NONCE_MISMATCH at stage nonce, nothing sealed sent", async () => {
    proxy.reset();
    // A genuine answer of this very enclave, signed by its attested key, to another (older) nonce.
    const old = await fetch(`${deployment.running.hostUrl}/v1/attestation/challenge`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ nonce: Buffer.alloc(32, 7).toString("base64url") }),
    });
    expect(old.status).toBe(200);
    const replayed = new Uint8Array(await old.arrayBuffer());
    proxy.tamper({ method: "POST", path: "/v1/attestation/challenge", times: 1, response: () => replayed });
    const error = await clientErrorOf(connectViaProxy());
    expect(error).toMatchObject({ kind: "attestation", stage: "nonce", code: "NONCE_MISMATCH" });
    expect(proxy.observed("POST", "/v1/attestation/challenge")).toHaveLength(1);
    expect(proxy.observed("POST", "/v1/sealed")).toHaveLength(0);
  });

  it("the host itself logged zero sealed requests for all of the above", async () => {
    expect(await hostSealedRequestCount()).toBe(0);
    expect(deployment.hostAccessLog().filter((r) => r.path === "/v1/attestation").length).toBeGreaterThanOrEqual(
      cases.length,
    );
  });
});

describe("tampered or replayed requests", () => {
  let session: Session;
  beforeAll(async () => {
    proxy.reset();
    session = await connectViaProxy();
  });

  const flips: { name: string; offset: number; bits?: number[]; code: string }[] = [
    { name: "a bit of the ciphertext", offset: ENVELOPE_OFFSETS.ciphertext + 20, code: "DECRYPTION_FAILED" },
    { name: "a bit of the MAC", offset: ENVELOPE_OFFSETS.ciphertext, code: "DECRYPTION_FAILED" },
    { name: "a bit of the client's ephemeral key", offset: ENVELOPE_OFFSETS.clientKey + 5, code: "DECRYPTION_FAILED" },
    { name: "a bit of the nonce", offset: ENVELOPE_OFFSETS.nonce + 3, code: "DECRYPTION_FAILED" },
    // kind 0x01 (chat) → 0x02 (complete): a header that parses, but not the one the client bound.
    { name: "the kind byte, chat → complete", offset: ENVELOPE_OFFSETS.kind, bits: [0, 1], code: "HEADER_MISMATCH" },
  ];
  for (const f of flips) {
    it(`flipping ${f.name} → ${f.code} from the enclave, as an integrity error, no answer`, async () => {
      proxy.reset();
      proxy.tamper({
        method: "POST",
        path: "/v1/sealed",
        times: 1,
        request: (body) => (f.bits ?? [0]).reduce((b, bit) => flipBit(b, f.offset, bit), body),
      });
      const result = await drain(session.chat(QUESTION));
      expect(result.events).toEqual([]);
      expect(result.error).toMatchObject({ name: "ClientError", kind: "integrity", code: f.code });
      const [exchange] = proxy.observed("POST", "/v1/sealed");
      expect(exchange?.status).toBe(400);
      expect(exchange?.hostBody).not.toEqual(exchange?.clientBody);
    });
  }

  it("a key id altered once: the client re-attests once, finds the same key, and does not resend the prompt", async () => {
    proxy.reset();
    proxy.tamper({
      method: "POST",
      path: "/v1/sealed",
      times: 1,
      request: (body) => flipBit(body, ENVELOPE_OFFSETS.keyId),
    });
    const before = session.enclave.documentDigest;
    const result = await drain(session.chat(QUESTION));
    expect(result.events).toEqual([]);
    expect(result.error).toMatchObject({ name: "ClientError", kind: "integrity", code: "WRONG_ENCLAVE_KEY_UNCHANGED" });
    // One sealed request only: a host that forges WRONG_ENCLAVE_KEY gets no second copy of the prompt.
    expect(proxy.observed("POST", "/v1/sealed").map((e) => e.status)).toEqual([409]);
    expect(proxy.observed("GET", "/v1/attestation")).toHaveLength(1);
    expect(session.enclave.documentDigest).toBe(before);
    // The session still works afterwards.
    const next = await drain(session.chat(QUESTION));
    expect(next.text).toBe(GREEDY_CHAT_ANSWER);
  });

  it("a key id altered every time: one re-attestation, no resend, no answer", async () => {
    proxy.reset();
    proxy.tamper({ method: "POST", path: "/v1/sealed", request: (body) => flipBit(body, ENVELOPE_OFFSETS.keyId + 7) });
    const result = await drain(session.chat(QUESTION));
    expect(result.events).toEqual([]);
    expect(result.error).toMatchObject({ name: "ClientError", code: "WRONG_ENCLAVE_KEY_UNCHANGED" });
    expect(proxy.observed("POST", "/v1/sealed").map((e) => e.status)).toEqual([409]);
    expect(proxy.observed("GET", "/v1/attestation")).toHaveLength(1);
  });

  it("a captured request replayed in place of a new one → REQUEST_REPLAYED; a raw replay → 409 REQUEST_REPLAYED", async () => {
    proxy.reset();
    const first = await drain(session.chat(QUESTION));
    expect(first.text).toBe(GREEDY_CHAT_ANSWER);
    const captured = proxy.observed("POST", "/v1/sealed")[0]?.hostBody;
    expect(captured).toBeDefined();

    // The host answers the client's next request by replaying the captured one instead.
    proxy.tamper({ method: "POST", path: "/v1/sealed", times: 1, request: () => captured! });
    const replayed = await drain(session.chat(QUESTION));
    expect(replayed.events).toEqual([]);
    expect(replayed.error).toMatchObject({ name: "ClientError", kind: "integrity", code: "REQUEST_REPLAYED" });

    // Whoever holds an API key and replays the bytes directly gets a clear refusal too.
    const raw = await fetch(`${deployment.running.hostUrl}/v1/sealed`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/octet-stream" },
      body: captured as Uint8Array<ArrayBuffer>,
    });
    expect(raw.status).toBe(409);
    expect(await raw.json()).toMatchObject({ error: { code: "REQUEST_REPLAYED" } });
  });
});

describe("tampered response frames", () => {
  let session: Session;
  let genuineFrames: Uint8Array[];
  beforeAll(async () => {
    proxy.reset();
    session = await connectViaProxy();
    const result = await drain(session.chat(QUESTION));
    expect(result.text).toBe(GREEDY_CHAT_ANSWER);
    const response = proxy.observed("POST", "/v1/sealed")[0]?.hostResponse;
    genuineFrames = splitFrames(response!);
  });

  it("the genuine stream has several data frames, seq 0, 1, 2, …, and a final frame", () => {
    expect(genuineFrames.length).toBeGreaterThan(6);
    expect(genuineFrames.map(frameSeq)).toEqual(genuineFrames.map((_, i) => i));
  });

  type Frames = Uint8Array[];
  const last = (f: Frames) => f.length - 1;
  const cases: {
    name: string;
    mutate: (frames: Frames) => Uint8Array;
    code: string;
    cut?: (body: Uint8Array) => number;
    /** False where the damage is at the first frame: no text may come. Otherwise genuine text frames come first. */
    textFirst?: false;
  }[] = [
    {
      name: "a bit flipped in a data frame's ciphertext",
      mutate: (f) => joinFrames(f.map((x, i) => (i === 2 ? flipBit(x, FRAME_OFFSETS.ciphertext, 3) : x))),
      code: "FRAME_TAMPERED",
    },
    {
      name: "a bit flipped in a data frame's MAC",
      mutate: (f) => joinFrames(f.map((x, i) => (i === 2 ? flipBit(x, FRAME_OFFSETS.mac + 9) : x))),
      code: "FRAME_TAMPERED",
    },
    {
      name: "a bit flipped in a data frame's clear seq",
      mutate: (f) => joinFrames(f.map((x, i) => (i === 2 ? flipBit(x, FRAME_OFFSETS.seq + 7) : x))),
      code: "FRAME_TAMPERED",
    },
    {
      name: "a bit flipped in the final frame (usage)",
      mutate: (f) => joinFrames(f.map((x, i) => (i === last(f) ? flipBit(x, FRAME_OFFSETS.ciphertext + 4) : x))),
      code: "FRAME_TAMPERED",
    },
    {
      name: "a data frame dropped",
      mutate: (f) => joinFrames(f.filter((_, i) => i !== 2)),
      code: "FRAME_DROPPED",
    },
    {
      name: "two data frames swapped",
      mutate: (f) => joinFrames([...f.slice(0, 2), f[3]!, f[2]!, ...f.slice(4)]),
      code: "FRAME_REORDERED",
    },
    {
      name: "a data frame duplicated (replayed right after itself)",
      mutate: (f) => joinFrames([...f.slice(0, 3), f[2]!, ...f.slice(3)]),
      code: "FRAME_REPLAYED",
    },
    {
      name: "an earlier data frame replayed after the final frame",
      mutate: (f) => joinFrames([...f, f[1]!]),
      code: "FRAME_REPLAYED",
    },
    {
      name: "the final frame dropped",
      mutate: (f) => joinFrames(f.slice(0, -1)),
      code: "STREAM_TRUNCATED",
    },
    {
      name: "the stream cut cleanly in the middle of the final frame",
      mutate: (f) => {
        const whole = joinFrames(f);
        return whole.subarray(0, whole.length - Math.floor(f[last(f)]!.length / 2));
      },
      code: "STREAM_TRUNCATED",
    },
    {
      name: "the connection reset part-way through the stream",
      mutate: (f) => joinFrames(f),
      cut: (body) => Math.floor(body.length / 2) + 3,
      code: "STREAM_TRUNCATED",
    },
    {
      name: "a frame length prefix inflated past the limit",
      mutate: (f) =>
        joinFrames(
          f.map((x, i) => {
            if (i !== 2) return x;
            const copy = new Uint8Array(x);
            new DataView(copy.buffer).setUint32(0, 0x7fff_ffff);
            return copy;
          }),
        ),
      code: "FRAME_MALFORMED",
    },
    {
      name: "the whole answer to an earlier request spliced in",
      mutate: () => joinFrames(genuineFrames),
      code: "FRAME_TAMPERED",
      textFirst: false,
    },
  ];

  for (const c of cases) {
    it(`${c.name} → ${c.code}, and never a done event`, async () => {
      proxy.reset();
      proxy.tamper({
        method: "POST",
        path: "/v1/sealed",
        times: 1,
        response: (body) => c.mutate(splitFrames(body)),
        ...(c.cut === undefined ? {} : { cutAfterBytes: c.cut(joinFrames(genuineFrames)) }),
      });
      const result = await drain(session.chat(QUESTION));
      expect(result.done).toBeUndefined();
      expect(result.events.every((e) => e.type === "text")).toBe(true);
      expect(result.error).toMatchObject({ name: "ClientError", kind: "integrity", code: c.code });
      // The text that came before the error is authentic: a prefix of the genuine answer, and not
      // an empty one where genuine text frames were sent before the damage (an empty text would
      // pass the prefix check whatever the client did with them).
      if (c.textFirst === false) expect(result.text).toBe("");
      else expect(result.text.length).toBeGreaterThan(0);
      expect(GREEDY_CHAT_ANSWER.startsWith(result.text)).toBe(true);
      // The enclave did answer (status 200): the damage was done between host and client.
      expect(proxy.observed("POST", "/v1/sealed")[0]?.status).toBe(200);
    });
  }
});

describe("the audit log the host stores, against a fresh checkpoint", () => {
  /** The records the host stored for this boot, once it holds at least `count` of them. */
  async function storedAuditLines(session: Session, count: number): Promise<string[]> {
    const file = join(deployment.dir, "audit", `${session.enclave.documentDigest.slice(0, 16)}.jsonl`);
    const deadline = Date.now() + 5_000;
    for (;;) {
      const lines = (await readFile(file, "utf8").catch(() => "")).split("\n").filter((l) => l.length > 0);
      if (lines.length >= count || Date.now() > deadline) return lines;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it("a fresh checkpoint verifies and the stored log is complete against it; a log cut at its end is caught only with it", async () => {
    proxy.reset();
    const session = await connectViaProxy();
    expect((await drain(session.chat(QUESTION))).error).toBeUndefined();
    const checkpoint = await session.auditCheckpoint();
    expect(checkpoint.count).toBeGreaterThan(1);
    expect(checkpoint.signingPublicKey).toBe(Buffer.from(session.enclave.signingPublicKey).toString("hex"));
    const lines = await storedAuditLines(session, checkpoint.count);
    const key = session.enclave.signingPublicKey;
    const expected = { count: checkpoint.count, lastRecordHash: checkpoint.lastRecordHash };
    expect(verifyAuditLog(lines, key, { expect: expected }).ok).toBe(true);
    const cut = lines.slice(0, checkpoint.count - 1);
    expect(verifyAuditLog(cut, key).ok).toBe(true); // the chain alone cannot show the cut
    expect(verifyAuditLog(cut, key, { expect: expected })).toMatchObject({
      ok: false,
      error: { code: "AUDIT_LOG_TRUNCATED" },
    });
  });

  it("an old checkpoint replayed by the host, or an altered one → AUDIT_CHECKPOINT_INVALID (integrity)", async () => {
    proxy.reset();
    const session = await connectViaProxy();
    await session.auditCheckpoint();
    const old = proxy.observed("POST", "/v1/audit/checkpoint")[0]?.hostResponse;
    if (old == null) throw new Error("no checkpoint passed the proxy");
    expect((await drain(session.chat(QUESTION))).error).toBeUndefined(); // the log grew since
    proxy.tamper({ method: "POST", path: "/v1/audit/checkpoint", times: 1, response: () => old });
    await expect(session.auditCheckpoint()).rejects.toMatchObject({
      name: "ClientError",
      kind: "integrity",
      code: "AUDIT_CHECKPOINT_INVALID",
      message: expect.stringContaining("found one the enclave signed for another (an old checkpoint replayed)"),
    });
    const lowerCount = (body: Uint8Array) => {
      const { checkpoint } = JSON.parse(Buffer.from(body).toString("utf8")) as { checkpoint: string };
      const altered = checkpoint.replace(/"count":(\d+)/, (_, n: string) => `"count":${Number(n) - 1}`);
      expect(altered).not.toBe(checkpoint);
      return new TextEncoder().encode(JSON.stringify({ checkpoint: altered }));
    };
    proxy.tamper({ method: "POST", path: "/v1/audit/checkpoint", times: 1, response: lowerCount });
    await expect(session.auditCheckpoint()).rejects.toMatchObject({
      kind: "integrity",
      code: "AUDIT_CHECKPOINT_INVALID",
      message: expect.stringContaining("found one that does not verify"),
    });
    // Untampered, the same session gets a checkpoint again.
    expect((await session.auditCheckpoint()).count).toBeGreaterThan(0);
  });
});

describe("after all the tampering", () => {
  it("both processes still run, and an untampered session gets the genuine answer", async () => {
    proxy.reset();
    const session = await connectViaProxy();
    const result = await drain(session.chat(QUESTION));
    expect(result.error).toBeUndefined();
    expect(result.text).toBe(GREEDY_CHAT_ANSWER);
    expect(result.done?.finishReason).toBe("stop");
    expect(await deployment.crashed()).toBeNull();
  });
});
