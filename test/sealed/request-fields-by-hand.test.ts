/**
 * Refusals of docs/protocol.md's "Order of checks in the enclave" that only a hand-made envelope
 * reaches: sealRequest never writes a plaintext shorter than the header digest, a timestamp that is
 * not a non-negative integer, a request without `body`, or an envelope under 94 bytes that still adds
 * up (78 + N). Each is sealed here with tweetnacl's box to a real enclave key and opened by the real
 * `openRequest`; each must be refused with the page's code, and none recorded by the replay guard.
 */
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { sha256 } from "../../sealed/crypto.ts";
import { ENVELOPE_PREFIX_LENGTH, encodeEnvelopePrefix } from "../../sealed/envelope.ts";
import { openRequest, ReplayGuard } from "../../sealed/index.ts";
import { enclaveKeyFromSeed, sealedErrorOf, seededRandom, T0 } from "./helpers.ts";

const utf8 = new TextEncoder();
const REQUEST_ID = "0123456789abcdef0123456789abcdef";
const BODY = { prompt: "hello" };

/**
 * An envelope whose box opens to `SHA-256(prefix) ‖ json` (or to `raw` in place of the whole
 * plaintext), sealed as the page says: `nacl.box` with a fresh client key under a random nonce.
 */
async function handSealed(json: string | null, raw?: Uint8Array) {
  const key = await enclaveKeyFromSeed(11);
  const client = nacl.box.keyPair.fromSecretKey(seededRandom(12)(32));
  const nonce = seededRandom(13)(24);
  const jsonBytes = json === null ? new Uint8Array() : utf8.encode(json);
  const plaintextLength = raw === undefined ? 32 + jsonBytes.length : raw.length;
  const prefix = encodeEnvelopePrefix("complete", key.keyId, plaintextLength + 16, client.publicKey, nonce);
  const plaintext = raw ?? Uint8Array.from([...sha256(prefix), ...jsonBytes]);
  const box = nacl.box(plaintext, nonce, key.publicKey, client.secretKey);
  const envelope = Uint8Array.from([...prefix, ...box]);
  return { key, envelope };
}

function requestJson(fields: Record<string, unknown>): string {
  return JSON.stringify({ v: 1, requestId: REQUEST_ID, timestamp: T0, kind: "complete", body: BODY, ...fields });
}

async function refusal(envelope: Uint8Array, key: Awaited<ReturnType<typeof enclaveKeyFromSeed>>) {
  const guard = new ReplayGuard();
  const error = await sealedErrorOf(() => openRequest(envelope, key, guard, T0));
  return { code: error.code, message: error.message, recorded: guard.size };
}

describe("openRequest refuses what only a hand-made envelope holds", () => {
  it("opens the hand-made well-formed request (so each refusal below is the field's alone)", async () => {
    const { key, envelope } = await handSealed(requestJson({}));
    const opened = await openRequest(envelope, key, new ReplayGuard(), T0);
    expect(opened.request).toEqual({ v: 1, requestId: REQUEST_ID, timestamp: T0, kind: "complete", body: BODY });
  });

  it("a plaintext shorter than the 32-byte header digest is REQUEST_MALFORMED, not HEADER_MISMATCH", async () => {
    for (const length of [0, 1, 31]) {
      const { key, envelope } = await handSealed(null, new Uint8Array(length).fill(0x20));
      expect(await refusal(envelope, key)).toEqual({
        code: "REQUEST_MALFORMED",
        message: "request plaintext: expected at least 32 bytes",
        recorded: 0,
      });
    }
  });

  it("a timestamp that is not a non-negative safe integer of milliseconds is REQUEST_MALFORMED", async () => {
    // T0 + 0.5 and T0 as a string are inside the window: only the type rule refuses them.
    for (const timestamp of [T0 + 0.5, -1, `${T0}`, null, 2 ** 53]) {
      const { key, envelope } = await handSealed(requestJson({ timestamp }));
      expect({ timestamp, ...(await refusal(envelope, key)) }).toEqual({
        timestamp,
        code: "REQUEST_MALFORMED",
        message: "request timestamp: expected a non-negative integer of milliseconds",
        recorded: 0,
      });
    }
  });

  it("a request without body is REQUEST_MALFORMED (the pipeline never sees it)", async () => {
    const { key, envelope } = await handSealed(
      JSON.stringify({ v: 1, requestId: REQUEST_ID, timestamp: T0, kind: "complete" }),
    );
    expect(await refusal(envelope, key)).toEqual({
      code: "REQUEST_MALFORMED",
      message: "request body: expected a JSON value, found none",
      recorded: 0,
    });
  });

  it("an envelope of 78 + N bytes under 94 (N < the 16-byte MAC) is ENVELOPE_MALFORMED, before its key id and version", async () => {
    const { key, envelope } = await handSealed(requestJson({}));
    for (const n of [0, 1, 15]) {
      const short = envelope.slice(0, ENVELOPE_PREFIX_LENGTH + n);
      new DataView(short.buffer).setUint32(18, n);
      expect(await refusal(short, key)).toEqual({
        code: "ENVELOPE_MALFORMED",
        message: `envelope length: expected at least 94 bytes, found ${ENVELOPE_PREFIX_LENGTH + n}`,
        recorded: 0,
      });
      // Another key id changes nothing: the structure is judged first.
      short.fill(0x42, 2, 18);
      expect((await refusal(short, key)).code).toBe("ENVELOPE_MALFORMED");
      // Nor another version byte (docs/protocol.md "Versioning": the length is checked first).
      for (const version of [0, 2, 0xff]) {
        short[0] = version;
        expect((await refusal(short, key)).code).toBe("ENVELOPE_MALFORMED");
      }
    }
  });
});
