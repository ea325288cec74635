/**
 * verify-evidence's `--at` hint on an expiry (printVerdict, in process): every code of something
 * past its validity at the verification time points to `--at` when none was given.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { EMPTY_EVIDENCE_FIELDS, type EvidenceVerdict, printVerdict } from "../../attestation/verify-evidence-cli.ts";

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

/** What printVerdict writes to stderr for a refusal with `code`, with or without `--at`. */
function errorLine(code: string, at: Date | undefined): string {
  const verdict = {
    valid: false,
    stage: "verify",
    code,
    reason: "expired",
    tee: "tdx",
    simulated: null,
    ...EMPTY_EVIDENCE_FIELDS,
  } satisfies EvidenceVerdict;
  const written: string[] = [];
  vi.spyOn(process.stdout, "write").mockImplementation(() => true);
  vi.spyOn(process.stderr, "write").mockImplementation((text) => {
    written.push(String(text));
    return true;
  });
  printVerdict(verdict, { json: false, at });
  return written.join("");
}

describe("verify-evidence's --at hint", () => {
  it("is given for a collateral signer expired at now (the default strict rule checks it at --at)", () => {
    expect(errorLine("COLLATERAL_SIGNER_EXPIRED", undefined)).toBe(
      "cloister: COLLATERAL_SIGNER_EXPIRED: expired; for evidence captured earlier, pass --at with a time it was valid\n",
    );
    expect(errorLine("COLLATERAL_SIGNER_EXPIRED", new Date("2025-01-01T00:00:00Z"))).toBe(
      "cloister: COLLATERAL_SIGNER_EXPIRED: expired\n",
    );
  });
});
