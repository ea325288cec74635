/**
 * docs/protocol.md's key table says the secrets of one request are wiped once used: the request's shared key and
 * plaintext on both sides, the hash that derives the response key, and the enclave's response key
 * when its stream ends. These tests hold on to the very arrays the sealed module made (through
 * wrappers around its crypto primitives) and check they are all zero afterwards.
 */
import nacl from "tweetnacl";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { deriveResponseKey } from "../../sealed/crypto.ts";
import { MAX_REQUEST_CIPHERTEXT_LENGTH } from "../../sealed/envelope.ts";
import { openRequest, parseEnvelope, prepareRequestKey, ReplayGuard, sealRequest, toHex } from "../../sealed/index.ts";
import { enclaveKeyFromSeed, sealedErrorOf, seededRandom, T0 } from "./helpers.ts";

/** Arrays the sealed module made or was handed, kept by the wrappers below. */
const seen = {
  sharedKeys: [] as Uint8Array[],
  plaintexts: [] as Uint8Array[],
  opened: [] as Uint8Array[],
  random: [] as Uint8Array[],
};

vi.mock("../../sealed/crypto.ts", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../sealed/crypto.ts")>();
  return {
    ...real,
    randomBytes: (length: number) => {
      const bytes = real.randomBytes(length);
      seen.random.push(bytes);
      return bytes;
    },
    boxSharedKeyFast: async (...args: Parameters<typeof real.boxSharedKeyFast>) => {
      const key = await real.boxSharedKeyFast(...args);
      seen.sharedKeys.push(key);
      return key;
    },
    hsalsa20SharedKey: (x25519: Uint8Array) => {
      const key = real.hsalsa20SharedKey(x25519);
      seen.sharedKeys.push(key);
      return key;
    },
    boxSealWithSharedKey: (plaintext: Uint8Array, nonce: Uint8Array, sharedKey: Uint8Array) => {
      seen.plaintexts.push(plaintext);
      seen.sharedKeys.push(sharedKey);
      return real.boxSealWithSharedKey(plaintext, nonce, sharedKey);
    },
    boxOpenWithSharedKey: (ciphertext: Uint8Array, nonce: Uint8Array, sharedKey: Uint8Array) => {
      const opened = real.boxOpenWithSharedKey(ciphertext, nonce, sharedKey);
      if (opened !== null) seen.opened.push(opened);
      return opened;
    },
  };
});

const allZero = (bytes: Uint8Array) => bytes.every((byte) => byte === 0);
const body = { messages: [{ role: "user", content: "a prompt that must not outlive its request" }] };

async function sealOne(seed: number) {
  const key = await enclaveKeyFromSeed(1);
  const sealed = await sealRequest({
    enclavePublicKey: key.publicKey,
    kind: "chat",
    body,
    now: T0,
    randomBytes: seededRandom(seed),
  });
  return { key, ...sealed };
}

/** The enclave's sealer of one request after its first data frame, and the response key it sealed under. */
async function sealerAfterOneFrame(seed: number) {
  const { key, envelope } = await sealOne(seed);
  const { sealer } = await openRequest(envelope, key, new ReplayGuard(), T0 + 500);
  const lowlevel = (nacl as unknown as { lowlevel: { crypto_secretbox: (...args: unknown[]) => number } }).lowlevel;
  const secretbox = vi.spyOn(lowlevel, "crypto_secretbox");
  sealer.data("first chunk");
  const responseKey = secretbox.mock.calls[0]![4] as unknown as Uint8Array;
  expect(allZero(responseKey)).toBe(false);
  return { sealer, responseKey };
}

beforeEach(() => {
  seen.sharedKeys.length = 0;
  seen.plaintexts.length = 0;
  seen.opened.length = 0;
  seen.random.length = 0;
});
afterEach(() => vi.restoreAllMocks());

describe("wiping a request's secrets", () => {
  it("the client wipes its shared key and the plaintext it sealed", async () => {
    await sealOne(7);
    expect(seen.plaintexts).toHaveLength(1);
    expect(seen.sharedKeys.length).toBeGreaterThan(0);
    // The plaintext did hold the prompt's bytes (the check below is not vacuous).
    expect(seen.plaintexts[0]!.length).toBeGreaterThan(100);
    expect(seen.plaintexts.every(allZero)).toBe(true);
    expect(seen.sharedKeys.every(allZero)).toBe(true);
  });

  it("the enclave wipes the shared key and the opened plaintext of a request it accepts", async () => {
    const { key, envelope } = await sealOne(8);
    seen.sharedKeys.length = 0;
    const opened = await openRequest(envelope, key, new ReplayGuard(), T0 + 500);
    expect(opened.request.body).toEqual(body);
    expect(seen.opened).toHaveLength(1);
    expect(seen.sharedKeys).toHaveLength(1);
    expect(allZero(seen.opened[0]!)).toBe(true);
    expect(allZero(seen.sharedKeys[0]!)).toBe(true);
  });

  it("the enclave wipes them when it refuses an opened request (a replay)", async () => {
    const { key, envelope } = await sealOne(9);
    const guard = new ReplayGuard();
    await openRequest(envelope, key, guard, T0 + 500);
    seen.sharedKeys.length = 0;
    seen.opened.length = 0;
    const error = await sealedErrorOf(() => openRequest(envelope, key, guard, T0 + 600));
    expect(error.code).toBe("REQUEST_REPLAYED");
    expect(seen.opened).toHaveLength(1);
    expect(allZero(seen.opened[0]!)).toBe(true);
    expect(seen.sharedKeys.every(allZero)).toBe(true);
  });

  it("the client wipes the request's JSON when it is too large to seal (REQUEST_TOO_LARGE)", async () => {
    const key = await enclaveKeyFromSeed(1);
    const encode = vi.spyOn(TextEncoder.prototype, "encode");
    const tooLarge = { messages: [{ role: "user", content: "z".repeat(MAX_REQUEST_CIPHERTEXT_LENGTH) }] };
    const error = await sealedErrorOf(() =>
      sealRequest({
        enclavePublicKey: key.publicKey,
        kind: "chat",
        body: tooLarge,
        now: T0,
        randomBytes: seededRandom(3),
      }),
    );
    expect(error.code).toBe("REQUEST_TOO_LARGE");
    const encoded = encode.mock.results.map((result) => result.value as Uint8Array);
    // It did hold the prompt (the check below is not vacuous).
    expect(encoded.some((bytes) => bytes.length > MAX_REQUEST_CIPHERTEXT_LENGTH)).toBe(true);
    expect(encoded.every(allZero)).toBe(true);
  });

  it("the client wipes the padded JSON it was to seal when the enclave key is a low-order point", async () => {
    // The arrays the prompt's JSON is copied into (the padded JSON among them), seen as it is copied.
    const prompt = toHex(new TextEncoder().encode(body.messages[0]!.content));
    const holders: Uint8Array[] = [];
    const set = Uint8Array.prototype.set;
    vi.spyOn(Uint8Array.prototype, "set").mockImplementation(function (this: Uint8Array, source, offset) {
      if (source instanceof Uint8Array && toHex(source).includes(prompt)) holders.push(this);
      set.call(this, source, offset);
    });
    const error = await sealedErrorOf(() =>
      sealRequest({ enclavePublicKey: new Uint8Array(32), kind: "chat", body, now: T0, randomBytes: seededRandom(4) }),
    );
    expect(error.message).toMatch(/low-order point/);
    expect(holders.length).toBeGreaterThan(0);
    expect(holders.every(allZero)).toBe(true);
  });

  it("a prepared request key brings the request's nonce and id, and wipes them with it when discarded unused", async () => {
    const key = await enclaveKeyFromSeed(1);
    const prepared = await prepareRequestKey(key.publicKey);
    // Drawn with the key, in one call: the nonce (24 bytes), then the request id (16).
    expect(seen.random.map((bytes) => bytes.length)).toEqual([40]);
    const drawn = seen.random[0]!.slice();
    const { envelope, context } = await sealRequest({ enclavePublicKey: key.publicKey, kind: "chat", body, prepared });
    expect(seen.random).toHaveLength(1);
    expect(toHex(parseEnvelope(envelope).nonce)).toBe(toHex(drawn.subarray(0, 24)));
    expect(context.requestId).toBe(toHex(drawn.subarray(24)));

    const unused = await prepareRequestKey(key.publicKey);
    const unusedRandom = seen.random[1]!;
    expect(allZero(unusedRandom)).toBe(false);
    unused.discard();
    expect(allZero(unusedRandom)).toBe(true);
  });

  it("deriving the response key leaves no copy of it in the hash output", () => {
    const hash = vi.spyOn(nacl, "hash");
    const responseKey = deriveResponseKey(new Uint8Array(32).fill(5), new Uint8Array(24).fill(6));
    expect(hash).toHaveBeenCalledTimes(1);
    const digest = hash.mock.results[0]!.value as Uint8Array;
    expect(allZero(responseKey)).toBe(false);
    expect(allZero(digest)).toBe(true);
  });

  it("the enclave's response key is wiped when its stream ends, not before", async () => {
    const { sealer, responseKey } = await sealerAfterOneFrame(10);
    sealer.final({
      promptTokens: 1,
      completionTokens: 1,
      ttftMs: 1,
      finishReason: "stop",
      receipt: "",
      auditOpening: null,
      redacted: null,
    });
    expect(allZero(responseKey)).toBe(true);
  });

  it("the enclave's response key is wiped when its stream ends without a terminal frame (dispose)", async () => {
    // A client that went away mid-answer, or an answer abandoned or cut at shutdown.
    const { sealer, responseKey } = await sealerAfterOneFrame(11);
    sealer.dispose();
    expect(allZero(responseKey)).toBe(true);
    expect((await sealedErrorOf(() => sealer.data("after"))).code).toBe("SEALER_CLOSED");
  });
});
