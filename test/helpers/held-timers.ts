/**
 * Timers held for the test: each one the code under test sets with setTimeout for exactly `ms`
 * fires only when the test fires it, never by itself. A test then shows what the timer's firing
 * causes (and that nothing else does it first) instead of timing it, which a loaded machine can
 * make late, or a timer started from a stale loop time early. Other timers run as usual.
 */
import { vi } from "vitest";

export interface HeldTimeout {
  /** The delay the code asked for. */
  readonly ms: number | undefined;
  /** Whether the code cleared it (clearTimeout) before it was fired. */
  readonly cleared: boolean;
  readonly fired: boolean;
  /** Runs its callback now, as its expiry would; false (and nothing run) once cleared or fired. */
  fire(): boolean;
}

/**
 * Holds every setTimeout of `ms` from now on (or, `ms` a function, each one it says to hold, told
 * the delay asked for), until vi.restoreAllMocks() or `restore`: the ones set so far, in order.
 */
export function holdTimeouts(ms: number | ((delay: number | undefined) => boolean)): {
  readonly held: readonly HeldTimeout[];
  restore(): void;
} {
  const holds = typeof ms === "number" ? (delay: number | undefined) => delay === ms : ms;
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const held: (HeldTimeout & { readonly timer: unknown; cleared: boolean; fired: boolean })[] = [];
  const set = vi.spyOn(globalThis, "setTimeout").mockImplementation(((
    callback: (...args: unknown[]) => void,
    delay?: number,
    ...args: unknown[]
  ) => {
    if (!holds(delay)) return realSet(callback, delay, ...args);
    // A real timer that does not expire in a test's time, unreferenced: what the code does with
    // it (unref, clearTimeout) works as it would, and it keeps no process alive.
    const timer = realSet(() => {}, 2 ** 31 - 1).unref();
    const entry = {
      ms: delay,
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

/**
 * Watches every setTimeout from now on, until vi.restoreAllMocks() or `restore`; the timers still
 * run in real time. `onSet(ms)` is told of each as it is set and returns what the test records of
 * it (undefined: not watched); a watched timer's `onFire(record)` runs just before its callback. A
 * test then shows which delays the code set, and what had happened when each fired, without timing.
 */
export function watchTimeouts<T>(
  onSet: (ms: number | undefined) => T | undefined,
  onFire: (record: T) => void,
): { restore(): void } {
  const realSet = globalThis.setTimeout;
  const set = vi.spyOn(globalThis, "setTimeout").mockImplementation(((
    callback: (...args: unknown[]) => void,
    ms?: number,
    ...args: unknown[]
  ) => {
    const record = onSet(ms);
    if (record === undefined) return realSet(callback, ms, ...args);
    return realSet(() => {
      onFire(record);
      callback(...args);
    }, ms);
  }) as typeof setTimeout);
  return { restore: () => set.mockRestore() };
}
