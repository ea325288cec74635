/**
 * `cloister audit find` (docs/protocol.md: it "verifies the whole stored log") on logs whose
 * tampering comes after the client's record, which a reader stopping at the record would miss, and
 * on an answer that is not the recorded one (README: it checks the record "is about your prompt and
 * answer").
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nacl from "tweetnacl";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answeredRecordLines, auditWriterOf, chatJsonOf } from "../helpers/audit-find-log.ts";
import { runCloister } from "../helpers/cli.ts";

const KEYS = nacl.sign.keyPair();
const PROMPT = "What does the enclave do?";
const ANSWER = "It keeps prompts private.";
const MINE = "11".repeat(16);
let dir: string;
let lines: string[];
let chat: string;
let promptFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-audit-find-whole-"));
  const writer = auditWriterOf(KEYS, true);
  // The client's record first (seq 0), then two more requests.
  lines = answeredRecordLines(
    writer,
    [MINE, "22".repeat(16), "33".repeat(16)].map((requestId, i) => ({
      requestId,
      prompt: i === 0 ? PROMPT : `other ${i}`,
      response: i === 0 ? ANSWER : `answer ${i}`,
      completionTokens: 6 + i,
    })),
  );
  chat = join(dir, "chat.json");
  await writeFile(chat, chatJsonOf(writer, KEYS, MINE, ANSWER));
  promptFile = join(dir, "prompt.txt");
  await writeFile(promptFile, PROMPT);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function find(name: string, logLines: readonly string[], ...args: string[]) {
  const log = join(dir, `${name}.jsonl`);
  await writeFile(log, `${logLines.join("\n")}\n`);
  const run = await runCloister([
    "audit",
    "find",
    "--log",
    log,
    "--chat-json",
    chat,
    "--prompt-file",
    promptFile,
    ...args,
  ]);
  const json = args.includes("--json") ? (JSON.parse(run.stdout) as Record<string, unknown>) : {};
  return { ...run, json };
}

describe("cloister audit find verifies the whole log, not only up to the record", () => {
  it("finds the record in the intact log (the control)", async () => {
    const run = await find("intact", lines, "--json");
    expect(run.code, run.stderr).toBe(0);
    expect(run.json).toMatchObject({
      found: true,
      logValid: true,
      records: 3,
      matches: { prompt: true, answer: true },
    });
  });

  it("fails on a record altered after the client's one (AUDIT_RECORD_ALTERED), with --json and without", async () => {
    const altered = [...lines];
    // The middle record: the last one's prevHash then shows the change (a last line altered reads as
    // AUDIT_SIGNATURE_INVALID: altered and re-signed cannot be told apart).
    altered[1] = (altered[1] as string).replace('"completionTokens":7', '"completionTokens":9');
    expect(altered[1]).not.toBe(lines[1]);
    const json = await find("altered", altered, "--json");
    expect(json.code).toBe(1);
    expect(json.json).toMatchObject({ found: false, logValid: false, code: "AUDIT_RECORD_ALTERED" });
    const text = await find("altered-text", altered);
    expect(text.code).toBe(1);
    expect(text.stderr).toMatch(/^cloister: AUDIT_RECORD_ALTERED: /m);
  });

  it("fails on a record removed after the client's one (AUDIT_RECORD_REMOVED)", async () => {
    const run = await find("removed", [lines[0] as string, lines[2] as string], "--json");
    expect(run.code).toBe(1);
    expect(run.json).toMatchObject({ found: false, logValid: false, code: "AUDIT_RECORD_REMOVED" });
  });
});

describe("cloister audit find checks the answer too", () => {
  it("an --answer-file that is not the recorded answer: AUDIT_COMMITMENT_MISMATCH naming the answer", async () => {
    const answerFile = join(dir, "other-answer.txt");
    await writeFile(answerFile, `${ANSWER} `);
    const json = await find("answer-json", lines, "--answer-file", answerFile, "--json");
    expect(json.code).toBe(1);
    expect(json.json).toMatchObject({
      found: true,
      matches: { prompt: true, answer: false },
      code: "AUDIT_COMMITMENT_MISMATCH",
    });
    const text = await find("answer-text", lines, "--answer-file", answerFile);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain("answer: DOES NOT match the record's commitment");
    expect(text.stderr).toMatch(/^cloister: AUDIT_COMMITMENT_MISMATCH: the record's answer commitment/m);
    // The same bytes as the answer: a match.
    await writeFile(answerFile, ANSWER);
    expect((await find("answer-same", lines, "--answer-file", answerFile)).code).toBe(0);
  });

  it("the --chat-json answer text that is not the recorded one is a mismatch too", async () => {
    const other = join(dir, "chat-other.json");
    const original = JSON.parse(await readFile(chat, "utf8"));
    await writeFile(other, JSON.stringify({ ...original, text: `${ANSWER}!` }));
    const log = join(dir, "chat-other.jsonl");
    await writeFile(log, `${lines.join("\n")}\n`);
    const run = await runCloister(["audit", "find", "--log", log, "--chat-json", other, "--json"]);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({
      found: true,
      matches: { answer: false },
      code: "AUDIT_COMMITMENT_MISMATCH",
    });
  });
});
