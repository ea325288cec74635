/**
 * The partial file a writer of a model file (a generated GGUF, a sealed model) writes to until it is
 * complete and renamed into place, the removal of those left by writers killed outright, and the
 * check of what is at the name the rename replaces.
 */
import { randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import { lstat, readdir, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { describeFileKind } from "../attestation/bounded-read.ts";
import { ModelIoError, ModelNotRegularFileError } from "./errors.ts";
import { OWNER_TAG, ownerFromTag, ownerGone, ownerTag, type ProcessOwner, thisProcessOwner } from "./process-owner.ts";

/**
 * The file a writer of `path` writes to until it is complete: `.<name>.<PID-START-NS>.<12 hex>.partial`
 * beside `path`; its owner (process-owner.ts) tells a later writer whether the one that left it
 * still runs.
 */
export async function partialFile(path: string): Promise<string> {
  const owner = ownerTag(await thisProcessOwner());
  return join(dirname(path), `.${basename(path)}.${owner}.${randomBytes(6).toString("hex")}.partial`);
}

/**
 * What is at `output`'s name (lstat), before a writer renames its partial file onto it: null when
 * nothing is there, else a regular file or a symbolic link (the rename replaces the link itself,
 * never what it leads to). Anything else is refused, ModelNotRegularFileError naming it as `what`
 * ("model file", "sealed model output"), before any work: a directory (which the rename cannot
 * replace: EISDIR, once the whole model is written), a FIFO, a socket or a device (which it would
 * replace: as root, an output named /dev/null would replace /dev/null).
 */
export async function replaceableOutput(output: string, what: string): Promise<Stats | null> {
  const info = await lstat(output).catch((cause: unknown) => {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new ModelIoError(output, "check", cause, what);
  });
  if (info !== null && !info.isFile() && !info.isSymbolicLink()) {
    throw new ModelNotRegularFileError(output, what, describeFileKind(info));
  }
  return info;
}

const PARTIAL_OWNER = new RegExp(`^${OWNER_TAG}\\.[0-9a-f]{12}$`);
/** An older version's partial file: `.<name>.<pid>.<12 hex>.partial`. */
const OLDER_PARTIAL_OWNER = /^([1-9]\d{0,6})\.[0-9a-f]{12}$/;

/**
 * The writer the middle of a partial file's name records, or null for another name. The oldest
 * names record none: `.<name>.<12 hex>.partial` (the GGUF writer before it named its pid) and
 * `<output>.<12 hex>.partial` (the sealer before it used this file). They are left alone, never
 * removed here: nothing in such a name tells a writer still running (a cloister of that version,
 * here or in another container sharing the volume, whose open file /proc would not show) from one
 * killed outright, and a removal by age would be a guess that could cut a slow writer's model. The
 * sealer's are visible beside its output, and the user can remove either kind once no writer of
 * that version runs.
 */
function writerOf(middle: string, self: ProcessOwner): ProcessOwner | null {
  const m = PARTIAL_OWNER.exec(middle);
  if (m !== null) return ownerFromTag(m[1] as string, m[2] as string, m[3] as string);
  // An older version recorded the pid alone, and removed by it; so are its files (pid only, in
  // this namespace), or they would stay for good.
  const older = OLDER_PARTIAL_OWNER.exec(middle);
  return older === null ? null : { pid: Number(older[1]), start: null, pidNamespace: self.pidNamespace };
}

/**
 * Removes the partial files of `path` whose writer has ended: one killed outright (SIGKILL, or
 * Ctrl-C, whose default in Node.js runs no cleanup) leaves its partial file, hidden and as large as
 * the model got, and nothing else would ever remove it. A writer that runs (another process, or
 * this one) keeps its own, and so does one of another pid namespace (two containers sharing a
 * volume and writing the same path: its pid says nothing here); a writer whose pid another process
 * now has is told by its start time (ownerGone). Best effort: a file that cannot be listed or
 * removed is left.
 */
export async function removeAbandonedPartials(path: string): Promise<void> {
  const prefix = `.${basename(path)}.`;
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  const self = await thisProcessOwner();
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(".partial")) continue;
    const writer = writerOf(name.slice(prefix.length, -".partial".length), self);
    if (writer === null || !(await ownerGone(writer, self))) continue;
    await rm(join(dirname(path), name), { force: true }).catch(() => undefined);
  }
}
