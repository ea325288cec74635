/**
 * prepareDeployment (client/cli/deploy.ts writeWhole, `cloister up`) writes each file whole or not
 * at all: a write that fails midway (a full disk: the write puts half the text down, then fails
 * with ENOSPC, injected through node:fs/promises' open, mocked, on whichever handle is opened to
 * write the file: by its name or by a temporary name beside it) leaves the file an earlier run wrote
 * at its name, byte for byte, and a secret found missing absent (never half a key, which the next
 * run would find and refuse), and no temporary file. A file found at the name is never written to
 * nor chmod'ed (its inode keeps its text and mode), and every file has exactly its mode under umask
 * 002 and 077. A file to write whose lstat fails (EIO, injected through the mocked lstat) is refused
 * as a failed write is, by its path in --dir and its code (a UsageError, exit 2), the EIO its cause.
 * Tests run as root.
 */
import type { FileHandle } from "node:fs/promises";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { testDirectoryEach } from "../helpers/test-directory.ts";

/** The file (by its path in --dir) whose write puts half its text down and then fails, or null. */
const failing = vi.hoisted(() => ({ name: null as string | null, failed: 0 }));

/**
 * The secret (by its path in --dir) a file of someone's is put at as up opens it to write, or null
 * (once), and what that file holds (mode 0644).
 */
const race = vi.hoisted(() => ({ name: null as string | null, theirs: "ck_theirs\n" }));

/** The file (by its path in --dir) whose lstat fails with EIO (a failing disk), or null; the paths so refused. */
const unreadable = vi.hoisted(() => ({ name: null as string | null, refused: [] as string[] }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith } = await import("../helpers/foreign-link.ts");
  const { basename, dirname, join } = await import("node:path");
  const open = (async (path: string, flags: unknown, ...rest: unknown[]) => {
    const writing = typeof flags === "number" && (flags & real.constants.O_WRONLY) !== 0;
    const put = race.name;
    if (writing && put !== null && writesTo(String(path), put)) {
      race.name = null;
      const at = join(dirname(String(path)), basename(put));
      await real.writeFile(at, race.theirs, { mode: 0o644, flag: "wx" });
      await real.chmod(at, 0o644);
    }
    const handle = (await (real.open as (...args: unknown[]) => Promise<unknown>)(path, flags, ...rest)) as FileHandle;
    const name = failing.name;
    if (writing && name !== null && writesTo(String(path), name)) {
      handle.writeFile = async (data: unknown) => {
        const text = Buffer.from(String(data));
        await handle.write(text.subarray(0, text.length >> 1));
        failing.failed += 1;
        throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
      };
    }
    return handle;
  }) as typeof real.open;
  const lstat = (async (path: string, ...rest: unknown[]) => {
    const name = unreadable.name;
    if (name !== null && String(path).endsWith(`/${name}`)) {
      unreadable.refused.push(String(path));
      throw Object.assign(new Error(`EIO: i/o error, lstat '${String(path)}'`), { code: "EIO", path: String(path) });
    }
    return (real.lstat as (...args: unknown[]) => Promise<unknown>)(path, ...rest);
  }) as typeof real.lstat;
  return fsWith(real, { open, lstat });

  /** Whether `path` is `name` (in --dir) or a temporary file beside it named after it. */
  function writesTo(path: string, name: string): boolean {
    const inDir = (under: string) => path.endsWith(`/${under}`);
    const hidden = join(dirname(name), `.${basename(name)}.`).replace(/^\.\//, "");
    return inDir(name) || (path.includes(`/${hidden}`) && path.endsWith(".tmp"));
  }
});

const { prepareDeployment } = await import("../../client/cli/deploy.ts");
const { UsageError } = await import("../../client/cli/output.ts");

let root: string;
testDirectoryEach("cloister-up-atomic-", (dir) => {
  root = dir;
});
afterEach(() => {
  failing.name = null;
  failing.failed = 0;
  race.name = null;
  unreadable.name = null;
  unreadable.refused = [];
});

/** The files up writes again on each run, by their path in --dir. */
const WRITTEN_AGAIN = [
  "operator.public.jwk",
  "manifest.jws",
  "api-keys.json",
  "policy.json",
  "kbs/release-policy.json",
  "kbs/config.json",
];

/** The secrets up makes when found missing, by their path in --dir. */
const SECRETS = ["operator.private.jwk", "api-key", "kbs/model-key.jwk"];

/** A sealed-model deployment in `dir`: null once prepared, else its refusal's message. */
async function prepare(dir: string): Promise<string | null> {
  const options = { dir, tee: "sim-snp" as const, threads: 1, progress: () => {}, sealedModel: true };
  return prepareDeployment(options).then(
    () => null,
    (error: Error) => error.message,
  );
}

/** Every name in `dir` and kbs/ that is a temporary file of a write (`.NAME.HEX.tmp`). */
async function temporaries(dir: string): Promise<string[]> {
  const kbs = await fs.readdir(join(dir, "kbs")).catch(() => [] as string[]); // made after the operator key
  const names = [...(await fs.readdir(dir)), ...kbs.map((name) => `kbs/${name}`)];
  return names.filter((name) => /\.tmp$/.test(name));
}

describe("prepareDeployment: a write that fails midway (a full disk)", () => {
  for (const name of WRITTEN_AGAIN) {
    it(`leaves ${name} of the earlier run at its name, byte for byte, and no temporary file`, async () => {
      const dir = join(root, "deployment");
      expect(await prepare(dir)).toBeNull();
      const earlier = await fs.readFile(join(dir, name));
      failing.name = name;
      const refused = await prepare(dir);
      expect(failing.failed).toBe(1);
      expect(refused).toBe(`cloister up: file to write ${join(dir, name)}: cannot write (ENOSPC)`);
      expect(await fs.readFile(join(dir, name))).toEqual(earlier);
      expect(await temporaries(dir)).toEqual([]);
    });
  }

  for (const name of SECRETS) {
    it(`leaves no ${name} (found missing) at its name, and no temporary file: the next run makes it`, async () => {
      const dir = join(root, "deployment");
      failing.name = name;
      const refused = await prepare(dir);
      expect(failing.failed).toBe(1);
      expect(refused).toBe(`cloister up: file to write ${join(dir, name)}: cannot write (ENOSPC)`);
      await expect(fs.lstat(join(dir, name))).rejects.toThrow(/ENOENT/);
      expect(await temporaries(dir)).toEqual([]);
      failing.name = null;
      expect(await prepare(dir)).toBeNull();
      expect((await fs.stat(join(dir, name))).mode & 0o7777).toBe(0o600);
    });
  }
});

describe("prepareDeployment: a file to write whose lstat fails (EIO)", () => {
  for (const name of WRITTEN_AGAIN) {
    it(`refuses ${name} by its path in --dir and its code (exit 2), the error its cause`, async () => {
      const dir = join(root, "deployment");
      expect(await prepare(dir)).toBeNull();
      const earlier = await fs.readFile(join(dir, name));
      unreadable.name = name;
      const options = { dir, tee: "sim-snp" as const, threads: 1, progress: () => {}, sealedModel: true };
      const refused: unknown = await prepareDeployment(options).then(
        () => null,
        (error: unknown) => error,
      );
      expect(unreadable.refused).toHaveLength(1);
      expect(refused).toBeInstanceOf(UsageError);
      expect((refused as Error).message).toBe(`cloister up: file to write ${join(dir, name)}: cannot write (EIO)`);
      expect(((refused as Error).cause as NodeJS.ErrnoException).code).toBe("EIO");
      expect(await fs.readFile(join(dir, name))).toEqual(earlier);
      expect(await temporaries(dir)).toEqual([]);
    });
  }
});

describe("prepareDeployment: a secret's name taken once up found it missing", () => {
  for (const name of SECRETS) {
    it(`refuses ${name} and leaves the file put there as it was (never replaced)`, async () => {
      const dir = join(root, "deployment");
      race.name = name;
      const refused = await prepare(dir);
      expect(race.name).toBeNull(); // it was put there
      expect(refused).toBe(
        `cloister up: file to write ${join(dir, name)}: expected none (it was missing a moment before), found one put there meanwhile (a file or a link)`,
      );
      expect(await fs.readFile(join(dir, name), "utf8")).toBe(race.theirs);
      expect((await fs.stat(join(dir, name))).mode & 0o7777).toBe(0o644);
      expect(await temporaries(dir)).toEqual([]);
    });
  }
});

describe.each([
  { umask: 0o002, shown: "002" },
  { umask: 0o077, shown: "077" },
])("prepareDeployment under umask $shown", ({ umask }) => {
  it("writes each file with exactly its mode, and never chmods nor writes a file found at its name", async () => {
    const dir = join(root, "deployment");
    expect(await prepare(dir)).toBeNull();
    // An earlier file at each name written again, with another mode (0664: an old run under umask 002).
    const earlier: { name: string; handle: FileHandle; text: string }[] = [];
    try {
      for (const name of WRITTEN_AGAIN) {
        await fs.chmod(join(dir, name), 0o664);
        const handle = await fs.open(join(dir, name), "r");
        earlier.push({ name, handle, text: await fs.readFile(join(dir, name), "utf8") });
      }
      const previous = process.umask(umask);
      try {
        expect(await prepare(dir)).toBeNull();
      } finally {
        process.umask(previous);
      }
      for (const { name, handle, text } of earlier) {
        expect({ name, mode: (await handle.stat()).mode & 0o7777 }).toEqual({ name, mode: 0o664 });
        expect(await handle.readFile({ encoding: "utf8" })).toBe(text);
        expect({ name, mode: (await fs.stat(join(dir, name))).mode & 0o7777 }).toEqual({ name, mode: 0o644 });
      }
    } finally {
      for (const { handle } of earlier) await handle.close();
    }
    for (const name of SECRETS) {
      expect({ name, mode: (await fs.stat(join(dir, name))).mode & 0o7777 }).toEqual({ name, mode: 0o600 });
    }
    expect(await temporaries(dir)).toEqual([]);
  });
});
