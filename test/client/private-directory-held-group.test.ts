/**
 * holdPrivateDirectory (client/cli/private-directory.ts, `cloister up --dir`) opens the directory by
 * name, a name that may be in a directory another user owns (root's `cloister up` in a checkout of
 * uid 4244's), then walks its path by name and compares the directory at the name with the one
 * opened. Only the owner and mode read on the directory opened (fstat) are free of a swap: that user
 * may put a link under the name for the open, their directory back for the walk, the link again for
 * the compare. So the directory opened must pass the walk's own rule: a directory of root's that a
 * group of theirs may write to (/usr/local, root:staff 2775 on Debian) is refused, as the walk
 * refuses it, or root's keys would be written where that group may plant a link to any file. The
 * swaps are made deterministic inside the open and the compare's stat. Tests run as root.
 */
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { theirDirectories } from "../helpers/foreign-link.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

/** The directory asked about, and the directory a link to which takes its name in the open and the compare. */
const swap = { dir: "", to: null as string | null, opened: false };

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith, putBack, swapForTheirLink } = await import("../helpers/foreign-link.ts");
  const open = (async (file: string, ...rest: unknown[]) => {
    if (swap.to === null || swap.opened || file !== swap.dir)
      return (real.open as (...a: unknown[]) => unknown)(file, ...rest);
    swap.opened = true;
    await swapForTheirLink(real, swap.dir, swap.to);
    try {
      return await (real.open as (...a: unknown[]) => Promise<unknown>)(file, ...rest);
    } finally {
      await putBack(real, swap.dir);
    }
  }) as typeof real.open;
  const stat = (async (file: string, ...rest: unknown[]) => {
    // The compare (called from holdPrivateDirectory itself, not from its walk).
    const caller = new Error().stack?.split("\n")[2] ?? "";
    if (swap.to !== null && swap.opened && file === swap.dir && caller.includes("holdPrivateDirectory")) {
      await swapForTheirLink(real, swap.dir, swap.to);
      swap.to = null;
    }
    return (real.stat as (...a: unknown[]) => unknown)(file, ...rest);
  }) as typeof real.stat;
  return fsWith(real, { open, stat });
});

const { holdPrivateDirectory } = await import("../../client/cli/private-directory.ts");

/** holdPrivateDirectory's refusal of `dir` (or the directory held, closed). */
async function holdOrRefusal(dir: string): Promise<unknown> {
  const held = await holdPrivateDirectory(dir, "--dir").catch((error: Error) => error);
  if (!(held instanceof Error)) await held.close();
  return held;
}

/** holdOrRefusal of `checkout`/deployments (made, 0700), a link to `to` under its name for the open and the compare. */
async function heldSwappedFor(checkout: string, to: string): Promise<unknown> {
  swap.dir = join(checkout, "deployments");
  await fs.mkdir(swap.dir, { mode: 0o700 });
  await fs.chown(swap.dir, process.getuid?.() ?? 0, process.getgid?.() ?? 0); // this user's (a mocked one's too)
  swap.to = to;
  return holdOrRefusal(swap.dir);
}

let root: string;
testDirectoryEach("cloister-private-held-group-", (dir) => {
  root = dir;
});
afterEach(() => {
  swap.to = null;
  swap.opened = false;
});

describe("holdPrivateDirectory: a directory of root's a group of theirs may write to, opened under its name", () => {
  it("refuses it, naming its mode and group", async () => {
    const [checkout] = await theirDirectories(fs, root, "checkout");
    const shared = join(root, "shared");
    await fs.mkdir(shared);
    await fs.chown(shared, 0, 4244);
    await fs.chmod(shared, 0o2775);
    const held = await heldSwappedFor(checkout, shared);
    expect(swap.opened).toBe(true); // swapped for the open (and, were it not refused, the compare)
    expect(held).toBeInstanceOf(Error);
    expect((held as Error).message).toContain("mode 2775");
    expect((held as Error).message).toContain("group 4244");
    expect((held as Error).message).toContain("found one group 4244 may write to");
  });

  it("refuses a sticky directory others may write to (/tmp), as the one written in", async () => {
    // The walk accepts a sticky world-writable directory (only a name's owner may rename it): above
    // --dir, not as the directory root writes its files in, where another user may have put a link
    // of theirs under each name first (fs.protected_symlinks and protected_regular are settings).
    const [checkout] = await theirDirectories(fs, root, "checkout");
    const shared = join(root, "tmp");
    await fs.mkdir(shared);
    await fs.chmod(shared, 0o1777);
    const held = await heldSwappedFor(checkout, shared);
    expect(swap.opened).toBe(true);
    expect(held).toBeInstanceOf(Error);
    expect((held as Error).message).toContain("mode 1777");
    expect((held as Error).message).toContain("found one anyone may write to");
  });

  it("refuses a sticky directory a group of theirs may write to", async () => {
    const shared = join(root, "shared");
    await fs.mkdir(shared);
    await fs.chown(shared, 0, 4244);
    await fs.chmod(shared, 0o1770);
    const held = await holdOrRefusal(shared);
    expect(held).toBeInstanceOf(Error);
    expect((held as Error).message).toContain("mode 1770");
  });

  it("refuses one its user's primary group may write to when that group is not theirs alone", async () => {
    // A user (uid 4244) whose primary group is shared (gid 100 `users`, USERGROUPS=no; the account
    // files know no group of theirs alone): the walk takes that group's write as another's; the
    // directory opened is held to the same.
    vi.spyOn(process, "getuid").mockReturnValue(4244);
    vi.spyOn(process, "getgid").mockReturnValue(100);
    try {
      const checkout = join(root, "checkout");
      await fs.mkdir(checkout, { mode: 0o755 });
      await fs.chown(checkout, 4244, 100);
      const shared = join(root, "shared");
      await fs.mkdir(shared);
      await fs.chown(shared, 4244, 100);
      await fs.chmod(shared, 0o770);
      const held = await heldSwappedFor(checkout, shared);
      expect(swap.opened).toBe(true);
      expect(held).toBeInstanceOf(Error);
      expect((held as Error).message).toContain("group 100, mode 770");
    } finally {
      vi.restoreAllMocks();
    }
  });
});
