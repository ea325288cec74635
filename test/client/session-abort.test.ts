/**
 * AbortSignal: a caller's abort while the session re-attests (stale verification) ends that
 * caller's request at once, as ABORTED (not HOST_TIMEOUT at the attestation's deadline), and the
 * verification goes on for the other requests waiting on it; an abort while the answer streams is
 * ABORTED too, not a broken stream; a request already aborted is sealed and sent to no transport.
 * A caller's AbortSignal.timeout (its reason a TimeoutError) is said to have timed out, same code.
 */
import { afterEach, describe, expect, it } from "vitest";
import { fetchTransport, type Transport } from "../../client/transport.ts";
import { foreignController } from "../helpers/foreign-abort.ts";
import { closeServers, connectTo, OK } from "./helpers.ts";

afterEach(closeServers);

async function staleSessionWithSilentHost() {
  let onHeld = (): void => {};
  const firstHeld = new Promise<void>((resolve) => {
    onHeld = resolve;
  });
  const state = {
    hang: false,
    clock: Date.now(),
    held: [] as (() => void)[],
    heldSignals: [] as AbortSignal[],
    firstHeld,
  };
  const inner = fetchTransport(fetch);
  // After connect, the host holds attestation requests until released (or the SDK's deadline).
  const transport: Transport = (url, request) =>
    state.hang && url.includes("/attestation")
      ? new Promise((resolve, reject) => {
          request.signal?.addEventListener("abort", () => reject(request.signal?.reason));
          if (request.signal !== undefined) state.heldSignals.push(request.signal);
          state.held.push(() => resolve(inner(url, request)));
          onHeld();
        })
      : inner(url, request);
  const { session } = await connectTo({
    transport,
    connect: { now: () => new Date(state.clock), reattestAfterMs: 60_000, attestationTimeoutMs: 3000 } as never,
  });
  state.hang = true;
  state.clock += 61_000;
  return { session, state };
}

it("an abort during a re-attestation ends the request at once, as ABORTED; the others' wait goes on", async () => {
  const { session, state } = await staleSessionWithSilentHost();
  const other = session.complete("hello");
  const controller = new AbortController();
  const pending = session.complete("hello", { signal: controller.signal }).catch((e: unknown) => e);
  // Aborted once the shared verification's request is held by the host.
  await state.firstHeld;
  controller.abort();
  const error = await pending;
  expect(error).toMatchObject({ kind: "transport", code: "ABORTED" });
  // At once: the verification's request is still held, neither answered nor cut by its deadline.
  expect(state.held).toHaveLength(1);
  expect(state.heldSignals.map((s) => s.aborted)).toEqual([false]);
  // The shared verification was not cut: once the host answers, the other request is answered.
  state.hang = false;
  for (const release of state.held.splice(0)) release();
  await expect(other).resolves.toMatchObject({ finishReason: "stop" });
});

it("attest({signal}): an abort ends that caller's wait only", async () => {
  const { session, state } = await staleSessionWithSilentHost();
  const controller = new AbortController();
  const mine = session.attest({ signal: controller.signal }).catch((e: unknown) => e);
  const shared = session.attest();
  controller.abort();
  expect(await mine).toMatchObject({ code: "ABORTED" });
  state.hang = false;
  for (const release of state.held.splice(0)) release();
  const enclave = await shared;
  expect(session.enclave).toBe(enclave);
});

it("a signal already aborted is ABORTED before anything is verified or sent", async () => {
  const { session, state } = await staleSessionWithSilentHost();
  const error = await session.complete("hello", { signal: AbortSignal.abort() }).catch((e: unknown) => e);
  expect(error).toMatchObject({ code: "ABORTED" });
  // Not even the verification was started on its behalf.
  expect(state.held).toHaveLength(0);
});

it.each([
  ["", () => new AbortController()],
  [" (a signal of another realm: foreign-abort.ts)", foreignController],
])("an abort while the answer streams ends it as ABORTED, not as a broken stream (integrity)%s", async (_, make) => {
  const { session } = await connectTo({
    script: [{ type: "text", text: "a" }, { pauseMs: 2000 }, { type: "text", text: "b" }, ...OK],
  });
  const controller = make();
  const seen: string[] = [];
  const error = await (async () => {
    for await (const event of session.chat([{ role: "user", content: "hi" }], { signal: controller.signal })) {
      if (event.type === "text") seen.push(event.text);
      controller.abort();
    }
  })().catch((e: unknown) => e);
  expect(seen).toEqual(["a"]);
  expect(error).toMatchObject({ kind: "transport", code: "ABORTED", message: "request aborted by the caller" });
});

it("a signal already aborted on a verified session is ABORTED before anything is sealed or handed to the transport", async () => {
  const paths: string[] = [];
  const { session } = await connectTo({ paths });
  const sent = paths.length;
  const error = await session.complete("hello", { signal: AbortSignal.abort() }).catch((e: unknown) => e);
  expect(error).toMatchObject({ kind: "transport", code: "ABORTED" });
  expect(paths.slice(sent)).toEqual([]);
});

/** AbortSignal.timeout's own signal, once it has fired (its reason: a DOMException named TimeoutError). */
async function firedTimeoutSignal(): Promise<AbortSignal> {
  const signal = AbortSignal.timeout(1);
  await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
  expect(signal.reason).toMatchObject({ name: "TimeoutError" });
  return signal;
}

describe("a caller's AbortSignal.timeout is said to have timed out, a manual abort to have been aborted (both ABORTED)", () => {
  const TIMED_OUT = "timed out: the caller's signal (AbortSignal.timeout) fired";

  it.each([
    ["aborted by hand", () => Promise.resolve(AbortSignal.abort()), "request aborted by the caller"],
    ["AbortSignal.timeout", firedTimeoutSignal, `request ${TIMED_OUT}`],
  ])("a request whose signal was already %s", async (_, signal, message) => {
    const { session } = await connectTo();
    const error = await session.complete("hello", { signal: await signal() }).catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "transport", code: "ABORTED", message });
  });

  it.each([
    ["aborted by hand", () => Promise.resolve(AbortSignal.abort()), "connect aborted by the caller: nothing was sent"],
    ["AbortSignal.timeout", firedTimeoutSignal, `connect ${TIMED_OUT}: nothing was sent`],
  ])("connect whose signal was already %s", async (_, signal, message) => {
    const error = await connectTo({ connect: { signal: await signal() } }).catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "transport", code: "ABORTED", message });
  });

  it.each([
    ["by hand", undefined, "request aborted by the caller"],
    [
      "with a TimeoutError, as AbortSignal.timeout does",
      new DOMException("signal timed out", "TimeoutError"),
      `request ${TIMED_OUT}`,
    ],
  ])("a stream aborted %s", async (_, reason, message) => {
    const { session } = await connectTo({
      script: [{ type: "text", text: "a" }, { pauseMs: 2000 }, { type: "text", text: "b" }, ...OK],
    });
    const controller = new AbortController();
    const error = await (async () => {
      for await (const _event of session.chat([{ role: "user", content: "hi" }], { signal: controller.signal })) {
        controller.abort(reason);
      }
    })().catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "transport", code: "ABORTED", message });
  });

  it("a re-verification's wait ended by a TimeoutError says so, while the enclave was being verified", async () => {
    const { session, state } = await staleSessionWithSilentHost();
    const controller = new AbortController();
    const pending = session.complete("hello", { signal: controller.signal }).catch((e: unknown) => e);
    await state.firstHeld;
    controller.abort(new DOMException("signal timed out", "TimeoutError"));
    expect(await pending).toMatchObject({
      code: "ABORTED",
      message: `request ${TIMED_OUT} while the enclave was being verified`,
    });
    state.hang = false;
    for (const release of state.held.splice(0)) release();
  });
});
