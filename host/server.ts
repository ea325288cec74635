/** Starts the host's HTTP server (loopback by default) and stops it cleanly. */
import { describeUrlText } from "../attestation/url-text.ts";
import { DEFAULT_CLIENT_STALL_TIMEOUT_MS } from "../enclave/connection-guards.ts";
import { listen, type Refusal, type RunningServer } from "../enclave/http.ts";
import type { AccessLogEntry, AccessLogSink } from "./access-log.ts";
import { createEnclavePool, createHostApp, type HostOptions } from "./app.ts";
import { AuditCollector, prepareAuditDir } from "./audit-collector.ts";
import type { ApiKeyStore } from "./identity.ts";
import { memberReasonText } from "./pool.ts";

export type { RunningServer };

export const DEFAULT_HOST_LIMITS: HostOptions["limits"] = {
  maxRequestBytes: 1024 * 1024,
  upstreamHeadersTimeoutMs: 30_000,
  upstreamIdleTimeoutMs: 120_000,
  maxInFlight: 64,
  maxQueued: 256,
  queueTimeoutMs: 10_000,
  retryAfterSeconds: 2,
  maxBodiesReading: 64,
  maxBodiesReadingPerKey: 16,
  requestBodyTimeoutMs: 30_000,
  clientStallTimeoutMs: DEFAULT_CLIENT_STALL_TIMEOUT_MS,
};

/**
 * The access log's line for a request refused before the app saw it (enclave/http.ts Refusal): no
 * key, no body read, no path (what the client wrote there is not kept, nor was it read as a route),
 * and the method only where node parsed one; no timings (the listener keeps none for these).
 */
function refusalLogEntry(refusal: Refusal): AccessLogEntry {
  return {
    time: new Date().toISOString(),
    method: refusal.method ?? UNPARSED,
    path: UNPARSED,
    status: refusal.status,
    keyId: null,
    member: null,
    requestBytes: 0,
    responseBytes: refusal.responseBytes,
    headersMs: 0,
    durationMs: 0,
    outcome: "error",
  };
}

/** The access log's method or path where the request gave none the host could read. */
const UNPARSED = "(unparsed)";

export async function startHost(options: {
  /** The enclaves' internal URLs: one, or a pool routed by enclave key id (host/pool.ts). */
  enclaveUrls: readonly string[];
  /** How often the pool re-reads its members' documents (default 5 s). */
  poolRefreshMs?: number;
  apiKeys: ApiKeyStore;
  hostname: string;
  port: number;
  accessLog: AccessLogSink;
  limits?: Partial<HostOptions["limits"]>;
  /**
   * Where the enclave's audit records are stored (one file per enclave boot); null: not collected.
   * Made (mode 0700) and checked once the enclave URLs are (a refused URL: a RangeError, nothing
   * made): one that is a file or not writable rejects with an AuditDirError before anything starts.
   */
  auditDir: string | null;
  onError?: (message: string) => void;
  /** Origins whose pages may call the API from a browser (host/cors.ts). */
  corsOrigins?: readonly string[];
  /** Client connections held open at once (enclave/http.ts's default when absent). */
  maxConnections?: number;
  /**
   * How long an idle keep-alive client connection is kept between requests (`--keep-alive-timeout`;
   * node's 5 s when absent): above the idle timeout of a load balancer in front, which otherwise
   * may send a request on a connection the host is closing, and answer its client 502.
   */
  keepAliveTimeoutMs?: number;
}): Promise<RunningServer> {
  const limits = { ...DEFAULT_HOST_LIMITS, ...options.limits };
  // Made first: its constructor checks the URLs (checkEnclaveUrl; at least one), so a refused start
  // makes nothing (no audit directory, no collector from a URL it refuses). It starts nothing.
  const pool = createEnclavePool(options.enclaveUrls, {
    limits,
    ...(options.poolRefreshMs === undefined ? {} : { refreshMs: options.poolRefreshMs }),
    // Changes of a pool member (restart, gone, back) are worth a line in the host's log, naming its
    // URL as the `audit:` lines do (describeUrlText: no credentials, query or fragment), after the
    // key id, so `pool: enclave N is ready (key id …)` stays the line's start.
    onChange: (member) => {
      if (options.enclaveUrls.length > 1) {
        const keyId = member.keyId === null ? "" : ` (key id ${member.keyId})`;
        const reason = member.reason === null ? "" : `: ${memberReasonText(member.reason)}`;
        options.onError?.(
          `pool: enclave ${member.index} is ${member.state}${keyId} at ${describeUrlText(member.url)}${reason}`,
        );
      }
    },
  });
  // A host that cannot store audit records must not serve.
  if (options.auditDir !== null) await prepareAuditDir(options.auditDir);
  // Every member's audit records are collected and stored (one file per enclave boot, in one dir).
  const collectors =
    options.auditDir === null
      ? []
      : options.enclaveUrls.map(
          (enclaveUrl) =>
            new AuditCollector({
              enclaveUrl,
              dir: options.auditDir as string,
              intervalMs: 1000,
              ...(options.onError === undefined ? {} : { onError: options.onError }),
            }),
        );
  const app = createHostApp({
    pool,
    apiKeys: options.apiKeys,
    accessLog: options.accessLog,
    limits,
    ...(collectors.length === 0 ? {} : { onSealedResponseEnd: (member) => collectors[member.index]?.collectSoon() }),
    ...(options.corsOrigins === undefined ? {} : { corsOrigins: options.corsOrigins }),
  });
  // A pool knows its members' key ids before the first request (a session from before a host
  // restart must not be told to re-attest because the host has not read its enclave yet).
  if (pool.isPool) await pool.refresh();
  const server = await listen(app.fetch, options.hostname, options.port, {
    ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
    ...(options.keepAliveTimeoutMs === undefined ? {} : { keepAliveTimeoutMs: options.keepAliveTimeoutMs }),
    onRefused: (refusal) => options.accessLog(refusalLogEntry(refusal)),
  });
  for (const collector of collectors) collector.start();
  if (pool.isPool) pool.start();
  return {
    url: server.url,
    port: server.port,
    address: server.address,
    close: async (graceMs = 0) => {
      await server.close(graceMs);
      await pool.stop();
      await Promise.all(collectors.map((c) => c.stop()));
    },
  };
}
