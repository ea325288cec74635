/**
 * writeOutputFiles (attest --evidence-out's writer) with its collateral folder swapped for a link
 * by whoever may write to DIR, inside the call: right after the folder is made (mkdir), and right
 * after it is opened to be written in. Writes by name would follow the link to any directory; the
 * folder is held open (O_NOFOLLOW) and written in through /proc/self/fd/N, so nothing of this run
 * lands where the link leads. The swaps are made in a mocked node:fs/promises, deterministically;
 * so is an fstat of the folder opened that fails (refused as USAGE naming it, the handle closed).
 */
import { type FileHandle, lstat, mkdir, readdir, readFile, symlink } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { writeOutputFiles } from "../../client/cli/run-client.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

/** The path whose mkdir (`after: "mkdir"`) or first open (`"open"`) puts it aside and a link to `to` in its place. */
const swap = vi.hoisted(() => ({
  path: null as string | null,
  after: "mkdir" as "mkdir" | "open",
  to: "",
  done: false,
}));
/** A path whose handles' fstat fails (ESTALE), and whether each handle opened on it was closed. */
const statFails = vi.hoisted(() => ({ path: null as string | null, closed: [] as boolean[] }));
/** A path whose open fails (EMFILE) though a directory is there. */
const openFails = vi.hoisted(() => ({ path: null as string | null }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const swapNow = async (path: string, after: "mkdir" | "open") => {
    if (swap.done || path !== swap.path || swap.after !== after) return;
    swap.done = true;
    await real.rename(path, `${path}-aside`);
    await real.symlink(swap.to, path);
  };
  const mkdirSwapped = (async (path: string, ...rest: unknown[]) => {
    const made = await (real.mkdir as (...args: unknown[]) => Promise<unknown>)(path, ...rest);
    await swapNow(path, "mkdir");
    return made;
  }) as typeof real.mkdir;
  const openSwapped = (async (path: string, ...rest: unknown[]) => {
    if (path === openFails.path) {
      throw Object.assign(new Error("EMFILE: too many open files, open"), { code: "EMFILE" });
    }
    const handle = (await (real.open as (...args: unknown[]) => Promise<unknown>)(path, ...rest)) as FileHandle;
    await swapNow(path, "open");
    if (path === statFails.path) {
      const index = statFails.closed.push(false) - 1;
      const close = handle.close.bind(handle);
      handle.close = async () => {
        statFails.closed[index] = true;
        await close();
      };
      handle.stat = (async () => {
        throw Object.assign(new Error("ESTALE: stale file handle, fstat"), { code: "ESTALE" });
      }) as FileHandle["stat"];
    }
    return handle;
  }) as typeof real.open;
  const calls = { mkdir: mkdirSwapped, open: openSwapped };
  return { ...real, ...calls, default: { ...real, ...calls } };
});

let dir = "";
testDirectoryEach("cloister-evidence-out-swap-", (made) => {
  dir = made;
});

afterEach(() => {
  swap.path = null;
  swap.done = false;
  statFails.path = null;
  statFails.closed.length = 0;
  openFails.path = null;
});

/** attest --evidence-out's outputs for a TDX quote with collateral, into DIR. */
function outputs(): Parameters<typeof writeOutputFiles>[0] {
  const option = "--evidence-out";
  return [
    { file: join(dir, "evidence", "quote.bin"), content: "quote\n", option },
    { directory: join(dir, "evidence", "collateral"), option },
    { file: join(dir, "evidence", "collateral", "tcbinfo-tdx.json"), content: "tcb info\n", option },
    { file: join(dir, "evidence", "collateral", "crl-1.der"), content: "crl\n", option },
  ];
}

describe("writeOutputFiles: the collateral folder swapped for a link while it is written", () => {
  it("swapped right after it is made: refused, nothing written where the link leads, none of this run's files left", async () => {
    await mkdir(join(dir, "evidence"));
    const elsewhere = join(dir, "elsewhere");
    await mkdir(elsewhere);
    Object.assign(swap, { path: join(dir, "evidence", "collateral"), after: "mkdir", to: elsewhere });
    await expect(writeOutputFiles(outputs(), "refuse")).rejects.toThrow(
      `--evidence-out ${join(dir, "evidence", "collateral")}: expected a directory, found a symbolic link`,
    );
    expect(swap.done).toBe(true);
    expect(await readdir(elsewhere)).toEqual([]);
    // The link is whoever put it there's; the quote written before it is removed again (all or none).
    expect((await readdir(join(dir, "evidence"))).sort()).toEqual(["collateral", "collateral-aside"]);
    expect(await readdir(join(dir, "evidence", "collateral-aside"))).toEqual([]);
  });

  it("swapped right after it is opened: its files land in the folder opened, none where the link leads", async () => {
    await mkdir(join(dir, "evidence"));
    const elsewhere = join(dir, "elsewhere");
    await mkdir(elsewhere);
    Object.assign(swap, { path: join(dir, "evidence", "collateral"), after: "open", to: elsewhere });
    await writeOutputFiles(outputs(), "refuse");
    expect(swap.done).toBe(true);
    expect((await lstat(join(dir, "evidence", "collateral"))).isSymbolicLink()).toBe(true);
    expect(await readdir(elsewhere)).toEqual([]);
    const aside = join(dir, "evidence", "collateral-aside");
    expect((await readdir(aside)).sort()).toEqual(["crl-1.der", "tcbinfo-tdx.json"]);
    expect(await readFile(join(aside, "tcbinfo-tdx.json"), "utf8")).toBe("tcb info\n");
  });

  it("with --force, swapped right after it is made: refused, nothing where the link leads; the quote written stays", async () => {
    await mkdir(join(dir, "evidence"));
    const elsewhere = join(dir, "elsewhere");
    await mkdir(elsewhere);
    Object.assign(swap, { path: join(dir, "evidence", "collateral"), after: "mkdir", to: elsewhere });
    await expect(writeOutputFiles(outputs(), "replace")).rejects.toThrow(
      `--evidence-out ${join(dir, "evidence", "collateral")}: expected a directory, found a symbolic link`,
    );
    expect(await readdir(elsewhere)).toEqual([]);
    // Not all or none under --force (docs/platforms.md): what it replaced before the failure stays.
    expect(await readFile(join(dir, "evidence", "quote.bin"), "utf8")).toBe("quote\n");
  });

  it("an existing folder taken with --force: written in, a link at a file's name replaced, never followed", async () => {
    await mkdir(join(dir, "evidence", "collateral"), { recursive: true });
    await symlink("nowhere", join(dir, "evidence", "collateral", "crl-1.der"));
    await writeOutputFiles(outputs(), "replace");
    // The link replaced (renamed over), never followed.
    expect(await readFile(join(dir, "evidence", "collateral", "crl-1.der"), "utf8")).toBe("crl\n");
    expect((await readdir(join(dir, "evidence", "collateral"))).sort()).toEqual(["crl-1.der", "tcbinfo-tdx.json"]);
  });

  it("its status unreadable once opened (fstat: ESTALE): refused naming it, the handle closed, none of this run's files left", async () => {
    await mkdir(join(dir, "evidence"));
    statFails.path = join(dir, "evidence", "collateral");
    await expect(writeOutputFiles(outputs(), "refuse")).rejects.toThrow(
      `--evidence-out ${join(dir, "evidence", "collateral")}: cannot check it (ESTALE`,
    );
    expect(statFails.closed).toEqual([true]);
    expect(await readdir(join(dir, "evidence"))).toEqual([]);
  });

  it("a directory there that will not open (EMFILE): refused with its error, not as something other than a directory", async () => {
    await mkdir(join(dir, "evidence"));
    openFails.path = join(dir, "evidence", "collateral");
    const refused = writeOutputFiles(outputs(), "refuse");
    await expect(refused).rejects.toThrow(
      `--evidence-out ${join(dir, "evidence", "collateral")}: cannot open it (EMFILE`,
    );
    await expect(refused).rejects.not.toThrow("found a directory");
    expect(await readdir(join(dir, "evidence"))).toEqual([]);
  });
});
