/**
 * The repository's import graph as the architecture tests read it (test/sealed/boundary.test.ts,
 * test/layout.test.ts): static, re-export and dynamic imports, found by their specifier text.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** The .ts files under `dir`; a directory that cannot be read fails the test (never an empty list). */
export function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

export function importsOf(file: string): string[] {
  const source = readFileSync(file, "utf8");
  return [...source.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1]!);
}

/** Every specifier reachable from `file` through relative imports (files as repo paths). */
export function closure(file: string, seen = new Set<string>()): Set<string> {
  for (const specifier of importsOf(file)) {
    if (!specifier.startsWith(".")) {
      seen.add(specifier);
      continue;
    }
    const target = resolve(dirname(file), specifier);
    const key = relative(ROOT, target);
    if (seen.has(key)) continue;
    seen.add(key);
    closure(target, seen);
  }
  return seen;
}

/** The relative imports of `files` whose target lies under one of `targets` (top-level folders), as
 * sorted, distinct "from -> to" repo paths. */
export function importEdges(files: string[], targets: string[]): string[] {
  const edges = files.flatMap((file) =>
    importsOf(file)
      .filter((s) => s.startsWith("."))
      .map((s) => relative(ROOT, resolve(dirname(file), s)))
      .filter((target) => targets.some((folder) => target.startsWith(`${folder}/`)))
      .map((target) => `${relative(ROOT, file)} -> ${target}`),
  );
  return [...new Set(edges)].sort();
}
