/**
 * docs/errors.md against the source. Every error code the product code (attestation/, sealed/,
 * enclave/, host/, client/, manifests/, models/; not test/ or scripts/) throws or constructs must be
 * documented there, and every code a table of the docs lists in its code column must be one the
 * source has.
 *
 * A code is found where the source hands it to an error, by the TypeScript checker: a string
 * literal of code shape (`SNP_REPORT_SIZE`, `USAGE`) passed to a parameter named `code`, `error`
 * (an audit record's or a frame's error code), `fallback` (errorCode's) or `…Code` — which covers
 * `new ParseError("X", …)`, `new HostError("X", 503, …)` and helpers such as `fail("X", …)`,
 * `transportError("X", …)`, `errorJson("X", …)` whatever their position of the code —, a property
 * `code: "X"` / `error: "X"`, a class field `readonly code = "X"`, an assignment `x.code = "X"`, a
 * variable `code = "X"`, a parameter default `code = "X"`, the members of a type that lists codes
 * (`type SealedErrorCode = "A" | "B"`, `readonly code: "A" | "B"`), each through `a ? "X" : "Y"`,
 * `x ?? "X"` and `x || "X"`. A code built from a template (`HTTP_${status}`) is allowed only when
 * DYNAMIC below names what the docs must say for it.
 */

import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { AuditRecordInvalidError } from "../../enclave/pipeline/errors.ts";
import { REPO_ROOT } from "../helpers/cli.ts";

const SOURCE_DIRS = ["attestation", "sealed", "enclave", "host", "client", "manifests", "models"];
const DOCS = join(REPO_ROOT, "docs", "errors.md");

/** Upper-case words joined by `_`, as every code is. */
const CODE_SHAPE = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$/;
/** Names of the parameters, properties and variables that hold an error code. */
const CODE_NAME = /^(?:code|error|fallback)$|Code$/;

/**
 * Codes the source builds from a template, by the template's text: what docs/errors.md must
 * mention for each (the codes it can make, or the documented pattern).
 */
const DYNAMIC: Readonly<Record<string, readonly string[]>> = {
  // attestation/document.ts verifyJws: stage is "document" or "nonce".
  "`${stage.toUpperCase()}_MALFORMED`": ["DOCUMENT_MALFORMED", "NONCE_MALFORMED"],
  // client/sdk.ts errorBody: a host's HTTP error without a code of its own.
  "`HTTP_${status}`": ["HTTP_<status>"],
};

/**
 * Codes listed in the docs that the scan cannot see, each with the file that holds it: the
 * bundle's guard is source text that client/web/bundle.ts writes into the browser bundle.
 */
const GENERATED: Readonly<Record<string, string>> = {
  SIMULATOR_NOT_IN_BUILD: "client/web/bundle.ts",
};

interface Scan {
  /** Each code with where it was found (`path:line`). */
  readonly codes: ReadonlyMap<string, readonly string[]>;
  /** Template literals in a code's place, as written, with where. */
  readonly dynamic: readonly { readonly text: string; readonly where: string }[];
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [path] : [];
  });
}

/** Goes up from a literal through the expressions that pass it on unchanged (`a ? X : Y`, `x ?? X`). */
function carrier(node: ts.Node): ts.Node {
  let current = node;
  for (;;) {
    const parent = current.parent;
    const passesOn =
      ts.isParenthesizedExpression(parent) ||
      ts.isAsExpression(parent) ||
      ts.isSatisfiesExpression(parent) ||
      (ts.isConditionalExpression(parent) && parent.condition !== current) ||
      (ts.isBinaryExpression(parent) &&
        (parent.operatorToken.kind === ts.SyntaxKind.QuestionQuestionToken ||
          parent.operatorToken.kind === ts.SyntaxKind.BarBarToken));
    if (!passesOn) return current;
    current = parent;
  }
}

/** Whether the value `expr` is put where a code goes. */
function inCodePlace(expr: ts.Node, checker: ts.TypeChecker): boolean {
  const parent = expr.parent;
  if ((ts.isCallExpression(parent) || ts.isNewExpression(parent)) && parent.arguments !== undefined) {
    const index = parent.arguments.indexOf(expr as ts.Expression);
    if (index < 0) return false;
    const parameters = checker.getResolvedSignature(parent)?.getParameters() ?? [];
    const parameter = parameters[Math.min(index, parameters.length - 1)];
    return parameter !== undefined && CODE_NAME.test(parameter.getName());
  }
  if (
    (ts.isPropertyAssignment(parent) ||
      ts.isPropertyDeclaration(parent) ||
      ts.isVariableDeclaration(parent) ||
      ts.isParameter(parent)) &&
    parent.initializer === expr
  ) {
    return CODE_NAME.test(parent.name.getText());
  }
  if (
    ts.isBinaryExpression(parent) &&
    parent.operatorToken.kind === ts.SyntaxKind.EqualsToken &&
    parent.right === expr &&
    ts.isPropertyAccessExpression(parent.left)
  ) {
    return CODE_NAME.test(parent.left.name.text);
  }
  return false;
}

/** Whether a literal type is a member of a type that lists codes (`type XCode = "A" | "B"`, `code: "A" | "B"`). */
function inCodeType(literal: ts.LiteralTypeNode): boolean {
  let node: ts.Node = literal;
  while (ts.isUnionTypeNode(node.parent) || ts.isParenthesizedTypeNode(node.parent)) node = node.parent;
  const owner = node.parent;
  if (ts.isTypeAliasDeclaration(owner)) return CODE_NAME.test(owner.name.text);
  if (ts.isPropertySignature(owner) || ts.isPropertyDeclaration(owner) || ts.isParameter(owner)) {
    return owner.type === node && CODE_NAME.test(owner.name.getText());
  }
  return false;
}

function scanErrorCodes(files: readonly string[], options: ts.CompilerOptions, root: string): Scan {
  const program = ts.createProgram(files, { ...options, noEmit: true });
  const checker = program.getTypeChecker();
  const wanted = new Set(files);
  const codes = new Map<string, string[]>();
  const dynamic: { text: string; where: string }[] = [];
  for (const source of program.getSourceFiles()) {
    if (!wanted.has(source.fileName)) continue;
    const where = (node: ts.Node) =>
      `${relative(root, source.fileName)}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
    const visit = (node: ts.Node): void => {
      if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && CODE_SHAPE.test(node.text)) {
        const found = ts.isLiteralTypeNode(node.parent) ? inCodeType(node.parent) : inCodePlace(carrier(node), checker);
        if (found) codes.set(node.text, [...(codes.get(node.text) ?? []), where(node)]);
      } else if (ts.isTemplateExpression(node) && inCodePlace(carrier(node), checker)) {
        dynamic.push({ text: node.getText(source), where: where(node) });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return { codes, dynamic };
}

function projectOptions(): ts.CompilerOptions {
  const config = ts.readConfigFile(join(REPO_ROOT, "tsconfig.json"), ts.sys.readFile);
  return ts.parseJsonConfigFileContent(config.config, ts.sys, REPO_ROOT).options;
}

/** Every code-shaped word inside a `code span` of the docs (`HTTP_<status>` kept whole). */
function documentedTokens(markdown: string): Set<string> {
  const tokens = new Set<string>();
  for (const [, span] of markdown.matchAll(/`([^`\n]+)`/g)) {
    for (const [token] of (span as string).matchAll(/(?<![\w<>])[A-Z][A-Z0-9]*(?:_(?:[A-Z0-9]+|<[a-z]+>))*(?![\w<>])/g))
      tokens.add(token);
  }
  return tokens;
}

/** The code-shaped words of the code column of every table whose header names one (`code`, `typical codes`). */
function tableCodes(markdown: string): { code: string; line: number; wildcard: boolean }[] {
  const out: { code: string; line: number; wildcard: boolean }[] = [];
  let columns: number[] | null = null;
  for (const [index, line] of markdown.split("\n").entries()) {
    if (!line.startsWith("|")) {
      columns = null;
      continue;
    }
    const cells = line.slice(1, line.trimEnd().endsWith("|") ? line.trimEnd().length - 1 : undefined).split("|");
    if (columns === null) {
      columns = cells.flatMap((cell, i) => (/^\s*(?:code|typical codes)\s*$/.test(cell) ? [i] : []));
      continue;
    }
    if (/^[\s|:-]+$/.test(line)) continue;
    for (const column of columns) {
      for (const [, span] of (cells[column] ?? "").matchAll(/`([^`]+)`/g)) {
        for (const [token] of (span as string).matchAll(/(?<!\w)[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*(?:_\*)?(?![\w*])/g)) {
          const wildcard = token.endsWith("_*");
          out.push({ code: wildcard ? token.slice(0, -1) : token, line: index + 1, wildcard });
        }
      }
    }
  }
  return out;
}

describe("the error-code scan", () => {
  it("finds codes in each place the source puts one, and nothing else", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-codes-"));
    try {
      const file = join(dir, "sample.ts");
      await writeFile(
        file,
        [
          'type SampleCode = "IN_TYPE_ALIAS" | "IN_TYPE_ALIAS_2";',
          "class SampleError extends Error {",
          '  readonly code: "IN_FIELD_TYPE" | "IN_FIELD_TYPE_2";',
          "  constructor(readonly status: number, code: SampleCode | string, message: string) { super(message); }",
          "}",
          'class FixedError extends Error { readonly code = "CLASS_FIELD"; }',
          "function fail(where: string, code: string): never { throw new SampleError(500, code, where); }",
          'function withDefault(message: string, code = "PARAMETER_DEFAULT") { return new SampleError(1, code, message); }',
          "function record(field: string, error: string | null) { return { field, error }; }",
          "export function sample(flag: boolean, x: { code?: string; dataset: { code: string } }, status: number) {",
          '  if (flag) throw new SampleError(400, "NEW_ARGUMENT", "m");',
          '  fail("FIELD_NAME_NOT_A_CODE", flag ? "CONDITIONAL_A" : "CONDITIONAL_B");',
          '  const code = x.code ?? "NULLISH_FALLBACK";',
          '  const other = { code: "OBJECT_PROPERTY", field: "NOT_A_CODE_PROPERTY" };',
          '  x.dataset.code = "ASSIGNED";',
          '  record("NOT_A_CODE_FIELD", "ERROR_ARGUMENT");',
          '  if (x.code === "COMPARED_ONLY") return;',
          // biome-ignore lint/suspicious/noTemplateCurlyInString: source text holding a template literal
          "  fail(`where`, `HTTP_${status}`);",
          "  return [code, other, withDefault, FixedError];",
          "}",
        ].join("\n"),
      );
      const scan = scanErrorCodes([file], { strict: true, target: ts.ScriptTarget.ES2022 }, dir);
      expect([...scan.codes.keys()].sort()).toEqual(
        [
          "IN_TYPE_ALIAS",
          "IN_TYPE_ALIAS_2",
          "IN_FIELD_TYPE",
          "IN_FIELD_TYPE_2",
          "CLASS_FIELD",
          "PARAMETER_DEFAULT",
          "NEW_ARGUMENT",
          "CONDITIONAL_A",
          "CONDITIONAL_B",
          "NULLISH_FALLBACK",
          "OBJECT_PROPERTY",
          "ASSIGNED",
          "ERROR_ARGUMENT",
        ].sort(),
      );
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the template literal's source text
      expect(scan.dynamic.map((d) => d.text)).toEqual(["`HTTP_${status}`"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("docs/errors.md", () => {
  const files = SOURCE_DIRS.flatMap((dir) => tsFiles(join(REPO_ROOT, dir)));
  const scan = scanErrorCodes(files, projectOptions(), REPO_ROOT);
  const markdown = readFileSync(DOCS, "utf8");
  const documented = documentedTokens(markdown);

  it("the scan sees the source's codes (a scan that finds nothing would pass the checks below)", () => {
    expect(scan.codes.size).toBeGreaterThan(300);
    for (const code of [
      "SNP_REPORT_SIZE",
      "USAGE",
      "HOST_TIMEOUT",
      "CLIENT_ABORTED",
      "INFERENCE_FAILED",
      "GGUF_BAD_MAGIC",
    ])
      expect(scan.codes.has(code), code).toBe(true);
  });

  it("documents every error code the source throws or constructs", () => {
    const missing = [...scan.codes]
      .filter(([code]) => !documented.has(code))
      .map(([code, where]) => `${code} (${where.slice(0, 3).join(", ")})`)
      .sort();
    expect(missing, `codes not in docs/errors.md:\n${missing.join("\n")}\n`).toEqual([]);
  });

  it("documents each code the source builds from a template, and knows every such template", () => {
    const unknown = scan.dynamic.filter((d) => DYNAMIC[d.text] === undefined).map((d) => `${d.text} (${d.where})`);
    expect(unknown, "templates in a code's place: add them to DYNAMIC with what the docs say").toEqual([]);
    const undocumented = Object.values(DYNAMIC)
      .flat()
      .filter((token) => !documented.has(token));
    expect(undocumented).toEqual([]);
    // An entry whose template is gone from the source must go too.
    const stale = Object.keys(DYNAMIC).filter((text) => !scan.dynamic.some((d) => d.text === text));
    expect(stale).toEqual([]);
  });

  it("lists in its code columns only codes the source has", () => {
    const known = new Set([...scan.codes.keys(), ...Object.values(DYNAMIC).flat()]);
    const listed = tableCodes(markdown);
    expect(listed.length).toBeGreaterThan(300);
    const unknown = listed
      .filter(({ code, wildcard }) =>
        wildcard ? ![...known].some((k) => k.startsWith(code)) : !known.has(code) && GENERATED[code] === undefined,
      )
      .map(({ code, line }) => `${code} (docs/errors.md:${line})`);
    expect(unknown).toEqual([]);
    for (const [code, file] of Object.entries(GENERATED)) {
      expect(readFileSync(join(REPO_ROOT, file), "utf8")).toContain(`"${code}"`);
    }
  });
});

/**
 * Each command that reads a model file through the GGUF reader (every code models/gguf-read.ts
 * throws reaches its user) or refuses a sealed model (MODEL_SEALED), by the call that proves it: a
 * command that stops making that call fails here first, and is taken out.
 */
const MODEL_READERS: readonly { command: string; file: string; call: string; codes: "GGUF reader" | "MODEL_SEALED" }[] =
  [
    { command: "inspect", file: "models/inspect.ts", call: "readGgufHandle(", codes: "GGUF reader" },
    { command: "seal", file: "attestation/kbs/cli-impl.ts", call: "summarizeModelHandle(", codes: "GGUF reader" },
    { command: "inspect", file: "models/inspect.ts", call: "refuseSealedModelHandle(", codes: "MODEL_SEALED" },
    { command: "seal", file: "attestation/kbs/cli-impl.ts", call: "summarizeModelHandle(", codes: "MODEL_SEALED" },
    { command: "run", file: "models/cli.ts", call: "refuseSealedModel(", codes: "MODEL_SEALED" },
  ];

/** The where column of each row of docs/errors.md's tables, by the codes of its code column. */
function whereColumns(markdown: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let columns: { code: number; where: number } | null = null;
  for (const line of markdown.split("\n")) {
    if (!line.startsWith("|")) {
      columns = null;
      continue;
    }
    const cells = line.slice(1, line.trimEnd().endsWith("|") ? line.trimEnd().length - 1 : undefined).split("|");
    if (columns === null) {
      columns = {
        code: cells.findIndex((cell) => cell.trim() === "code"),
        where: cells.findIndex((cell) => cell.trim() === "where"),
      };
      continue;
    }
    if (/^[\s|:-]+$/.test(line) || columns.code < 0 || columns.where < 0) continue;
    const commands = (cells[columns.where] ?? "").split(",").map((c) => c.trim());
    for (const [, code] of (cells[columns.code] ?? "").matchAll(/`([A-Z][A-Z0-9_]*)`/g))
      out.set(code as string, [...(out.get(code as string) ?? []), ...commands]);
  }
  return out;
}

describe("docs/errors.md's where column of the model codes", () => {
  const files = ["models/gguf-read.ts", "models/sealed.ts"].map((file) => join(REPO_ROOT, file));
  const scan = scanErrorCodes(files, projectOptions(), REPO_ROOT);
  const thrownIn = (module: string) =>
    [...scan.codes].filter(([, at]) => at.some((w) => w.startsWith(`${module}:`))).map(([code]) => code);
  const where = whereColumns(readFileSync(DOCS, "utf8"));

  it("names each command that can give the code to its user", () => {
    const reader = thrownIn("models/gguf-read.ts");
    expect(reader).toContain("GGUF_TRUNCATED");
    expect(thrownIn("models/sealed.ts")).toContain("MODEL_SEALED");
    const missing: string[] = [];
    for (const { command, file, call, codes } of MODEL_READERS) {
      expect(readFileSync(join(REPO_ROOT, file), "utf8"), `${file} calls ${call}`).toContain(call);
      for (const code of codes === "GGUF reader" ? reader : [codes])
        if (!(where.get(code) ?? []).includes(command)) missing.push(`${code}: ${command}`);
    }
    expect(missing).toEqual([]);
  });
});

/**
 * The AUDIT_RECORD_INVALID row says what its message shows of the value it refused: its shape only,
 * never the value (a prompt, a digest, a nonce: the message reaches the enclave's log). Checked
 * against AuditRecordInvalidError's message.
 */
describe("docs/errors.md's AUDIT_RECORD_INVALID row", () => {
  const row = readFileSync(DOCS, "utf8")
    .split("\n")
    .find((line) => line.startsWith("| `AUDIT_RECORD_INVALID`"));

  it("says the message names what it found by its shape only, as the error does", () => {
    expect(row).toContain(
      "the message names the field, what it expects and what it found by its shape only (a type and a length or size, `missing`), never its value.",
    );
    const value = "a prompt the caller passed by mistake";
    const message = new AuditRecordInvalidError("prompt", "a string, bytes or null", [value]).message;
    expect(message).toBe("audit record field prompt: expected a string, bytes or null, found an array of 1 item");
    expect(message).not.toContain(value);
    expect(new AuditRecordInvalidError("tenant", "an API key id", value).message).toMatch(
      new RegExp(`found a string of ${value.length} characters$`),
    );
    expect(new AuditRecordInvalidError("blockedBy", "null", undefined).message).toMatch(/found missing$/);
  });
});
