/**
 * A request in flight across the moment its session forgets its verification (client/sdk.ts
 * Session.attest, forgetsVerification): a re-verification that the host refuses at the nonce question
 * (409 WRONG_ENCLAVE_KEY) empties what the session shows as verified while a request sealed to the
 * verified key (A) is still on its way. That request's answer from A, checked against the key it was
 * sealed to, does not put the forgotten verification back; and when the host refuses it too (409,
 * the enclave's keys changed), the request verifies again and is resealed once to a new key (B), or
 * is not resent when the key found again is the one it was sealed to (WRONG_ENCLAVE_KEY_UNCHANGED).
 * Each test first sees the session forget (fails without the forgetting). The SDK's side through a
 * real host: test/e2e/reattest-key-swap.test.ts.
 */
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../../client/sdk.ts";
import { fetchTransport, type Transport } from "../../client/transport.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import { bootWith, ScriptedEngine } from "../enclave/helpers.ts";
import { closeServers, devPolicy, OK, serve } from "./helpers.ts";

/** Enclaves booted by a test, closed after it. */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await closeServers();
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/**
 * Enclaves A and B (the dev policy accepts both alike), a stand-in host that sends every path to
 * `host.target` (A at first) or where `host.route` says, and a server that answers everything with
 * the host's 409 WRONG_ENCLAVE_KEY. The session's first request is sealed to A and held at the host
 * (`request.held`) until `request.release(to)` forwards it to `to`.
 */
async function requestHeldAcrossAForget() {
  const enclaves = await Promise.all([0, 1].map(() => bootWith(new ScriptedEngine(() => OK))));
  cleanups.push(...enclaves.map((enclave) => () => enclave.close()));
  const [a, b] = enclaves as [(typeof enclaves)[0], (typeof enclaves)[0]];
  const urls = {
    a: await serve(createEnclaveApp(a).fetch),
    b: await serve(createEnclaveApp(b).fetch),
    refuses: await serve(() =>
      Response.json(
        { error: { code: "WRONG_ENCLAVE_KEY", message: "enclave key id: no enclave of this host has it now" } },
        { status: 409 },
      ),
    ),
  };
  const forward = fetchTransport(fetch);
  const host = {
    target: urls.a,
    paths: [] as string[],
    route: undefined as ((path: string) => string | undefined) | undefined,
  };
  let releaseTo: (target: string) => void = () => {};
  let arrived = () => {};
  const held = new Promise<void>((resolve) => {
    arrived = resolve;
  });
  let holding = true;
  const holdSealed: Transport = (url, request) => {
    holding = false;
    return new Promise((resolve, reject) => {
      releaseTo = (target) => {
        forward(url.replace(urls.a, target), request).then(resolve, reject);
      };
      arrived();
    });
  };
  const session = await connect({
    url: "http://enclave.test",
    policy: await devPolicy(),
    apiKey: "unused",
    transport: (url, request) => {
      const path = new URL(url).pathname.replace(/^\/v1\//, "/");
      host.paths.push(path);
      const to = `${host.route?.(path) ?? host.target}${path}`;
      return (path === "/sealed" && holding ? holdSealed : forward)(to, request);
    },
  });
  const answer = session.complete("hello");
  await held;
  // The host serves A's document, and refuses the nonce question about its key id.
  host.route = (path) => (path === "/attestation/challenge" ? urls.refuses : undefined);
  const refused = await session.attest().catch((error: unknown) => error);
  expect(refused).toMatchObject({ kind: "transport", code: "WRONG_ENCLAVE_KEY", origin: "host", status: 409 });
  expect(session.attested).toBe(false);
  host.route = undefined;
  const count = (path: string) => host.paths.filter((p) => p === path).length;
  return { session, host, urls, answer, release: (to: string) => releaseTo(to), count };
}

describe("a request in flight while its session forgets its verification (409 at the nonce question)", () => {
  it("answered by the enclave it was sealed to (A): the answer does not restore the forgotten verification", async () => {
    const { session, urls, answer, release, count } = await requestHeldAcrossAForget();
    release(urls.a);
    expect((await answer).text).toBe("ok");
    expect(session.attested).toBe(false);
    expect(() => session.enclave).toThrow(expect.objectContaining({ code: "NOT_ATTESTED" }));
    expect(count("/sealed")).toBe(1);
  });

  it("refused by the host (409): verifies again, finds B, and is resealed to B once", async () => {
    const { session, host, urls, answer, release, count } = await requestHeldAcrossAForget();
    const attestations = count("/attestation");
    host.target = urls.b;
    release(urls.refuses);
    expect((await answer).text).toBe("ok");
    expect(count("/attestation")).toBe(attestations + 1);
    expect(count("/sealed")).toBe(2);
    expect(session.attested).toBe(true);
  });

  it("refused by the host (409) while A is still the enclave found: not resent (WRONG_ENCLAVE_KEY_UNCHANGED)", async () => {
    const { session, urls, answer, release, count } = await requestHeldAcrossAForget();
    release(urls.refuses);
    await expect(answer).rejects.toMatchObject({ kind: "integrity", code: "WRONG_ENCLAVE_KEY_UNCHANGED" });
    expect(count("/sealed")).toBe(1);
    // The verification that found A again stands.
    expect(session.attested).toBe(true);
  });
});
