/**
 * For tests of a directory whose name is in another user's directory (root's `cloister up` in a
 * checkout of uid 4244's): that user's swaps, made inside an fs call of a mocked node:fs/promises
 * (`real` its original module: this file imports none, so a mock's factory may import it), and
 * their directories. Tests run as root.
 */
import { basename, join } from "node:path";

type Fs = typeof import("node:fs/promises");

/** The other user of these tests, owner of the checkout and of the directories links lead to. */
export const THEIR_UID = 4244;

/** Puts `dir` aside (`dir`-aside) and a link of theirs to `to` under its name. */
export async function swapForTheirLink(real: Fs, dir: string, to: string): Promise<void> {
  await real.rename(dir, `${dir}-aside`);
  await real.symlink(to, dir);
  await real.lchown(dir, THEIR_UID, THEIR_UID);
}

/** Removes the link swapForTheirLink put under `dir`'s name and puts `dir` back. */
export async function putBack(real: Fs, dir: string): Promise<void> {
  await real.unlink(dir);
  await real.rename(`${dir}-aside`, dir);
}

/** node:fs/promises `real` with `calls` in place of its own, as a mock's factory returns it. */
export function fsWith(real: Fs, calls: Partial<Fs>): Fs {
  return { ...real, ...calls, default: { ...real, ...calls } } as Fs;
}

/** When to swap (swapAtMkdir): `dir` is swapped for their link to `to` once; `to` null when done or not asked. */
export type Swap = { dir: string; to: string | null };

/**
 * node:fs/promises `real` whose mkdir of a directory named `name`, while `swap.to` is set, first
 * swaps `swap.dir` for their link to it (once: `swap.to` is then null), for a mock's factory: the swap
 * made deterministic inside the call under test.
 */
export function swapAtMkdir(real: Fs, name: string, swap: Swap): Fs {
  const mkdir = (async (file: string, options?: unknown) => {
    const to = swap.to;
    if (to !== null && basename(file) === name) {
      swap.to = null;
      await swapForTheirLink(real, swap.dir, to);
    }
    return real.mkdir(file, options as Parameters<Fs["mkdir"]>[1]);
  }) as Fs["mkdir"];
  return fsWith(real, { mkdir });
}

/** Makes each of `names` in `root`, mode 0755, theirs; their paths. */
export async function theirDirectories<const N extends readonly string[]>(
  fs: Fs,
  root: string,
  ...names: N
): Promise<{ [K in keyof N]: string }> {
  const made = names.map((name) => join(root, name));
  for (const dir of made) {
    await fs.mkdir(dir, { mode: 0o755 });
    await fs.chown(dir, THEIR_UID, THEIR_UID);
  }
  return made as { [K in keyof N]: string };
}
