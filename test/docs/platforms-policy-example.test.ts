/**
 * docs/platforms.md's policy for captured evidence ("A policy for captured evidence"): the page's JSON,
 * saved as the page says and passed to its `verify-evidence` line with the fixture report it was
 * written for, must be a complete attestation policy that accepts that report; with its measurement
 * or its microcode floor changed, the refusal must name the field, the expected and the found value
 * as the page quotes them. A field renamed or added to the schema, or a pin that no longer matches
 * the fixture, shows here; so does an example loosened while it still accepts the report (a minimum
 * TCB below what --json prints, debug or a migration agent allowed).
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { shellBlocks } from "../helpers/doc-pages.ts";

const run = inProcessCli();
const SNP = join(REPO_ROOT, "test", "fixtures", "attestation", "snp");
const HEADING = "**A policy for captured evidence.**";

let dir: string | null = null;
afterEach(() => {
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

/** The page's paragraph from HEADING on: its one JSON block and its one verify-evidence line. */
function example(): { policy: string; line: string } {
  const markdown = readFileSync(join(REPO_ROOT, "docs", "platforms.md"), "utf8");
  const from = markdown.indexOf(HEADING);
  expect(from, `docs/platforms.md: expected ${HEADING}`).toBeGreaterThanOrEqual(0);
  const rest = markdown.slice(from);
  const json = [...rest.matchAll(/^```json\n([\s\S]*?)^```$/gm)].map((m) => m[1] as string);
  const lines = shellBlocks(rest)
    .flatMap((block) => block.split("\n"))
    .filter((l) => l.startsWith("cloister verify-evidence ") && l.includes("--policy policy.json"));
  expect(json.length).toBeGreaterThanOrEqual(1);
  expect(lines).toHaveLength(1);
  return { policy: json[0] as string, line: lines[0] as string };
}

/** The page's line, run in `dir` on the fixture report it names (report.bin, vcek.pem copied in). */
async function verify(line: string) {
  const argv = line.split(" ").slice(1);
  expect(argv).toEqual(expect.arrayContaining(["--report", "report.bin", "--cert", "vcek.pem"]));
  const local = argv.map((a) =>
    a === "report.bin" || a === "vcek.pem" || a === "policy.json" ? join(dir as string, a) : a,
  );
  return run(local);
}

describe("docs/platforms.md: a policy for captured evidence", () => {
  it("the page's policy accepts the GCP report it pins, with the page's command", async () => {
    const { policy, line } = example();
    dir = mkdtempSync(join(tmpdir(), "cloister-doc-policy-"));
    writeFileSync(join(dir, "report.bin"), readFileSync(join(SNP, "milan-gcp-v5-report.bin")));
    writeFileSync(join(dir, "vcek.pem"), readFileSync(join(SNP, "milan-gcp-v5-vcek.pem")));
    writeFileSync(join(dir, "policy.json"), policy);
    const { code, stdout, stderr } = await verify(line);
    expect(code, stderr).toBe(0);
    expect(stdout.split("\n")[0]).toBe("snp: VALID");
    expect(stdout).toMatch(/^ {2}appraisal +policy satisfied$/m);
  });

  it("pins --json's measurement and reported TCB as the page says, refuses debug, a migration agent, CXL and VMPLs past 0, and takes no TDX or Azure", async () => {
    const { policy } = example();
    const parsed = JSON.parse(policy);
    const at = ["--at", "2026-01-01T00:00:00Z"];
    const json = await run([
      "verify-evidence",
      "--tee",
      "snp",
      "--report",
      join(SNP, "milan-gcp-v5-report.bin"),
      "--cert",
      join(SNP, "milan-gcp-v5-vcek.pem"),
      ...at,
      "--json",
    ]);
    expect(json.code, json.stderr).toBe(0);
    const printed = JSON.parse(json.stdout) as { measurement: string; reportedTcb: Record<string, unknown> };
    const { raw: _raw, ...reportedTcb } = printed.reportedTcb;
    expect(parsed.snp.measurements).toEqual([printed.measurement]);
    // Each component the report has, at its value (fmc, which a Milan report has none of, at 0).
    expect(parsed.snp.minimumTcb).toEqual({ ...reportedTcb, fmc: 0 });
    expect({
      trustSimulator: parsed.trustSimulator,
      debugAllowed: parsed.snp.debugAllowed,
      migrationAgentAllowed: parsed.snp.migrationAgentAllowed,
      cxlAllowed: parsed.snp.cxlAllowed,
      allowedVmpls: parsed.snp.allowedVmpls,
      tdx: parsed.tdx,
      azure: parsed.azure,
    }).toEqual({
      trustSimulator: false,
      debugAllowed: false,
      migrationAgentAllowed: false,
      cxlAllowed: false,
      allowedVmpls: [0],
      tdx: null,
      azure: null,
    });
  });

  it("with another measurement and a higher microcode floor, refuses as the page quotes (exit 1)", async () => {
    const { policy, line } = example();
    const parsed = JSON.parse(policy);
    const found = parsed.snp.measurements[0] as string;
    const other = `${found[0] === "b" ? "c" : "b"}${found.slice(1)}`;
    parsed.snp.measurements = [other];
    parsed.snp.minimumTcb.microcode = 230;
    dir = mkdtempSync(join(tmpdir(), "cloister-doc-policy-"));
    writeFileSync(join(dir, "report.bin"), readFileSync(join(SNP, "milan-gcp-v5-report.bin")));
    writeFileSync(join(dir, "vcek.pem"), readFileSync(join(SNP, "milan-gcp-v5-vcek.pem")));
    writeFileSync(join(dir, "policy.json"), JSON.stringify(parsed));
    const { code, stdout } = await verify(line);
    expect(code).toBe(1);
    expect(stdout).toContain(`MEASUREMENT: expected ${other}, found ${found} (`);
    expect(stdout).toContain("(SNP_MEASUREMENT_NOT_ALLOWED)");
    const tcb = "REPORTED_TCB.microcode: expected >= 230, found 222 (below the policy's snp.minimumTcb.microcode, ";
    const step =
      "the platform's firmware/microcode must be updated, or lower that minimum if this TCB is accepted on purpose)";
    expect(stdout).toContain(tcb);
    expect(stdout).toContain(`; ${step} (SNP_TCB_TOO_LOW)`);
    const page = readFileSync(join(REPO_ROOT, "docs", "platforms.md"), "utf8").replace(/\s+/g, " ");
    expect(page).toContain(`\`${tcb}…; ${step} (SNP_TCB_TOO_LOW)\``);
  });
});

describe("verify-evidence --help: where a policy for captured evidence is shown", () => {
  it("--policy names the page's section, which the page has", async () => {
    const { code, stdout } = await run(["verify-evidence", "--help"]);
    expect(code).toBe(0);
    expect(stdout.replace(/\s+/g, " ")).toContain(
      'every field is required: docs/platforms.md, "A policy for captured evidence", shows one for a captured report',
    );
    expect(readFileSync(join(REPO_ROOT, "docs", "platforms.md"), "utf8")).toContain(HEADING);
  });
});
