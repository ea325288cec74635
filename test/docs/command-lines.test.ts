/**
 * The `cloister` commands of the docs' shell blocks against the command line: every `sh` block of
 * README.md, SECURITY.md and docs/*.md is split into commands, and each one that runs `cloister`
 * must name a sub-command the program of client/cli/program.ts has, options that sub-command takes
 * (each value-taking option followed by a value its parser accepts), every option it requires, and
 * no more operands than it takes (test/helpers/command-line.ts, as for docs/deploy.md's systemd
 * units). So a reader who copies a command never meets an option that is gone, was renamed or is
 * missing. Checked here: names and values only, not what the commands do (the e2e tests run them).
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.ts";
import { checkCommand } from "../helpers/command-line.ts";
import { DOC_PAGES, shellBlocks } from "../helpers/doc-pages.ts";

/** A shell word (quotes and `$(…)` kept in it), or a control operator between commands. */
const TOKEN = /(?:"(?:[^"\\]|\\.)*"|'[^']*'|\$\([^)]*\)|[^\s"'|;&])+|&&|\|\||[|;&]/g;
const OPERATOR = /^(?:&&|\|\||[|;&])$/;

/** The commands of a Markdown text's `sh` blocks that run cloister, each as its words. */
function cloisterCommands(markdown: string): string[][] {
  const commands: string[][] = [];
  for (const block of shellBlocks(markdown)) {
    for (const line of block.replace(/\\\n/g, " ").split("\n")) {
      const code = line.replace(/(^|\s)#.*$/, "");
      let words: string[] = [];
      for (const token of [...(code.match(TOKEN) ?? []), ";"]) {
        if (!OPERATOR.test(token)) {
          words.push(token);
          continue;
        }
        if (words.includes("cloister") || words.some((word) => word.endsWith("/bin/cloister.js"))) commands.push(words);
        words = [];
      }
    }
  }
  return commands;
}

function problems(markdown: string): string[] {
  return cloisterCommands(markdown).flatMap((words) =>
    checkCommand(words).problems.map((problem) => `${problem} (in: ${words.join(" ")})`),
  );
}

describe("the cloister commands in the docs' shell blocks", () => {
  const pages = DOC_PAGES.map((page) => ({ page, markdown: readFileSync(join(REPO_ROOT, page), "utf8") }));

  it("are found: README's quick start, the key broker and the deployment's", () => {
    const found = (page: string) =>
      cloisterCommands(pages.find((p) => p.page === page)?.markdown ?? "").map((w) => checkCommand(w).command);
    expect(found("README.md")).toEqual(
      expect.arrayContaining(["up", "attest", "chat", "policy init", "kbs serve", "proxy", "web", "host"]),
    );
    expect(found(join("docs", "deploy.md"))).toEqual(
      expect.arrayContaining([
        "manifest keygen",
        "kbs keygen",
        "model seal",
        "manifest sign",
        "kbs check",
        "host",
        "audit checkpoint",
        "audit verify",
      ]),
    );
  });

  it("include deploy.md's simulator rehearsal: policy init --allow-simulator, kbs serve on loopback", () => {
    const deploy = pages.find((p) => p.page === join("docs", "deploy.md"))?.markdown ?? "";
    const commands = cloisterCommands(deploy).map((words) => words.join(" "));
    expect(commands).toContain("npx cloister kbs serve --config kbs.json --listen 127.0.0.1 --port 8790");
    expect(commands.filter((c) => c.includes(" policy init ") && c.includes("--allow-simulator"))).toHaveLength(1);
  });

  it("use only sub-commands and options the command line has, with values it accepts", () => {
    for (const { page, markdown } of pages) expect(problems(markdown), page).toEqual([]);
  });

  it("report an option, a value or an operand the command line does not take", () => {
    const readme = pages.find((p) => p.page === "README.md")?.markdown ?? "";
    const renamed = readme.replace("--prompt-file question.txt", "--prompt-files question.txt");
    expect(problems(renamed)).toEqual([
      "chat: no option --prompt-files (in: npx cloister chat --url http://127.0.0.1:8080 --policy .cloister/policy.json --prompt-files question.txt)",
    ]);
    const badPort = readme.replace("--port 8790", "--port 87900");
    expect(problems(badPort)).toHaveLength(1);
    expect(problems(badPort)[0]).toMatch(/^kbs serve --port 87900: /);
    expect(problems('```sh\nnpx cloister chat --url http://h --policy p.json "one question" &\n```\n')).toEqual([]);
    expect(problems("```sh\nnpx cloister chat --url http://h --policy p.json one question\n```\n")).toEqual([
      "chat: 2 operands, the command takes 1 (in: npx cloister chat --url http://h --policy p.json one question)",
    ]);
    // A required option left out (commander is told none is required: client/cli/program.ts).
    expect(problems('```sh\nnpx cloister chat --url http://h "one question"\n```\n')).toEqual([
      `chat: required option '--policy <file>' not specified (in: npx cloister chat --url http://h "one question")`,
    ]);
  });
});
