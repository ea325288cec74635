/** Deterministic audit writers for the pipeline tests: fixed seeds, fixed clock, fixed commitment key. */
import nacl from "tweetnacl";
import { type AuditEntry, AuditWriter, canonicalJson } from "../../enclave/pipeline/audit.ts";

export const MODEL_SHA256 = "3e1948399ecab6f7ccc11449939a0b1337439f969f91547e6cd7680b0b9536df";
export const ATTESTATION_DIGEST = "a".repeat(64);

export function seededKeyPair(byte: number): nacl.SignKeyPair {
  return nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(byte));
}

export function fixedClock(startIso = "2026-01-02T03:04:05.000Z"): () => Date {
  let t = Date.parse(startIso);
  return () => {
    const d = new Date(t);
    t += 1000;
    return d;
  };
}

export function makeWriter(
  keys = seededKeyPair(7),
  settings = { recordPromptHash: true, recordResponseHash: true },
): AuditWriter {
  return new AuditWriter({
    signingSecretKey: keys.secretKey,
    modelSha256: MODEL_SHA256,
    attestationDigest: ATTESTATION_DIGEST,
    settings,
    now: fixedClock(),
    commitmentKey: new Uint8Array(32).fill(9),
  });
}

/** A varied sequence of entries: allowed, policy-blocked, PII-blocked, failed in inference. */
export function sampleEntries(n: number, marker = "plain"): AuditEntry[] {
  const out: AuditEntry[] = [];
  for (let i = 0; i < n; i += 1) {
    const requestId = (i + 1).toString(16).padStart(32, "0");
    switch (i % 4) {
      case 0:
        out.push({
          requestId,
          tenant: "key-alpha",
          decision: "allow",
          blockedBy: null,
          ruleId: null,
          piiFindings: [{ entity: "email", count: 2 }],
          error: null,
          prompt: `prompt ${i} ${marker}`,
          response: `answer ${i} ${marker}`,
          usage: { promptTokens: 12 + i, completionTokens: 30 },
        });
        break;
      case 1:
        out.push({
          requestId,
          tenant: "key-beta",
          decision: "block",
          blockedBy: "policy",
          ruleId: "max-prompt-tokens",
          piiFindings: [],
          error: null,
          prompt: `prompt ${i} ${marker}`,
          response: null,
          usage: null,
        });
        break;
      case 2:
        out.push({
          requestId,
          tenant: "key-alpha",
          decision: "block",
          blockedBy: "pii",
          ruleId: null,
          piiFindings: [
            { entity: "credit_card", count: 1 },
            { entity: "us_ssn", count: 1 },
          ],
          error: null,
          prompt: `prompt ${i} ${marker}`,
          response: null,
          usage: null,
        });
        break;
      default:
        out.push({
          requestId,
          tenant: "key-gamma",
          decision: "allow",
          blockedBy: null,
          ruleId: "vip",
          piiFindings: [],
          error: "ENGINE_BUSY",
          prompt: `prompt ${i} ${marker}`,
          response: null,
          usage: null,
        });
    }
  }
  return out;
}

export function writeLog(n: number, writer = makeWriter(), marker = "plain"): string[] {
  return sampleEntries(n, marker).map((e) => writer.record(e).line);
}

/**
 * An audit record line signed again by `secretKey` under the record tag, after `mutate` changed its
 * record (a forger's line: another key, or a record the enclave never wrote).
 */
export function resignRecord(
  line: string,
  secretKey: Uint8Array,
  mutate: (r: Record<string, unknown>) => void = () => {},
): { record: Record<string, unknown>; line: string } {
  const { record } = JSON.parse(line) as { record: Record<string, unknown> };
  mutate(record);
  const bytes = new TextEncoder().encode(`cloister/audit/record/v1\0${canonicalJson(record)}`);
  const sig = Buffer.from(nacl.sign.detached(bytes, secretKey)).toString("hex");
  return { record, line: canonicalJson({ record, sig }) };
}
