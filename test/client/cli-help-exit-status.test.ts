/**
 * `cloister --help` says what the exit status means and how an error reads, as README.md's
 * "Commands" does, so a newcomer or a script need not look elsewhere; and the statuses it names
 * are the ones the program gives (bad input 2, help 0).
 */
import { describe, expect, it } from "vitest";
import { inProcessCli } from "../helpers/cli-in-process.ts";

const run = inProcessCli();

describe("cloister --help: exit status", () => {
  it("names 0, 1, 2 and 141, and the one-line error form with where the codes are listed", async () => {
    const { code, stdout } = await run(["--help"]);
    expect(code).toBe(0);
    const section = stdout.slice(stdout.indexOf("\nExit status:\n"));
    expect(section.startsWith("\nExit status:\n"), stdout).toBe(true);
    const text = section.replace(/\s+/g, " ");
    expect(text).toContain("0 success");
    expect(text).toContain("1 a failure");
    expect(text).toContain("2 bad input (options, files, policy, URL)");
    expect(text).toContain("141 its output closed by its reader");
    expect(text).toContain("cloister: CODE: message");
    expect(text).toContain("docs/errors.md");
  });

  it("gives 2 for bad input, as it says", async () => {
    expect((await run(["attest", "--no-such-option"])).code).toBe(2);
    expect((await run(["no-such-command"])).code).toBe(2);
  });
});
