/**
 * `cloister enclave`'s log (stderr) of requests its server refused before any route saw them
 * (enclave/run.ts refusalLogLine): a request it cannot read, one with headers over node's limit, one
 * whose Host header it cannot make a URL of; once it serves, and while it boots; and a request whose
 * body it cannot read once a route has it (a bad chunk), which its route does not answer. Each is one line
 * naming what the client got (status, code, the answer's size and message) and the method as node
 * parsed it, never anything the client sent. The enclave runs as a real process, spoken to on a raw
 * socket.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DeploymentFiles, prepareDeployment } from "../../client/cli/deploy.ts";
import { CLI } from "../helpers/cli.ts";
import { rawExchange } from "../helpers/raw-http.ts";
import { listenOnTestPort } from "../helpers/test-ports.ts";

/** Stands for anything secret a client may put in what it sends (a nonce, a token, a prompt). */
const SECRET = "nonce-7a6b5c4d3e2f10ffeeddccbbaa998877";

/** The requests refused before any route, each carrying SECRET, and the method its line names. */
const REFUSED = [
  {
    request: `POST /v1/sealed HTTP/1.1\r\nhost: 127.0.0.1\r\n${SECRET}\r\n\r\n`,
    answer: "400 REQUEST_UNREADABLE",
    method: "none (request line not read)",
  },
  {
    request: `POST /v1/sealed HTTP/1.1\r\nhost: 127.0.0.1\r\nx-nonce: ${SECRET.repeat(600)}\r\n\r\n`,
    answer: "431 HEADERS_TOO_LARGE",
    method: "none (request line not read)",
  },
  {
    request: `GET /healthz HTTP/1.1\r\nhost: ${SECRET}@x\r\nconnection: close\r\n\r\n`,
    answer: "400 REQUEST_UNREADABLE",
    method: "GET",
  },
] as const;

let dir: string;
let files: DeploymentFiles;
let sealed: DeploymentFiles;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-enclave-refusal-log-"));
  files = await prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {}, sealedModel: false });
  sealed = await prepareDeployment({
    dir: join(dir, "sealed"),
    tee: "sim-snp",
    threads: 1,
    progress: () => {},
    sealedModel: true,
  });
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

/** Resolves once `done` holds, or `child` exited, or `ms` passed. */
async function until(child: ChildProcess, done: () => boolean, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done() && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

/** Starts `cloister enclave` on `deployment` with `args` more, collecting what it prints. */
function startEnclave(deployment: DeploymentFiles, args: readonly string[]) {
  const child = spawn(
    process.execPath,
    [
      CLI,
      "enclave",
      "--manifest",
      deployment.manifestPath,
      "--operator-key",
      deployment.operatorPublicKeyPath,
      "--model",
      deployment.modelPath,
      "--tee",
      "sim-snp",
      "--listen",
      "127.0.0.1",
      ...args,
    ],
    { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
  );
  children.push(child);
  const output = { stdout: "", stderr: "" };
  child.stdout?.on("data", (d: Buffer) => (output.stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output.stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  const refusedLines = () => output.stderr.split("\n").filter((line) => line.includes("request refused"));
  return { child, output, exited, refusedLines };
}

/** Sends REFUSED to `port`, one connection each, and the log lines their answers call for. */
async function sendRefused(port: number): Promise<string[]> {
  const lines: string[] = [];
  for (const { request, answer, method } of REFUSED) {
    const got = await rawExchange(port, request);
    const body = got.slice(got.indexOf("\r\n\r\n") + 4);
    const { code, message } = (JSON.parse(body) as { error: { code: string; message: string } }).error;
    const status = Number(got.slice(9, 12));
    expect(`${status} ${code}`).toBe(answer);
    lines.push(
      `cloister enclave: request refused before any route: ${status} ${code}, method ${method}, answer ${Buffer.byteLength(body)} bytes: ${message}`,
    );
  }
  return lines;
}

/**
 * `cloister enclave` on `deployment` with `args` more, on a port of the tests' range, once `started`
 * holds (or it exited). The port must be known while the enclave boots, so it is bound here
 * (listenOnTestPort) and freed for the enclave to bind: should another process take it in between
 * (the enclave exits EADDRINUSE), another port is tried, at most 5.
 */
async function startEnclaveOnTestPort(
  deployment: DeploymentFiles,
  args: readonly string[],
  started: (output: { stdout: string; stderr: string }) => boolean,
): Promise<{ port: number; enclave: ReturnType<typeof startEnclave> }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const probe = createTcpServer();
    const port = await listenOnTestPort(probe);
    await new Promise((resolve) => probe.close(resolve));
    const enclave = startEnclave(deployment, ["--port", String(port), ...args]);
    await until(enclave.child, () => started(enclave.output));
    if (enclave.child.exitCode === null) return { port, enclave };
    await enclave.exited; // all it printed read
    if (!enclave.output.stderr.includes("(EADDRINUSE)")) return { port, enclave };
  }
  throw new Error("cloister enclave: each of 5 ports of the tests' range was taken before it bound it");
}

describe("cloister enclave: requests refused before any route", () => {
  it("logs each, once it serves, with its status, code, method, answer size and fixed message, and nothing the client sent", async () => {
    const enclave = startEnclave(files, ["--port", "0"]);
    await until(enclave.child, () => enclave.output.stdout.includes('"event":"ready"'));
    const { url } = JSON.parse(enclave.output.stdout.split("\n")[0] as string) as { url: string };
    const expected = await sendRefused(Number(new URL(url).port));
    await until(enclave.child, () => enclave.refusedLines().length === REFUSED.length, 5_000);
    enclave.child.kill("SIGTERM");
    expect(await enclave.exited).toBe(0);
    const { stdout, stderr } = enclave.output;
    expect(enclave.refusedLines()).toEqual(expected);
    expect(stderr + stdout).not.toContain(SECRET);
    expect(stderr + stdout).not.toContain("nonce-");
  });

  it("logs a request whose body it cannot read once a route has it, as the server's answer to it, once", async () => {
    const enclave = startEnclave(files, ["--port", "0"]);
    await until(enclave.child, () => enclave.output.stdout.includes('"event":"ready"'));
    const { url } = JSON.parse(enclave.output.stdout.split("\n")[0] as string) as { url: string };
    // A chunked body with a bad chunk size after its first chunk: node's 400 reaches the client,
    // not the route's answer.
    const chunk = `sealed:${SECRET}`;
    const got = await rawExchange(
      Number(new URL(url).port),
      "POST /sealed HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/octet-stream\r\n" +
        `transfer-encoding: chunked\r\n\r\n${chunk.length.toString(16)}\r\n${chunk}\r\nzz\r\n`,
    );
    const body = got.slice(got.indexOf("\r\n\r\n") + 4);
    const { code, message } = (JSON.parse(body) as { error: { code: string; message: string } }).error;
    expect(`${got.slice(9, 12)} ${code}`).toBe("400 REQUEST_UNREADABLE");
    await until(enclave.child, () => enclave.refusedLines().length > 0, 5_000);
    await new Promise((r) => setTimeout(r, 100)); // no second line
    enclave.child.kill("SIGTERM");
    expect(await enclave.exited).toBe(0);
    const { stdout, stderr } = enclave.output;
    expect(enclave.refusedLines()).toEqual([
      `cloister enclave: request refused reading its body: 400 REQUEST_UNREADABLE, method POST, answer ${Buffer.byteLength(body)} bytes: ${message}`,
    ]);
    expect(message).toContain("HPE_INVALID_CHUNK_SIZE");
    expect(stderr + stdout).not.toContain(SECRET);
    expect(stderr + stdout).not.toContain("nonce-");
  });

  it("logs each while it boots too (its key broker busy), nothing the client sent", async () => {
    // A broker that is always busy and says to come back in 30 s: the boot waits on it.
    const broker = createHttpServer((_request, response) => {
      response.writeHead(503, { "content-type": "application/json", "retry-after": "30" });
      response.end(JSON.stringify({ error: { code: "KBS_BUSY", message: "busy" } }));
    });
    await new Promise<void>((resolve) => broker.listen(0, "127.0.0.1", resolve));
    try {
      const { port: brokerPort } = broker.address() as { port: number };
      const { port, enclave } = await startEnclaveOnTestPort(
        sealed,
        ["--kbs-url", `http://127.0.0.1:${brokerPort}`],
        (output) => output.stderr.includes("asking again in 30000 ms"),
      );
      const expected = await sendRefused(port);
      await until(enclave.child, () => enclave.refusedLines().length === REFUSED.length, 5_000);
      enclave.child.kill("SIGTERM");
      expect(await enclave.exited).toBe(0);
      const { stdout, stderr } = enclave.output;
      expect(stdout).not.toContain('"event":"ready"');
      expect(enclave.refusedLines()).toEqual(expected);
      expect(stderr + stdout).not.toContain(SECRET);
      expect(stderr + stdout).not.toContain("nonce-");
    } finally {
      broker.close();
    }
  });
});
