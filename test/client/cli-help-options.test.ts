/**
 * What some options' --help lines must tell a reader who has only them: the kind of value
 * (`verify-evidence --collateral` takes a directory, laid out as the enclave's
 * `--tdx-collateral`), the default (`chat --max-tokens`: the manifest's), what else is accepted
 * (`enclave --model`: a sealed file), and why captured evidence needs `--at`.
 */
import { describe, expect, it } from "vitest";
import { inProcessCli } from "../helpers/cli-in-process.ts";

const run = inProcessCli();

/** The help text of a command with its lines joined, so that a wrapped description reads as one. */
async function help(...command: string[]): Promise<string> {
  const { code, stdout } = await run([...command, "--help"]);
  expect(code).toBe(0);
  return stdout.replace(/\s+/g, " ");
}

describe("--help names the value, default and alternatives of an option", () => {
  it("verify-evidence --collateral is a directory laid out as enclave --tdx-collateral's", async () => {
    const text = await help("verify-evidence");
    expect(text).toContain("--collateral <dir>");
    expect(text).toMatch(/--collateral <dir>.*?tcbinfo-\*\.json, qeidentity-\*\.json/);
  });

  it("verify-evidence --at says that captured evidence needs a time it was valid", async () => {
    expect(await help("verify-evidence")).toMatch(/--at <time> .*?\(default: now\); for evidence captured earlier/);
  });

  it("chat --max-tokens says its default", async () => {
    expect(await help("chat")).toMatch(
      /--max-tokens <n> most tokens to generate \(default and at most: the manifest's inference\.maxTokens\)/,
    );
  });

  it("enclave --model takes a sealed model too", async () => {
    expect(await help("enclave")).toMatch(
      /--model <file> GGUF model file, or the sealed file cloister model seal wrote/,
    );
  });

  it("demo and up --enclaves say where a pool listens when --enclave-port is 0 (demo's default)", async () => {
    for (const command of ["demo", "up"]) {
      expect(await help(command)).toMatch(/--enclaves <n> .*?with --enclave-port 0, any free ports/);
    }
  });

  it("kbs serve --config says its files are read at start only (an edited release policy needs a restart)", async () => {
    expect(await help("kbs", "serve")).toMatch(
      /--config <file> broker configuration: .*?each policy a client policy .*?read once, at start: restart the broker/,
    );
  });

  it("model seal --force names the operand it replaces, and what it does not", async () => {
    expect(await help("model", "seal")).toMatch(
      /--force +replace <out> if it exists as a file .*?; a directory, FIFO, socket or device there is refused/s,
    );
  });
});

describe("--help marks the options a command requires, on every command", () => {
  it("each required option's line ends with (required), and no other's does", async () => {
    const { buildProgram, commandTree, isRequiredOption } = await import("../../client/cli/program.ts");
    let required = 0;
    for (const command of commandTree(buildProgram())) {
      const path: string[] = [];
      for (let c: typeof command | null = command; c?.parent != null; c = c.parent) path.unshift(c.name());
      if (command.commands.length > 0 && path.length > 0) continue; // a group: its commands say theirs
      const { stdout } = await run([...path, "--help"]);
      // Each option's entry: a line that starts with its flags, and the lines indented further below it.
      const section = stdout.split("\nOptions:\n")[1]?.split("\n\n")[0] ?? "";
      const entries = new Map(
        section
          .split(/\n(?= {2}\S)/)
          .map((entry) => /^ {2}(\S.*?)(?: {2,}|$)([\s\S]*)$/.exec(entry))
          .map((m) => [m?.[1] ?? "", (m?.[2] ?? "").replace(/\s+/g, " ").trim()] as const),
      );
      for (const option of command.options) {
        const entry = entries.get(option.flags);
        expect({ command: path.join(" "), option: option.flags, marked: entry?.endsWith("(required)") }).toEqual({
          command: path.join(" "),
          option: option.flags,
          marked: isRequiredOption(option),
        });
        if (isRequiredOption(option)) required++;
      }
    }
    // attest --url and --policy, kbs serve --config, audit verify --log…: some there are.
    expect(required).toBeGreaterThan(10);
  });
});

describe("--help words the same things the same way on every command", () => {
  it("a default as commander writes one, (default: …); --json as print … as JSON", async () => {
    const { buildProgram, commandTree } = await import("../../client/cli/program.ts");
    const odd: string[] = [];
    for (const command of commandTree(buildProgram())) {
      for (const option of command.options) {
        const where = `${command.name()} ${option.flags}: ${option.description}`;
        // `(default: 256)`, `(default and at most: …)`, `(default with --chat-json: …)`; not `(default 256)`.
        if (/\(default[^):]*\)/.test(option.description)) odd.push(where);
        if (option.long === "--json" && !/^print .+ as JSON\b/.test(option.description)) odd.push(where);
      }
    }
    expect(odd).toEqual([]);
  });
});
