/** `cloister` sub-commands of the enclave/ party. Actions import their implementation lazily. */
import type { Command } from "commander";

export function registerEnclaveCommands(_program: Command): void {}
