/**
 * Lines a test collects as something writes them (an access log, a host's own log), and a promise
 * that resolves once it holds `n` of them: an event, not a wait (no timer).
 */
export function countedLines<T>() {
  const lines: T[] = [];
  const waiting: { n: number; resolve: () => void }[] = [];
  return {
    lines,
    /** Takes one line (the sink given to what writes them); settles every wait it completes. */
    push(line: T): void {
      lines.push(line);
      for (const wait of waiting.filter(({ n }) => lines.length >= n)) {
        waiting.splice(waiting.indexOf(wait), 1);
        wait.resolve();
      }
    },
    /** Resolves once `n` lines were taken (at once when they were). */
    atLeast(n: number): Promise<void> {
      return new Promise<void>((resolve) => {
        if (lines.length >= n) resolve();
        else waiting.push({ n, resolve });
      });
    },
  };
}
