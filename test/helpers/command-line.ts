/**
 * A `cloister` command line as the docs write it, against the program of client/cli/program.ts:
 * the sub-command it names, its options and their values (the required ones given), its operands. Used by the docs tests
 * (test/docs/), so that a command a page shows cannot drift from the command line.
 */

import type { Command, Option } from "commander";
import { buildProgram, isRequiredOption } from "../../client/cli/program.ts";

/**
 * What is wrong with `words` (a unit's ExecStart, a shell command) as a `cloister` command line: the sub-command it names
 * (`host`, `kbs serve`) and one line per problem.
 */
export function checkCommand(words: readonly string[]): { command: string; problems: string[] } {
  const entry = words.findIndex((word) => word.endsWith("/bin/cloister.js") || word === "cloister");
  if (entry < 0) return { command: "", problems: [`no cloister command in "${words.join(" ")}"`] };
  let command: Command = buildProgram();
  let i = entry + 1;
  const path: string[] = [];
  for (;;) {
    const word = words[i];
    const sub = command.commands.find((c) => c.name() === word);
    if (word === undefined || sub === undefined) break;
    command = sub;
    path.push(word);
    i++;
  }
  const problems: string[] = [];
  if (path.length === 0 || command.commands.length > 0) {
    problems.push(`"${words.slice(entry + 1, i + 1).join(" ")}": not a cloister sub-command that runs`);
  }
  let operands = 0;
  const given = new Set<Option>();
  for (; i < words.length; i++) {
    const word = words[i] as string;
    if (!word.startsWith("-")) {
      operands++;
      continue;
    }
    const option = command.options.find((o) => o.long === word || o.short === word);
    if (option === undefined) {
      problems.push(`${path.join(" ")}: no option ${word}`);
      continue;
    }
    given.add(option);
    if (!option.required && !option.optional) continue;
    const value = words[i + 1];
    if (value === undefined || (option.required && value.startsWith("-"))) {
      problems.push(`${path.join(" ")} ${word}: expected a value, found none`);
      continue;
    }
    i++;
    try {
      // As commander does for a first value: a repeatable option (`up --cors-origin`) folds it into its default.
      option.parseArg?.(value, option.defaultValue);
    } catch (error) {
      problems.push(`${path.join(" ")} ${word} ${value}: ${(error as Error).message}`);
    }
  }
  // As the program's preAction hook does: every required option of the command and its parents.
  for (let c: Command | null = command; c !== null; c = c.parent) {
    for (const option of c.options) {
      if (isRequiredOption(option) && !given.has(option) && option.defaultValue === undefined) {
        problems.push(`${path.join(" ")}: required option '${option.flags}' not specified`);
      }
    }
  }
  if (operands > command.registeredArguments.length) {
    problems.push(`${path.join(" ")}: ${operands} operands, the command takes ${command.registeredArguments.length}`);
  }
  return { command: path.join(" "), problems };
}
