/**
 * Root's group may write to a trust file or a directory held to the rule (attestation/path-safety.ts:
 * "g+w is taken when its group is root's"), for a reader that is not root: a service user reading a
 * root:root 0664 policy or --api-keys. Tested as uid 4242 of primary group 4242 (process.getuid and
 * getgid stubbed): run as root, as the tests are, root's group is the reader's own group too, and a
 * test of root's reading it could not tell the two rules apart. Another group's write is still refused.
 */
import { chmod, chown, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { findUnsafeDirectory } from "../../attestation/path-safety.ts";
import { readTrustFile } from "../../client/cli/bounded-file.ts";
import { UsageError } from "../../client/cli/output.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

let root = "";
testDirectoryEach("cloister-root-group-", (dir) => {
  root = dir;
});
beforeEach(() => {
  vi.spyOn(process, "getuid").mockReturnValue(4242);
  vi.spyOn(process, "getgid").mockReturnValue(4242);
});
afterEach(() => {
  vi.restoreAllMocks();
});

const HELD = "which enclaves this client trusts";
const read = (file: string) => readTrustFile(file, "--policy", { bytes: 1024, expected: "a test file" }, HELD);

describe("a reader that is not root (uid 4242, group 4242)", () => {
  it("reads a trust file of root's that root's group may write to, and refuses one another group may", async () => {
    await chmod(root, 0o755);
    const file = join(root, "policy.json");
    await writeFile(file, "{}");
    await chown(file, 0, 0);
    await chmod(file, 0o664);
    expect(await read(file)).toBe("{}");
    await chown(file, 0, 4243);
    const refused = await rejectionOf(read(file), UsageError);
    expect(refused.message).toContain("found mode 0664: group 4243 could rewrite it");
  });

  it("takes a directory of root's that root's group may write to, and refuses one another group may", async () => {
    await chmod(root, 0o755);
    const dir = join(root, "audit");
    await mkdir(dir);
    await chown(dir, 0, 0);
    await chmod(dir, 0o775);
    expect(await findUnsafeDirectory(dir)).toBeNull();
    await chown(dir, 0, 4243);
    expect(await findUnsafeDirectory(dir)).toMatchObject({ path: dir, itself: true, writers: "g", gid: 4243 });
  });
});
