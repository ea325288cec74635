/**
 * The enclave's synchronous X25519 (node:crypto) must give exactly `nacl.box.before` once the
 * protocol's HSalsa20 step is applied, including peer keys with the top bit set or a
 * non-canonical u, and a request with a low-order ephemeral key must be refused as
 * DECRYPTION_FAILED like on the other paths.
 */
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { nodeSyncPrimitives } from "../../enclave/x25519.ts";
import { hsalsa20SharedKey } from "../../sealed/crypto.ts";
import { ENVELOPE_PREFIX_LENGTH, encodeEnvelopePrefix } from "../../sealed/envelope.ts";
import { enclaveSealingKeyFromSecretKey, openRequest, ReplayGuard, sealRequest, toHex } from "../../sealed/index.ts";
import { sealedErrorOf, seededRandom, T0 } from "../sealed/helpers.ts";

describe("enclave sync primitives (node:crypto)", () => {
  it("equals nacl.box.before for random, top-bit and non-canonical peer keys", () => {
    const random = seededRandom(7);
    for (let i = 0; i < 48; i++) {
      const own = random(32);
      const { x25519 } = nodeSyncPrimitives(own);
      const peer = nacl.box.keyPair.fromSecretKey(random(32)).publicKey.slice();
      if (i % 3 === 1) peer[31] = peer[31]! | 0x80;
      if (i % 3 === 2) {
        peer.fill(0xff);
        peer[0] = 0xf0 + (i % 16); // u = p + 3 + i % 16 before reduction (non-canonical, not low-order)
        peer[31] = 0x7f;
      }
      expect(toHex(hsalsa20SharedKey(x25519(peer)))).toBe(toHex(nacl.box.before(peer, own)));
    }
  });

  it("opens requests sealed by the client, and refuses a low-order ephemeral key as DECRYPTION_FAILED", async () => {
    const secret = seededRandom(3)(32);
    const key = await enclaveSealingKeyFromSecretKey(secret, nodeSyncPrimitives(secret));
    const { envelope } = await sealRequest({ enclavePublicKey: key.publicKey, kind: "chat", body: { a: 1 }, now: T0 });
    const { request } = await openRequest(envelope, key, new ReplayGuard(), T0);
    expect(request.body).toEqual({ a: 1 });

    const lowOrder = envelope.slice();
    const prefix = encodeEnvelopePrefix(
      "chat",
      key.keyId,
      envelope.length - ENVELOPE_PREFIX_LENGTH,
      new Uint8Array(32), // u = 0
      envelope.subarray(ENVELOPE_PREFIX_LENGTH - 24, ENVELOPE_PREFIX_LENGTH),
    );
    lowOrder.set(prefix, 0);
    const error = await sealedErrorOf(() => openRequest(lowOrder, key, new ReplayGuard(), T0));
    expect(error.code).toBe("DECRYPTION_FAILED");
  });
});
