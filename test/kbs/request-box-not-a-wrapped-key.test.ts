/**
 * docs/protocol.md, "Key broker": the enclave's X25519 key opens both sealed requests (under
 * K = nacl.box.before) and wrapped model keys (under a labelled hash of it), so "a wrapped key
 * relayed to the enclave as a request envelope does not decrypt, and no request opens as a wrapped
 * key". The first half is test/attestation/kbs.test.ts's; this is the second. Anyone can seal to the
 * enclave's public key, so the host could otherwise answer the enclave's key request with a box of
 * its own making, holding every field the enclave checks and a model key of its choosing.
 */

import { base64url } from "jose";
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { unwrapModelKey } from "../../attestation/kbs/protocol.ts";
import { sealRequest } from "../../sealed/index.ts";

const KEY_ID = "model-key-1";
const enclave = nacl.box.keyPair();
const expected = { keyId: KEY_ID, challenge: nacl.randomBytes(32), documentDigest: "ab".repeat(32) };

/** The request layout's offsets (sealed/envelope.ts): client key 22..54, nonce 54..78, box from 78. */
function asWrapped(epk: Uint8Array, nonce: Uint8Array, box: Uint8Array) {
  return {
    v: 2,
    keyId: KEY_ID,
    epk: base64url.encode(epk),
    nonce: base64url.encode(nonce),
    box: base64url.encode(box),
  };
}

describe("key broker: no sealed request opens as a wrapped model key", () => {
  it("a client's sealed request relayed as the broker's answer → KBS_UNWRAP_FAILED", async () => {
    const { envelope } = await sealRequest({
      enclavePublicKey: enclave.publicKey,
      kind: "complete",
      body: { prompt: "hi" },
    });
    const wrapped = asWrapped(envelope.subarray(22, 54), envelope.subarray(54, 78), envelope.subarray(78));
    expect(() => unwrapModelKey(wrapped, enclave.secretKey, expected)).toThrow(
      expect.objectContaining({ code: "KBS_UNWRAP_FAILED" }),
    );
  });

  it("a box the host seals to the enclave as a request would be, holding a valid v2 plaintext and its own key → KBS_UNWRAP_FAILED", () => {
    const hostKey = new Uint8Array(32).fill(0x66);
    const id = new TextEncoder().encode(KEY_ID);
    const plaintext = Uint8Array.from([
      ...new TextEncoder().encode("cloister/kbs/model-key/v2\u0000"),
      ...expected.challenge,
      ...Buffer.from(expected.documentDigest, "hex"),
      id.length,
      ...id,
      ...hostKey,
    ]);
    const host = nacl.box.keyPair();
    const nonce = nacl.randomBytes(24);
    const box = nacl.box(plaintext, nonce, enclave.publicKey, host.secretKey);
    // The same box opens as a request does (under K): only the wrapping key's label keeps it out.
    expect(nacl.box.open(box, nonce, host.publicKey, enclave.secretKey)).toEqual(plaintext);
    expect(() => unwrapModelKey(asWrapped(host.publicKey, nonce, box), enclave.secretKey, expected)).toThrow(
      expect.objectContaining({ code: "KBS_UNWRAP_FAILED" }),
    );
  });
});
