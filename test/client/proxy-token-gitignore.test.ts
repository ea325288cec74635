/**
 * The `.gitignore` the proxy writes into a directory it makes for its token: when it cannot be
 * written, the refusal names it (not the token file), keeps the file system's error, and the
 * directory goes again, so the next start does not take it for the user's and leave the token in it
 * unguarded.
 */
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

const failing = { gitignore: false };

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...real,
    writeFile: (async (path: Parameters<typeof real.writeFile>[0], ...rest: unknown[]) => {
      if (failing.gitignore && String(path).endsWith(".gitignore")) {
        throw Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
      }
      return (real.writeFile as (...args: unknown[]) => Promise<void>)(path, ...rest);
    }) as typeof real.writeFile,
  };
});

const { localToken } = await import("../../client/cli/run-proxy.ts");

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-token-git-"));
});
afterEach(async () => {
  failing.gitignore = false;
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
});
