/**
 * README's "Auditing the verification code" lists the files a client's trust rests on and says that
 * nothing else computes or checks a signature, a digest binding or a certificate; it then names the
 * files that use cryptography for something no client's trust rests on. A reviewer reads only what
 * it names, so: every file it names exists, and every source file (outside test/, scripts/ and the
 * simulator, attestation/sim/) that reaches a cryptographic primitive is named there. Before, the
 * enclave's model digest check (enclave/engine.ts, model-staging.ts), its X25519 (enclave/x25519.ts)
 * and the host's audit record signatures (host/audit-record-check.ts) were not.
 *
 * "Reaches a cryptographic primitive": imports node:crypto (other than its random numbers),
 * tweetnacl, @noble/*, jose (other than base64url), or the primitives of attestation/crypto.ts and
 * sealed/crypto.ts (other than randomBytes and constants), or a parse/verify/check function of
 * attestation/x509.ts; or uses WebCrypto (`subtle`) or node:crypto through getBuiltinModule.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.ts";

const SECTION_START = "## Auditing the verification code";

function section(): string {
  const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
  const from = readme.indexOf(SECTION_START);
  const to = readme.indexOf("\n## ", from + SECTION_START.length);
  if (from < 0 || to < 0) throw new Error(`README.md: expected a section "${SECTION_START}"`);
  return readme.slice(from, to);
}

/** The .ts files under `dir` (repository-relative, '/'-separated). */
function tsFilesUnder(dir: string): string[] {
  return readdirSync(join(REPO_ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = posix.join(dir, entry.name);
    if (entry.isDirectory()) return tsFilesUnder(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/**
 * The files the section names in backquotes: a path with a '/', a folder (`dir/`) or `dir/*.ts` as
 * its .ts files, and a bare file name as the file of that name in the folder of the path before it
 * in the same table cell or sentence (`attestation/tdx/parse.ts`, `verify.ts`).
 */
function namedFiles(text: string): { named: Set<string>; missing: string[] } {
  const named = new Set<string>();
  const missing: string[] = [];
  for (const part of text.split(/\||\. |\n\n/)) {
    let folder: string | null = null;
    for (const [, token] of part.matchAll(/`(\w[\w./*-]*)`/g)) {
      const name = token as string;
      let files: string[];
      if (name.endsWith("/") || name.endsWith("/*.ts")) {
        const dir = name.endsWith("/") ? name.slice(0, -1) : name.slice(0, -"/*.ts".length);
        files = existsSync(join(REPO_ROOT, dir)) ? tsFilesUnder(dir) : [];
        folder = dir;
        if (files.length === 0) missing.push(name);
      } else if (/\.(ts|md|js)$/.test(name)) {
        const path = name.includes("/") ? name : folder === null ? name : posix.join(folder, name);
        if (name.includes("/")) folder = dirname(path);
        files = [path];
        if (!existsSync(join(REPO_ROOT, path)) || !statSync(join(REPO_ROOT, path)).isFile()) missing.push(path);
      } else {
        continue;
      }
      for (const file of files) named.add(file);
    }
  }
  return { named, missing };
}

const RANDOM_ONLY = new Set(["randomBytes", "randomInt", "randomUUID", "getRandomValues"]);

/** The non-type names an import statement's clause brings in (default, namespace or named). */
function importedNames(clause: string): string[] {
  if (/^type\s/.test(clause)) return [];
  const names: string[] = [];
  const braces = /\{([^}]*)\}/.exec(clause);
  if (braces !== null) {
    for (const item of (braces[1] as string).split(",")) {
      const spec = item.trim();
      if (spec === "" || spec.startsWith("type ")) continue;
      names.push(spec.split(/\s+as\s+/)[0] as string);
    }
  }
  const outside = clause
    .replace(/\{[^}]*\}/, "")
    .replace(/,/g, " ")
    .trim();
  if (outside !== "") names.push(outside);
  return names;
}

/** Why `file` reaches a cryptographic primitive, or null when it does not. */
function cryptoUse(file: string): string | null {
  const source = readFileSync(join(REPO_ROOT, file), "utf8");
  if (/\bsubtle\b/.test(source.replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, ""))) return "WebCrypto (subtle)";
  if (/getBuiltinModule\?*\.?\(\s*"node:crypto"/.test(source)) return "node:crypto (getBuiltinModule)";
  for (const [, clause, from] of source.matchAll(/^import\s+([\s\S]*?)\s+from\s+"([^"]+)";/gm)) {
    const names = importedNames(clause as string);
    const specifier = from as string;
    const uses = (keep: (name: string) => boolean) => names.filter(keep);
    let found: string[] = [];
    if (specifier === "node:crypto") found = uses((n) => !RANDOM_ONLY.has(n));
    else if (specifier === "tweetnacl" || specifier.startsWith("@noble/")) found = names;
    else if (specifier === "jose") found = uses((n) => n !== "base64url");
    else if (/(^|\/)(attestation\/)?crypto\.ts$/.test(specifier) || /(^|\/)sealed\/crypto\.ts$/.test(specifier)) {
      found = uses((n) => !RANDOM_ONLY.has(n) && !/^[A-Z0-9_]+$/.test(n));
    } else if (/(^|\/)x509\.ts$/.test(specifier)) found = uses((n) => /^(parse|verify|check)/.test(n));
    if (found.length > 0) return `${found.join(", ")} from ${specifier}`;
  }
  return null;
}

/** The source files whose cryptography the section must account for. */
function sourceFiles(): string[] {
  const folders = readdirSync(REPO_ROOT, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && !["test", "scripts", "node_modules", "docs"].includes(entry.name))
    .filter((entry) => !entry.name.startsWith("."))
    .map((entry) => entry.name);
  return folders.flatMap(tsFilesUnder).filter((file) => !file.startsWith("attestation/sim/"));
}

describe("README: Auditing the verification code", () => {
  const text = section();
  const { named, missing } = namedFiles(text);

  it("names files that exist", () => {
    expect(named.size).toBeGreaterThan(40);
    expect(missing).toEqual([]);
  });

  it("names every source file that reaches a cryptographic primitive", () => {
    const found = sourceFiles().map((file) => ({ file, use: cryptoUse(file) }));
    // The scan finds what it looks for (so an empty list below means something).
    expect(found.find((f) => f.file === "attestation/crypto.ts")?.use).toBe("WebCrypto (subtle)");
    expect(found.find((f) => f.file === "sealed/receipt.ts")?.use).not.toBeNull();
    const unnamed = found.filter((f) => f.use !== null && !named.has(f.file)).map((f) => `${f.file}: ${f.use}`);
    expect(unnamed).toEqual([]);
  });
});
