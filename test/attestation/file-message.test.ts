/**
 * fileMessage names a file in a refusal (`--policy PATH: reason`): as given when that reads
 * unambiguously, else as one shell word (shellWord). Read back from the line `cloister` writes
 * (formatCliError, which escapes what a terminal would act on), every path must give itself again:
 * a word in quotes (`'…'`, `$'…'`) as a shell reads it, any other as written. And no two paths may
 * give the same line: a path holding a line feed and one holding the six characters `\u000a`
 * must not read alike, nor a path and one that is that path in quotes.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { fileMessage, shellWord } from "../../attestation/bounded-read.ts";
import { formatCliError, UsageError } from "../../client/cli/output.ts";

/** What a POSIX shell (bash here) makes of `word`: the one argument it gives printf. */
function shellReads(word: string): string {
  const run = spawnSync("bash", ["-c", `printf '%s' ${word}`], { encoding: "utf8" });
  expect(run.status, word).toBe(0);
  return run.stdout;
}

/** The path a reader takes from the line cloister writes for fileMessage(path, "--policy", REASON). */
const REASON = "expected a policy, found none";
function pathShown(path: string): { line: string; read: string } {
  const line = formatCliError(new UsageError(fileMessage(path, "--policy", REASON)));
  const prefix = "cloister: USAGE: --policy ";
  expect(line.startsWith(prefix), line).toBe(true);
  expect(line.endsWith(`: ${REASON}`), line).toBe(true);
  const shown = line.slice(prefix.length, line.length - REASON.length - 2);
  return { line, read: shown.startsWith("'") || shown.startsWith("$'") ? shellReads(shown) : shown };
}

const PATHS = [
  "/tmp/ordinary/policy.json",
  "/tmp/with space/policy.json",
  "/tmp/a: b/policy.json",
  "/tmp/it's: here.json",
  "/tmp/line\nfeed.json",
  "/tmp/line\\u000afeed.json",
  "/tmp/a: b\nc.json",
  "/tmp/a: b\\u000ac.json",
  "/tmp/tab\there.json",
  "/tmp/escape\u001b[31mred.json",
  "/tmp/right-to-left\u202egnp.json",
  "'quoted'",
  "quoted",
  "$'dollar'",
  "dollar",
  // A leading "-": written as it is (not as ./-…, which a reader takes for another path).
  "-a: b.json",
  "./-a: b.json",
  "-line\nfeed.json",
  "-plain.json",
  // Each would read as another name: "--policy foo:: …", standard input's name, "--policy : …".
  "foo:",
  "foo::",
  "- (standard input)",
  "-",
  "",
  // A space first or last: pasted into a shell unquoted, it names the path without it.
  "foo ",
  " foo",
  "-- ",
  " ",
];

describe("fileMessage: a path read back from cloister's error line", () => {
  it("gives the path itself, whatever it holds (quotes, ': ', line feeds, escapes)", () => {
    for (const path of PATHS) expect(pathShown(path).read, JSON.stringify(path)).toBe(path);
  });

  it("no two paths give the same line", () => {
    const lines = PATHS.map((path) => pathShown(path).line);
    expect(new Set(lines).size).toBe(PATHS.length);
  });

  it("an ordinary path and one with a space are written as given", () => {
    for (const path of ["/tmp/ordinary/policy.json", "/tmp/with space/policy.json", "/tmp/a:b", "-plain.json"]) {
      expect(fileMessage(path, "--policy", REASON)).toBe(`--policy ${path}: ${REASON}`);
    }
  });

  it("a path ending in ':', named as standard input is, or empty is quoted, so it reads as itself", () => {
    expect(fileMessage("foo:", "--policy", REASON)).toBe(`--policy 'foo:': ${REASON}`);
    expect(fileMessage("- (standard input)", "--policy", REASON)).toBe(`--policy '- (standard input)': ${REASON}`);
    expect(fileMessage("-", "--policy", REASON)).toBe(`--policy '-': ${REASON}`);
    expect(fileMessage("", "--policy", REASON)).toBe(`--policy '': ${REASON}`);
  });
});

describe("fileMessage: a path with a space first or last", () => {
  it("is quoted: pasted into bash, the word shown names the path itself (not foo for 'foo ')", () => {
    for (const path of ["foo ", " foo", "-- ", " ", "/tmp/a b "]) {
      const message = fileMessage(path, "--policy", REASON);
      const word = message.slice("--policy ".length, message.length - REASON.length - 2);
      expect(word, JSON.stringify(path)).toMatch(/^'/);
      expect(shellReads(word), JSON.stringify(path)).toBe(path);
    }
  });
});

describe("shellWord: pasted from cloister's error line, a shell reads the text itself", () => {
  it("for text holding a line feed, a tab, an escape, a bidirectional control, a quote", () => {
    for (const text of ["a\nb", "a\tb", "a\u001b[31mb", "a\u202eb", "it's", "a\\nb", "a\u00850", "a\u0001" + "7"]) {
      const word = shellWord(text);
      // Nothing in it for the error line to escape: what is shown is what is pasted.
      const line = formatCliError(new UsageError(`mkdir -p ${word}`));
      expect(line, JSON.stringify(text)).toBe(`cloister: USAGE: mkdir -p ${word}`);
      expect(shellReads(word), JSON.stringify(text)).toBe(text);
    }
  });

  it("for text starting with =, quoted: zsh (EQUALS, on by default) reads =ls as the path of the ls command", () => {
    // No zsh here to ask: the form is checked, and bash reads it back as the text.
    for (const text of ["=ls", "=", "=a=b"]) {
      const word = shellWord(text);
      expect(word, text).toBe(`'${text}'`);
      expect(shellReads(word), text).toBe(text);
    }
    // An = further on is no expansion in any of these shells: as given.
    expect(shellWord("a=b")).toBe("a=b");
  });
});
