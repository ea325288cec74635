/** The example lines of a --help text: the indented lines under "Examples:" up to the next blank line. */
export function examplesOf(help: string): string[] {
  const start = help.indexOf("\nExamples:\n");
  if (start < 0) return [];
  const lines: string[] = [];
  for (const line of help.slice(start + "\nExamples:\n".length).split("\n")) {
    if (!line.startsWith("  ")) break;
    lines.push(line.trim());
  }
  return lines;
}
