/**
 * Which partial files a model writer removes before it writes (removeAbandonedPartials): those of a
 * writer that has ended, told by pid, start time and pid namespace (process-owner.ts), not by pid
 * alone. Linux (/proc), as CI is.
 */
import { mkdtemp, readdir, readFile, readlink, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { partialFile, removeAbandonedPartials } from "../../models/partial-file.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-partial-");
let dead: number;
let start: string;
let namespace: string;

beforeAll(async () => {
  // No process has a pid above pid_max.
  dead = Number((await readFile("/proc/sys/kernel/pid_max", "utf8")).trim()) + 1;
  const stat = await readFile("/proc/self/stat", "utf8");
  start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] as string;
  namespace = /^pid:\[(\d+)\]$/.exec(await readlink("/proc/self/ns/pid"))?.[1] as string;
  expect(start).toMatch(/^\d+$/);
  expect(namespace).toMatch(/^\d+$/);
});

describe("partial files of a model writer", () => {
  it("a partial file's name records its writer: pid, start time and pid namespace", async () => {
    const path = join(dir, "named", "model.gguf");
    const name = basename(await partialFile(path));
    expect(dirname(await partialFile(path))).toBe(dirname(path));
    expect(name).toMatch(
      new RegExp(`^\\.model\\.gguf\\.${process.pid}-${start}-${namespace}\\.[0-9a-f]{12}\\.partial$`),
    );
  });

  it("removes those of writers that ended, or whose pid another process now has; keeps live and foreign ones", async () => {
    const sub = await mkdtemp(join(dir, "sweep-"));
    const path = join(sub, "model.gguf");
    const hex = "0123456789ab";
    const names = {
      // This process, as it names its own: a live writer.
      live: `.model.gguf.${process.pid}-${start}-${namespace}.${hex}.partial`,
      // A writer that ended: its pid runs nothing.
      ended: `.model.gguf.${dead}-${start}-${namespace}.${hex}.partial`,
      // A writer that ended and whose pid this process now has (another start time): a pid-only
      // check would keep it for as long as this process runs.
      reused: `.model.gguf.${process.pid}-1-${namespace}.${hex}.partial`,
      // Another pid namespace's writer (another container sharing the volume): its pid says
      // nothing here, running or not, so it is kept.
      otherNamespace: `.model.gguf.${dead}-${start}-1.${hex}.partial`,
      // A writer that could not read /proc records no namespace: it may be anyone's, kept.
      unknownNamespace: `.model.gguf.${dead}-x-x.${hex}.partial`,
      // An older version's name (pid only): told by the pid, as that version did.
      olderEnded: `.model.gguf.${dead}.${hex}.partial`,
      olderLive: `.model.gguf.${process.pid}.${hex}.partial`,
      // The oldest names, which record no writer (the GGUF writer's, the sealer's): kept, as nothing
      // tells a live writer's from an abandoned one (writerOf).
      oldestGguf: `.model.gguf.${hex}.partial`,
      oldestSealed: `model.gguf.${hex}.partial`,
      // Another path's, and not a partial file.
      otherPath: `.other.gguf.${dead}-${start}-${namespace}.${hex}.partial`,
      notes: "notes.txt",
    };
    for (const name of Object.values(names)) await writeFile(join(sub, name), "bytes");
    await removeAbandonedPartials(path);
    expect((await readdir(sub)).sort()).toEqual(
      [
        names.live,
        names.otherNamespace,
        names.unknownNamespace,
        names.olderLive,
        names.oldestGguf,
        names.oldestSealed,
        names.otherPath,
        names.notes,
      ].sort(),
    );
  });
});
