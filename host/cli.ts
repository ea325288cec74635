/** `cloister host`: the untrusted gateway. Actions import their implementation lazily. */
import { type Command, Option } from "commander";
import { examples } from "../client/cli/help-examples.ts";
import { intOption, repeatableOption } from "../client/cli/output.ts";
import {
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_SHUTDOWN_GRACE_MS,
  MAX_LISTEN_CONNECTIONS,
  MAX_SEALED_REQUEST_BYTES,
} from "../enclave/http.ts";

/** `--keep-alive-timeout`'s default: node's own (server.keepAliveTimeout, 5 s). */
const DEFAULT_KEEP_ALIVE_TIMEOUT_S = 5;

/**
 * `--keep-alive-timeout`'s largest value: two hours, above the longest idle timeouts of the load
 * balancers docs/deploy.md names (Google Cloud's external Application Load Balancer keeps its
 * connections to a backend for 600 s). Each idle connection holds one of --max-connections.
 */
const MAX_KEEP_ALIVE_TIMEOUT_S = 7200;

export function registerHostCommands(program: Command): void {
  program
    .command("host")
    .addHelpText(
      "after",
      examples(
        "cloister host --enclave-url http://127.0.0.1:8443 --api-keys api-keys.json --audit-dir /var/lib/cloister/audit --port 8080",
        "cloister host --enclave-url http://10.0.0.11:8443 --enclave-url http://10.0.0.12:8443 --api-keys api-keys.json --audit-dir /var/lib/cloister/audit --listen 127.0.0.1 --port 8080",
      ),
    )
    .description("run the untrusted host: API keys, limits, and byte forwarding to an enclave or a pool of them")
    .addOption(
      new Option(
        "--enclave-url <url>",
        "an enclave's internal URL (e.g. http://127.0.0.1:8443); repeat for a pool, routed by enclave key id, its members numbered from 0 in this order (the log's pool: enclave N, /healthz's index); the members are fixed when the host starts (adding or removing one takes a host restart), and a member restarted at the same URL is taken back with its new key id",
      )
        .argParser(repeatableOption)
        .makeOptionMandatory(),
    )
    .option(
      "--pool-refresh-ms <n>",
      "how often a pool's members are re-read (restarts, members gone or back)",
      intOption("--pool-refresh-ms", 100, 600_000),
      5000,
    )
    .requiredOption(
      "--api-keys <file>",
      "API keys file (JSON: {version: 1, keys: [{id, project, sha256, permissions, requestsPerMinute}]})",
    )
    .requiredOption(
      "--audit-dir <dir>",
      "where to store the enclave's signed audit records (one JSON-lines file per enclave boot); made if missing, but its parent must exist",
    )
    .option("--listen <address>", "address to bind", "127.0.0.1")
    .option("--port <n>", "port to listen on (0 = any free port)", intOption("--port", 0, 65535), 8080)
    .option("--max-in-flight <n>", "sealed requests forwarded at once", intOption("--max-in-flight", 1, 8192), 64)
    .option("--max-queued <n>", "requests waiting beyond that before 503", intOption("--max-queued", 0, 1_000_000), 256)
    .option(
      "--max-in-flight-per-key <n>",
      "sealed requests of one API key forwarded or queued at once, so other keys keep slots (more: 503 for that key); at most --max-in-flight (default: half of it)",
      intOption("--max-in-flight-per-key", 1, 1_000_000),
    )
    .option(
      "--max-request-bytes <n>",
      `largest sealed request (at most the enclave's own limit, ${MAX_SEALED_REQUEST_BYTES})`,
      intOption("--max-request-bytes", 1024, MAX_SEALED_REQUEST_BYTES),
      1024 * 1024,
    )
    .option(
      "--max-connections <n>",
      "client connections held open at once (more are closed as they come)",
      intOption("--max-connections", 1, MAX_LISTEN_CONNECTIONS),
      DEFAULT_MAX_CONNECTIONS,
    )
    .option(
      "--keep-alive-timeout <seconds>",
      "how long an idle client connection is kept between requests; behind a load balancer, above the balancer's idle timeout for its connections to the host (docs/deploy.md)",
      intOption("--keep-alive-timeout", 1, MAX_KEEP_ALIVE_TIMEOUT_S),
      DEFAULT_KEEP_ALIVE_TIMEOUT_S,
    )
    .addOption(
      new Option(
        "--cors-origin <origin>",
        "let pages from this origin (scheme://host[:port]) call the API from a browser (repeatable)",
      )
        .argParser(repeatableOption)
        .default([] as string[], "none"),
    )
    .option(
      "--shutdown-grace-ms <n>",
      "on SIGTERM/SIGINT, stop taking requests and let answers under way finish for up to this long (a second signal stops at once)",
      intOption("--shutdown-grace-ms", 0, 600_000),
      DEFAULT_SHUTDOWN_GRACE_MS,
    )
    .action(async (options: HostCommandOptions) => {
      const { runHostCommand } = await import("./run.ts");
      await runHostCommand(options);
    });
}

export interface HostCommandOptions {
  shutdownGraceMs: number;
  enclaveUrl: string[];
  poolRefreshMs: number;
  apiKeys: string;
  auditDir: string;
  listen: string;
  port: number;
  maxInFlight: number;
  maxQueued: number;
  maxInFlightPerKey?: number;
  maxRequestBytes: number;
  maxConnections: number;
  /** Seconds. */
  keepAliveTimeout: number;
  corsOrigin: string[];
}
