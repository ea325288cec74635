/**
 * The commands policy init's note gives an operator whose TDX policy skips the TCB status
 * (attestation/policy-from-evidence.ts TCB_CHECK_NOTE): each is a command line the program takes
 * (test/helpers/command-line.ts), once its placeholders are filled in, and docs/platforms.md's
 * "Command line" section shows the same two commands. That the commands do what the note says runs in
 * test/e2e/evidence-out.test.ts (attest --evidence-out, then verify-evidence on the saved quote).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { TCB_CHECK_NOTE } from "../../attestation/policy-from-evidence.ts";
import { REPO_ROOT } from "../helpers/cli.ts";
import { checkCommand } from "../helpers/command-line.ts";
import { shellBlocks } from "../helpers/doc-pages.ts";

/** The placeholders of the note, as an operator fills them in. */
const FILLED: Readonly<Record<string, string>> = {
  URL: "https://cloister.example",
  POLICY_FILE: "policy.json",
  DIR: "evidence",
  COLLATERAL_DIR: "collateral",
};

/** The `cloister …` commands of a note: the text after "check the platform's TCB: ", split at ", then ". */
function noteCommands(note: string): string[][] {
  const body = note.replace(/^check the platform's TCB: /, "").replace(/ \(docs\/platforms\.md, "Command line"\)$/, "");
  return body.split(", then ").map((part) => {
    const words = part.split(" ");
    const end = words.findIndex((w, i) => i > 0 && w === "saves");
    return end < 0 ? words : words.slice(0, end);
  });
}

const fill = (word: string) => word.replace(/^[A-Z_]+(?=\/|$)/, (name) => FILLED[name] ?? name);

describe("policy init's note on checking a skipped TDX TCB status", () => {
  it.each(Object.entries(TCB_CHECK_NOTE))(
    "%s: attest --evidence-out, then verify-evidence --tee tdx --collateral",
    (_, note) => {
      const commands = noteCommands(note);
      expect(commands.map((words) => checkCommand(words).command)).toEqual(["attest", "verify-evidence"]);
      for (const words of commands) expect(checkCommand(words.map(fill)).problems).toEqual([]);
      // The second reads the file the first saves.
      const saved = /saves the verified [^,]* as (DIR\/\S+),/.exec(note)?.[1];
      expect(saved).toBeDefined();
      expect(commands[1]).toContain(saved);
    },
  );

  it('docs/platforms.md\'s "Command line" section shows both commands', () => {
    const markdown = readFileSync(join(REPO_ROOT, "docs", "platforms.md"), "utf8");
    const section = markdown.slice(markdown.indexOf("\n## Command line\n"));
    const lines = shellBlocks(section).flatMap((block) =>
      block.split("\n").map((line) => line.replace(/\s+#\s.*$/, "")),
    );
    for (const note of Object.values(TCB_CHECK_NOTE)) {
      for (const words of noteCommands(note)) expect(lines).toContain(words.join(" "));
    }
  });
});
