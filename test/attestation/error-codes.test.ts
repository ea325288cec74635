/**
 * Every error code the verifiers can throw — attestation/ (without the simulator, which only makes
 * test evidence) and sealed/ — is named by some test under test/, in its code (a comment does not
 * count: withoutComments). A check whose code no test names can be deleted, or turned into
 * `if (false)`, and every test still passes; this file fails instead, naming the code. A code that no test can reach is listed in UNREACHABLE with the reason.
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

/**
 * `source` without its comments (`// …` and `/* … *\/`), each replaced by a space: a code a test
 * names only in a comment is not tested. String, template and regular-expression literals are kept
 * whole (`"http://…"` holds no comment). A `/` is taken for a regular expression where an operand
 * is expected (after one of `(,=:[!&|?{};>`, a keyword such as `return`, or at the start); a
 * string or regular expression ends at its line's end at the latest, so a misread costs a line,
 * never the rest of the file. A misread can go either way (a regular expression after `if (…)`
 * read as a division, with a quote in it, keeps the rest of its line, comment included), so no
 * test file writes one that way.
 */
function withoutComments(source: string): string {
  const OPERAND_BEFORE =
    /(?:^\s*|[(,=:[!&|?{};>]\s*|\b(?:return|typeof|case|do|else|in|of|void|delete|throw|new|yield|await)\s+)$/;
  let out = "";
  let i = 0;
  /** Copies the literal that starts at i and ends at `close` (not escaped), or at the line's end. */
  const literal = (close: string, multiline: boolean) => {
    let inClass = false;
    let j = i + 1;
    for (; j < source.length; j++) {
      const c = source[j];
      if (c === "\\") j++;
      else if (c === "\n" && !multiline) break;
      else if (close === "/" && (c === "[" || c === "]")) inClass = c === "[";
      else if (c === close && !inClass) break;
    }
    out += source.slice(i, j + 1);
    i = j + 1;
  };
  while (i < source.length) {
    const c = source[i] as string;
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      const end = source.indexOf("\n", i);
      i = end === -1 ? source.length : end;
      out += " ";
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      i = end === -1 ? source.length : end + 2;
      out += " ";
    } else if (c === '"' || c === "'") literal(c, false);
    else if (c === "`") literal(c, true);
    else if (c === "/" && OPERAND_BEFORE.test(out.slice(-200))) literal(c, false);
    else {
      out += c;
      i++;
    }
  }
  return out;
}

/** The text of every test file without its comments (not this file, whose list names codes no test reaches). */
const testText = tsFiles(join(ROOT, "test"))
  .filter((file) => file !== THIS_FILE)
  .map((file) => withoutComments(readFileSync(file, "utf8")))
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

  it("counts a code named in a test's code, not one named only in a comment", () => {
    const source = [
      "// CODE_IN_LINE_COMMENT",
      "/** CODE_IN_BLOCK",
      " * COMMENT */ f(); /* CODE_AFTER */",
      'expect(x).toBe("CODE_IN_STRING"); // CODE_TRAILING',
      'fetch("http://127.0.0.1/CODE_AFTER_URL");',
      "const t = `//CODE_IN_TEMPLATE\n//STILL_IN_TEMPLATE`;",
      'expect(y).toMatch(/"\\/\\/CODE_IN_REGEX/); const z = a / b; // CODE_AFTER_DIVISION',
      "function f(s) { return /it's/.test(s); } // CODE_AFTER_RETURNED_REGEX",
      "KEPT_AFTER_ALL",
    ].join("\n");
    const kept = withoutComments(source);
    const inCode = ["CODE_IN_STRING", "CODE_AFTER_URL", "CODE_IN_TEMPLATE", "STILL_IN_TEMPLATE", "CODE_IN_REGEX"];
    for (const code of [...inCode, "KEPT_AFTER_ALL"]) expect(kept, code).toContain(code);
    for (const code of ["CODE_IN_LINE_COMMENT", "CODE_IN_BLOCK", "COMMENT", "CODE_AFTER", "CODE_TRAILING"])
      expect(kept, code).not.toMatch(new RegExp(`\\b${code}\\b`));
    expect(kept).not.toContain("CODE_AFTER_DIVISION");
    expect(kept).not.toContain("CODE_AFTER_RETURNED_REGEX");
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
