/**
 * A boot stopped by a signal (SIGTERM, Ctrl-C: an AbortSignal) versus a boot that failed while a
 * stop was pending. Each slow step rejects, when the stop cuts it short, with the signal's reason
 * (or, for node's streams, an AbortError caused by it); any other error is the step's own failure,
 * and is reported as one even though a stop came meanwhile: a stop must not hide it — except after
 * Ctrl-C (takenAsStop).
 */

import { stoppedBy } from "../attestation/providers/bounded-fetch.ts";

/** Whether `error` is `signal`'s stop (its reason, or an AbortError caused by it): the boot's fetches judge it alike. */
export { stoppedBy };

/** Throws `signal`'s reason when `error` is its stop (stoppedBy), so a caller's wrapping of real failures leaves it as it is. */
export function throwIfStoppedBy(error: unknown, signal: AbortSignal | undefined): void {
  if (stoppedBy(error, signal)) throw signal?.reason;
}

/**
 * Ctrl-C is SIGINT to the terminal's whole foreground process group: a step's helper processes get it
 * too (node-llama-cpp tests its binary in a child process it forks before loading), and the step they
 * serve then fails on its own. A step that failed after Ctrl-C reached the process is therefore taken
 * as stopped by it; this is the line that says its failure (`errorLine`: output.ts errorText's, with no
 * second `cloister: `), so it is not lost.
 */
export function takenAsStop(command: string, errorLine: string): string {
  return `${command}: a step failed after Ctrl-C reached its process group, taken as the stop: ${errorLine}`;
}
