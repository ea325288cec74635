/**
 * The `.gitignore` the proxy writes into a directory it makes for its token: when it cannot be
 * written, the refusal names it (not the token file), keeps the file system's error, and the
 * directory goes again, so the next start does not take it for the user's and leave the token in it
 * unguarded.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const failing: {
  gitignore: boolean;
  /** The token's own file (its temporary name, `.proxy-token.<hex>.tmp`) cannot be opened: EACCES. */
  token?: boolean;
  held?: Promise<void>;
  /** Runs instead of (or before, when it returns) the making of a temporary directory (`….tmp`). */
  temporary?: (path: string) => Promise<void>;
} = { gitignore: false };

/** Fails the creation of a .gitignore (by writeFile or open) while `failing.gitignore`. */
async function gitignoreFailure(path: unknown): Promise<void> {
  if (failing.gitignore && String(path).endsWith(".gitignore")) {
    // The next .gitignore's failure waits for `held` (a concurrent start meanwhile); later ones are written.
    const held = failing.held;
    if (held !== undefined) {
      failing.gitignore = false;
      await held;
    }
    throw Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
  }
}

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...real,
    writeFile: (async (path: Parameters<typeof real.writeFile>[0], ...rest: unknown[]) => {
      await gitignoreFailure(path);
      return (real.writeFile as (...args: unknown[]) => Promise<void>)(path, ...rest);
    }) as typeof real.writeFile,
    open: (async (path: Parameters<typeof real.open>[0], ...rest: unknown[]) => {
      if (failing.token === true && /proxy-token\.[0-9a-f]+\.tmp$/.test(String(path))) {
        throw Object.assign(new Error("permission denied"), { code: "EACCES" });
      }
      await gitignoreFailure(path);
      return (real.open as (...args: unknown[]) => ReturnType<typeof real.open>)(path, ...rest);
    }) as typeof real.open,
    mkdir: (async (path: Parameters<typeof real.mkdir>[0], ...rest: unknown[]) => {
      const hook = failing.temporary;
      if (hook !== undefined && String(path).endsWith(".tmp")) {
        delete failing.temporary;
        await hook(String(path));
      }
      return (real.mkdir as (...args: unknown[]) => Promise<string | undefined>)(path, ...rest);
    }) as typeof real.mkdir,
  };
});

const { localToken } = await import("../../client/cli/run-proxy.ts");
const { makePrivateDirectory } = await import("../../client/cli/private-directory.ts");

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-token-git-"));
});
afterEach(async () => {
  failing.gitignore = false;
  delete failing.token;
  delete failing.held;
  delete failing.temporary;
  await rm(dir, { recursive: true, force: true });
});

describe("localToken's .gitignore", () => {
  it("names the .gitignore it could not write, keeps the cause, and removes the directory it made", async () => {
    failing.gitignore = true;
    const made = join(dir, "app", ".cloister");
    const error = await localToken(join(made, "proxy-token")).then(
      () => null,
      (e: unknown) => e as Error,
    );
    // mkdir makes app/ and app/.cloister/: the .gitignore goes into the first it made.
    expect(error?.message).toBe(`--token-file ${join(dir, "app")}: cannot create its .gitignore (ENOSPC)`);
    expect((error?.cause as { code?: string } | undefined)?.code).toBe("ENOSPC");
    await expect(stat(join(dir, "app"))).rejects.toMatchObject({ code: "ENOENT" });

    // The next start makes the directory again, with its .gitignore.
    failing.gitignore = false;
    expect((await localToken(join(made, "proxy-token"))).created).toBe(true);
    expect((await stat(join(dir, "app", ".gitignore"))).isFile()).toBe(true);
  });

  it("a start that fails its .gitignore never removes the token a concurrent start put in the directory", async () => {
    const file = join(dir, "app", ".cloister", "proxy-token");
    let release = () => {};
    failing.held = new Promise<void>((resolve) => {
      release = resolve;
    });
    failing.gitignore = true;
    const first = localToken(file).then(
      () => null,
      (e: unknown) => e as Error,
    );
    // The first start's .gitignore is under way: its directory is not in place yet (it appears with
    // its .gitignore or not at all), so the second makes its own, with its .gitignore, and its token.
    await vi.waitFor(() => expect(failing.gitignore).toBe(false));
    await expect(stat(join(dir, "app"))).rejects.toMatchObject({ code: "ENOENT" });
    const second = await localToken(file);
    expect(second.created).toBe(true);
    release();
    expect((await first)?.message).toBe(`--token-file ${join(dir, "app")}: cannot create its .gitignore (ENOSPC)`);
    // The second start's token, and only its directories, are there still.
    expect((await readFile(file, "utf8")).trim()).toBe(second.token);
    expect((await readdir(dir)).sort()).toEqual(["app"]);
    expect((await stat(join(dir, "app", ".gitignore"))).isFile()).toBe(true);
  });
});

describe("makePrivateDirectory (cloister up's --dir, the proxy's token directory)", () => {
  it("gives each directory it makes a .gitignore of *, 0644, and none to one that exists", async () => {
    await mkdir(join(dir, "mine"));
    await makePrivateDirectory(join(dir, "mine", "deployments", "dev"), "--dir");
    for (const made of ["deployments", join("deployments", "dev")]) {
      const ignore = join(dir, "mine", made, ".gitignore");
      expect(await readFile(ignore, "utf8"), made).toBe("*\n");
      expect((await stat(ignore)).mode & 0o777, made).toBe(0o644);
      expect((await stat(join(dir, "mine", made))).mode & 0o777, made).toBe(0o700);
    }
    await expect(stat(join(dir, "mine", ".gitignore"))).rejects.toMatchObject({ code: "ENOENT" });
    // Made again: nothing changes, and no temporary name is left beside it.
    await makePrivateDirectory(join(dir, "mine", "deployments", "dev"), "--dir");
    expect(await readdir(join(dir, "mine"))).toEqual(["deployments"]);
  });
});

describe("makePrivateDirectory's refusals", () => {
  it("names the option, the directory, the file system's code and the fix, with the error as cause", async () => {
    const target = join(dir, "deployments", "dev");
    failing.temporary = async () => {
      throw Object.assign(new Error("permission denied"), { code: "EACCES" });
    };
    const error = await makePrivateDirectory(target, "--dir").then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(error?.constructor.name).toBe("UsageError");
    expect(error?.message).toBe(
      `--dir ${target}: cannot create the directory (EACCES: this user may not write there; check the directory's owner and mode)`,
    );
    expect((error?.cause as { code?: string } | undefined)?.code).toBe("EACCES");
    expect(await readdir(dir)).toEqual([]);
  });

  it("names a part of the path that is a file, and what it is", async () => {
    await writeFile(join(dir, "deployments"), "not a directory\n");
    for (const target of [join(dir, "deployments", "dev"), join(dir, "deployments")]) {
      const error = await makePrivateDirectory(target, "--dir").then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(error?.constructor.name, target).toBe("UsageError");
      expect(error?.message, target).toBe(
        `--dir ${target}: cannot create the directory: expected ${join(dir, "deployments")} to be a directory, found a regular file; remove it or choose another path`,
      );
    }
  });

  it("a token directory that turns out to be a file is refused as such, not taken for another start's token", async () => {
    const made = join(dir, "app", ".cloister");
    // While this start builds app/, something else makes app/ with a regular file .cloister in it.
    failing.temporary = async () => {
      await mkdir(join(dir, "app"));
      await writeFile(made, "not a directory\n");
    };
    const error = await localToken(join(made, "proxy-token")).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toBe(
      `--token-file ${made}: cannot create the directory: expected ${made} to be a directory, found a regular file; remove it or choose another path`,
    );
    // Refused by the check of what was found there, before anything is made below it (no mkdir's EEXIST).
    expect(await readFile(made, "utf8")).toBe("not a directory\n");
  });

  it("leaves another start's temporary tree beside it alone (it may be a live one)", async () => {
    const other = join(dir, ".app.0123456789ab.tmp");
    await mkdir(join(other, "deployments"), { recursive: true });
    await makePrivateDirectory(join(dir, "app"), "--dir");
    expect((await readdir(dir)).sort()).toEqual([".app.0123456789ab.tmp", "app"]);
    expect(await readdir(other)).toEqual(["deployments"]);
  });

  it("a token file that cannot be written is refused naming the file, the code and what to do, with the cause", async () => {
    failing.token = true;
    const file = join(dir, "app", ".cloister", "proxy-token");
    const error = await localToken(file).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toBe(
      `--token-file ${file}: cannot create (EACCES: this user may not write there; check the directory's owner and mode)`,
    );
    expect((error?.cause as { code?: string } | undefined)?.code).toBe("EACCES");
  });
});

describe("prepareDeployment's models and kbs directories", () => {
  it.each([
    { part: "models", sealedModel: false },
    { part: "kbs", sealedModel: true },
  ])(
    "$part is refused naming --dir and the directory when it cannot be made, with the cause",
    async ({ part, sealedModel }) => {
      const { prepareDeployment } = await import("../../client/cli/deploy.ts");
      const target = join(dir, "dev");
      await mkdir(target);
      await writeFile(join(target, part), `a file where the ${part} directory goes\n`);
      const error = await prepareDeployment({
        dir: target,
        tee: "sim-snp",
        threads: 1,
        sealedModel,
        progress: () => {},
      }).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(error?.message).toBe(
        `--dir ${join(target, part)}: cannot create the directory: expected ${join(target, part)} to be a directory, found a regular file; remove it or choose another path`,
      );
      expect((error?.cause as { code?: string } | undefined)?.code).toBe("EEXIST");
    },
  );
});
