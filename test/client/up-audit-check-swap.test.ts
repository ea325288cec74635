/**
 * `cloister up` / `demo`'s audit check with the log swapped for a FIFO between its two steps: the
 * check counts the stored lines through a non-blocking open (a FIFO there is refused, not waited
 * on), then verifies them. The swap is made right after that open (node:fs/promises' open of the
 * log, wrapped here), as whoever owns a directory above --dir could: the verification must read the
 * file counted, through the same handle. Read again by name, it would open the FIFO, wait for a
 * writer, and verify what that writer sends (here nothing: the test opens the FIFO's other end, so
 * that no wait is left unbounded, and closes it at once).
 */
import { execFileSync } from "node:child_process";
import { constants } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { UsageError } from "../../client/cli/output.ts";
import { checkStoredAuditLog } from "../../client/cli/run-up.ts";
import { verifyAuditLog } from "../../enclave/pipeline/audit.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { makeWriter, seededKeyPair, writeLog } from "../pipeline/helpers.ts";

/** The file whose first open swaps it (set by a test), what is put in its place, and the FIFO's writer. */
const swap = vi.hoisted(() => ({
  file: null as string | null,
  done: false,
  by: async (_handle: import("node:fs/promises").FileHandle) => {},
  writer: null as Promise<void> | null,
}));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { swapAtFirstOpen } = await import("../helpers/swap-at-open.ts");
  return swapAtFirstOpen(real, swap);
});

const { open: realOpen } = await vi.importActual<typeof import("node:fs/promises")>("node:fs/promises");
const dir = await testDirectory("cloister-up-audit-swap-");

afterEach(() => {
  swap.file = null;
  swap.done = false;
  swap.writer = null;
});

describe("cloister up / demo: the stored audit log swapped between its count and its verification", () => {
  const keys = seededKeyPair(7);
  const lines = writeLog(3, makeWriter(keys));
  const good = verifyAuditLog(lines, keys.publicKey);
  if (!good.ok) throw new Error("the sample log does not verify");
  const checkpoint = { count: 3, lastRecordHash: good.lastRecordHash };

  it("verifies the log it counted, not a FIFO put in its place after the count's open", async () => {
    const file = join(dir, "swapped.jsonl");
    await writeFile(file, `${lines.join("\n")}\n`);
    const fifo = join(dir, "swapped.fifo");
    execFileSync("mkfifo", [fifo]);
    swap.file = file;
    swap.by = async () => {
      await rename(fifo, file);
      // The FIFO's writer: a blocking open, met by a reader of the FIFO (a check that opened it by
      // name, or the test below), then closed, so that reader reads an empty log.
      swap.writer = realOpen(file, "w").then((handle) => handle.close());
    };
    const outcome = await checkStoredAuditLog(file, keys.publicKey, checkpoint, 1).catch((error: Error) => error);
    // No writer left waiting, whatever the check did: a reader of our own meets it (non-blocking).
    const reader = await realOpen(file, constants.O_RDONLY | constants.O_NONBLOCK);
    await swap.writer;
    await reader.close();
    expect(swap.done).toBe(true);
    expect(outcome instanceof Error ? outcome.message : outcome).toMatch(
      /^audit: 3 records stored by the host in .*swapped\.jsonl; signatures, chain/,
    );
  });

  it("a read error in the verification, after the count, names the audit log as the count's does: not --log, not USAGE", async () => {
    const file = join(dir, "unreadable.jsonl");
    await writeFile(file, `${lines.join("\n")}\n`);
    swap.file = file;
    // The count reads on from the file's position (null), the verification at offsets: only the
    // latter fails, as an EIO of the disk would.
    swap.by = async (handle) => {
      const read = handle.read.bind(handle) as (...args: unknown[]) => Promise<unknown>;
      handle.read = ((...args: unknown[]) =>
        args[3] === null
          ? read(...args)
          : Promise.reject(Object.assign(new Error("i/o error"), { code: "EIO" }))) as typeof handle.read;
    };
    const outcome = await checkStoredAuditLog(file, keys.publicKey, checkpoint, 1).catch((error: Error) => error);
    expect(swap.done).toBe(true);
    expect(outcome).toBeInstanceOf(Error);
    expect(outcome).not.toBeInstanceOf(UsageError);
    expect((outcome as Error).message).toMatch(new RegExp(`^audit log ${file}: cannot read \\(EIO`));
    expect((outcome as Error).cause).toMatchObject({ code: "EIO" });
  });

  it("a close of the log that fails after the read failed does not hide the read's error", async () => {
    const file = join(dir, "unreadable-unclosable.jsonl");
    await writeFile(file, `${lines.join("\n")}\n`);
    swap.file = file;
    let closeOf: (() => Promise<void>) | null = null;
    swap.by = async (handle) => {
      handle.read = (() =>
        Promise.reject(Object.assign(new Error("i/o error"), { code: "EIO" }))) as typeof handle.read;
      closeOf = handle.close.bind(handle);
      handle.close = () => Promise.reject(Object.assign(new Error("bad file descriptor"), { code: "EBADF" }));
    };
    const outcome = await checkStoredAuditLog(file, keys.publicKey, checkpoint, 1).catch((error: Error) => error);
    expect(swap.done).toBe(true);
    await (closeOf as (() => Promise<void>) | null)?.();
    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as Error).message).toMatch(new RegExp(`^audit log ${file}: cannot read \\(EIO`));
    expect((outcome as Error).cause).toMatchObject({ code: "EIO" });
  });
});
