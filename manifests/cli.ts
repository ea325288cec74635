/** `cloister` sub-commands of the manifests/ party. Actions import their implementation lazily. */
import type { Command } from "commander";

export function registerManifestCommands(_program: Command): void {}
