/**
 * An output file's name holding a symbolic link (client/cli/output.ts): README's and docs/errors.md's
 * "`--force` replaces a file or a symbolic link there (the link, never what it leads to)", and without
 * `--force` the link is refused as a file is, nothing written where it leads (a link to nothing
 * included: the write must not create its target).
 */
import { lstat, mkdtemp, readFile, readlink, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { refuseExistingOutput, UsageError, writeOutputFile } from "../../client/cli/output.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-output-links-");

describe("an output file's name holding a symbolic link", () => {
  it("--force replaces the link itself with the new file, and leaves the file it led to as it was", async () => {
    const sub = await mkdtemp(join(dir, "force-"));
    const pointed = join(sub, "elsewhere.txt");
    await writeFile(pointed, "not cloister's\n", { mode: 0o600 });
    const out = join(sub, "policy.json");
    await symlink(pointed, out);
    await refuseExistingOutput(out, "--out", "replace");
    await writeOutputFile(out, "the policy\n", "--out", "replace");
    const replaced = await lstat(out);
    expect(replaced.isFile()).toBe(true);
    expect(replaced.mode & 0o777).toBe(0o644);
    expect(await readFile(out, "utf8")).toBe("the policy\n");
    expect(await readFile(pointed, "utf8")).toBe("not cloister's\n");
    expect((await stat(pointed)).mode & 0o777).toBe(0o600);
  });

  it("without --force refuses a link (to a file, or to nothing) and writes nothing where it leads", async () => {
    const sub = await mkdtemp(join(dir, "refuse-"));
    const pointed = join(sub, "elsewhere.txt");
    await writeFile(pointed, "not cloister's\n");
    const missing = join(sub, "missing.txt");
    for (const [name, target] of [
      ["to-file.json", pointed],
      ["to-nothing.json", missing],
    ] as const) {
      const out = join(sub, name);
      await symlink(target, out);
      for (const existing of ["refuse", "never"] as const) {
        const checked = await rejectionOf(refuseExistingOutput(out, "--out", existing), UsageError);
        expect(checked.message).toMatch(/: already exists \(EEXIST\); /);
        // The write itself refuses it too (a link put there after the check: link(2) never replaces).
        const written = await rejectionOf(writeOutputFile(out, "the policy\n", "--out", existing), UsageError);
        expect(written.message).toMatch(/: already exists \(EEXIST\); /);
      }
      expect(await readlink(out)).toBe(target);
    }
    expect(await readFile(pointed, "utf8")).toBe("not cloister's\n");
    await expect(lstat(missing)).rejects.toMatchObject({ code: "ENOENT" });
  });
});
