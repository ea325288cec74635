/**
 * For tests of a command's stops run in process: what it writes, and undoing what it left behind (its
 * signal listeners, its output-closed shutdown).
 */
import { vi } from "vitest";
import { onOutputClosed } from "../../client/cli/output.ts";

/**
 * Takes note of the SIGINT and SIGTERM listeners present now; the function it returns removes those
 * added since (stopsAskedFor's, stopDuringBoot's, a library's) and the shutdown registered for the
 * output closed (onOutputClosed), so none is left for the next test.
 */
export function stopListenersRemover(): () => void {
  const before = { SIGINT: process.listeners("SIGINT"), SIGTERM: process.listeners("SIGTERM") };
  return () => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      for (const listener of process.listeners(signal))
        if (!before[signal].includes(listener)) process.off(signal, listener);
    }
    onOutputClosed(() => {})();
  };
}

/** What is written on stdout and stderr from now on (not written; undone by vi.restoreAllMocks). */
export function capture(): { stdout: string[]; stderr: string[] } {
  const written = { stdout: [] as string[], stderr: [] as string[] };
  for (const stream of ["stdout", "stderr"] as const) {
    vi.spyOn(process[stream], "write").mockImplementation((chunk: string | Uint8Array) => {
      written[stream].push(String(chunk));
      return true;
    });
  }
  return written;
}
