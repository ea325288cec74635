/**
 * Group write (attestation/path-safety.ts): a directory or trust file its owner's primary group may
 * write to is taken only when that group is the user's alone (primaryGroupIsPrivate, read from
 * scratch account files here), failing closed when unsure. Tests run as root: uids/gids 4242-4244
 * are free, so a process of uid 4242 finds no group entry of gid 4242 in /etc/group.
 */
import { execFile } from "node:child_process";
import { chmod, chown, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { primaryGroupIsPrivate } from "../../attestation/path-safety.ts";
import { ROOT } from "../helpers/insecure-parser.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

let root = "";
testDirectoryEach("cloister-path-group-", (dir) => {
  root = dir;
});

/** Scratch account files of these lines; their paths. */
async function accounts(passwd: string[], group: string[]): Promise<{ passwd: string; group: string }> {
  const files = { passwd: join(root, "passwd"), group: join(root, "group") };
  await writeFile(files.passwd, `${passwd.join("\n")}\n`);
  await writeFile(files.group, `${group.join("\n")}\n`);
  return files;
}

const ALICE = "alice:x:4242:4242::/home/alice:/bin/sh";

describe("primaryGroupIsPrivate", () => {
  it("takes a user-private group: no member listed but the user, no one else's primary group", async () => {
    expect(await primaryGroupIsPrivate(4242, 4242, await accounts([ALICE], ["alice:x:4242:"]))).toBe(true);
    expect(await primaryGroupIsPrivate(4242, 4242, await accounts([ALICE], ["alice:x:4242:alice"]))).toBe(true);
  });

  it("refuses a group that lists another member (gid 100 users, USERGROUPS=no)", async () => {
    const files = await accounts([ALICE.replace(":4242::", ":100::")], ["users:x:100:alice,bob"]);
    expect(await primaryGroupIsPrivate(4242, 100, files)).toBe(false);
  });

  it("refuses a group that is another user's primary group too", async () => {
    const bob = "bob:x:4243:4242::/home/bob:/bin/sh";
    expect(await primaryGroupIsPrivate(4242, 4242, await accounts([ALICE, bob], ["alice:x:4242:"]))).toBe(false);
  });

  it("fails closed when unsure: no group entry, no passwd entry, a line not understood, no file", async () => {
    expect(await primaryGroupIsPrivate(4242, 4242, await accounts([ALICE], ["other:x:4243:"]))).toBe(false);
    expect(
      await primaryGroupIsPrivate(4242, 4242, await accounts(["bob:x:4243:4243::/:/bin/sh"], ["alice:x:4242:"])),
    ).toBe(false);
    expect(await primaryGroupIsPrivate(4242, 4242, await accounts([ALICE, "+@netgroup"], ["alice:x:4242:"]))).toBe(
      false,
    );
    expect(await primaryGroupIsPrivate(4242, 4242, await accounts([ALICE], ["alice:x:4242:", "+"]))).toBe(false);
    const missing = { passwd: join(root, "none"), group: join(root, "group") };
    expect(await primaryGroupIsPrivate(4242, 4242, missing)).toBe(false);
  });
});

describe("primaryGroupIsPrivate: lines whose meaning depends on the system (failing closed)", () => {
  it("refuses NIS compat lines (+name, -name) with every field well formed: their members are NIS's", async () => {
    // Under nsswitch "compat", +alice takes group alice (members and all) from NIS; -bob removes bob.
    expect(await primaryGroupIsPrivate(4242, 4242, await accounts([ALICE], ["+alice:x:4242:"]))).toBe(false);
    expect(await primaryGroupIsPrivate(4242, 4242, await accounts([ALICE], ["-alice:x:4242:"]))).toBe(false);
    const plus = "+bob:x:4243:4243::/home/bob:/bin/sh";
    expect(await primaryGroupIsPrivate(4242, 4242, await accounts([ALICE, plus], ["alice:x:4242:"]))).toBe(false);
  });

  it("tells apart names that are not UTF-8 (byte for byte): another user's name is not the user's", async () => {
    // Both names decoded loosely are U+FFFD: the member, uid 4243's, would pass for alice's own.
    const files = { passwd: join(root, "passwd"), group: join(root, "group") };
    const passwd = ["\xff:x:4242:4242::/:/bin/sh", "\xfe:x:4243:4243::/:/bin/sh", ""].join("\n");
    await writeFile(files.passwd, Buffer.from(passwd, "latin1"));
    await writeFile(files.group, Buffer.from("g:x:4242:\xfe\n", "latin1"));
    expect(await primaryGroupIsPrivate(4242, 4242, files)).toBe(false);
    await writeFile(files.group, Buffer.from("g:x:4242:\xff\n", "latin1"));
    expect(await primaryGroupIsPrivate(4242, 4242, files)).toBe(true);
  });

  it("holds a commented-out entry against the group (musl, as in node:alpine, reads '#bob' as a user)", async () => {
    const comment = "# account database: edit with vipw";
    const bob = "#bob:x:4243:4242::/home/bob:/bin/sh";
    expect(await primaryGroupIsPrivate(4242, 4242, await accounts([comment, ALICE], ["alice:x:4242:", "#"]))).toBe(
      true,
    );
    expect(await primaryGroupIsPrivate(4242, 4242, await accounts([ALICE, bob], ["alice:x:4242:"]))).toBe(false);
    const group = ["alice:x:4242:", "#alice:x:4242:bob"];
    expect(await primaryGroupIsPrivate(4242, 4242, await accounts([ALICE], group))).toBe(false);
    // Not for it: a commented-out entry of the group is no entry where comments are skipped (glibc).
    expect(await primaryGroupIsPrivate(4242, 4242, await accounts([ALICE], ["#alice:x:4242:"]))).toBe(false);
  });

  it("refuses a member whose name another uid holds too (initgroups by that name gives them the group)", async () => {
    const twin = "alice:x:4243:4243::/home/twin:/bin/sh";
    expect(await primaryGroupIsPrivate(4242, 4242, await accounts([ALICE, twin], ["alice:x:4242:alice"]))).toBe(false);
  });
});

describe("a directory its owner's primary group may write to", () => {
  it("is refused to a user whose primary group is not known to be theirs alone (no /etc/group entry)", async () => {
    // uid 4242 (primary gid 4242, in no /etc/group) checks its own directory of mode 0770, group 4242.
    const dir = join(root, "own");
    await chmod(root, 0o755);
    await mkdir(dir, { mode: 0o770 });
    await chmod(dir, 0o770);
    await chown(dir, 4242, 4242);
    const script = `import { findUnsafeDirectory } from "./attestation/path-safety.ts"; console.log(JSON.stringify(await findUnsafeDirectory(${JSON.stringify(dir)})));`;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--no-warnings", "--import", "tsx", "--input-type=module", "-e", script],
      { cwd: ROOT, timeout: 60_000, uid: 4242, gid: 4242 },
    );
    expect(JSON.parse(stdout.trim())).toMatchObject({ path: dir, itself: true, writers: "g", gid: 4242, user: 4242 });
  });

  it("is taken, with a policy of mode 0664, from a desktop user whose group is theirs alone (useradd, umask 002)", async () => {
    // uid 4242 (its group alice:x:4242: in scratch account files, as useradd's USERGROUPS makes it)
    // checks its own checkout of mode 0775, reads its policy of mode 0664 and makes cloister up's
    // --dir in it; with bob a member of its group, the policy is refused.
    const app = join(root, "app");
    await chmod(root, 0o755);
    await mkdir(app, { mode: 0o775 });
    await chmod(app, 0o775);
    await writeFile(join(app, "policy.json"), "{}", { mode: 0o664 });
    await chmod(join(app, "policy.json"), 0o664);
    await chown(app, 4242, 4242);
    await chown(join(app, "policy.json"), 4242, 4242);
    const run = async (group: string): Promise<string> => {
      const files = await accounts(["root:x:0:0::/root:/bin/sh", ALICE], ["root:x:0:", "sudo:x:27:alice", group]);
      const script = [
        `import fs from "node:fs/promises";`,
        `import { syncBuiltinESMExports } from "node:module";`,
        `import { findUnsafeDirectory } from "./attestation/path-safety.ts";`,
        `import { readTrustFile } from "./client/cli/bounded-file.ts";`,
        `import { makePrivateDirectory } from "./client/cli/private-directory.ts";`,
        // The system's account files opened as the scratch ones (path-safety.ts fixes their paths).
        `const scratch = new Map(Object.entries({ "/etc/passwd": ${JSON.stringify(files.passwd)}, "/etc/group": ${JSON.stringify(files.group)} }));`,
        "const open = fs.open;",
        "fs.open = (path, ...rest) => open(scratch.get(String(path)) ?? path, ...rest);",
        "syncBuiltinESMExports();",
        "process.umask(0o002);",
        `const found = await findUnsafeDirectory(${JSON.stringify(app)});`,
        `const policy = await readTrustFile(${JSON.stringify(join(app, "policy.json"))}, "--policy", { bytes: 64, expected: "a policy" }, "trust").catch((error) => error.message);`,
        `const made = await makePrivateDirectory(${JSON.stringify(join(app, ".cloister", "up"))}, "--dir").then(() => "made", (error) => error.message);`,
        "console.log(JSON.stringify({ found, policy, made }));",
      ].join("\n");
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ["--no-warnings", "--import", "tsx", "--input-type=module", "-e", script],
        { cwd: ROOT, timeout: 60_000, uid: 4242, gid: 4242 },
      );
      return stdout.trim();
    };
    expect(JSON.parse(await run("alice:x:4242:"))).toEqual({ found: null, policy: "{}", made: "made" });
    const shared = JSON.parse(await run("alice:x:4242:bob"));
    expect(shared.policy).toContain("found mode 0664: group 4242 could rewrite it");
    expect(shared.found).toMatchObject({ path: app, itself: true, writers: "g", gid: 4242 });
  });
});
