/**
 * ownerGone when /proc does not show the owner's pid: no such process, or one this process may not
 * see (/proc mounted hidepid=2 hides other users' processes, as ENOENT). kill(pid, 0) tells them
 * apart: EPERM is a process that runs (its file is kept), ESRCH none (its file is removed).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { ownerGone, processOwner, thisProcessOwner } from "../../models/process-owner.ts";

const { hidden, texts, read } = vi.hoisted(() => ({
  hidden: new Set<string>(),
  /** Files read as this text instead of theirs. */
  texts: new Map<string, string>(),
  /** Every path readFile was asked for. */
  read: [] as string[],
}));

vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs/promises")>();
  const readFile = ((path: Parameters<typeof actual.readFile>[0], ...rest: unknown[]) => {
    read.push(String(path));
    const text = texts.get(String(path));
    if (text !== undefined) return Promise.resolve(text);
    return hidden.has(String(path))
      ? Promise.reject(Object.assign(new Error(`ENOENT: ${String(path)}`), { code: "ENOENT" }))
      : (actual.readFile as (...args: unknown[]) => Promise<unknown>)(path, ...rest);
  }) as typeof actual.readFile;
  return { ...actual, readFile };
});

afterEach(() => {
  hidden.clear();
  texts.clear();
  read.length = 0;
  vi.restoreAllMocks();
});

/** process.kill(pid, 0) for `pid` fails with `code`; any other call goes on as it would. */
function killAnswers(pid: number, code: string): void {
  const kill = process.kill.bind(process);
  vi.spyOn(process, "kill").mockImplementation((target: number, signal?: string | number) => {
    if (target === pid && signal === 0) throw Object.assign(new Error(code), { code });
    return kill(target, signal);
  });
}

describe("ownerGone, its pid not in /proc", () => {
  const pid = 4_194_000;

  it("keeps an owner /proc hides (hidepid=2) that kill(pid, 0) finds running (EPERM)", async () => {
    const self = await thisProcessOwner();
    expect(self.start).not.toBeNull();
    hidden.add(`/proc/${pid}/stat`);
    killAnswers(pid, "EPERM");
    await expect(ownerGone({ pid, start: "12345", pidNamespace: self.pidNamespace }, self)).resolves.toBe(false);
  });

  it("finds an owner gone whose pid runs nothing (ESRCH)", async () => {
    const self = await thisProcessOwner();
    hidden.add(`/proc/${pid}/stat`);
    killAnswers(pid, "ESRCH");
    await expect(ownerGone({ pid, start: "12345", pidNamespace: self.pidNamespace }, self)).resolves.toBe(true);
  });
});

describe("a /proc of another pid namespace (a host's /proc bind-mounted into a container)", () => {
  // /proc/self is the reader whatever namespace /proc is of, shown by its pid there: not this
  // namespace's process.pid. /proc/PID there is another process than this namespace's PID.
  const foreignSelf = `${process.pid + 1_000_000} (node) S 1 1 1 0 -1 4194560 ${"0 ".repeat(12)}20 0 1 0 424242 0 0\n`;

  it("tells no start from it, and this process's own namespace (/proc/self's), for itself and a child named by pid", async () => {
    const known = await processOwner(process.pid);
    expect(known.start).not.toBeNull();
    expect(known.pidNamespace).not.toBeNull();
    read.length = 0;
    texts.set("/proc/self/stat", foreignSelf);
    const ns = known.pidNamespace;
    await expect(processOwner(process.pid)).resolves.toEqual({ pid: process.pid, start: null, pidNamespace: ns });
    await expect(processOwner(4_194_001)).resolves.toEqual({ pid: 4_194_001, start: null, pidNamespace: ns });
    expect(read.filter((path) => path !== "/proc/self/stat")).toEqual([]);
  });

  it("an owner of another namespace, or of none recorded, is never gone; one of this namespace is told by kill; /proc is not read", async () => {
    texts.set("/proc/self/stat", foreignSelf);
    const self = await processOwner(process.pid);
    const pid = 4_194_002;
    killAnswers(pid, "ESRCH");
    const other = String(Number(self.pidNamespace) + 1);
    await expect(ownerGone({ pid, start: "12345", pidNamespace: other }, self)).resolves.toBe(false);
    // One that recorded no namespace (another container's, without /proc): its pid is not this one's.
    await expect(ownerGone({ pid, start: null, pidNamespace: null }, self)).resolves.toBe(false);
    // Of this namespace, its start unknown: told by the pid alone, in this process's own namespace (kill).
    await expect(ownerGone({ pid, start: null, pidNamespace: self.pidNamespace }, self)).resolves.toBe(true);
    expect(read.filter((path) => path !== "/proc/self/stat")).toEqual([]);
  });
});
