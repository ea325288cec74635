/**
 * makePrivateDirectory (client/cli/private-directory.ts) checks the directory it ends up with, not
 * only the path before it makes anything: another user's directory that appears at the path between
 * the check and the rename into place (kept, as another start's would be) is refused. The race is
 * made deterministic by putting that directory there inside rename itself. Tests run as root.
 */
import * as fs from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

/** Where the next rename finds another user's directory appear just before it. */
const appear = { at: null as string | null };

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const rename = async (from: string, to: string) => {
    if (to === appear.at) {
      appear.at = null;
      await real.mkdir(to, { mode: 0o755 });
      await real.writeFile(join(to, "policy.json"), "{}");
      await real.chown(to, 4244, 4244);
    }
    return real.rename(from, to);
  };
  return { ...real, rename, default: { ...real, rename } };
});

const { makePrivateDirectory } = await import("../../client/cli/private-directory.ts");

let root: string;
beforeEach(async () => {
  root = await fs.realpath(await fs.mkdtemp(join(tmpdir(), "cloister-private-race-")));
});
afterEach(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

describe("makePrivateDirectory: a directory that appears meanwhile", () => {
  it("refuses another user's directory made at the path after the check, before anything is kept there", async () => {
    const target = join(root, "deployments");
    appear.at = target;
    const error = await makePrivateDirectory(target, "--dir").then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(appear.at).toBeNull(); // it did appear
    expect(error?.constructor.name).toBe("UsageError");
    expect(error?.message).toContain(`--dir ${target}: expected a directory owned by root or this user`);
    expect(error?.message).toContain("found one owned by uid 4244");
    // One this user makes meanwhile (another start's) is kept and used.
    const again = join(root, "again");
    await makePrivateDirectory(again, "--dir");
    expect((await fs.readdir(again)).sort()).toEqual([".gitignore"]);
  });
});
