/**
 * verify-evidence's `--at` hints (printVerdict, in process): every code of something past its
 * validity at the verification time points to `--at` when none was given; every code of something
 * not yet valid at it says what that usually means (a wrong clock without `--at`, an `--at` before
 * the evidence's time with it), never that the refusal can be waved away.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { EMPTY_EVIDENCE_FIELDS, type EvidenceVerdict, printVerdict } from "../../attestation/verify-evidence-cli.ts";

afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

/** What printVerdict writes to stderr for a refusal with `code`, with or without `--at`. */
function errorLine(code: string, at: Date | undefined, reason = "expired"): string {
  const verdict = {
    valid: false,
    stage: "verify",
    code,
    reason,
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
  const SIGNER_REMEDY =
    "put the re-issued TCB signing certificate's chain in the --collateral folder, or pass --collateral-signer-validity accept-expired-signer knowingly";
  it("is given for a collateral signer expired at now (the default strict rule checks it at --at), with its remedies", () => {
    expect(errorLine("COLLATERAL_SIGNER_EXPIRED", undefined)).toBe(
      `cloister: COLLATERAL_SIGNER_EXPIRED: expired; for evidence captured earlier, pass --at with a time it was valid; otherwise ${SIGNER_REMEDY}\n`,
    );
    // With --at, the remedies alone: no other time is suggested.
    expect(errorLine("COLLATERAL_SIGNER_EXPIRED", new Date("2025-01-01T00:00:00Z"))).toBe(
      `cloister: COLLATERAL_SIGNER_EXPIRED: expired; ${SIGNER_REMEDY}\n`,
    );
  });

  it("names current collateral or --accept-stale-collateral for a stale CRL or collateral, with --at as without", () => {
    const remedy =
      "get current collateral from Intel PCS for that time, or pass --accept-stale-collateral to accept it and report it stale";
    for (const code of ["CRL_EXPIRED", "COLLATERAL_EXPIRED"]) {
      expect(errorLine(code, new Date("2025-01-01T00:00:00Z"))).toBe(`cloister: ${code}: expired; ${remedy}\n`);
      expect(errorLine(code, undefined)).toBe(
        `cloister: ${code}: expired; for evidence captured earlier, pass --at with a time it was valid; otherwise ${remedy}\n`,
      );
    }
  });

  const NOT_YET_VALID = [
    "CERT_NOT_YET_VALID",
    "CRL_NOT_YET_VALID",
    "COLLATERAL_NOT_YET_VALID",
    "MAA_SIGNING_CERT_NOT_YET_VALID",
    "MAA_TOKEN_NOT_YET_VALID",
  ];

  it("says, for something not yet valid at now, that the clock may be wrong", () => {
    for (const code of NOT_YET_VALID) {
      expect(errorLine(code, undefined, "not yet valid")).toBe(
        `cloister: ${code}: not yet valid; the verification time is now by this machine's clock: if the clock is wrong, correct it or pass --at with the correct time\n`,
      );
    }
  });

  it("says, for something not yet valid at --at, that --at is before it became valid", () => {
    for (const code of NOT_YET_VALID) {
      expect(errorLine(code, new Date("2023-01-01T00:00:00Z"), "not yet valid")).toBe(
        `cloister: ${code}: not yet valid; --at is before it became valid: to check evidence as of a past time, pass an --at at which it was already valid\n`,
      );
    }
  });

  it("gives no hint for collateral issued before its signer was certified: no --at makes it valid", () => {
    expect(errorLine("COLLATERAL_SIGNER_NOT_YET_VALID", undefined, "backdated")).toBe(
      "cloister: COLLATERAL_SIGNER_NOT_YET_VALID: backdated\n",
    );
    expect(errorLine("COLLATERAL_SIGNER_NOT_YET_VALID", new Date("2025-01-01T00:00:00Z"), "backdated")).toBe(
      "cloister: COLLATERAL_SIGNER_NOT_YET_VALID: backdated\n",
    );
  });
});
