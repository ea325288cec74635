/**
 * connect({signal}): aborting it ends the verification at once, as ABORTED (a transport error): a
 * request under way is cut, nothing is sent after the abort, and no session, document or request
 * key is kept, also when the abort comes while the evidence is verified. A signal already aborted
 * sends nothing. Each abort comes while a stand-in host holds an answer (or the verification reads
 * the clock), so it falls where the test puts it, never by timing.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ClientError } from "../../client/errors.ts";
import { connect } from "../../client/sdk.ts";
import { held } from "../helpers/held.ts";
import { closeServers, connectTo, devPolicy, serveDeployment } from "./helpers.ts";

afterEach(closeServers);

/**
 * connect() to a host that holds its answer to `path` until the test releases it; the test aborts
 * connect's signal once the host holds it, then releases it. Resolves with connect's outcome and
 * every path the host was asked for.
 */
async function abortWhileHeld(path: string) {
  const answer = held();
  const { url, paths } = await serveDeployment({
    hold: (asked) => {
      if (asked !== path) return undefined;
      answer.enter();
      return answer.promise;
    },
  });
  const controller = new AbortController();
  const verified: unknown[] = [];
  const connecting = connect({
    url,
    policy: await devPolicy(),
    apiKey: "key",
    signal: controller.signal,
    onVerified: (enclave) => verified.push(enclave),
  }).catch((error: unknown) => error);
  await answer.entered;
  controller.abort();
  // The host's answer comes after the abort: nothing more may be sent, nothing kept of it.
  answer.settle();
  const outcome = await connecting;
  return { outcome, paths, verified };
}

describe("connect({signal})", () => {
  it("aborted while the host holds the attestation document: ABORTED at once, no challenge sent", async () => {
    const { outcome, paths, verified } = await abortWhileHeld("/v1/attestation");
    expect(outcome).toBeInstanceOf(ClientError);
    expect(outcome).toMatchObject({ kind: "transport", code: "ABORTED" });
    expect({ paths, verified }).toEqual({ paths: ["/v1/attestation"], verified: [] });
  });

  it("aborted while the host holds the nonce answer: ABORTED, the enclave not verified on it", async () => {
    const { outcome, paths, verified } = await abortWhileHeld("/v1/attestation/challenge");
    expect(outcome).toMatchObject({ kind: "transport", code: "ABORTED" });
    expect({ paths, verified }).toEqual({ paths: ["/v1/attestation", "/v1/attestation/challenge"], verified: [] });
  });

  it("aborted while the evidence is verified: ABORTED, and nothing of the verification is kept", async () => {
    const controller = new AbortController();
    const verified: unknown[] = [];
    const paths: string[] = [];
    const outcome = await connectTo({
      paths,
      connect: {
        signal: controller.signal,
        // The verification reads the clock once both answers are in: the abort falls within it.
        now: () => {
          controller.abort();
          return new Date();
        },
        onVerified: (enclave) => verified.push(enclave),
      },
    }).catch((error: unknown) => error);
    expect(outcome).toMatchObject({ kind: "transport", code: "ABORTED" });
    // onVerified is called once a verification is kept (and its request keys made after it): never.
    expect({ paths, verified }).toEqual({ paths: ["/attestation", "/attestation/challenge"], verified: [] });
  });

  it("aborted while evidence that fails is verified: ABORTED still, not the verification's failure", async () => {
    const controller = new AbortController();
    const outcome = await connectTo({
      connect: {
        signal: controller.signal,
        // A clock long past every certificate's end: the verification fails, after the abort.
        now: () => {
          controller.abort();
          return new Date("2200-01-01T00:00:00Z");
        },
      },
    }).catch((error: unknown) => error);
    // It was the attestation error: a caller that gave up was told of an outcome it no longer waited for.
    expect(outcome).toMatchObject({ kind: "transport", code: "ABORTED" });
  });

  it("a signal already aborted: ABORTED, and nothing is sent", async () => {
    const paths: string[] = [];
    const outcome = await connectTo({ paths, connect: { signal: AbortSignal.abort() } }).catch((e: unknown) => e);
    expect(outcome).toMatchObject({ kind: "transport", code: "ABORTED" });
    expect(paths).toEqual([]);
  });

  it("a signal that is not an AbortSignal is BAD_OPTION, naming it", async () => {
    const paths: string[] = [];
    const outcome = await connectTo({ paths, connect: { signal: new AbortController() as never } }).catch(
      (e: unknown) => e,
    );
    expect(outcome).toMatchObject({ kind: "configuration", code: "BAD_OPTION", field: "signal" });
    expect((outcome as Error).message).toBe("signal: expected an AbortSignal, found a value of type object");
    expect(paths).toEqual([]);
  });

  it("a signal not aborted changes nothing: the session is verified and answers", async () => {
    const { session } = await connectTo({ connect: { signal: new AbortController().signal } });
    expect(session.attested).toBe(true);
    await expect(session.complete("hello")).resolves.toMatchObject({ finishReason: "stop" });
  });
});
