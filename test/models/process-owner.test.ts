/**
 * ownerGone when /proc does not show the owner's pid: no such process, or one this process may not
 * see (/proc mounted hidepid=2 hides other users' processes, as ENOENT). kill(pid, 0) tells them
 * apart: EPERM is a process that runs (its file is kept), ESRCH none (its file is removed).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { ownerGone, thisProcessOwner } from "../../models/process-owner.ts";

const { hidden } = vi.hoisted(() => ({ hidden: new Set<string>() }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs/promises")>();
  const readFile = ((path: Parameters<typeof actual.readFile>[0], ...rest: unknown[]) =>
    hidden.has(String(path))
      ? Promise.reject(Object.assign(new Error(`ENOENT: ${String(path)}`), { code: "ENOENT" }))
      : (actual.readFile as (...args: unknown[]) => Promise<unknown>)(path, ...rest)) as typeof actual.readFile;
  return { ...actual, readFile };
});

afterEach(() => {
  hidden.clear();
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
