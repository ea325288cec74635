/**
 * The atomic output writer on a file system without hard links (FAT, exFAT, some network mounts):
 * `link` fails with EPERM there, and the writer copies instead, with the same guarantee that an
 * existing file is never replaced (COPYFILE_EXCL). `link` is made to fail as it does on such a file
 * system; everything else is the real file system. And its durability: the fsyncs, in order.
 */
import { link, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { testDirectory } from "../helpers/test-directory.ts";

/** The file system calls that make the write durable, in order (a sync names the file or directory synced). */
const calls: string[] = [];
/** The temporary names in the directory when it was last fsync'ed (a power loss keeps them). */
let leftAtDirectorySync: string[] = [];
/** Whether `link` works (false: it fails with EPERM, as on a file system without hard links). */
let linksWork = false;
/** The name (basename) whose fsync fails with EIO, as a failing disk's does; null: none fails. */
let failingSync: string | null = null;

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...real,
    link: vi.fn(async (...args: Parameters<typeof real.link>) => {
      if (!linksWork) throw Object.assign(new Error("EPERM: operation not permitted, link"), { code: "EPERM" });
      calls.push("link");
      return real.link(...args);
    }),
    open: vi.fn(async (...args: Parameters<typeof real.open>) => {
      const handle = await real.open(...args);
      const sync = handle.sync.bind(handle);
      handle.sync = async () => {
        calls.push(`sync ${basename(String(args[0]))}`);
        if (basename(String(args[0])) === failingSync) {
          throw Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" });
        }
        if ((await real.stat(String(args[0]))).isDirectory()) {
          leftAtDirectorySync = (await real.readdir(String(args[0]))).filter((n) => n.endsWith(".tmp"));
        }
        return sync();
      };
      return handle;
    }),
    rename: vi.fn(async (...args: Parameters<typeof real.rename>) => {
      calls.push("rename");
      return real.rename(...args);
    }),
  };
});

const { writeFileAtomically } = await import("../../client/cli/output.ts");

const dir = await testDirectory("cloister-copy-fallback-");

const errors = {
  exists: () => new Error("exists"),
  noDirectory: () => new Error("no directory"),
  failed: (cause: unknown) => new Error(`failed ${(cause as NodeJS.ErrnoException).code}`),
};

describe("writeFileAtomically without hard links", () => {
  it("copies the file into place, with its mode, and still never replaces an existing one", async () => {
    linksWork = false;
    const file = join(dir, "key.jwk");
    await writeFileAtomically(file, "first\n", { mode: 0o600, replace: false }, errors);
    expect(await readFile(file, "utf8")).toBe("first\n");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    await expect(writeFileAtomically(file, "second\n", { mode: 0o600, replace: false }, errors)).rejects.toThrow(
      "exists",
    );
    expect(await readFile(file, "utf8")).toBe("first\n");
    // No temporary file is left beside it; and the link was tried (and failed) each time.
    expect(await readdir(dir)).toEqual(["key.jwk"]);
    expect(vi.mocked(link)).toHaveBeenCalledTimes(2);
  });

  it("replaces only when asked (rename needs no link)", async () => {
    linksWork = false;
    const file = join(dir, "policy.json");
    await writeFile(file, "old\n");
    await writeFileAtomically(file, "new\n", { mode: 0o644, replace: true }, errors);
    expect(await readFile(file, "utf8")).toBe("new\n");
  });
});

/**
 * Durable (`policy init --force`, the manifest commands' outputs, the host's audit `.key` hints):
 * the temporary file is fsync'ed before it is linked or renamed into place, and the directory
 * after, so a power loss right after the write leaves the old file or the new one, whole.
 */
describe("writeFileAtomically fsyncs the file before it is in place, and the directory after", () => {
  for (const replace of [false, true]) {
    it(replace ? "renamed over the old one (--force)" : "linked into place", async () => {
      linksWork = true;
      const name = replace ? "replaced.json" : "new.json";
      const file = join(dir, name);
      if (replace) await writeFile(file, "old\n");
      calls.length = 0;
      await writeFileAtomically(file, "new\n", { mode: 0o600, replace }, errors);
      expect(calls).toEqual([
        expect.stringMatching(new RegExp(`^sync \\.${name.replace(".", "\\.")}\\.[0-9a-f]{12}\\.tmp$`)),
        replace ? "rename" : "link",
        `sync ${basename(dir)}`,
      ]);
      expect(await readFile(file, "utf8")).toBe("new\n");
      expect((await stat(file)).mode & 0o777).toBe(0o600);
    });
  }

  it("leaves no temporary name in the directory it fsyncs, linked, copied or renamed", async () => {
    for (const [links, replace] of [
      [true, false],
      [false, false],
      [true, true],
    ] as const) {
      linksWork = links;
      leftAtDirectorySync = ["not synced"];
      await writeFileAtomically(join(dir, `tmp-${links}-${replace}.json`), "new\n", { mode: 0o600, replace }, errors);
      expect(leftAtDirectorySync, `links ${links}, replace ${replace}`).toEqual([]);
    }
  });

  it("copied into place (no hard links): the copy fsync'ed before the directory", async () => {
    linksWork = false;
    const file = join(dir, "copied.json");
    calls.length = 0;
    await writeFileAtomically(file, "new\n", { mode: 0o600, replace: false }, errors);
    expect(calls).toEqual([
      expect.stringMatching(/^sync \.copied\.json\.[0-9a-f]{12}\.tmp$/),
      "sync copied.json",
      `sync ${basename(dir)}`,
    ]);
    expect(await readFile(file, "utf8")).toBe("new\n");
  });
});

/**
 * A failure once the new file is in place (linked or copied: the fsync of the copy or of the
 * directory fails) leaves nothing behind: the file this call created is removed, so that a retry
 * does not find it ("exists"). A file that was there before is never touched.
 */
describe("writeFileAtomically: a failure after the file is in place leaves nothing behind", () => {
  afterAll(() => {
    failingSync = null;
  });

  for (const links of [true, false]) {
    it(links ? "linked, then the directory's fsync fails" : "copied, then the copy's fsync fails", async () => {
      linksWork = links;
      const name = links ? "linked-unsynced.json" : "copied-unsynced.json";
      const file = join(dir, name);
      failingSync = links ? basename(dir) : name;
      await expect(writeFileAtomically(file, "new\n", { mode: 0o600, replace: false }, errors)).rejects.toThrow(
        "failed EIO",
      );
      expect((await readdir(dir)).filter((n) => n.includes(name))).toEqual([]);
      // The retry, the disk well again, writes it.
      failingSync = null;
      await writeFileAtomically(file, "new\n", { mode: 0o600, replace: false }, errors);
      expect(await readFile(file, "utf8")).toBe("new\n");
    });
  }

  it("never removes a file that was there before (link refused with EEXIST)", async () => {
    linksWork = true;
    const file = join(dir, "there-before.json");
    await writeFile(file, "old\n");
    failingSync = basename(dir);
    await expect(writeFileAtomically(file, "new\n", { mode: 0o600, replace: false }, errors)).rejects.toThrow("exists");
    expect(await readFile(file, "utf8")).toBe("old\n");
    failingSync = null;
  });

  it("replacing: a failed directory fsync leaves the new file in place, as said (a retry replaces it again)", async () => {
    linksWork = true;
    const file = join(dir, "replaced-unsynced.json");
    await writeFile(file, "old\n");
    failingSync = basename(dir);
    await expect(writeFileAtomically(file, "new\n", { mode: 0o600, replace: true }, errors)).rejects.toThrow(
      "failed EIO",
    );
    expect(await readFile(file, "utf8")).toBe("new\n");
    expect((await readdir(dir)).filter((n) => n.endsWith(".tmp"))).toEqual([]);
    failingSync = null;
  });
});
