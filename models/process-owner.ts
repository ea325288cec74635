/**
 * The process that owns a file left on disk or in memory — a model writer's partial file
 * (partial-file.ts), the enclave's private model copy (enclave/model-staging.ts) — as the file's
 * name records it, and whether that process has ended, so that the leftovers of a process killed
 * outright can be removed and a live one's never are. One check for both: a pid alone cannot say
 * (pids are used again, and another container sharing the volume has its own pids).
 *
 * An owner is its pid, when it started (Linux: clock ticks after boot, field 22 of /proc/PID/stat;
 * a pid used again by a later process has another) and its pid namespace's inode (another
 * namespace's pids are not this one's). START and NS are "x" in a name where there is no /proc.
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

/** When process `pid` started; null if no such process, undefined if that cannot be told. */
async function processStart(pid: number): Promise<string | null | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, "utf8");
  } catch (error) {
    return (error as { code?: unknown }).code === "ENOENT" ? null : undefined;
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so fields count from the last ")".
  const start = text.slice(text.lastIndexOf(")") + 2).split(" ")[19];
  return start !== undefined && /^\d+$/.test(start) ? start : undefined;
}

/**
 * Process `pid` as an owner, as a name would record it if it made a file now (null for what cannot
 * be told: no /proc, or no such process); for a supervisor (or a test) naming what its child owns.
 */
export async function processOwner(pid: number): Promise<ProcessOwner> {
  return {
    pid,
    start: (await processStart(pid)) ?? null,
    pidNamespace: await readlink(`/proc/${pid}/ns/pid`).then(
      (link) => /^pid:\[(\d+)\]$/.exec(link)?.[1] ?? null,
      () => null,
    ),
  };
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
 * is gone only when its pid runs nothing. Without /proc, by the pid alone: a dead owner's pid used
 * again by a live process keeps its file (the safe side).
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
