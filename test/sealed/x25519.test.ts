/**
 * The request's shared key through WebCrypto's X25519 plus tweetnacl's HSalsa20 must be exactly
 * `nacl.box.before` (the wire format depends on it), on the WebCrypto path and on the tweetnacl
 * fallback alike; both refuse a low-order peer key the same way.
 */
import nacl from "tweetnacl";
import { describe, expect, it, vi } from "vitest";
import {
  boxSharedKeyFast,
  boxSharedKeyTweetnacl,
  ephemeralFromSecretKey,
  generateEphemeralX25519Key,
  LowOrderKeyError,
  webCryptoHasX25519,
} from "../../sealed/crypto.ts";
import { openRequest, parseEnvelope, ReplayGuard, sealRequest, toHex } from "../../sealed/index.ts";
import { enclaveKeyFromSeed, sealedErrorOf, seededRandom, T0 } from "./helpers.ts";

/** Low-order points of Curve25519 (u = 0 and u = 1): X25519 with any scalar gives all zeros. */
const LOW_ORDER_POINTS = [new Uint8Array(32), Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 1 : 0))];

describe("X25519 shared key (sealed/crypto.ts)", () => {
  it("uses WebCrypto's X25519 on this runtime (so the fast path is the one tested here)", async () => {
    expect(await webCryptoHasX25519()).toBe(true);
  });

  it("equals nacl.box.before for 64 random key pairs, on the WebCrypto path and the tweetnacl fallback", async () => {
    const random = seededRandom(2026);
    for (let i = 0; i < 64; i++) {
      const own = random(32);
      const peer = nacl.box.keyPair.fromSecretKey(random(32)).publicKey;
      const expected = toHex(nacl.box.before(peer, own));
      expect(toHex(await boxSharedKeyFast(peer, own, { cacheSecretKey: false }))).toBe(expected);
      expect(toHex(await boxSharedKeyFast(peer, own, { cacheSecretKey: true }))).toBe(expected);
      expect(toHex(boxSharedKeyTweetnacl(peer, own))).toBe(expected);
    }
  });

  it("matches nacl.box.before for peer keys with the top bit set and non-canonical u (masked/reduced alike)", async () => {
    const random = seededRandom(99);
    const own = random(32);
    const topBit = nacl.box.keyPair.fromSecretKey(random(32)).publicKey.slice();
    topBit[31] = topBit[31]! | 0x80;
    const nonCanonical = new Uint8Array(32).fill(0xff); // 2^255 - 1 after masking: ≥ p
    nonCanonical[0] = 0xf0;
    nonCanonical[31] = 0x7f;
    for (const peer of [topBit, nonCanonical]) {
      const expected = toHex(nacl.box.before(peer, own));
      expect(toHex(await boxSharedKeyFast(peer, own, { cacheSecretKey: false }))).toBe(expected);
      expect(toHex(boxSharedKeyTweetnacl(peer, own))).toBe(expected);
    }
  });

  it("a fresh WebCrypto ephemeral key agrees with the peer's nacl.box.before", async () => {
    for (let i = 0; i < 16; i++) {
      const enclave = nacl.box.keyPair();
      const ephemeral = await generateEphemeralX25519Key();
      expect(ephemeral.publicKey).toHaveLength(32);
      const clientSide = await ephemeral.sharedKey(enclave.publicKey);
      expect(toHex(clientSide)).toBe(toHex(nacl.box.before(ephemeral.publicKey, enclave.secretKey)));
    }
  });

  it("an ephemeral key derives once only, and a seeded one is wiped after use", async () => {
    const enclave = nacl.box.keyPair();
    const ephemeral = await generateEphemeralX25519Key();
    await ephemeral.sharedKey(enclave.publicKey);
    await expect(ephemeral.sharedKey(enclave.publicKey)).rejects.toThrow("already used");
    const secret = seededRandom(5)(32);
    const seeded = ephemeralFromSecretKey(secret);
    expect(toHex(seeded.publicKey)).toBe(toHex(nacl.box.keyPair.fromSecretKey(seededRandom(5)(32)).publicKey));
    await seeded.sharedKey(enclave.publicKey);
    expect(secret.every((b) => b === 0)).toBe(true);
    await expect(seeded.sharedKey(enclave.publicKey)).rejects.toThrow("already used");
  });

  it("the cached imported secret key follows changes to the array", async () => {
    const random = seededRandom(11);
    const own = random(32);
    const peer = nacl.box.keyPair().publicKey;
    await boxSharedKeyFast(peer, own, { cacheSecretKey: true });
    own.set(random(32));
    expect(toHex(await boxSharedKeyFast(peer, own, { cacheSecretKey: true }))).toBe(toHex(nacl.box.before(peer, own)));
  });

  it("falls back to tweetnacl when WebCrypto has no X25519, with the same keys", async () => {
    const generateKey = vi
      .spyOn(globalThis.crypto.subtle, "generateKey")
      .mockRejectedValue(new DOMException("Unrecognized algorithm name", "NotSupportedError"));
    const importKey = vi.spyOn(globalThis.crypto.subtle, "importKey");
    try {
      vi.resetModules();
      const fresh = await import("../../sealed/crypto.ts");
      expect(await fresh.webCryptoHasX25519()).toBe(false);
      const enclave = nacl.box.keyPair();
      const ephemeral = await fresh.generateEphemeralX25519Key();
      const shared = await ephemeral.sharedKey(enclave.publicKey);
      expect(toHex(shared)).toBe(toHex(nacl.box.before(ephemeral.publicKey, enclave.secretKey)));
      const own = seededRandom(4)(32);
      const expected = toHex(nacl.box.before(enclave.publicKey, own));
      expect(toHex(await fresh.boxSharedKeyFast(enclave.publicKey, own, { cacheSecretKey: true }))).toBe(expected);
      await expect(fresh.boxSharedKeyFast(LOW_ORDER_POINTS[0]!, own, { cacheSecretKey: true })).rejects.toBeInstanceOf(
        fresh.LowOrderKeyError,
      );
      expect(importKey).not.toHaveBeenCalled();
    } finally {
      generateKey.mockRestore();
      importKey.mockRestore();
      vi.resetModules();
    }
  });

  it("refuses low-order peer keys on both paths", async () => {
    const own = seededRandom(3)(32);
    for (const point of LOW_ORDER_POINTS) {
      await expect(boxSharedKeyFast(point, own, { cacheSecretKey: true })).rejects.toBeInstanceOf(LowOrderKeyError);
      expect(() => boxSharedKeyTweetnacl(point, own)).toThrow(LowOrderKeyError);
    }
  });
});

describe("sealed requests over the WebCrypto path", () => {
  it("an envelope sealed with a WebCrypto ephemeral key opens with plain tweetnacl (wire format unchanged)", async () => {
    const key = await enclaveKeyFromSeed(1);
    const { envelope } = await sealRequest({
      enclavePublicKey: key.publicKey,
      kind: "complete",
      body: { prompt: "x" },
    });
    const parsed = parseEnvelope(envelope);
    const opened = nacl.box.open(parsed.ciphertext, parsed.nonce, parsed.ephemeralPublicKey, key.secretKey);
    expect(opened).not.toBeNull();
    const json = JSON.parse(new TextDecoder().decode(opened!.subarray(32))) as { body: unknown };
    expect(json.body).toEqual({ prompt: "x" });
    const { request } = await openRequest(envelope, key, new ReplayGuard(), Date.now());
    expect(request.body).toEqual({ prompt: "x" });
  });

  it("the enclave refuses an envelope whose ephemeral key is a low-order point (DECRYPTION_FAILED)", async () => {
    const key = await enclaveKeyFromSeed(1);
    const { envelope } = await sealRequest({
      enclavePublicKey: key.publicKey,
      kind: "chat",
      body: { messages: [] },
      now: T0,
      randomBytes: seededRandom(8),
    });
    for (const point of LOW_ORDER_POINTS) {
      const forged = envelope.slice();
      forged.set(point, 22); // C_pub
      const error = await sealedErrorOf(() => openRequest(forged, key, new ReplayGuard(), T0));
      expect(error.code).toBe("DECRYPTION_FAILED");
    }
  });

  it("the client refuses to seal to a low-order enclave key (INVALID_ARGUMENT)", async () => {
    for (const point of LOW_ORDER_POINTS) {
      const error = await sealedErrorOf(() => sealRequest({ enclavePublicKey: point, kind: "chat", body: {} }));
      expect(error.code).toBe("INVALID_ARGUMENT");
    }
  });
});
