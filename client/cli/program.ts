/**
 * The `cloister` command line: one program, sub-commands registered by each party's `cli.ts`
 * (the process entry is main.ts).
 *
 * Each `register*` function only declares options; its action imports the implementation lazily,
 * so `cloister host` never loads enclave or sealing code into the untrusted host process.
 */
import { Command, CommanderError, Help, type Option } from "commander";
import { registerAttestationCommands } from "../../attestation/cli.ts";
import { AttestationError } from "../../attestation/errors.ts";
import { registerKbsCommands } from "../../attestation/kbs/cli.ts";
import { registerEnclaveCommands } from "../../enclave/cli.ts";
import { ModelNotAFileError } from "../../enclave/engine/errors.ts";
import { EnclaveError } from "../../enclave/errors.ts";
import { registerHostCommands } from "../../host/cli.ts";
import { registerManifestCommands } from "../../manifests/cli.ts";
import { MANIFEST_BAD_INPUT_CODES, ManifestError } from "../../manifests/errors.ts";
import { registerModelCommands } from "../../models/cli.ts";
import { failedOnBadPath, isModelBadInput, ModelError } from "../../models/errors.ts";
import { ClientError } from "../errors.ts";
import { registerClientCommands } from "./commands.ts";
import { examples } from "./help-examples.ts";
import { formatCliError, UsageError, usageLine } from "./output.ts";

/** `command` and every sub-command under it, at any depth. */
export function commandTree(command: Command): Command[] {
  return [command, ...command.commands.flatMap(commandTree)];
}

export function buildProgram(): Command {
  const program = new Command("cloister")
    .description("Confidential-computing inference: attested, sealed prompts to llama.cpp models in SEV-SNP / TDX VMs")
    .version("0.1.0")
    .addHelpText(
      "after",
      examples(
        "cloister demo                  # boot a simulated deployment, ask one question, shut down",
        "cloister up                    # run one on 127.0.0.1 until Ctrl-C; writes .cloister/policy.json",
        'cloister chat --url http://127.0.0.1:8080 --policy .cloister/policy.json "What does the enclave do?"',
      ) +
        "\n\nExit status:\n" +
        "  0 success; 1 a failure (verification, integrity, a refusal, a host or enclave error);\n" +
        "  2 bad input (options, files, policy, URL); 141 its output closed by its reader (| head).\n" +
        "  An error is one line on stderr, cloister: CODE: message (every code: docs/errors.md).",
    );
  registerModelCommands(program);
  registerAttestationCommands(program);
  registerManifestCommands(program);
  registerEnclaveCommands(program);
  registerKbsCommands(program);
  registerHostCommands(program);
  registerClientCommands(program);
  // On every command of the tree, however deep (`audit verify`, `model make tiny`) and however
  // registered: commander's own usage errors ("error: required option …") in the one-line form of
  // every other error, `cloister: USAGE: … (run with --help for usage)`, and thrown to main(),
  // which exits 2 (0 for --help), instead of commander's own process.exit(1).
  for (const command of commandTree(program)) {
    command.configureOutput({ outputError: (text, write) => write(usageLine(text)) }).exitOverride();
    // What main() makes of `help` (helpAsOption): the whole command path after it.
    if (command.commands.length > 0) command.helpCommand("help [command...]", "display help for a command");
    // --help marks each required option (isRequiredOption, asked as the help is written), as
    // commander itself would not (it never says so), in its own style, `(required)` after the description.
    command.configureHelp({ optionDescription: requiredMarked });
  }
  checkRequiredOptionsAfterUnknownOnes(program);
  // The program's own --help lists what a newcomer runs first (README's Commands table order), not
  // the order the parties' cli.ts files are registered in; `help` last.
  program.configureHelp({ optionDescription: requiredMarked, visibleCommands: commandsInReadmeOrder });
  return program;
}

/** README.md's Commands table order of the top-level commands; any other after them, as registered. */
const COMMAND_ORDER = [
  "demo",
  "up",
  "attest",
  "chat",
  "proxy",
  "web",
  "policy",
  "receipt",
  "bundle",
  "enclave",
  "kbs",
  "model",
  "host",
  "verify-evidence",
  "manifest",
  "audit",
];

/** Help's visibleCommands, sorted by COMMAND_ORDER (a stable sort: unlisted ones, `help` among them, keep their order). */
function commandsInReadmeOrder(this: Help, command: Command): Command[] {
  const rank = (c: Command) => {
    const at = COMMAND_ORDER.indexOf(c.name());
    return at < 0 ? COMMAND_ORDER.length : at;
  };
  return Help.prototype.visibleCommands.call(this, command).sort((a, b) => rank(a) - rank(b));
}

/** Help's optionDescription, ` (required)` after it for a required option. */
function requiredMarked(this: Help, option: Option): string {
  const description = Help.prototype.optionDescription.call(this, option);
  return isRequiredOption(option) ? `${description} (required)` : description;
}

/** The options registered as required, which commander no longer sees as mandatory (below). */
const REQUIRED_OPTIONS = new WeakSet<Option>();

/**
 * Whether `option` (of a buildProgram tree) is required: `option.mandatory` is cleared there, so
 * this is what says so (the docs tests check that every documented command gives its required ones).
 */
export function isRequiredOption(option: Option): boolean {
  return REQUIRED_OPTIONS.has(option);
}

/**
 * Required options checked after unknown ones: commander checks required options first, so a typo
 * in one (`--ulr`) was reported as the option missing, never as the typo with its suggestion
 * ("Did you mean --url?"). Here no option is mandatory for commander, and a preAction hook, which
 * runs after commander's unknown-option check, refuses a required option left out in commander's
 * own words (`required option '--url <url>' not specified`).
 */
function checkRequiredOptionsAfterUnknownOnes(program: Command): void {
  for (const command of commandTree(program)) {
    for (const option of command.options) {
      if (!option.mandatory) continue;
      REQUIRED_OPTIONS.add(option);
      option.makeOptionMandatory(false);
    }
  }
  program.hook("preAction", (_program, action) => {
    // The action's command and its parents, as commander walks them.
    for (let command: Command | null = action; command !== null; command = command.parent) {
      for (const option of command.options) {
        if (REQUIRED_OPTIONS.has(option) && command.getOptionValue(option.attributeName()) === undefined) {
          command.error(`error: required option '${option.flags}' not specified`, {
            code: "commander.missingMandatoryOptionValue",
          });
        }
      }
    }
  });
}

/**
 * Codes of an option that contradicts another option or the manifest, or is malformed, raised where
 * the option is used, below the command line: an enclave option given with a --tee it does not
 * apply to, a malformed --kds-url or CLOISTER_KDS_URL (enclave/tee.ts), a --kbs-url missing for a
 * model sealed at rest or given for one that is not (enclave/service.ts), all before any evidence
 * is asked for. Their messages name the option; they are bad input as a USAGE error is.
 */
const OPTION_CONFLICT_CODES: ReadonlySet<string> = new Set([
  "TDX_COLLATERAL_UNUSED",
  "SNP_KDS_OPTION_UNUSED",
  "SNP_KDS_URL_INVALID",
  "BOOT_KBS_REQUIRED",
  "BOOT_KBS_UNUSED",
]);

/**
 * Codes of a `cloister policy init` refusal that an option lifts (attestation/policy-from-evidence.ts,
 * client/cli/run-policy.ts): the deployment shows something a policy accepts only when asked
 * (simulated evidence, a migration agent, no TCB collateral, an Azure VM without Secure Boot or with
 * a serial console), and the message names the --allow-… option. Bad input, as kbs serve's refusal
 * that --allow-simulator-on-network lifts is: run again with the option, or fix the deployment. The
 * other POLICY_INIT_ refusals (a debuggable guest, a revoked TCB…) no option lifts: failures.
 */
const OPTION_LIFTED_CODES: ReadonlySet<string> = new Set([
  "POLICY_INIT_SIMULATED",
  "POLICY_INIT_MIGRATION_AGENT",
  "POLICY_INIT_NO_COLLATERAL",
  "POLICY_INIT_AZURE_SECURE_BOOT",
  "POLICY_INIT_AZURE_CONSOLE",
]);

/**
 * Bad input (exit 2): a usage error, a client configuration error such as a malformed URL or
 * policy, a manifest error about an input file (unreadable, malformed, an invalid field), a model
 * file or output path that cannot be used as given (missing, unreadable, there already), or an
 * option that contradicts another or the manifest (OPTION_CONFLICT_CODES), or a policy init refusal
 * that an option lifts (OPTION_LIFTED_CODES). Every other error is a failure (exit 1).
 */
export function isBadInput(error: unknown): boolean {
  if (error instanceof UsageError) return true;
  if (error instanceof ManifestError) return MANIFEST_BAD_INPUT_CODES.has(error.code);
  if (error instanceof ModelError) return isModelBadInput(error);
  if (error instanceof AttestationError) {
    return OPTION_CONFLICT_CODES.has(error.code) || OPTION_LIFTED_CODES.has(error.code);
  }
  if (error instanceof EnclaveError) {
    if (OPTION_CONFLICT_CODES.has(error.code)) return true;
    // The enclave's (and `model run --sha256`'s) --model file, missing, not a regular file
    // (ModelNotAFileError) or not permitted, as MODEL_IO is for the other model commands.
    if (error instanceof ModelNotAFileError) return true;
    return error.code === "MODEL_NOT_FOUND" && failedOnBadPath(error);
  }
  return error instanceof ClientError && error.kind === "configuration";
}

/**
 * The command under `command` that `words` name from `from` on, as far as they name one, and where
 * that walk stopped.
 */
function walkCommands(command: Command, words: readonly string[], from: number): { command: Command; at: number } {
  let at = from;
  for (; at < words.length; at++) {
    const next = command.commands.find((c) => c.name() === words[at]);
    if (next === undefined) break;
    command = next;
  }
  return { command, at };
}

/**
 * `help` as the help option, with the whole command path after it, at the top or under a group
 * (`cloister help audit verify`, `cloister audit help verify`: `cloister audit verify --help`), as
 * git and npm read it. Commander's own help command reads one word after it (`help audit verify`
 * showed audit's help) and prints the whole help on stderr for a name it does not know; a name that
 * is no command of a group is left without --help, for commander to refuse in one USAGE line
 * (unknown command). Anything else after the path only shows that help: `help chat hello` never
 * sends "hello". The help option after such a name (`cloister frob --help`, `cloister audit frob -h`)
 * is dropped, so that commander refuses the name as it does after `help` (it would print the whole
 * help instead, exit 0, as if the name were right).
 */
function helpAsOption(program: Command, argv: readonly string[]): string[] {
  const group = walkCommands(program, argv, 0);
  const word = argv[group.at];
  const isGroup = group.command.commands.length > 0;
  if (isGroup && word !== undefined && word !== "help" && !word.startsWith("-")) {
    return argv.filter((w) => w !== "--help" && w !== "-h");
  }
  if (word !== "help" || !isGroup) return [...argv];
  const words = [...argv.slice(0, group.at), ...argv.slice(group.at + 1)];
  const path = walkCommands(group.command, words, group.at);
  // A word that names no command of a group; words after a leaf command, or options, are not run.
  const unknown = words[path.at];
  return unknown !== undefined && path.command.commands.length > 0 && !unknown.startsWith("-")
    ? words
    : [...words, "--help"];
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(helpAsOption(program, argv), { from: "user" });
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
