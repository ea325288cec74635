/**
 * attest's check that --document-out is not one of the files --evidence-out writes resolves both
 * directories (realpath): one that cannot be resolved there (gone since the earlier checks, or not
 * to be looked into) is a USAGE refusal naming the option and the path, not a bare errno (exit 1).
 * The failure is injected into realpath: as root, a directory's mode does not stop it, and the
 * directory going away between the two checks is a race.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { devPolicy } from "./helpers.ts";

/** Paths whose realpath fails, with the errno given. */
const failing = vi.hoisted(() => new Map<string, string>());

vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...actual,
    realpath: (path: Parameters<typeof actual.realpath>[0], ...rest: []) => {
      const code = failing.get(String(path));
      if (code === undefined) return actual.realpath(path, ...rest);
      return Promise.reject(Object.assign(new Error(`${code}: injected, realpath '${String(path)}'`), { code }));
    },
  };
});

const run = inProcessCli();
let dir: string;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "cloister-document-among-evidence-"));
  writeFileSync(join(dir, "policy.json"), JSON.stringify(await devPolicy()));
  mkdirSync(join(dir, "evidence"));
});
afterEach(() => {
  failing.clear();
  rmSync(dir, { recursive: true, force: true });
});

const attest = (documentOut: string) =>
  run([
    "attest",
    "--url",
    "http://127.0.0.1:47931",
    "--policy",
    join(dir, "policy.json"),
    "--evidence-out",
    join(dir, "evidence"),
    "--document-out",
    documentOut,
  ]);

describe("attest --document-out among --evidence-out's files, a directory that cannot be resolved", () => {
  it("--evidence-out's: USAGE naming --evidence-out and its path", async () => {
    failing.set(join(dir, "evidence"), "ENOENT");
    const result = await attest(join(dir, "quote.bin"));
    expect({ code: result.code, stderr: result.stderr }).toEqual({
      code: 2,
      stderr: `cloister: USAGE: --evidence-out ${join(dir, "evidence")}: cannot check its path (ENOENT: no such file; check the path)\n`,
    });
  });

  it("--document-out's: USAGE naming --document-out and its path", async () => {
    failing.set(dir, "EACCES");
    const result = await attest(join(dir, "quote.bin"));
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      new RegExp(`^cloister: USAGE: --document-out ${join(dir, "quote.bin")}: cannot check its path \\(EACCES: `),
    );
  });
});
