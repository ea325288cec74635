/**
 * A trust file swapped between the path check and the read: the file rule (owner, who may write to
 * it) holds for what was read, the open file, not for the name checked before. The swap is made at
 * the check's look at the file (node:fs/promises' stat of it, wrapped here), by the owner of the
 * directory holding it (uid 4244: a directory above or holding the file may be another user's when
 * no one else can write to it, as a checkout another user made). Tests run as root.
 */
import { chown, lchown, mkdir, mkdtemp, realpath, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { readPolicyFile } from "../../client/cli/run-client.ts";
import { devPolicy } from "./helpers.ts";

/** The file whose first stat swaps it (set by a test), and what is put in its place. */
const swap = vi.hoisted(() => ({ file: null as string | null, done: false, by: async () => {} }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const stat = (async (path: string, ...rest: unknown[]) => {
    const info = await (real.stat as (...args: unknown[]) => Promise<unknown>)(path, ...rest);
    if (path === swap.file && !swap.done) {
      swap.done = true;
      await swap.by();
    }
    return info;
  }) as typeof real.stat;
  return { ...real, default: { ...real, stat }, stat };
});

let root: string;
beforeEach(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), "cloister-trust-swap-")));
});
afterEach(async () => {
  swap.file = null;
  swap.done = false;
  await rm(root, { recursive: true, force: true });
});

/** A checkout of uid 4244's (0755) holding a policy of root's (0644). */
async function checkout(): Promise<{ dir: string; file: string; policy: string }> {
  const dir = join(root, "checkout");
  await mkdir(dir, { mode: 0o755 });
  await chown(dir, 4244, 4244);
  const file = join(dir, "policy.json");
  const policy = JSON.stringify(await devPolicy());
  await writeFile(file, policy, { mode: 0o644 });
  return { dir, file, policy };
}

describe("--policy swapped after its check", () => {
  it("refuses the file read when another user's was put in its place after the check", async () => {
    const { dir, file, policy } = await checkout();
    swap.file = file;
    swap.by = async () => {
      // The directory's owner renames the checked file aside and puts their own in its place.
      await rename(file, join(dir, "checked.json"));
      await writeFile(file, policy, { mode: 0o644 });
      await chown(file, 4244, 4244);
    };
    const error = await readPolicyFile(file).then(
      () => new Error("expected a refusal"),
      (caught: unknown) => caught as Error,
    );
    expect(swap.done).toBe(true);
    expect(error.message).toBe(
      `--policy ${file}: expected a file owned by root or this user (uid 0), found one owned by uid 4244 (mode 0644): uid 4244 could rewrite it, and with it which enclaves this client trusts; chown root ${file}, or copy it to a file of this user's`,
    );
  });

  it("refuses another user's link put in the checked file's place after the check (the walk checked the links)", async () => {
    const { dir, file, policy } = await checkout();
    // Another policy of root's, which uid 4244 cannot write but may point a link at.
    const other = join(root, "other-policy.json");
    await writeFile(other, policy, { mode: 0o644 });
    swap.file = file;
    swap.by = async () => {
      await rename(file, join(dir, "checked.json"));
      await symlink(other, file);
      await lchown(file, 4244, 4244);
    };
    await expect(readPolicyFile(file)).rejects.toMatchObject({
      message: `--policy ${file}: changed while its path was checked (the file opened is not the one the check reached): it, or a link or directory on its path, was replaced in between (by an editor saving it anew, or by another user who owns a directory on its path); run again, and should it recur, move the file to a directory only this user may write to`,
    });
    expect(swap.done).toBe(true);
  });
});
