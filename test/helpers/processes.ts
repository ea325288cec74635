/** The processes a `cloister` command started (Linux /proc), to check they are gone when it exits, and what they left. */
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ProcessOwner, processOwner } from "../../models/process-owner.ts";
import { CLI } from "./cli.ts";

/**
 * The `cloister` processes whose parent is `parent` (Linux /proc), oldest first, with their command
 * (`kbs`, `enclave`, `host`); other children (tsx's esbuild service) are left out.
 */
export async function childrenOf(parent: number): Promise<{ pid: number; command: string }[]> {
  const found: { pid: number; command: string; start: number }[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      // "pid (comm) state ppid …": fields counted from the last ")" (comm may hold spaces).
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[1]) !== parent) continue;
      const argv = (await readFile(`/proc/${name}/cmdline`, "utf8")).split("\0");
      if (argv[1] !== CLI) continue;
      found.push({ pid: Number(name), command: argv[2] ?? "", start: Number(fields[19]) });
    } catch {
      // it ended meanwhile
    }
  }
  return found.sort((a, b) => a.start - b.start || a.pid - b.pid).map(({ pid, command }) => ({ pid, command }));
}

/** Whether process `pid` exists (a zombie counts: its parent has not waited for it). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/**
 * The private model copies (enclave/model-staging.ts) process `pid` made and left, in /dev/shm or
 * the temp directory: each directory's name starts with `cloister-model-PID-`.
 */
export async function modelCopiesOf(pid: number): Promise<string[]> {
  const found: string[] = [];
  for (const root of ["/dev/shm", tmpdir()]) {
    const names = await readdir(root).catch(() => [] as string[]);
    found.push(...names.filter((n) => n.startsWith(`cloister-model-${pid}-`)).map((n) => join(root, n)));
  }
  return found;
}

/**
 * A process that has ended, as the names of the files it made record it (models/process-owner.ts):
 * a child started, read while it runs, then killed and waited for. A name recording this process's
 * own pid would record a live process: the model copies of a dead child are told by their owner.
 * execFile, not spawn: tests that mock spawn (their fake children) call this too.
 */
export async function endedProcessOwner(): Promise<ProcessOwner> {
  let child!: ReturnType<typeof execFile>;
  const exited = new Promise((resolve) => {
    child = execFile(process.execPath, ["-e", "process.stdin.resume()"], () => resolve(undefined));
  });
  await new Promise((resolve) => child.once("spawn", resolve));
  const owner = await processOwner(child.pid as number);
  child.kill("SIGKILL");
  await exited;
  return owner;
}
