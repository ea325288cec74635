/**
 * Output files of the commands (client/cli/output.ts): `attest --document-out`, `audit checkpoint
 * --out`, `model make tiny --out` and `bundle --out` refuse a file that exists before any work; a
 * write appears whole or not at all and replaces a file only when asked (`--force`); a directory
 * that does not exist is named, never created.
 */
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { refuseExistingOutput, UsageError, writeOutputFile } from "../../client/cli/output.ts";
import { runCloister } from "../helpers/cli.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-output-files-");

describe("client output files", () => {
  it("attest --document-out and audit checkpoint --out refuse an existing file before contacting the host", async () => {
    const existing = join(dir, "existing.txt");
    await writeFile(existing, "keep me\n");
    // Nothing listens on port 1 and there is no policy: refusing the file must come first.
    const connection = ["--url", "http://127.0.0.1:1", "--policy", join(dir, "no-policy.json")];
    const [attest, checkpoint] = await Promise.all([
      runCloister(["attest", ...connection, "--document-out", existing], { cwd: dir }),
      runCloister(["audit", "checkpoint", ...connection, "--out", existing], { cwd: dir }),
    ]);
    expect(attest.code).toBe(2);
    expect(attest.stderr.trim()).toMatch(
      /^cloister: USAGE: --document-out \S*existing\.txt: already exists \(EEXIST\); pass --force to replace it$/,
    );
    expect(checkpoint.code).toBe(2);
    expect(checkpoint.stderr.trim()).toMatch(
      /^cloister: USAGE: --out \S*existing\.txt: already exists \(EEXIST\); pass --force to replace it$/,
    );
    expect(await readFile(existing, "utf8")).toBe("keep me\n");
  });

  it("audit checkpoint --force takes an existing --out file: the refusal is the missing policy's, the file kept until a checkpoint is written", async () => {
    const existing = join(dir, "old-checkpoint.json");
    await writeFile(existing, "an older checkpoint\n");
    const forced = await runCloister(
      ["audit", "checkpoint", "--url", "http://127.0.0.1:1", "--policy", join(dir, "no-policy.json")].concat([
        "--out",
        existing,
        "--force",
      ]),
      { cwd: dir },
    );
    expect(forced.code).toBe(2);
    expect(forced.stderr).toContain("--policy");
    expect(forced.stderr).not.toContain("EEXIST");
    expect(await readFile(existing, "utf8")).toBe("an older checkpoint\n");
    const help = await runCloister(["audit", "checkpoint", "--help"]);
    expect(help.stdout).toMatch(/--force\s+with --out: replace the file if it exists/);
  });

  it("writeOutputFile: creates a new file, refuses or replaces an existing one as asked, leaves no temporary file", async () => {
    const sub = await mkdtemp(join(dir, "write-"));
    const target = join(sub, "out.jws");
    await writeOutputFile(target, "first\n", "--document-out", "refuse");
    expect(await readFile(target, "utf8")).toBe("first\n");
    for (const existing of ["refuse", "never"] as const) {
      const error = await rejectionOf(writeOutputFile(target, "second\n", "--document-out", existing), UsageError);
      expect((error as Error).message).toMatch(/^--document-out \S*out\.jws: already exists \(EEXIST\); /);
    }
    expect(await readFile(target, "utf8")).toBe("first\n");
    await writeOutputFile(target, "third\n", "--document-out", "replace");
    expect(await readFile(target, "utf8")).toBe("third\n");
    const missingDir = await rejectionOf(
      writeOutputFile(join(sub, "no-such-dir", "x"), "x", "--out", "never"),
      UsageError,
    );
    expect((missingDir as Error).message).toMatch(
      /^--out \S*no-such-dir\/x: its directory does not exist \(ENOENT\); create it first \(mkdir -p .*no-such-dir\)$/,
    );
    expect(await readdir(sub)).toEqual(["out.jws"]);
  });

  it("an output file's refusal keeps the file system's error as its cause, and names only its code", async () => {
    const sub = await mkdtemp(join(dir, "causes-"));
    const errnoOf = (error: unknown) => ((error as Error).cause as NodeJS.ErrnoException | undefined)?.code;
    const target = join(sub, "out.jws");
    await writeOutputFile(target, "first\n", "--document-out", "refuse");
    const exists = await writeOutputFile(target, "second\n", "--document-out", "never").catch((e: unknown) => e);
    expect(errnoOf(exists)).toBe("EEXIST");
    const missingDir = await writeOutputFile(join(sub, "no-such-dir", "x"), "x", "--out", "never").catch((e) => e);
    expect(errnoOf(missingDir)).toBe("ENOENT");
    // A path through a regular file: neither an existing file nor a missing directory.
    const throughFile = join(target, "x");
    const failures = [
      await writeOutputFile(throughFile, "x", "--out", "never").catch((e: unknown) => e),
      await refuseExistingOutput(throughFile, "--out", "refuse").catch((e: unknown) => e),
    ];
    for (const failed of failures) {
      expect(failed).toBeInstanceOf(UsageError);
      expect(errnoOf(failed)).toBe("ENOTDIR");
      // Its code and what to do, as an unreadable input file's; never the error's own text (the temporary's path).
      expect((failed as Error).message).toBe(
        `--out ${throughFile}: cannot create (ENOTDIR: a part of the path is a file, not a directory; check the path)`,
      );
    }
  });

  it("model make tiny --out and bundle --out refuse an existing file (unchanged) unless --force", async () => {
    const existing = join(dir, "made.out");
    await writeFile(existing, "keep me\n");
    const [tiny, bundle] = await Promise.all([
      runCloister(["model", "make", "tiny", "--out", existing], { cwd: dir }),
      runCloister(["bundle", "--out", existing], { cwd: dir }),
    ]);
    for (const run of [tiny, bundle]) {
      expect(run.code).toBe(2);
      expect(run.stdout).toBe("");
      expect(run.stderr.trim()).toMatch(
        /^cloister: USAGE: --out \S*made\.out: already exists \(EEXIST\); pass --force to replace it$/,
      );
    }
    expect(await readFile(existing, "utf8")).toBe("keep me\n");

    const forced = await runCloister(["model", "make", "tiny", "--out", existing, "--force", "--json"], { cwd: dir });
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ path: existing, matchesPinned: true });
  });

  it("bundle --out names the file written as a shell word: a control character in its name shown as an escape, never sent", async () => {
    const sub = await mkdtemp(join(dir, "escape-"));
    const out = join(sub, "a\x1b[31m.json");
    const run = await runCloister(["bundle", "--out", out], { cwd: dir });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).not.toContain("\x1b");
    expect(run.stdout.startsWith(`wrote $'${sub}/a\\033[31m.json' (`)).toBe(true);
    expect(await readdir(sub)).toEqual(["a\x1b[31m.json"]);
  });

  it("bundle --out says why its directory cannot be made, as other file options say it", async () => {
    const file = join(dir, "a-file");
    await writeFile(file, "");
    const out = join(file, "web", "cloister.js");
    const run = await runCloister(["bundle", "--out", out], { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr).toBe(
      `cloister: USAGE: --out ${out}: cannot write (ENOTDIR: a part of the path is a file, not a directory; check the path)\n`,
    );
  });

  it("manifest keygen names the option and the directory that does not exist (USAGE), and creates nothing", async () => {
    const sub = await mkdtemp(join(dir, "keys-"));
    const run = await runCloister(
      ["manifest", "keygen", "--out-private", "keys/op.private.jwk", "--out-public", "keys/op.pub.jwk"],
      { cwd: sub },
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(
      "cloister: USAGE: --out-private keys/op.private.jwk: its directory does not exist (ENOENT); create it first (mkdir -p keys)\n",
    );
    expect(await readdir(sub)).toEqual([]);
  });
});
