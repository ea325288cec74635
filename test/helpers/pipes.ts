/**
 * Pipes for tests of the files the CLI reads: a real FIFO (mkfifo) with a writer process, as
 * `cloister … --log <(ssh host cat audit.jsonl)` or a named pipe gives one.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";

export interface FifoWriter {
  /** Ends the writer (it waits, blocked, until a reader opens the FIFO; or it writes on, endlessly). */
  stop(): void;
}

/**
 * Makes a FIFO at `path` and starts a process that opens it for writing (blocking until a reader
 * opens it) and writes `content` then closes it, or with "endless", zero bytes until the reader
 * goes away. `stop` it after the test: a reader that refused the FIFO never opened it.
 */
export function fifoWriter(path: string, content: string | Uint8Array | "endless"): FifoWriter {
  execFileSync("mkfifo", ["-m", "600", path]);
  const endless = content === "endless";
  const child: ChildProcess = spawn("sh", ["-c", endless ? 'exec cat /dev/zero > "$0"' : 'exec cat > "$0"', path], {
    stdio: [endless ? "ignore" : "pipe", "ignore", "ignore"],
  });
  if (!endless) child.stdin?.end(content);
  return {
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    },
  };
}
