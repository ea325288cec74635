/**
 * `cloister audit find` on logs written by the real audit writer: a record found by its request id
 * hash and opened with the opening the enclave gives the client, for manifests that commit to the
 * prompt only or to both; with --json every outcome is one JSON object.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nacl from "tweetnacl";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { type AuditWriter, auditRequestIdHash } from "../../enclave/pipeline/audit.ts";
import { AUDIT_BOOT, answeredRecordLines, auditWriterOf, chatJsonOf } from "../helpers/audit-find-log.ts";
import { runCloister } from "../helpers/cli.ts";

const KEYS = nacl.sign.keyPair();
const PROMPT = "What does the enclave do?";
const ANSWER = "It keeps prompts private.";
let dir: string;

/** Writes one answered request's record per [request id, prompt, answer] to `name`.jsonl; its path. */
async function logOf(
  name: string,
  writer: AuditWriter,
  requests: readonly (readonly [string, string, string | null])[],
): Promise<string> {
  const lines = answeredRecordLines(
    writer,
    requests.map(([requestId, prompt, response]) => ({ requestId, prompt, response })),
  );
  const log = join(dir, `${name}.jsonl`);
  await writeFile(log, `${lines.join("\n")}\n`);
  return log;
}

async function writeLog(name: string, recordResponseHash: boolean): Promise<{ log: string; chat: string }> {
  const writer = auditWriterOf(KEYS, recordResponseHash);
  const log = await logOf(name, writer, [
    ["11".repeat(16), PROMPT, ANSWER],
    ["22".repeat(16), PROMPT, ANSWER],
  ]);
  const chat = join(dir, `${name}-chat.json`);
  await writeFile(chat, chatJsonOf(writer, KEYS, "22".repeat(16), ANSWER));
  return { log, chat };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-audit-find-"));
  await writeFile(join(dir, "prompt.txt"), PROMPT);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const find = (log: string, ...args: string[]) =>
  runCloister(["audit", "find", "--log", log, "--key", toHex(KEYS.publicKey), ...args]);

describe("cloister audit find", () => {
  it("opens the prompt and answer commitments of the record it finds", async () => {
    const { log, chat } = await writeLog("both", true);
    const run = await find(log, "--chat-json", chat, "--prompt-file", join(dir, "prompt.txt"), "--json");
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      found: true,
      record: { seq: 1, decision: "allow" },
      matches: { prompt: true, answer: true },
    });
  });

  it("with a manifest that commits to the prompt only, checks the prompt and does not fail on the answer", async () => {
    const { log, chat } = await writeLog("prompt-only", false);
    const run = await find(log, "--chat-json", chat, "--prompt-file", join(dir, "prompt.txt"));
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("prompt: matches the record's commitment");
    expect(run.stdout).not.toContain("answer:");
    // Without --prompt-file nothing can be compared for this record: said, not left to read as a match.
    const bare = await find(log, "--chat-json", chat);
    expect(bare.code, bare.stderr).toBe(0);
    expect(bare.stdout).toContain("no text compared: give --prompt-file");
    const byId = await find(log, "--request-id-hash", JSON.parse(await readFile(chat, "utf8")).audit.requestIdHash);
    expect(byId.stdout).toContain("no text compared: the record is found by its request id");
    expect(run.stdout).not.toContain("no text compared");
    // An explicit --answer-file asks for a check the record cannot give: said so.
    await writeFile(join(dir, "answer.txt"), ANSWER);
    const explicit = await find(log, "--chat-json", chat, "--answer-file", join(dir, "answer.txt"), "--json");
    expect(explicit.code).toBe(1);
    expect(JSON.parse(explicit.stdout)).toMatchObject({ found: false, code: "AUDIT_NO_COMMITMENT" });
  });

  it("with --json, a missing record, a tampered log and a mismatch are JSON too, with exit code 1", async () => {
    const { log, chat } = await writeLog("json", true);
    const missing = await find(log, "--request-id-hash", "0".repeat(64), "--json");
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ found: false, logValid: true, code: "AUDIT_RECORD_NOT_FOUND" });

    await writeFile(join(dir, "other-prompt.txt"), `${PROMPT}\n`);
    const mismatch = await find(log, "--chat-json", chat, "--prompt-file", join(dir, "other-prompt.txt"), "--json");
    expect(mismatch.code).toBe(1);
    expect(JSON.parse(mismatch.stdout)).toMatchObject({
      found: true,
      matches: { prompt: false, answer: true },
      code: "AUDIT_COMMITMENT_MISMATCH",
    });

    const tampered = join(dir, "tampered.jsonl");
    await writeFile(tampered, (await readFile(log, "utf8")).replace('"completionTokens":6', '"completionTokens":7'));
    const bad = await find(tampered, "--chat-json", chat, "--json");
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ found: false, logValid: false });
  });

  it("reports every record whose request id hash it is, in log order, and checks the text against each", async () => {
    // A client that sent one request id twice (after the replay window: the SDK never does) has two
    // records under one requestIdHash, and one opening for both (it is derived from the hash).
    const writer = auditWriterOf(KEYS, false);
    const reused = "33".repeat(16);
    const log = await logOf("reused", writer, [
      [reused, "first prompt", null],
      ["44".repeat(16), "other request", null],
      [reused, "second prompt", null],
    ]);
    const opening = join(dir, "reused-opening.txt");
    await writeFile(opening, toHex(writer.openingFor(reused)));
    const hash = auditRequestIdHash(reused);
    const byPrompt = async (prompt: string, ...extra: string[]) => {
      const file = join(dir, "reused-prompt.txt");
      await writeFile(file, prompt);
      return find(log, "--request-id-hash", hash, "--opening-file", opening, "--prompt-file", file, ...extra);
    };

    const text = await byPrompt("first prompt");
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout.split("\n").map((line) => line.replace(/\(log valid.*$/, "…"))).toEqual([
      "2 records have this requestIdHash (its request id was sent more than once), in log order:",
      "record 0 of 3 …",
      "prompt: matches the record's commitment",
      "record 2 of 3 …",
      "prompt: DOES NOT match the record's commitment",
      "",
    ]);
    for (const [prompt, seq] of [
      ["first prompt", 0],
      ["second prompt", 2],
    ] as const) {
      const run = await byPrompt(prompt, "--json");
      expect(run.code, run.stderr).toBe(0);
      const json = JSON.parse(run.stdout);
      // `record`: the one about the text given; `allFound`: every record with the hash, in log order.
      expect(json).toMatchObject({ found: true, record: { seq }, matches: { prompt: true } });
      expect(
        json.allFound.map((f: { record: { seq: number }; matches: unknown }) => [f.record.seq, f.matches]),
      ).toEqual([
        [0, { prompt: seq === 0 }],
        [2, { prompt: seq === 2 }],
      ]);
    }
    // About neither: a mismatch, each record shown.
    const neither = await byPrompt("third prompt", "--json");
    expect(neither.code).toBe(1);
    expect(JSON.parse(neither.stdout)).toMatchObject({
      found: true,
      record: { seq: 0 },
      matches: { prompt: false },
      allFound: [{ record: { seq: 0 } }, { record: { seq: 2 } }],
      code: "AUDIT_COMMITMENT_MISMATCH",
    });
  });

  it("takes the key from --chat-json, and names the right log when given another boot's", async () => {
    const { log, chat } = await writeLog("keyless", true);
    const run = await runCloister(["audit", "find", "--log", log, "--chat-json", chat, "--json"]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ found: true, keySource: "chat-json" });

    // The same answer checked against a log whose records name another boot (another pool member).
    const other = join(dir, "other-boot-chat.json");
    const parsed = JSON.parse(await readFile(chat, "utf8"));
    await writeFile(other, JSON.stringify({ ...parsed, enclave: "ef".repeat(32) }));
    const wrong = await runCloister(["audit", "find", "--log", log, "--chat-json", other]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(
      `AUDIT_LOG_OTHER_BOOT: this log is of enclave boot ${AUDIT_BOOT.slice(0, 16)}, the answer came from boot ${"ef".repeat(8)}: its log is ${"ef".repeat(8)}.jsonl`,
    );
  });
});
