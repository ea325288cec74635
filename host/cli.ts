/** `cloister` sub-commands of the host/ party. Actions import their implementation lazily. */
import type { Command } from "commander";

export function registerHostCommands(_program: Command): void {}
