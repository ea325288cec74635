/**
 * prepareAuditDir (host/audit-collector.ts): the directory it checks is the one it makes and the
 * collector writes in, and an empty --audit-dir is refused by what it is, not as a missing parent.
 */
import { chmod, mkdir, stat, symlink } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AuditDirError, prepareAuditDir } from "../../host/audit-collector.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

let root = "";
testDirectoryEach("cloister-auditdir-path-", (dir) => {
  root = dir;
});

describe("prepareAuditDir and `..`", () => {
  it("refuses a `..` after a link (the kernel leaves the link's target, a path join the link's directory), making nothing", async () => {
    // root/safe/l -> root/other/deep: the kernel makes `root/safe/l/../audit` as root/other/audit,
    // while the collector's join() names its files root/safe/audit/…: the two would differ.
    const [safe, other] = [join(root, "safe"), join(root, "other")];
    await mkdir(join(other, "deep"), { recursive: true, mode: 0o755 });
    await mkdir(safe, { mode: 0o755 });
    await symlink(join(other, "deep"), join(safe, "l"));
    const dir = `${safe}/l/../audit`;
    await expect(prepareAuditDir(dir)).rejects.toThrow(
      `audit directory ${dir}: expected a path whose \`..\` leaves the directory named before it, found one after a symbolic link (${safe}/l/..: the directory ${other}, not ${safe}); name the directory by its real path (realpath -m ${dir})`,
    );
    await expect(stat(join(other, "audit"))).rejects.toMatchObject({ code: "ENOENT" });
    await expect(stat(join(safe, "audit"))).rejects.toMatchObject({ code: "ENOENT" });
    // A `..` that leaves a real directory is fine.
    await mkdir(join(safe, "x"), { mode: 0o700 });
    await prepareAuditDir(`${safe}/x/../audit`);
    expect((await stat(join(safe, "audit"))).isDirectory()).toBe(true);
  });

  it("checks the directory the kernel makes, below one anyone may write to", async () => {
    // Were it let through, the check must at least be of root/open/audit, which anyone can rename.
    const [safe, open] = [join(root, "safe"), join(root, "open")];
    await mkdir(join(open, "deep"), { recursive: true, mode: 0o755 });
    await mkdir(safe, { mode: 0o755 });
    await chmod(open, 0o777);
    await symlink(join(open, "deep"), join(safe, "l"));
    await expect(prepareAuditDir(`${safe}/l/../audit`)).rejects.toBeInstanceOf(AuditDirError);
  });

  it("refuses an empty path as such, not as a missing parent of the working directory", async () => {
    const error = await rejectionOf(prepareAuditDir(""), AuditDirError);
    expect(error.reason).toBe(
      "expected the path of a directory, found an empty one; name the directory the host keeps the audit records in (e.g. --audit-dir /var/lib/cloister/audit)",
    );
  });
});
