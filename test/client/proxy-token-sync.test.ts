/**
 * The proxy's token file (client/cli/run-proxy.ts localToken) is written as every other secret of
 * the command line is (output.ts writeFileAtomically): its content fsync'ed before it is linked into
 * place, then its directory, so that a token handed to an app survives a power loss; a sync that
 * fails leaves no token file and no temporary one, and is the refusal's cause. The syncs are seen
 * through node:fs/promises' open, mocked: each handle's sync records the path it was opened by.
 */
import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { localToken } from "../../client/cli/run-proxy.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

/** Each sync: the path its handle was opened by, and whether the token file was at its name then. */
const syncing = vi.hoisted(() => ({
  syncs: [] as { path: string; linked: boolean }[],
  token: "",
  fails: null as Error | null,
}));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith } = await import("../helpers/foreign-link.ts");
  const open = (async (...args: Parameters<typeof real.open>) => {
    const handle = await real.open(...args);
    const path = String(args[0]);
    const sync = handle.sync.bind(handle);
    handle.sync = async () => {
      const linked = await real.access(syncing.token).then(
        () => true,
        () => false,
      );
      syncing.syncs.push({ path, linked });
      if (syncing.fails !== null) throw syncing.fails;
      return sync();
    };
    return handle;
  }) as typeof real.open;
  return fsWith(real, { open });
});

let dir = "";
testDirectoryEach("cloister-proxy-token-sync-", (made) => {
  dir = made;
});

afterEach(() => {
  syncing.syncs = [];
  syncing.fails = null;
});

describe("localToken: the token file made", () => {
  it("is synced before it is linked into place, then its directory", async () => {
    const file = join(dir, "proxy-token");
    syncing.token = file;
    const { token, created } = await localToken(file);
    expect(created).toBe(true);
    expect(await readFile(file, "utf8")).toBe(`${token}\n`);
    expect(syncing.syncs).toHaveLength(2);
    const [content, directory] = syncing.syncs;
    expect(basename(content?.path ?? "")).toMatch(/^\.proxy-token\.[0-9a-f]{12}\.tmp$/);
    expect(content?.linked).toBe(false);
    expect(directory).toEqual({ path: dir, linked: true });
    expect(await readdir(dir)).toEqual(["proxy-token"]);
  });

  it("is not left (nor its temporary file) when a sync fails: the refusal names --token-file, its cause the error", async () => {
    const file = join(dir, "proxy-token");
    syncing.token = file;
    const failure = Object.assign(new Error("EIO: failed, fsync"), { code: "EIO" });
    syncing.fails = failure;
    const error = await localToken(file).then(
      () => null,
      (thrown: unknown) => thrown as Error & { code: string; cause: unknown },
    );
    expect(error?.code).toBe("USAGE");
    expect(error?.message).toBe(`--token-file ${file}: cannot create (EIO)`);
    expect(error?.cause).toBe(failure);
    expect(await readdir(dir)).toEqual([]);
  });
});
