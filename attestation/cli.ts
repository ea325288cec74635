/** `cloister` sub-commands of the attestation/ party. Actions import their implementation lazily. */
import type { Command } from "commander";

export function registerAttestationCommands(_program: Command): void {}
