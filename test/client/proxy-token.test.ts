/** The proxy's local token file (`cloister proxy --token-file`): made safely, trusted only when private. */

import { execFileSync } from "node:child_process";
import { chmod, chown, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { UsageError } from "../../client/cli/output.ts";
import { readSecretFile } from "../../client/cli/run-client.ts";
import { localToken, TOKEN_FILE_BOUND } from "../../client/cli/run-proxy.ts";
import { proxyTokenProblem } from "../../client/proxy.ts";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-token-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const TOKEN = `cpx_${"ab".repeat(32)}`;

describe("localToken", () => {
  it("makes a 0600 token file once and reads it back afterwards", async () => {
    const file = join(dir, "sub", "proxy-token");
    const made = await localToken(file);
    expect(made.created).toBe(true);
    expect(made.token).toMatch(/^cpx_[0-9a-f]{64}$/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "sub"))).mode & 0o777).toBe(0o700);
    expect(await localToken(file)).toEqual({ token: made.token, created: false });
  });

  it("keeps a directory it makes for the token out of git, and leaves an existing one as it is", async () => {
    // The default .cloister/proxy-token is made in the working directory: often an app's own repository.
    const repo = join(dir, "app");
    execFileSync("git", ["init", "-q", repo]);
    await localToken(join(repo, ".cloister", "proxy-token"));
    expect(await readFile(join(repo, ".cloister", ".gitignore"), "utf8")).toBe("*\n");
    expect(execFileSync("git", ["status", "--porcelain"], { cwd: repo, encoding: "utf8" })).toBe("");
    // Under a directory that exists, only the one made gets the .gitignore.
    await localToken(join(repo, "made", "deeper", "proxy-token"));
    expect(await readFile(join(repo, "made", ".gitignore"), "utf8")).toBe("*\n");
    await localToken(join(repo, "token-beside"));
    await expect(stat(join(repo, ".gitignore"))).rejects.toThrow("ENOENT");
  });

  it("gives two proxies starting at once the same token", async () => {
    const file = join(dir, "proxy-token");
    const [a, b, c] = await Promise.all([localToken(file), localToken(file), localToken(file)]);
    expect(new Set([a.token, b.token, c.token]).size).toBe(1);
    expect([a, b, c].filter((r) => r.created)).toHaveLength(1);
    expect((await readFile(file, "utf8")).trim()).toBe(a.token);
  });

  it("refuses a token file others can read or write, a symbolic link, and a malformed token", async () => {
    const loose = join(dir, "loose");
    await writeFile(loose, `${TOKEN}\n`);
    await chmod(loose, 0o644);
    await expect(localToken(loose)).rejects.toThrow(
      `--token-file ${loose}: mode expected 0600 (owner only), found 0644; run chmod 600 ${loose}`,
    );
    const target = join(dir, "target");
    await writeFile(target, `${TOKEN}\n`, { mode: 0o600 });
    const link = join(dir, "link");
    await symlink(target, link);
    await expect(localToken(link)).rejects.toThrow(`--token-file ${link}: a symbolic link`);
    const empty = join(dir, "empty");
    await writeFile(empty, "", { mode: 0o600 });
    await expect(localToken(empty)).rejects.toThrow(
      `--token-file ${empty}: expected one token of 32..256 printable characters, found 0 characters`,
    );
    const spaced = join(dir, "spaced");
    await writeFile(spaced, `${TOKEN.slice(0, 20)} ${TOKEN.slice(20)}\n`, { mode: 0o600 });
    await expect(localToken(spaced)).rejects.toThrow("found a character other than printable ASCII");
    expect(await localToken(target)).toEqual({ token: TOKEN, created: false });
  });

  it("is read as the other secret files are (readPrivateKeyFile): the same refusals, each a usage error", async () => {
    const cases: [string, (file: string) => Promise<void>][] = [
      ["loose", (file) => chmod(file, 0o640)],
      [
        "link",
        async (file) => {
          await rm(file);
          await symlink(join(dir, "elsewhere"), file);
        },
      ],
      [
        "directory",
        async (file) => {
          await rm(file);
          execFileSync("mkdir", ["-m", "700", file]);
        },
      ],
      ["too long", (file) => writeFile(file, "x".repeat(2048))],
    ];
    if (process.getuid?.() === 0) {
      // Another user's file, even private: its owner could rewrite it.
      cases.push(["another user's", (file) => chown(file, 4321, 4321)]);
    }
    for (const [name, spoil] of cases) {
      const file = join(dir, name);
      await writeFile(file, `${TOKEN}\n`, { mode: 0o600 });
      await spoil(file);
      const asToken = await localToken(file).catch((error: unknown) => error);
      const asSecret = await readSecretFile(file, "--token-file", { bound: TOKEN_FILE_BOUND }).catch(
        (error: unknown) => error,
      );
      expect(asToken, name).toBeInstanceOf(UsageError);
      expect(asSecret, name).toBeInstanceOf(UsageError);
      expect((asToken as Error).message, name).toBe((asSecret as Error).message);
    }
  });

  it("refuses a FIFO at once (a blocking open would wait, silently, for a writer)", async () => {
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", ["-m", "600", fifo]);
    await expect(localToken(fifo)).rejects.toThrow(`--token-file ${fifo}: not a regular file`);
  });
});

describe("proxyTokenProblem (the proxy's and its token file's rule)", () => {
  it("takes 32..256 printable ASCII characters, and names the length or the character class of any other", () => {
    for (const token of ["!".repeat(32), "~".repeat(256), TOKEN]) expect(proxyTokenProblem(token)).toBeNull();
    expect(proxyTokenProblem("x".repeat(31))).toBe("31 characters");
    expect(proxyTokenProblem("x".repeat(257))).toBe("257 characters");
    for (const odd of [" ", "\x7f", "\u00e9"]) {
      expect(proxyTokenProblem(`${"x".repeat(40)}${odd}`), JSON.stringify(odd)).toBe(
        "a character other than printable ASCII (a space, a control character, a letter beyond ASCII)",
      );
    }
  });
});
