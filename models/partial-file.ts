/**
 * The partial file a writer of a model file (a generated GGUF, a sealed model) writes to until it is
 * complete and renamed into place, and the removal of those left by writers killed outright.
 */
import { randomBytes } from "node:crypto";
import { readdir, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * The file a writer of `path` writes to until it is complete: `.<name>.<pid>.<12 hex>.partial`,
 * beside `path`; the pid tells a later writer whether the one that left it still runs.
 */
export function partialFile(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString("hex")}.partial`);
}

/** Whether process `pid` runs (EPERM: it does, as another user). */
function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the partial files of `path` whose writer no longer runs: one killed outright (SIGKILL, or
 * Ctrl-C, whose default in Node.js runs no cleanup) leaves its partial file, hidden and as large as
 * the model got, and nothing else would ever remove it. A writer that runs (another process, or
 * this one) keeps its own. Best effort: a file that cannot be listed or removed is left. A pid is
 * this machine's: a writer in another pid namespace writing the same path at the same time (two
 * containers sharing a volume) may lose its partial file, and then fails at its rename (MODEL_IO),
 * never leaving a partial model at `path`.
 */
export async function removeAbandonedPartials(path: string): Promise<void> {
  const prefix = `.${basename(path)}.`;
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(".partial")) continue;
    const writer = /^([1-9]\d{0,6})\.[0-9a-f]{12}$/.exec(name.slice(prefix.length, -".partial".length));
    if (writer === null || processRuns(Number(writer[1]))) continue;
    await rm(join(dirname(path), name), { force: true }).catch(() => undefined);
  }
}
