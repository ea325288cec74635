/**
 * Error messages that name what is wrong where the user can fix it: the option or file at fault,
 * what is missing in the order it is needed, never the content of a file given by mistake.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { readPrompt } from "../../client/cli/run-client.ts";
import { REQUEST_LIMITS } from "../../sealed/request-limits.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const run = inProcessCli();
const dir = await testDirectory("cloister-cli-messages-");
/** A file that is not a policy, holding something that must never be printed. */
let notJson: string;

beforeAll(async () => {
  notJson = join(dir, "passwd");
  await writeFile(notJson, "root:x:0:0:secret-content:/root:/bin/sh\n");
});

describe("audit find: says what is missing, the record first, then the key", () => {
  let log: string;
  beforeAll(async () => {
    log = join(dir, "audit.jsonl");
    await writeFile(log, "");
  });

  it("--log alone: the record to find (--chat-json gives the key too), or --request-id-hash with a key", async () => {
    expect(await run(["audit", "find", "--log", log])).toMatchObject({
      code: 2,
      stderr:
        "cloister: USAGE: give --chat-json <file> (the output of cloister chat --json: the record to find and the enclave's key), or --request-id-hash <hex> with --key <hex> or --document <file> (run with --help for usage)\n",
    });
  });

  it("a key but no record: the record to find", async () => {
    expect(await run(["audit", "find", "--log", log, "--key", "ab".repeat(32)])).toMatchObject({
      code: 2,
      stderr:
        "cloister: USAGE: give --chat-json <file> or --request-id-hash <hex>: the record to find (run with --help for usage)\n",
    });
  });

  it("a record but no key: the key", async () => {
    expect(await run(["audit", "find", "--log", log, "--request-id-hash", "cd".repeat(32)])).toMatchObject({
      code: 2,
      stderr: "cloister: USAGE: give exactly one of --key <hex> or --document <file> (run with --help for usage)\n",
    });
  });

  it("--chat-json without a signingKey: the key", async () => {
    const chat = join(dir, "chat.json");
    await writeFile(
      chat,
      JSON.stringify({ text: "a", audit: { requestIdHash: "cd".repeat(32), opening: "ef".repeat(32) } }),
    );
    expect(await run(["audit", "find", "--log", log, "--chat-json", chat])).toMatchObject({
      code: 2,
      stderr: `cloister: USAGE: --chat-json ${chat}: no signingKey field; give --key <hex> or --document <file>\n`,
    });
  });
});

describe("options missing or given together that commander cannot tell: as its own usage errors read", () => {
  it("end with (run with --help for usage), as a required option left out does", async () => {
    const log = join(dir, "options.jsonl");
    await writeFile(log, "");
    const url = ["--url", "http://127.0.0.1:9", "--policy", notJson];
    const runs = {
      "a required option": ["audit", "verify"],
      "audit verify: no key": ["audit", "verify", "--log", log],
      "audit verify: --checkpoint and --count": ["audit", "verify", "--log", log, "--checkpoint", log, "--count", "1"],
      "audit verify: --last-hash without --count": ["audit", "verify", "--log", log, "--last-hash", "ab"],
      "audit find: nothing to find": ["audit", "find", "--log", log],
      "audit find: --chat-json and --request-id-hash": [
        ...["audit", "find", "--log", log, "--chat-json", log, "--request-id-hash", "ab"],
      ],
      "attest --force without --document-out": ["attest", ...url, "--force"],
      "policy init --force without --out": [
        "policy",
        "init",
        "--url",
        "http://127.0.0.1:9",
        "--operator-key",
        log,
        "--force",
      ],
      "chat: PROMPT and --prompt-file": ["chat", ...url, "--prompt-file", log, "hello"],
      "verify-evidence: its TEE's file left out": ["verify-evidence", "--tee", "snp"],
      "verify-evidence: --jwks left out (maa)": ["verify-evidence", "--tee", "maa", "--token", log],
      "verify-evidence: another TEE's file": ["verify-evidence", "--tee", "snp", "--report", log, "--quote", log],
      "verify-evidence: --issuer but for maa": [
        "verify-evidence",
        "--tee",
        "azure-snp",
        "--issuer",
        "x",
        "--evidence",
        log,
      ],
      "verify-evidence: --nonce for snp": [
        "verify-evidence",
        "--tee",
        "snp",
        "--report",
        log,
        "--cert",
        log,
        "--nonce",
        "00",
      ],
      "verify-evidence: --nonce for maa": [
        ...["verify-evidence", "--tee", "maa", "--token", log, "--jwks", log, "--nonce", "00"],
      ],
    };
    for (const [name, args] of Object.entries(runs)) {
      const result = await run(args);
      expect({ name, code: result.code, stderr: result.stderr }).toEqual({
        name,
        code: 2,
        stderr: expect.stringMatching(/^cloister: USAGE: [^\n]+ \(run with --help for usage\)\n$/),
      });
    }
  });
});

describe("option values refused by the command, not commander: as commander's own refusals of a value read", () => {
  it("end with (run with --help for usage), as an --option value commander refuses does", async () => {
    const log = join(dir, "values.jsonl");
    await writeFile(log, "");
    const key = ["--key", "ab".repeat(32)];
    const host = ["host", "--enclave-url", "http://127.0.0.1:9", "--api-keys", join(dir, "none.json")];
    const model = ["model", "run", "--model", join(dir, "none.gguf"), "--prompt", "hi"];
    const runs: Record<string, [string[], string]> = {
      "audit find: --prompt-file without an opening": [
        ["audit", "find", "--log", log, "--request-id-hash", "cd".repeat(32), ...key, "--prompt-file", log],
        "--prompt-file and --answer-file need the record's opening (--chat-json or --opening-file)",
      ],
      "audit verify: --last-hash not hex": [
        ["audit", "verify", "--log", log, ...key, "--count", "1", "--last-hash", "xyz"],
        "--last-hash expects 64 lower-case hex characters, found 3 characters",
      ],
      "host: --max-in-flight-per-key above --max-in-flight": [
        [...host, "--audit-dir", join(dir, "audit"), "--max-in-flight", "4", "--max-in-flight-per-key", "5"],
        "--max-in-flight-per-key 5: expected at most --max-in-flight (4), the requests the host forwards at once in all",
      ],
      "model run: --sha256 not hex": [[...model, "--sha256", "zz"], '--sha256 expects 64 hex digits, found "zz"'],
      "model run: --top-p 0": [[...model, "--top-p", "0"], "--top-p expects a number in (0, 1], found 0"],
      "kbs keygen: --key-id": [
        ["kbs", "keygen", "--key-id", "has space", "--out", join(dir, "none.jwk")],
        '--key-id expects 1..200 characters of A-Z a-z 0-9 . _ : -, found "has space"',
      ],
      "verify-evidence: --nonce not hex (azure-snp)": [
        ["verify-evidence", "--tee", "azure-snp", "--evidence", log, "--nonce", "zz"],
        "--nonce: expected 1..64 bytes as hex, found 2 characters",
      ],
    };
    const found: Record<string, { code: number; stderr: string }> = {};
    const expected: typeof found = {};
    for (const [name, [args, message]] of Object.entries(runs)) {
      const { code, stderr } = await run(args);
      found[name] = { code, stderr };
      expected[name] = { code: 2, stderr: `cloister: USAGE: ${message} (run with --help for usage)\n` };
    }
    expect(found).toEqual(expected);
  });
});

describe("a --policy file that is not a policy is named, its content never shown", () => {
  it("attest (and every command that connects)", async () => {
    const result = await run(["attest", "--url", "http://127.0.0.1:9", "--policy", notJson]);
    expect(result).toMatchObject({
      code: 2,
      stderr: `cloister: POLICY_INVALID: --policy ${notJson}: client policy: not valid JSON (expected a client policy: cloister up writes .cloister/policy.json, cloister policy init makes one)\n`,
    });
    expect(result.stderr).not.toContain("secret-content");
  });

  it("web, in the same words and with the same exit code as attest (not JSON, or JSON that is not a policy)", async () => {
    const notPolicy = join(dir, "not-policy.json");
    await writeFile(notPolicy, JSON.stringify({ secret: "secret-content" }));
    for (const file of [notJson, notPolicy]) {
      const web = await run(["web", "--url", "http://127.0.0.1:9", "--policy", file, "--port", "0"]);
      const attest = await run(["attest", "--url", "http://127.0.0.1:9", "--policy", file]);
      expect(web, file).toEqual(attest);
      expect(web.code, file).toBe(2);
      expect(web.stderr.startsWith(`cloister: POLICY_INVALID: --policy ${file}: client policy: `), web.stderr).toBe(
        true,
      );
      expect(web.stderr).not.toContain("secret-content");
    }
  });

  it("in one form, `--policy FILE: …`, whether the file cannot be read or is not a policy", async () => {
    const missing = join(dir, "nothere.json");
    const runs = [
      await run(["attest", "--url", "http://127.0.0.1:9", "--policy", missing]),
      await run(["attest", "--url", "http://127.0.0.1:9", "--policy", notJson]),
    ];
    expect(runs.map((r) => r.code)).toEqual([2, 2]);
    expect(runs[0]?.stderr).toMatch(new RegExp(`^cloister: USAGE: --policy ${missing}: cannot read \\(ENOENT`));
    expect(runs[1]?.stderr).toMatch(new RegExp(`^cloister: POLICY_INVALID: --policy ${notJson}: client policy: `));
  });

  it("verify-evidence", async () => {
    const result = await run([
      "verify-evidence",
      "--tee",
      "snp",
      "--report",
      notJson,
      "--cert",
      notJson,
      "--policy",
      notJson,
    ]);
    expect(result.stderr).toBe(
      `cloister: POLICY_INVALID: --policy ${notJson}: expected a JSON policy, found text that is not valid JSON\n`,
    );
  });
});

describe("chat: a prompt too long for the enclave names where it came from", () => {
  const tooLong = "a".repeat(REQUEST_LIMITS.maxTextChars + 1);

  it("--prompt-file", async () => {
    const file = join(dir, "prompt.txt");
    await writeFile(file, tooLong);
    await expect(readPrompt(undefined, file)).rejects.toMatchObject({
      code: "USAGE",
      message: `--prompt-file ${file}: expected a prompt of at most ${REQUEST_LIMITS.maxTextChars} characters (UTF-16 code units), found ${tooLong.length}`,
    });
    // As the command says it: before any connection.
    expect(
      await run(["chat", "--url", "http://127.0.0.1:9", "--policy", notJson, "--prompt-file", file]),
    ).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(
        /^cloister: USAGE: --prompt-file \/\S*\/prompt\.txt: expected a prompt of at most /,
      ),
    });
  });

  it("the PROMPT argument and standard input", async () => {
    await expect(readPrompt(tooLong, undefined)).rejects.toMatchObject({
      message: expect.stringMatching(/^chat: the PROMPT argument: expected a prompt of at most 1000000 /),
    });
    const stdin = Object.assign(
      (async function* () {
        yield tooLong;
      })(),
      { isTTY: false },
    );
    await expect(readPrompt(undefined, "-", stdin)).rejects.toMatchObject({
      message: expect.stringMatching(/^--prompt-file - \(standard input\): expected a prompt of at most 1000000 /),
    });
    // At the limit it is taken.
    expect(await readPrompt("a".repeat(REQUEST_LIMITS.maxTextChars), undefined)).toHaveLength(
      REQUEST_LIMITS.maxTextChars,
    );
  });
});
