/**
 * `cloister up` and `demo` when a stop is asked for while they already stop what they started for
 * another reason (the host exited; demo failed): the first Ctrl-C says so, and how to exit at once.
 * It said nothing, and only a second Ctrl-C, after a first with no word of it, exited.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { exitAtOnceOnSecondStop } from "../../client/cli/run-up.ts";

/** The SIGINT and SIGTERM listeners present before a test, to remove those it added. */
const before = { SIGINT: process.listeners("SIGINT"), SIGTERM: process.listeners("SIGTERM") };
afterEach(() => {
  vi.restoreAllMocks();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    for (const listener of process.listeners(signal))
      if (!before[signal].includes(listener)) process.off(signal, listener);
  }
});

/** What exitAtOnceOnSecondStop says on stderr once `signalled` resolved, `stopping(why)` called first when given. */
async function saidOnFirstStop(why: string | null): Promise<string> {
  const said: string[] = [];
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    said.push(String(chunk));
    return true;
  });
  let signal = (_reason: "SIGINT") => {};
  const signalled = new Promise<"SIGINT">((resolve) => {
    signal = resolve;
  });
  const secondStop = exitAtOnceOnSecondStop(signalled, () => false);
  if (why !== null) secondStop.stopping(why);
  signal("SIGINT");
  await signalled;
  await new Promise((r) => setImmediate(r));
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
    await saidOnFirstStop("host exited");
    const exit = vi.spyOn(process, "exit").mockImplementation((() => undefined) as never);
    vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    process.emit("SIGINT", "SIGINT");
    expect(exit).toHaveBeenCalledWith(130);
  });
});
