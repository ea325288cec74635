/**
 * The client's private directories (`cloister up --dir`: its policy and keys; the proxy's
 * .cloister/: its token) are refused when someone else could swap them (attestation/path-safety.ts):
 * a swapped policy is a swapped trust root. Real directories, modes and owners (tests run as root).
 */
import { chmod, chown, mkdir, mkdtemp, readdir, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { makePrivateDirectory } from "../../client/cli/private-directory.ts";
import { localToken } from "../../client/cli/run-proxy.ts";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "cloister-private-path-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const refusal = (made: Promise<unknown>) =>
  made.then(
    () => null,
    (e: unknown) => e as Error,
  );
const HELD = "the files cloister keeps there (policy, keys, token)";

describe("makePrivateDirectory: a path someone else could change", () => {
  it("refuses one below a directory others can write to (no sticky bit), naming it, and makes nothing", async () => {
    const open = join(root, "d777");
    await mkdir(open);
    await chmod(open, 0o777);
    const target = join(open, "app", "deployments");
    const error = await refusal(makePrivateDirectory(target, "--dir"));
    expect(error?.constructor.name).toBe("UsageError");
    expect(error?.message).toBe(
      `--dir ${target}: expected no directory above it that others can write to, found one (the ancestor ${open} mode 0777): anyone could rename the directory away with ${HELD} and put their own in its place; chmod o-w ${open} (or set its sticky bit)`,
    );
    expect(await readdir(open)).toEqual([]);
    // The proxy's token directory the same way, naming its option: refused by the read of an
    // existing token first (its directories are checked, run-client.ts readSecretFile), before any
    // directory is made.
    const token = join(open, ".cloister", "proxy-token");
    expect((await refusal(localToken(token)))?.message).toBe(
      `--token-file ${token}: expected no directory on its path that others can write to, found one (the directory ${open} mode 0777): anyone could put their own file in its place, and with it the proxy's token; chmod o-w ${open} (or set its sticky bit)`,
    );
    expect(await readdir(open)).toEqual([]);
    await chmod(open, 0o1777);
    await makePrivateDirectory(target, "--dir");
    expect(await readdir(target)).toEqual([".gitignore"]);
  });

  it("refuses an existing directory others can write to, or one owned by another user, but not one below it", async () => {
    const target = join(root, "app");
    await mkdir(target);
    await chmod(target, 0o777);
    expect((await refusal(makePrivateDirectory(target, "--dir")))?.message).toBe(
      `--dir ${target}: expected a directory others cannot write to, found mode 0777: anyone could remove or replace ${HELD}; chmod o-w ${target} (or set its sticky bit)`,
    );
    await chmod(target, 0o755);
    await chown(target, 4244, process.getgid?.() ?? 0);
    const uid = process.getuid?.() ?? 0;
    expect((await refusal(makePrivateDirectory(target, "--dir")))?.message).toBe(
      `--dir ${target}: expected a directory owned by root or this user (uid ${uid}), found one owned by uid 4244 (mode 0755): uid 4244 could remove or replace ${HELD}; chown ${uid} ${target}, or choose another directory`,
    );
    // Below a directory another user owns (and only they can write to), as a checkout of theirs that
    // root works in (a container over a bind mount): taken, as git takes it (its safe.directory
    // check is of the repository's own directory, not the ones above). That user could swap it, as
    // they could the checkout's code that runs; the host's --audit-dir is held to the strict rule.
    const below = join(target, ".cloister");
    await makePrivateDirectory(below, "--token-file");
    expect(await readdir(target)).toEqual([".cloister"]);
    // Nor below one its owner's group can write to (a checkout made under umask 002, whose group is
    // its owner's private group): only a directory above that anyone can write to is refused.
    const grouped = join(root, "checkout");
    await mkdir(grouped);
    await chown(grouped, 4244, 4244);
    await chmod(grouped, 0o775);
    await makePrivateDirectory(join(grouped, ".cloister"), "--dir");
    expect(await readdir(grouped)).toEqual([".cloister"]);
  });
});

describe("makePrivateDirectory: a symbolic link to a missing directory", () => {
  it("is refused, naming the link and where it leads, for cloister up's --dir and the proxy's token", async () => {
    const missing = join(root, "gone", "deployments");
    const link = join(root, "deployments");
    await symlink(missing, link);
    const expected = (path: string, option: string) =>
      `${option} ${path}: cannot create the directory: expected ${link} to be a directory, found a symbolic link to a missing ${missing}; make the directory it leads to (mkdir -p ${missing}), or remove the link, or choose another path`;
    expect((await refusal(makePrivateDirectory(link, "--dir")))?.message).toBe(expected(link, "--dir"));
    // A link on the way (the topmost directory to make is below it) the same way.
    const below = join(link, "app");
    expect((await refusal(makePrivateDirectory(below, "--dir")))?.message).toBe(expected(below, "--dir"));
    // The proxy's token directory: refused before a token is written.
    const token = join(link, "proxy-token");
    expect((await refusal(localToken(token)))?.message).toBe(expected(link, "--token-file"));
    expect(await readdir(root)).toEqual(["deployments"]);
    // Once the directory it leads to is made, it is used (the user's, left as it is).
    await mkdir(missing, { recursive: true, mode: 0o700 });
    await makePrivateDirectory(link, "--dir");
    expect(await readdir(missing)).toEqual([]);
  });
});

describe("makePrivateDirectory: a symbolic link to a missing directory, reached another way", () => {
  /** The refusal of `--dir path` whose part `link` leads (at last) to the missing `missing`. */
  const expected = (path: string, link: string, missing: string) =>
    `--dir ${path}: cannot create the directory: expected ${link} to be a directory, found a symbolic link to a missing ${missing}; make the directory it leads to (mkdir -p ${missing}), or remove the link, or choose another path`;

  it("names the directory a chain of links ends at, not the next link", async () => {
    const missing = join(root, "gone");
    await symlink("gone", join(root, "second")); // relative: to root/gone
    await symlink(join(root, "second"), join(root, "first"));
    const target = join(root, "first");
    expect((await refusal(makePrivateDirectory(target, "--dir")))?.message).toBe(expected(target, target, missing));
    // The fix it names works.
    await mkdir(missing, { recursive: true });
    await makePrivateDirectory(target, "--dir");
    expect(await readdir(missing)).toEqual([]);
  });

  it("names a relative link's target from the link's real directory, not the path's", async () => {
    // root/via -> root/a/b; root/a/b/link -> ../gone: the kernel's root/a/gone, not root/gone.
    await mkdir(join(root, "a", "b"), { recursive: true });
    await symlink(join(root, "a", "b"), join(root, "via"));
    await symlink("../gone", join(root, "a", "b", "link"));
    const link = join(root, "via", "link");
    const missing = join(root, "a", "gone");
    const target = join(link, "deployments");
    expect((await refusal(makePrivateDirectory(target, "--dir")))?.message).toBe(expected(target, link, missing));
    await mkdir(missing);
    await makePrivateDirectory(target, "--dir");
    expect(await readdir(join(missing, "deployments"))).toEqual([".gitignore"]);
  });
});
