/**
 * makePrivateDirectory (client/cli/private-directory.ts) writes each `.gitignore` of the tree it
 * makes through a handle (writeIgnore). A chmod or write that fails, its close failing too, is the
 * refusal's cause and named in its message, never the close's error (output.ts closingAfter, as
 * writeFileAtomically); a close that fails after a good write is a failure too (the file is not known
 * to be on disk). Either way the `.gitignore` made is removed again, and with it the temporary tree:
 * nothing is left beside the directory asked for. The handle's chmod and writeFile are spied on
 * through FileHandle's prototype; its close (a field of each handle) through node:fs/promises' open,
 * mocked, for `.gitignore` files only.
 */
import { type FileHandle, open, readdir } from "node:fs/promises";
import { basename, join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { makePrivateDirectory } from "../../client/cli/private-directory.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

/** The error a `.gitignore`'s close is to throw (after closing), or null. */
const closing = vi.hoisted(() => ({ fails: null as Error | null }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith } = await import("../helpers/foreign-link.ts");
  const open = (async (...args: Parameters<typeof real.open>) => {
    const handle = await real.open(...args);
    if (basename(String(args[0])) !== ".gitignore") return handle;
    const close = handle.close.bind(handle);
    handle.close = async () => {
      await close();
      if (closing.fails !== null) throw closing.fails;
    };
    return handle;
  }) as typeof real.open;
  return fsWith(real, { open });
});

let dir = "";
testDirectoryEach("cloister-private-ignore-close-", (made) => {
  dir = made;
});

/** FileHandle's prototype (node:fs/promises does not export the class): that of a handle opened. */
const handleProto: FileHandle = await (async () => {
  const handle = await open(__filename, "r");
  await handle.close();
  return Object.getPrototypeOf(handle) as FileHandle;
})();

afterEach(() => {
  vi.restoreAllMocks();
  closing.fails = null;
});

const errno = (code: string, call: string) => Object.assign(new Error(`${code}: failed, ${call}`), { code });

/** makePrivateDirectory's refusal of DIR/private, and what is left in DIR. */
async function refusal(): Promise<{ error: Error & { code?: string; cause?: unknown }; left: string[] }> {
  const target = join(dir, "private");
  const error = await makePrivateDirectory(target, "--dir").then(
    () => null,
    (thrown: unknown) => thrown as Error,
  );
  expect(error).not.toBeNull();
  return { error: error as Error, left: await readdir(dir) };
}

describe("makePrivateDirectory: a .gitignore whose close fails", () => {
  it("after a failed write keeps the write's error (message and cause), and leaves nothing", async () => {
    const write = errno("ENOSPC", "write");
    vi.spyOn(handleProto, "writeFile").mockRejectedValue(write);
    closing.fails = errno("EIO", "close");
    const { error, left } = await refusal();
    expect(error.code).toBe("USAGE");
    expect(error.message).toContain(`--dir ${join(dir, "private")}: cannot create its .gitignore (ENOSPC`);
    expect(error.message).not.toContain("EIO");
    expect(error.cause).toBe(write);
    expect(left).toEqual([]);
  });

  it("after a failed chmod keeps the chmod's error, and leaves nothing", async () => {
    const chmod = errno("EPERM", "fchmod");
    vi.spyOn(handleProto, "chmod").mockRejectedValue(chmod);
    closing.fails = errno("EIO", "close");
    const { error, left } = await refusal();
    expect(error.cause).toBe(chmod);
    expect(error.message).not.toContain("EIO");
    expect(left).toEqual([]);
  });

  it("after a good write is the refusal (not known to be on disk), and leaves nothing", async () => {
    const close = errno("EIO", "close");
    closing.fails = close;
    const { error, left } = await refusal();
    expect(error.message).toContain(`--dir ${join(dir, "private")}: cannot create its .gitignore (EIO`);
    expect(error.cause).toBe(close);
    expect(left).toEqual([]);
  });
});
