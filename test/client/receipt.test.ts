/** The SDK checks every answer's receipt (client/sdk.ts) and hands it to the caller. */
import nacl from "tweetnacl";
import { afterEach, describe, expect, it } from "vitest";
import { VerifiedEnclave } from "../../attestation/document.ts";
import { checkReceipt } from "../../client/sdk.ts";
import { signReceipt, textHash, verifyReceipt } from "../../sealed/receipt.ts";
import { closeServers, connectTo } from "./helpers.ts";

afterEach(closeServers);

describe("receipts through the SDK", () => {
  it("every done event carries a receipt signed by the attested key for this request and answer", async () => {
    const { session } = await connectTo();
    let text = "";
    let receipt = "";
    for await (const event of session.chat([{ role: "user", content: "hello" }])) {
      if (event.type === "text") text += event.text;
      else receipt = event.receipt;
    }
    const checked = await verifyReceipt(receipt, session.enclave.signingPublicKey);
    expect(checked.answerHash).toBe(textHash(text));
    expect(checked.documentDigest).toBe(session.enclave.documentDigest);
    expect(checked.manifestDigest).toBe(session.enclave.manifestDigest);
    expect(checked.modelSha256).toBe(session.enclave.manifest.model.sha256);
    expect(checked.requestHash).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("checkReceipt", () => {
  const signing = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));
  const enclave = VerifiedEnclave.create({
    tee: "sev-snp",
    simulated: true,
    measurement: "00".repeat(48),
    reportData: "00".repeat(64),
    sealingPublicKey: new Uint8Array(32).fill(1),
    signingPublicKey: signing.publicKey,
    manifestDigest: "c".repeat(64),
    documentDigest: "d".repeat(64),
    manifest: { service: { name: "s", version: "1" }, model: { file: "m", sha256: "b".repeat(64) } } as never,
    details: {},
  });
  const final = { usage: { promptTokens: 3, completionTokens: 4, ttftMs: 1 }, finishReason: "stop" as const };
  const fields = {
    requestHash: "a".repeat(64),
    answerHash: textHash("the answer"),
    finishReason: "stop" as const,
    promptTokens: 3,
    completionTokens: 4,
    modelSha256: "b".repeat(64),
    manifestDigest: "c".repeat(64),
    documentDigest: "d".repeat(64),
    time: "2026-11-22T14:00:00.000Z",
  };
  const check = (receipt: string, answer = "the answer") =>
    checkReceipt({ ...final, receipt }, enclave, "a".repeat(64), answer);

  it("accepts the receipt of exactly this request and answer", async () => {
    await expect(check(signReceipt(fields, signing.secretKey))).resolves.toBeUndefined();
  });

  it("refuses a receipt of another key, answer, request, usage or document, naming the field", async () => {
    const other = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(8));
    await expect(check(signReceipt(fields, other.secretKey))).rejects.toThrow(
      expect.objectContaining({ kind: "integrity", code: "RECEIPT_INVALID" }),
    );
    await expect(check(signReceipt(fields, signing.secretKey), "another answer")).rejects.toThrow(
      expect.objectContaining({ code: "RECEIPT_MISMATCH", message: expect.stringContaining("answerHash") }),
    );
    for (const [field, value] of [
      ["requestHash", "e".repeat(64)],
      ["completionTokens", 5],
      ["finishReason", "length"],
      ["documentDigest", "f".repeat(64)],
      ["modelSha256", "f".repeat(64)],
    ] as const) {
      await expect(check(signReceipt({ ...fields, [field]: value }, signing.secretKey)), field).rejects.toThrow(
        expect.objectContaining({ code: "RECEIPT_MISMATCH", message: expect.stringContaining(`receipt ${field}:`) }),
      );
    }
  });
});
