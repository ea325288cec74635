/**
 * Test helper: a stored audit log's lines, the file read whole (CRLF tolerated, no trailing empty
 * line). Tests only: a log grows without bound, so the product reads one line by line
 * (enclave/audit-cli-impl.ts readAuditLogLines), never whole.
 */
import { readFile } from "node:fs/promises";

export async function readAuditLines(path: string): Promise<string[]> {
  const text = await readFile(path, "utf8");
  const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
  if (lines.at(-1) === "") lines.pop();
  return lines;
}
