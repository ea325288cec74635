/**
 * The process that owns a file left on disk or in memory — a model writer's partial file
 * (partial-file.ts), the enclave's private model copy (enclave/model-staging.ts) — as the file's
 * name records it, and whether that process has ended, so that the leftovers of a process killed
 * outright can be removed and a live one's never are. One check for both: a pid alone cannot say
 * (pids are used again, and another container sharing the volume has its own pids).
 *
 * An owner is its pid, when it started (Linux: clock ticks after boot, field 22 of /proc/PID/stat;
 * a pid used again by a later process has another) and its pid namespace's inode (another
 * namespace's pids are not this one's). START and NS are "x" in a name where there is no /proc;
 * START is "x" with a /proc of another pid namespace (procIsThisNamespaces), NS /proc/self's.
 */
import { readFile, readlink } from "node:fs/promises";

export interface ProcessOwner {
  readonly pid: number;
  readonly start: string | null;
  readonly pidNamespace: string | null;
}

/** `PID-START-NS` as a name records an owner (ownerTag); its three groups are ownerFromTag's. */
export const OWNER_TAG = String.raw`([1-9]\d{0,9})-(\d+|x)-(\d+|x)`;

/** The text a file's name records `owner` by: `PID-START-NS`, "x" for what is not known. */
export function ownerTag(owner: ProcessOwner): string {
  return `${owner.pid}-${owner.start ?? "x"}-${owner.pidNamespace ?? "x"}`;
}

/** The owner from OWNER_TAG's three groups (pid, start, namespace). */
export function ownerFromTag(pid: string, start: string, pidNamespace: string): ProcessOwner {
  return {
    pid: Number(pid),
    start: start === "x" ? null : start,
    pidNamespace: pidNamespace === "x" ? null : pidNamespace,
  };
}

/** /proc/PID/stat's text ("self": the reader's); null if no such process, undefined if it cannot be read. */
async function procStat(pid: number | "self"): Promise<string | null | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, "utf8");
  } catch (error) {
    return (error as { code?: unknown }).code === "ENOENT" ? null : undefined;
  }
  return text;
}

/** When process `pid` started; null if no such process, undefined if that cannot be told. */
async function processStart(pid: number): Promise<string | null | undefined> {
  const text = await procStat(pid);
  if (typeof text !== "string") return text;
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so fields count from the last ")".
  const start = text.slice(text.lastIndexOf(")") + 2).split(" ")[19];
  return start !== undefined && /^\d+$/.test(start) ? start : undefined;
}

/**
 * Whether /proc shows this process's pid namespace. A host's /proc bind-mounted into a container
 * shows the host's: its /proc/PID is another process than this namespace's PID, read as if it were
 * that one. /proc/self is always the reader, named by its pid in the namespace /proc shows, so its
 * pid (the first field of its stat) is process.pid only when that namespace is this one's. Read at
 * each call, not kept: processOwner is asked rarely (once for this process, once per child).
 */
async function procIsThisNamespaces(): Promise<boolean> {
  const text = await procStat("self");
  return typeof text === "string" && text.slice(0, text.indexOf(" ")) === String(process.pid);
}

/**
 * Process `pid` as an owner, as a name would record it if it made a file now (null for what cannot
 * be told: no /proc, or no such process; the start with a /proc of another pid namespace, whose
 * namespace is this process's own, /proc/self's); for a supervisor (or a test) naming what its
 * child owns. A child shares this process's /proc and namespace, so it names itself (its
 * thisProcessOwner) as this names it, unknown or known alike, and ownerGone never reads /proc for
 * a process that knows no start of its own. The namespace is kept with a foreign /proc: without
 * it, an owner of another container sharing the volume (its NS "x": no /proc there) would be
 * judged by its pid here, and a live one's file removed.
 */
export async function processOwner(pid: number): Promise<ProcessOwner> {
  // Another namespace's /proc: /proc/self is still this process, so its ns/pid link is this
  // namespace, which a child (spawned in it) shares; its start by pid there is another process's.
  if (!(await procIsThisNamespaces())) return { pid, start: null, pidNamespace: await pidNamespaceOf("self") };
  return { pid, start: (await processStart(pid)) ?? null, pidNamespace: await pidNamespaceOf(pid) };
}

/** The inode of /proc/PID/ns/pid's namespace ("self": the reader's), or null if it cannot be read. */
function pidNamespaceOf(pid: number | "self"): Promise<string | null> {
  return readlink(`/proc/${pid}/ns/pid`).then(
    (link) => /^pid:\[(\d+)\]$/.exec(link)?.[1] ?? null,
    () => null,
  );
}

let thisOwner: Promise<ProcessOwner> | undefined;

/** This process as an owner (read once). */
export function thisProcessOwner(): Promise<ProcessOwner> {
  thisOwner ??= processOwner(process.pid);
  return thisOwner;
}

/**
 * Whether the process `owner` names has ended, as `self` (thisProcessOwner) sees it; false
 * whenever that cannot be told. An owner of another pid namespace (or of none known, where this
 * one has one) is never gone: its pid may be anyone's here. With /proc, an owner is gone when its
 * pid runs no process (kill(pid, 0) fails ESRCH: a pid /proc hides runs another user's process), or
 * one that started at another time (the pid was used again); an owner whose start is not recorded
 * is gone only when its pid runs nothing. Without /proc, or with another namespace's (self's start
 * unknown, its namespace known, processOwner), by the pid alone, through kill in this process's own
 * namespace: a dead owner's pid used again by a live process keeps its file (the safe side).
 */
export async function ownerGone(owner: ProcessOwner, self: ProcessOwner): Promise<boolean> {
  if (owner.pidNamespace !== self.pidNamespace) return false;
  if (self.start !== null) {
    const start = await processStart(owner.pid);
    if (start === undefined) return false;
    if (start !== null) return owner.start !== null && start !== owner.start;
    // Not in /proc: no such process, or one this process may not see (/proc mounted hidepid=2
    // hides other users' processes as not there): kill(pid, 0) tells them apart.
  }
  return !pidRuns(owner.pid);
}

/** Whether `pid` runs a process: kill(pid, 0) fails ESRCH only when none (EPERM: another user's). */
function pidRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: unknown }).code !== "ESRCH";
  }
}
