/**
 * A symbolic link followed on the way to a trust or secret file (attestation/path-safety.ts): one
 * owned by another user, in a directory that user may write to, is refused, naming the link. Its
 * owner could point it at any file this user may read (root reading an API key file under alice's
 * home would send an ssh key of root's to --url; a --policy would become another root-owned policy).
 * A link of root's or this user's, or one in a directory only they may write to, is followed. Tests
 * run as root; uid 4244 is the other user.
 */
import { chmod, chown, lchown, mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readPolicyFile, readSecretFile } from "../../client/cli/run-client.ts";
import { devPolicy } from "../client/helpers.ts";

let root: string;
beforeEach(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), "cloister-link-owner-")));
  await chmod(root, 0o755);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** root/home: a directory of uid 4244 (0755), and root/secret: a root-owned 0600 file of `text`. */
async function setUp(text: string): Promise<{ home: string; secret: string }> {
  const home = join(root, "home");
  await mkdir(home, { mode: 0o755 });
  await chown(home, 4244, 4244);
  const secret = join(root, "secret");
  await writeFile(secret, text, { mode: 0o600 });
  return { home, secret };
}

describe("a link on the way to a trust or secret file", () => {
  it("refuses an API key file that is another user's link in their directory, naming the link", async () => {
    const { home, secret } = await setUp("not an API key");
    const link = join(home, "api-key");
    await symlink(secret, link);
    await lchown(link, 4244, 4244);
    const read = readSecretFile(link, "--api-key-file", { followLinks: true, held: "the API key this client sends" });
    // The whole message: it names the link and its owner, never what the file it leads to holds.
    await expect(read).rejects.toMatchObject({
      message: `--api-key-file ${link}: expected links on its path owned by root or this user (uid 0), or in a directory only they may write to, found the link ${link} owned by uid 4244 in a directory of uid 4244 (mode 0755): uid 4244 could point it at another file, and with it the API key this client sends; name the file it leads to (readlink -f ${link}) if you trust it, or copy it to a file of this user's`,
    });
  });

  it("refuses a --policy reached through such a link in a directory above it", async () => {
    const { home } = await setUp("");
    const policies = join(root, "policies");
    await mkdir(policies, { mode: 0o755 });
    await writeFile(join(policies, "policy.json"), JSON.stringify(await devPolicy()), { mode: 0o644 });
    const link = join(home, "conf");
    await symlink(policies, link);
    await lchown(link, 4244, 4244);
    await expect(readPolicyFile(join(link, "policy.json"))).rejects.toThrow(
      `found the link ${link} owned by uid 4244 in a directory of uid 4244`,
    );
  });

  it("follows this user's link in another user's directory, and another user's link in this user's", async () => {
    const { home, secret } = await setUp("key-1");
    const mine = join(home, "mine");
    await symlink(secret, mine);
    expect(await readSecretFile(mine, "--api-key-file", { followLinks: true })).toBe("key-1");
    // A link only root may replace (its directory root's, 0755), though uid 4244 owns it.
    const theirs = join(root, "theirs");
    await symlink(secret, theirs);
    await lchown(theirs, 4244, 4244);
    expect(await readSecretFile(theirs, "--api-key-file", { followLinks: true })).toBe("key-1");
  });
});
