/**
 * Runs the `cloister` command line as a separate process (`node bin/cloister.js ...`), the way a
 * user does, and resolves with its exit code and output; never rejects on a non-zero exit.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../../bin/cloister.js", import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface CliRun {
  /** The exit code; -1 when the process was killed (e.g. by the timeout). */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  /** Working directory (default: the repository root). */
  readonly cwd?: string;
  /** Environment (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** Kill the process after this long (default 60 s). */
  readonly timeoutMs?: number;
  /** Written to its standard input (a pipe, not a terminal), which is then closed: `echo … | cloister …`. */
  readonly input?: string | Uint8Array;
}

/**
 * This process's environment without CLOISTER_API_KEY: a run against a deployment takes its API key
 * from the deployment's file, never from the developer's environment.
 */
export function envWithoutApiKey(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.CLOISTER_API_KEY;
  return env;
}

export function runCloister(args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      {
        cwd: options.cwd ?? REPO_ROOT,
        timeout: options.timeoutMs ?? 60_000,
        ...(options.env === undefined ? {} : { env: options.env }),
      },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}
