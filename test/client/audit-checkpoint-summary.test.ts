/**
 * What `audit checkpoint --out` prints (client/cli/run-client.ts auditCheckpointSummary): the `audit
 * verify` command for the boot's stored log when the checkpoint counts records, and none for a boot
 * of no record, whose log the host has not made (host/audit-collector.ts files it with the first
 * record), so the command would fail on a missing file.
 */
import { describe, expect, it } from "vitest";
import { auditCheckpointSummary } from "../../client/cli/run-client.ts";

const DIGEST = "0123456789abcdef".repeat(4);
const KEY = "ab".repeat(32);

function checkpointOf(count: number) {
  return { count, lastRecordHash: "cd".repeat(32), time: "2026-12-07T00:00:00.000Z", signingPublicKey: KEY };
}

describe("audit checkpoint's summary", () => {
  it("with records and --out: the audit verify command for the boot's log", () => {
    const lines = auditCheckpointSummary(checkpointOf(3), DIGEST, "checkpoint.json");
    expect(lines[0]).toBe("audit checkpoint verified: 3 records written by the enclave as of 2026-12-07T00:00:00.000Z");
    expect(lines.at(-1)).toBe(
      `  cloister audit verify --log AUDIT_DIR/0123456789abcdef.jsonl --key ${KEY} --checkpoint checkpoint.json`,
    );
  });

  it("with no record and --out: says there is no log to check yet, and gives no command", () => {
    const lines = auditCheckpointSummary(checkpointOf(0), DIGEST, "checkpoint.json");
    expect(lines[0]).toBe("audit checkpoint verified: 0 records written by the enclave as of 2026-12-07T00:00:00.000Z");
    expect(lines.at(-1)).toBe(
      "written to checkpoint.json; this boot has no record yet, so the host has stored no log (0123456789abcdef.jsonl) to check: run audit checkpoint again once it has served requests",
    );
    expect(lines.join("\n")).not.toContain("audit verify");
  });

  it('says "1 record" for a checkpoint of one record, not "1 records"', () => {
    expect(auditCheckpointSummary(checkpointOf(1), DIGEST, undefined)[0]).toBe(
      "audit checkpoint verified: 1 record written by the enclave as of 2026-12-07T00:00:00.000Z",
    );
  });

  it("names --out as a shell word: a control character in its name shown as an escape, never sent", () => {
    const out = "a\x1b[31m.json";
    const word = "$'a\\033[31m.json'";
    const withRecords = auditCheckpointSummary(checkpointOf(3), DIGEST, out);
    expect(withRecords.join("\n")).not.toContain("\x1b");
    expect(withRecords.at(-2)?.startsWith(`written to ${word}; check this boot's stored log`)).toBe(true);
    expect(withRecords.at(-1)).toBe(
      `  cloister audit verify --log AUDIT_DIR/0123456789abcdef.jsonl --key ${KEY} --checkpoint ${word}`,
    );
    const noRecord = auditCheckpointSummary(checkpointOf(0), DIGEST, out);
    expect(noRecord.join("\n")).not.toContain("\x1b");
    expect(noRecord.at(-1)?.startsWith(`written to ${word}; this boot has no record yet`)).toBe(true);
  });

  it("without --out: the summary only, whatever the count", () => {
    for (const count of [0, 1]) {
      const lines = auditCheckpointSummary(checkpointOf(count), DIGEST, undefined);
      expect(lines).toHaveLength(4);
      expect(lines.join("\n")).not.toContain("audit verify");
    }
  });
});
