/**
 * Shared helpers for command output: one clear line per error, JSON when asked, option parsing
 * that names the option, the expected and the found value.
 */
import { InvalidArgumentError } from "commander";

/** Bad input on the command line: exit code 2 and one line naming what was wrong. */
export class UsageError extends Error {
  readonly code = "USAGE";
}

/** One line for any error: `cloister: CODE: message`. Never includes a stack or a secret. */
export function formatCliError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const prefix = typeof code === "string" && code !== "USAGE" ? `${code}: ` : "";
    return `cloister: ${prefix}${error.message}`;
  }
  return `cloister: ${String(error)}`;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Commander option parser for an integer within [min, max]. */
export function intOption(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`${name} expects an integer, found "${value}"`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} expects ${min}..${max}, found ${n}`);
    return n;
  };
}

/** Commander option parser for a finite number within [min, max]. */
export function numberOption(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n)) {
      throw new InvalidArgumentError(`${name} expects a number, found "${value}"`);
    }
    if (n < min || n > max) throw new InvalidArgumentError(`${name} expects ${min}..${max}, found ${n}`);
    return n;
  };
}

/** Commander option parser for an ISO-8601 time. */
export function timeOption(name: string): (value: string) => Date {
  return (value: string) => {
    const t = new Date(value);
    if (Number.isNaN(t.getTime())) throw new InvalidArgumentError(`${name} expects an ISO-8601 time, found "${value}"`);
    return t;
  };
}

/** Commander option parser for a fixed set of choices. */
export function choiceOption<T extends string>(name: string, choices: readonly T[]): (value: string) => T {
  return (value: string) => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`${name} expects one of ${choices.join(", ")}, found "${value}"`);
    }
    return value as T;
  };
}
