/**
 * The `cloister` command line: one entry, sub-commands registered by each party's `cli.ts`.
 *
 * Each `register*` function only declares options; its action imports the implementation lazily,
 * so `cloister host` never loads enclave or sealing code into the untrusted host process.
 */
import { Command, CommanderError } from "commander";
import { registerAttestationCommands } from "../../attestation/cli.ts";
import { registerKbsCommands } from "../../attestation/kbs/cli.ts";
import { registerEnclaveCommands } from "../../enclave/cli.ts";
import { registerHostCommands } from "../../host/cli.ts";
import { registerManifestCommands } from "../../manifests/cli.ts";
import { MANIFEST_BAD_INPUT_CODES, ManifestError } from "../../manifests/errors.ts";
import { registerModelCommands } from "../../models/cli.ts";
import { registerClientCommands } from "./commands.ts";
import { formatCliError, stopWhenParentExits, UsageError, usageLine } from "./output.ts";

export function buildProgram(): Command {
  const program = new Command("cloister")
    .description("Confidential-computing inference: attested, sealed prompts to llama.cpp models in SEV-SNP / TDX VMs")
    .version("0.1.0")
    // Commander's own usage errors ("error: required option …") in the one-line form of every
    // other error: `cloister: USAGE: … (run with --help for usage)`.
    .configureOutput({ outputError: (text, write) => write(usageLine(text)) });
  registerModelCommands(program);
  registerAttestationCommands(program);
  registerManifestCommands(program);
  registerEnclaveCommands(program);
  registerKbsCommands(program);
  registerHostCommands(program);
  registerClientCommands(program);
  for (const command of program.commands) command.exitOverride();
  program.exitOverride();
  return program;
}

/**
 * Bad input (exit 2): a usage error, a client configuration error such as a malformed URL or
 * policy, or a manifest error about an input file (unreadable, malformed, an invalid field).
 */
function isBadInput(error: unknown): boolean {
  if (error instanceof UsageError) return true;
  if (error instanceof ManifestError) return MANIFEST_BAD_INPUT_CODES.has(error.code);
  // By shape: importing client/errors.ts here would load client code into every command.
  return (
    error instanceof Error && error.name === "ClientError" && (error as { kind?: unknown }).kind === "configuration"
  );
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: "user" });
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit through here with code 0; usage errors were already printed.
      return error.exitCode === 0 ? 0 : 2;
    }
    process.stderr.write(`${formatCliError(error)}\n`);
    return isBadInput(error) ? 2 : 1;
  }
}

stopWhenParentExits();
process.exitCode = await main(process.argv.slice(2));
