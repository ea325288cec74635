/** Undoing what a test of a command's stops left behind: its signal listeners, its output-closed shutdown. */
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
