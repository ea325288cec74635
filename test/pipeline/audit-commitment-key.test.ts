/**
 * SECURITY.md, "What the host can see": prompts and answers appear in audit records "only as keyed
 * commitments, which the host cannot test guesses against". That holds only while the commitment
 * key is a secret each boot draws (enclave/pipeline/audit.ts: "Each boot draws a secret 32-byte
 * commitment key that never leaves the enclave"): a key anyone could know (a constant, a key shared
 * by boots) would let the host derive each record's opening from its requestIdHash and hash guesses.
 * The other audit tests inject their commitment keys; these use the writer's own, and the enclave's.
 */
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { type AuditEntry, AuditWriter, auditCommitment } from "../../enclave/pipeline/audit.ts";
import { bootWith, ScriptedEngine } from "../enclave/helpers.ts";

const SIGNING = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));
const REQUEST_ID = "0123456789abcdef0123456789abcdef";
const PROMPT = "yes";

const entry: AuditEntry = {
  requestId: REQUEST_ID,
  tenant: "tenant-a",
  decision: "allow",
  blockedBy: null,
  ruleId: null,
  piiFindings: [],
  error: null,
  prompt: PROMPT,
  response: "no",
  usage: { promptTokens: 1, completionTokens: 1 },
};

function writer(): AuditWriter {
  return new AuditWriter({
    signingSecretKey: SIGNING.secretKey,
    modelSha256: "a".repeat(64),
    attestationDigest: "b".repeat(64),
    settings: { recordPromptHash: true, recordResponseHash: true },
  });
}

describe("audit: the commitment key is each writer's own secret", () => {
  it("two writers of one signing key commit the same prompt of the same request id differently", () => {
    const first = writer().record(entry);
    const second = writer().record(entry);
    expect(first.record.requestIdHash).toBe(second.record.requestIdHash);
    expect(first.record.promptHmac).not.toBe(second.record.promptHmac);
    expect(first.record.responseHmac).not.toBe(second.record.responseHmac);
    expect(Buffer.from(first.opening).equals(Buffer.from(second.opening))).toBe(false);
    // Each commitment opens only under its own writer's opening.
    expect(auditCommitment(first.opening, "prompt", PROMPT)).toBe(first.record.promptHmac);
    expect(auditCommitment(second.opening, "prompt", PROMPT)).not.toBe(first.record.promptHmac);
  });

  it("no opening is the one of an all-zero commitment key (the key is drawn, not left empty)", () => {
    const known = new AuditWriter({
      signingSecretKey: SIGNING.secretKey,
      modelSha256: "a".repeat(64),
      attestationDigest: "b".repeat(64),
      settings: { recordPromptHash: true, recordResponseHash: true },
      commitmentKey: new Uint8Array(32),
    });
    expect(Buffer.from(writer().openingFor(REQUEST_ID)).equals(Buffer.from(known.openingFor(REQUEST_ID)))).toBe(false);
  });

  it("two boots of the enclave give one request id different openings", async () => {
    const opening = async () => {
      const enclave = await bootWith(new ScriptedEngine(() => []));
      return Buffer.from((enclave as unknown as { audit: AuditWriter }).audit.openingFor(REQUEST_ID));
    };
    const [a, b] = [await opening(), await opening()];
    expect(a).toHaveLength(32);
    expect(a.equals(b)).toBe(false);
  });
});
