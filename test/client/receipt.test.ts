/** The SDK checks every answer's receipt (client/sdk.ts) and hands it to the caller. */
import nacl from "tweetnacl";
import { afterEach, describe, expect, it } from "vitest";
import { VerifiedEnclave } from "../../attestation/document.ts";
import { checkReceipt } from "../../client/sdk.ts";
import { fetchTransport } from "../../client/transport.ts";
import type { EnclaveSealingKey } from "../../sealed/index.ts";
import { signReceipt, textHash, verifyReceipt } from "../../sealed/receipt.ts";
import { closeServers, connectTo } from "./helpers.ts";

afterEach(closeServers);

describe("receipts through the SDK", () => {
  it("every done event carries a receipt signed by the attested key for this request and answer", async () => {
    const envelopes: Uint8Array[] = [];
    const { session, enclave } = await connectTo({
      transport: async (url, request) => {
        if (new URL(url).pathname.endsWith("/sealed")) envelopes.push(new Uint8Array(request.body as Uint8Array));
        return fetchTransport(fetch)(url, request);
      },
    });
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
    // requestHash is SHA-256 of the request's JSON as the client sealed it, without its padding
    // (docs/protocol.md, "Receipts"): opened here with nacl.box.open from the envelope's documented
    // offsets and the enclave's X25519 secret (read from the in-process enclave; tests only).
    expect(envelopes).toHaveLength(1);
    const envelope = envelopes[0] as Uint8Array;
    const { secretKey } = (enclave as unknown as { sealingKey: EnclaveSealingKey }).sealingKey;
    const plaintext = nacl.box.open(
      envelope.subarray(78),
      envelope.subarray(54, 78),
      envelope.subarray(22, 54),
      secretKey,
    );
    expect(plaintext).not.toBeNull();
    const json = new TextDecoder().decode((plaintext as Uint8Array).subarray(32)).trimEnd();
    expect(JSON.parse(json)).toMatchObject({ v: 1, kind: "chat" });
    expect(checked.requestHash).toBe(textHash(json));
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

  it("refuses a receipt signed by another key, or of another answer, naming the field", async () => {
    const other = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(8));
    await expect(check(signReceipt(fields, other.secretKey))).rejects.toThrow(
      expect.objectContaining({ kind: "integrity", code: "RECEIPT_INVALID" }),
    );
    await expect(check(signReceipt(fields, signing.secretKey), "another answer")).rejects.toThrow(
      expect.objectContaining({ code: "RECEIPT_MISMATCH", message: expect.stringContaining("answerHash") }),
    );
  });

  it("refuses a receipt with any one of its fields changed (all but time), naming the field", async () => {
    // The receipt's own field list, read from a signed line, so a field added to it is tested too.
    const line = JSON.parse(signReceipt(fields, signing.secretKey)) as Record<string, unknown>;
    const names = Object.keys(line).filter((name) => !["v", "sig", "time"].includes(name));
    expect(names.sort()).toEqual(
      Object.keys(fields)
        .filter((name) => name !== "time")
        .sort(),
    );
    expect(names).toContain("promptTokens");
    expect(names).toContain("manifestDigest");
    const other = (value: unknown): unknown =>
      typeof value === "number" ? value + 1 : value === "stop" ? "length" : textHash(String(value));
    for (const field of names) {
      const value = other(fields[field as keyof typeof fields]);
      await expect(check(signReceipt({ ...fields, [field]: value }, signing.secretKey)), field).rejects.toThrow(
        expect.objectContaining({ code: "RECEIPT_MISMATCH", message: expect.stringContaining(`receipt ${field}:`) }),
      );
    }
  });
});
