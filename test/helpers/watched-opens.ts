/**
 * A node:fs/promises for a mock's factory that watches how a model file is opened (models/hash.ts
 * openModelInput and its callers): every open made (its path, its flags, and whether the handle it
 * gave was closed), a step run on a path right after its stat returned (a name swapped between that
 * stat and the open, made deterministic inside the call under test), and the paths whose handle's
 * fstat fails (EIO), or, given `readFails`, whose handle's reads fail (EIO), or, given `closeFails`,
 * whose handle's close closes, then fails (EBADF), as a close whose descriptor went bad would. `real`
 * is the original module: this file imports none, so a mock's factory may import it.
 */
import type { FileHandle } from "node:fs/promises";
import { fsWith } from "./foreign-link.ts";

type Fs = typeof import("node:fs/promises");

/** What watchOpens records and acts on; made by the test (vi.hoisted), cleared by clearOpenWatch. */
export interface OpenWatch {
  readonly opens: { path: string; flags: unknown; closed: boolean }[];
  readonly afterStat: Map<string, () => Promise<void>>;
  readonly fstatFails: Set<string>;
  readonly readFails?: Set<string>;
  readonly closeFails?: Set<string>;
}

/** `real` whose open and stat report to, and act as, `watch` says. */
export function watchOpens(real: Fs, watch: OpenWatch): Fs {
  const open = (async (path: string, flags?: unknown, mode?: unknown) => {
    const opened = { path: String(path), flags, closed: false };
    watch.opens.push(opened);
    const handle = (await (real.open as (...args: unknown[]) => Promise<unknown>)(path, flags, mode)) as FileHandle;
    const close = handle.close.bind(handle);
    handle.close = async () => {
      opened.closed = true;
      await close();
      if (watch.closeFails?.has(opened.path)) {
        throw Object.assign(new Error("EBADF: bad file descriptor, close (a stand-in)"), { code: "EBADF" });
      }
    };
    if (watch.fstatFails.has(opened.path)) {
      handle.stat = (async () => {
        throw Object.assign(new Error("EIO: i/o error, fstat"), { code: "EIO" });
      }) as FileHandle["stat"];
    }
    if (watch.readFails?.has(opened.path)) {
      handle.read = (async () => {
        throw Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" });
      }) as FileHandle["read"];
    }
    return handle;
  }) as Fs["open"];
  const stat = (async (path: string, ...rest: unknown[]) => {
    const info = await (real.stat as (...args: unknown[]) => Promise<unknown>)(path, ...rest);
    const after = watch.afterStat.get(String(path));
    watch.afterStat.delete(String(path));
    await after?.();
    return info;
  }) as Fs["stat"];
  return fsWith(real, { open, stat });
}

/** Forgets what `watch` recorded and was asked to do (a test's afterEach). */
export function clearOpenWatch(watch: OpenWatch): void {
  watch.opens.length = 0;
  watch.afterStat.clear();
  watch.fstatFails.clear();
  watch.readFails?.clear();
  watch.closeFails?.clear();
}
