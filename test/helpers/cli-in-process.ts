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
  const output = capturedOutput();
  beforeEach(() => {
    vi.spyOn(process, "exit").mockImplementation((code?: string | number | null) => {
      throw new Error(`process.exit(${String(code)}) called: commander exited on its own`);
    });
  });
  afterEach(() => {
    process.exitCode = undefined;
  });
  return async (args) => {
    output.clear();
    const code = await main([...args]);
    return { code, stdout: output.stdout, stderr: output.stderr };
  };
}

/**
 * What this process writes to stdout and stderr during each test, captured (not printed) from an
 * empty start. Call at the top of a test file; it installs its own beforeEach / afterEach.
 */
export function capturedOutput(): { readonly stdout: string; readonly stderr: string; clear(): void } {
  const output = {
    stdout: "",
    stderr: "",
    clear() {
      output.stdout = "";
      output.stderr = "";
    },
  };
  beforeEach(() => {
    output.clear();
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      output.stdout += String(chunk);
      return true;
    });
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      output.stderr += String(chunk);
      return true;
    });
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });
  return output;
}
