/**
 * makePrivateDirectory (client/cli/private-directory.ts) checks the directory it ends up with, not
 * only the path before it makes anything: another user's directory that appears at the path between
 * the check and the rename into place (kept, as another start's would be) is refused. And it takes
 * what it renamed into place as its own only when it is the directory it made: whoever owns or may
 * write to the parent could swap the temporary tree between its mkdir and the rename, and theirs
 * would then be kept unchecked. Both races are made deterministic inside rename itself, just before
 * the real one. Tests run as root.
 */
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

/** Where the next rename finds another user's directory appear just before it. */
const appear = { at: null as string | null };

/**
 * The uid (and gid) of the tree swapped in at the next rename of a temporary tree, or null, and the
 * directories it holds below its top (as the tree made does).
 */
const swap = { uid: null as number | null, below: [] as string[] };

/** The directory a link (uid 4244's) swapped in for the temporary tree at the next rename leads to, or null. */
const link = { to: null as string | null };

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const rename = async (from: string, to: string) => {
    if (to === appear.at) {
      appear.at = null;
      await real.mkdir(to, { mode: 0o755 });
      await real.writeFile(join(to, "policy.json"), "{}");
      await real.chown(to, 4244, 4244);
    }
    if (swap.uid !== null && /^\..+\.[0-9a-f]{12}\.tmp$/.test(basename(from))) {
      const uid = swap.uid;
      swap.uid = null;
      // The tree made is put aside, another of the same shape put under its name.
      await real.rename(from, join(dirname(from), "put-aside"));
      for (const dir of [from, ...swap.below.map((_, i) => join(from, ...swap.below.slice(0, i + 1)))]) {
        await real.mkdir(dir, { mode: 0o700 });
        await real.writeFile(join(dir, ".gitignore"), "*\n");
        await real.chown(dir, uid, uid);
      }
    }
    if (link.to !== null && /^\..+\.[0-9a-f]{12}\.tmp$/.test(basename(from))) {
      const leads = link.to;
      link.to = null;
      await real.rename(from, join(dirname(from), "put-aside"));
      await real.symlink(leads, from);
      await real.lchown(from, 4244, 4244);
    }
    return real.rename(from, to);
  };
  return { ...real, rename, default: { ...real, rename } };
});

const { makePrivateDirectory } = await import("../../client/cli/private-directory.ts");

let root: string;
beforeEach(async () => {
  root = await fs.realpath(await fs.mkdtemp(join(tmpdir(), "cloister-private-race-")));
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

/** makePrivateDirectory's error for `target` (`--dir`), or null when it made it. */
const refusal = (target: string) =>
  makePrivateDirectory(target, "--dir").then(
    () => null,
    (e: unknown) => e as Error,
  );

/** Expects `error` to refuse `target` as a directory of uid 4244's. */
function expectOwnedBy4244(error: Error | null, target: string): void {
  expect(error?.constructor.name).toBe("UsageError");
  expect(error?.message).toContain(`--dir ${target}: expected a directory owned by root or this user`);
  expect(error?.message).toContain("found one owned by uid 4244");
}

describe("makePrivateDirectory: a directory that appears meanwhile", () => {
  it("refuses another user's directory made at the path after the check, before anything is kept there", async () => {
    const target = join(root, "deployments");
    appear.at = target;
    const error = await refusal(target);
    expect(appear.at).toBeNull(); // it did appear
    expectOwnedBy4244(error, target);
    // Its temporary tree, not renamed into place, is removed.
    expect((await fs.readdir(root)).filter((name) => name.endsWith(".tmp"))).toEqual([]);
    // One this user makes meanwhile (another start's) is kept and used.
    const again = join(root, "again");
    await makePrivateDirectory(again, "--dir");
    expect((await fs.readdir(again)).sort()).toEqual([".gitignore"]);
  });
});

describe("makePrivateDirectory: its temporary tree swapped before the rename", () => {
  it("refuses another user's tree renamed into place in place of the one it made", async () => {
    const target = join(root, "deployments");
    swap.uid = 4244;
    const error = await refusal(target);
    expect(swap.uid).toBeNull(); // it was swapped
    expectOwnedBy4244(error, target);
  });

  it("refuses it below the topmost directory made too", async () => {
    const target = join(root, "app", "deployments");
    swap.uid = 4244;
    swap.below = ["deployments"];
    const error = await refusal(target);
    expect(swap.uid).toBeNull();
    expectOwnedBy4244(error, target);
  });

  it("makes nothing where a link swapped in for it leads before that is checked (and refused)", async () => {
    // A directory anyone may write to (no sticky bit) the link leads to, refused above the path, and
    // the rest of the path (deployments) not there yet.
    const open = join(root, "open");
    await fs.mkdir(open);
    await fs.chmod(open, 0o777);
    const target = join(root, "app", "deployments");
    link.to = open;
    const error = await refusal(target);
    expect(link.to).toBeNull(); // it was swapped
    expect(await fs.readdir(open)).toEqual([]);
    expect(error?.constructor.name).toBe("UsageError");
    expect(error?.message).toContain(`--dir ${target}: `);
    expect(error?.message).toContain(open);
  });

  it("keeps a tree of this user's swapped in (whoever made it could write to the directory anyway)", async () => {
    // Not the tree made, so checked as one found: this user's, 0700, passes the check.
    const target = join(root, "deployments");
    swap.uid = process.getuid?.() ?? 0;
    swap.below = [];
    await makePrivateDirectory(target, "--dir");
    expect(swap.uid).toBeNull();
    expect(await fs.readdir(target)).toEqual([".gitignore"]);
  });

  it("keeps the directory it made when nothing was swapped", async () => {
    const target = join(root, "app", "deployments");
    await makePrivateDirectory(target, "--dir");
    expect(await fs.readdir(target)).toEqual([".gitignore"]);
    expect((await fs.lstat(join(root, "app"))).mode & 0o7777).toBe(0o700);
  });
});
