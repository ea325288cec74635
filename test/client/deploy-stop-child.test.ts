/**
 * stopChild (client/cli/deploy.ts): a child killed by a signal ran none of its own cleanup, so any
 * model copy named for its process is still there (decrypted weights of a sealed model) and is named
 * in what the stop reports, whatever the signal and whether or not the stop was a Ctrl-C: a SIGINT
 * that was no Ctrl-C of up's (up stopped by SIGTERM), the SIGKILL after the stop's timeout, a
 * signal that killed it before the stop. A fake child process dies when and how the test says.
 */
import { EventEmitter } from "node:events";
import { rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { stopChild } from "../../client/cli/deploy.ts";
import { ownerTag, type ProcessOwner } from "../../models/process-owner.ts";
import { endedProcessOwner } from "../helpers/processes.ts";

/** The process the fake child stands for: one that has ended (a live one's pid names no dead child's copy). */
let dead: ProcessOwner;
beforeAll(async () => {
  dead = await endedProcessOwner();
});

class FakeChild extends EventEmitter {
  readonly stderr = new PassThrough();
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly signals: string[] = [];
  /** A process that has ended, as the copy below records it. */
  readonly pid = dead.pid;
  /** What the child does on each signal it is sent: dies of it (default), or of another, or nothing. */
  constructor(private readonly onSignal: (signal: NodeJS.Signals) => NodeJS.Signals | null = (s) => s) {
    super();
  }
  kill(signal: NodeJS.Signals): boolean {
    this.signals.push(signal);
    const death = this.onSignal(signal);
    if (death !== null) queueMicrotask(() => this.die(death));
    return true;
  }
  die(signal: NodeJS.Signals): void {
    this.signalCode = signal;
    this.emit("exit", null, signal);
    this.stderr.destroy();
  }
}

const stop = (child: FakeChild, interrupted: boolean, timeoutMs?: number) =>
  stopChild(
    {
      name: "enclave",
      process: child as never,
      ready: new Promise(() => {}),
      lastLine: () => null,
      owner: Promise.resolve(dead),
    },
    () => interrupted,
    timeoutMs,
  );

let copy = "";
beforeEach(async () => {
  copy = join(tmpdir(), `cloister-model-${ownerTag(dead)}-StOpCh`);
});
afterEach(async () => {
  await rm(copy, { recursive: true, force: true });
});
/**
 * The dead child's copy, as a file: only its name is looked at, and another test's staging removes
 * the copy directories of processes that have ended (removeStaleCopies) that it finds.
 */
const leaveCopy = () => writeFile(copy, "");
const leaving = () => `leaving the model copy ${copy}: remove it by hand`;

describe("stopChild: a child killed by a signal is checked for a model copy", () => {
  it("one killed by SIGINT as a stop that is no Ctrl-C (up's SIGTERM) stops it: the copy is named", async () => {
    await leaveCopy();
    // The stop's SIGTERM comes after a SIGINT of no Ctrl-C of up's has killed it.
    const child = new FakeChild(() => "SIGINT");
    expect(await stop(child, false)).toBe(`SIGINT, ${leaving()}`);
    expect(child.signals).toEqual(["SIGTERM"]);
  });

  it("one killed by SIGINT before a stop that is no Ctrl-C: the copy is named, though its death was told already", async () => {
    await leaveCopy();
    const child = new FakeChild();
    child.die("SIGINT");
    expect(await stop(child, false)).toBe(`SIGINT, ${leaving()}`);
    expect(child.signals).toEqual([]);
  });

  it("one killed by the SIGKILL after the stop's timeout: the copy is named", async () => {
    await leaveCopy();
    const child = new FakeChild((signal) => (signal === "SIGKILL" ? "SIGKILL" : null));
    expect(await stop(child, false, 1)).toBe(`SIGKILL, ${leaving()}`);
    expect(child.signals).toEqual(["SIGTERM", "SIGKILL"]);
  });

  it("one killed by another signal before the stop (SIGKILL: the OOM killer): the copy is named", async () => {
    await leaveCopy();
    const child = new FakeChild();
    child.die("SIGKILL");
    expect(await stop(child, false)).toBe(`SIGKILL, ${leaving()}`);
  });

  it("as before: the stop's SIGTERM, or a Ctrl-C's SIGINT, with a copy left", async () => {
    await leaveCopy();
    expect(await stop(new FakeChild(), false)).toBe(`SIGTERM before it handled signals, ${leaving()}`);
    const ctrlC = new FakeChild();
    ctrlC.die("SIGINT");
    expect(await stop(ctrlC, true)).toBe(`SIGINT before it handled signals, ${leaving()}`);
  });

  it("names no copy of an older dead process that had the child's pid (another start time): not the child's", async () => {
    // The child's pid, started at another time: a process that ended before the child was spawned.
    const older = join(tmpdir(), `cloister-model-${ownerTag({ ...dead, start: `${dead.start}0` })}-OlDeRc`);
    await writeFile(older, "");
    try {
      const child = new FakeChild();
      child.die("SIGKILL");
      expect(await stop(child, false)).toBeNull();
    } finally {
      await rm(older, { force: true });
    }
  });

  it("as before, without a copy: the stop asked for is clean, another death is told once", async () => {
    expect(await stop(new FakeChild(), false)).toBeNull();
    expect(await stop(new FakeChild(() => "SIGINT"), false)).toBe("SIGINT");
    const gone = new FakeChild();
    gone.die("SIGINT");
    expect(await stop(gone, false)).toBeNull();
    const killed = new FakeChild();
    killed.die("SIGKILL");
    expect(await stop(killed, false)).toBeNull();
  });
});
