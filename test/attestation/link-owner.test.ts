/**
 * A symbolic link followed on the way to a trust or secret file (attestation/path-safety.ts): one
 * owned by another user, in a directory that user may write to, is refused, naming the link. Its
 * owner could point it at any file this user may read (root reading an API key file under alice's
 * home would send an ssh key of root's to --url; a --policy would become another root-owned policy).
 * A link of root's or this user's, or one in a directory only they may write to, is followed. Tests
 * run as root; uid 4244 is the other user. And a file with more than one fault (another user's, and
 * others may write to it) is refused once, naming every fault and a fix for all of them, rather than
 * one fault per run. A trust or secret file of several names (hard links) named in another user's
 * directory is refused: where hard links to files one does not own are allowed (Linux with
 * fs.protected_hardlinks=0, macOS), that user could have linked a file of root's they cannot read
 * (a host key) into their directory. One of several names in a directory of root's a group may
 * write to (/nix/store) is read.
 */
import { chmod, chown, lchown, link, mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readPrivateKeyFile } from "../../attestation/kbs/key-file.ts";
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

describe("a --policy file with several faults", () => {
  it("names its owner and who else may write to it in one refusal, with one fix", async () => {
    const file = join(root, "policy.json");
    await writeFile(file, JSON.stringify(await devPolicy()));
    await chown(file, 4244, 4244);
    await chmod(file, 0o666);
    await expect(readPolicyFile(file)).rejects.toMatchObject({
      message: `--policy ${file}: expected a file owned by root or this user (uid 0) that others cannot write to, found one owned by uid 4244 (mode 0666): uid 4244 and anyone could rewrite it, and with it which enclaves this client trusts; chown root ${file} && chmod go-w ${file}, or copy it to a file of this user's`,
    });
    await chmod(file, 0o664);
    await expect(readPolicyFile(file)).rejects.toMatchObject({
      message: `--policy ${file}: expected a file owned by root or this user (uid 0) that others cannot write to, found one owned by uid 4244 (mode 0664): uid 4244 and group 4244 could rewrite it, and with it which enclaves this client trusts; chown root ${file} && chmod g-w ${file}, or copy it to a file of this user's`,
    });
  });
});

describe("a key file with several faults", () => {
  it("names its owner and its mode in one refusal, with both fixes", async () => {
    const file = join(root, "model.jwk");
    await writeFile(file, "{}", { mode: 0o644 });
    await chown(file, 4244, 4244);
    await expect(readPrivateKeyFile(file, "--key")).rejects.toMatchObject({
      message: `--key ${file}: owned by uid 4244; expected this user's (uid 0) or root's, since its owner can rewrite it (chown 0 ${file}); also mode expected 0600 (owner only), found 0644; run chmod 600 ${file}`,
    });
  });
});

const held = "the API key this client sends";

describe("a trust or secret file with hard links", () => {
  it("refuses an API key file of root's linked into another user's directory, naming the file and the directory", async () => {
    const { home, secret } = await setUp("not an API key");
    const file = join(home, "api-key");
    await link(secret, file);
    // The whole message: the file, its names, the directory and its owner, never what it holds.
    await expect(readSecretFile(file, "--api-key-file", { followLinks: true, held })).rejects.toMatchObject({
      message: `--api-key-file ${file}: expected a file of one name, or named in a directory of root's or this user's (uid 0), found one of 2 names (hard links) in the directory ${home} (uid 4244, mode 0755): uid 4244 could have linked there a file of root's or this user's that they cannot read, and with it ${held}; see its other names (find / -samefile ${file}) and name the one you trust, or copy it to a file of this user's`,
    });
  });

  it("refuses a --policy and a broker key so linked", async () => {
    const { home, secret } = await setUp(JSON.stringify(await devPolicy()));
    const file = join(home, "policy.json");
    await link(secret, file);
    await expect(readPolicyFile(file)).rejects.toThrow("found one of 2 names (hard links)");
    await expect(readPrivateKeyFile(file, "--key")).rejects.toThrow("found one of 2 names (hard links)");
  });

  it("reads such a file by a name in a directory only root may write to, and a file of one name in the other user's", async () => {
    const { home, secret } = await setUp("ck_test_key");
    await link(secret, join(home, "api-key"));
    expect(await readSecretFile(secret, "--api-key-file", { followLinks: true, held })).toBe("ck_test_key");
    const own = join(home, "own-key");
    await writeFile(own, "ck_own_key", { mode: 0o600 });
    expect(await readSecretFile(own, "--api-key-file", { followLinks: true, held })).toBe("ck_own_key");
  });

  it("reads a file of several names in a directory of root's that a group may write to (/nix/store: root:nixbld 1775, files hard-linked by auto-optimise-store)", async () => {
    const { secret } = await setUp("ck_test_key");
    const store = join(root, "store");
    await mkdir(store);
    await chown(store, 0, 4244);
    await chmod(store, 0o1775);
    const file = join(store, "abc-api-key");
    await link(secret, file);
    expect(await readSecretFile(file, "--api-key-file", { followLinks: true, held })).toBe("ck_test_key");
  });
});
