/**
 * Which API key the CLI sends where (client/cli/run-client.ts readApiKey): CLOISTER_API_KEY, the
 * named file, or `cloister up`'s local key file for a loopback URL only; a key going over plain
 * http to another host is warned of.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { UsageError } from "../../client/cli/output.ts";
import { plainHttpKeyWarning, readApiKey } from "../../client/cli/run-client.ts";
import { runCloister } from "../helpers/cli.ts";
import { devPolicy } from "./helpers.ts";

let dir: string;
let keyFile: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-api-key-"));
  keyFile = join(dir, "key");
  await writeFile(keyFile, "ck_test_0123456789abcdef\n", { mode: 0o600 });
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

/** A working directory as cloister up leaves it (its local key file), with a policy and an operator key. */
async function upWorkDirectory(prefix: string): Promise<string> {
  const work = await mkdtemp(join(dir, prefix));
  await mkdir(join(work, ".cloister"));
  await writeFile(join(work, ".cloister", "api-key"), "ck_local_0123456789abcdef\n", { mode: 0o600 });
  await writeFile(join(work, "policy.json"), JSON.stringify(await devPolicy()));
  await writeFile(join(work, "operator.jwk"), JSON.stringify({ kty: "OKP", crv: "Ed25519", x: "AAAA" }));
  return work;
}

function stderr(): string[] {
  const lines: string[] = [];
  vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
    lines.push(String(chunk));
    return true;
  });
  return lines;
}

describe("readApiKey", () => {
  it("never sends the default local key file to another host", async () => {
    vi.stubEnv("CLOISTER_API_KEY", undefined);
    stderr();
    await expect(readApiKey(undefined, "https://cloister.example")).rejects.toMatchObject({
      constructor: UsageError,
      message: expect.stringContaining(
        "--api-key-file: expected the API key file for cloister.example (or CLOISTER_API_KEY); the default .cloister/api-key",
      ),
    });
    // An option left out that commander cannot tell, as its own required-option error reads.
    await expect(readApiKey(undefined, "https://cloister.example")).rejects.toThrow(
      /\) \(run with --help for usage\)$/,
    );
  });

  it("uses the default local key file for a loopback host (client/loopback.ts: 127.0.0.0/8, [::1], localhost)", async () => {
    vi.stubEnv("CLOISTER_API_KEY", undefined);
    const work = await mkdtemp(join(dir, "work-"));
    await mkdir(join(work, ".cloister"));
    await writeFile(join(work, ".cloister", "api-key"), "ck_local_0123456789abcdef\n", { mode: 0o600 });
    const cwd = process.cwd();
    process.chdir(work);
    try {
      for (const url of [
        "http://127.0.0.1:8080",
        "http://127.0.0.2:8080",
        "http://[::1]:8080",
        "http://localhost:8080",
      ]) {
        expect(await readApiKey(undefined, url)).toEqual({
          key: "ck_local_0123456789abcdef",
          source: "the default key file .cloister/api-key (cloister up's local key)",
        });
        // Nor does it cross a network: no warning of plain http.
        expect(plainHttpKeyWarning(new URL(url), "cloister"), url).toBeNull();
      }
    } finally {
      process.chdir(cwd);
    }
  });

  it("every command that takes --api-key-file refuses to send the local key to another host", async () => {
    // A working directory as cloister up leaves it, and a valid policy: the refusal is about the key.
    const work = await upWorkDirectory("cli-");
    // 192.0.2.1 (TEST-NET-1) is never contacted: each command refuses before connecting.
    const url = ["--url", "http://192.0.2.1:9"];
    const { CLOISTER_API_KEY: _unset, ...env } = process.env;
    for (const args of [
      ["attest", ...url, "--policy", "policy.json"],
      ["chat", ...url, "--policy", "policy.json", "hello"],
      ["proxy", ...url, "--policy", "policy.json"],
      ["audit", "checkpoint", ...url, "--policy", "policy.json"],
      ["policy", "init", ...url, "--operator-key", "operator.jwk"],
    ]) {
      const run = await runCloister(args, { cwd: work, env, timeoutMs: 20_000 });
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr, args.join(" ")).toContain("--api-key-file: expected the API key file for 192.0.2.1:9");
    }
  }, 120_000);

  it("checks the URL first: a bad one or one with a password is the error shown, never the password", async () => {
    vi.stubEnv("CLOISTER_API_KEY", undefined);
    await expect(readApiKey(undefined, "localhost:8080")).rejects.toMatchObject({
      name: "ClientError",
      kind: "configuration",
      code: "BAD_URL",
      // The CLI's option, not the SDK's (connect's url).
      message:
        '--url: expected http: or https:, found "localhost:8080", a host and port without one (write http://localhost:8080)',
    });
    const withPassword = await readApiKey(keyFile, "http://user:s3cretpw@127.0.0.1:9").catch((e: unknown) => e);
    expect(withPassword).toMatchObject({
      kind: "configuration",
      code: "URL_CREDENTIALS",
      message: expect.stringMatching(
        /^--url: expected no user name or password, .* the API key \(--api-key-file or CLOISTER_API_KEY\) is the credential$/,
      ),
    });
    expect((withPassword as Error).message).not.toContain("s3cretpw");
  });

  it("cloister attest, chat and web: BAD_URL for a URL without http:, and a password in the URL never printed (exit 2)", async () => {
    const work = await mkdtemp(join(dir, "url-"));
    await writeFile(join(work, "policy.json"), JSON.stringify(await devPolicy()));
    const { CLOISTER_API_KEY: _unset, ...env } = process.env;
    const options = { cwd: work, env, timeoutMs: 20_000 };
    // web checks the URL as the other commands do: it would otherwise print it, warn with it and
    // put it into the page it serves.
    const web = (url: string) => runCloister(["web", "--url", url, "--policy", "policy.json", "--port", "0"], options);
    const [schemeless, password, chatPassword, webSchemeless, webPassword, webMalformed] = await Promise.all([
      runCloister(["attest", "--url", "localhost:8080", "--policy", "policy.json"], options),
      runCloister(["attest", "--url", "http://user:s3cretpw@127.0.0.1:9", "--policy", "policy.json"], options),
      runCloister(["chat", "--url", "http://user:s3cretpw@127.0.0.1:9", "--policy", "policy.json", "hi"], options),
      web("localhost:8080"),
      web("http://user:s3cretpw@127.0.0.1:9"),
      web("http://user:s3c/retpw@127.0.0.1:x"),
    ]);
    for (const run of [schemeless, webSchemeless]) {
      expect(run.code).toBe(2);
      expect(run.stderr.trim()).toBe(
        'cloister: BAD_URL: --url: expected http: or https:, found "localhost:8080", a host and port without one (write http://localhost:8080)',
      );
    }
    expect(webMalformed.code).toBe(2);
    expect(webMalformed.stderr).toContain("cloister: BAD_URL: --url: expected an http(s) URL, found a string of");
    expect(`${webMalformed.stdout}${webMalformed.stderr}`).not.toMatch(/s3c|retpw/);
    for (const run of [password, chatPassword, webPassword]) {
      expect(run.code).toBe(2);
      expect(run.stderr).toContain("cloister: URL_CREDENTIALS: --url: expected no user name or password");
      expect(`${run.stdout}${run.stderr}`).not.toContain("s3cretpw");
    }
  });

  it("reads a named file or CLOISTER_API_KEY for any host, warning of plain http to another host", async () => {
    vi.stubEnv("CLOISTER_API_KEY", undefined);
    const lines = stderr();
    expect((await readApiKey(keyFile, "https://cloister.example")).key).toBe("ck_test_0123456789abcdef");
    expect(lines).toEqual([]);
    expect((await readApiKey(keyFile, "http://10.0.0.5:8080")).key).toBe("ck_test_0123456789abcdef");
    // The sentence cloister web prints too, with "the page" as the sender (test/client/web-preflight.test.ts).
    expect(lines).toEqual([
      "cloister: WARNING: --url http://10.0.0.5:8080 is plain http to another host: cloister sends the API key across the network in the clear (prompts stay sealed); put TLS in front of the host\n",
    ]);
    vi.stubEnv("CLOISTER_API_KEY", "ck_from_env_0123456789");
    expect(await readApiKey(undefined, "https://cloister.example")).toEqual({
      key: "ck_from_env_0123456789",
      source: "CLOISTER_API_KEY",
    });
  });

  it("an explicit --api-key-file wins over CLOISTER_API_KEY", async () => {
    vi.stubEnv("CLOISTER_API_KEY", "ck_from_env_0123456789");
    stderr();
    expect(await readApiKey(keyFile, "https://cloister.example")).toEqual({
      key: "ck_test_0123456789abcdef",
      source: `--api-key-file ${keyFile}`,
    });
  });

  it("every --help that offers --api-key-file says it wins over CLOISTER_API_KEY", async () => {
    const helps = await Promise.all(
      [["attest"], ["chat"], ["proxy"], ["audit", "checkpoint"], ["policy", "init"]].map((command) =>
        runCloister([...command, "--help"]),
      ),
    );
    for (const help of helps) {
      expect(help.code).toBe(0);
      expect(help.stdout.replace(/\s+/g, " ")).toContain(
        "--api-key-file <file> file holding the API key; it wins over CLOISTER_API_KEY, used when this option is not given;",
      );
    }
  });
});

describe("a host that refuses the key: which key was sent, never the key", () => {
  // Refuses every key as cloister host does (401 UNAUTHENTICATED), and records which one it was sent.
  const sent: string[] = [];
  let host: Server;
  let url: string;
  beforeAll(async () => {
    host = createServer((req, res) => {
      sent.push(req.headers.authorization ?? "");
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "UNAUTHENTICATED", message: "missing or unknown API key" } }));
    });
    await new Promise<void>((resolve) => host.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => host.close(resolve)));

  it("attest and policy init send --api-key-file's key over CLOISTER_API_KEY, and name the source refused", async () => {
    const work = await upWorkDirectory("refused-");
    const envKey = "ck_env_other_deployment_0123";
    const cases = [
      {
        env: envKey,
        file: ["--api-key-file", keyFile],
        key: "ck_test_0123456789abcdef",
        source: `--api-key-file ${keyFile}`,
      },
      { env: envKey, file: [], key: envKey, source: "CLOISTER_API_KEY" },
      { env: undefined, file: [], key: "ck_local_0123456789abcdef", source: "the default key file .cloister/api-key" },
    ];
    for (const { env, file, key, source } of cases) {
      for (const args of [
        ["attest", "--url", url, "--policy", "policy.json", ...file],
        ["policy", "init", "--url", url, "--operator-key", "operator.jwk", ...file],
      ]) {
        const what = `${args.join(" ")} (CLOISTER_API_KEY ${env === undefined ? "unset" : "set"})`;
        sent.length = 0;
        const { CLOISTER_API_KEY: _unset, ...unset } = process.env;
        const run = await runCloister(args, {
          cwd: work,
          env: env === undefined ? unset : { ...unset, CLOISTER_API_KEY: env },
          timeoutMs: 20_000,
        });
        expect(sent, what).toEqual([`Bearer ${key}`]);
        expect(run.code, what).toBe(2);
        // The first request: whatever answered may not be the host (not "host said").
        expect(run.stderr, what).toContain(
          `cloister: UNAUTHENTICATED: ${url}/v1/attestation: HTTP 401: the API key was refused: the server at that URL said:`,
        );
        expect(run.stderr, what).toContain(`the key sent came from ${source}`);
        for (const secret of [envKey, "ck_test_0123456789abcdef", "ck_local_0123456789abcdef"]) {
          expect(`${run.stdout}${run.stderr}`, what).not.toContain(secret);
        }
      }
    }
  }, 120_000);
});
