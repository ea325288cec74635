/**
 * Runs the `cloister` command line in this process, through its main(): what it writes to stdout
 * and stderr is captured (not printed), and commander's own process.exit (a command it was not
 * told to leave the exit to main() for) fails the test instead of ending the run. Call at the top
 * of a test file; it installs its own beforeEach / afterEach.
 */
import { afterEach, beforeEach, vi } from "vitest";
import { main } from "../../client/cli/program.ts";

export interface InProcessRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function inProcessCli(): (args: readonly string[]) => Promise<InProcessRun> {
  let stdout = "";
  let stderr = "";
  beforeEach(() => {
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      stdout += String(chunk);
      return true;
    });
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      stderr += String(chunk);
      return true;
    });
    vi.spyOn(process, "exit").mockImplementation((code?: string | number | null) => {
      throw new Error(`process.exit(${String(code)}) called: commander exited on its own`);
    });
  });
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });
  return async (args) => {
    stdout = "";
    stderr = "";
    const code = await main([...args]);
    return { code, stdout, stderr };
  };
}
