import { execFileSync } from "node:child_process";
import {
  appendFileSync,
  chmodSync,
  existsSync,
  fstatSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { verifyAuditLog } from "../../enclave/pipeline/audit.ts";
import { AuditStore, type CheckedLine } from "../../host/audit-store.ts";
import { readAuditLines } from "../helpers/audit-lines.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { seededKeyPair, writeLog } from "./helpers.ts";

const dir = await testDirectory("cloister-audit-store-");
afterEach(() => {
  vi.restoreAllMocks();
});

/** FileHandle's prototype (not exported by node:fs/promises), to make writes fail. */
async function fileHandlePrototype(): Promise<FileHandle> {
  const handle = await open(join(dir, "prototype-probe"), "a");
  await handle.close();
  return Object.getPrototypeOf(handle) as FileHandle;
}

/**
 * Makes the next `failures` writes of a FileHandle fail as a disk filling up does: `partial` bytes
 * written (a short write), then (after `meanwhile`, another writer's turn) the write of the rest
 * fails with ENOSPC.
 */
async function failWrites(failures: number, partial: number, meanwhile = () => {}) {
  const proto = await fileHandlePrototype();
  const original = proto.write as (...args: unknown[]) => Promise<{ bytesWritten: number }>;
  let left = failures;
  let short = false;
  return vi.spyOn(proto, "write").mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
    if (short) {
      short = false;
      meanwhile();
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    }
    if (left === 0) return original.apply(this, args);
    left -= 1;
    short = true;
    return original.call(this, args[0], args[1], partial);
  } as never);
}

/** Makes the next FileHandle.truncate fail with EIO (the cut of a failed write); later ones work. */
async function failNextTruncate(): Promise<void> {
  const proto = await fileHandlePrototype();
  const truncate = proto.truncate;
  let failTruncate = true;
  vi.spyOn(proto, "truncate").mockImplementation(async function (this: FileHandle, length) {
    if (failTruncate) {
      failTruncate = false;
      throw Object.assign(new Error("EIO: i/o error, ftruncate"), { code: "EIO" });
    }
    return truncate.call(this, length);
  });
}

/** A store (on a new file `name`) whose first write of line 0 of `lines` failed after 7 bytes, and its cut too. */
async function tornStore(name: string) {
  const path = join(dir, name);
  const lines = writeLog(2);
  const store = await AuditStore.open(path, { fsync: "never" });
  await failWrites(1, 7);
  await failNextTruncate();
  await expect(store.append(lines[0] as string)).rejects.toMatchObject({ code: "AUDIT_STORE_IO" });
  return { path, lines, store };
}

describe("AuditStore", () => {
  it("concurrent appends never interleave and keep call order; the stored log verifies", async () => {
    const path = join(dir, "concurrent.jsonl");
    const store = await AuditStore.open(path);
    const lines = writeLog(200);
    // Long lines (well above a pipe buffer's atomic size when batched) make interleaving visible.
    await Promise.all(lines.map((line) => store.append(line)));
    await store.flush();
    const read = await readAuditLines(path);
    expect(read).toEqual(lines);
    expect(readFileSync(path, "utf8")).toBe(`${lines.join("\n")}\n`);
    expect(verifyAuditLog(read, seededKeyPair(7).publicKey).ok).toBe(true);
    await store.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it("cuts a torn tail (a write a crash left unfinished, never acknowledged) and appends after the last whole line", async () => {
    const path = join(dir, "torn.jsonl");
    const lines = writeLog(3);
    writeFileSync(path, `${lines[0]}\n${(lines[1] as string).slice(0, 40)}`);
    const store = await AuditStore.open(path, { fsync: "never" });
    // The last *complete* line: the torn one is no stored record (a restarted collector resumes after it).
    expect(store.lastLineAtOpen).toBe(lines[0]);
    // The enclave sends the record again (it was never acknowledged): the log is whole.
    await store.append(lines[1] as string);
    await store.append(lines[2] as string);
    await store.close();
    const read = await readAuditLines(path);
    expect(read).toEqual(lines);
    expect(verifyAuditLog(read, seededKeyPair(7).publicKey).ok).toBe(true);
    // A file that is one torn line: cut to nothing.
    const alone = join(dir, "torn-alone.jsonl");
    writeFileSync(alone, (lines[0] as string).slice(0, 10));
    const fresh = await AuditStore.open(alone, { fsync: "never" });
    expect(fresh.lastLineAtOpen).toBeNull();
    expect(fresh.emptyAtOpen).toBe(true);
    await fresh.close();
    expect(readFileSync(alone, "utf8")).toBe("");
  });

  it("an unterminated end another writer completes while the store opens is not cut: the open is refused", async () => {
    const path = join(dir, "torn-then-completed.jsonl");
    const lines = writeLog(2);
    const line = lines[1] as string;
    writeFileSync(path, `${lines[0]}\n${line.slice(0, 40)}`);
    // Another host process, whose write was under way, finishes it while this store reads the end.
    const proto = await fileHandlePrototype();
    const read = proto.read as (...args: unknown[]) => Promise<unknown>;
    vi.spyOn(proto, "read").mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
      const result = await read.apply(this, args);
      appendFileSync(path, `${line.slice(40)}\n`);
      return result;
    } as never);
    await expect(AuditStore.open(path, { fsync: "never" })).rejects.toMatchObject({
      code: "AUDIT_STORE_IO",
      message: expect.stringContaining("another process writes to this file"),
    });
    expect(readFileSync(path, "utf8")).toBe(`${lines.join("\n")}\n`);
  });

  it("an unterminated end another process cuts while the store opens is refused, naming the size found", async () => {
    const path = join(dir, "torn-then-cut.jsonl");
    const lines = writeLog(2);
    const torn = `${lines[0]}\n${(lines[1] as string).slice(0, 40)}`;
    writeFileSync(path, torn);
    // Another host process cuts the torn end off (its own open's repair) while this store reads it.
    const proto = await fileHandlePrototype();
    const read = proto.read as (...args: unknown[]) => Promise<unknown>;
    vi.spyOn(proto, "read").mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
      const result = await read.apply(this, args);
      truncateSync(path, Buffer.byteLength(`${lines[0]}\n`));
      return result;
    } as never);
    await expect(AuditStore.open(path, { fsync: "never" })).rejects.toMatchObject({
      code: "AUDIT_STORE_IO",
      message: `audit log ${path}: expected its end to stay as read (${Buffer.byteLength(torn)} bytes, the last line unfinished), found ${Buffer.byteLength(`${lines[0]}\n`)} bytes: another process writes to this file (one host process per audit directory)`,
    });
    expect(readFileSync(path, "utf8")).toBe(`${lines[0]}\n`);
  });

  it("keeps an unterminated end whose start lies beyond any record's length, on a line of its own", async () => {
    const path = join(dir, "long-tail.jsonl");
    const lines = writeLog(2);
    const junk = "x".repeat(3 * 65_536);
    writeFileSync(path, `${lines[0]}\n${junk}`);
    const store = await AuditStore.open(path, { fsync: "never", maxLineBytes: 65_536 });
    await store.append(lines[1] as string);
    await store.close();
    expect(await readAuditLines(path)).toEqual([lines[0], junk, lines[1]]);
  });

  it.each([
    ["empty", ""],
    ["two lines", '{"a":1}\n{"b":2}'],
    ["carriage return", '{"a":1}\r'],
    ["not JSON", "hello"],
    ["a JSON array", "[1,2]"],
    ["too long", `{"a":"${"x".repeat(70_000)}"}`],
  ])("refuses a line that is %s, and keeps the file unchanged", async (_name, line) => {
    const path = join(dir, `refuse-${_name.replace(/\W/g, "")}.jsonl`);
    const store = await AuditStore.open(path);
    await expect(store.append(line)).rejects.toMatchObject({ code: "AUDIT_STORE_LINE_INVALID" });
    await store.close();
    expect(readFileSync(path, "utf8")).toBe("");
  });

  it("a write failing halfway leaves no partial line; the queued appends are rejected; re-sending stores each line once", async () => {
    const path = join(dir, "write-fails.jsonl");
    const lines = writeLog(4);
    const store = await AuditStore.open(path, { fsync: "never" });
    await store.append(lines[0] as string);
    // The next write (line 1 alone; lines 2 and 3 queue behind it) fails after 5 bytes.
    await failWrites(1, 5);
    const results = await Promise.allSettled(lines.slice(1).map((line) => store.append(line)));
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected", "rejected"]);
    expect((results[0] as PromiseRejectedResult).reason).toMatchObject({
      code: "AUDIT_STORE_IO",
      message: expect.stringContaining("write failed (ENOSPC); 3 line(s) not stored"),
    });
    // Only what resolved is in the file, ending on a whole line.
    expect(readFileSync(path, "utf8")).toBe(`${lines[0]}\n`);
    // The caller re-sends from its first rejected line: every line once, and the log verifies.
    for (const line of lines.slice(1)) await store.append(line);
    await store.close();
    const read = await readAuditLines(path);
    expect(read).toEqual(lines);
    expect(verifyAuditLog(read, seededKeyPair(7).publicKey).ok).toBe(true);
  });

  it("a failed write behind a good one: the good batch stays, the failed one and those queued after it are rejected", async () => {
    const path = join(dir, "second-batch-fails.jsonl");
    const lines = writeLog(3);
    const store = await AuditStore.open(path, { fsync: "never" });
    const proto = await fileHandlePrototype();
    const original = proto.write as (...args: unknown[]) => Promise<{ bytesWritten: number }>;
    let calls = 0;
    vi.spyOn(proto, "write").mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
      calls += 1;
      // The first write (line 0) succeeds; the second (lines 1 and 2 together) writes 30 bytes, the third fails.
      if (calls === 3) throw Object.assign(new Error("EIO: i/o error, write"), { code: "EIO" });
      return calls === 2 ? original.call(this, args[0], args[1], 30) : original.apply(this, args);
    } as never);
    const results = await Promise.allSettled(lines.map((line) => store.append(line)));
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "rejected"]);
    expect(readFileSync(path, "utf8")).toBe(`${lines[0]}\n`);
    await store.close();
  });

  it("when cutting a failed write back fails too, the next write cuts it first", async () => {
    const { path, lines, store } = await tornStore("truncate-fails.jsonl");
    expect(readFileSync(path, "utf8")).toBe((lines[0] as string).slice(0, 7));
    for (const line of lines) await store.append(line);
    await store.close();
    expect(await readAuditLines(path)).toEqual(lines);
  });

  it("under fsync always, the cut of a failed write is synced before anything else is written", async () => {
    const path = join(dir, "cut-synced.jsonl");
    const lines = writeLog(2);
    const store = await AuditStore.open(path, { fsync: "always" });
    const proto = await fileHandlePrototype();
    const calls: string[] = [];
    for (const name of ["truncate", "sync"] as const) {
      const original = proto[name] as (...args: unknown[]) => Promise<unknown>;
      vi.spyOn(proto, name).mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
        calls.push(name);
        return original.apply(this, args);
      } as never);
    }
    await failWrites(1, 7);
    await expect(store.append(lines[0] as string)).rejects.toMatchObject({ code: "AUDIT_STORE_IO" });
    // Synced before the failed append is reported, not only with the next write.
    expect(calls).toEqual(["truncate", "sync"]);
    await store.append(lines[0] as string);
    await store.close();
    expect(await readAuditLines(path)).toEqual([lines[0]]);
  });

  it("when cutting a failed write back fails too and the store is closed next, close cuts it", async () => {
    const path = join(dir, "truncate-fails-then-close.jsonl");
    const lines = writeLog(2);
    const store = await AuditStore.open(path, { fsync: "never" });
    await store.append(lines[0] as string);
    await failWrites(1, 7);
    await failNextTruncate();
    await expect(store.append(lines[1] as string)).rejects.toMatchObject({ code: "AUDIT_STORE_IO" });
    expect(readFileSync(path, "utf8")).toBe(`${lines[0]}\n${(lines[1] as string).slice(0, 7)}`);
    await store.close();
    expect(readFileSync(path, "utf8")).toBe(`${lines[0]}\n`);
  });

  it("a failed write whose cut failed too is never cut back over another writer's lines (next write, or close)", async () => {
    const { path, lines, store: first } = await tornStore("truncate-fails-then-other-writer.jsonl");
    // Another host process on the directory: its open cuts the torn tail, then it appends.
    const second = await AuditStore.open(path, { fsync: "never" });
    await second.append('{"second":0}');
    await expect(first.append(lines[0] as string)).rejects.toMatchObject({
      code: "AUDIT_STORE_IO",
      message: expect.stringContaining(
        "expected 0 bytes (what this store wrote) or 7 (with its failed write), found 13: another process writes to this file",
      ),
    });
    await first.close();
    await second.close();
    expect(readFileSync(path, "utf8")).toBe('{"second":0}\n');
  });

  it("a write that fails after another writer appended is not cut back over that writer's line", async () => {
    const path = join(dir, "fails-after-other-writer.jsonl");
    const lines = writeLog(2);
    const store = await AuditStore.open(path, { fsync: "never" });
    await store.append(lines[0] as string);
    // 7 bytes of line 1 written, then another host process appends a whole line, then the write fails.
    await failWrites(1, 7, () => appendFileSync(path, '{"second":0}\n'));
    await expect(store.append(lines[1] as string)).rejects.toMatchObject({ code: "AUDIT_STORE_IO" });
    const kept = `${lines[0]}\n${(lines[1] as string).slice(0, 7)}{"second":0}\n`;
    expect(readFileSync(path, "utf8")).toBe(kept);
    // Nothing more is written or cut: the file is another writer's too.
    await expect(store.append(lines[1] as string)).rejects.toMatchObject({
      message: expect.stringContaining("another process writes to this file"),
    });
    await store.close();
    expect(readFileSync(path, "utf8")).toBe(kept);
  });

  it("lastLineAtOpen: null for an empty file, the last line of a file ending on a newline", async () => {
    const path = join(dir, "last-line.jsonl");
    const empty = await AuditStore.open(path, { fsync: "never" });
    expect(empty.lastLineAtOpen).toBeNull();
    expect(empty.emptyAtOpen).toBe(true);
    for (const line of writeLog(3)) await empty.append(line);
    await empty.close();
    const reopened = await AuditStore.open(path, { fsync: "never" });
    expect(reopened.lastLineAtOpen).toBe(writeLog(3)[2]);
    expect(reopened.emptyAtOpen).toBe(false);
    await reopened.close();
    writeFileSync(path, "\n");
    const blank = await AuditStore.open(path, { fsync: "never" });
    expect(blank.lastLineAtOpen).toBe("");
    await blank.close();
  });

  it("lastLineAtOpen: null when the last whole line is longer than maxLineBytes or than the window read", async () => {
    const path = join(dir, "last-line-long.jsonl");
    const max = 100;
    // Longer than maxLineBytes, inside the window (2 × 100 + 3 bytes): no stored record.
    writeFileSync(path, `{"a":1}\n${"y".repeat(max + 1)}\n`);
    const over = await AuditStore.open(path, { fsync: "never", maxLineBytes: max });
    expect(over.lastLineAtOpen).toBeNull();
    expect(over.emptyAtOpen).toBe(false);
    await over.close();
    // Exactly maxLineBytes: a record.
    const exact = `{"a":"${"y".repeat(max - 8)}"}`;
    writeFileSync(path, `{"a":1}\n${exact}\n`);
    const fits = await AuditStore.open(path, { fsync: "never", maxLineBytes: max });
    expect(fits.lastLineAtOpen).toBe(exact);
    await fits.close();
    // Longer than the window: no newline before it in what is read, yet the file does not start there.
    const long = "z".repeat(3 * max);
    writeFileSync(path, `{"a":1}\n${long}\n`);
    const beyond = await AuditStore.open(path, { fsync: "never", maxLineBytes: max });
    expect(beyond.lastLineAtOpen).toBeNull();
    await beyond.append('{"b":2}');
    await beyond.close();
    expect(readFileSync(path, "utf8")).toBe(`{"a":1}\n${long}\n{"b":2}\n`);
  });

  it("a torn tail after a whole line longer than the window: cut at that line's newline, no last line", async () => {
    const path = join(dir, "torn-after-long.jsonl");
    const max = 100;
    const long = "z".repeat(3 * max);
    // The torn tail fills most of the window (2 × 100 + 3 bytes): only the long line's last 46
    // bytes are read, short enough to pass for a record were its start not checked.
    writeFileSync(path, `{"a":1}\n${long}\n{"b":"${"w".repeat(150)}`);
    const store = await AuditStore.open(path, { fsync: "never", maxLineBytes: max });
    expect(store.lastLineAtOpen).toBeNull();
    await store.append('{"b":2}');
    await store.close();
    expect(readFileSync(path, "utf8")).toBe(`{"a":1}\n${long}\n{"b":2}\n`);
  });

  it("lastLineAtOpen drops the CR of a CRLF line (written by another tool), and the file is kept as is", async () => {
    const path = join(dir, "crlf.jsonl");
    writeFileSync(path, '{"a":1}\r\n{"b":2}\r\n{"c":');
    const store = await AuditStore.open(path, { fsync: "never" });
    expect(store.lastLineAtOpen).toBe('{"b":2}');
    await store.close();
    expect(readFileSync(path, "utf8")).toBe('{"a":1}\r\n{"b":2}\r\n');
  });

  it("under fsync always, opening syncs the file, then its directory (its entry there); nothing above it; never: neither", async () => {
    const proto = await fileHandlePrototype();
    const original = proto.sync;
    const synced: number[] = [];
    vi.spyOn(proto, "sync").mockImplementation(async function (this: FileHandle) {
      synced.push(fstatSync(this.fd).ino);
      return original.call(this);
    });
    const auditDir = join(dir, "new-audit-dir");
    mkdirSync(auditDir);
    const path = join(auditDir, "0123456789abcdef.jsonl");
    const store = await AuditStore.open(path, { fsync: "always" });
    // The audit directory's own entry is synced where it is made (prepareAuditDir).
    expect(synced).toEqual([statSync(path).ino, statSync(auditDir).ino]);
    await store.close();
    synced.length = 0;
    const unsynced = await AuditStore.open(join(auditDir, "never.jsonl"), { fsync: "never" });
    expect(synced).toEqual([]);
    await unsynced.close();
  });

  it("never appends through a link or to a non-file planted at the log's path, and says what it found", async () => {
    const victim = join(dir, "victim.txt");
    writeFileSync(victim, "not the host's to write\n");
    symlinkSync(victim, join(dir, "planted-link.jsonl"));
    execFileSync("mkfifo", [join(dir, "planted-fifo.jsonl")]);
    mkdirSync(join(dir, "planted-dir.jsonl"));
    for (const [name, found] of [
      ["planted-link.jsonl", "a symbolic link (not followed)"],
      ["planted-fifo.jsonl", "a FIFO"],
      ["planted-dir.jsonl", "a directory"],
    ] as const) {
      const path = join(dir, name);
      await expect(AuditStore.open(path)).rejects.toMatchObject({
        code: "AUDIT_STORE_IO",
        message: `audit log ${path}: expected a regular file, found ${found}`,
      });
    }
    expect(readFileSync(victim, "utf8")).toBe("not the host's to write\n");
  });

  it("makes an existing log 0600 (an earlier run or another tool left it wider), keeping its lines", async () => {
    const path = join(dir, "wide.jsonl");
    writeFileSync(path, '{"a":1}\n', { mode: 0o666 });
    chmodSync(path, 0o666);
    const store = await AuditStore.open(path);
    await store.append('{"a":2}');
    await store.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, "utf8")).toBe('{"a":1}\n{"a":2}\n');
  });

  it("a second writer of the same file (another host process) is refused, and never cuts the first one's lines", async () => {
    const path = join(dir, "two-writers.jsonl");
    const first = await AuditStore.open(path);
    const second = await AuditStore.open(path);
    await first.append('{"first":0}');
    await expect(second.append('{"second":0}')).rejects.toMatchObject({
      code: "AUDIT_STORE_IO",
      message: `audit log ${path}: expected 0 bytes (what this store wrote), found 12: another process writes to this file (one host process per audit directory); 1 line(s) not stored`,
    });
    await first.append('{"first":1}');
    await first.close();
    await second.close();
    expect(readFileSync(path, "utf8")).toBe('{"first":0}\n{"first":1}\n');
  });

  it("refuses to write once its file was removed or replaced (records would go where no verifier looks)", async () => {
    for (const [name, change] of [
      ["removed.jsonl", (path: string) => rmSync(path)],
      ["renamed.jsonl", (path: string) => renameSync(path, `${path}.1`)],
      [
        "replaced.jsonl",
        (path: string) => {
          writeFileSync(`${path}.new`, "");
          renameSync(`${path}.new`, path);
        },
      ],
    ] as const) {
      const path = join(dir, name);
      const store = await AuditStore.open(path);
      await store.append('{"a":0}');
      change(path);
      await expect(store.append('{"a":1}')).rejects.toMatchObject({
        code: "AUDIT_STORE_IO",
        message: `audit log ${path}: expected the file this store opened at that path, found it removed, renamed or replaced (restart the host to store records there again); 1 line(s) not stored`,
      });
      await store.close();
    }
  });

  it("takes a line its own check took without parsing it again, and checks one another store's check took", async () => {
    const path = join(dir, "checked.jsonl");
    const [line] = writeLog(1) as [string];
    const store = await AuditStore.open(path, { fsync: "never", maxLineBytes: 100 });
    const lenient = await AuditStore.open(join(dir, "lenient.jsonl"), { fsync: "never" });
    const taken = lenient.check(line);
    expect(taken).toMatchObject({ line, value: { record: { seq: 0 } } });
    expect(store.check(line)).toMatch(/^audit line: expected at most 100 bytes, found \d+$/);
    await expect(store.append(taken as CheckedLine)).rejects.toMatchObject({ code: "AUDIT_STORE_LINE_INVALID" });
    const parse = vi.spyOn(JSON, "parse");
    await lenient.append(taken as CheckedLine);
    expect(parse).not.toHaveBeenCalled();
    await Promise.all([store.close(), lenient.close()]);
    expect(readFileSync(path, "utf8")).toBe("");
    expect(await readAuditLines(join(dir, "lenient.jsonl"))).toEqual([line]);
  });

  it("refuses a line bound that is no whole number of bytes from 1 (it would take any line), opening nothing", async () => {
    for (const [maxLineBytes, found] of [
      [Number.NaN, "NaN"],
      [-1, "-1"],
      [0, "0"],
      [1.5, "1.5"],
    ] as const) {
      const path = join(dir, "bound.jsonl");
      await expect(AuditStore.open(path, { maxLineBytes })).rejects.toMatchObject({
        code: "AUDIT_STORE_LINE_INVALID",
        message: `audit store maxLineBytes: expected a whole number of bytes from 1, found ${found}`,
      });
      expect(existsSync(path)).toBe(false);
    }
  });

  it("refuses appends after close", async () => {
    const store = await AuditStore.open(join(dir, "closed.jsonl"));
    await store.close();
    await expect(store.append('{"a":1}')).rejects.toMatchObject({ code: "AUDIT_STORE_CLOSED" });
  });

  it("reports an unopenable path with AUDIT_STORE_IO", async () => {
    await expect(AuditStore.open(join(dir, "missing-dir", "x.jsonl"))).rejects.toMatchObject({
      code: "AUDIT_STORE_IO",
    });
  });

  it("imports nothing from sealed/ or enclave/", () => {
    const source = readFileSync(new URL("../../host/audit-store.ts", import.meta.url), "utf8");
    const imports = [...source.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]);
    // Its two file helpers (what a file is, from the bounded reader; fsync of a directory, from the
    // CLI); what they reach is checked in test/sealed/boundary.test.ts.
    expect(imports).toEqual([
      "node:fs/promises",
      "node:path",
      "../attestation/bounded-read.ts",
      "../client/cli/output.ts",
    ]);
  });
});
