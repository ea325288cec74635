/** `cloister` sub-commands of the client party. Actions import their implementation lazily. */
import type { Command } from "commander";

export function registerClientCommands(_program: Command): void {}
