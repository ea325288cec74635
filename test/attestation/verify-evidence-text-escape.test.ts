/**
 * verify-evidence's text output (printVerdict without --json) carries text from the evidence and
 * its collateral (a reason quoting a found value, a detail, a warning): each control and format
 * character is a visible \u escape, as --json (stringifyJsonVisibly) and every other error line
 * (formatCliError) write them, so a terminal acts on none of it.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { EMPTY_EVIDENCE_FIELDS, type EvidenceVerdict, printVerdict } from "../../attestation/verify-evidence-cli.ts";

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

function printed(verdict: EvidenceVerdict): { stdout: string; stderr: string } {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, "write").mockImplementation((text) => out.push(String(text)) > 0);
  vi.spyOn(process.stderr, "write").mockImplementation((text) => err.push(String(text)) > 0);
  printVerdict(verdict, { json: false });
  return { stdout: out.join(""), stderr: err.join("") };
}

describe("verify-evidence's text output", () => {
  it("writes the evidence's control and format characters as \\u escapes, on stdout and in the error line", () => {
    const { stdout, stderr } = printed({
      valid: false,
      stage: "verify",
      code: "MAA_ISSUER_MISMATCH",
      reason: 'issuer: expected "a", found "\u001b]52;c;aGk=\u0007\nb"',
      tee: "azure-snp",
      simulated: null,
      ...EMPTY_EVIDENCE_FIELDS,
      details: { issuer: "evil\u202etxt.exe" },
      warnings: ["a \u009b2J warning"],
    } satisfies EvidenceVerdict);
    expect(stderr).toBe(
      'cloister: MAA_ISSUER_MISMATCH: issuer: expected "a", found "\\u001b]52;c;aGk=\\u0007\\u000ab"\n',
    );
    expect(stdout).toContain("  issuer           evil\\u202etxt.exe\n");
    expect(stdout).toContain("  WARNING: a \\u009b2J warning\n");
    for (const raw of ["\u001b", "\u009b", "\u202e"]) expect(stdout).not.toContain(raw);
  });
});
