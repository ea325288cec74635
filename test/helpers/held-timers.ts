/**
 * Timers held for the test: each one the code under test sets with setTimeout for exactly `ms`
 * fires only when the test fires it, never by itself. A test then shows what the timer's firing
 * causes (and that nothing else does it first) instead of timing it, which a loaded machine can
 * make late, or a timer started from a stale loop time early. Other timers run as usual.
 */
import { vi } from "vitest";

export interface HeldTimeout {
  /** Whether the code cleared it (clearTimeout) before it was fired. */
  readonly cleared: boolean;
  readonly fired: boolean;
  /** Runs its callback now, as its expiry would; false (and nothing run) once cleared or fired. */
  fire(): boolean;
}

/** Holds every setTimeout of `ms` from now on, until vi.restoreAllMocks() or `restore`: the ones set so far, in order. */
export function holdTimeouts(ms: number): { readonly held: readonly HeldTimeout[]; restore(): void } {
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const held: (HeldTimeout & { readonly timer: unknown; cleared: boolean; fired: boolean })[] = [];
  const set = vi.spyOn(globalThis, "setTimeout").mockImplementation(((
    callback: (...args: unknown[]) => void,
    delay?: number,
    ...args: unknown[]
  ) => {
    if (delay !== ms) return realSet(callback, delay, ...args);
    // A real timer that does not expire in a test's time, unreferenced: what the code does with
    // it (unref, clearTimeout) works as it would, and it keeps no process alive.
    const timer = realSet(() => {}, 2 ** 31 - 1).unref();
    const entry = {
      timer,
      cleared: false,
      fired: false,
      fire(): boolean {
        if (entry.cleared || entry.fired) return false;
        entry.fired = true;
        realClear(timer);
        callback(...args);
        return true;
      },
    };
    held.push(entry);
    return timer;
  }) as typeof setTimeout);
  const clear = vi.spyOn(globalThis, "clearTimeout").mockImplementation(((timer: Parameters<typeof realClear>[0]) => {
    for (const entry of held) if (entry.timer === timer && !entry.fired) entry.cleared = true;
    realClear(timer);
  }) as typeof clearTimeout);
  return {
    held,
    restore() {
      set.mockRestore();
      clear.mockRestore();
    },
  };
}
