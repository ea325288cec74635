import { execFile, execFileSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { fileMessage } from "../../attestation/bounded-read.ts";
import { checkStoredAuditLog } from "../../client/cli/run-up.ts";
import { verifyAuditLog } from "../../enclave/pipeline/audit.ts";
import { REPO_ROOT } from "../helpers/cli.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { makeWriter, seededKeyPair, writeLog } from "../pipeline/helpers.ts";

const dir = await testDirectory("cloister-up-audit-");

describe("cloister up / demo: the stored audit log check", () => {
  const keys = seededKeyPair(7);
  const lines = writeLog(3, makeWriter(keys));
  const good = verifyAuditLog(lines, keys.publicKey);
  if (!good.ok) throw new Error("the sample log does not verify");
  const checkpoint = { count: 3, lastRecordHash: good.lastRecordHash };

  it("verifies a complete log against the checkpoint", async () => {
    const file = join(dir, "good.jsonl");
    await writeFile(file, `${lines.join("\n")}\n`);
    await expect(checkStoredAuditLog(file, keys.publicKey, checkpoint, 1)).resolves.toMatch(
      /^audit: 3 records stored by the host in .*good\.jsonl; signatures, chain and completeness verified/,
    );
  });

  it("reads every line as `cloister audit verify` does: an empty line is malformed, not skipped", async () => {
    const empty = join(dir, "empty-line.jsonl");
    await writeFile(empty, `${lines[0]}\n\n${lines[1]}\n${lines[2]}\n`);
    await expect(checkStoredAuditLog(empty, keys.publicKey, checkpoint, 1)).rejects.toThrow(
      /empty-line\.jsonl: audit log line 2: expected a record line, found an empty line$/,
    );
    // A CRLF line (another tool's copy) is read as `audit verify` reads it: the CR is not part of it.
    const crlf = join(dir, "crlf.jsonl");
    await writeFile(crlf, `${lines[0]}\r\n${lines[1]}\n${lines[2]}\n`);
    await expect(checkStoredAuditLog(crlf, keys.publicKey, checkpoint, 1)).resolves.toMatch(/^audit: 3 record/);
  });

  it("a log that cannot be read is that error, naming the file: not records the host failed to store", async () => {
    const directory = join(dir, "a-directory.jsonl");
    await mkdir(directory);
    await expect(checkStoredAuditLog(directory, keys.publicKey, checkpoint, 1)).rejects.toThrow(
      `audit log ${directory}: cannot read (EISDIR: it is a directory; name the file in it)`,
    );
    // No file yet is no error: the host makes it when it stores its first record.
    await expect(checkStoredAuditLog(join(dir, "none.jsonl"), keys.publicKey, checkpoint, 1)).rejects.toThrow(
      "the enclave wrote 3 records, the host stored fewer within 0.1 s",
    );
  });

  it("a FIFO in place of the log (swapped in by whoever owns a directory above --dir) is refused, not waited on", async () => {
    const fifo = join(dir, "fifo.jsonl");
    execFileSync("mkfifo", [fifo]);
    // In a child with a time limit: a blocking open of a FIFO waits for a writer that never comes,
    // and a test that hangs on that would say nothing. Killed (no answer), the check would have hung.
    const script = `import { checkStoredAuditLog } from "./client/cli/run-up.ts";
      await checkStoredAuditLog(${JSON.stringify(fifo)}, new Uint8Array(32), { count: 3, lastRecordHash: "00" }, 1).then(
        () => console.log("resolved"),
        (error) => console.log(JSON.stringify(error.message)),
      );`;
    const run = await promisify(execFile)(
      process.execPath,
      ["--no-warnings", "--import", "tsx", "--input-type=module", "-e", script],
      { cwd: REPO_ROOT, timeout: 20_000 },
    ).catch((error: { killed?: boolean; stdout?: string }) => ({
      stdout: error.killed ? "killed" : `${error.stdout}`,
    }));
    expect(run.stdout.trim()).toBe(
      JSON.stringify(`audit log ${fifo}: cannot read (expected a regular file, found a FIFO)`),
    );
  }, 60_000);

  it("names a log path that would not read back as itself in quotes, escaped (a --dir with a line feed or an ESC)", async () => {
    const odd = join(dir, "odd\n\u001b[2Jdir");
    await mkdir(odd);
    const fifo = join(odd, "fifo.jsonl");
    execFileSync("mkfifo", [fifo]);
    const refusal = await checkStoredAuditLog(fifo, keys.publicKey, checkpoint, 1).catch((error: Error) => error);
    expect(refusal).toBeInstanceOf(Error);
    const message = (refusal as Error).message;
    expect(message).toBe(fileMessage(fifo, "audit log", "cannot read (expected a regular file, found a FIFO)"));
    for (const raw of ["\n", "\u001b"]) expect(message).not.toContain(raw);
    const fewer = await checkStoredAuditLog(join(odd, "none.jsonl"), keys.publicKey, checkpoint, 1).catch(
      (error: Error) => error,
    );
    for (const raw of ["\n", "\u001b"]) expect((fewer as Error).message).not.toContain(raw);
    expect((fewer as Error).message).toMatch(/^audit log \$'.*none\.jsonl': the enclave wrote 3 records/s);
  });

  it('says "1 record" of a log and a checkpoint of one record, not "1 records"', async () => {
    const one = writeLog(1, makeWriter(keys));
    const verified = verifyAuditLog(one, keys.publicKey);
    if (!verified.ok) throw new Error("the one-record log does not verify");
    const single = { count: 1, lastRecordHash: verified.lastRecordHash };
    const file = join(dir, "one.jsonl");
    await writeFile(file, `${one[0]}\n`);
    await expect(checkStoredAuditLog(file, keys.publicKey, single, 1)).resolves.toMatch(
      /^audit: 1 record stored by the host in .*one\.jsonl; /,
    );
    await expect(checkStoredAuditLog(join(dir, "none-of-one.jsonl"), keys.publicKey, single, 1)).rejects.toThrow(
      "the enclave wrote 1 record, the host stored fewer within 0.1 s",
    );
  });

  it("a log cut short of the checkpoint: fewer stored than written, named", async () => {
    const cut = join(dir, "cut.jsonl");
    await writeFile(cut, `${lines[0]}\n${lines[1]}\n`);
    await expect(checkStoredAuditLog(cut, keys.publicKey, checkpoint, 1)).rejects.toThrow(
      "the enclave wrote 3 records, the host stored fewer within 0.1 s",
    );
  });
});
