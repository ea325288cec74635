/**
 * The host's audit collector against a scripted enclave `/audit` (injected fetch): good batches are
 * stored and acknowledged; a malformed batch is reported, stores nothing and is asked for again,
 * and never takes the host down. Against an enclave's backlog (`backlogEnclave`, the semantics of
 * enclave/service.ts collectAudit): a failed disk write and a host restart store every record once.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { realpathSync } from "node:fs";
import {
  chmod,
  chown,
  type FileHandle,
  link,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it, vi } from "vitest";
import { listen, type RunningServer } from "../../enclave/http.ts";
import { type AuditWriter, verifyAuditLog } from "../../enclave/pipeline/audit.ts";
import { AuditRecordInvalidError } from "../../enclave/pipeline/errors.ts";
import { ENCLAVE_MAX_CONNECTIONS } from "../../enclave/run.ts";
import { createEnclaveApp, type EnclaveServerState } from "../../enclave/server.ts";
import { AUDIT_PAGE_MAX_LINES, type Enclave, MAX_AUDIT_BACKLOG } from "../../enclave/service.ts";
import {
  AUDIT_BATCH_MAX_BYTES,
  AUDIT_BATCH_MAX_LINES,
  AuditCollector,
  AuditDirError,
  prepareAuditDir,
  STOP_MAX_COLLECTIONS,
} from "../../host/audit-collector.ts";
import { bootAuditKey } from "../../host/audit-record-check.ts";
import { AuditStore } from "../../host/audit-store.ts";
import { ApiKeyStore, type ApiKeysFile } from "../../host/identity.ts";
import { startHost } from "../../host/server.ts";
import { PII_ENTITIES } from "../../manifests/schema.ts";
import { sealRequest } from "../../sealed/index.ts";
import { bootWith, ScriptedEngine, usage } from "../enclave/helpers.ts";
import { readAuditLines } from "../helpers/audit-lines.ts";
import { CLI, runCloister } from "../helpers/cli.ts";
import { holdTimeouts } from "../helpers/held-timers.ts";
import { makeWriter, resignRecord, sampleEntries, seededKeyPair, writeLog } from "../pipeline/helpers.ts";

/**
 * An attestation document as the collector reads it (its payload's `sig_jwk`, unverified), naming
 * `key`; its SHA-256 is its boot's id.
 */
function documentNaming(key: Uint8Array): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const sigJwk = { kty: "OKP", crv: "Ed25519", x: Buffer.from(key).toString("base64url") };
  return `${part({ alg: "EdDSA" })}.${part({ sig_jwk: sigJwk })}.${"A".repeat(86)}`;
}
const bootOf = (document: string) => createHash("sha256").update(document).digest("hex");

/** The boot's document, naming the key its records are signed under (seededKeyPair(7)). */
const DOCUMENT = documentNaming(seededKeyPair(7).publicKey);
const BOOT = bootOf(DOCUMENT);
const KEY = Buffer.from(seededKeyPair(7).publicKey).toString("hex");
/** Records 0..5 of one boot as the enclave writes them (signed under seededKeyPair(7)). */
const RECORDS = writeLog(6);

/**
 * The document the enclave serves on `GET /audit/document` (null: it answers 503), and how often it
 * was asked for. `olderEnclave`: it answers 404 there and serves the document on `/attestation` only.
 */
interface ServedDocument {
  document: string | null;
  read: number;
  olderEnclave?: boolean;
}

/** `fetchFn` with the enclave's document answered from `served` (the collector reads it once per boot it meets). */
function withDocument(fetchFn: typeof fetch, served: ServedDocument = { document: DOCUMENT, read: 0 }): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const path = new URL(String(input)).pathname;
    const route = served.olderEnclave === true ? "/attestation" : "/audit/document";
    if (path === "/audit/document" && route !== path) return new Response("{}", { status: 404 });
    if (path !== route) return fetchFn(input, init);
    served.read += 1;
    if (served.document === null) return new Response("", { status: 503 });
    return new Response(JSON.stringify({ document: served.document }));
  }) as typeof fetch;
}
/** Opens one sealed request in `enclave` and reads its answer to the end (its audit record written, or failed). */
async function answerSealed(enclave: Enclave): Promise<void> {
  const { envelope } = await sealRequest({
    enclavePublicKey: enclave.publicKeys.sealing,
    kind: "complete",
    body: { prompt: "hi" },
  });
  const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
  const before = { pending: enclave.auditPending, failed: enclave.auditFailed };
  for await (const _ of answer.frames) {
    // read to the end
  }
  // The record is tried as the final frame's consumer asks for the next one, before the frames end.
  expect({ pending: enclave.auditPending, failed: enclave.auditFailed }).not.toEqual(before);
}

const dirs: string[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/**
 * An enclave's audit backlog as enclave/service.ts keeps it: records stay until a request for
 * this boot acknowledges them (`from` past them); every answer re-sends the unacknowledged ones,
 * at most `page` of them. `down` makes its /audit unreachable; `downAfterAnswer` after its next
 * answer.
 */
function backlogEnclave(page = AUDIT_PAGE_MAX_LINES) {
  const writer = makeWriter();
  const entries = sampleEntries(STOP_MAX_COLLECTIONS + 16);
  const backlog: { seq: number; line: string }[] = [];
  let next = 0;
  const enclave = {
    down: false,
    downAfterAnswer: false,
    /** Requests received and not yet answered. */
    inFlight: 0,
    /** Awaited after the answer is made, before it is sent (the enclave's answer on its way). */
    beforeAnswer: async () => {},
    write(n: number) {
      for (let i = 0; i < n; i += 1) backlog.push({ seq: next, line: writer.record(entries[next++]!).line });
    },
    get pending() {
      return backlog.length;
    },
    fetch: (async (url: string | URL | Request) => {
      if (enclave.down) throw new TypeError("fetch failed (ECONNREFUSED)");
      const query = new URL(String(url)).searchParams;
      const from = Number(query.get("from"));
      if (query.get("boot") === BOOT) while (backlog.length > 0 && backlog[0]!.seq < from) backlog.shift();
      if (enclave.downAfterAnswer) enclave.down = true;
      const lines = backlog.slice(0, page);
      const first = lines[0]?.seq ?? next;
      const answer = JSON.stringify({
        boot: BOOT,
        signingKey: KEY,
        from: first,
        lines: lines.map((e) => e.line),
        next: first + lines.length,
      });
      enclave.inFlight += 1;
      try {
        await enclave.beforeAnswer();
      } finally {
        enclave.inFlight -= 1;
      }
      return new Response(answer);
    }) as typeof fetch,
  };
  return enclave;
}

/**
 * Collects, then waits out the follow-up collections (each acknowledging what the one before it
 * stored, started as that one ends): resolves once a collection ends with none started after it.
 */
async function settle(c: AuditCollector) {
  const collector = c as unknown as { running: Promise<void> | null };
  await c.collect();
  for (let i = 0; i < 100 && collector.running !== null; i += 1) await collector.running;
  expect(collector.running).toBeNull();
}

/**
 * An enclave answering `batches` in turn, then (like the enclave) an empty batch from what was
 * acknowledged. Each answer names BOOT, or the boot of `of` (its document and key); `served` serves
 * the document of the boot the last answer named (collector() takes it).
 */
function scripted(batches: { from: number; lines: string[]; of?: { document: string; key: string } }[]) {
  const asked: string[] = [];
  const served: ServedDocument = { document: DOCUMENT, read: 0 };
  let acknowledged = 0;
  const fetchFn = (async (url: string | URL | Request) => {
    const query = new URL(String(url)).searchParams;
    asked.push(new URL(String(url)).search);
    if (query.get("boot") === BOOT) acknowledged = Number(query.get("from"));
    const batch = batches.shift() ?? { from: acknowledged, lines: [] };
    served.document = batch.of?.document ?? DOCUMENT;
    return new Response(
      JSON.stringify({
        boot: bootOf(served.document),
        signingKey: batch.of?.key ?? KEY,
        from: batch.from,
        lines: batch.lines,
        next: batch.from + batch.lines.length,
      }),
    );
  }) as typeof fetch;
  return { fetchFn, asked, served };
}

/**
 * A collector on a fresh directory, or on `existing` (a restarted host); `served: null` leaves the
 * boot's document read to `fetchFn` too.
 */
async function collector(
  fetchFn: typeof fetch,
  existing?: string,
  maxBatchBytes?: number,
  served: ServedDocument | null = { document: DOCUMENT, read: 0 },
) {
  const dir = existing ?? (await mkdtemp(join(tmpdir(), "cloister-collector-")));
  dirs.push(dir);
  const errors: string[] = [];
  const c = new AuditCollector({
    enclaveUrl: "http://enclave.invalid",
    dir,
    intervalMs: 60_000,
    fetch: served === null ? fetchFn : withDocument(fetchFn, served),
    onError: (m) => errors.push(m),
    ...(maxBatchBytes === undefined ? {} : { maxBatchBytes }),
  });
  return { c, dir, errors, file: join(dir, `${BOOT.slice(0, 16)}.jsonl`) };
}

/** A second collector on `dir`, for the same enclave under another URL, logging to `errors`. */
function secondCollector(fetchFn: typeof fetch, dir: string, errors: string[]): AuditCollector {
  return new AuditCollector({
    enclaveUrl: "http://localhost:47601",
    dir,
    intervalMs: 60_000,
    fetch: withDocument(fetchFn),
    onError: (m) => errors.push(m),
  });
}

/**
 * Records 0..1 of `enclave` collected by a host that then stops; `between` runs (given its log
 * file), then a second host process collects on the same directory until nothing is left.
 */
async function restartedHost(
  enclave: ReturnType<typeof backlogEnclave>,
  between: (file: string) => Promise<void>,
): Promise<{ file: string; errors: string[] }> {
  enclave.write(2);
  const first = await collector(enclave.fetch);
  await settle(first.c);
  await first.c.stop();
  await between(first.file);
  const second = await collector(enclave.fetch, first.dir);
  await settle(second.c);
  await second.c.stop();
  return { file: first.file, errors: second.errors };
}

/**
 * Makes the disk full at the second write of any file from here on (ENOSPC); the first gets only
 * its first `firstBytes` bytes out (undefined: all of them).
 */
async function diskFullAtSecondWrite(firstBytes?: number): Promise<void> {
  const probe = await open(join(tmpdir(), "cloister-collector-probe"), "a");
  await probe.close();
  const proto = Object.getPrototypeOf(probe) as FileHandle;
  const write = proto.write as (...args: unknown[]) => Promise<{ bytesWritten: number }>;
  let calls = 0;
  vi.spyOn(proto, "write").mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
    calls += 1;
    if (calls === 1 && firstBytes !== undefined) return write.call(this, args[0], args[1], firstBytes);
    if (calls === 2) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    return write.apply(this, args);
  } as never);
}

/** The stored log holds `count` lines, each record once and in order: it verifies under the test key. */
async function expectWholeLog(file: string, count: number): Promise<void> {
  const lines = await readAuditLines(file);
  expect(lines).toHaveLength(count);
  expect(verifyAuditLog(lines, seededKeyPair(7).publicKey)).toMatchObject({ ok: true });
}

describe("audit collector", () => {
  it("stores a good batch and acknowledges it", async () => {
    const { fetchFn, asked } = scripted([{ from: 0, lines: RECORDS.slice(0, 2) }]);
    const { c, errors, file } = await collector(fetchFn);
    await c.collect();
    await c.stop();
    expect(errors).toEqual([]);
    expect((await readFile(file, "utf8")).trim().split("\n")).toEqual(RECORDS.slice(0, 2));
    expect(asked.slice(0, 2)).toEqual(["?from=0", `?from=2&boot=${BOOT}`]);
  });

  it("reports a malformed batch, stores none of it, asks for it again, and does not throw", async () => {
    const { fetchFn, asked } = scripted([
      { from: 0, lines: [RECORDS[0] as string, "not json"] },
      { from: 0, lines: RECORDS.slice(0, 2) },
    ]);
    const { c, errors, file } = await collector(fetchFn);
    await c.collect(); // must resolve, not reject (it runs from a timer in the host)
    expect(errors).toEqual([
      expect.stringContaining(
        "record 1 from the enclave is not a valid record line (audit line: expected JSON, found unparseable text)",
      ),
    ]);
    await c.collect();
    await c.stop();
    expect((await readFile(file, "utf8")).trim().split("\n")).toEqual(RECORDS.slice(0, 2));
    // Asked from 0 again: a boot whose first batch was refused has no file, nothing to acknowledge.
    expect(asked[1]).toBe("?from=0");
  });

  it("a disk write failing halfway: the records not stored are asked for again and stored once", async () => {
    const enclave = backlogEnclave();
    enclave.write(4);
    const { c, errors, file } = await collector(enclave.fetch);
    // The first write (record 0 alone; 1..3 queue behind it) gets 10 bytes out, then the disk is full.
    await diskFullAtSecondWrite(10);
    await c.collect();
    expect(errors).toEqual([expect.stringContaining("write failed (ENOSPC)")]);
    await settle(c);
    await c.stop();
    await expectWholeLog(file, 4);
    expect(enclave.pending).toBe(0);
  });

  it("a host restarted after its acknowledgement was lost stores the re-sent records once", async () => {
    const enclave = backlogEnclave();
    enclave.write(3);
    const first = await collector(enclave.fetch);
    // Records 0..2 are stored; the acknowledgement that follows does not get through, and the host
    // process goes away.
    enclave.downAfterAnswer = true;
    await settle(first.c);
    await first.c.stop();
    expect(enclave.pending).toBe(3);
    // A new host process on the same directory; the enclave wrote two more records meanwhile.
    enclave.down = false;
    enclave.downAfterAnswer = false;
    enclave.write(2);
    const { c: second, errors } = await collector(enclave.fetch, first.dir);
    await settle(second);
    await second.stop();
    expect(errors).toEqual([]);
    await expectWholeLog(first.file, 5);
    expect(enclave.pending).toBe(0);
  });

  it("a restarted host whose file ends before the enclave's backlog starts says which records are elsewhere", async () => {
    const enclave = backlogEnclave();
    const { file, errors } = await restartedHost(enclave, async () => {
      // Collected meanwhile by another host (another directory): records 2..3 acknowledged there.
      enclave.write(3);
      await enclave.fetch(`http://enclave.invalid/audit?from=4&boot=${BOOT}`);
    });
    expect(errors).toEqual([
      expect.stringContaining("ends at record 1, the enclave sends from 4: records 2..3 were collected elsewhere"),
    ]);
    expect(await readAuditLines(file)).toHaveLength(3);
  });

  it("a restarted host whose file ends on a record the enclave never wrote (altered) stores nothing and acknowledges nothing", async () => {
    const enclave = backlogEnclave();
    const resumeAt = vi.spyOn(AuditCollector.prototype as unknown as { resumeAt: () => number }, "resumeAt");
    const { file, errors } = await restartedHost(enclave, async (file) => {
      expect(enclave.pending).toBe(0);
      // The last line's seq altered (a corrupted digit, or a hand edit): taken as it is, the host
      // would skip and acknowledge every record up to it, and the enclave drop them unstored.
      await writeFile(file, (await readFile(file, "utf8")).replace(/"seq":1,/, '"seq":999999,'));
      enclave.write(3);
    });
    expect(enclave.pending).toBe(3); // nothing acknowledged: the enclave keeps records 2..4
    expect(errors[0]).toBe(
      `audit: cannot store the enclave's records (${file} ends at record 999999 (read without verifying): expected a record the enclave holds or acknowledged, seq at most 4, found 999999; move the file aside if it is not this boot's (the next collection starts a new one)); retrying every 60000 ms (logged again when the problem changes or ends)`,
    );
    expect(resumeAt.mock.results.at(-1)).toMatchObject({
      type: "throw",
      value: { name: "AuditStoreError", code: "AUDIT_STORE_NOT_THIS_BOOT" },
    });
  });

  it("a restarted host whose last line is not the enclave's record of that seq stores nothing and acknowledges nothing", async () => {
    const enclave = backlogEnclave();
    const resumeAt = vi.spyOn(AuditCollector.prototype as unknown as { resumeAt: () => number }, "resumeAt");
    enclave.downAfterAnswer = true; // stored, never acknowledged: the enclave sends 0..1 again
    const { file, errors } = await restartedHost(enclave, async (file) => {
      enclave.down = false;
      enclave.downAfterAnswer = false;
      const stored = await readFile(file, "utf8");
      await writeFile(file, stored.replace(/"tenant":"[^"]*"(?=[^\n]*\n$)/, '"tenant":"someone-else"'));
    });
    expect(enclave.pending).toBe(2); // nothing acknowledged: the enclave keeps records 0..1
    expect(errors[0]).toContain(
      `audit: cannot store the enclave's records (${file}: its last line (record 1) differs from the enclave's record 1: expected the line the enclave sent, found another (altered?);`,
    );
    expect(resumeAt.mock.results.at(-1)).toMatchObject({
      type: "throw",
      value: { name: "AuditStoreError", code: "AUDIT_STORE_NOT_THIS_BOOT" },
    });
  });

  const unreadable: [string, string][] = [
    ["an empty line", "\n"],
    ["a line longer than any record (no seq read)", `${"x".repeat(64 * 1024 + 1)}\n`],
  ];
  it.each(unreadable)("a restarted host whose file ends on %s says so before it stores after it", async (_, text) => {
    const { fetchFn } = scripted([{ from: 0, lines: RECORDS.slice(0, 2) }]);
    const { c, errors, file } = await collector(fetchFn);
    await writeFile(file, `${RECORDS[0]}\n${text}`);
    await c.collect();
    await c.stop();
    expect(errors).toEqual([
      `audit: ${file}: the last line holds no record seq; storing the enclave's records from 0 after it (some may be stored twice)`,
    ]);
    expect(await readFile(file, "utf8")).toBe(`${RECORDS[0]}\n${text}${RECORDS.slice(0, 2).join("\n")}\n`);
  });

  it("parses each record line once per collection (checked, its seq read and stored from one parse)", async () => {
    const { fetchFn } = scripted([{ from: 0, lines: RECORDS.slice(0, 3) }]);
    const { c, errors, file } = await collector(fetchFn);
    const parse = vi.spyOn(JSON, "parse");
    await c.collect();
    const parsedLines = parse.mock.calls.filter(([text]) => RECORDS.includes(text as string));
    parse.mockRestore();
    await c.stop();
    expect(errors).toEqual([]);
    expect(parsedLines).toHaveLength(3);
    expect(await readAuditLines(file)).toEqual(RECORDS.slice(0, 3));
  });

  it("looks at a batch's lines up to its first bad one only (a long broken answer is not parsed through)", async () => {
    // Record 0, then a page of lines repeating it (seq 0 where 1, 2… are expected).
    const { fetchFn } = scripted([{ from: 0, lines: new Array(1000).fill(RECORDS[0]) }]);
    const { c, errors, file } = await collector(fetchFn);
    const parse = vi.spyOn(JSON, "parse");
    await c.collect();
    const parsedLines = parse.mock.calls.filter(([text]) => text === RECORDS[0]);
    parse.mockRestore();
    await c.stop();
    expect(errors[0]).toContain("audit: record 1 from the enclave: seq: expected 1, found 0");
    expect(parsedLines).toHaveLength(2);
    // Nothing stored: a new boot's files are made only for a batch that is taken.
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
  });

  it("writes each boot's .key and .jsonl 0600 whatever the umask, also over a .key an earlier run left wider", async () => {
    const previous = process.umask(0o002);
    try {
      const { fetchFn } = scripted([{ from: 0, lines: RECORDS.slice(0, 1) }]);
      const dir = await mkdtemp(join(tmpdir(), "cloister-collector-"));
      const keyFile = join(dir, `${BOOT.slice(0, 16)}.key`);
      await writeFile(keyFile, "left by an earlier version\n", { mode: 0o664 });
      const { c, errors, file } = await collector(fetchFn, dir);
      await c.collect();
      await c.stop();
      expect(errors).toEqual([]);
      expect(await readFile(keyFile, "utf8")).toBe(`${KEY}\n`);
      expect([(await stat(keyFile)).mode & 0o777, (await stat(file)).mode & 0o777]).toEqual([0o600, 0o600]);
    } finally {
      process.umask(previous);
    }
  });

  it("never writes through a link planted at a boot's .key: replaces it with a new file, the target untouched", async () => {
    const root = await mkdtemp(join(tmpdir(), "cloister-collector-"));
    dirs.push(root);
    const dir = join(root, "audit");
    await mkdir(dir);
    const victim = join(root, "victim");
    await writeFile(victim, "not the host's to write\n");
    const keyFile = join(dir, `${BOOT.slice(0, 16)}.key`);
    for (const plant of [() => symlink(victim, keyFile), () => link(victim, keyFile)]) {
      await rm(keyFile, { force: true });
      await plant();
      const { fetchFn } = scripted([{ from: 0, lines: RECORDS.slice(0, 1) }]);
      const { c, errors } = await collector(fetchFn, dir);
      await c.collect();
      await c.stop();
      expect(errors).toEqual([]);
      expect(await readFile(victim, "utf8")).toBe("not the host's to write\n");
      const written = await lstat(keyFile);
      expect([written.isFile(), written.nlink, written.mode & 0o777]).toEqual([true, 1, 0o600]);
      expect(await readFile(keyFile, "utf8")).toBe(`${KEY}\n`);
      expect((await readdir(dir)).sort()).toEqual([`${BOOT.slice(0, 16)}.jsonl`, `${BOOT.slice(0, 16)}.key`]);
    }
  });

  it("writes a boot's .key durably: fsync'ed before it is renamed into place, then its directory", async () => {
    const { fetchFn } = scripted([{ from: 0, lines: RECORDS.slice(0, 1) }]);
    const { c, dir } = await collector(fetchFn);
    const probe = await open(join(dir, "probe"), "w");
    const proto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    await rm(join(dir, "probe"));
    const original = proto.sync;
    const synced: (number | "directory")[] = [];
    vi.spyOn(proto, "sync").mockImplementation(async function (this: FileHandle) {
      const info = await this.stat();
      synced.push(info.isDirectory() ? "directory" : info.size);
      return original.call(this);
    });
    await c.collect();
    await c.stop();
    // The key's line synced, then the directory that names it (before the log's own syncs).
    expect(synced.slice(0, 2)).toEqual([KEY.length + 1, "directory"]);
  });

  it("files a boot's .key once: not again at each collection a refused log retries, nor over an earlier run's same .key", async () => {
    const enclave = backlogEnclave();
    let keyIno = 0;
    const { file, errors } = await restartedHost(enclave, async (file) => {
      await writeFile(file, (await readFile(file, "utf8")).replace(/"seq":1,/, '"seq":999999,'));
      keyIno = (await stat(file.replace(/jsonl$/, "key"))).ino;
      enclave.write(1); // a record to collect: the file is opened for one only
    });
    expect(errors[0]).toContain("ends at record 999999");
    const again = await collector(enclave.fetch, dirname(file));
    await again.c.collect();
    await again.c.collect();
    await again.c.stop();
    expect(again.errors[0]).toContain("ends at record 999999");
    expect((await stat(file.replace(/jsonl$/, "key"))).ino).toBe(keyIno);
    // An earlier host process's .key holding this key (0600, one link) is kept as it is.
    const { fetchFn } = scripted([{ from: 0, lines: RECORDS.slice(0, 1) }]);
    const dir = await mkdtemp(join(tmpdir(), "cloister-collector-"));
    const keyFile = join(dir, `${BOOT.slice(0, 16)}.key`);
    await writeFile(keyFile, `${KEY}\n`, { mode: 0o600 });
    const earlier = (await stat(keyFile)).ino;
    const fresh = await collector(fetchFn, dir);
    await fresh.c.collect();
    await fresh.c.stop();
    expect(fresh.errors).toEqual([]);
    expect((await stat(keyFile)).ino).toBe(earlier);
  });

  it("a .key that cannot be read (EIO) is reported, naming it and the code, and neither replaced nor collected past", async () => {
    const { fetchFn, asked } = scripted([{ from: 0, lines: RECORDS.slice(0, 1) }]);
    const dir = await mkdtemp(join(tmpdir(), "cloister-collector-"));
    const keyFile = join(dir, `${BOOT.slice(0, 16)}.key`);
    await writeFile(keyFile, `${KEY}\n`, { mode: 0o600 });
    const { ino } = await stat(keyFile);
    // The disk fails reading this file only (as root, EACCES cannot be made): only a missing file is absent.
    const probe = await open(join(dir, "probe"), "w");
    const proto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    await rm(join(dir, "probe"));
    const read = proto.read as (...args: unknown[]) => Promise<unknown>;
    vi.spyOn(proto, "read").mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
      if ((await this.stat()).ino === ino) {
        throw Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" });
      }
      return read.apply(this, args);
    } as never);
    const { c, errors, file } = await collector(fetchFn, dir);
    await c.collect();
    await c.stop();
    expect(errors[0]).toContain(`audit: cannot store the enclave's records (${keyFile}: cannot read (EIO)`);
    // Kept as it was, the log not made, record 0 not acknowledged (asked for again).
    expect([(await stat(keyFile)).ino, await readFile(keyFile, "utf8")]).toEqual([ino, `${KEY}\n`]);
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
    expect(asked.every((query) => !query.includes("from=1"))).toBe(true);
  });

  it("no document tells a verifier to take the key from the host's .key file", async () => {
    // The file is written by the host from an unauthenticated answer: a forged log verifies under a key put there.
    const root = new URL("../../", import.meta.url);
    for (const file of ["README.md", "SECURITY.md", "docs/deploy.md", "docs/protocol.md", "host/audit-collector.ts"]) {
      const text = await readFile(new URL(file, root), "utf8");
      expect(text, file).not.toMatch(/--key \$\(cat|KEYFILE/);
    }
    const header = await readFile(new URL("host/audit-collector.ts", root), "utf8");
    expect(header).toContain("filing hint only");
  });
});

describe("audit collector: stop()", () => {
  it("stores and acknowledges the records written while the collection under way at stop() was answered", async () => {
    const enclave = backlogEnclave();
    enclave.write(1);
    const { c, errors, file } = await collector(enclave.fetch);
    // The collection under way is answered with record 0 only; record 1 (the last answer's) is
    // written before that answer arrives, and the host stops.
    let answered!: () => void;
    let asked!: () => void;
    const wasAsked = new Promise<void>((resolve) => {
      asked = resolve;
    });
    enclave.beforeAnswer = () => {
      asked();
      return new Promise<void>((resolve) => {
        answered = resolve;
      });
    };
    void c.collect();
    await wasAsked;
    enclave.beforeAnswer = async () => {};
    enclave.write(1);
    const stopped = c.stop();
    answered();
    await stopped;
    expect(enclave.inFlight).toBe(0);
    await expectWholeLog(file, 2);
    expect(enclave.pending).toBe(0);
    expect(errors).toEqual([]);
  });

  it("resolves only after the acknowledgement of the last records reached the enclave", async () => {
    const enclave = backlogEnclave();
    enclave.write(2);
    // Each answer is held until the test lets it go: stop() must not resolve while one is on its way.
    const held: (() => void)[] = [];
    let heldOne: () => void = () => {};
    enclave.beforeAnswer = () =>
      new Promise<void>((resolve) => {
        held.push(resolve);
        heldOne();
      });
    const nextHeld = () =>
      new Promise<void>((resolve) => {
        heldOne = resolve;
        if (held.length > 0) resolve();
      });
    const { c, errors, file } = await collector(enclave.fetch);
    let stopped = false;
    const stopping = c.stop().then(() => {
      stopped = true;
    });
    let answers = 0;
    for (let i = 0; i < 20 && !stopped; i += 1) {
      await Promise.race([nextHeld(), stopping]);
      if (stopped) break;
      held.shift()?.();
      answers += 1;
    }
    expect({ stopped, held: held.length, answers }).toEqual({ stopped: true, held: 0, answers: 2 });
    expect({ inFlight: enclave.inFlight, pending: enclave.pending }).toEqual({ inFlight: 0, pending: 0 });
    await expectWholeLog(file, 2);
    expect(errors).toEqual([]);
    // Stopped: a later collection (a timer or an answer's end racing the stop) does nothing: it asks
    // the enclave nothing (a stopped collector that asked would be answered here, and store nothing).
    let asked = 0;
    enclave.beforeAnswer = async () => {
      asked += 1;
    };
    enclave.write(1);
    await c.collect();
    const timers = holdTimeouts(0);
    c.collectSoon(0);
    for (const timer of timers.held) timer.fire();
    timers.restore();
    // A collection any of these started is under way now: collect() joins it (and this one ends).
    await c.collect();
    expect({ asked, pending: enclave.pending }).toEqual({ asked: 0, pending: 1 });
    await expectWholeLog(file, 2);
  });

  it("a failure at the last collection is logged without promising a retry", async () => {
    const enclave = backlogEnclave();
    enclave.write(1);
    enclave.down = true;
    const { c, errors } = await collector(enclave.fetch);
    await c.stop();
    expect(errors).toEqual([
      'audit: cannot collect from the enclave at "http://enclave.invalid" (fetch failed (ECONNREFUSED)); not retried: the host is stopping',
    ]);
  });

  it("an enclave that writes a record at every collection: stop() ends, saying what it left", async () => {
    const enclave = backlogEnclave();
    enclave.write(1);
    enclave.beforeAnswer = async () => enclave.write(1);
    const { c, errors, file } = await collector(enclave.fetch);
    await c.stop();
    expect(errors).toEqual([
      `audit: stopped collecting from "http://enclave.invalid" after ${STOP_MAX_COLLECTIONS} collections at shutdown, the enclave still writing records; the ones not collected stay in the enclave`,
    ]);
    // One record per answer, all stored; the enclave keeps the last one (stored, its
    // acknowledgement never sent: a restarted host skips it) and the one written at that answer.
    await expectWholeLog(file, STOP_MAX_COLLECTIONS);
    expect(enclave.pending).toBe(2);
  });

  it("a backlog longer than a page is collected whole, a page per collection, and at stop", async () => {
    const enclave = backlogEnclave(3);
    enclave.write(10);
    const { c, errors, file } = await collector(enclave.fetch);
    // Each page that holds lines is followed by another collection at once (it acknowledges them).
    await settle(c);
    expect(enclave.pending).toBe(0);
    await expectWholeLog(file, 10);
    enclave.write(8);
    await c.stop();
    expect(enclave.pending).toBe(0);
    await expectWholeLog(file, 18);
    expect(errors).toEqual([]);
  });
});

describe("audit collector: one enclave under two URLs (127.0.0.1 and localhost)", () => {
  it("stores every record once, whichever collector collects it, and either may stop first", async () => {
    const enclave = backlogEnclave();
    const { c: a, dir, errors, file } = await collector(enclave.fetch);
    const b = secondCollector(enclave.fetch, dir, errors);
    enclave.write(3);
    await Promise.all([a.collect(), b.collect()]);
    enclave.write(2);
    await Promise.all([a.collect(), b.collect(), a.collect()]);
    await a.stop();
    enclave.write(2);
    await b.collect();
    await b.stop();
    await expectWholeLog(file, 7);
    expect(enclave.pending).toBe(0);
    expect(errors).toEqual([]);
  });
});

describe("audit collector: one boot's key across collectors", () => {
  it("a second collector of the boot answered another key than its document's stores nothing and leaves the .key as filed", async () => {
    const { fetchFn } = scripted([{ from: 0, lines: RECORDS.slice(0, 1) }]);
    const { c: a, dir, errors, file } = await collector(fetchFn);
    await a.collect();
    const other = "ef".repeat(32);
    const otherFetch = (async () =>
      new Response(
        JSON.stringify({ boot: BOOT, signingKey: other, from: 1, lines: [RECORDS[1]], next: 2 }),
      )) as typeof fetch;
    const b = secondCollector(otherFetch, dir, errors);
    await b.collect();
    await Promise.all([a.stop(), b.stop()]);
    const keyFile = join(dir, `${BOOT.slice(0, 16)}.key`);
    expect(errors).toEqual([
      `audit: the audit batch of the enclave at "http://localhost:47601" is refused: signingKey: expected the key of boot ${BOOT.slice(0, 16)}'s attestation document, found another; retrying every 60000 ms (logged again when the problem changes or ends)`,
    ]);
    expect(await readFile(keyFile, "utf8")).toBe(`${KEY}\n`);
    expect((await readFile(file, "utf8")).trim().split("\n")).toEqual(RECORDS.slice(0, 1));
  });

  it("a .key holding this boot's key written otherwise (no final newline) is not another key: filed anew", async () => {
    const { fetchFn } = scripted([{ from: 0, lines: RECORDS.slice(0, 1) }]);
    const dir = await mkdtemp(join(tmpdir(), "cloister-collector-"));
    const keyFile = join(dir, `${BOOT.slice(0, 16)}.key`);
    await writeFile(keyFile, KEY, { mode: 0o600 });
    const { c, errors } = await collector(fetchFn, dir);
    await c.collect();
    await c.stop();
    expect(errors).toEqual([]);
    expect(await readFile(keyFile, "utf8")).toBe(`${KEY}\n`);
  });

  it("a collector of another host process's boot answered another key than its .key stores nothing", async () => {
    const { fetchFn } = scripted([{ from: 0, lines: RECORDS.slice(0, 1) }]);
    const dir = await mkdtemp(join(tmpdir(), "cloister-collector-"));
    const keyFile = join(dir, `${BOOT.slice(0, 16)}.key`);
    await writeFile(keyFile, `${"ef".repeat(32)}\n`, { mode: 0o600 });
    const { c, errors, file } = await collector(fetchFn, dir);
    await c.collect();
    await c.stop();
    expect(errors[0]).toContain(`signingKey: expected the key filed for this boot in ${keyFile}, found another`);
    expect(await readFile(keyFile, "utf8")).toBe(`${"ef".repeat(32)}\n`);
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
  });
});

describe("audit collector: the keys it remembers", () => {
  it("forgets a boot's key once no collector collects that boot: its .key decides again, as for another process", async () => {
    // Remembered for every boot of the host's life, the keys would grow one per enclave restart.
    const { fetchFn } = scripted([{ from: 0, lines: RECORDS.slice(0, 1) }]);
    const { c, dir, file } = await collector(fetchFn);
    await c.collect();
    await c.stop();
    const keyFile = join(dir, `${BOOT.slice(0, 16)}.key`);
    await writeFile(keyFile, `${"ef".repeat(32)}\n`, { mode: 0o600 });
    // A record to collect: a boot's .key is looked at for one only.
    const again = await collector(scripted([{ from: 1, lines: RECORDS.slice(1, 2) }]).fetchFn, dir);
    await again.c.collect();
    await again.c.stop();
    expect(again.errors[0]).toContain(`signingKey: expected the key filed for this boot in ${keyFile}, found another`);
    expect(await readFile(keyFile, "utf8")).toBe(`${"ef".repeat(32)}\n`);
    expect((await readFile(file, "utf8")).trim().split("\n")).toEqual(RECORDS.slice(0, 1));
  });
});

describe("audit collector: what it logs while the enclave is away", () => {
  it("logs a failure once with the enclave and the cause, counts the repeats, and says when it collects again", async () => {
    let down = true;
    const { fetchFn: working } = scripted([{ from: 0, lines: RECORDS.slice(0, 1) }]);
    const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
      if (down)
        throw new TypeError("fetch failed", { cause: Object.assign(new Error("connect"), { code: "ECONNREFUSED" }) });
      return working(input, init);
    }) as typeof fetch;
    const { c, errors } = await collector(fetchFn);
    for (let i = 0; i < 5; i++) await c.collect();
    expect(errors).toEqual([
      'audit: cannot collect from the enclave at "http://enclave.invalid" (ECONNREFUSED); retrying every 60000 ms (logged again when the problem changes or ends)',
    ]);
    down = false;
    await c.collect();
    await c.stop();
    expect(errors.slice(1)).toEqual([
      'audit: collecting from "http://enclave.invalid" again (after 5 failed attempts; the last: audit: cannot collect from the enclave at "http://enclave.invalid" (ECONNREFUSED))',
    ]);
  });

  it("logs a different problem when it changes", async () => {
    const { fetchFn } = scripted([
      { from: 0, lines: ["not json"] },
      { from: 0, lines: ["not json"] },
    ]);
    let calls = 0;
    const flaky = (async (input: string | URL | Request, init?: RequestInit) => {
      calls += 1;
      if (calls === 1) throw new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
      return fetchFn(input, init);
    }) as typeof fetch;
    const { c, errors } = await collector(flaky);
    await c.collect();
    await c.collect();
    await c.collect();
    await c.stop();
    expect(errors).toHaveLength(3);
    expect(errors[0]).toContain("(ECONNRESET)");
    expect(errors[1]).toMatch(
      /^audit: record 0 from the enclave is not a valid record line \(audit line: expected JSON, found unparseable text\); retrying/,
    );
    expect(errors[2]).toMatch(/^audit: collecting from .* again \(after 3 failed attempts; the last: audit: record 0/);
  });
});

describe("audit collector: a refusal", () => {
  it("leaves the body of a non-200 answer unread (cancelled), logs its status, and collects afterwards", async () => {
    const { fetchFn: working } = scripted([{ from: 0, lines: RECORDS.slice(0, 1) }]);
    let cancelled = false;
    let calls = 0;
    const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
      calls += 1;
      if (calls > 1) return working(input, init);
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          controller.enqueue(new TextEncoder().encode("busy"));
        },
        cancel() {
          cancelled = true;
        },
      });
      return new Response(body, { status: 503 });
    }) as typeof fetch;
    const { c, errors, file } = await collector(fetchFn);
    await c.collect();
    expect(cancelled).toBe(true);
    await c.collect();
    await c.stop();
    expect(errors[0]).toMatch(/^audit: cannot collect from the enclave at "http:\/\/enclave\.invalid" \(HTTP 503\)/);
    expect((await readFile(file, "utf8")).trim().split("\n")).toEqual(RECORDS.slice(0, 1));
  });
});

describe("audit collector: an enclave that is still booting", () => {
  it("logs that it waits for the boot (503 ENCLAVE_BOOTING), not a failure, and says once when collection starts", async () => {
    const { fetchFn: working } = scripted([{ from: 0, lines: RECORDS.slice(0, 1) }]);
    let booting = true;
    const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
      if (!booting) return working(input, init);
      // What enclave/server.ts bootingAnswer sends.
      return Response.json(
        { error: { code: "ENCLAVE_BOOTING", message: "the enclave is booting: nothing is attested yet; retry" } },
        { status: 503, headers: { "retry-after": "5" } },
      );
    }) as typeof fetch;
    const { c, errors, file } = await collector(fetchFn);
    for (let i = 0; i < 4; i++) await c.collect();
    booting = false;
    await c.collect();
    await c.stop();
    expect(errors).toEqual([
      'audit: waiting for the enclave at "http://enclave.invalid" to boot (503 ENCLAVE_BOOTING); its records are collected once it has',
      'audit: the enclave at "http://enclave.invalid" has booted; collecting its records',
    ]);
    expect((await readFile(file, "utf8")).trim().split("\n")).toEqual(RECORDS.slice(0, 1));
  });
});

describe("audit collector: only records signed by the boot's attested key", () => {
  const keys = seededKeyPair(7);
  const junk = (seq: number) => `{"record":{"seq":${seq}},"sig":"${"0".repeat(128)}"}`;
  /** Records 0..1 by another key: its own chain, valid under its key. */
  const otherKeys = writeLog(2, makeWriter(seededKeyPair(8)));
  const altered = resignRecord(RECORDS[0] as string, keys.secretKey).line.replace('"decision":"', '"decision":"x');
  /** Record `seq` signed by the boot's key, but not chained to the record before it (one the enclave never wrote). */
  const unchainedAt = (seq: number) =>
    resignRecord(RECORDS[seq] as string, keys.secretKey, (r) => {
      r.prevHash = "0".repeat(64);
    }).line;
  const unchained = unchainedAt(1);
  const cases: [string, string[], string][] = [
    ["lines that are no record", [junk(0), junk(1)], "record 0: sig: expected a signature by the boot's key"],
    ["a record altered after signing", [altered, RECORDS[1] as string], "record 0: sig: expected a signature"],
    ["records of another key", otherKeys, "record 0: sig: expected a signature by the boot's key"],
    ["a record signed by the key, not chained", [RECORDS[0] as string, unchained], "record 1: prevHash: expected"],
  ];
  it.each(cases)(
    "a hostile first answer naming the boot and its key, with %s at seq 0..1: nothing stored or acknowledged; the enclave's records are stored after",
    async (_, lines, problem) => {
      const enclave = backlogEnclave();
      enclave.write(2);
      const asked: string[] = [];
      let answered = false;
      const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
        asked.push(new URL(String(input)).search);
        if (answered) return enclave.fetch(input, init);
        answered = true;
        return new Response(JSON.stringify({ boot: BOOT, signingKey: KEY, from: 0, lines, next: 2 }));
      }) as typeof fetch;
      const { c, errors, file } = await collector(fetchFn);
      await c.collect();
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain(
        `audit: the audit batch of the enclave at "http://enclave.invalid" is refused: boot ${BOOT.slice(0, 16)}, ${problem}`,
      );
      expect(errors[0]).not.toContain("decision");
      // Nothing acknowledged: the enclave is asked from 0 again, and still holds its records; the
      // boot's files are made by its first records taken.
      expect(await readdir(dirname(file))).toEqual([]);
      await c.collect();
      expect(asked[1]).toBe("?from=0");
      await settle(c);
      await c.stop();
      expect(enclave.pending).toBe(0);
      await expectWholeLog(file, 2);
      expect(await readFile(file, "utf8")).toBe(`${RECORDS.slice(0, 2).join("\n")}\n`);
    },
  );

  it("refuses a record of a later answer not chained to the last record stored, and stores the enclave's after", async () => {
    const { fetchFn, asked } = scripted([
      { from: 0, lines: RECORDS.slice(0, 2) },
      { from: 2, lines: [unchainedAt(2)] },
      { from: 2, lines: RECORDS.slice(2, 4) },
    ]);
    const { c, errors, file } = await collector(fetchFn);
    await c.collect();
    await settle(c);
    await c.stop();
    expect(errors[0]).toContain(
      `boot ${BOOT.slice(0, 16)}, record 2: prevHash: expected the hash of the record before it`,
    );
    expect(asked.slice(1, 3)).toEqual([`?from=2&boot=${BOOT}`, `?from=2&boot=${BOOT}`]);
    await expectWholeLog(file, 4);
  });

  const forgedAfter1 = unchainedAt(2);
  /** The name, the answer, and what the host asks next: after the records its file holds, or (no file opened) from 0. */
  const restarts: [string, { from: number; lines: string[] }, string][] = [
    ["its records acknowledged", { from: 2, lines: [forgedAfter1] }, `?from=2&boot=${BOOT}`],
    [
      "its acknowledgement lost (the enclave re-sends them)",
      { from: 0, lines: [...RECORDS.slice(0, 2), forgedAfter1] },
      // Refused as it is checked from the genesis, before the file is opened: nothing acknowledged.
      "?from=0",
    ],
  ];
  it.each(restarts)(
    "a host restarted on a stored log (%s) refuses a first answer's record not chained to the last record stored",
    async (_, hostile, askedNext) => {
      const first = await collector(scripted([{ from: 0, lines: RECORDS.slice(0, 2) }]).fetchFn);
      await first.c.collect();
      await first.c.stop();
      const { fetchFn, asked } = scripted([hostile, { from: 2, lines: RECORDS.slice(2, 4) }]);
      const { c, errors, file } = await collector(fetchFn, first.dir);
      await c.collect();
      expect(errors).toEqual([
        expect.stringContaining(
          `is refused: boot ${BOOT.slice(0, 16)}, record 2: prevHash: expected the hash of the record before it, found another`,
        ),
      ]);
      await settle(c);
      await c.stop();
      expect(asked[1]).toBe(askedNext);
      await expectWholeLog(file, 4);
    },
  );

  it("after a failed write, refuses a next answer's first record not chained to the last record stored", async () => {
    const { fetchFn, asked } = scripted([
      { from: 0, lines: RECORDS.slice(0, 4) },
      { from: 1, lines: [unchained] },
      { from: 1, lines: RECORDS.slice(1, 4) },
    ]);
    const { c, errors, file } = await collector(fetchFn);
    // Record 0 is written alone (1..3 queue behind it); the write of 1..3 fails: record 0 is stored.
    await diskFullAtSecondWrite();
    await c.collect();
    expect(errors).toEqual([expect.stringContaining("write failed (ENOSPC)")]);
    await c.collect();
    expect(errors[1]).toContain(
      `is refused: boot ${BOOT.slice(0, 16)}, record 1: prevHash: expected the hash of the record before it, found another`,
    );
    await settle(c);
    await c.stop();
    expect(asked.slice(1, 3)).toEqual([`?from=1&boot=${BOOT}`, `?from=1&boot=${BOOT}`]);
    await expectWholeLog(file, 4);
  });

  it("refuses an answer naming another key than the boot's document, files no .key, and stores the boot's records after", async () => {
    const { fetchFn: working, asked } = scripted([{ from: 0, lines: RECORDS.slice(0, 2) }]);
    let calls = 0;
    const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
      calls += 1;
      if (calls > 1) return working(input, init);
      const lines = otherKeys;
      return new Response(JSON.stringify({ boot: BOOT, signingKey: "ef".repeat(32), from: 0, lines, next: 2 }));
    }) as typeof fetch;
    const { c, dir, errors, file } = await collector(fetchFn);
    await c.collect();
    expect(errors).toEqual([
      `audit: the audit batch of the enclave at "http://enclave.invalid" is refused: signingKey: expected the key of boot ${BOOT.slice(0, 16)}'s attestation document, found another; retrying every 60000 ms (logged again when the problem changes or ends)`,
    ]);
    expect(await readdir(dir)).toEqual([]);
    await c.collect();
    await settle(c);
    await c.stop();
    expect(asked[0]).toBe("?from=0");
    await expectWholeLog(file, 2);
    expect(await readFile(join(dir, `${BOOT.slice(0, 16)}.key`), "utf8")).toBe(`${KEY}\n`);
  });

  it("names a boot's document that is no JWS by what is wrong with it, the field said once", () => {
    for (const [document, why] of [
      ["a.b", "document: expected 3 JWS parts, found 2"],
      [
        "a.%.c",
        'document payload: expected base64url (A-Z, a-z, 0-9, "-", "_"; no padding; unused bits zero), found "%" at character 0',
      ],
    ]) {
      expect(bootAuditKey(document as string, bootOf(document as string))).toBe(why);
    }
  });

  it("refuses a boot whose document is another boot's (its digest), storing nothing", async () => {
    const { fetchFn } = scripted([{ from: 0, lines: RECORDS.slice(0, 2) }]);
    const document = documentNaming(seededKeyPair(8).publicKey);
    const { c, dir, errors } = await collector(fetchFn, undefined, undefined, { document, read: 0 });
    await c.collect();
    await c.stop();
    expect(errors[0]).toBe(
      `audit: the audit batch of the enclave at "http://enclave.invalid" is refused: boot ${BOOT.slice(0, 16)}: document: expected the attestation document of boot ${BOOT.slice(0, 16)} (its SHA-256), found one of boot ${bootOf(document).slice(0, 16)}; retrying every 60000 ms (logged again when the problem changes or ends)`,
    );
    expect(await readdir(dir)).toEqual([]);
  });

  it("stores nothing while the document cannot be read, asks for it again once per collection interval, then collects; reads it once per boot", async () => {
    const { fetchFn } = scripted([
      { from: 0, lines: RECORDS.slice(0, 1) },
      { from: 0, lines: RECORDS.slice(0, 1) },
      { from: 0, lines: RECORDS.slice(0, 2) },
      { from: 2, lines: RECORDS.slice(2, 3) },
    ]);
    const served: ServedDocument = { document: null, read: 0 };
    const { c, dir, errors, file } = await collector(fetchFn, undefined, undefined, served);
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      await c.collect();
      expect(await readdir(dir)).toEqual([]);
      served.document = DOCUMENT;
      // A collection after a response, within the interval: the failed read is not repeated (up to 4 MiB each).
      await c.collect();
      expect(served.read).toBe(1);
      expect(await readdir(dir)).toEqual([]);
      vi.setSystemTime(Date.now() + 60_000);
      await c.collect();
      await settle(c);
      await c.stop();
    } finally {
      vi.useRealTimers();
    }
    expect(errors[0]).toBe(
      `audit: cannot read the attestation document of boot ${BOOT.slice(0, 16)} from the enclave at "http://enclave.invalid" (HTTP 503); none of its records is stored before its key is known; retrying every 60000 ms (logged again when the problem changes or ends)`,
    );
    expect(served.read).toBe(2);
    await expectWholeLog(file, 3);
  });

  it("reads the document from /attestation when the enclave has no /audit/document (an older enclave: 404)", async () => {
    const { fetchFn } = scripted([{ from: 0, lines: RECORDS.slice(0, 2) }]);
    const served: ServedDocument = { document: DOCUMENT, read: 0, olderEnclave: true };
    const { c, errors, file } = await collector(fetchFn, undefined, undefined, served);
    await c.collect();
    await settle(c);
    await c.stop();
    expect(errors).toEqual([]);
    expect(served.read).toBe(1);
    await expectWholeLog(file, 2);
  });
});

/** The boot's two files in the audit directory. */
const keyFileName = `${BOOT.slice(0, 16)}.key`;
const logFileName = `${BOOT.slice(0, 16)}.jsonl`;

describe("audit collector: a boot's files wait for its first checked record", () => {
  it("an answer naming a new boot at every collection, with no record, makes no file", async () => {
    // A restarting enclave, or whatever answers at --enclave-url: a fresh document and boot each time.
    const served: ServedDocument = { document: DOCUMENT, read: 0 };
    let seed = 20;
    const fetchFn = (async () => {
      seed += 1;
      served.document = documentNaming(seededKeyPair(seed).publicKey);
      const signingKey = Buffer.from(seededKeyPair(seed).publicKey).toString("hex");
      return Response.json({ boot: bootOf(served.document), signingKey, from: 0, lines: [], next: 0 });
    }) as typeof fetch;
    const { c, dir, errors } = await collector(fetchFn, undefined, undefined, served);
    for (let i = 0; i < 5; i++) await c.collect();
    await c.stop();
    // Six boots met (the last at stop), each one's document read.
    expect([seed, served.read]).toEqual([26, 6]);
    expect(errors).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
  });

  it("a boot met with no record has both files made by its first record, as before", async () => {
    const { fetchFn, asked, served } = scripted([
      { from: 0, lines: [] },
      { from: 0, lines: RECORDS.slice(0, 2) },
    ]);
    const { c, dir, errors, file } = await collector(fetchFn, undefined, undefined, served);
    await c.collect();
    expect(await readdir(dir)).toEqual([]);
    // Its document is read by the answer with no record (audit-collector.ts run: why), not again.
    expect(served.read).toBe(1);
    await c.collect();
    await settle(c);
    await c.stop();
    expect(errors).toEqual([]);
    // Nothing to acknowledge before its first record: asked from 0 again.
    expect(asked.slice(0, 3)).toEqual(["?from=0", "?from=0", `?from=2&boot=${BOOT}`]);
    expect(served.read).toBe(1);
    expect((await readdir(dir)).sort()).toEqual([logFileName, keyFileName]);
    expect(await readFile(join(dir, keyFileName), "utf8")).toBe(`${KEY}\n`);
    await expectWholeLog(file, 2);
  });

  const keys = seededKeyPair(7);
  /** Records 0..2 of another key: its own chain, valid under its key. */
  const otherKeys = writeLog(3, makeWriter(seededKeyPair(8)));
  const notFromGenesis = resignRecord(RECORDS[0] as string, keys.secretKey, (r) => {
    r.prevHash = "0".repeat(64);
  }).line;
  const cases: [string, { from: number; lines: string[] }, string][] = [
    [
      "a record of another key",
      { from: 0, lines: otherKeys.slice(0, 2) },
      `is refused: boot ${BOOT.slice(0, 16)}, record 0: sig: expected a signature by the boot's key`,
    ],
    [
      "a record of another key, the batch starting past 0",
      { from: 2, lines: otherKeys.slice(2, 3) },
      `is refused: boot ${BOOT.slice(0, 16)}, record 2: sig: expected a signature by the boot's key`,
    ],
    [
      "a record signed by the boot's key, not chained from the genesis",
      { from: 0, lines: [notFromGenesis, RECORDS[1] as string] },
      `is refused: boot ${BOOT.slice(0, 16)}, record 0: prevHash: expected the hash of the record before it`,
    ],
    [
      "a line that is no record",
      { from: 0, lines: ["not json"] },
      "audit: record 0 from the enclave is not a valid record line (audit line: expected JSON",
    ],
    [
      "the boot's record 1 at seq 0",
      { from: 0, lines: [RECORDS[1] as string] },
      "audit: record 0 from the enclave: seq: expected 0, found 1",
    ],
  ];
  it.each(cases)("a new boot's first record refused (%s): no file made", async (_, batch, problem) => {
    const { fetchFn } = scripted([batch]);
    const { c, dir, errors } = await collector(fetchFn);
    await c.collect();
    await c.stop();
    expect(errors[0]).toContain(problem);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe("audit collector: an answer naming another boot than the one collected", () => {
  const other = {
    document: documentNaming(seededKeyPair(9).publicKey),
    key: Buffer.from(seededKeyPair(9).publicKey).toString("hex"),
  };
  const otherName = bootOf(other.document).slice(0, 16);
  /** Record 0 of a boot of key 8: not signed by the key of the other boot (9). */
  const notItsRecord = writeLog(1, makeWriter(seededKeyPair(8)))[0] as string;
  /** Records 0..2 of the other boot, signed by its key (9). */
  const otherRecords = writeLog(3, makeWriter(seededKeyPair(9)));

  it("with no record, or its record refused, leaves the current boot's log open and acknowledged", async () => {
    const { fetchFn, asked, served } = scripted([
      { from: 0, lines: RECORDS.slice(0, 2) },
      { from: 2, lines: [] },
      { of: other, from: 0, lines: [] },
      { of: other, from: 0, lines: [notItsRecord] },
      { from: 2, lines: RECORDS.slice(2, 4) },
    ]);
    const { c, dir, errors, file } = await collector(fetchFn, undefined, undefined, served);
    const opened = vi.spyOn(AuditStore, "open");
    const closed = vi.spyOn(AuditStore.prototype, "close");
    for (let i = 0; i < 6; i++) await c.collect();
    expect([opened.mock.calls.length, closed.mock.calls.length]).toEqual([1, 0]);
    await c.stop();
    // The other boot's answers acknowledge nothing of it; the next asks on from the current boot's.
    expect(asked.slice(0, 6)).toEqual([
      "?from=0",
      `?from=2&boot=${BOOT}`,
      `?from=2&boot=${BOOT}`,
      `?from=2&boot=${BOOT}`,
      `?from=2&boot=${BOOT}`,
      `?from=4&boot=${BOOT}`,
    ]);
    expect(errors[0]).toContain(`is refused: boot ${otherName}, record 0: sig: expected a signature by the boot's key`);
    expect((await readdir(dir)).sort()).toEqual([logFileName, keyFileName]);
    await expectWholeLog(file, 4);
  });

  it("replayed, an older boot's answer whose records its file holds leaves the current boot's log open and that file as found", async () => {
    const { fetchFn, asked, served } = scripted([
      { from: 0, lines: RECORDS.slice(0, 2) },
      { from: 2, lines: [] },
      { of: other, from: 0, lines: otherRecords.slice(0, 2) },
      { from: 2, lines: RECORDS.slice(2, 4) },
    ]);
    const { c, dir, errors, file } = await collector(fetchFn, undefined, undefined, served);
    // The older boot's log, as an earlier host process left it: its last line torn, mode 0644.
    const olderFile = join(dir, `${otherName}.jsonl`);
    const torn = `${otherRecords[0]}\n${otherRecords[1]}\n${(otherRecords[2] as string).slice(0, 40)}`;
    await writeFile(olderFile, torn);
    await chmod(olderFile, 0o644);
    const opened = vi.spyOn(AuditStore, "open");
    const closed = vi.spyOn(AuditStore.prototype, "close");
    for (let i = 0; i < 5; i++) await c.collect();
    expect([opened.mock.calls.length, closed.mock.calls.length]).toEqual([1, 0]);
    await c.stop();
    expect(errors).toEqual([]);
    expect(asked.slice(1, 5)).toEqual([
      `?from=2&boot=${BOOT}`,
      `?from=2&boot=${BOOT}`,
      `?from=2&boot=${BOOT}`,
      `?from=4&boot=${BOOT}`,
    ]);
    expect(await readFile(olderFile, "utf8")).toBe(torn);
    expect((await stat(olderFile)).mode & 0o777).toBe(0o644);
    expect((await readdir(dir)).sort()).toEqual([`${otherName}.jsonl`, logFileName, keyFileName].sort());
    await expectWholeLog(file, 4);
  });

  it("an older boot's answer holding a record past its file's last one is collected, the file resumed", async () => {
    const { fetchFn, served } = scripted([
      { from: 0, lines: RECORDS.slice(0, 2) },
      { from: 2, lines: [] },
      { of: other, from: 1, lines: otherRecords.slice(1, 3) },
    ]);
    const { c, dir, errors } = await collector(fetchFn, undefined, undefined, served);
    const olderFile = join(dir, `${otherName}.jsonl`);
    await writeFile(olderFile, `${otherRecords[0]}\n${otherRecords[1]}\n`, { mode: 0o600 });
    for (let i = 0; i < 3; i++) await c.collect();
    await c.stop();
    expect(errors).toEqual([]);
    expect(await readAuditLines(olderFile)).toEqual(otherRecords);
  });

  it.each([
    ["no record", [], undefined],
    ["a record refused", [notItsRecord], `is refused: boot ${otherName}, record 0: sig: expected a signature by`],
    ["its record 0 again (replayed: the other collector stored it)", otherRecords.slice(0, 1), undefined],
  ])(
    "with %s, naming a boot another collector has open (its record 0 stored), leaves the current boot's log open",
    async (_, lines, refused) => {
      const idle = Array.from({ length: 10 }, () => ({ of: other, from: 1, lines: [] }));
      const second = scripted([{ of: other, from: 0, lines: otherRecords.slice(0, 1) }, ...idle]);
      const first = scripted([
        { from: 0, lines: RECORDS.slice(0, 1) },
        { of: other, from: 0, lines },
      ]);
      const { c, dir, errors, file } = await collector(first.fetchFn, undefined, undefined, first.served);
      const { c: b } = await collector(second.fetchFn, dir, undefined, second.served);
      await b.collect(); // the other boot's log, open in b
      const closed = vi.spyOn(AuditStore.prototype, "close");
      await settle(c);
      expect(closed).not.toHaveBeenCalled();
      await c.stop();
      await b.stop();
      expect(first.asked.slice(1).every((query) => query === `?from=1&boot=${BOOT}`)).toBe(true);
      expect(errors.slice(0, 1)).toEqual(refused === undefined ? [] : [expect.stringContaining(refused)]);
      await expectWholeLog(file, 1);
    },
  );

  it("reads each of two boots' documents once while their answers keep holding no record", async () => {
    const script = [];
    for (let i = 0; i < 3; i++) {
      script.push({ of: other, from: 0, lines: [] }, { from: 0, lines: [] });
    }
    const { fetchFn, served } = scripted(script);
    const { c, dir, errors } = await collector(fetchFn, undefined, undefined, served);
    for (let i = 0; i < 6; i++) await c.collect();
    await c.stop();
    expect(served.read).toBe(2);
    expect(errors).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe("audit collector: a boot's existing log is opened by its first checked record", () => {
  /** Record 2 of a boot of key 8: not signed by the boot's key. */
  const notItsRecord = writeLog(3, makeWriter(seededKeyPair(8)))[2] as string;
  const torn = `${RECORDS[0]}\n${RECORDS[1]}\n${(RECORDS[2] as string).slice(0, 40)}`;

  it("an answer with no record, or its record refused, leaves the file as found and files no .key", async () => {
    const { fetchFn, served } = scripted([
      { from: 2, lines: [] },
      { from: 2, lines: [notItsRecord] },
      { from: 2, lines: RECORDS.slice(2, 4) },
    ]);
    const { c, dir, errors, file } = await collector(fetchFn, undefined, undefined, served);
    // A previous host process's file, its last line torn by a crash, left wider than 0600.
    await writeFile(file, torn);
    await chmod(file, 0o644);
    const opened = vi.spyOn(AuditStore, "open");
    await c.collect();
    await c.collect();
    expect(opened).not.toHaveBeenCalled();
    expect(errors[0]).toContain(`record 2: sig: expected a signature by the boot's key`);
    expect(await readdir(dir)).toEqual([logFileName]);
    expect(await readFile(file, "utf8")).toBe(torn);
    expect((await stat(file)).mode & 0o777).toBe(0o644);
    // The enclave's records: the torn line cut, the file 0600, the .key filed.
    await c.collect();
    await settle(c);
    await c.stop();
    expect((await readdir(dir)).sort()).toEqual([logFileName, keyFileName]);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    await expectWholeLog(file, 4);
  });

  it("a restarted host parses each record of the answer once: checked before the file is opened, stored from that check", async () => {
    const { fetchFn, served } = scripted([{ from: 2, lines: RECORDS.slice(2, 4) }]);
    const { c, errors, file } = await collector(fetchFn, undefined, undefined, served);
    await writeFile(file, `${RECORDS[0]}\n${RECORDS[1]}\n`, { mode: 0o600 });
    const parse = vi.spyOn(JSON, "parse");
    await c.collect();
    const parsed = RECORDS.slice(0, 4).map((line) => parse.mock.calls.filter(([text]) => text === line).length);
    parse.mockRestore();
    await c.stop();
    expect(errors).toEqual([]);
    // Record 1: the file's last line, read once to resume after it (resumeAt).
    expect(parsed).toEqual([0, 1, 1, 1]);
    await expectWholeLog(file, 4);
  });
});

describe("audit collector: a host that meets a boot only while its enclave drains or after AUDIT_FAILED", () => {
  const servers: RunningServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });
  const states: [string, (enclave: Enclave, state: EnclaveServerState) => Promise<void>][] = [
    [
      "draining",
      async (_, state) => {
        state.draining = true;
      },
    ],
    [
      "after AUDIT_FAILED",
      async (enclave) => {
        vi.spyOn(process.stderr, "write").mockImplementation(() => true);
        const writer = (enclave as unknown as { audit: AuditWriter }).audit;
        vi.spyOn(writer, "record").mockImplementation(() => {
          throw new AuditRecordInvalidError("time", "a valid Date from the clock", new Date(Number.NaN));
        });
        await answerSealed(enclave);
        expect(enclave.auditFailed).toBe(true);
      },
    ],
  ];
  it.each(states)("%s: still stores (and so lets the enclave drop) that boot's records", async (_, into) => {
    const enclave = await bootWith(
      new ScriptedEngine(() => [
        { type: "text", text: "a" },
        { type: "done", stopReason: "eog", usage },
      ]),
    );
    const state: EnclaveServerState = { draining: false, active: 0 };
    const server = await listen(createEnclaveApp(enclave, state).fetch, "127.0.0.1", 0);
    servers.push(server);
    await answerSealed(enclave);
    await answerSealed(enclave);
    await into(enclave, state);
    expect((await fetch(`${server.url}/attestation`)).status).toBe(503);
    const dir = await mkdtemp(join(tmpdir(), "cloister-collector-"));
    dirs.push(dir);
    const errors: string[] = [];
    const c = new AuditCollector({ enclaveUrl: server.url, dir, intervalMs: 60_000, onError: (m) => errors.push(m) });
    await c.collect();
    await c.stop();
    expect(errors).toEqual([]);
    const lines = await readAuditLines(join(dir, `${enclave.documentDigest.slice(0, 16)}.jsonl`));
    expect(lines).toHaveLength(2);
    expect(verifyAuditLog(lines, enclave.publicKeys.signing)).toMatchObject({ ok: true });
    expect(enclave.auditPending).toBe(0);
  });
});

describe("audit collector: a hostile or broken answer", () => {
  const answer = (fields: Record<string, unknown>) =>
    JSON.stringify({ boot: BOOT, signingKey: KEY, from: 2, lines: [], next: 2, ...fields });
  const cases: [string, string, string][] = [
    ["a top-level array", "[]", "expected a JSON object, found an empty array"],
    [
      "a boot that is no digest",
      answer({ boot: "b".repeat(63) }),
      "boot: expected 64 lower-case hex digits, found a string of 63 characters",
    ],
    ["a key that is no key", answer({ signingKey: 5 }), "signingKey: expected 64 lower-case hex digits, found 5"],
    [
      "a key of the wrong length",
      answer({ signingKey: "cd".repeat(31) }),
      "signingKey: expected 64 lower-case hex digits, found a string of 62 characters",
    ],
    [
      "a negative from",
      answer({ from: -1, next: 0, lines: [RECORDS[0]] }),
      "from: expected a whole number from 0, found -1",
    ],
    ["lines not strings", answer({ lines: [{}], next: 3 }), "lines[0]: expected a string, found an object"],
    [
      "a next past its lines (would acknowledge records never stored)",
      answer({ next: 1_000_000 }),
      "next: expected from + the number of lines (2), found 1000000",
    ],
    [
      "another key for the same boot",
      answer({ signingKey: "ef".repeat(32), lines: [RECORDS[2]], next: 3 }),
      `signingKey: expected the key of boot ${BOOT.slice(0, 16)}'s attestation document, found another`,
    ],
    [
      "records out of order",
      answer({ lines: [RECORDS[3], RECORDS[2]], next: 4 }),
      "audit: record 2 from the enclave: seq: expected 2, found 3",
    ],
    [
      "a duplicated seq",
      answer({ lines: [RECORDS[2], RECORDS[2]], next: 4 }),
      "audit: record 3 from the enclave: seq: expected 3, found 2",
    ],
    [
      "more lines than any enclave's answer holds (refused before any is looked at)",
      answer({ lines: new Array(AUDIT_BATCH_MAX_LINES + 1).fill("x"), next: 2 + AUDIT_BATCH_MAX_LINES + 1 }),
      `lines: expected at most ${AUDIT_BATCH_MAX_LINES} lines, found ${AUDIT_BATCH_MAX_LINES + 1}`,
    ],
  ];
  it.each(cases)(
    "%s: refused naming what is wrong, nothing stored or acknowledged, good records kept",
    async (_, hostile, problem) => {
      const asked: string[] = [];
      const script = [
        answer({ from: 0, lines: RECORDS.slice(0, 2) }),
        hostile,
        answer({ from: 2, lines: RECORDS.slice(2, 4), next: 4 }),
      ];
      const fetchFn = (async (url: string | URL | Request) => {
        asked.push(new URL(String(url)).search);
        return new Response(script.shift() ?? answer({ from: 4, next: 4 }));
      }) as typeof fetch;
      const { c, errors, file } = await collector(fetchFn);
      await c.collect(); // records 0..1, then the hostile answer (its acknowledgement's)
      await settle(c);
      await c.stop();
      expect(errors[0]).toMatch(/^audit: /);
      expect(errors[0]).toContain(problem);
      expect(errors.join("\n")).not.toContain(KEY.slice(0, 16));
      // After the refusal the host asks again from the first record it does not hold (2), never past it.
      expect(asked[2]).toBe(`?from=2&boot=${BOOT}`);
      await expectWholeLog(file, 4);
    },
  );
});

describe("audit collector: the size of the enclave's answer", () => {
  it("refuses an answer past its bound, streamed or declared, naming the bound and the size, and collects afterwards", async () => {
    const { fetchFn: working } = scripted([{ from: 0, lines: RECORDS.slice(0, 1) }]);
    // 64 chunks of 400 bytes, pulled one at a time; cancelled when the reader lets go.
    let pulled = 0;
    let cancelled = false;
    const streamed = () =>
      new ReadableStream<Uint8Array>({
        pull(controller) {
          pulled += 1;
          if (pulled > 64) controller.close();
          else controller.enqueue(new TextEncoder().encode(`["secret-record ${"x".repeat(80)}"]`.padEnd(400)));
        },
        cancel() {
          cancelled = true;
        },
      });
    let calls = 0;
    const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
      calls += 1;
      if (calls === 1) return new Response(streamed());
      if (calls === 2) return new Response("secret-record", { headers: { "content-length": "5000" } });
      return working(input, init);
    }) as typeof fetch;
    const { c, errors, file } = await collector(fetchFn, undefined, 4096);
    await c.collect();
    // Read to just past the bound (11 chunks of 400 bytes), then left: the rest is not pulled.
    expect(cancelled).toBe(true);
    expect(pulled).toBeLessThan(20);
    await c.collect();
    await c.collect();
    await c.stop();
    const tooLarge =
      'audit: the audit batch of the enclave at "http://enclave.invalid" is too large: expected at most 4096 bytes';
    expect(errors).toEqual([
      `${tooLarge}, found more than 4096 bytes; retrying every 60000 ms (logged again when the problem changes or ends)`,
      `${tooLarge}, found 5000 bytes (its Content-Length); retrying every 60000 ms (logged again when the problem changes or ends)`,
      `audit: collecting from "http://enclave.invalid" again (after 2 failed attempts; the last: ${tooLarge}, found 5000 bytes (its Content-Length))`,
    ]);
    expect(errors.join("\n")).not.toContain("secret-record");
    expect((await readFile(file, "utf8")).trim().split("\n")).toEqual(RECORDS.slice(0, 1));
  });

  it("reports an answer that is not JSON as malformed, without its text", async () => {
    const fetchFn = (async () => new Response("secret-record, not JSON")) as unknown as typeof fetch;
    const { c, errors } = await collector(fetchFn);
    await c.collect();
    await c.stop();
    expect(errors).toEqual([
      'audit: the audit batch of the enclave at "http://enclave.invalid" is malformed: expected a JSON object, found text that is not JSON; retrying every 60000 ms (logged again when the problem changes or ends)',
    ]);
  });

  it("the default bound holds the largest answer an enclave gives", () => {
    // The largest record line the enclave writes (every field at its longest), as a JSON string in
    // the answer, with room for a 16-digit seq and a comma.
    const line = makeWriter().record({
      requestId: "r".repeat(256),
      tenant: "t".repeat(200),
      decision: "allow",
      blockedBy: null,
      ruleId: "r".repeat(63),
      piiFindings: PII_ENTITIES.map((entity) => ({ entity, count: Number.MAX_SAFE_INTEGER })),
      error: "E".repeat(64),
      prompt: "p",
      response: "r",
      usage: { promptTokens: Number.MAX_SAFE_INTEGER, completionTokens: Number.MAX_SAFE_INTEGER },
    }).line;
    const perLine = Buffer.byteLength(JSON.stringify(line)) + 16 + 1;
    expect(AUDIT_BATCH_MAX_BYTES).toBeGreaterThan(AUDIT_PAGE_MAX_LINES * perLine + 1024);
    // An enclave from before paging answers with its whole backlog: the backlog it keeps before
    // refusing requests, and one record per request under way.
    const lines = MAX_AUDIT_BACKLOG + ENCLAVE_MAX_CONNECTIONS;
    expect(AUDIT_BATCH_MAX_BYTES).toBeGreaterThan(lines * perLine + 1024);
    // And the lines it holds: a page, or that whole backlog.
    expect(AUDIT_BATCH_MAX_LINES).toBeGreaterThanOrEqual(Math.max(AUDIT_PAGE_MAX_LINES, lines));
  });

  it("stop() collects long enough for the largest backlog an enclave keeps, a page at a time", () => {
    // The backlog the enclave keeps before refusing requests, and one record per request under way;
    // then the acknowledgement of the last page and the records written meanwhile.
    const pages = Math.ceil((MAX_AUDIT_BACKLOG + ENCLAVE_MAX_CONNECTIONS) / AUDIT_PAGE_MAX_LINES);
    expect(STOP_MAX_COLLECTIONS).toBeGreaterThanOrEqual(pages + 3);
  });
});

describe("prepareAuditDir", () => {
  /** A new directory under the temporary directory (1777, root's: it passes findUnsafeDirectory), removed after. */
  const auditRoot = async () => {
    const root = await mkdtemp(join(tmpdir(), "cloister-auditdir-"));
    dirs.push(root);
    return root;
  };

  it("makes a missing last directory (mode 0700) and accepts an existing one", async () => {
    const root = await mkdtemp(join(tmpdir(), "cloister-auditdir-"));
    dirs.push(root);
    const dir = join(root, "audit");
    await prepareAuditDir(dir);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    await prepareAuditDir(dir);
  });

  it("syncs the directory it makes in its parent (a power loss cannot take it with its logs), and nothing else", async () => {
    const root = await mkdtemp(join(tmpdir(), "cloister-auditdir-"));
    dirs.push(root);
    const probe = await open(join(root, "probe"), "w");
    const proto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    const original = proto.sync;
    const synced: number[] = [];
    vi.spyOn(proto, "sync").mockImplementation(async function (this: FileHandle) {
      synced.push((await this.stat()).ino);
      return original.call(this);
    });
    const dir = join(root, "audit");
    await prepareAuditDir(dir);
    expect(synced).toEqual([(await stat(root)).ino]);
    synced.length = 0;
    await prepareAuditDir(dir); // exists: nothing made, nothing synced
    expect(synced).toEqual([]);
  });

  it("refuses a path whose parent does not exist (a typo), naming it, and creates nothing", async () => {
    const root = await mkdtemp(join(tmpdir(), "cloister-auditdir-"));
    dirs.push(root);
    const dir = join(root, "typo", "deeper", "audit");
    await expect(prepareAuditDir(dir)).rejects.toThrow(
      `audit directory ${dir}: its parent directory does not exist; check the path for a typo, or create the parent first (mkdir -p ${join(root, "typo", "deeper")}; only the last directory is made)`,
    );
    await expect(stat(join(root, "typo"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("names a symbolic link to a missing target as such (its parent exists), and follows one to a directory", async () => {
    const root = await mkdtemp(join(tmpdir(), "cloister-auditdir-"));
    dirs.push(root);
    const dangling = join(root, "audit");
    await symlink(join(root, "gone"), dangling);
    await expect(prepareAuditDir(dangling)).rejects.toThrow(
      `audit directory ${dangling}: expected a directory, found a symbolic link to a missing target; point it at a directory or remove it`,
    );
    await mkdir(join(root, "real"));
    const link = join(root, "linked");
    await symlink(join(root, "real"), link);
    await prepareAuditDir(link);
  });

  it("refuses a directory anyone may write to (without the sticky bit), naming its mode; takes one with it", async () => {
    const root = await mkdtemp(join(tmpdir(), "cloister-auditdir-"));
    dirs.push(root);
    const dir = join(root, "audit");
    await mkdir(dir);
    await chmod(dir, 0o777);
    await expect(prepareAuditDir(dir)).rejects.toThrow(
      `audit directory ${dir}: expected a directory others cannot write to, found mode 0777: anyone could remove or replace its logs; chmod o-w ${dir} (or set its sticky bit)`,
    );
    await chmod(dir, 0o1777);
    await prepareAuditDir(dir);
    await chmod(dir, 0o775);
    await prepareAuditDir(dir);
    // The chmod hint is one shell word: a name with a space in it quoted.
    const spaced = join(root, "my audit");
    await mkdir(spaced);
    await chmod(spaced, 0o777);
    await expect(prepareAuditDir(spaced)).rejects.toThrow(`; chmod o-w '${spaced}' (or set its sticky bit)`);
  });

  it("refuses a directory below one others can write to (without the sticky bit), naming that ancestor", async () => {
    // Whoever can write to d777 can rename `audit` away, logs and all, and put their own in its place.
    const root = await auditRoot();
    const open_ = join(root, "d777");
    await mkdir(join(open_, "deeper"), { recursive: true });
    await chmod(open_, 0o777);
    for (const dir of [join(open_, "audit"), join(open_, "deeper", "audit")]) {
      await expect(prepareAuditDir(dir)).rejects.toThrow(
        `audit directory ${dir}: expected no directory above it that others can write to, found one (the ancestor ${open_} mode 0777): anyone could rename the directory away with its logs and put their own in its place; chmod o-w ${open_} (or set its sticky bit)`,
      );
    }
    // Reached through a link: the link's own directory counts as much as its target's.
    await mkdir(join(root, "safe"));
    await symlink(join(root, "safe"), join(open_, "link"));
    await expect(prepareAuditDir(join(open_, "link", "audit"))).rejects.toThrow(`(the ancestor ${open_} mode 0777)`);
    await symlink(open_, join(root, "safe", "to-open"));
    await expect(prepareAuditDir(join(root, "safe", "to-open", "audit"))).rejects.toThrow(
      `(the ancestor ${open_} mode 0777)`,
    );
    // With the sticky bit (as /tmp has), only a name's owner may rename it.
    await chmod(open_, 0o1777);
    await prepareAuditDir(join(open_, "audit"));
    await prepareAuditDir(join(open_, "link", "audit"));
  });

  it("holds a directory above it only to anyone writing to it, the directory itself to its group and owner too", async () => {
    // Above it: a group other than root's or this user's may write (a checkout another user made
    // under umask 002, root working in it), another user may own it; anyone writing is refused.
    const root = await auditRoot();
    const uid = process.getuid?.() ?? 0;
    const shared = join(root, "shared");
    await mkdir(shared);
    await chmod(shared, 0o775);
    await chown(shared, 4243, 4242);
    const dir = join(shared, "audit");
    await prepareAuditDir(dir);
    await chmod(shared, 0o777);
    await expect(prepareAuditDir(dir)).rejects.toThrow(
      `audit directory ${dir}: expected no directory above it that others can write to, found one (the ancestor ${shared} mode 0777): anyone could rename the directory away with its logs and put their own in its place; chmod o-w ${shared} (or set its sticky bit)`,
    );
    // The audit directory itself: its group may not write to it, nor may another user own it (the
    // sticky bit does not help: its owner may rename what is in it).
    await chmod(shared, 0o755);
    await chmod(dir, 0o770);
    await chown(dir, uid, 4242);
    await expect(prepareAuditDir(dir)).rejects.toThrow(
      `audit directory ${dir}: expected a directory others cannot write to, found mode 0770: group 4242 could remove or replace its logs; chmod g-w ${dir} (or set its sticky bit)`,
    );
    for (const mode of [0o700, 0o1777]) {
      await chmod(dir, mode);
      await chown(dir, 4243, process.getgid?.() ?? 0);
      await expect(prepareAuditDir(dir)).rejects.toThrow(
        mode === 0o700
          ? `audit directory ${dir}: expected a directory owned by root or this user (uid ${uid}), found one owned by uid 4243 (mode 0700): uid 4243 could remove or replace its logs; chown ${uid} ${dir}, or choose another directory`
          : `audit directory ${dir}: expected a directory owned by root or this user (uid ${uid}), found one owned by uid 4243 (mode 01777)`,
      );
    }
    await chmod(dir, 0o700);
    await chown(dir, uid, process.getgid?.() ?? 0);
    await prepareAuditDir(dir);
  });

  it("refuses a file, or a path through a file, naming it", async () => {
    const root = await mkdtemp(join(tmpdir(), "cloister-auditdir-"));
    dirs.push(root);
    const file = join(root, "audit.txt");
    await writeFile(file, "x");
    await expect(prepareAuditDir(file)).rejects.toThrow(`audit directory ${file}: expected a directory, found a file`);
    await expect(prepareAuditDir(join(file, "sub"))).rejects.toThrow(
      `audit directory ${join(file, "sub")}: expected a directory, found a file on its path`,
    );
  });
});

/** A valid API keys file (no key in it is used). */
const KEYS_FILE: ApiKeysFile = {
  version: 1,
  keys: [{ id: "k", project: "p", sha256: "0".repeat(64), permissions: ["attest"], requestsPerMinute: 1 }],
};

describe("cloister host --audit-dir, and startHost's auditDir", () => {
  it("startHost refuses a file, or a path through one, before anything starts", async () => {
    const root = await mkdtemp(join(tmpdir(), "cloister-auditdir-"));
    dirs.push(root);
    const file = join(root, "audit.txt");
    await writeFile(file, "x");
    const start = (auditDir: string) =>
      startHost({
        enclaveUrls: ["http://127.0.0.1:9"],
        apiKeys: new ApiKeyStore(KEYS_FILE),
        hostname: "127.0.0.1",
        port: 47_517, // never bound: refused before listening
        accessLog: () => {},
        auditDir,
      });
    for (const [dir, message] of [
      [file, `audit directory ${file}: expected a directory, found a file`],
      [join(file, "sub"), `audit directory ${join(file, "sub")}: expected a directory, found a file on its path`],
    ] as const) {
      const error = await start(dir).then(
        async (server) => {
          await server.close();
          return null;
        },
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(AuditDirError);
      expect(error).toMatchObject({ message, dir });
    }
  });

  it("cloister host refuses a file before it starts (exit 2, naming the flag), and serves nothing", async () => {
    const root = await mkdtemp(join(tmpdir(), "cloister-auditdir-"));
    dirs.push(root);
    const file = join(root, "audit.txt");
    await writeFile(file, "x");
    // A valid key file: the audit dir is what is at fault.
    await writeFile(join(root, "keys.json"), JSON.stringify(KEYS_FILE));
    const run = await runCloister(
      [
        "host",
        "--enclave-url",
        "http://127.0.0.1:9",
        "--api-keys",
        join(root, "keys.json"),
        "--audit-dir",
        file,
        "--port",
        "0",
      ],
      { timeoutMs: 30_000 },
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(`cloister: USAGE: --audit-dir ${file}: expected a directory, found a file\n`);
    expect(run.stdout).not.toContain("ready");
  }, 60_000);

  it("cloister host says in its ready line where the audit records go (the resolved --audit-dir)", async () => {
    const root = await mkdtemp(join(tmpdir(), "cloister-auditdir-"));
    dirs.push(root);
    await writeFile(join(root, "keys.json"), JSON.stringify(KEYS_FILE));
    const child = spawn(
      process.execPath,
      [
        CLI,
        "host",
        "--enclave-url",
        "http://127.0.0.1:9",
        "--api-keys",
        "keys.json",
        "--audit-dir",
        "audit",
        "--port",
        "0", // any free port: a fixed one collides with a concurrent run
      ],
      { cwd: root, stdio: ["ignore", "pipe", "ignore"] },
    );
    try {
      const line = await new Promise<string>((resolveLine, reject) => {
        createInterface({ input: child.stdout }).once("line", resolveLine);
        child.once("exit", (code) => reject(new Error(`host exited (${code}) before it was ready`)));
      });
      expect(JSON.parse(line)).toMatchObject({ event: "ready", auditDir: join(realpathSync(root), "audit") });
    } finally {
      child.kill("SIGTERM");
    }
  }, 60_000);
});

describe("audit collector and --enclave-url: a user and password in the URL reach no log", () => {
  it("the collector refuses such a URL as it is made, in a RangeError naming enclaveUrl without the password", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-collector-"));
    dirs.push(dir);
    // The second: node's fetch quotes it ("…includes credentials: http:/op:hunter2@…") with no "://",
    // which fetchFailure's check for a quoted URL once missed (the password reached the log).
    for (const enclaveUrl of ["http://op:hunter2@127.0.0.1:1", "http:/op:hunter2@127.0.0.1:1", "ftp://127.0.0.1:1"]) {
      const errors: string[] = [];
      let made: AuditCollector | null = null;
      const error = (() => {
        try {
          made = new AuditCollector({ enclaveUrl, dir, intervalMs: 60_000, onError: (m) => errors.push(m) });
          return null;
        } catch (caught) {
          return caught;
        }
      })();
      if (made !== null) {
        await (made as AuditCollector).collect();
        await (made as AuditCollector).stop();
      }
      expect(errors.join("\n")).not.toContain("hunter2");
      expect(error, enclaveUrl).toBeInstanceOf(RangeError);
      expect((error as Error).message).toMatch(/^enclaveUrl: expected (no user name or password|an http: URL)/);
      expect((error as Error).message).not.toContain("hunter2");
    }
  });

  it("shows no fetch message that may quote a URL's credentials (a library caller's fetch, a URL it was sent on to)", async () => {
    const quoting = [
      "Request cannot be constructed from a URL that includes credentials: http:/op:hunter2@127.0.0.1:1/audit",
      "Failed to parse URL from http:op:hunter2@[bad/audit",
      "redirected to op:hunter2@127.0.0.1",
    ];
    for (const message of quoting) {
      const { c, errors } = await collector((async () => {
        throw new TypeError(message);
      }) as typeof fetch);
      await c.collect();
      await c.stop();
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.join("\n")).not.toContain("hunter2");
      expect(errors[0]).toMatch(/TypeError, its message not shown \(it may quote a URL\)/);
    }
  });

  it("shows none of node's own message for a credentialed http:/u:p@… URL (a library caller's fetch sent on there)", async () => {
    const { c, errors } = await collector((() => fetch("http:/op:hunter2@127.0.0.1:1/audit")) as typeof fetch);
    await c.collect();
    await c.stop();
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.join("\n")).not.toContain("hunter2");
    expect(errors[0]).toMatch(/\(TypeError, its message not shown \(it may quote a URL\)\)/);
  });

  it("cloister host refuses one (exit 2) without repeating it", async () => {
    const run = await runCloister(
      ["host", "--enclave-url", "http://op:hunter2@127.0.0.1:9", "--api-keys", "keys.json", "--audit-dir", "audit"],
      { timeoutMs: 30_000 },
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--enclave-url: expected no user name or password");
    expect(run.stderr).not.toContain("hunter2");
  }, 60_000);
});

describe("audit collector: one collection's time bound", () => {
  it("bounds a whole collection by COLLECT_TIMEOUT_MS (10 s), its boot's document read included, not each request", async () => {
    // An /audit answer naming a boot not yet met, then a document read that never answers: with
    // its own 10 s per request, one collection could outlast the enclave's 10 s shutdown grace (its
    // records then lost with it). The collection's one timeout is recorded, not waited for (its
    // AbortSignal.timeout is this test's signal): both requests carry it, and its expiry cuts the
    // read (where the test once waited 10 s and bounded the cut at 12.5 s after the start).
    const writer = makeWriter();
    const line = writer.record(sampleEntries(1)[0]!).line;
    const timeouts: number[] = [];
    const collection = new AbortController();
    const timeout = vi.spyOn(AbortSignal, "timeout").mockImplementation((ms: number) => {
      timeouts.push(ms);
      return collection.signal;
    });
    const signals: { path: string; signal: AbortSignal | null | undefined }[] = [];
    let documentCut = false;
    const fetchFn = (async (url: string | URL | Request, init?: RequestInit) => {
      const path = new URL(String(url)).pathname;
      signals.push({ path, signal: init?.signal });
      if (path === "/audit") {
        return new Response(JSON.stringify({ boot: BOOT, signingKey: KEY, from: 0, lines: [line], next: 1 }));
      }
      return new Promise<Response>((_, reject) => {
        init?.signal?.addEventListener("abort", () => {
          documentCut = true;
          reject(init.signal?.reason);
        });
      });
    }) as typeof fetch;
    try {
      const { c, errors } = await collector(fetchFn, undefined, undefined, null);
      const collecting = c.collect();
      await vi.waitFor(() => expect(signals.map((s) => s.path)).toEqual(["/audit", "/audit/document"]));
      expect(timeouts).toEqual([10_000]);
      expect(signals.every((s) => s.signal === collection.signal)).toBe(true);
      expect(documentCut).toBe(false);
      // The collection's 10 s are up.
      collection.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError"));
      await collecting;
      expect(documentCut, "the document read was cut").toBe(true);
      expect(errors.join("\n")).toContain("no answer in 10000 ms");
      await c.stop();
    } finally {
      timeout.mockRestore();
    }
  });
});
