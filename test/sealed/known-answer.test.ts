/**
 * Known-answer tests of the sealed protocol's bytes, against docs/protocol.md ("Keys", "Request
 * envelope", "Response frames") and nothing of sealed/crypto.ts: every key, nonce and hash here is
 * computed in this file, from the documented formulas, with tweetnacl's public `nacl.box.before`,
 * `nacl.box.open` and `nacl.secretbox.open` and node:crypto's SHA-256 and SHA-512. A change to the
 * protocol's own helpers (a cipher that leaves text in the clear, a response key that is the shared
 * key) cannot pass these, as it can pass a round trip through those same helpers.
 */
import { createHash } from "node:crypto";
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { deriveResponseKey } from "../../sealed/crypto.ts";
import { enclaveSealingKeyFromSecretKey, openRequest, ReplayGuard, sealRequest } from "../../sealed/index.ts";
import { seededRandom, T0 } from "./helpers.ts";

const ENCLAVE_SEED = 3;
const REQUEST_SEED = 5;
// Distinctive text, so that a frame or envelope carrying it in the clear shows it as a byte run.
const SECRET_PROMPT = "the vault combination is quetzalcoatl-4471";
const CHUNKS = ["Zymurgy ", "quixotically ", "xylophones", " ⚗️ ", "juxtaposed."];
const SUMMARY = {
  promptTokens: 9,
  completionTokens: CHUNKS.length,
  ttftMs: 1.5,
  finishReason: "stop",
  receipt: "receipt-line",
  auditOpening: null,
  redacted: null,
} as const;

const utf8 = new TextEncoder();
const sha = (algorithm: "sha256" | "sha512", ...parts: Uint8Array[]): Uint8Array => {
  const hash = createHash(algorithm);
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
};

/** `R = SHA-512("cloister/response/v1" ‖ K ‖ N_req)[0..32]` (docs/protocol.md, "Keys"). */
function documentedResponseKey(sharedKey: Uint8Array, requestNonce: Uint8Array): Uint8Array {
  return sha("sha512", utf8.encode("cloister/response/v1"), sharedKey, requestNonce).subarray(0, 32);
}

/** `N_resp(seq) = 0x01 ‖ 15 zero bytes ‖ seq (u64)`. */
function documentedResponseNonce(seq: number): Uint8Array {
  const nonce = new Uint8Array(24);
  nonce[0] = 0x01;
  new DataView(nonce.buffer).setBigUint64(16, BigInt(seq));
  return nonce;
}

/** A sealed request from seeded randomness, opened by the enclave; the envelope's fields at their documented offsets. */
async function exchange() {
  const enclaveSecret = seededRandom(ENCLAVE_SEED)(32);
  const enclave = nacl.box.keyPair.fromSecretKey(enclaveSecret);
  const enclaveKey = await enclaveSealingKeyFromSecretKey(enclaveSecret.slice());
  const body = { messages: [{ role: "user", content: SECRET_PROMPT }] };
  const { envelope, context } = await sealRequest({
    enclavePublicKey: enclave.publicKey,
    kind: "chat",
    body,
    now: T0,
    randomBytes: seededRandom(REQUEST_SEED),
  });
  const opened = await openRequest(envelope, enclaveKey, new ReplayGuard(), T0);
  const clientPublicKey = envelope.slice(22, 54);
  const requestNonce = envelope.slice(54, 78);
  // K computed on the enclave's side, from the documented offsets (box.before is symmetric).
  const sharedKey = nacl.box.before(clientPublicKey, enclave.secretKey);
  return { enclave, body, envelope, context, opened, clientPublicKey, requestNonce, sharedKey };
}

describe("the request envelope, opened with nacl.box.open as docs/protocol.md specifies", () => {
  it("opens under N_req between C_pub and E_sec, to SHA-256(prefix) ‖ the JSON ‖ spaces, and shows no prompt", async () => {
    const { enclave, body, envelope, context, clientPublicKey, requestNonce } = await exchange();
    expect(envelope[0]).toBe(0x01);
    expect(envelope[1]).toBe(0x01);
    expect(envelope.subarray(2, 18)).toEqual(sha("sha256", enclave.publicKey).subarray(0, 16));
    const ciphertext = envelope.subarray(78);
    expect(new DataView(envelope.buffer, envelope.byteOffset).getUint32(18)).toBe(ciphertext.length);
    // The documented sealing: nacl.box(plaintext, N_req, E_pub, C_sec), here opened from the enclave's side.
    const plaintext = nacl.box.open(ciphertext, requestNonce, clientPublicKey, enclave.secretKey);
    expect(plaintext).not.toBeNull();
    const bytes = plaintext as Uint8Array;
    expect(bytes.subarray(0, 32)).toEqual(sha("sha256", envelope.subarray(0, 78)));
    const json = new TextDecoder().decode(bytes.subarray(32));
    const unpadded = json.trimEnd();
    expect(json.slice(unpadded.length)).toMatch(/^ *$/);
    expect(JSON.parse(unpadded)).toEqual({
      v: 1,
      requestId: context.requestId,
      timestamp: T0,
      kind: "chat",
      body,
    });
    // The receipt's requestHash names exactly this JSON.
    expect(context.requestHash).toBe(Buffer.from(sha("sha256", utf8.encode(unpadded))).toString("hex"));
    // And no 6-byte run of the prompt is on the wire.
    const wire = Buffer.from(envelope);
    for (let i = 0; i + 6 <= SECRET_PROMPT.length; i++) {
      expect(wire.includes(Buffer.from(SECRET_PROMPT.slice(i, i + 6)))).toBe(false);
    }
  });
});

describe("response frames, opened with nacl.secretbox.open as docs/protocol.md specifies", () => {
  it("each data frame opens under R and N_resp(seq) to type 0x01 ‖ text ‖ 0x80 ‖ zeros, and shows none of its text", async () => {
    const { opened, requestNonce, sharedKey } = await exchange();
    const responseKey = documentedResponseKey(sharedKey, requestNonce);
    const frames = CHUNKS.map((text) => opened.sealer.data(text));
    frames.push(opened.sealer.final(SUMMARY));

    frames.forEach((frame, seq) => {
      const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
      expect(view.getUint32(0)).toBe(frame.length - 4);
      expect(view.getBigUint64(4)).toBe(BigInt(seq));
      const plaintext = nacl.secretbox.open(frame.subarray(12), documentedResponseNonce(seq), responseKey);
      expect(plaintext, `frame ${seq} opens`).not.toBeNull();
      const bytes = plaintext as Uint8Array;
      expect(bytes.length).toBe(frame.length - 28);
      const end = bytes.findLastIndex((b) => b !== 0);
      expect(bytes[end]).toBe(0x80);
      const payload = new TextDecoder().decode(bytes.subarray(1, end));
      if (seq < CHUNKS.length) {
        expect(bytes[0]).toBe(0x01);
        expect(payload).toBe(CHUNKS[seq]);
        // The text is not on the wire in the clear: no 4-byte run of it (the chunks' words are
        // distinctive, and the seeds are fixed, so a chance match in the ciphertext cannot come and go).
        const wire = Buffer.from(frame);
        const encoded = Buffer.from(CHUNKS[seq] as string, "utf8");
        for (let i = 0; i + 4 <= encoded.length; i++) {
          expect(wire.includes(encoded.subarray(i, i + 4)), `bytes ${i}..${i + 4} of chunk ${seq}`).toBe(false);
        }
      } else {
        expect(bytes[0]).toBe(0x02);
        expect(bytes.length).toBe(1536);
        expect(JSON.parse(payload)).toMatchObject({ ...SUMMARY, frameCount: CHUNKS.length + 1 });
      }
    });
  });

  it("a frame does not open under the request's shared key K, nor under another request's R", async () => {
    const { opened, requestNonce, sharedKey } = await exchange();
    const frame = opened.sealer.data(CHUNKS[0] as string);
    const box = frame.subarray(12);
    expect(
      nacl.secretbox.open(box, documentedResponseNonce(0), documentedResponseKey(sharedKey, requestNonce)),
    ).not.toBeNull();
    expect(nacl.secretbox.open(box, documentedResponseNonce(0), sharedKey)).toBeNull();
    const otherNonce = requestNonce.slice();
    otherNonce[0] = (otherNonce[0] as number) ^ 1;
    expect(
      nacl.secretbox.open(box, documentedResponseNonce(0), documentedResponseKey(sharedKey, otherNonce)),
    ).toBeNull();
  });
});

describe("deriveResponseKey", () => {
  const sharedKey = seededRandom(11)(32);
  const requestNonce = seededRandom(12)(24);

  it('is SHA-512("cloister/response/v1" ‖ K ‖ N_req)[0..32]', () => {
    // Known answer, computed once with node:crypto from the documented formula.
    const key = deriveResponseKey(sharedKey.slice(), requestNonce.slice());
    expect(key).toEqual(documentedResponseKey(sharedKey, requestNonce));
    expect(key).toHaveLength(32);
  });

  it("differs from the shared key, and changes with the shared key and with the request nonce", () => {
    const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
    const key = hex(deriveResponseKey(sharedKey, requestNonce));
    expect(key).not.toBe(hex(sharedKey));
    const otherNonce = requestNonce.slice();
    otherNonce[23] = (otherNonce[23] as number) ^ 0x80;
    const otherShared = sharedKey.slice();
    otherShared[0] = (otherShared[0] as number) ^ 1;
    const keys = [
      key,
      hex(deriveResponseKey(sharedKey, otherNonce)),
      hex(deriveResponseKey(otherShared, requestNonce)),
    ];
    expect(new Set(keys).size).toBe(3);
    // Same inputs, same key (a pure function: client and enclave derive the same R).
    expect(hex(deriveResponseKey(sharedKey, requestNonce))).toBe(key);
  });
});
