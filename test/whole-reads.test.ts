/**
 * Files the product reads on a user's or an operator's behalf are read to a bound
 * (attestation/bounded-read.ts), never whole: a call that reads a file whole (readFile, readFileSync,
 * a handle's readFile) in any product folder is refused here unless listed below with why it is
 * left. The sources are parsed (TypeScript's parser), not read line by line: a call split over
 * lines is seen, and readFile or readFileSync used other than by calling it under its own name
 * (renamed in an import or a destructuring, passed on as to promisify, kept in a variable, named
 * by a string) is refused outright, since the calls made through it could not be seen. A new whole
 * read is one this test names.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/**
 * The `readFile(` calls left, each as its file and the text of its line (trimmed), with the reason:
 * a file is never exempt as a whole, so a new whole read beside a listed one is still named.
 */
const LEFT: readonly { readonly file: string; readonly line: string; readonly why: string }[] = [
  {
    file: "attestation/providers/azure-vtpm.ts",
    line: "return new Uint8Array(await readFile(path));",
    why: "tpm2-tools output in its own private temporary directory",
  },
  {
    file: "attestation/providers/configfs-tsm.ts",
    line: "const bytes = await fs.readFile(path, TSM_TEXT_MAX_BYTES);",
    why: "TsmFileSystem.readFile to its bound: a text attribute",
  },
  {
    file: "attestation/providers/configfs-tsm.ts",
    line: "bytes = new Uint8Array(await fs.readFile(path, TSM_BLOB_MAX_BYTES));",
    why: "TsmFileSystem.readFile to its bound: outblob or auxblob, twice the kernel's TSM_OUTBLOB_MAX",
  },
  {
    file: "attestation/providers/detect.ts",
    line: "return await nodeTsmFileSystem.readFile(path, bytes);",
    why: "TsmFileSystem.readFile to its bound: a page, or cpuinfo's start",
  },
  {
    file: "attestation/providers/detect.ts",
    line: 'const provider = attributeText(await fs.readFile(join(entry, "provider"), KERNEL_ATTRIBUTE_BYTES));',
    why: "TsmFileSystem.readFile to its bound: a page (KERNEL_ATTRIBUTE_BYTES)",
  },
  {
    file: "enclave/measure.ts",
    line: "bytes = new Uint8Array(await readFile(join(root, path)));",
    why: "the enclave's own .ts and .json sources, hashed for the measurement: not a user's file",
  },
  {
    file: "bin/cloister.js",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the source line as written, not a template
    line: 'return readFileSync(`/proc/${pid}/stat`, "utf8");',
    why: "/proc/PID/stat, which the kernel writes and caps at a page",
  },
  {
    file: "models/process-owner.ts",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the source line as written, not a template
    line: 'text = await readFile(`/proc/${pid}/stat`, "utf8");',
    why: "/proc/PID/stat, which the kernel writes and caps at a page",
  },
];

/** Every folder of the product (scripts/ and test/ are not the product). */
const PRODUCT = ["client", "host", "attestation", "enclave", "manifests", "models", "sealed", "bin"];

/** The functions that read a file whole: fs's readFile and readFileSync, a FileHandle's readFile. */
const WHOLE_READ_NAMES: ReadonlySet<string> = new Set(["readFile", "readFileSync"]);

/**
 * How the name is used: `call`, a call (`readFile(…)`, `fs.readFile(…)`, over lines or not);
 * `name`, its own name given to an import, a destructured binding or a declared member (an
 * interface's bounded readFile, an object's), whose calls are then seen; `other`, anything else.
 */
function use(node: ts.Identifier | ts.StringLiteralLike): "call" | "name" | "other" {
  if (!ts.isIdentifier(node)) return "other"; // fs["readFile"]
  const parent = node.parent;
  const callee = ts.isPropertyAccessExpression(parent) && parent.name === node ? parent : node;
  if (ts.isCallExpression(callee.parent) && callee.parent.expression === callee) return "call";
  if ((ts.isImportSpecifier(parent) || ts.isBindingElement(parent)) && parent.propertyName === undefined) return "name";
  const member =
    ts.isMethodSignature(parent) ||
    ts.isPropertySignature(parent) ||
    ts.isMethodDeclaration(parent) ||
    ts.isPropertyAssignment(parent);
  return member && parent.name === node ? "name" : "other";
}

/**
 * The code's (not the comments') mentions of readFile and readFileSync in `text`, each as
 * `file: its line, trimmed`: the calls, and the other uses (see `use`).
 */
function wholeReads(file: string, text: string): { calls: string[]; other: string[] } {
  const kind = file.endsWith(".js") ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, kind);
  const lines = text.split("\n");
  const found = { calls: [] as string[], other: [] as string[] };
  const visit = (node: ts.Node): void => {
    if ((ts.isIdentifier(node) || ts.isStringLiteralLike(node)) && WHOLE_READ_NAMES.has(node.text)) {
      const how = use(node);
      const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
      if (how !== "name") found[how === "call" ? "calls" : "other"].push(`${file}: ${lines[line]?.trim()}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return /\.(?:ts|js)$/.test(entry.name) ? [path] : [];
  });
}

describe("no whole-file reads", () => {
  const files = PRODUCT.flatMap((dir) => tsFiles(join(ROOT, dir))).map((file) => relative(ROOT, file));
  const found = files.map((file) => wholeReads(file, readFileSync(join(ROOT, file), "utf8")));

  it("sees each form of a whole read, and refuses each use it could not follow", () => {
    const seen = (text: string) => wholeReads("x.ts", text);
    // Each call named by the line its name is on.
    for (const [text, line] of [
      ["await readFile(path)", "await readFile(path)"],
      ["readFileSync(path)", "readFileSync(path)"],
      ["await handle.readFile()", "await handle.readFile()"],
      ['await fs.readFile(path, "utf8")', 'await fs.readFile(path, "utf8")'],
      ["await fs\n  .readFile(path)", ".readFile(path)"],
      ["readFileSync\n  (path)", "readFileSync"],
      ["fs.readFile?.(path)", "fs.readFile?.(path)"],
    ] as const) {
      expect(seen(text), text).toEqual({ calls: [`x.ts: ${line}`], other: [] });
    }
    for (const text of [
      'import { readFile as slurp } from "node:fs/promises";',
      "import { readFileSync as slurp } from 'node:fs';",
      'const { readFile: slurp } = await import("node:fs/promises");',
      "const slurp = promisify(readFile);",
      "const slurp = promisify(fs.readFile);",
      "const slurp = fs.readFileSync;",
      'await fs["readFile"](path);',
      "const io = { readFile };",
      'export { readFile } from "node:fs/promises";',
    ]) {
      expect(seen(text), text).toEqual({ calls: [], other: [`x.ts: ${text}`] });
    }
    for (const text of [
      'import { readFile } from "node:fs/promises";',
      "const { readFile } = fs;",
      "interface Fs { readFile(path: string, maxBytes: number): Promise<Uint8Array> }",
      "const fs: Fs = { readFile: async (path, maxBytes) => bounded(path, maxBytes) };",
      "// readFile(path) in a comment, and /* readFileSync(path) */",
      'const text = "a string that says readFile(path)";',
    ]) {
      expect(seen(text), text).toEqual({ calls: [], other: [] });
    }
  });

  it("no product file uses readFile or readFileSync but by calling it under its own name", () => {
    expect(found.flatMap(({ other }) => other)).toEqual([]);
  });

  it("the product's folders read no file whole but by the calls listed", () => {
    expect(files.length).toBeGreaterThan(50);
    // Every call found is listed, and every one listed is still there (a fixed one leaves the list);
    // a second call on a line like a listed one is counted, not taken as the same.
    const calls = found.flatMap(({ calls }) => calls);
    expect(calls.sort()).toEqual(LEFT.map(({ file, line }) => `${file}: ${line}`).sort());
  });
});
