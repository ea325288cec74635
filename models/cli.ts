/** `cloister` sub-commands of the models/ party. Actions import their implementation lazily. */
import type { Command } from "commander";

export function registerModelCommands(_program: Command): void {}
