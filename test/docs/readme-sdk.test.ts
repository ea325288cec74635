/**
 * README.md's "Using the SDK" program is what an application developer pastes first: it must
 * type-check as pasted at the root of the checkout (its imports resolve, every name it uses is
 * exported where it imports it from), and it must show where the `ClientError` the section tells
 * them to handle comes from, with a switch on its code.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import * as sdk from "../../client/sdk.ts";
import { REPO_ROOT } from "../helpers/cli.ts";

function sdkSection(): string {
  const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
  const start = readme.indexOf("\n## Using the SDK\n");
  const end = readme.indexOf("\n## ", start + 1);
  expect(start).toBeGreaterThan(0);
  return readme.slice(start, end);
}

function program(section: string): string {
  const blocks = [...section.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1] as string);
  expect(blocks).toHaveLength(1);
  return blocks[0] as string;
}

/** Type-checks `source` as the file `ask.ts` at the repository root, under the project's tsconfig. */
function diagnostics(source: string): string[] {
  const configPath = join(REPO_ROOT, "tsconfig.json");
  const config = ts.readConfigFile(configPath, (path) => ts.sys.readFile(path));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, REPO_ROOT);
  const file = join(REPO_ROOT, "readme-sdk-ask.ts");
  const host = ts.createCompilerHost(parsed.options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) =>
    name === file ? ts.createSourceFile(name, source, language) : getSourceFile(name, language, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === file || fileExists(name);
  const built = ts.createProgram([file], parsed.options, host);
  return ts
    .getPreEmitDiagnostics(built, built.getSourceFile(file))
    .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"));
}

describe('README "Using the SDK"', () => {
  const section = sdkSection();
  const source = program(section);

  it("type-checks as pasted at the root of the checkout", () => {
    expect(diagnostics(source)).toEqual([]);
  });

  it("imports ClientError from the SDK module and switches on its code", () => {
    expect(source).toMatch(/^import \{[^}]*\bClientError\b[^}]*\} from "\.\/client\/sdk\.ts";$/m);
    expect(source).toContain("error instanceof ClientError");
    expect(source).toContain('error.code !== "POLICY_BLOCKED"');
    expect(section).toContain("`ClientError`s (exported by `client/sdk.ts`)");
  });

  it("sends a prompt that `cloister up`'s manifest refuses, as its comment says", () => {
    const dev = JSON.parse(readFileSync(join(REPO_ROOT, "manifests/examples/dev.json"), "utf8")) as {
      requestPolicy: { rules: { kind: string; pattern?: string }[] };
    };
    const pattern = dev.requestPolicy.rules.find((rule) => rule.kind === "pattern")?.pattern as string;
    const blocked = /complete\("([^"]+)", \{ maxTokens: 16 \}\); \/\/ up's manifest refuses this/.exec(source)?.[1];
    expect(blocked).toBeDefined();
    expect(new RegExp(pattern).test(blocked as string)).toBe(true);
  });

  it("names codes a program must handle that docs/errors.md lists for the client", () => {
    const errors = readFileSync(join(REPO_ROOT, "docs/errors.md"), "utf8");
    const start = errors.indexOf("\n## Client (");
    expect(start).toBeGreaterThan(0);
    const client = errors.slice(start, errors.indexOf("\n## ", start + 1));
    for (const code of ["UNAUTHENTICATED", "HOST_UNREACHABLE", "POLICY_BLOCKED", "PII_BLOCKED"]) {
      expect(section, code).toContain(`\`${code}\``);
      expect(client, code).toContain(`\`${code}\``);
    }
  });

  // client/sdk.ts resends only a sealed request the host refuses as WRONG_ENCLAVE_KEY; a checkpoint
  // after a restart fails its signature check, or is the host's WRONG_ENCLAVE_KEY once it has read
  // the new boot's document; a session of one named boot resends nothing, its re-verification
  // refused by the host (test/e2e/enclave-restart.test.ts): the section says so.
  it("says which calls a restarted enclave is no error for, and what auditCheckpoint and a named boot end in", () => {
    const prose = section.replace(/\s+/g, " ");
    expect(prose).not.toContain("An enclave that restarted is no error");
    expect(prose).toContain("A request sealed to an enclave that has restarted since is no error");
    expect(prose).toContain(
      "`auditCheckpoint()` is not retried: after a restart it throws until the session has verified the new boot " +
        "(`session.attest()`, or the next request): `AUDIT_CHECKPOINT_INVALID` (its signature not the attested key's), " +
        "or the host's `WRONG_ENCLAVE_KEY` (`transport`) once the host has read the new boot's document.",
    );
    expect(prose).toContain(
      "Nor is a session of one named boot (`connect({enclaveKeyId})`): after a restart its requests end in the " +
        "host's `WRONG_ENCLAVE_KEY`, nothing resent",
    );
  });

  it("names verifyReceipt, which client/sdk.ts exports, for checking a receipt in code", () => {
    expect(typeof sdk.verifyReceipt).toBe("function");
    expect(section.replace(/\s+/g, " ")).toContain("`verifyReceipt(line, signingKey)` (exported by `client/sdk.ts`)");
  });
});

/** The compiler options the section's ```json block names for a project of one's own. */
function ownProjectOptions(section: string): Record<string, unknown> {
  const blocks = [...section.matchAll(/^```json\n([\s\S]*?)^```$/gm)].map((match) => match[1] as string);
  expect(blocks).toHaveLength(1);
  return JSON.parse(blocks[0] as string) as Record<string, unknown>;
}

/**
 * Type-checks `source` as `app.ts` in a project outside the checkout that installed it as `cloister`
 * (a link, as `npm i /path/to/cloister` makes), under only the compiler options the README names.
 */
function diagnosticsOutside(source: string, options: Record<string, unknown>): string[] {
  const dir = mkdtempSync(join(tmpdir(), "cloister-readme-app-"));
  try {
    mkdirSync(join(dir, "node_modules"));
    symlinkSync(REPO_ROOT, join(dir, "node_modules", "cloister"), "dir");
    symlinkSync(join(REPO_ROOT, "node_modules", "@types"), join(dir, "node_modules", "@types"), "dir");
    writeFileSync(join(dir, "package.json"), '{ "type": "module" }\n');
    writeFileSync(join(dir, "app.ts"), source);
    const parsed = ts.parseJsonConfigFileContent({ compilerOptions: { ...options, strict: true } }, ts.sys, dir);
    expect(parsed.errors).toEqual([]);
    const built = ts.createProgram([join(dir, "app.ts")], parsed.options);
    return ts
      .getPreEmitDiagnostics(built)
      .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('README "Using the SDK" from a project of one\'s own', () => {
  const section = sdkSection();
  const prose = section.replace(/\s+/g, " ");

  it("type-checks outside the checkout, importing by package name, under the compiler options it names", () => {
    const source = program(section)
      .replace('"./client/sdk.ts"', '"cloister/client/sdk.ts"')
      .replace('"./client/policy.ts"', '"cloister/client/policy.ts"');
    expect(source).toContain('from "cloister/client/sdk.ts"');
    expect(source).toContain('from "cloister/client/policy.ts"');
    expect(prose).toContain(
      "import `cloister/client/sdk.ts` and `cloister/client/policy.ts` instead of `./client/sdk.ts` and `./client/policy.ts`",
    );
    expect(diagnosticsOutside(source, ownProjectOptions(section))).toEqual([]);
  });

  // A Node.js project's tsconfig has no DOM lib: the SDK's sources must type-check with Node's own
  // types (ReadableStream, fetch, WebCrypto through @types/node), so the section asks for none.
  it("names no DOM lib among those options", () => {
    expect(ownProjectOptions(section).lib).toEqual(["ES2022"]);
    expect(prose).toContain("(not the `DOM` lib: the SDK names Node's own stream, fetch and WebCrypto types)");
  });

  it("says that nothing needs closing and how to give a request a deadline", () => {
    expect(prose).toContain("Nothing needs closing");
    expect(prose).toContain("`signal: AbortSignal.timeout(ms)`");
  });
});
