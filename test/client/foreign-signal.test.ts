/**
 * An AbortSignal of another realm (a jsdom window, an iframe, a vm context) is no instance of this
 * realm's AbortSignal: connect's and a request's `signal` take one by its shape, and its abort
 * still ends them (ABORTED; a request's while its answer streams: session-abort.test.ts); what is
 * no signal at all is still BAD_OPTION. The signal is made in a vm context (foreign-abort.ts).
 */
import { afterEach, describe, expect, it } from "vitest";
import { connect } from "../../client/sdk.ts";
import { foreignController } from "../helpers/foreign-abort.ts";
import { held } from "../helpers/held.ts";
import { closeServers, connectTo, devPolicy, serveDeployment } from "./helpers.ts";

afterEach(closeServers);

describe("an AbortSignal of another realm", () => {
  it("is one: its realm's AbortSignal, not this one's", () => {
    expect(foreignController().signal instanceof AbortSignal).toBe(false);
  });

  it("connect takes one not aborted: the session is verified and answers, also with one on its request", async () => {
    const signal = foreignController().signal;
    const { session } = await connectTo({ connect: { signal } });
    expect(session.attested).toBe(true);
    // connect follows its abort while it runs only: no listener is left on it.
    expect((signal as unknown as { _listeners: unknown[] })._listeners).toEqual([]);
    await expect(session.complete("hello", { signal: foreignController().signal })).resolves.toMatchObject({
      finishReason: "stop",
    });
  });

  it("connect's, aborted while the host holds the attestation document: ABORTED at once, no challenge sent", async () => {
    const answer = held();
    const { url, paths } = await serveDeployment({
      hold: (asked) => {
        if (asked !== "/v1/attestation") return undefined;
        answer.enter();
        return answer.promise;
      },
    });
    const controller = foreignController();
    // The attestation's own deadline (HOST_TIMEOUT) ends it if the abort is not followed.
    const connecting = connect({
      url,
      policy: await devPolicy(),
      apiKey: "key",
      signal: controller.signal,
      attestationTimeoutMs: 5000,
    }).catch((error: unknown) => error);
    // (connect's refusal, if it refuses the signal, ends the wait too.)
    await Promise.race([answer.entered, connecting]);
    controller.abort();
    // The host still holds the document: only the abort can end connect.
    const outcome = await connecting;
    answer.settle();
    expect(outcome).toMatchObject({ kind: "transport", code: "ABORTED" });
    expect(paths).toEqual(["/v1/attestation"]);
  });

  it("connect's, already aborted: ABORTED, and nothing is sent", async () => {
    const controller = foreignController();
    controller.abort();
    const paths: string[] = [];
    const outcome = await connectTo({ paths, connect: { signal: controller.signal } }).catch((e: unknown) => e);
    expect(outcome).toMatchObject({ kind: "transport", code: "ABORTED" });
    expect(paths).toEqual([]);
  });

  it("what only looks like part of one is still BAD_OPTION, naming it", async () => {
    for (const signal of [
      { aborted: false },
      { aborted: "no", addEventListener() {}, removeEventListener() {} },
      { aborted: false, addEventListener() {} },
    ]) {
      const outcome = await connectTo({ connect: { signal: signal as never } }).catch((e: unknown) => e);
      expect(outcome).toMatchObject({ kind: "configuration", code: "BAD_OPTION", field: "signal" });
    }
  });

  it("attest's: a foreign one is taken (its abort ends the wait), what is no signal is BAD_OPTION, nothing asked", async () => {
    const paths: string[] = [];
    const { session } = await connectTo({ paths });
    const asked = paths.length;
    const aborted = foreignController();
    aborted.abort();
    expect(await session.attest({ signal: aborted.signal }).catch((e: unknown) => e)).toMatchObject({
      kind: "transport",
      code: "ABORTED",
    });
    const outcome = await session.attest({ signal: { aborted: false } as never }).catch((e: unknown) => e);
    expect(outcome).toMatchObject({ kind: "configuration", code: "BAD_OPTION", field: "signal" });
    expect(paths.slice(asked)).toEqual([]);
    const again = await session.attest({ signal: foreignController().signal });
    expect(session.enclave).toBe(again);
  });
});
