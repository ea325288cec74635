/** Per-response receipts (sealed/receipt.ts): signed by the enclave's attested key, canonical, offline-verifiable. */
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
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
  });

  it("refuses to sign malformed fields", () => {
    expect(() => signReceipt({ ...FIELDS, requestHash: "A".repeat(64) }, keys.secretKey)).toThrow(
      "receipt requestHash: expected 64 lower-case hex characters",
    );
    expect(() => signReceipt({ ...FIELDS, time: "yesterday" }, keys.secretKey)).toThrow("receipt time");
    expect(() => signReceipt({ ...FIELDS, promptTokens: -1 }, keys.secretKey)).toThrow("receipt promptTokens");
  });
});
