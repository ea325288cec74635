/**
 * Test helper for `cloister audit find`: the records of answered requests as the real audit writer
 * (enclave/pipeline/audit.ts) writes them, for a boot "cd…" of the model "ab…", and the --chat-json
 * a client keeps of one of them (its answer, the boot's signing key, the record's hash and opening).
 */
import type nacl from "tweetnacl";
import { toHex } from "../../attestation/bytes.ts";
import { AuditWriter, auditRequestIdHash } from "../../enclave/pipeline/audit.ts";

/** The boot's attestation digest every record and --chat-json names. */
export const AUDIT_BOOT = "cd".repeat(32);

/** A writer for the boot AUDIT_BOOT signing with `keys`, its records committing to the prompt, and to the answer when asked. */
export function auditWriterOf(keys: nacl.SignKeyPair, recordResponseHash: boolean): AuditWriter {
  return new AuditWriter({
    signingSecretKey: keys.secretKey,
    modelSha256: "ab".repeat(32),
    attestationDigest: AUDIT_BOOT,
    settings: { recordPromptHash: true, recordResponseHash },
  });
}

/** An allowed request that was answered (`response` null: no answer committed); 5 prompt tokens. */
export interface AnsweredRequest {
  readonly requestId: string;
  readonly prompt: string;
  readonly response: string | null;
  /** Default 6. */
  readonly completionTokens?: number;
}

/** The log lines `writer` writes for `requests`, in order (seq 0, 1, …). */
export function answeredRecordLines(writer: AuditWriter, requests: readonly AnsweredRequest[]): string[] {
  return requests.map(
    ({ requestId, prompt, response, completionTokens = 6 }) =>
      writer.record({
        requestId,
        tenant: "t",
        decision: "allow",
        blockedBy: null,
        ruleId: null,
        piiFindings: [],
        error: null,
        prompt,
        response,
        usage: { promptTokens: 5, completionTokens },
      }).line,
  );
}

/** The --chat-json text a client keeps of the request `requestId` that `writer` recorded: its answer `text`. */
export function chatJsonOf(writer: AuditWriter, keys: nacl.SignKeyPair, requestId: string, text: string): string {
  return JSON.stringify({
    text,
    enclave: AUDIT_BOOT,
    signingKey: toHex(keys.publicKey),
    audit: { requestIdHash: auditRequestIdHash(requestId), opening: toHex(writer.openingFor(requestId)) },
  });
}
