/**
 * docs/deploy.md's "Verifying the audit log" names the codes `audit verify --checkpoint` exits 1
 * with for a stored log someone changed. The page once gave an altered record as
 * AUDIT_SIGNATURE_INVALID, which the verifier gives only when the record's content still fits the
 * chain (its signature replaced): a record altered is AUDIT_RECORD_ALTERED. Each change is made
 * here to a log under its checkpoint's count and last hash, and the code found must be on the page.
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { describe, expect, it } from "vitest";
import { canonicalJson, verifyAuditLog } from "../../enclave/pipeline/audit.ts";
import { pageSection } from "../helpers/doc-pages.ts";
import { seededKeyPair, writeLog } from "../pipeline/helpers.ts";

/** The page's paragraph on verifying the audit log, white space runs as one space. */
const auditParagraph = () => pageSection("docs/deploy.md", "**Verifying the audit log.**", "\n## 6. ");

const KEYS = seededKeyPair(7);
const lines = writeLog(4);
const last = JSON.parse(lines[3] as string) as { record: Record<string, unknown> };
const expectation = {
  count: 4,
  lastRecordHash: Buffer.from(sha256(new TextEncoder().encode(canonicalJson(last.record)))).toString("hex"),
};

/** The log with line `index` changed by `change`, and the code verifying it under the checkpoint gives. */
function codeOf(index: number, change: (line: { record: Record<string, unknown>; sig: string }) => void): string {
  const changed = [...lines];
  const line = JSON.parse(changed[index] as string) as { record: Record<string, unknown>; sig: string };
  change(line);
  changed[index] = canonicalJson(line);
  const result = verifyAuditLog(changed, KEYS.publicKey, { expect: expectation });
  if (result.ok) throw new Error("expected the changed log to fail verification");
  return result.error.code;
}

describe("docs/deploy.md's audit paragraph", () => {
  it("the untouched log verifies under the checkpoint (so each failure below is the change's)", () => {
    expect(verifyAuditLog(lines, KEYS.publicKey, { expect: expectation }).ok).toBe(true);
  });

  it.each([
    ["a middle record altered", 1, (l: { record: Record<string, unknown> }) => (l.record.tenant = "key-mallory")],
    ["the last record altered", 3, (l: { record: Record<string, unknown> }) => (l.record.tenant = "key-mallory")],
    ["a signature replaced", 1, (l: { sig: string }) => (l.sig = "0".repeat(128))],
  ])("names the code of %s", (_what, index, change) => {
    const code = codeOf(index, change as (line: { record: Record<string, unknown>; sig: string }) => void);
    expect(auditParagraph()).toContain(`\`${code}\``);
  });
});
