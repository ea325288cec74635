/**
 * How `cloister up` and `cloister demo` write their children's text on their own stderr: each line
 * a child prints (deploy.ts startChild) and, for a child that failed as it stopped, its last line
 * said again (run-up.ts). That text comes from requests and operators' files (a model's name, a key
 * id, a path): on a terminal every control and format character is escaped (visibleOnOneLine, as
 * the host escapes its own log lines); to a pipe or a file it is the exact line.
 */
import { visibleOnOneLine } from "./terminal-text.ts";

/**
 * A child's line as the supervisor passes it on to its stderr, after the child's `name`. Escaped on
 * a `terminal`, a JSON line stays JSON of the same value, unless it holds a format character past
 * U+FFFF (escaped as `\u{…}`, which JSON does not read).
 */
export function childLogLine(name: string, line: string, terminal: boolean): string {
  return `[${name}] ${childText(line, terminal)}`;
}

/** A child's line (or its last, quoted) as the supervisor writes it: escaped on a `terminal`. */
function childText(line: string, terminal: boolean): string {
  return terminal ? visibleOnOneLine(line) : line;
}

/**
 * The children that, stopped, did not exit 0 (an enclave that could not remove its private model
 * copy exits 1), for `up` and `demo` to fail with (exit 1): `onStopFailure` (startDeployment's)
 * says each on stderr, `<child> failed as it stopped (<how>): <its last line>` (not a line of one
 * of its requests: deploy.ts isPerRequestLogLine; on a terminal escaped, as childLogLine passes
 * its lines on), so the decrypted weights left behind are not lost among the children's lines;
 * `failed()` tells whether any did.
 */
export function stopFailures(): {
  readonly onStopFailure: (who: string, how: string, lastLine: string | null) => void;
  failed(): boolean;
} {
  let failed = false;
  return {
    onStopFailure: (who, how, lastLine) => {
      failed = true;
      const last = lastLine === null ? "" : `: ${childText(lastLine, process.stderr.isTTY === true)}`;
      process.stderr.write(`${who} failed as it stopped (${how})${last}\n`);
    },
    failed: () => failed,
  };
}
