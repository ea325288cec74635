/**
 * `cloister up` and `demo` when a stop is asked for while they already stop what they started for
 * another reason (the host exited; demo failed; their output closed): the first Ctrl-C says so, and
 * how to exit at once. It said nothing, and only a second Ctrl-C, after a first with no word of it,
 * exited. Their output closed (an EPIPE: `up 2>&1 | tee log`, tee killed by the same Ctrl-C) after
 * a first stop is no second stop.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { OUTPUT_CLOSED_SETTLE_MS, stopsAskedFor } from "../../client/cli/run-up.ts";
import { closeOutput } from "../helpers/held.ts";
import { stopListenersRemover } from "../helpers/stops.ts";

const removeStopListeners = stopListenersRemover();
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  removeStopListeners();
});

/** What is written on stderr from now on; process.exit's calls, which exit nothing. */
function watch(): { said: string[]; exit: ReturnType<typeof vi.spyOn> } {
  const said: string[] = [];
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    said.push(String(chunk));
    return true;
  });
  const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
  return { said, exit };
}

/** What stopsAskedFor says on stderr at a first Ctrl-C after boot, `stopping(why)` called first when given. */
async function saidOnFirstStop(why: string | null): Promise<string> {
  const { said } = watch();
  const stops = stopsAskedFor(() => false);
  stops.booted();
  if (why !== null) stops.stopping(why, { failed: why !== "demo finished" });
  process.emit("SIGINT", "SIGINT");
  expect(await stops.signalled).toBe("SIGINT");
  vi.restoreAllMocks();
  return said.join("");
}

describe("cloister up and demo: the first Ctrl-C while they stop for another reason", () => {
  it.each(["host exited", "demo failed"])(
    "%s: says it is already stopping, and that Ctrl-C again exits at once",
    async (why) => {
      expect(await saidOnFirstStop(why)).toBe(`SIGINT while stopping (${why}): Ctrl-C again to exit at once\n`);
    },
  );

  it("a Ctrl-C that starts the stop is not said here (the caller says `shutting down (SIGINT) …`)", async () => {
    expect(await saidOnFirstStop(null)).toBe("");
  });

  it("arms the exit at once for the next one", async () => {
    await saidOnFirstStop("demo finished");
    const { said, exit } = watch();
    process.emit("SIGINT", "SIGINT");
    expect(exit).toHaveBeenCalledWith(130);
    expect(said.join("")).toBe(
      "SIGINT while stopping: exiting at once; the processes it started stop on their own once it has gone\n",
    );
  });

  it.each(["host exited", "demo failed"])(
    "%s: the exit at once is 1, as the stop it cut short would have ended, not 130",
    (why) => {
      const { exit } = watch();
      const stops = stopsAskedFor(() => false);
      stops.booted();
      stops.stopping(why, { failed: true });
      process.emit("SIGINT", "SIGINT");
      process.emit("SIGINT", "SIGINT");
      // One Ctrl-C let `up` exit 1 (a process exited on its own) and `demo` 1 (its error): the
      // second, which only cuts the stop short, exited 130, as if nothing had failed.
      expect(exit.mock.calls).toEqual([[1]]);
    },
  );

  it("during boot, aborts the boot with the stop's reason, and says so", () => {
    const { said } = watch();
    const stops = stopsAskedFor(() => false);
    process.emit("SIGTERM", "SIGTERM");
    expect({ aborted: stops.boot.aborted, reason: stops.boot.reason, said }).toEqual({
      aborted: true,
      reason: "SIGTERM",
      said: ["shutting down (SIGTERM during boot) …\n"],
    });
  });
});

describe("cloister up and demo: their output closed", () => {
  it("after a first Ctrl-C, is no second stop: nothing said, no exit at once", async () => {
    await saidOnFirstStop(null);
    const { said, exit } = watch();
    closeOutput();
    expect({ said, exit: exit.mock.calls }).toEqual({ said: [], exit: [] });
  });

  it("first, is the first stop; a Ctrl-C after it says so (as after the host exited), the next exits at once", async () => {
    const { said, exit } = watch();
    vi.useFakeTimers({ toFake: ["setTimeout"] });
    const stops = stopsAskedFor(() => false);
    stops.booted();
    closeOutput();
    expect(await stops.signalled).toBe("output closed");
    // Past OUTPUT_CLOSED_SETTLE_MS: not taken for the Ctrl-C that closed it (that one comes at once: below).
    vi.advanceTimersByTime(OUTPUT_CLOSED_SETTLE_MS);
    process.emit("SIGINT", "SIGINT");
    expect({ said, exit: exit.mock.calls }).toEqual({
      said: ["SIGINT while stopping (output closed): Ctrl-C again to exit at once\n"],
      exit: [],
    });
    process.emit("SIGINT", "SIGINT");
    expect(exit.mock.calls).toEqual([[130]]);
  });
});

describe("cloister up and demo: their output closed while they stop for another reason", () => {
  it("says nothing (no Ctrl-C came): the next Ctrl-C says how to exit at once, the one after exits", () => {
    const { said, exit } = watch();
    const stops = stopsAskedFor(() => false);
    stops.booted();
    stops.stopping("demo finished", { failed: false });
    closeOutput();
    // It said "output closed while stopping (demo finished): Ctrl-C again to exit at once", but the
    // Ctrl-C after it, the first counted, only said so again.
    expect({ said, exit: exit.mock.calls }).toEqual({ said: [], exit: [] });
    process.emit("SIGINT", "SIGINT");
    expect({ said, exit: exit.mock.calls }).toEqual({
      said: ["SIGINT while stopping (demo finished): Ctrl-C again to exit at once\n"],
      exit: [],
    });
    process.emit("SIGINT", "SIGINT");
    expect(exit.mock.calls).toEqual([[130]]);
  });
});

describe("cloister up and demo: their output closed just before a Ctrl-C (`up 2>&1 | tee log`, tee ended by it)", () => {
  it("during boot, the stop is the Ctrl-C's, whichever of the two was handled first", () => {
    const { said, exit } = watch();
    const stops = stopsAskedFor(() => false);
    // The EPIPE of a line written just before up handled the Ctrl-C that ended tee.
    closeOutput();
    process.emit("SIGINT", "SIGINT");
    // The stop was "output closed": a child the Ctrl-C killed was a boot failure (exit 1), and demo
    // exited 141, not 130; its Ctrl-C was said as one during a stop.
    expect({ aborted: stops.boot.aborted, reason: stops.reason(), said, exit: exit.mock.calls }).toEqual({
      aborted: true,
      reason: "SIGINT",
      said: ["shutting down (output closed during boot) …\n"],
      exit: [],
    });
  });

  it("after boot, the stop is the Ctrl-C's too, and the next exits at once", async () => {
    const { said, exit } = watch();
    const stops = stopsAskedFor(() => false);
    stops.booted();
    closeOutput();
    process.emit("SIGINT", "SIGINT");
    expect(await stops.signalled).toBe("output closed");
    expect({ reason: stops.reason(), said }).toEqual({ reason: "SIGINT", said: [] });
    process.emit("SIGINT", "SIGINT");
    expect(exit.mock.calls).toEqual([[130]]);
  });
});
