/**
 * `cloister audit --help` and `audit verify --help`: an example that reads attest.json says where that
 * file comes from (`cloister attest … --json > attest.json`), so a newcomer can make it.
 */
import { describe, expect, it } from "vitest";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { examplesOf } from "../helpers/help-examples.ts";

const run = inProcessCli();

describe("audit --help examples that use attest.json", () => {
  it.each(["audit", "audit verify"])("%s --help says how attest.json is made", async (command) => {
    const { code, stdout } = await run([...command.split(" "), "--help"]);
    expect(code).toBe(0);
    const using = examplesOf(stdout).filter((line) => line.includes("attest.json"));
    expect(using.length).toBeGreaterThan(0);
    for (const line of using) expect(line).toMatch(/# attest\.json: cloister attest [^#]*--json > attest\.json/);
  });
});
