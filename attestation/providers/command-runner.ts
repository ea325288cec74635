/**
 * Runs an external tool (tpm2-tools) without a shell, with a timeout and bounded output. Injected
 * into providers so tests use a fake runner; nothing here interprets the tool's output.
 */
import { spawn } from "node:child_process";
import { EvidenceError } from "../errors.ts";

export interface CommandResult {
  readonly exitCode: number;
  readonly stdout: Uint8Array;
  /** At most 4 KiB of stderr, for error messages. */
  readonly stderr: string;
}

export type CommandRunner = (command: string, args: readonly string[]) => Promise<CommandResult>;

const MAX_STDOUT = 1 << 20;
const MAX_STDERR = 4096;

/** How long a tool that ignores the timeout's SIGTERM gets before SIGKILL. */
const KILL_GRACE_MS = 2000;

export function createCommandRunner(options: { timeoutMs?: number; killGraceMs?: number } = {}): CommandRunner {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const killGraceMs = options.killGraceMs ?? KILL_GRACE_MS;
  return (command, args) =>
    new Promise((resolve, reject) => {
      const child = spawn(command, [...args], { shell: false, stdio: ["ignore", "pipe", "pipe"] });
      // Set when the deadline passes and this runner sends SIGTERM: only a child that then dies of
      // that SIGTERM is reported as timed out (not one that died of another signal, however late).
      let killedByTimeout = false;
      let killedAfterGrace = false;
      let escalation: ReturnType<typeof setTimeout> | undefined;
      const timer = setTimeout(() => {
        killedByTimeout = child.kill("SIGTERM");
        // A tool that ignores SIGTERM (stuck in the TPM driver, or trapping it) must not hang the
        // boot: SIGKILL after a grace period.
        escalation = setTimeout(() => {
          killedAfterGrace = child.kill("SIGKILL");
        }, killGraceMs);
      }, timeoutMs);
      const out: Buffer[] = [];
      let outLength = 0;
      let err = "";
      child.stdout.on("data", (chunk: Buffer) => {
        outLength += chunk.length;
        if (outLength <= MAX_STDOUT) out.push(chunk);
      });
      child.stderr.on("data", (chunk: Buffer) => {
        if (err.length < MAX_STDERR) err += chunk.toString("utf8").slice(0, MAX_STDERR - err.length);
      });
      child.on("error", (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (error.code === "ENOENT") {
          reject(
            new EvidenceError(
              "TPM_TOOL_MISSING",
              `${command}: expected the program on PATH, found none (install tpm2-tools)`,
              {
                cause: error,
              },
            ),
          );
        } else {
          reject(
            new EvidenceError("TPM_COMMAND_FAILED", `${command}: could not run (${error.code ?? "error"})`, {
              cause: error,
            }),
          );
        }
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        clearTimeout(escalation);
        if ((killedByTimeout && signal === "SIGTERM") || (killedAfterGrace && signal === "SIGKILL")) {
          reject(
            new EvidenceError(
              "TPM_COMMAND_TIMEOUT",
              `${command}: expected it to finish within ${timeoutMs} ms, found it still running (killed with ${signal})`,
            ),
          );
          return;
        }
        if (outLength > MAX_STDOUT) {
          reject(
            new EvidenceError(
              "TPM_COMMAND_FAILED",
              `${command}: expected at most ${MAX_STDOUT} bytes of output, found more`,
            ),
          );
          return;
        }
        resolve({
          exitCode: code ?? (signal === null ? -1 : 128),
          stdout: new Uint8Array(Buffer.concat(out)),
          stderr: err,
        });
      });
    });
}
