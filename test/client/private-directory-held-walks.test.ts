/**
 * holdPrivateDirectory (client/cli/private-directory.ts, `cloister up --dir`) walks the path of a
 * directory that exists once, after it is opened (the walk before the open, makePrivateDirectory's,
 * checked nothing the one after does not), and refuses one another user owns with the walk's words
 * as makePrivateDirectory does. A directory it makes is walked before anything is made, and again
 * once opened. Tests run as root.
 */
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { testDirectoryEach } from "../helpers/test-directory.ts";

const walks: string[] = [];

vi.mock("../../attestation/path-safety.ts", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../attestation/path-safety.ts")>();
  const findUnsafeDirectory = (dir: string) => {
    walks.push(dir);
    return real.findUnsafeDirectory(dir);
  };
  return { ...real, findUnsafeDirectory };
});

const { holdPrivateDirectory, makePrivateDirectory } = await import("../../client/cli/private-directory.ts");

let root: string;
testDirectoryEach("cloister-private-held-walks-", (dir) => {
  root = dir;
});
beforeEach(() => {
  walks.length = 0;
});

describe("holdPrivateDirectory: the walks of its path", () => {
  it("walks a directory that exists once", async () => {
    const dir = join(root, "deployments");
    await fs.mkdir(dir, { mode: 0o700 });
    const held = await holdPrivateDirectory(dir, "--dir");
    await held.close();
    expect(walks).toEqual([dir]);
  });

  it("walks one it makes before making it, and once opened", async () => {
    const dir = join(root, "deployments");
    const held = await holdPrivateDirectory(dir, "--dir");
    await held.close();
    expect(walks).toEqual([dir, dir]);
  });

  it("refuses one another user owns with the walk's words, as makePrivateDirectory does", async () => {
    const dir = join(root, "theirs");
    await fs.mkdir(dir, { mode: 0o700 });
    await fs.chown(dir, 4244, 4244);
    const made = await makePrivateDirectory(dir, "--dir").catch((error: Error) => error.message);
    const held = await holdPrivateDirectory(dir, "--dir").catch((error: Error) => error.message);
    expect(made).toContain("found one owned by uid 4244");
    expect(held).toBe(made);
  });
});

describe("holdPrivateDirectory: elsewhere than Linux (no directory held, its path used)", () => {
  it("walks a directory that exists all the same, and refuses one another user owns", async () => {
    const platform = Object.getOwnPropertyDescriptor(process, "platform");
    Object.defineProperty(process, "platform", { value: "darwin" });
    try {
      const dir = join(root, "deployments");
      await fs.mkdir(dir, { mode: 0o700 });
      const held = await holdPrivateDirectory(dir, "--dir");
      await held.close();
      expect(held.path).toBe(dir);
      expect(walks).toEqual([dir]);
      const theirs = join(root, "theirs");
      await fs.mkdir(theirs, { mode: 0o700 });
      await fs.chown(theirs, 4244, 4244);
      const refused = await holdPrivateDirectory(theirs, "--dir").then(
        () => "held",
        (error: Error) => error.message,
      );
      expect(refused).toContain("found one owned by uid 4244");
    } finally {
      if (platform !== undefined) Object.defineProperty(process, "platform", platform);
    }
  });
});
