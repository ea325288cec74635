/**
 * A node:fs/promises for a mock's factory whose open of one file, the first time, runs a swap right
 * after the real open returned (the handle already held): the swap made deterministic inside the
 * call under test, between its open and whatever it does next by name.
 */
import type { FileHandle } from "node:fs/promises";
import { fsWith } from "./foreign-link.ts";

type Fs = typeof import("node:fs/promises");

/** When to swap (swapAtFirstOpen): `by` runs once after the first open of `file`; `done` then true. */
export type OpenSwap = { file: string | null; done: boolean; by: (handle: FileHandle) => Promise<void> };

export function swapAtFirstOpen(real: Fs, swap: OpenSwap): Fs {
  const open = (async (path: string, ...rest: unknown[]) => {
    const handle = (await (real.open as (...args: unknown[]) => Promise<unknown>)(path, ...rest)) as FileHandle;
    if (path === swap.file && !swap.done) {
      swap.done = true;
      await swap.by(handle);
    }
    return handle;
  }) as Fs["open"];
  return fsWith(real, { open });
}
