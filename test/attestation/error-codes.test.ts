/**
 * Every error code the verifiers can throw — attestation/ (without the simulator, which only makes
 * test evidence) and sealed/ — is named by some test under test/. A check whose code no test names
 * can be deleted, or turned into `if (false)`, and every test still passes; this file fails instead,
 * naming the code. A code that no test can reach is listed in UNREACHABLE with the reason.
 *
 * A code is any upper-case identifier string literal in those sources (`"TDX_QE_DEBUG"`), except the
 * report-field names the parsers pass to their byte readers as labels (`r.u8(O.CURRENT_BUILD,
 * "CURRENT_BUILD")`, `f(584, 16, "TEE_TCB_SVN2")`).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const THIS_FILE = fileURLToPath(import.meta.url);

/** Codes no test can reach, each with why. Keep it short: a reachable code gets a test instead. */
const UNREACHABLE: Readonly<Record<string, string>> = {
  // attestation/document.ts names a failed appraisal by its first violation's code and falls back to
  // this one; appraise() reports a failure only with at least one violation.
  APPRAISAL_FAILED: "fallback for a failed appraisal without violations, which appraise() never returns",
  // attestation/roots/amd.ts checks its built-in AMD root PEM texts when the module loads: constants.
  PINNED_ROOT_INVALID: "guards the AMD roots compiled into the verifier, which tests cannot change",
  // attestation/cli.ts: the --tee option parser admits only the TEEs its switch handles.
  TEE_NOT_AVAILABLE: "default branch after --tee's own choice check, for a build that drops a TEE",
};

function tsFiles(dir: string, skip: (path: string) => boolean = () => false): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (skip(path)) return [];
    if (entry.isDirectory()) return tsFiles(path, skip);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

const LITERAL = /"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"/g;
/** A byte reader's label: the string after an `O.FIELD` or numeric offset (and length) argument. */
const READER_LABEL = /\(\s*(?:O\.\w+|\d+)\s*,\s*(?:\d+\s*,\s*)?"([A-Z][A-Z0-9_]*)"\s*\)/g;

/** code → the source files (repo paths) that name it. */
function verifierCodes(): Map<string, string[]> {
  const sources = [
    ...tsFiles(join(ROOT, "attestation"), (path) => path === join(ROOT, "attestation", "sim")),
    ...tsFiles(join(ROOT, "sealed")),
  ];
  expect(sources.length).toBeGreaterThan(40);
  const codes = new Map<string, string[]>();
  for (const file of sources) {
    const source = readFileSync(file, "utf8");
    const labels = new Set([...source.matchAll(READER_LABEL)].map((m) => m[1] as string));
    for (const [, code] of source.matchAll(LITERAL)) {
      if (code === undefined || labels.has(code)) continue;
      codes.set(code, [...new Set([...(codes.get(code) ?? []), relative(ROOT, file)])]);
    }
  }
  return codes;
}

/** The text of every test file (not this one, whose list names codes no test reaches). */
const testText = tsFiles(join(ROOT, "test"))
  .filter((file) => file !== THIS_FILE)
  .map((file) => readFileSync(file, "utf8"))
  .join("\n");
const namedByTests = (code: string) => new RegExp(`\\b${code}\\b`).test(testText);

describe("error codes of the verifiers", () => {
  const codes = verifierCodes();

  it("finds the codes, and only codes: well-known ones in, reader labels out", () => {
    expect(codes.size).toBeGreaterThan(200);
    for (const code of ["TDX_QE_DEBUG", "SNP_REPORT_SIGNATURE_INVALID", "CERT_NOT_CA", "FRAME_TAMPERED"]) {
      expect(codes.has(code), code).toBe(true);
    }
    for (const label of ["CURRENT_BUILD", "SIGNATURE_ALGO", "TEE_TCB_SVN2"])
      expect(codes.has(label), label).toBe(false);
  });

  it("are each named by a test, or listed as unreachable with a reason", () => {
    const untested = [...codes]
      .filter(([code]) => !namedByTests(code) && !(code in UNREACHABLE))
      .map(([code, files]) => `${code} (${files.join(", ")})`);
    expect(untested, "codes thrown by the verifiers that no test names: test them").toEqual([]);
  });

  it("lists as unreachable only codes that exist and that no test names", () => {
    for (const [code, reason] of Object.entries(UNREACHABLE)) {
      expect(codes.has(code), `${code} is no longer in the sources: remove it from UNREACHABLE`).toBe(true);
      expect(namedByTests(code), `${code} is tested now: remove it from UNREACHABLE`).toBe(false);
      expect(reason.length).toBeGreaterThan(20);
    }
  });
});
