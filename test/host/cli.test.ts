/**
 * `cloister host`'s command line: how long the host keeps an idle client connection
 * (`--keep-alive-timeout`): what it tells its clients (`Keep-Alive: timeout=N`, which node's server
 * sends and node's and undici's clients keep to), from startHost and from the command line, and
 * the flag's bounds; and its `ready` line on stdout.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { Agent, get, type IncomingMessage } from "node:http";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { beforeAll, describe, expect, it } from "vitest";
import { ApiKeyStore } from "../../host/identity.ts";
import { startHost } from "../../host/server.ts";
import { CLI, REPO_ROOT } from "../helpers/cli.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const KEYS = {
  version: 1,
  keys: [{ id: "k", project: "p", sha256: "ab".repeat(32), permissions: ["attest"], requestsPerMinute: 10 }],
} as const;

/** The `Keep-Alive` header of the host's answer to a request on a keep-alive connection (a 404: no route). */
async function keepAliveHeader(url: string): Promise<string | string[] | undefined> {
  const agent = new Agent({ keepAlive: true });
  try {
    const response = await new Promise<IncomingMessage>((resolve, reject) =>
      get(`${url}/no-such-route`, { agent }, resolve).once("error", reject),
    );
    response.resume();
    await once(response, "end");
    return response.headers["keep-alive"];
  } finally {
    agent.destroy();
  }
}

const dir = await testDirectory("cloister-host-keep-alive-");

beforeAll(async () => {
  await writeFile(join(dir, "api-keys.json"), JSON.stringify(KEYS));
});

describe("startHost: keepAliveTimeoutMs", () => {
  const start = (keepAliveTimeoutMs?: number) =>
    startHost({
      // Never reached: the request here has no route.
      enclaveUrls: ["http://127.0.0.1:9"],
      apiKeys: new ApiKeyStore(KEYS as never),
      hostname: "127.0.0.1",
      port: 0,
      accessLog: () => {},
      auditDir: null,
      ...(keepAliveTimeoutMs === undefined ? {} : { keepAliveTimeoutMs }),
    });

  it("tells clients the idle timeout set (620 s, above a load balancer's 600 s), and node's 5 s when none is", async () => {
    for (const [set, told] of [
      [620_000, "timeout=620"],
      [undefined, "timeout=5"],
    ] as const) {
      const host = await start(set);
      try {
        expect(await keepAliveHeader(host.url), String(set)).toBe(told);
      } finally {
        await host.close();
      }
    }
  });
});

describe("cloister host --keep-alive-timeout", () => {
  const run = inProcessCli();

  it("refuses a value that is no whole number of seconds or outside 1..7200, naming the flag (exit 2)", async () => {
    const args = ["host", "--enclave-url", "http://127.0.0.1:9", "--api-keys", join(dir, "api-keys.json")];
    args.push("--audit-dir", join(dir, "audit"), "--port", "0");
    for (const [value, found] of [
      ["0", "expects 1..7200, found 0"],
      ["7201", "expects 1..7200, found 7201"],
      ["620.5", 'expects an integer, found "620.5"'],
      ["10m", 'expects an integer, found "10m"'],
    ] as const) {
      const { code, stderr } = await run([...args, "--keep-alive-timeout", value]);
      expect({ code, stderr }, value).toEqual({
        code: 2,
        stderr: expect.stringContaining(`--keep-alive-timeout ${found}`),
      });
    }
  });

  it("is what the running host tells its clients", { timeout: 30_000 }, async () => {
    await withHostProcess(["--audit-dir", join(dir, "audit"), "--keep-alive-timeout", "620"], async (ready) => {
      expect(await keepAliveHeader(ready.url)).toBe("timeout=620");
    });
  });
});

describe("cloister host's ready line", () => {
  it("writes the invisible characters of its --audit-dir as \\u escapes, the same path to a JSON reader", {
    timeout: 30_000,
  }, async () => {
    // U+202E (right-to-left override) shows a path as another; U+2028 breaks the line for some readers.
    const auditDir = join(dir, "audit\u202egol.\u2028x");
    await withHostProcess(["--audit-dir", auditDir], async (ready, line) => {
      expect(line).not.toMatch(/[\u202e\u2028]/);
      expect(line).toContain("\\u202e");
      expect(ready.auditDir).toBe(auditDir);
    });
  });
});

/** Runs `cloister host` on any free port with `args` (an --audit-dir among them) until `use` is done with its ready line. */
async function withHostProcess(
  args: readonly string[],
  use: (ready: { event: string; url: string; auditDir: string }, line: string) => Promise<void>,
): Promise<void> {
  const command = ["host", "--enclave-url", "http://127.0.0.1:9", "--api-keys", join(dir, "api-keys.json")];
  command.push("--port", "0", ...args);
  const child: ChildProcess = spawn(process.execPath, [CLI, ...command], {
    cwd: REPO_ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  try {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    // Its first line, or the reason it has none (it exited: its stderr says why).
    const first = await new Promise<string>((resolve, reject) => {
      lines.once("line", resolve);
      lines.once("close", () => reject(new Error(`cloister host exited before ready: ${stderr}`)));
    });
    const ready = JSON.parse(first) as { event: string; url: string; auditDir: string };
    expect(ready.event).toBe("ready");
    await use(ready, first);
  } finally {
    child.kill("SIGTERM");
    if (child.exitCode === null) await once(child, "exit");
  }
}
