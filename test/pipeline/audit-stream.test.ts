/**
 * Streaming verification of audit logs (`AuditLogVerifier`, the CLI's `readAuditLogLines` and
 * `verifyAuditLogFile`): a log is read one line at a time, so its length is not bounded by the
 * largest string Node can make (about 512 MiB, some 640 000 records).
 *
 * audit-verdicts.json holds the verdict (code, index, message, records verified) of every case of
 * audit-cases.ts as `verifyAuditLog` gave it when it parsed the whole array at once, before
 * verification streamed: the array verifier, the streaming one and the file reader must still give
 * exactly those. (Messages changed since, on purpose: a line without exactly the keys record and
 * sig now names the keys it has; a line that is not JSON says where it stops being JSON, and an
 * empty line is named so; a bad signature whose successor names its content's hash but does not
 * verify either, as in a log of another key, no longer says the content fits the chain: a line
 * that does not verify vouches for nothing; a line of JSON that is not an object says what it is,
 * and a log cut before its first record says it found none rather than "seq up to -1".)
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { UsageError } from "../../client/cli/output.ts";
import { readAuditLogLines, verifyAuditLogFile, verifyAuditLogHandle } from "../../enclave/audit-cli-impl.ts";
import { type AuditEntry, AuditLogVerifier, verifyAuditLog } from "../../enclave/pipeline/audit.ts";
import { runCloister } from "../helpers/cli.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { auditCases, CASE_KEYS } from "./audit-cases.ts";
import verdicts from "./audit-verdicts.json" with { type: "json" };
import { makeWriter, sampleEntries, writeLog } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "cloister-audit-stream-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const recorded = verdicts as Record<string, unknown>;
const cases = auditCases();

async function collect(path: string, options?: { maxLineBytes?: number; chunkBytes?: number }) {
  const out: unknown[] = [];
  for await (const line of readAuditLogLines(path, options)) out.push(line);
  return out;
}

describe("streaming verification gives the verdicts the array verifier gave", () => {
  it("covers every case recorded", () => {
    expect(cases.map((c) => c.name).sort()).toEqual(Object.keys(recorded).sort());
  });

  it.each(cases.map((c) => [c.name, c] as const))("%s", async (name, c) => {
    const expected = recorded[name];
    const array = verifyAuditLog(c.lines, CASE_KEYS.publicKey, c.options);
    expect(
      array.ok
        ? { ok: true, records: array.records.length, lastRecordHash: array.lastRecordHash }
        : { ok: false, records: array.records.length, error: array.error },
    ).toEqual(expected);

    const verifier = new AuditLogVerifier(CASE_KEYS.publicKey, c.options);
    for (const line of c.lines) verifier.push(line);
    const { lines, ...streamed } = verifier.finish();
    expect(lines).toBe(c.lines.length);
    expect(streamed).toEqual(expected);

    // From a file, with "\n" and with "\r\n" line ends (a case with a line break inside a line has no file form).
    if (c.lines.some((l) => l.includes("\n"))) return;
    for (const [suffix, end] of [
      ["lf", "\n"],
      ["crlf", "\r\n"],
    ] as const) {
      const path = join(dir, `${name.replace(/\W+/g, "-")}.${suffix}.jsonl`);
      writeFileSync(path, c.lines.map((l) => `${l}${end}`).join(""));
      const { lines: fileLines, ...fromFile } = await verifyAuditLogFile(path, CASE_KEYS.publicKey, c.options);
      expect(fileLines).toBe(c.lines.length);
      expect(fromFile).toEqual(expected);
    }
  });
});

/** The file fails at line `index` (0-based) as malformed, with the records before it verified. */
async function expectMalformed(path: string, index: number, message: string): Promise<void> {
  expect(await verifyAuditLogFile(path, CASE_KEYS.publicKey)).toMatchObject({
    ok: false,
    records: index,
    error: { code: "AUDIT_RECORD_MALFORMED", index, message },
  });
}

describe("readAuditLogLines", () => {
  it("splits as text.split('\\n') does, without a final newline too, keeping a bare \\r inside a line", async () => {
    const path = join(dir, "split.txt");
    writeFileSync(path, 'a\r\n\nb\rc\n{"x":"é"}');
    expect(await collect(path)).toEqual(["a", "", "b\rc", '{"x":"é"}']);
    // Read 3 bytes at a time: lines, "\r\n" and the two bytes of "é" cut across reads.
    expect(await collect(path, { chunkBytes: 3 })).toEqual(["a", "", "b\rc", '{"x":"é"}']);
    writeFileSync(path, "");
    expect(await collect(path)).toEqual([]);
    writeFileSync(path, "\n");
    expect(await collect(path)).toEqual([""]);
  });

  it("reports a line over the limit by its length, without holding it, and goes on with the next", async () => {
    const path = join(dir, "long.txt");
    writeFileSync(path, `short\n${"x".repeat(5000)}\nafter\n${"y".repeat(101)}`);
    expect(await collect(path, { maxLineBytes: 100 })).toEqual(["short", { tooLong: 5000 }, "after", { tooLong: 101 }]);
  });

  it("a log read in small chunks: lines cut at chunk ends are joined; the CLI verifies the file", async () => {
    const writer = makeWriter();
    const entries = sampleEntries(4);
    const lines = Array.from({ length: 60 }, (_, i) => writer.record(entries[i % 4] as never).line);
    const path = join(dir, "chunks.jsonl");
    writeFileSync(path, `${lines.join("\n")}\n`);
    // Records are about 800 bytes: 100-byte reads cut every one of them.
    expect(await collect(path, { chunkBytes: 100 })).toEqual(lines);
    expect(await verifyAuditLogFile(path, CASE_KEYS.publicKey)).toMatchObject({ ok: true, lines: 60, records: 60 });
    const keyHex = Buffer.from(CASE_KEYS.publicKey).toString("hex");
    const run = await runCloister(["audit", "verify", "--log", path, "--key", keyHex, "--json"], { timeoutMs: 30_000 });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ valid: true, lines: 60, verifiedRecords: 60 });
  });

  it("a log read through the caller's handle: from its first byte, and left open (read again through it)", async () => {
    const writer = makeWriter();
    const entries = sampleEntries(4);
    const lines = entries.map((entry) => writer.record(entry as never).line);
    const path = join(dir, "handle.jsonl");
    writeFileSync(path, `${lines.join("\n")}\n`);
    const handle = await open(path, "r");
    try {
      await handle.read(Buffer.alloc(10), 0, 10, null); // its position moved: the lines still start at 0
      const verified = await verifyAuditLogHandle(handle, path, CASE_KEYS.publicKey);
      expect(verified).toMatchObject({ ok: true, lines: 4, records: 4 });
      // Left open: verified again, and a reader that stops at its first line leaves it open too.
      expect(await verifyAuditLogHandle(handle, path, CASE_KEYS.publicKey)).toEqual(verified);
      for await (const line of readAuditLogLines(path, { handle, chunkBytes: 100 })) {
        expect(line).toBe(lines[0]);
        break;
      }
      const head = Buffer.alloc(8);
      expect((await handle.read(head, 0, 8, 0)).bytesRead).toBe(8);
      expect(head.toString()).toBe(lines[0]?.slice(0, 8));
    } finally {
      await handle.close();
    }
  });

  it("reports a line that is not UTF-8 by the first byte of the sequence that is not, and keeps a byte order mark", async () => {
    const path = join(dir, "not-utf8.txt");
    writeFileSync(
      path,
      Buffer.concat([
        Buffer.from("ok\n\uFEFFbom\n"),
        Buffer.from([0x61, 0xff, 0x62, 0x0a]), // a lone 0xFF
        Buffer.from([0x61, 0xc3, 0x62, 0x0a]), // a two-byte sequence cut after its first byte
        Buffer.from([0xed, 0xa0, 0x80, 0x0a]), // a UTF-16 surrogate encoded as UTF-8
        Buffer.from("after é"),
      ]),
    );
    // Where each line stops being UTF-8, as an offset from 0 (utf8.ts's one finding).
    const expected = ["ok", "\uFEFFbom", { notUtf8At: 1 }, { notUtf8At: 1 }, { notUtf8At: 0 }, "after é"];
    expect(await collect(path)).toEqual(expected);
    expect(await collect(path, { chunkBytes: 3 })).toEqual(expected);
  });

  it("a line whose bytes are not UTF-8 is malformed, even where decoding it lossily gives the signed text", async () => {
    // A record holding U+FFFD (the writer takes any tenant text): its UTF-8 bytes EF BF BD replaced
    // by a lone 0xFF decode to the same text with replacement, so the file's bytes would no longer be
    // the bytes signed and still verify.
    const writer = makeWriter();
    const entry = { ...(sampleEntries(1)[0] as AuditEntry), tenant: "key-\uFFFD" };
    const line = Buffer.from(writer.record(entry).line);
    const at = line.indexOf(Buffer.from([0xef, 0xbf, 0xbd]));
    expect(at).toBeGreaterThan(0);
    const path = join(dir, "replaced.jsonl");
    writeFileSync(
      path,
      Buffer.concat([line.subarray(0, at), Buffer.from([0xff]), line.subarray(at + 3), Buffer.from("\n")]),
    );
    await expectMalformed(
      path,
      0,
      `audit log line 1: expected UTF-8 text, found a byte that is not UTF-8 (byte ${at + 1} of the line)`,
    );
  });

  it("a malformed last line without its newline is named as a write cut short, not only as bad JSON", async () => {
    const lines = writeLog(4);
    const torn = (lines[3] as string).slice(0, 300);
    const path = join(dir, "torn.jsonl");
    writeFileSync(path, `${lines.slice(0, 3).join("\n")}\n${torn}`);
    await expectMalformed(
      path,
      3,
      "audit log line 4: not valid JSON (at position 300); the file's last line has no newline: a write still under way, or one cut short by a crash (the host's store cuts it off when it next opens the log; while that boot's enclave runs, it sends that record again)",
    );
    // The same line with its newline, or a whole record without one: no such note.
    writeFileSync(path, `${lines.slice(0, 3).join("\n")}\n${torn}\n`);
    await expectMalformed(path, 3, "audit log line 4: not valid JSON (at position 300)");
    writeFileSync(path, lines.join("\n"));
    expect(await verifyAuditLogFile(path, CASE_KEYS.publicKey)).toMatchObject({ ok: true, records: 4 });
  });

  it("a log that cannot be read: the error names the file, the error's code and what to do, the error its cause", async () => {
    const keyHex = Buffer.from(CASE_KEYS.publicKey).toString("hex");
    const missing = join(dir, "missing.jsonl");
    const run = await runCloister(["audit", "verify", "--log", missing, "--key", keyHex], { timeoutMs: 30_000 });
    expect([run.code, run.stderr]).toEqual([
      2,
      `cloister: USAGE: --log ${missing}: cannot read (ENOENT: no such file; check the path)\n`,
    ]);
    const error = await rejectionOf(verifyAuditLogFile(missing, CASE_KEYS.publicKey), UsageError);
    expect(error.cause).toMatchObject({ code: "ENOENT" });
    // A directory is named as what it is (test/pipeline/audit-cli.test.ts: every kind of non-file).
    const directory = await runCloister(["audit", "verify", "--log", dir, "--key", keyHex], { timeoutMs: 30_000 });
    expect([directory.code, directory.stderr]).toEqual([
      2,
      `cloister: USAGE: --log ${dir}: expected a regular file or a pipe, found a directory\n`,
    ]);
  });
});
