/**
 * The commands policy init's note gives an operator whose TDX policy skips the TCB status
 * (attestation/policy-from-evidence.ts TCB_CHECK_NOTE): each is a command line the program takes
 * (test/helpers/command-line.ts), once its placeholders are filled in, and docs/platforms.md's
 * "Command line" section shows the same two commands; the file each saves is one attest --evidence-out
 * writes (client/cli/run-client.ts EVIDENCE_OUT_FILES). That the commands do what the note says runs in
 * test/e2e/evidence-out.test.ts (attest --evidence-out, then verify-evidence on the saved quote).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { TCB_CHECK_NOTE } from "../../attestation/policy-from-evidence.ts";
import { EVIDENCE_OUT_FILES } from "../../client/cli/run-client.ts";
import { devPolicy } from "../client/helpers.ts";
import { REPO_ROOT } from "../helpers/cli.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { checkCommand } from "../helpers/command-line.ts";
import { shellBlocks } from "../helpers/doc-pages.ts";

/** The placeholders of the note, as an operator fills them in. */
const FILLED: Readonly<Record<string, string>> = {
  URL: "https://cloister.example",
  POLICY_FILE: "policy.json",
  API_KEY_FILE: "my-api-key",
  DIR: "evidence",
  COLLATERAL_DIR: "collateral",
};

/** The attest --evidence-out form (client/cli/run-client.ts EVIDENCE_OUT_FILES) each note's deployment saves. */
const SAVED_AS: Readonly<Record<keyof typeof TCB_CHECK_NOTE, keyof typeof EVIDENCE_OUT_FILES>> = {
  guest: "tdx",
  azure: "azure-tdx",
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

const run = inProcessCli();

const fill = (word: string) => word.replace(/^[A-Z_]+(?=\/|$)/, (name) => FILLED[name] ?? name);

describe("policy init's note on checking a skipped TDX TCB status", () => {
  it.each(Object.entries(TCB_CHECK_NOTE))(
    "%s: attest --evidence-out, then verify-evidence --tee tdx --collateral",
    (key, note) => {
      const commands = noteCommands(note);
      expect(commands.map((words) => checkCommand(words).command)).toEqual(["attest", "verify-evidence"]);
      for (const words of commands) expect(checkCommand(words.map(fill)).problems).toEqual([]);
      // The second reads the file the first saves.
      const saved = /saves the verified [^,]* as (DIR\/\S+),/.exec(note)?.[1];
      expect(saved).toBeDefined();
      expect(commands[1]).toContain(saved);
      // A file attest --evidence-out writes for that deployment (a rename there fails here).
      const files: readonly string[] = EVIDENCE_OUT_FILES[SAVED_AS[key as keyof typeof TCB_CHECK_NOTE]];
      expect(files).toContain(saved?.replace(/^DIR\//, ""));
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

  it.each(Object.entries(TCB_CHECK_NOTE))(
    "%s: its attest command, filled in, is not refused for want of the remote deployment's API key",
    async (_, note) => {
      // A deployment whose TCB status this note is about is never on a loopback address: there, attest
      // takes no default key (readApiKey), so the command must name the key file policy init was given.
      const dir = mkdtempSync(join(tmpdir(), "cloister-tcb-note-"));
      try {
        writeFileSync(join(dir, "policy.json"), JSON.stringify(await devPolicy()));
        const paths: Record<string, string> = {
          URL: "https://cloister.example",
          POLICY_FILE: join(dir, "policy.json"),
          // Never read: a missing key file is refused by name before any connection is made.
          API_KEY_FILE: join(dir, "no-such-key"),
          DIR: dir,
        };
        const attest = (noteCommands(note)[0] as string[]).map((word) =>
          word.replace(/^[A-Z_]+(?=\/|$)/, (name) => paths[name] ?? name),
        );
        vi.stubEnv("CLOISTER_API_KEY", undefined);
        const { code, stderr } = await run(attest.slice(1));
        expect(code).toBe(2);
        expect(stderr).toContain(`--api-key-file ${paths.API_KEY_FILE}: `);
        expect(stderr).not.toContain("expected the API key file");
      } finally {
        vi.unstubAllEnvs();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
