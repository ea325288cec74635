/**
 * prepareAuditDir: a failure of the path check itself (a directory above that cannot be looked
 * into, changed between access() and the check) is an AuditDirError naming --audit-dir's path and
 * the errno, as its other refusals are, not a raw file-system error.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";

vi.mock("../../attestation/path-safety.ts", async (original) => ({
  ...(await original<typeof import("../../attestation/path-safety.ts")>()),
  findUnsafeDirectory: async () => {
    throw Object.assign(new Error("EACCES: permission denied, stat '/x'"), { code: "EACCES" });
  },
}));

const { AuditDirError, prepareAuditDir } = await import("../../host/audit-collector.ts");

const root = await mkdtemp(join(tmpdir(), "cloister-audit-check-"));
afterAll(() => rm(root, { recursive: true, force: true }));

describe("prepareAuditDir when the path check fails", () => {
  it("refuses with an AuditDirError naming the directory and the errno", async () => {
    const dir = join(root, "audit");
    const error = await prepareAuditDir(dir).then(
      () => null,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(AuditDirError);
    expect((error as Error).message).toMatch(new RegExp(`^audit directory ${dir}: cannot check its path \\(EACCES`));
    expect((error as Error).cause).toMatchObject({ code: "EACCES" });
  });
});
