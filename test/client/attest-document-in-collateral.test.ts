/**
 * attest --document-out inside --evidence-out's collateral folder (DIR/collateral), which holds only
 * the collateral attest saves: refused before the host is asked anything, whatever the file's name.
 * A name attest does not write there would be written (--force takes the folder as it is) and then
 * refuse the next --force run ("expected only the files attest saves there"); one it writes would be
 * replaced by the collateral. A file at DIR/collateral itself (no folder yet) is refused too: it would
 * stop the folder being made, and every later --force run.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { COLLATERAL_OUT_NAMES } from "../../client/cli/run-client.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { closeServers, devPolicy, serve } from "./helpers.ts";

const run = inProcessCli();
/** The requests the host was sent: none, the refusal coming first. */
const asked: string[] = [];
let url: string;
let dir: string;

beforeEach(async () => {
  asked.length = 0;
  url ??= await serve((request: Request) => {
    asked.push(new URL(request.url).pathname);
    return new Response("not a host", { status: 503 });
  });
  dir = mkdtempSync(join(tmpdir(), "cloister-document-in-collateral-"));
  writeFileSync(join(dir, "policy.json"), JSON.stringify(await devPolicy("sim-tdx")));
  writeFileSync(join(dir, "api-key"), "test-key\n", { mode: 0o600 });
  mkdirSync(join(dir, "evidence", "collateral"), { recursive: true });
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});
afterAll(closeServers);

const attest = (documentOut: string) =>
  run([
    "attest",
    "--url",
    url,
    "--policy",
    join(dir, "policy.json"),
    "--api-key-file",
    join(dir, "api-key"),
    "--evidence-out",
    join(dir, "evidence"),
    "--document-out",
    documentOut,
    "--force",
  ]);

describe("attest --force --document-out in DIR/collateral", () => {
  it.each([
    ["a name attest does not write there", "document.jws"],
    ["a name it writes there", "crl-1.der"],
  ])("%s: USAGE, before the host is asked, nothing written", async (_what, name) => {
    const folder = join(dir, "evidence", "collateral");
    const result = await attest(join(folder, name));
    expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
      code: 2,
      stdout: "",
      stderr: `cloister: USAGE: --document-out ${join(folder, name)}: expected a file outside ${folder}, which holds only the collateral --evidence-out saves (${COLLATERAL_OUT_NAMES.join(", ")}), found one in it (run with --help for usage)\n`,
    });
    expect(asked).toEqual([]);
    expect(readdirSync(folder)).toEqual([]);
  });

  it("DIR/collateral itself, not made yet (no TDX collateral so far): USAGE, before the host is asked", async () => {
    // Written there, it would stop the collateral folder being made, and refuse every later --force run
    // ("expected a directory ..., found a regular file").
    rmSync(join(dir, "evidence", "collateral"), { recursive: true });
    const documentOut = join(dir, "evidence", "collateral");
    const result = await attest(documentOut);
    expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
      code: 2,
      stdout: "",
      stderr: `cloister: USAGE: --document-out ${documentOut}: expected a file other than those --evidence-out writes in ${join(dir, "evidence")} (report.bin, cert.der, quote.bin, evidence.json, td-quote.bin, collateral), found collateral (run with --help for usage)\n`,
    });
    expect(asked).toEqual([]);
    expect(readdirSync(join(dir, "evidence"))).toEqual([]);
  });

  it("a document beside DIR, or in another folder of it, is written as before (the host is asked)", async () => {
    mkdirSync(join(dir, "evidence", "other"));
    for (const documentOut of [join(dir, "document.jws"), join(dir, "evidence", "other", "document.jws")]) {
      asked.length = 0;
      const result = await attest(documentOut);
      expect(result.stderr).not.toContain("--document-out");
      expect(asked).toEqual(["/v1/attestation"]);
    }
  });
});
