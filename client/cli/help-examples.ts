/**
 * The "Examples:" section that ends every command's --help (test/client/cli-help-examples.test.ts
 * checks that each command has one, and that each line runs that command with options it has).
 * The lines are the command lines README.md and docs/ show, so a reader can copy them.
 */

/** Help text for `command.addHelpText("after", …)`: each line a whole `cloister …` command line. */
export function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  ${line}`).join("\n")}`;
}
