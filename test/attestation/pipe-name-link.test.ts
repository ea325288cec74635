/**
 * The anonymous-pipe exemption of the trust-file check (no compare of the file opened with the one
 * the walk reached) holds only for this process's own fd directory, where `pipe:[inode]` is the
 * kernel's name for a pipe and nothing anyone can swap. A link elsewhere whose text reads so leads
 * to a file of that name in its directory, which may appear between the walk and the open.
 */
import { open, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readAfterPathCheck } from "../../attestation/path-safety.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-pipe-name-link-");

describe("a link whose text reads pipe:[inode]", () => {
  it("outside this process's fd directory is held to the walk: a file appearing at it after the walk is refused", async () => {
    const path = join(dir, "policy.json");
    await symlink("pipe:[4242]", path);
    const read = readAfterPathCheck(
      path,
      "--policy",
      "which enclaves this client trusts",
      (message) => new Error(message),
      async (opened) => {
        // After the walk, before the open: a file of the link's target name appears.
        await writeFile(join(dir, "pipe:[4242]"), "{}", { mode: 0o644 });
        const handle = await open(path, "r");
        try {
          opened(await handle.stat());
          return "read";
        } finally {
          await handle.close();
        }
      },
    );
    await expect(read).rejects.toThrow(/changed while its path was checked/);
  });
});
