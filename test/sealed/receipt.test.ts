/** Per-response receipts (sealed/receipt.ts): signed by the enclave's attested key, canonical, offline-verifiable. */

import { readFileSync } from "node:fs";
import { ed25519 } from "@noble/curves/ed25519.js";
import nacl from "tweetnacl";
import { describe, expect, it, vi } from "vitest";
import { type ReceiptFields, signReceipt, textHash, verifyReceipt } from "../../sealed/receipt.ts";

const keys = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(3));
const FIELDS: ReceiptFields = {
  requestHash: "a".repeat(64),
  answerHash: textHash("The answer."),
  finishReason: "stop",
  promptTokens: 12,
  completionTokens: 34,
  modelSha256: "b".repeat(64),
  manifestDigest: "c".repeat(64),
  documentDigest: "d".repeat(64),
  time: "2026-11-22T14:00:00.000Z",
};

describe("receipts", () => {
  it("round-trips: the signed line verifies under the signing key and gives back every field", async () => {
    const line = signReceipt(FIELDS, keys.secretKey);
    expect(line.startsWith('{"v":1,"requestHash":"aaaa')).toBe(true);
    expect(await verifyReceipt(line, keys.publicKey)).toEqual({ v: 1, ...FIELDS, line });
    // Node's native signer (what the enclave uses) makes the same line.
    const { ed25519Signer } = await import("../../enclave/pipeline/audit.ts");
    expect(signReceipt(FIELDS, ed25519Signer(keys.secretKey))).toBe(line);
    expect(textHash("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("refuses a changed field, another key, and any other spelling of the same receipt", async () => {
    const line = signReceipt(FIELDS, keys.secretKey);
    const other = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(4));
    const sig = (JSON.parse(line) as { sig: string }).sig;
    const lastChar = sig.at(-1) as string;
    const variants = [
      line.replace('"completionTokens":34', '"completionTokens":35'),
      line.replace('"finishReason":"stop"', '"finishReason":"length"'),
      line.replace("{", "{ "), // whitespace
      line.replace('"v":1,', '"v":1,"extra":0,'), // another field
      JSON.stringify({ ...JSON.parse(line), v: 1 })
        .replace('"v":1,', "")
        .replace("{", '{"v":1,'), // same content
      line.replace(sig, `${sig.slice(0, -1)}${lastChar === "A" ? "B" : "A"}`),
    ];
    for (const bad of variants) {
      if (bad === line) continue;
      await expect(verifyReceipt(bad, keys.publicKey), bad.slice(0, 60)).rejects.toThrow(
        expect.objectContaining({ code: "RECEIPT_INVALID" }),
      );
    }
    await expect(verifyReceipt(line, other.publicKey)).rejects.toThrow(
      "does not verify under the enclave's signing key",
    );
    await expect(verifyReceipt("x".repeat(901), keys.publicKey)).rejects.toThrow("at most 900 characters");
    // Something other than a receipt: what was found is said by its kind, never quoted.
    const others: [string, string][] = [
      ["The answer.", "receipt: expected one JSON object, found text that is not JSON"],
      ["[1]", "receipt: expected one JSON object, found an array"],
      ["null", "receipt: expected one JSON object, found null"],
      ['"v"', "receipt: expected one JSON object, found a string"],
      ['{"v":2}', "receipt v: expected 1, found 2"],
      ['{"v":"1"}', "receipt v: expected 1, found a string"],
      ['{"text":"The answer."}', "receipt v: expected 1, found none"],
    ];
    for (const [text, message] of others) {
      await expect(verifyReceipt(text, keys.publicKey), text).rejects.toThrow(
        expect.objectContaining({ code: "RECEIPT_INVALID", message }),
      );
    }
  });

  it("refuses to sign malformed fields", () => {
    expect(() => signReceipt({ ...FIELDS, requestHash: "A".repeat(64) }, keys.secretKey)).toThrow(
      "receipt requestHash: expected 64 lower-case hex characters",
    );
    expect(() => signReceipt({ ...FIELDS, time: "yesterday" }, keys.secretKey)).toThrow("receipt time");
    expect(() => signReceipt({ ...FIELDS, promptTokens: -1 }, keys.secretKey)).toThrow("receipt promptTokens");
  });
});

describe("receipt time", () => {
  // A day or hour that does not exist: Date.parse takes February 30 and hour 24 and moves them on.
  const notTimes: [string, string][] = [
    ["2026-02-30T12:00:00.000Z", '"2026-02-30T12:00:00.000Z"'],
    ["2026-02-29T12:00:00.000Z", '"2026-02-29T12:00:00.000Z"'],
    ["2026-04-31T12:00:00.000Z", '"2026-04-31T12:00:00.000Z"'],
    ["2026-11-22T24:00:00.000Z", '"2026-11-22T24:00:00.000Z"'],
    ["2026-11-22T14:60:00.000Z", '"2026-11-22T14:60:00.000Z"'],
    ["2026-11-22T14:00:00.000+00:00", '"2026-11-22T14:00:00.000+00:00"'],
    ["2026-11-22T14:00:00Z", '"2026-11-22T14:00:00Z"'],
    [" 2026-11-22T14:00:00.000Z", "a string of 25 characters"],
  ];
  const expected = "receipt time: expected an ISO 8601 UTC time as the enclave writes it (YYYY-MM-DDTHH:MM:SS.sssZ)";

  it("is signed only as Date#toISOString writes it", () => {
    for (const [time, found] of notTimes) {
      expect(() => signReceipt({ ...FIELDS, time }, keys.secretKey), time).toThrow(
        expect.objectContaining({ code: "RECEIPT_INVALID", message: `${expected}, found ${found}` }),
      );
    }
    expect(() => signReceipt({ ...FIELDS, time: 5 as unknown as string }, keys.secretKey)).toThrow(
      `${expected}, found a number`,
    );
    // A leap day that exists, and the last millisecond of a year, are times.
    for (const time of ["2024-02-29T23:59:59.999Z", "2026-12-31T23:59:59.999Z"]) {
      expect(signReceipt({ ...FIELDS, time }, keys.secretKey)).toContain(`"time":"${time}"`);
    }
  });

  it("is verified only as Date#toISOString writes it, even under a good signature", async () => {
    const tag = new TextEncoder().encode("cloister/receipt/v1\0");
    for (const [time, found] of notTimes) {
      // Signed as the enclave would sign it, were its check looser.
      const unsigned = signReceipt(FIELDS, keys.secretKey)
        .replace(/,"sig":"[^"]*"\}$/, "}")
        .replace(FIELDS.time, time);
      const message = new Uint8Array([...tag, ...new TextEncoder().encode(unsigned)]);
      const sig = Buffer.from(nacl.sign.detached(message, keys.secretKey)).toString("base64url");
      const line = `${unsigned.slice(0, -1)},"sig":"${sig}"}`;
      await expect(verifyReceipt(line, keys.publicKey), time).rejects.toThrow(
        expect.objectContaining({ code: "RECEIPT_INVALID", message: `${expected}, found ${found}` }),
      );
    }
  });
});

/** S + L: the same signature, written with an unreduced scalar. */
function unreduced(sig: string): string {
  const bytes = Buffer.from(sig, "base64url");
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(bytes[i] as number);
  s += ED25519_L;
  for (let i = 32; i < 64; i++, s >>= 8n) bytes[i] = Number(s & 255n);
  expect(s).toBe(0n); // still fits in 32 bytes
  return bytes.toString("base64url");
}

const ED25519_L = 2n ** 252n + 27742317777372353535851937790883648493n;

/** A signed line with its sig replaced. */
function withSig(line: string, sig: Uint8Array | string): string {
  const old = (JSON.parse(line) as { sig: string }).sig;
  return line.replace(old, typeof sig === "string" ? sig : Buffer.from(sig).toString("base64url"));
}

const P25519 = 2n ** 255n - 19n;

function littleEndian(bytes: Uint8Array): bigint {
  return bytes.reduceRight((n, byte) => (n << 8n) | BigInt(byte), 0n);
}

function toLittleEndian(n: bigint): Uint8Array {
  return Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 255n));
}

/**
 * Every encoding of a small-order point, derived with @noble/curves (not copied from the code under
 * test): the 8 torsion points, canonical and with the sign bit flipped, and y + p where that
 * still fits below 2^255 (y = 0, 1), either sign bit.
 */
function smallOrderEncodings(): Uint8Array[] {
  // A point of order 8: [L]Q for a point Q whose torsion part has order 8.
  let T = ed25519.Point.ZERO;
  for (let y = 2n; T.multiplyUnsafe(4n).is0(); y++) {
    let Q: typeof T;
    try {
      Q = ed25519.Point.fromBytes(toLittleEndian(y), true);
    } catch {
      continue; // no point with this y
    }
    T = Q.multiplyUnsafe(ED25519_L - 1n).add(Q);
  }
  const encodings = new Map<string, Uint8Array>();
  const add = (bytes: Uint8Array) => encodings.set(Buffer.from(bytes).toString("hex"), bytes);
  let point = ed25519.Point.ZERO;
  for (let i = 0; i < 8; i++, point = point.add(T)) {
    const canonical = point.toBytes();
    const y = littleEndian(canonical) & (2n ** 255n - 1n); // sign bit cleared
    for (const value of y + P25519 < 2n ** 255n ? [y, y + P25519] : [y]) {
      add(toLittleEndian(value));
      add(toLittleEndian(value | (2n ** 255n)));
    }
  }
  return [...encodings.values()];
}

describe("receipts: one valid signature per line, never under a small-order key", () => {
  it("refuses S + L, which tweetnacl alone would accept and WebCrypto refuses", async () => {
    const line = signReceipt(FIELDS, keys.secretKey);
    const bad = withSig(line, unreduced((JSON.parse(line) as { sig: string }).sig));
    const message = new TextEncoder().encode(`cloister/receipt/v1\0${line.replace(/,"sig":"[^"]*"/, "")}`);
    expect(nacl.sign.detached.verify(message, Buffer.from(JSON.parse(bad).sig, "base64url"), keys.publicKey)).toBe(
      true,
    );
    await expect(verifyReceipt(bad, keys.publicKey)).rejects.toThrow(
      expect.objectContaining({ code: "RECEIPT_INVALID", message: expect.stringContaining("not a canonical") }),
    );
    // Also where only tweetnacl is there (no WebCrypto).
    vi.stubGlobal("crypto", undefined);
    try {
      await expect(verifyReceipt(bad, keys.publicKey)).rejects.toThrow("not a canonical");
      await expect(verifyReceipt(line, keys.publicKey)).resolves.toMatchObject({ line });
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it("refuses S = L and S = L + 1 as not canonical (RFC 8032 §5.1.7: S < L); S = L - 1 goes on to the signature check", async () => {
    const line = signReceipt(FIELDS, keys.secretKey);
    const sig = Buffer.from((JSON.parse(line) as { sig: string }).sig, "base64url");
    const withS = (s: bigint) => withSig(line, new Uint8Array([...sig.subarray(0, 32), ...toLittleEndian(s)]));
    // The signature's own S plus L is refused the same way (the test above); here the edge itself.
    for (const crypto of ["WebCrypto", "tweetnacl only"] as const) {
      if (crypto === "tweetnacl only") vi.stubGlobal("crypto", undefined);
      try {
        for (const s of [ED25519_L, ED25519_L + 1n]) {
          await expect(verifyReceipt(withS(s), keys.publicKey), `${crypto}, S = ${s}`).rejects.toThrow(
            expect.objectContaining({
              code: "RECEIPT_INVALID",
              message: "receipt sig: not a canonical Ed25519 signature (S is not below the group order)",
            }),
          );
        }
        await expect(verifyReceipt(withS(ED25519_L - 1n), keys.publicKey), crypto).rejects.toThrow(
          expect.objectContaining({
            code: "RECEIPT_INVALID",
            message: expect.stringContaining("does not verify under the enclave's signing key"),
          }),
        );
      } finally {
        vi.unstubAllGlobals();
      }
    }
  });

  it("refuses every other base64url spelling of the same signature bytes (the last character's unused bits set)", async () => {
    const line = signReceipt(FIELDS, keys.secretKey);
    const sig = (JSON.parse(line) as { sig: string }).sig;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = alphabet.indexOf(sig.at(-1) as string);
    // 86 characters carry 516 bits for 64 bytes: the last character's low 4 bits are unused (zero).
    expect(last & 0x0f).toBe(0);
    const spellings = Array.from({ length: 15 }, (_, k) => `${sig.slice(0, -1)}${alphabet[last | (k + 1)]}`);
    for (const spelling of spellings) {
      // The same bytes: only the spelling check tells them apart.
      expect(Buffer.from(spelling, "base64url").equals(Buffer.from(sig, "base64url"))).toBe(true);
    }
    for (const spelling of [...spellings, `${sig}==`, `${sig}=`]) {
      await expect(verifyReceipt(withSig(line, spelling), keys.publicKey), spelling.slice(-3)).rejects.toThrow(
        expect.objectContaining({
          code: "RECEIPT_INVALID",
          message: "receipt sig: expected a base64url Ed25519 signature",
        }),
      );
    }
    await expect(verifyReceipt(line, keys.publicKey)).resolves.toMatchObject({ line });
  });

  it("refuses a made-up receipt under the identity key (01 00..00) with signature 01 00..00 ‖ 00..00", async () => {
    const identity = new Uint8Array(32);
    identity[0] = 1;
    const sig = new Uint8Array(64);
    sig[0] = 1;
    const forged = withSig(signReceipt(FIELDS, keys.secretKey), sig);
    // Both libraries accept this forgery on their own: the check is verifyReceipt's.
    const message = new TextEncoder().encode(`cloister/receipt/v1\0${forged.replace(/,"sig":"[^"]*"/, "")}`);
    expect(nacl.sign.detached.verify(message, sig, identity)).toBe(true);
    await expect(verifyReceipt(forged, identity)).rejects.toThrow(
      expect.objectContaining({ code: "RECEIPT_INVALID", message: expect.stringContaining("small-order") }),
    );
  });

  it("refuses every encoding of the 8 small-order points, and only those", async () => {
    const line = signReceipt(FIELDS, keys.secretKey);
    const encodings = smallOrderEncodings();
    expect(encodings).toHaveLength(14); // 5 canonical y values and 2 non-canonical ones, either sign
    // Each is a small-order point where it decodes at all, and each is refused.
    for (const key of encodings) {
      let small = true;
      try {
        small = ed25519.Point.fromBytes(key, true).isSmallOrder();
      } catch {
        // not decodable at all: refused either way
      }
      expect(small).toBe(true);
      await expect(verifyReceipt(line, key), Buffer.from(key).toString("hex")).rejects.toThrow("small-order");
    }
    // A key that differs in one bit from a small-order encoding is an ordinary key (signature fails).
    const near = (encodings[4] as Uint8Array).slice(); // 26e8…fc05 (order 8) → 27e8…fc05
    near[0] = (near[0] as number) ^ 1;
    await expect(verifyReceipt(line, near)).rejects.toThrow("does not verify under the enclave's signing key");
  });

  it("falls back to tweetnacl only when WebCrypto says Ed25519 is not supported", async () => {
    const line = signReceipt(FIELDS, keys.secretKey);
    const refusing = (name: string) => ({
      subtle: {
        importKey: () => Promise.reject(new DOMException("no", name)),
        verify: () => Promise.reject(new Error("unreachable")),
      },
    });
    try {
      vi.stubGlobal("crypto", refusing("NotSupportedError"));
      await expect(verifyReceipt(line, keys.publicKey)).resolves.toMatchObject({ line });
      vi.stubGlobal("crypto", refusing("DataError"));
      await expect(verifyReceipt(line, keys.publicKey)).rejects.toThrow(
        "does not verify under the enclave's signing key",
      );
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it("hashes bytes as they are: valid UTF-8 as its text, invalid UTF-8 like no text", () => {
    const text = "Réponse: 42 ✓";
    expect(textHash(new TextEncoder().encode(text))).toBe(textHash(text));
    const invalid = Uint8Array.from([0x61, 0xff, 0x62]);
    const decoded = new TextDecoder().decode(invalid); // "a\uFFFDb"
    expect(textHash(invalid)).not.toBe(textHash(decoded));
  });
});

describe("what a receipt shows to whoever it is shown to", () => {
  it("answerHash is unkeyed: a guessed short answer is confirmed by hashing candidates, as the docs say", async () => {
    const line = signReceipt({ ...FIELDS, answerHash: textHash("no") }, keys.secretKey);
    const { answerHash } = await verifyReceipt(line, keys.publicKey);
    expect(["yes", "no", "maybe"].find((guess) => textHash(guess) === answerHash)).toBe("no");
    // Documented, with who may see receipts (the host never does: they travel sealed).
    const protocol = readFileSync(new URL("../../docs/protocol.md", import.meta.url), "utf8");
    const receipts = protocol
      .slice(protocol.indexOf("## Receipts"), protocol.indexOf("\n## ", protocol.indexOf("## Receipts") + 1))
      .replace(/\s+/g, " ");
    expect(receipts).toContain("plain, unkeyed SHA-256");
    expect(receipts).toContain("The host never sees receipts");
    const security = readFileSync(new URL("../../SECURITY.md", import.meta.url), "utf8").replace(/\s+/g, " ");
    expect(security).toContain("confirm a guessed short answer");
  });
});
