/**
 * docs/deploy.md's "Host limits" paragraph (step 4) against the code's defaults: each number it gives
 * is computed here from the value it stands for (DEFAULT_HOST_LIMITS, `cloister host`'s flag defaults,
 * the connection guards' constants, and what the host's listener sets on node's server and on each
 * connection, recorded as the host starts), so a default changed without the page, or the reverse,
 * fails. docs/errors.md's HOST_BUSY and ENCLAVE_TIMEOUT rows give some of the same numbers: tied
 * here too. The behaviour behind each is tested in test/host/ and test/enclave/ (connection guards,
 * listen); this ties the page to it. The first-request and headers timeouts are only tested there
 * with values a test sets, so the ones the host runs with are recorded here.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { maxHeaderSize } from "node:http";
import { connect, Server, Socket } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { buildProgram, commandTree } from "../../client/cli/program.ts";
import { DEFAULT_CLIENT_STALL_TIMEOUT_MS, MAX_REQUESTS_PER_CONNECTION } from "../../enclave/connection-guards.ts";
import { ListenError, MAX_SEALED_REQUEST_BYTES, UNREADABLE_LINGER_MS } from "../../enclave/http.ts";
import { ENCLAVE_MAX_CONNECTIONS } from "../../enclave/run.ts";
import { defaultMaxInFlightPerKey, IDLE_SWEEPS_PER_TIMEOUT } from "../../host/app.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { DEFAULT_HOST_LIMITS, startHost } from "../../host/server.ts";
import { REPO_ROOT } from "../helpers/cli.ts";
import { pageSection } from "../helpers/doc-pages.ts";
import { TEST_PORTS } from "../helpers/test-ports.ts";

const MiB = 1024 * 1024;

/** The page's "Host limits" paragraph, white space runs as one space. */
const hostLimits = () => pageSection("docs/deploy.md", "**Host limits**", "## 5.");

/** `cloister host`'s default for `flag`. */
function hostDefault(flag: string): unknown {
  const host = commandTree(buildProgram()).find((command) => command.name() === "host");
  const option = host?.options.find((o) => o.long === flag);
  expect(option, flag).toBeDefined();
  return option?.defaultValue;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("docs/deploy.md's host limits", () => {
  it("are the host's defaults: bodies, forwarding, queue, Retry-After, the enclave's timeouts, memory", () => {
    const text = hostLimits();
    const limits = DEFAULT_HOST_LIMITS;
    const maxInFlight = hostDefault("--max-in-flight") as number;
    const maxQueued = hostDefault("--max-queued") as number;
    const maxRequestBytes = hostDefault("--max-request-bytes") as number;
    // The command line's defaults are the host's own (startHost's, which tests use).
    expect({ maxInFlight, maxQueued, maxRequestBytes }).toEqual({
      maxInFlight: limits.maxInFlight,
      maxQueued: limits.maxQueued,
      maxRequestBytes: limits.maxRequestBytes,
    });
    const heldBytes = (limits.maxBodiesReading + maxInFlight + maxQueued) * maxRequestBytes;
    const phrases = [
      `At most ${limits.maxBodiesReading} bodies are read at once (${limits.maxBodiesReadingPerKey} for one key), each within ${limits.requestBodyTimeoutMs / 1000} s`,
      `at most \`--max-in-flight\` (${maxInFlight}) requests are forwarded and \`--max-queued\` (${maxQueued}) wait`,
      `(half of \`--max-in-flight\`: ${defaultMaxInFlightPerKey(maxInFlight)};`,
      `each waiting ${limits.queueTimeoutMs / 1000} s at most`,
      `503 \`HOST_BUSY\` with \`Retry-After: ${limits.retryAfterSeconds}\``,
      `The enclave has ${limits.upstreamHeadersTimeoutMs / 1000} s to send an answer's headers`,
      `nothing comes for ${limits.upstreamIdleTimeoutMs / 1000} s (the host checks every ${limits.upstreamIdleTimeoutMs / IDLE_SWEEPS_PER_TIMEOUT / 1000} s)`,
      `(${limits.maxBodiesReading} + max-in-flight + max-queued) × \`--max-request-bytes\``,
      `${heldBytes / MiB} MiB with the defaults`,
      `${(MAX_SEALED_REQUEST_BYTES - 1024) / MiB} MiB + 1 KiB`,
    ];
    for (const phrase of phrases) expect(text, phrase).toContain(phrase);
  });

  it("are the numbers of docs/errors.md's HOST_BUSY and ENCLAVE_TIMEOUT rows", () => {
    const limits = DEFAULT_HOST_LIMITS;
    const rows = readFileSync(join(REPO_ROOT, "docs", "errors.md"), "utf8").split("\n");
    const row = (code: string) => rows.find((line) => line.startsWith(`| \`${code}\` `)) ?? "";
    const phrases: [string, string][] = [
      ["HOST_BUSY", `a queued request waited ${limits.queueTimeoutMs / 1000} s`],
      ["HOST_BUSY", `(${limits.maxBodiesReading} in all, ${limits.maxBodiesReadingPerKey} for one key)`],
      ["HOST_BUSY", `honour \`Retry-After\` (${limits.retryAfterSeconds} s)`],
      ["ENCLAVE_TIMEOUT", `no response headers within ${limits.upstreamHeadersTimeoutMs / 1000} s`],
    ];
    for (const [code, phrase] of phrases) expect(row(code), phrase).toContain(phrase);
  });

  it("are the host's connection limits", () => {
    const text = hostLimits();
    const stallS = DEFAULT_CLIENT_STALL_TIMEOUT_MS / 1000;
    const phrases = [
      `at most \`--max-connections\` (${hostDefault("--max-connections")}) are held open`,
      `\`--keep-alive-timeout\` (${hostDefault("--keep-alive-timeout")} s)`,
      `an enclave takes ${ENCLAVE_MAX_CONNECTIONS}`,
      `none of its answer for ${stallS} s (noticed within ${2 * stallS} s)`,
      `more than ${MAX_REQUESTS_PER_CONNECTION} requests under way at once`,
      `with headers over ${maxHeaderSize / 1024} KiB`,
      `or ${UNREADABLE_LINGER_MS / 1000} s at most`,
    ];
    for (const phrase of phrases) expect(text, phrase).toContain(phrase);
  });

  it("are the first-request and headers timeouts the running host sets, checked as often as it says", async () => {
    // The host's node server (the one listen makes as startHost starts) and the timeouts set on
    // its connections, recorded.
    const servers: Server[] = [];
    vi.spyOn(Server.prototype, "listen").mockImplementation(function (this: Server, ...args: unknown[]) {
      servers.push(this);
      return Reflect.apply(realListen, this, args) as Server;
    });
    const socketTimeouts: { socket: Socket; ms: number }[] = [];
    const realSetTimeout = Socket.prototype.setTimeout;
    vi.spyOn(Socket.prototype, "setTimeout").mockImplementation(function (this: Socket, ms: number, ...rest) {
      socketTimeouts.push({ socket: this, ms });
      return Reflect.apply(realSetTimeout, this, [ms, ...rest]) as Socket;
    });
    const host = await startHostInRange();
    try {
      const server = servers.at(-1) as Server & {
        headersTimeout: number;
        connectionsCheckingInterval: number;
      };
      const client = connect(host.port, "127.0.0.1");
      await once(client, "connect");
      // The server's side of that connection is the one whose remote port is the client's.
      const firstRequest = () =>
        socketTimeouts.find((t) => t.socket.remotePort === client.localPort && t.socket.localPort === host.port);
      for (let i = 0; i < 10_000 && firstRequest() === undefined; i++) await new Promise((r) => setImmediate(r));
      // Read before the close: a closed socket has no remote port.
      const firstRequestS = (firstRequest()?.ms ?? Number.NaN) / 1000;
      client.destroy();
      const headersS = server.headersTimeout / 1000;
      const checkedS = server.connectionsCheckingInterval / 1000;
      // "Within a second": node checks the request and headers timeouts that often.
      expect(checkedS).toBe(1);
      const phrase = `one that sends no request within ${firstRequestS} s, or whose request headers take more than ${headersS} s, is closed within a second of that`;
      expect(hostLimits()).toContain(phrase);
    } finally {
      await host.close();
    }
  });
});

const realListen = Server.prototype.listen;

/** startHost (no audit directory, an enclave never reached) on a free port of the tests' range. */
async function startHostInRange() {
  const start = Math.floor(Math.random() * TEST_PORTS.count);
  for (let i = 0; i < TEST_PORTS.count; i++) {
    try {
      return await startHost({
        enclaveUrls: ["http://127.0.0.1:9"],
        apiKeys: new ApiKeyStore({ version: 1, keys: [] }),
        hostname: "127.0.0.1",
        port: TEST_PORTS.first + ((start + i) % TEST_PORTS.count),
        accessLog: () => {},
        auditDir: null,
      });
    } catch (error) {
      if (!(error instanceof ListenError && error.code === "EADDRINUSE")) throw error;
    }
  }
  throw new Error("no free port in the tests' range");
}
