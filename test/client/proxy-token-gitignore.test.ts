/**
 * The `.gitignore` the proxy writes into a directory it makes for its token: when it cannot be
 * written, the refusal names it (not the token file), keeps the file system's error, and the
 * directory goes again, so the next start does not take it for the user's and leave the token in it
 * unguarded.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const failing: { gitignore: boolean; held?: Promise<void> } = { gitignore: false };

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...real,
    writeFile: (async (path: Parameters<typeof real.writeFile>[0], ...rest: unknown[]) => {
      if (failing.gitignore && String(path).endsWith(".gitignore")) {
        // The next .gitignore's failure waits for `held` (a concurrent start meanwhile); later ones are written.
        const held = failing.held;
        if (held !== undefined) {
          failing.gitignore = false;
          await held;
        }
        throw Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
      }
      return (real.writeFile as (...args: unknown[]) => Promise<void>)(path, ...rest);
    }) as typeof real.writeFile,
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
  delete failing.held;
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
    expect(error?.message).toBe(`--token-file: cannot create "${join(dir, "app", ".gitignore")}" (ENOSPC)`);
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
    expect((await first)?.message).toBe(`--token-file: cannot create "${join(dir, "app", ".gitignore")}" (ENOSPC)`);
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
