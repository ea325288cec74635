/**
 * makePrivateDirectory (client/cli/private-directory.ts) writes each `.gitignore` of the tree it
 * makes under a temporary name in a directory another user may own (root's `cloister up` in a
 * checkout of uid 4244's): that user may rename the temporary tree away and put a link of theirs
 * under its name at any moment. What it does to a `.gitignore` once made (its mode, whatever the
 * umask) must be done to the file it made, never by name again: a name through that link leads to
 * any file of root's (a link `.gitignore` -> /etc/shadow). Nor may anything made or removed in the
 * tree afterwards (the directories below its top, their `.gitignore`, the cleanup of a failure) go
 * where such a link leads. The swap is made deterministic inside the call that creates the
 * `.gitignore`, just after the real one. Tests run as root.
 */
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

/**
 * The directory of uid 4244's whose link the temporary tree is swapped for, or null (no swap), and
 * the directory the tree is made in (found there by its name: the `.gitignore` may be created through
 * a path that does not name it).
 */
const swap = { to: null as string | null, in: "" };

/** After a `.gitignore` is created in a temporary tree: that tree put aside, a link to `swap.to` in its place. */
async function swapAfterCreate(real: typeof import("node:fs/promises"), file: string): Promise<void> {
  if (swap.to === null || basename(file) !== ".gitignore") return;
  const name = (await real.readdir(swap.in)).find((entry) => /^\..+\.[0-9a-f]{12}\.tmp$/.test(entry));
  if (name === undefined) return;
  const temporary = join(swap.in, name);
  const to = swap.to;
  swap.to = null;
  await real.rename(temporary, join(swap.in, "put-aside"));
  await real.symlink(to, temporary);
  await real.lchown(temporary, 4244, 4244);
}

/** The name of a file another user puts in a directory of theirs at the temporary name once it is free, or null. */
const reuse = { file: null as string | null };

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const writeFile: typeof real.writeFile = async (file, ...rest) => {
    await real.writeFile(file, ...rest);
    if (typeof file === "string") await swapAfterCreate(real, file);
  };
  const open: typeof real.open = async (file, ...rest) => {
    const handle = await real.open(file, ...rest);
    if (typeof file === "string") await swapAfterCreate(real, file);
    return handle;
  };
  // After the temporary tree is renamed into place: a directory of uid 4244's, holding a file, made
  // under its free name (it is in their directory).
  const rename: typeof real.rename = async (from, to) => {
    await real.rename(from, to);
    if (reuse.file !== null && /^\..+\.[0-9a-f]{12}\.tmp$/.test(basename(String(from)))) {
      await real.mkdir(String(from));
      await real.writeFile(join(String(from), reuse.file), "theirs\n");
      await real.chown(String(from), 4244, 4244);
      reuse.file = null;
    }
  };
  return { ...real, writeFile, open, rename, default: { ...real, writeFile, open, rename } };
});

const { makePrivateDirectory } = await import("../../client/cli/private-directory.ts");

let root: string;
beforeEach(async () => {
  root = await fs.realpath(await fs.mkdtemp(join(tmpdir(), "cloister-private-gitignore-")));
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe("makePrivateDirectory: its temporary tree swapped for a link once a .gitignore is made", () => {
  it("changes no mode through the link (a .gitignore there leading to a file of root's)", async () => {
    // Root's file another user would have anyone read, and the directory of theirs it is reached by.
    const secret = join(root, "shadow");
    await fs.writeFile(secret, "root:x:\n", { mode: 0o600 });
    await fs.chmod(secret, 0o600);
    const theirs = join(root, "theirs");
    await fs.mkdir(theirs, { mode: 0o755 });
    await fs.symlink(secret, join(theirs, ".gitignore"));
    await fs.lchown(join(theirs, ".gitignore"), 4244, 4244);
    await fs.chown(theirs, 4244, 4244);
    // Their checkout (0755): only anyone's write is refused above the directory asked about.
    const checkout = join(root, "checkout");
    await fs.mkdir(checkout, { mode: 0o755 });
    await fs.chown(checkout, 4244, 4244);
    const target = join(checkout, "deployments");
    swap.to = theirs;
    swap.in = checkout;
    const error = await makePrivateDirectory(target, "--dir").then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(swap.to).toBeNull(); // it was swapped
    expect((await fs.stat(secret)).mode & 0o7777).toBe(0o600);
    // What ends up at the path is theirs (a link of theirs to their directory): refused.
    expect(error?.constructor.name).toBe("UsageError");
    expect(error?.message).toContain(`--dir ${target}: expected a directory owned by root or this user`);
    expect(error?.message).toContain("found one owned by uid 4244");
  });
});

describe("makePrivateDirectory: its temporary tree swapped for a link once the topmost .gitignore is made", () => {
  /** Their checkout (0755), their directory (0755) the link leads to, and the refusal of `app/deployments`. */
  async function swapped(): Promise<{ theirs: string; error: Error | null }> {
    const checkout = join(root, "checkout");
    const theirs = join(root, "theirs");
    for (const dir of [checkout, theirs]) {
      await fs.mkdir(dir, { recursive: true, mode: 0o755 });
      await fs.chown(dir, 4244, 4244);
    }
    swap.to = theirs;
    swap.in = checkout;
    const target = join(checkout, "app", "deployments");
    const error = await makePrivateDirectory(target, "--dir").then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(swap.to).toBeNull(); // it was swapped
    // What ends up at the path is theirs (a link of theirs to their directory): refused.
    expect(error?.constructor.name).toBe("UsageError");
    return { theirs, error };
  }

  it("makes nothing where it leads (the directories and .gitignore files below the topmost)", async () => {
    const { theirs } = await swapped();
    expect(await fs.readdir(theirs)).toEqual([]);
  });

  it("removes nothing where it leads (their .gitignore files, where it fails to make its own)", async () => {
    const theirs = join(root, "theirs");
    await fs.mkdir(join(theirs, "deployments"), { recursive: true });
    for (const file of [join(theirs, ".gitignore"), join(theirs, "deployments", ".gitignore")]) {
      await fs.writeFile(file, "theirs\n");
      await fs.chown(file, 4244, 4244);
    }
    await swapped();
    expect(await fs.readFile(join(theirs, ".gitignore"), "utf8")).toBe("theirs\n");
    expect(await fs.readFile(join(theirs, "deployments", ".gitignore"), "utf8")).toBe("theirs\n");
  });
});

describe("makePrivateDirectory: its temporary name taken again once the tree is in place", () => {
  it("removes nothing under it (what is there is no longer what it made)", async () => {
    const checkout = join(root, "checkout");
    await fs.mkdir(checkout, { mode: 0o755 });
    await fs.chown(checkout, 4244, 4244);
    const target = join(checkout, "deployments");
    reuse.file = "notes";
    await makePrivateDirectory(target, "--dir");
    expect(reuse.file).toBeNull(); // it was put there
    expect(await fs.readdir(target)).toEqual([".gitignore"]);
    const [theirs] = (await fs.readdir(checkout)).filter((name) => name.endsWith(".tmp"));
    expect(await fs.readdir(join(checkout, theirs ?? "none"))).toEqual(["notes"]);
  });
});
