/**
 * End to end, real processes: the enclave goes away and comes back.
 *
 * - Enclave down (its process stopped, the host still up): the SDK gets a transport error
 *   ENCLAVE_UNREACHABLE that names the enclave, for sealed requests and for attestation.
 * - Enclave restarted on the same port (a new boot: new keys, new document): an existing session's
 *   next request is refused with WRONG_ENCLAVE_KEY, re-attests once, fully, and succeeds; a
 *   request sealed to the earlier boot cannot be opened by the new one.
 * - What a restart is not retried for (README, "Using the SDK"): auditCheckpoint
 *   (AUDIT_CHECKPOINT_INVALID, or the host's WRONG_ENCLAVE_KEY once it has read the new boot's
 *   document) and every request of a session of one named boot (enclaveKeyId: the host's
 *   WRONG_ENCLAVE_KEY, nothing resent).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { connect, type Session } from "../../client/sdk.ts";
import { enclaveKeyId } from "../../sealed/keys.ts";
import { bootDeployment, type E2eDeployment } from "./helpers/deployment.ts";
import { clientErrorOf, drain } from "./helpers/stream.ts";

const GREEDY_CHAT_ANSWER =
  " The host only forwards sealed bytes and the enclave keeps every prompt private inside a confidential virtual machine.";
const QUESTION = [{ role: "user" as const, content: "What does the enclave do?" }];

let deployment: E2eDeployment;
let session: Session;
/** Every request the SDK made: path and, for sealed requests, the envelope and the status. */
const calls: { path: string; body: Uint8Array | null; status: number | null }[] = [];

const recordingFetch: typeof fetch = async (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const call = {
    path: url.pathname,
    body: init?.body instanceof Uint8Array ? new Uint8Array(init.body) : null,
    status: null as number | null,
  };
  calls.push(call);
  const response = await fetch(input, init);
  call.status = response.status;
  return response;
};
const count = (path: string) => calls.filter((c) => c.path === path).length;

beforeAll(async () => {
  deployment = await bootDeployment("sim-snp");
  session = await connect({
    url: deployment.running.hostUrl,
    policy: deployment.files.policy,
    apiKey: deployment.files.apiKey,
    fetch: recordingFetch,
  });
});

afterAll(async () => {
  await deployment?.stop();
});

describe("enclave down, then restarted with new keys", () => {
  let firstBoot: { documentDigest: string; sealingKey: string; signingKey: string; measurement: string };
  let envelopeForFirstBoot: Uint8Array;

  it("before: the session answers", async () => {
    const result = await drain(session.chat(QUESTION));
    expect(result.error).toBeUndefined();
    expect(result.text).toBe(GREEDY_CHAT_ANSWER);
    const e = session.enclave;
    firstBoot = {
      documentDigest: e.documentDigest,
      sealingKey: Buffer.from(e.sealingPublicKey).toString("hex"),
      signingKey: Buffer.from(e.signingPublicKey).toString("hex"),
      measurement: e.measurement,
    };
    const sealed = calls.filter((c) => c.path === "/v1/sealed");
    expect(sealed.map((c) => c.status)).toEqual([200]);
    envelopeForFirstBoot = sealed[0]!.body!;
  });

  it("enclave stopped: chat and attest fail with transport ENCLAVE_UNREACHABLE naming the enclave; the host stays up", async () => {
    await deployment.running.stopEnclave();
    // Stopped right after answering: on SIGTERM the enclave drained until the host had collected
    // that answer's audit record, so the stored log is complete (nothing died with the boot).
    const stored = await readFile(
      join(deployment.dir, "audit", `${firstBoot.documentDigest.slice(0, 16)}.jsonl`),
      "utf8",
    );
    expect(stored.split("\n").filter((l) => l.length > 0)).toHaveLength(1);
    const chat = await drain(session.chat(QUESTION));
    expect(chat.events).toEqual([]);
    expect(chat.error).toMatchObject({ name: "ClientError", kind: "transport", code: "ENCLAVE_UNREACHABLE" });
    expect((chat.error as Error).message).toMatch(/enclave/);

    const attest = await clientErrorOf(session.attest());
    expect(attest.kind).toBe("transport");
    expect(attest.code).toBe("ENCLAVE_UNREACHABLE");
    expect(attest.message).toMatch(/enclave/);

    // The failed attempt left the session on the enclave it verified: nothing was replaced.
    expect(session.enclave.documentDigest).toBe(firstBoot.documentDigest);
    // The host answers, and says its one enclave is down (so a load balancer turns away from it).
    const health = await fetch(`${deployment.running.hostUrl}/healthz`);
    expect({ status: health.status, body: await health.json() }).toEqual({
      status: 503,
      body: { status: "unavailable" },
    });
    expect(await deployment.crashed()).toBeNull();
  });

  it("enclave restarted on the same port: the next chat re-attests once, automatically, and succeeds", async () => {
    await deployment.running.restartEnclave();
    // The new boot measures the tree as it is now; the policy was written for the tree at the start.
    await deployment.assertSourcesUnchanged();
    const attestationsBefore = count("/v1/attestation");
    const challengesBefore = count("/v1/attestation/challenge");
    const sealedBefore = count("/v1/sealed");

    const result = await drain(session.chat(QUESTION));
    expect(result.error).toBeUndefined();
    expect(result.text).toBe(GREEDY_CHAT_ANSWER);
    expect(result.done?.finishReason).toBe("stop");

    // One refused attempt (old key), one full re-attestation, one successful resend.
    expect(calls.slice(-4).map((c) => `${c.path} ${c.status}`)).toEqual([
      "/v1/sealed 409",
      "/v1/attestation 200",
      "/v1/attestation/challenge 200",
      "/v1/sealed 200",
    ]);
    expect(count("/v1/attestation") - attestationsBefore).toBe(1);
    expect(count("/v1/attestation/challenge") - challengesBefore).toBe(1);
    expect(count("/v1/sealed") - sealedBefore).toBe(2);

    // A new boot: new document and new keys, same code (same measurement).
    const e = session.enclave;
    expect(e.documentDigest).not.toBe(firstBoot.documentDigest);
    expect(Buffer.from(e.sealingPublicKey).toString("hex")).not.toBe(firstBoot.sealingKey);
    expect(Buffer.from(e.signingPublicKey).toString("hex")).not.toBe(firstBoot.signingKey);
    expect(e.measurement).toBe(firstBoot.measurement);
  });

  it("the next chat goes straight through (no further re-attestation)", async () => {
    const attestationsBefore = count("/v1/attestation");
    const result = await drain(session.chat(QUESTION));
    expect(result.text).toBe(GREEDY_CHAT_ANSWER);
    expect(count("/v1/attestation")).toBe(attestationsBefore);
  });

  it("restarted again: concurrent chats on one session all succeed (a request that finds the key already renewed reseals)", async () => {
    await deployment.running.restartEnclave();
    await deployment.assertSourcesUnchanged();
    const results = await Promise.all([drain(session.chat(QUESTION)), drain(session.chat(QUESTION))]);
    for (const result of results) {
      expect(result.error).toBeUndefined();
      expect(result.text).toBe(GREEDY_CHAT_ANSWER);
    }
  });

  it("a request sealed to the earlier boot cannot be opened by the new one → 409 WRONG_ENCLAVE_KEY", async () => {
    const response = await fetch(`${deployment.running.hostUrl}/v1/sealed`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${deployment.files.apiKey}`,
        "content-type": "application/octet-stream",
      },
      body: envelopeForFirstBoot as Uint8Array<ArrayBuffer>,
    });
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ error: { code: "WRONG_ENCLAVE_KEY" } });
    expect(await deployment.crashed()).toBeNull();
  });

  it("restarted: auditCheckpoint is not retried (README): AUDIT_CHECKPOINT_INVALID until the session verifies the new boot", async () => {
    await deployment.running.restartEnclave();
    await deployment.assertSourcesUnchanged();
    const refused = await session.auditCheckpoint().then(
      () => undefined,
      (error: unknown) => error as { kind?: unknown; code?: unknown },
    );
    expect(refused).toMatchObject({ kind: "integrity", code: "AUDIT_CHECKPOINT_INVALID" });
    await session.attest();
    expect((await session.auditCheckpoint()).signingPublicKey).toBe(
      Buffer.from(session.enclave.signingPublicKey).toString("hex"),
    );
  });

  it("restarted, the new boot's document read by the host (another client verified it): auditCheckpoint is the host's WRONG_ENCLAVE_KEY (README)", async () => {
    await deployment.running.restartEnclave();
    await deployment.assertSourcesUnchanged();
    await connect({
      url: deployment.running.hostUrl,
      policy: deployment.files.policy,
      apiKey: deployment.files.apiKey,
    });
    const refused = await clientErrorOf(session.auditCheckpoint());
    expect(refused).toMatchObject({ kind: "transport", code: "WRONG_ENCLAVE_KEY", origin: "host", status: 409 });
    await session.attest();
    expect((await session.auditCheckpoint()).signingPublicKey).toBe(
      Buffer.from(session.enclave.signingPublicKey).toString("hex"),
    );
  });

  it("a session of one named boot (connect({enclaveKeyId})) resends nothing after a restart: WRONG_ENCLAVE_KEY (README)", async () => {
    const asked: string[] = [];
    const named = await connect({
      url: deployment.running.hostUrl,
      policy: deployment.files.policy,
      apiKey: deployment.files.apiKey,
      enclaveKeyId: toHex(await enclaveKeyId(session.enclave.sealingPublicKey)),
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        asked.push(`${new URL(String(input)).pathname} ${response.status}`);
        return response;
      },
    });
    await deployment.running.restartEnclave();
    await deployment.assertSourcesUnchanged();
    asked.length = 0;
    const result = await drain(named.chat(QUESTION));
    expect(result.events).toEqual([]);
    expect(result.error).toMatchObject({ kind: "transport", code: "WRONG_ENCLAVE_KEY", origin: "host", status: 409 });
    // Its re-verification asked for the named boot's document only, and nothing was sealed again.
    expect(asked).toEqual(["/v1/sealed 409", "/v1/attestation 409"]);
  });
});
