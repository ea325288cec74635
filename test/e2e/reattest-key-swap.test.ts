/**
 * A session's re-verification through a host that swaps the enclave's sealing key in the document
 * it serves (enclave signature left as it was: test/e2e/helpers/document.ts). The client sends the
 * nonce question to the key id of that document's cnf.jwk (a routing hint), which no enclave of the
 * host has: the honest routing behind the tampering proxy refuses it, 409 WRONG_ENCLAVE_KEY, before
 * the client's verification is reached. client/sdk.ts (Session.attest, forgetsVerification): that
 * refusal is a transport error (the client cannot tell it from a restart between the two requests),
 * and it empties what the session shows as verified, so `enclave`/`document` (and the browser page,
 * which follows `session.attested`) no longer show the earlier boot; the next request verifies
 * first (the page: test/e2e/browser-reverify.test.ts). A host that cannot be reached at the same step
 * keeps the earlier verification. Nothing is ever sealed to the swapped key. So for a session of one
 * named boot whose document the host refuses by name after a restart (409 WRONG_ENCLAVE_KEY).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VerifiedEnclave } from "../../attestation/document.ts";
import { connect, type Session } from "../../client/sdk.ts";
import { defaultTransport, type Transport } from "../../client/transport.ts";
import { enclaveKeyId } from "../../sealed/index.ts";
import { bootDeployment, type E2eDeployment } from "./helpers/deployment.ts";
import { attackerKeys, rewriteDocumentResponse, swapSealingKeyKeepSignature } from "./helpers/document.ts";
import { clientErrorOf, drain } from "./helpers/stream.ts";
import { ENVELOPE_OFFSETS, startTamperProxy, type TamperProxy } from "./helpers/tamper-proxy.ts";

const GREEDY_CHAT_ANSWER =
  " The host only forwards sealed bytes and the enclave keeps every prompt private inside a confidential virtual machine.";
const QUESTION = [{ role: "user" as const, content: "What does the enclave do?" }];

let deployment: E2eDeployment;
let proxy: TamperProxy;

beforeAll(async () => {
  deployment = await bootDeployment("sim-snp");
  proxy = await startTamperProxy(deployment.running.hostUrl);
});

afterAll(async () => {
  await proxy?.close();
  await deployment?.stop();
});

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const keyIdOf = async (key: Uint8Array) => hex(await enclaveKeyId(key));
/** The enclave key id a sealed envelope was sealed to (its routing id). */
const sealedToKeyId = (envelope: Uint8Array) =>
  hex(envelope.subarray(ENVELOPE_OFFSETS.keyId, ENVELOPE_OFFSETS.keyId + 16));

/** A session through the proxy, answered once (so it holds a verification and request keys). */
async function answeredSession(transport?: Transport): Promise<{ session: Session; verified: VerifiedEnclave }> {
  proxy.reset();
  const session = await connect({
    url: proxy.url,
    policy: deployment.files.policy,
    apiKey: deployment.files.apiKey,
    ...(transport === undefined ? {} : { transport }),
  });
  const first = await drain(session.chat(QUESTION));
  expect(first.text).toBe(GREEDY_CHAT_ANSWER);
  return { session, verified: session.enclave };
}

describe("a re-verification through a host that swaps the sealing key", () => {
  it("is refused at the challenge (409 WRONG_ENCLAVE_KEY, transport): the session forgets the earlier boot, and seals nothing to the swapped key", async () => {
    const { session, verified } = await answeredSession();
    const genuineId = await keyIdOf(verified.sealingPublicKey);
    const swapped = attackerKeys().sealing.publicKey;
    const swappedId = await keyIdOf(swapped);
    proxy.reset();
    proxy.tamper({
      method: "GET",
      path: "/v1/attestation",
      response: (body) => rewriteDocumentResponse(body, (jws) => swapSealingKeyKeepSignature(jws, swapped)),
    });

    const error = await clientErrorOf(session.attest());
    expect(error).toMatchObject({ kind: "transport", code: "WRONG_ENCLAVE_KEY", origin: "host", status: 409 });
    // Stage, the key id asked about (the served document's), what was expected and found, and the
    // earlier boot's key id: all public.
    expect(error.message).toContain("attestation could not complete at stage nonce");
    expect(error.message).toContain(`enclave key id ${swappedId} (the served document's cnf.jwk)`);
    expect(error.message).toContain("expected the host to pass it to that enclave, found the host's refusal");
    expect(error.message).toContain(`earlier verification (enclave key id ${genuineId}) is forgotten`);
    const [challenge] = proxy.observed("POST", "/v1/attestation/challenge");
    expect(challenge?.url).toBe(`/v1/attestation/challenge?enclave=${swappedId}`);
    expect(challenge?.status).toBe(409);

    // Nothing shown as verified any more.
    expect(session.attested).toBe(false);
    expect(() => session.enclave).toThrow(expect.objectContaining({ code: "NOT_ATTESTED" }));
    expect(() => session.document).toThrow(expect.objectContaining({ code: "NOT_ATTESTED" }));

    // A question meanwhile verifies first, is refused the same way, and nothing is sealed or sent.
    const asked = await drain(session.chat(QUESTION));
    expect(asked.events).toEqual([]);
    expect(asked.error).toMatchObject({ kind: "transport", code: "WRONG_ENCLAVE_KEY" });
    expect(proxy.observed("POST", "/v1/sealed")).toHaveLength(0);
    expect(session.attested).toBe(false);

    // The document whole again: verified again (the same genuine boot), and sealed to its key only.
    proxy.reset();
    const again = await drain(session.chat(QUESTION));
    expect(again.text).toBe(GREEDY_CHAT_ANSWER);
    expect(session.enclave.documentDigest).toBe(verified.documentDigest);
    expect(proxy.observed("GET", "/v1/attestation")).toHaveLength(1);
    const sealed = proxy.observed("POST", "/v1/sealed");
    expect(sealed.map((exchange) => sealedToKeyId(exchange.clientBody))).toEqual([genuineId]);
  });

  it("a host that cannot be reached at the challenge keeps the earlier verification (HOST_UNREACHABLE)", async () => {
    let cutChallenge = false;
    const underlying = await defaultTransport();
    // As a host whose port refuses connections just then: nothing reaches it.
    const transport: Transport = (url, request) => {
      if (cutChallenge && new URL(url).pathname === "/v1/attestation/challenge") {
        return Promise.reject(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }));
      }
      return underlying(url, request);
    };
    const { session, verified } = await answeredSession(transport);
    cutChallenge = true;
    proxy.reset();
    const error = await clientErrorOf(session.attest());
    expect(error).toMatchObject({ kind: "transport", code: "HOST_UNREACHABLE", origin: "client" });
    expect(session.attested).toBe(true);
    expect(session.enclave.documentDigest).toBe(verified.documentDigest);
    // Still within its reattestAfterMs: the next question is sealed to the verified key and answered.
    cutChallenge = false;
    const next = await drain(session.chat(QUESTION));
    expect(next.text).toBe(GREEDY_CHAT_ANSWER);
    expect(proxy.observed("GET", "/v1/attestation")).toHaveLength(1);
    expect(proxy.observed("POST", "/v1/sealed")).toHaveLength(1);
  });

  // Last: it restarts the enclave.
  it("a session of one named boot after that boot restarted: the host's WRONG_ENCLAVE_KEY for the named document empties it too", async () => {
    const { verified } = await answeredSession();
    const bootId = await keyIdOf(verified.sealingPublicKey);
    const session = await connect({
      url: proxy.url,
      policy: deployment.files.policy,
      apiKey: deployment.files.apiKey,
      enclaveKeyId: bootId,
    });
    await deployment.running.restartEnclave();
    proxy.reset();
    const asked = await drain(session.chat(QUESTION));
    expect(asked.events).toEqual([]);
    expect(asked.error).toMatchObject({ kind: "transport", code: "WRONG_ENCLAVE_KEY", origin: "host", status: 409 });
    // Sealed once, to the named boot's key (refused), then its document asked for by name: refused.
    expect(proxy.observed("POST", "/v1/sealed").map((e) => [sealedToKeyId(e.clientBody), e.status])).toEqual([
      [bootId, 409],
    ]);
    expect(proxy.observed("GET", "/v1/attestation").map((e) => [e.url, e.status])).toEqual([
      [`/v1/attestation?enclave=${bootId}`, 409],
    ]);
    expect(session.attested).toBe(false);
    expect(() => session.enclave).toThrow(expect.objectContaining({ code: "NOT_ATTESTED" }));
  });
});
