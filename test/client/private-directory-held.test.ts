/**
 * makePrivateDirectory (client/cli/private-directory.ts) makes its temporary tree by name in a
 * directory another user may own (root's `cloister up` in a checkout of uid 4244's), then opens it
 * to work in it through /proc/self/fd/N. Between that mkdir and the open, that user may rename the
 * tree away and make a directory of theirs under its name: what is opened is then theirs, in which
 * they may swap anything root makes for a link of theirs at any moment, so root's mkdir and
 * `.gitignore` files (and a failure's removals) below it go where that link leads. The directory
 * opened must be one this user made (its owner, read on the directory opened). The swaps are made
 * deterministic inside the calls that make the tree and its first directory below. Tests run as root.
 */
import * as fs from "node:fs/promises";
import { basename, join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { theirDirectories } from "../helpers/foreign-link.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

/** The directory of uid 4244's a directory root makes in their directory is swapped for a link to, or null. */
const swap = { to: null as string | null, tree: false };

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith, swapForTheirLink, THEIR_UID } = await import("../helpers/foreign-link.ts");
  const mkdir = (async (file: string, options?: unknown) => {
    const made = await real.mkdir(file, options as Parameters<typeof real.mkdir>[1]);
    if (swap.to === null) return made;
    if (!swap.tree && /^\..+\.[0-9a-f]{12}\.tmp$/.test(basename(file))) {
      // The tree root made, put aside; a directory of theirs under its name.
      swap.tree = true;
      await real.rename(file, `${file}-aside`);
      await real.mkdir(file, { mode: 0o755 });
      await real.chown(file, THEIR_UID, THEIR_UID);
    } else if (swap.tree && basename(file) === "deployments") {
      // In their directory (opened as root's tree): what root made there, swapped for a link.
      await swapForTheirLink(real, file, swap.to);
      swap.to = null;
    }
    return made;
  }) as typeof real.mkdir;
  return fsWith(real, { mkdir });
});

const { makePrivateDirectory } = await import("../../client/cli/private-directory.ts");

let root: string;
testDirectoryEach("cloister-private-held-", (dir) => {
  root = dir;
});
afterEach(() => {
  swap.to = null;
  swap.tree = false;
});

describe("makePrivateDirectory: its temporary tree swapped for a directory of theirs before it is opened", () => {
  it("makes nothing where a link they put in it leads, and refuses", async () => {
    const [checkout, theirs] = await theirDirectories(fs, root, "checkout", "theirs");
    swap.to = theirs;
    const target = join(checkout, "app", "deployments");
    const error = await makePrivateDirectory(target, "--dir").then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(swap.tree).toBe(true); // the tree was swapped
    expect(await fs.readdir(theirs)).toEqual([]);
    expect(error?.constructor.name).toBe("UsageError");
    expect(error?.message).toContain(
      `--dir ${join(checkout, "app")}: cannot create the directory: expected its temporary`,
    );
    expect(error?.message).toContain("found one owned by uid 4244");
  });
});
