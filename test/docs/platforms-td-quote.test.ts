/**
 * docs/platforms.md's way to check an Azure TDX VM's TCB status: the `node -e` line of its shell
 * block takes the TD quote out of Cloister's Azure evidence. Run as the page shows it on the captured
 * evidence, it must write the TD quote that evidence carries, byte for byte, which `verify-evidence
 * --tee tdx` then accepts: a renamed member, or an encoding the line does not decode, shows here.
 * The sentence before it says what `--tee azure-tdx --json` shows of the TCB status; run on the same
 * evidence, the command must show just that.
 */

import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { shellBlocks } from "../helpers/doc-pages.ts";

const run = inProcessCli();
const FIXTURES = join(REPO_ROOT, "test", "fixtures", "attestation", "azure", "tdx-vtpm");

let dir: string | null = null;
afterEach(() => {
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

describe("docs/platforms.md: the TD quote out of Azure TDX evidence", () => {
  it("the page's node -e line writes the evidence's TD quote, which verify-evidence --tee tdx verifies", async () => {
    const markdown = readFileSync(join(REPO_ROOT, "docs", "platforms.md"), "utf8");
    const lines = shellBlocks(markdown)
      .flatMap((block) => block.split("\n"))
      .filter((line) => line.startsWith("node -e ") && line.includes("td_quote"));
    expect(lines).toHaveLength(1);
    const line = lines[0] as string;
    expect(line).toMatch(/ evidence\.json > td-quote\.bin$/);
    dir = mkdtempSync(join(tmpdir(), "cloister-td-quote-"));
    copyFileSync(join(FIXTURES, "tdx-evidence-v1.trustee.json"), join(dir, "evidence.json"));
    execFileSync("sh", ["-c", line], { cwd: dir, stdio: "pipe" });
    const quote = readFileSync(join(dir, "td-quote.bin"));
    expect(quote.equals(readFileSync(join(FIXTURES, "tdx-td-quote-v4.bin")))).toBe(true);
    const { code, stdout, stderr } = await run([
      "verify-evidence",
      "--tee",
      "tdx",
      "--quote",
      join(dir, "td-quote.bin"),
    ]);
    expect(code, stderr).toBe(0);
    expect(stdout.split("\n")[0]).toBe("tdx: VALID");
  });

  it("says what --tee azure-tdx --json shows of the TCB status: tcbStatus null and the warning it prints", async () => {
    const prose = readFileSync(join(REPO_ROOT, "docs", "platforms.md"), "utf8").replace(/\s+/g, " ");
    const said =
      /`--tee azure-tdx` takes no collateral: .*?its `tcbStatus` is null \(`"tcbStatus": null` in `--json`\), and it warns `([^`]+)`\./.exec(
        prose,
      );
    expect(said, "the page's sentence on --tee azure-tdx's TCB status").not.toBeNull();
    const { code, stdout, stderr } = await run([
      "verify-evidence",
      "--tee",
      "azure-tdx",
      "--evidence",
      join(FIXTURES, "tdx-evidence-v1.trustee.json"),
      "--at",
      "2026-01-01T00:00:00Z",
      "--json",
    ]);
    expect(code, stderr).toBe(0);
    const verdict = JSON.parse(stdout) as { valid: boolean; warnings: unknown };
    expect(verdict.valid).toBe(true);
    // Present and null: not a field left out.
    expect(verdict).toHaveProperty("tcbStatus", null);
    expect(verdict.warnings).toEqual([said?.[1]]);
  });
});
