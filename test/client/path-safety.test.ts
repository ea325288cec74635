/**
 * findUnsafeDirectory (client/cli/path-safety.ts) walks every directory a lookup of the path goes
 * through, links followed as the kernel follows them. Real directories and modes (tests run as root).
 */
import { chmod, mkdir, mkdtemp, realpath, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { findUnsafeDirectory } from "../../client/cli/path-safety.ts";

let root: string;
beforeEach(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), "cloister-path-safety-")));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("findUnsafeDirectory", () => {
  it("finds the directory of a link in the middle of a chain (neither on the path as given nor the real one)", async () => {
    // root/safe/l1 -> root/open/l2 -> root/kept/audit: anyone can write to root/open, so anyone can
    // point l2 elsewhere, though root/open is on neither root/safe/l1 nor root/kept/audit.
    const [safe, open, kept] = [join(root, "safe"), join(root, "open"), join(root, "kept")];
    for (const dir of [safe, open, kept]) await mkdir(dir, { mode: 0o755 });
    await chmod(open, 0o777);
    await mkdir(join(kept, "audit"), { mode: 0o700 });
    await symlink(join(kept, "audit"), join(open, "l2"));
    await symlink(join(open, "l2"), join(safe, "l1"));
    expect(await findUnsafeDirectory(join(safe, "l1"))).toMatchObject({ path: open, itself: false, writers: "o" });
    // A relative link's text with `..` in it, looked up from the link's own (real) directory.
    await rm(join(safe, "l1"));
    await symlink("../open/l2", join(safe, "l1"));
    expect(await findUnsafeDirectory(join(safe, "l1"))).toMatchObject({ path: open });
    // Once no one else can write there, nothing is found.
    await chmod(open, 0o755);
    expect(await findUnsafeDirectory(join(safe, "l1"))).toBeNull();
  });

  it("looks up a link's text as the kernel does: a `..` after a link leaves the link's target", async () => {
    // root/safe/l3 -> root/open/deep: `l3/../x` is root/open/x to the kernel (not root/safe/x).
    const [safe, open] = [join(root, "safe"), join(root, "open")];
    await mkdir(join(open, "deep"), { recursive: true, mode: 0o755 });
    await mkdir(join(open, "x"), { mode: 0o700 });
    await mkdir(safe, { mode: 0o755 });
    await chmod(open, 0o777);
    await symlink(join(open, "deep"), join(safe, "l3"));
    await symlink("l3/../x", join(safe, "l4"));
    expect(await findUnsafeDirectory(join(safe, "l4"))).toMatchObject({ path: open });
  });

  it("refuses a loop of links with the kernel's own ELOOP, after as many links as it follows", async () => {
    await symlink(join(root, "loop"), join(root, "loop"));
    await expect(findUnsafeDirectory(join(root, "loop", "audit"))).rejects.toMatchObject({ code: "ELOOP" });
  });
});
