/**
 * The enclave's synchronous X25519 for opening requests, through node:crypto (the peer key
 * imported as a JWK, about 12 µs, then one OpenSSL scalar multiplication, about 40 µs): opening a
 * request then makes no WebCrypto thread-pool round trips, each of which can cost as much again
 * when the pool's threads sleep. The private key object is made once per boot.
 */
import { createPrivateKey, createPublicKey, diffieHellman } from "node:crypto";
import type { SyncPrimitives } from "../sealed/index.ts";

/** RFC 8410 PKCS#8 encoding of an X25519 private key: this prefix, then the 32 secret bytes. */
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

export function nodeSyncPrimitives(secretKey: Uint8Array): SyncPrimitives {
  const der = Buffer.concat([PKCS8_PREFIX, secretKey]);
  const privateKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  der.fill(0);
  return {
    x25519(peerPublicKey) {
      const publicKey = createPublicKey({
        key: { kty: "OKP", crv: "X25519", x: Buffer.from(peerPublicKey).toString("base64url") },
        format: "jwk",
      });
      try {
        return new Uint8Array(diffieHellman({ privateKey, publicKey }));
      } catch {
        // OpenSSL refuses an all-zero output (a low-order peer key); the all-zero result makes the
        // protocol refuse it like the other X25519 paths do (DECRYPTION_FAILED).
        return new Uint8Array(32);
      }
    },
  };
}
