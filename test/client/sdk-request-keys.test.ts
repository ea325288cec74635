/**
 * The SDK's request keys made ahead of time (client/sdk.ts, Session's #replenish): a request that
 * finds none ready waits for the one being made rather than making another beside it (the first
 * request after connect did, and paid for both: about 0.2 ms more before it was sent), and still
 * seals with a key of its own when that making fails. X25519 keys are counted by WebCrypto's
 * generateKey calls, in this process (the enclave's side makes none).
 */
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { fetchTransport, type Transport } from "../../client/transport.ts";
import { webCryptoHasX25519 } from "../../sealed/crypto.ts";
import { closeServers, connectTo } from "./helpers.ts";

afterEach(async () => {
  vi.restoreAllMocks();
  await closeServers();
});

beforeAll(async () => {
  // Probed once per process with a generateKey of its own: not to be counted below.
  expect(await webCryptoHasX25519()).toBe(true);
});

/**
 * Counts X25519 generateKey calls (`fail`: those to reject; `held`: the first waits for it), and notes the count when the session
 * asks for its challenge and when it sends its first sealed request.
 */
function countKeys(fail: (n: number) => boolean = () => false, held?: Promise<void>) {
  const subtle = globalThis.crypto.subtle;
  const generateKey = subtle.generateKey.bind(subtle);
  const counts = { made: 0, atChallenge: -1, atSealed: -1 };
  vi.spyOn(subtle, "generateKey").mockImplementation(((...args: Parameters<typeof generateKey>) => {
    const algorithm = args[0];
    if (typeof algorithm === "object" && algorithm.name === "X25519") {
      counts.made++;
      if (fail(counts.made)) return Promise.reject(new Error("generateKey refused by the test"));
      if (held !== undefined && counts.made === 1) return held.then(() => generateKey(...args));
    }
    return generateKey(...args);
  }) as typeof subtle.generateKey);
  const inner = fetchTransport(fetch);
  const transport: Transport = (url, request) => {
    const path = new URL(url).pathname;
    if (path.endsWith("/attestation/challenge")) counts.atChallenge = counts.made;
    if (path.endsWith("/sealed") && counts.atSealed === -1) counts.atSealed = counts.made;
    return inner(url, request);
  };
  return { counts, transport };
}

/** countKeys with the first key's making held until `release` is called. */
function countKeysFirstHeld() {
  let release = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  return { release, ...countKeys(() => false, held) };
}

describe("Session: request keys made ahead", () => {
  it("the first request after connect seals with the key being made, not one more beside it", async () => {
    const { counts, transport } = countKeys();
    const { session } = await connectTo({ transport });
    expect((await session.complete("hello")).text).toBe("ok");
    // One key made between verification and the request's send: the one connect started.
    expect(counts.atSealed - counts.atChallenge).toBe(1);
  });

  it("a request whose awaited key failed to be made seals with a key of its own", async () => {
    // The key connect starts is refused; the request's own is made.
    const { counts, transport } = countKeys((n) => n === 1);
    const { session } = await connectTo({ transport });
    expect((await session.complete("hello")).text).toBe("ok");
    expect(counts.atSealed - counts.atChallenge).toBe(2);
  });

  it("a key still being made when a re-verification finds the same enclave key is kept, and seals the next request", async () => {
    const { release, counts, transport } = countKeysFirstHeld();
    const { session } = await connectTo({ transport });
    // Verified again (the same enclave, its key unchanged) while connect's key is being made.
    const again = await session.attest();
    expect(again.sealingPublicKey).toEqual(session.enclave.sealingPublicKey);
    expect(counts.made).toBe(1);
    release();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await session.complete("hello")).text).toBe("ok");
    // Only connect's key was made before the request was sent: none of the request's own.
    expect(counts.atSealed).toBe(1);
  });

  it("a key a request waits for is not counted as one made ahead: a re-verification meanwhile starts another", async () => {
    const { release, counts, transport } = countKeysFirstHeld();
    const { session } = await connectTo({ transport });
    // The request waits for connect's key, still being made: it is that request's.
    const answer = session.complete("hello");
    await new Promise((resolve) => setTimeout(resolve, 20));
    await session.attest();
    // One made ahead for the next request, beside the one the waiting request took.
    expect(counts.made).toBe(2);
    release();
    expect((await answer).text).toBe("ok");
  });

  it("a request already aborted leaves the key made ahead for the next request", async () => {
    const { counts, transport } = countKeys();
    const { session } = await connectTo({ transport });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const error = await session.complete("hello", { signal: AbortSignal.abort() }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ABORTED" });
    expect((await session.complete("hello")).text).toBe("ok");
    // Sealed with connect's key: none made on its way.
    expect(counts.atSealed).toBe(1);
  });

  it("a key ready when a re-verification finds the same enclave key is kept, not wiped and made again", async () => {
    const { counts, transport } = countKeys();
    const { session } = await connectTo({ transport });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(counts.made).toBe(1);
    await session.attest();
    expect((await session.complete("hello")).text).toBe("ok");
    expect(counts.atSealed).toBe(1);
  });
});
