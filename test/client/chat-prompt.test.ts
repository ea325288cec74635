/**
 * `cloister chat`'s prompt (client/cli/run-client.ts readPrompt): from the argument, --prompt-file
 * (`-`: standard input), or a standard input that is not a terminal, so secrets need not sit on
 * the command line. Every refusal happens before anything is contacted, and never quotes the prompt.
 */
import { chmod, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { UsageError } from "../../client/cli/output.ts";
import { type PromptInput, readPrompt, runChat } from "../../client/cli/run-client.ts";
import { REQUEST_LIMITS } from "../../sealed/request-limits.ts";
import { runCloister } from "../helpers/cli.ts";
import { capturedOutput } from "../helpers/cli-in-process.ts";
import { fifoWriter } from "../helpers/pipes.ts";
import { closeServers, devPolicy, serveDeployment } from "./helpers.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-chat-prompt-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A standard input holding `chunks`; a terminal when `isTTY`. */
function stdin(chunks: (string | Uint8Array)[], isTTY = false): Readable & PromptInput & { wasRead: () => boolean } {
  let read = false;
  const stream = Readable.from(
    (function* () {
      read = true;
      yield* chunks;
    })(),
  );
  return Object.assign(stream, { isTTY, wasRead: () => read });
}

async function file(name: string, content: string | Uint8Array): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

const SECRET = "my password is hunter2";

describe("chat's prompt", () => {
  it("takes the argument as given, and never reads standard input then", async () => {
    const input = stdin(["ignored"]);
    expect(await readPrompt("What does the enclave do?", undefined, input)).toBe("What does the enclave do?");
    expect(input.wasRead()).toBe(false);
  });

  it("reads a piped standard input whole, in chunks, exactly (newline and byte-order mark kept)", async () => {
    const text = "\uFEFFline one\nligne deux ✓\n";
    const bytes = Buffer.from(text);
    const input = stdin([bytes.subarray(0, 5), bytes.subarray(5, 14), bytes.subarray(14)]);
    expect(await readPrompt(undefined, undefined, input)).toBe(text);
    expect(await readPrompt(undefined, "-", stdin(["from --prompt-file -\n"]))).toBe("from --prompt-file -\n");
  });

  it("reads --prompt-file exactly, the same bytes `cloister audit find --prompt-file` compares", async () => {
    const path = await file("prompt.txt", `${SECRET}\n`);
    expect(await readPrompt(undefined, path, stdin([], true))).toBe(`${SECRET}\n`);
  });

  it("is interactive (undefined) only with nothing given on a terminal", async () => {
    expect(await readPrompt(undefined, undefined, stdin([], true))).toBeUndefined();
  });

  it("refuses both, empty or white-space input, invalid UTF-8 and an unreadable file, without quoting the prompt", async () => {
    const cases: [string, () => Promise<unknown>, RegExp][] = [
      [
        "both",
        async () => readPrompt(SECRET, await file("both.txt", SECRET), stdin([])),
        /^chat: expected the prompt once, found both a PROMPT argument and --prompt-file \(run with --help for usage\)$/,
      ],
      [
        "empty stdin",
        async () => readPrompt(undefined, undefined, stdin([])),
        /^chat: standard input is not a terminal, so it is read as the prompt: expected a prompt, found an empty input \(0 bytes\); give a PROMPT argument or --prompt-file/,
      ],
      [
        "white space on stdin",
        async () => readPrompt(undefined, "-", stdin([" \n\t\n"])),
        /^--prompt-file - \(standard input\): expected a prompt, found only white space \(4 bytes\)$/,
      ],
      [
        "empty file",
        async () => readPrompt(undefined, await file("empty.txt", ""), stdin([])),
        /^--prompt-file \/\S*\/empty\.txt: expected a prompt, found an empty input \(0 bytes\)$/,
      ],
      [
        "invalid UTF-8",
        async () =>
          readPrompt(undefined, await file("latin1.txt", Buffer.from(`${SECRET} caf\xe9`, "latin1")), stdin([])),
        /^--prompt-file \/\S*\/latin1\.txt: expected UTF-8 text, found a byte that is not UTF-8 \(byte 27 of the file\)$/,
      ],
      [
        "empty file whose path holds ': ', quoted as every refusal of a file quotes it (fileMessage)",
        async () => readPrompt(undefined, await file("a: b.txt", ""), stdin([])),
        /^--prompt-file '\/\S*\/a: b\.txt': expected a prompt, found an empty input \(0 bytes\)$/,
      ],
      [
        "invalid UTF-8 in a file whose path holds ': '",
        async () => readPrompt(undefined, await file("c: d.txt", Buffer.of(0x61, 0xff)), stdin([])),
        /^--prompt-file '\/\S*\/c: d\.txt': expected UTF-8 text, found a byte that is not UTF-8 \(byte 2 of the file\)$/,
      ],
      [
        "invalid UTF-8 on --prompt-file -, in two chunks",
        async () => readPrompt(undefined, "-", stdin([`${SECRET} `, Buffer.of(0x63, 0xe2, 0x82, 0x21)])),
        /^--prompt-file - \(standard input\): expected UTF-8 text, found a byte that is not UTF-8 \(byte 25 of standard input\)$/,
      ],
      [
        "invalid UTF-8 on a piped standard input",
        async () => readPrompt(undefined, undefined, stdin([Buffer.of(0xef, 0xbb, 0xbf, 0x61, 0xed, 0xa0, 0x80)])),
        /^chat: standard input is not a terminal, so it is read as the prompt: expected UTF-8 text, found a byte that is not UTF-8 \(byte 5 of standard input\)$/,
      ],
      [
        "missing file",
        async () => readPrompt(undefined, join(dir, "missing.txt"), stdin([])),
        /^--prompt-file \S*\/missing\.txt: cannot read \(ENOENT: no such file; check the path\)$/,
      ],
    ];
    for (const [name, run, message] of cases) {
      const error = await run().then(
        () => new Error(`${name}: accepted`),
        (e: unknown) => e,
      );
      expect(error, name).toBeInstanceOf(UsageError);
      expect((error as Error).message, name).toMatch(message);
      expect((error as Error).message, name).not.toContain("hunter2");
    }
  });
});

describe("chat's prompt, read to a bound", () => {
  // The enclave takes a message of at most REQUEST_LIMITS.maxTextChars UTF-16 code units, and one
  // code unit is at most 3 UTF-8 bytes: a larger input cannot be a prompt, so it is not read whole.
  const BOUND = 3 * REQUEST_LIMITS.maxTextChars;
  const tooLarge = (source: string) =>
    `${source}: expected at most ${BOUND} bytes (a prompt of at most ${REQUEST_LIMITS.maxTextChars} characters (UTF-16 code units), 3 bytes of UTF-8 each at most), found more`;

  it("refuses a --prompt-file one byte past the bound, and one that never ends, naming the option, the file and the bound", async () => {
    const path = join(dir, "past-bound.txt");
    await truncate(await file("past-bound.txt", ""), BOUND + 1);
    const endless = fifoWriter(join(dir, "endless.fifo"), "endless");
    try {
      for (const source of [path, join(dir, "endless.fifo")]) {
        const error = await readPrompt(undefined, source, stdin([])).catch((e: unknown) => e);
        expect(error, source).toBeInstanceOf(UsageError);
        expect((error as Error).message, source).toBe(tooLarge(`--prompt-file ${source}`));
      }
    } finally {
      endless.stop();
    }
  });

  it("takes a --prompt-file at the bound: a prompt of the longest length in 3-byte characters", async () => {
    const longest = "✓".repeat(REQUEST_LIMITS.maxTextChars);
    const path = await file("at-bound.txt", longest);
    expect(await readPrompt(undefined, path, stdin([]))).toBe(longest);
  });

  it("refuses standard input past the bound as it arrives, naming it and the bound, and stops reading there", async () => {
    const chunk = Buffer.alloc(64 * 1024, "a");
    let pulled = 0;
    const long = (): PromptInput =>
      Readable.from(
        (function* () {
          // Finite (four times the bound), so that a reader without the bound ends too.
          while (pulled < 4 * BOUND) {
            pulled += chunk.length;
            yield chunk;
          }
        })(),
      );
    const cases: [string | undefined, string][] = [
      ["-", "--prompt-file - (standard input)"],
      [undefined, "chat: standard input"],
    ];
    for (const [promptFile, source] of cases) {
      pulled = 0;
      const error = await readPrompt(undefined, promptFile, long()).catch((e: unknown) => e);
      expect(error, source).toBeInstanceOf(UsageError);
      expect((error as Error).message, source).toBe(tooLarge(source));
      expect(pulled, source).toBeLessThanOrEqual(BOUND + 2 * chunk.length);
    }
    // One byte past the bound, where a chunk ends, and more behind it: refused there, whatever
    // follows, naming the bound README and docs/errors.md give (3 000 000 bytes).
    const megabyte = Buffer.alloc(1_000_000, 0x61);
    for (const [promptFile, source] of cases) {
      await expect(
        readPrompt(undefined, promptFile, stdin([megabyte, megabyte, megabyte, "b", megabyte])),
        source,
      ).rejects.toThrow(
        new UsageError(
          `${source}: expected at most 3000000 bytes (a prompt of at most 1000000 characters (UTF-16 code units), 3 bytes of UTF-8 each at most), found more`,
        ),
      );
    }
  });
});

describe("cloister chat, prompt on standard input (spawned)", () => {
  // Nothing listens on port 1: every refusal below comes before the host is contacted.
  const args = ["chat", "--url", "http://127.0.0.1:1", "--policy", "no-such-policy.json"];

  it("refuses an empty pipe, and both PROMPT and --prompt-file, with exit 2 and one line", async () => {
    const [empty, both] = await Promise.all([
      runCloister(args, { input: "", cwd: dir }),
      runCloister([...args, "--prompt-file", "-", SECRET], { input: `${SECRET}\n`, cwd: dir }),
    ]);
    expect(empty.code).toBe(2);
    expect(empty.stderr.trim().split("\n")).toHaveLength(1);
    expect(empty.stderr).toContain("standard input is not a terminal, so it is read as the prompt");
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("found both a PROMPT argument and --prompt-file");
    expect(both.stderr).not.toContain("hunter2");
  });

  it("refuses an empty or white-space PROMPT argument (exit 2), without reading standard input", async () => {
    for (const prompt of ["", "  \n"]) {
      const run = await runCloister([...args, prompt], { input: `${SECRET}\n`, cwd: dir });
      expect(run.code, JSON.stringify(prompt)).toBe(2);
      expect(run.stderr.trim()).toMatch(
        /^cloister: USAGE: chat: expected a prompt in the PROMPT argument, found (an empty argument|only white space \(3 characters\));/,
      );
      expect(run.stderr).not.toContain("hunter2");
    }
  });

  it("takes --max-tokens up to the enclave's own limit, and no further", async () => {
    const [atLimit, past] = await Promise.all([
      runCloister([...args, "--max-tokens", "1000000", "hello"], { cwd: dir }),
      runCloister([...args, "--max-tokens", "1000001", "hello"], { cwd: dir }),
    ]);
    // Accepted: the command goes on to the connection (the missing policy file).
    expect(atLimit.stderr).toContain("--policy no-such-policy.json: cannot read (ENOENT");
    expect(past.code).toBe(2);
    expect(past.stderr).toContain("--max-tokens expects 1..1000000, found 1000001");
  });

  it("reads a piped prompt, then goes on to the connection (here: the missing policy file)", async () => {
    const piped = await runCloister(args, { input: `${SECRET}\n`, cwd: dir });
    expect(piped.code).toBe(2);
    expect(piped.stderr.trim()).toMatch(
      /--policy no-such-policy\.json: cannot read \(ENOENT: no such file; check the path\): expected a client policy: cloister up writes \.cloister\/policy\.json, cloister policy init makes one$/,
    );
    expect(piped.stderr).not.toContain("hunter2");
  });
});

describe("cloister chat --json", () => {
  it("needs a prompt: on a terminal with none, it is refused before anything is contacted (the interactive session prints text)", async () => {
    const terminal = stdin([], true);
    const error = await runChat(
      undefined,
      { url: "http://127.0.0.1:1", policy: "no-such-policy.json", json: true } as Parameters<typeof runChat>[1],
      terminal,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toBe(
      "chat --json: expected a prompt (the PROMPT argument, --prompt-file, or standard input that is not a terminal), found none: the interactive session prints text, not JSON (run with --help for usage)",
    );
    expect(terminal.wasRead()).toBe(false);
  });
});

describe("cloister chat, interactive on a terminal", () => {
  const output = capturedOutput();
  afterEach(() => closeServers());

  it("says what was verified and what the policy lets through (as attest and proxy do) before the first line is typed", async () => {
    const { url } = await serveDeployment();
    const policy = await file("interactive-policy.json", JSON.stringify(await devPolicy()));
    const apiKeyFile = await file("interactive-api-key", "ck_interactive_0123456789abcdef\n");
    await chmod(apiKeyFile, 0o600); // a key file only its owner reads, as the client requires
    const terminal = Object.assign(Readable.from(["hello\n"]), { isTTY: true });
    await runChat(undefined, { url, policy, apiKeyFile } as Parameters<typeof runChat>[1], terminal);
    expect(output.stderr).toMatch(/^enclave verified\n {2}TEE {10}sev-snp {2}\(SIMULATED/);
    expect(output.stderr).toContain(
      "\nWARNING: policy: trusts the INSECURE simulator: anyone can forge its evidence\nType a message; an empty line or Ctrl-D ends.\n",
    );
    expect(output.stdout).toBe("enclave> ok\n");
  });
});
