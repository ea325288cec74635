/**
 * The account databases (/etc/passwd, /etc/group) are read by a walk (attestation/path-safety.ts)
 * only when a decision needs them: a directory or file its user's primary group may write to, asked
 * whether that group is the user's alone (primaryGroupIsPrivate), read once per walk however many
 * ask. Counted on a wrapped fs, as uid 4242 of primary group 4242 (process.getuid and getgid stubbed:
 * the tests run as root, whose group is taken without reading anything). The files are scratch ones.
 */
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

/** The paths opened, in order (the account files as the walk names them, /etc/passwd and /etc/group). */
const opened: string[] = [];
/** Where the walk's /etc/passwd and /etc/group are opened instead: scratch files. */
const redirected = new Map<string, string>();

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const open = (path: string, ...rest: unknown[]) => {
    opened.push(String(path));
    const target = redirected.get(String(path)) ?? path;
    return (real.open as (...args: unknown[]) => ReturnType<typeof real.open>)(target, ...rest);
  };
  return { ...real, open, default: { ...real, open } };
});

const { findUnsafeDirectory } = await import("../../attestation/path-safety.ts");

let root: string;
let accounts: { passwd: string; group: string };
beforeEach(async () => {
  root = await fs.realpath(await fs.mkdtemp(join(tmpdir(), "cloister-account-reads-")));
  await fs.chmod(root, 0o755);
  accounts = { passwd: join(root, "passwd"), group: join(root, "group") };
  await fs.writeFile(accounts.passwd, "root:x:0:0::/root:/bin/sh\nalice:x:4242:4242::/home/alice:/bin/sh\n");
  await fs.writeFile(accounts.group, "root:x:0:\nalice:x:4242:\n");
  redirected.set("/etc/passwd", accounts.passwd).set("/etc/group", accounts.group);
  vi.spyOn(process, "getuid").mockReturnValue(4242);
  vi.spyOn(process, "getgid").mockReturnValue(4242);
  opened.length = 0;
});
afterEach(async () => {
  vi.restoreAllMocks();
  redirected.clear();
  await fs.rm(root, { recursive: true, force: true });
});

/** How many times each account file was opened. */
const reads = () => ({
  passwd: opened.filter((path) => path === "/etc/passwd").length,
  group: opened.filter((path) => path === "/etc/group").length,
});

/** A directory `path` of uid and gid 4242, mode `mode`. */
async function directory(path: string, mode: number): Promise<void> {
  await fs.mkdir(path);
  await fs.chown(path, 4242, 4242);
  await fs.chmod(path, mode);
}

describe("a walk reads the account files", () => {
  it.each([
    ["not at all over directories no group may write to (0755)", 0o755],
    ["not for a group-writable directory above it (only 'anyone may write to it' counts there)", 0o775],
  ])("%s", async (_, above) => {
    const dir = join(root, "app", "deployments");
    await directory(join(root, "app"), above);
    await directory(dir, 0o755);
    expect(await findUnsafeDirectory(dir)).toBeNull();
    expect(reads()).toEqual({ passwd: 0, group: 0 });
  });

  it("nor for one of another group (its write is another's whatever the user's group is)", async () => {
    const dir = join(root, "shared");
    await directory(dir, 0o775);
    await fs.chown(dir, 4242, 4300);
    expect(await findUnsafeDirectory(dir)).toMatchObject({ path: dir, itself: true, writers: "g", gid: 4300 });
    expect(reads()).toEqual({ passwd: 0, group: 0 });
  });

  it("once, when its user's group may write to it and to a link's directory on the way (the group taken)", async () => {
    // app (0775, group 4242) holds a link of uid 4243's to real (0775, group 4242): both decisions ask.
    const app = join(root, "app");
    await directory(app, 0o775);
    await directory(join(app, "real"), 0o775);
    await fs.symlink("real", join(app, "link"));
    await fs.lchown(join(app, "link"), 4243, 4243);
    expect(await findUnsafeDirectory(join(app, "link"))).toBeNull();
    expect(reads()).toEqual({ passwd: 1, group: 1 });
    // Refused as before once another user shares the group.
    await fs.writeFile(accounts.group, "root:x:0:\nalice:x:4242:bob\n");
    expect(await findUnsafeDirectory(join(app, "link"))).toMatchObject({
      path: join(app, "real"),
      itself: true,
      writers: "g",
      gid: 4242,
    });
    expect(reads()).toEqual({ passwd: 2, group: 2 });
  });
});
