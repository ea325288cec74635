/**
 * findUnsafeDirectory (attestation/path-safety.ts) walks every directory a lookup of the path goes
 * through, links followed as the kernel follows them; a trust file is held to its rule on the open
 * file. Real directories and modes (tests run as root).
 */
import { execFileSync, spawn } from "node:child_process";
import { chmod, chown, mkdir, open, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { findUnsafeDirectory, readAfterPathCheck, unsafeOpenFile } from "../../attestation/path-safety.ts";
import { readTrustFile } from "../../client/cli/bounded-file.ts";
import { UsageError } from "../../client/cli/output.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

let root = "";
testDirectoryEach("cloister-path-safety-", (dir) => {
  root = dir;
});

describe("findUnsafeDirectory", () => {
  it("finds the directory of a link in the middle of a chain (neither on the path as given nor the real one)", async () => {
    // root/safe/l1 -> root/open/l2 -> root/kept/audit: anyone can write to root/open, so anyone can
    // point l2 elsewhere, though root/open is on neither root/safe/l1 nor root/kept/audit.
    const [safe, open, kept] = [join(root, "safe"), join(root, "open"), join(root, "kept")];
    for (const dir of [safe, open, kept]) await mkdir(dir, { mode: 0o755 });
    await chmod(open, 0o777);
    await mkdir(join(kept, "audit"), { mode: 0o700 });
    await symlink(join(kept, "audit"), join(open, "l2"));
    await symlink(join(open, "l2"), join(safe, "l1"));
    expect(await findUnsafeDirectory(join(safe, "l1"))).toMatchObject({ path: open, itself: false, writers: "o" });
    // A relative link's text with `..` in it, looked up from the link's own (real) directory.
    await rm(join(safe, "l1"));
    await symlink("../open/l2", join(safe, "l1"));
    expect(await findUnsafeDirectory(join(safe, "l1"))).toMatchObject({ path: open });
    // Once no one else can write there, nothing is found.
    await chmod(open, 0o755);
    expect(await findUnsafeDirectory(join(safe, "l1"))).toBeNull();
  });

  it("looks up a link's text as the kernel does: a `..` after a link leaves the link's target", async () => {
    // root/safe/l3 -> root/open/deep: `l3/../x` is root/open/x to the kernel (not root/safe/x).
    const [safe, open] = [join(root, "safe"), join(root, "open")];
    await mkdir(join(open, "deep"), { recursive: true, mode: 0o755 });
    await mkdir(join(open, "x"), { mode: 0o700 });
    await mkdir(safe, { mode: 0o755 });
    await chmod(open, 0o777);
    await symlink(join(open, "deep"), join(safe, "l3"));
    await symlink("l3/../x", join(safe, "l4"));
    expect(await findUnsafeDirectory(join(safe, "l4"))).toMatchObject({ path: open });
  });

  it("checks the directory the kernel reaches for a `..` after a link in the path given, not the lexical one", async () => {
    // root/safe/l5 -> root/open/deep: the kernel opens `root/safe/l5/../x` as root/open/x, below a
    // directory anyone can write to; resolved lexically it would be root/safe/x.
    const [safe, open] = [join(root, "safe"), join(root, "open")];
    await mkdir(join(open, "deep"), { recursive: true, mode: 0o755 });
    await mkdir(join(open, "x"), { mode: 0o700 });
    await mkdir(join(safe, "x"), { recursive: true, mode: 0o700 });
    await chmod(safe, 0o755);
    await chmod(open, 0o777);
    await symlink(join(open, "deep"), join(safe, "l5"));
    // Written as a string: path.join would remove the `..` lexically.
    expect(await findUnsafeDirectory(`${safe}/l5/../x`)).toMatchObject({ path: open, itself: false });
    expect(await findUnsafeDirectory(`${safe}/x/../x`)).toBeNull();
  });

  it("refuses a loop of links with the kernel's own ELOOP, after as many links as it follows", async () => {
    await symlink(join(root, "loop"), join(root, "loop"));
    await expect(findUnsafeDirectory(join(root, "loop", "audit"))).rejects.toMatchObject({ code: "ELOOP" });
  });
});

/**
 * A trust file's rules as its production readers apply them: readTrustFile (client/cli/bounded-file.ts)
 * walks the directories (readAfterPathCheck) and checks the open file itself (unsafeOpenFile).
 */
describe("readTrustFile: the file itself (on the open file) and the directories of its lookup", () => {
  const HELD = "which enclaves this client trusts";
  const read = (file: string) => readTrustFile(file, "--policy", { bytes: 1024, expected: "a test file" }, HELD);
  const refusal = async (file: string): Promise<string> => (await rejectionOf(read(file), UsageError)).message;

  /** A file of `mode` in a new directory of root's (0755) under `root`. */
  async function fileOf(mode: number): Promise<string> {
    const dir = join(root, "d");
    await mkdir(dir, { mode: 0o755 });
    const file = join(dir, "policy.json");
    await writeFile(file, "{}", { mode });
    await chmod(file, mode);
    return file;
  }

  it("reads a file of this user's that only its owner can write, in directories others cannot write to", async () => {
    expect(await read(await fileOf(0o644))).toBe("{}");
  });

  it("refuses a file anyone can write to, the sticky bit notwithstanding", async () => {
    const file = await fileOf(0o1666);
    expect(await refusal(file)).toBe(
      `--policy ${file}: expected a file others cannot write to, found mode 01666: anyone could rewrite it, and with it ${HELD}; chmod o-w ${file}`,
    );
  });

  it("refuses a file another group can write to, not one root's group can", async () => {
    const file = await fileOf(0o664);
    expect(await read(file)).toBe("{}"); // root's group
    await chown(file, 0, 4243);
    expect(await refusal(file)).toContain("found mode 0664: group 4243 could rewrite it");
  });

  it("refuses a file another user owns", async () => {
    const file = await fileOf(0o644);
    await chown(file, 4244, 0);
    expect(await refusal(file)).toContain(
      "expected a file owned by root or this user (uid 0), found one owned by uid 4244 (mode 0644)",
    );
  });

  it("refuses a directory on its path anyone can write to without the sticky bit, and checks the target of a link", async () => {
    const file = await fileOf(0o644);
    const dir = join(root, "d");
    await chmod(dir, 0o777);
    expect(await refusal(file)).toContain(`found one (the directory ${dir} mode 0777)`);
    await chmod(dir, 0o1777);
    expect(await read(file)).toBe("{}");
    // A link to it: the file it leads to is what is checked.
    await chmod(dir, 0o755);
    await symlink(file, join(root, "link.json"));
    expect(await read(join(root, "link.json"))).toBe("{}");
    await chmod(file, 0o646);
    expect(await refusal(join(root, "link.json"))).toContain("found mode 0646: anyone could rewrite it");
  });

  it("checks only the directories of a file that does not exist (the read says it is missing)", async () => {
    const dir = join(root, "d");
    await mkdir(dir, { mode: 0o777 });
    await chmod(dir, 0o777);
    expect(await refusal(join(dir, "missing.json"))).toContain(`found one (the directory ${dir} mode 0777)`);
    await chmod(dir, 0o755);
    expect(await refusal(join(dir, "missing.json"))).toContain("cannot read (ENOENT");
  });

  it("holds a named pipe as a file (a writer feeds it), and leaves a device to its reader", async () => {
    const fifo = join(root, "policy.fifo");
    execFileSync("mkfifo", ["-m", "666", fifo]);
    // A writer that opens it (waiting for this reader), writes and closes: the read then ends.
    const writer = () => {
      const child = spawn("sh", ["-c", 'printf "{}" > "$0"', fifo], { stdio: "ignore" });
      return new Promise((resolve) => child.once("close", resolve));
    };
    const first = writer();
    expect(await refusal(fifo)).toContain("found mode 0666: anyone could rewrite it");
    await first;
    await chmod(fifo, 0o600);
    const second = writer();
    expect(await read(fifo)).toBe("{}");
    await second;
    // /dev/null is 0666: refused by the reader as a character device, not by its mode.
    const devNull = await refusal("/dev/null");
    expect(devNull).toContain("character device");
    expect(devNull).not.toContain("mode");
  });
});

describe("readAfterPathCheck's walk", () => {
  it("checks only the directories, not the file (a secret, whose own owner and mode its reader checks)", async () => {
    const dir = join(root, "d");
    await mkdir(dir, { mode: 0o755 });
    const file = join(dir, "secret");
    await writeFile(file, "x");
    await chmod(file, 0o666);
    const refuse = (message: string) => new Error(message);
    const reads: unknown[] = [];
    const check = () => readAfterPathCheck(file, "--key", "the secret", refuse, async () => reads.push(file));
    await check();
    expect(reads).toEqual([file]);
    await chmod(dir, 0o777);
    await expect(check()).rejects.toThrow(`found one (the directory ${dir} mode 0777)`);
    expect(reads).toEqual([file]); // refused before the read
  });
});

describe("unsafeOpenFile", () => {
  it("leaves a device to its reader (/dev/null is 0666), where a regular file of that mode is refused", async () => {
    const file = join(root, "open.json");
    await writeFile(file, "{}");
    await chmod(file, 0o666);
    for (const [path, expected] of [
      ["/dev/null", null],
      [file, { path: file, itself: true, writers: "o", mode: 0o666 }],
    ] as const) {
      const handle = await open(path, "r");
      try {
        const found = await unsafeOpenFile(handle, path, await handle.stat());
        if (expected === null) expect(found).toBeNull();
        else expect(found).toMatchObject(expected);
      } finally {
        await handle.close();
      }
    }
  });
});
