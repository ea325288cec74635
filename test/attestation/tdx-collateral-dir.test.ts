/**
 * A collateral directory's entry names in messages (attestation/tdx/collateral-dir.ts): a name is
 * whatever the directory holds (a renewal job's, or anyone's who can write there), so every
 * message shows it as untrusted text (describeUntrusted: quoted, control and format characters
 * replaced), never raw; the fs error stays the cause.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { NotFileOrPipeError } from "../../attestation/bounded-read.ts";
import { loadTdxCollateralDirectory } from "../../attestation/tdx/collateral-dir.ts";
import { parseTdxQuote } from "../../attestation/tdx/parse.ts";
import { rejectionOf } from "../helpers/rejections.ts";

const TDX = fileURLToPath(new URL("../fixtures/attestation/tdx/", import.meta.url));
const QUOTE = parseTdxQuote(readFileSync(join(TDX, "quote-v4-trustee.bin")));
const AT = new Date("2023-07-01T00:00:00Z");
const tmp = mkdtempSync(join(tmpdir(), "cloister-collateral-dir-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

class Failed extends Error {}
const fail = (message: string, cause?: unknown) => new Failed(message, { cause });
/** A terminal escape (ESC [2J clears the screen) and a right-to-left override in one file name. */
const HOSTILE = "tcbinfo-\u001b[2J\u202e.json";
const SHOWN = '"tcbinfo-\uFFFD[2J\uFFFD.json"';

/** A fresh directory under the test's temporary one. */
function directory(name: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  return dir;
}

describe("a collateral directory's entry names in messages", () => {
  it("are shown as untrusted text in the note for a file left out", async () => {
    const dir = directory("unparsable");
    writeFileSync(join(dir, HOSTILE), "not collateral");
    const loaded = await loadTdxCollateralDirectory(dir, QUOTE, AT, "--collateral", fail);
    expect(loaded.notes[0]).toMatch(new RegExp(`^${escapeRegExp(SHOWN)} left out: `));
    const notes = loaded.notes.join("\n");
    expect(notes.includes("\u001b") || notes.includes("\u202e")).toBe(false);
  });

  it("are shown as untrusted text when a file cannot be opened, the fs error kept as the cause", async () => {
    const dir = directory("dangling");
    symlinkSync(join(tmp, "nowhere"), join(dir, HOSTILE));
    const error = await rejectionOf(loadTdxCollateralDirectory(dir, QUOTE, AT, "--collateral", fail), Failed);
    expect(error.message).toBe(`--collateral ${SHOWN} in "${dir}": cannot read (ENOENT: no such file; check the path)`);
    expect(error.cause).toMatchObject({ code: "ENOENT" });
  });

  it("are shown as untrusted text when an entry is not a file, what it is kept as the cause", async () => {
    const dir = directory("not-a-file");
    mkdirSync(join(dir, HOSTILE));
    const error = await rejectionOf(loadTdxCollateralDirectory(dir, QUOTE, AT, "--collateral", fail), Failed);
    expect(error.message).toBe(
      `--collateral ${SHOWN} in "${dir}": expected a regular file or a pipe, found a directory`,
    );
    expect(error.cause).toBeInstanceOf(NotFileOrPipeError);
    expect(error.cause).toMatchObject({ found: "a directory" });
  });

  it("are shown as untrusted text when an entry is larger than the bound", async () => {
    const dir = directory("too-large");
    writeFileSync(join(dir, HOSTILE), Buffer.alloc(512 * 1024 + 1));
    await expect(loadTdxCollateralDirectory(dir, QUOTE, AT, "--collateral", fail)).rejects.toThrow(
      new Failed(
        `--collateral ${SHOWN} in "${dir}": expected at most ${512 * 1024} bytes (Intel PCS collateral (a TCB info, QE identity, issuer chain or CRL), a few KiB; the wire form takes 512 KiB of one), found more`,
      ),
    );
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
