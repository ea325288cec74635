/**
 * The modes of what makePrivateDirectory makes (client/cli/private-directory.ts), whatever the umask:
 * each directory 0700 (its files are cloister's alone), each `.gitignore` 0644 (set on the file
 * opened: under umask 077 it would otherwise be 0600, and under 002 0664, writable by the group).
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { makePrivateDirectory } from "../../client/cli/private-directory.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-private-modes-");

let previous: number | undefined;
afterEach(() => {
  if (previous !== undefined) process.umask(previous);
  previous = undefined;
});

describe.each(["002", "077"])("makePrivateDirectory under umask %s", (octal) => {
  const umask = Number.parseInt(octal, 8);
  it("makes each directory 0700 and each .gitignore 0644", async () => {
    const top = join(dir, `umask-${octal}`);
    const inner = join(top, "kbs", "keys");
    previous = process.umask(umask);
    await makePrivateDirectory(inner, "--dir");
    process.umask(previous);
    previous = undefined;
    for (const made of [top, join(top, "kbs"), inner]) {
      expect(((await stat(made)).mode & 0o7777).toString(8)).toBe("700");
      expect(((await stat(join(made, ".gitignore"))).mode & 0o7777).toString(8)).toBe("644");
    }
  });
});
