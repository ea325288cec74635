/** Starts the host's HTTP server (loopback by default) and stops it cleanly. */
import { listen, type RunningServer } from "../enclave/http.ts";
import type { AccessLogSink } from "./access-log.ts";
import { createHostApp, type HostOptions } from "./app.ts";
import { AuditCollector } from "./audit-collector.ts";
import type { ApiKeyStore } from "./identity.ts";

export type { RunningServer };

export const DEFAULT_HOST_LIMITS: HostOptions["limits"] = {
  maxRequestBytes: 1024 * 1024,
  upstreamHeadersTimeoutMs: 30_000,
  upstreamIdleTimeoutMs: 120_000,
  maxInFlight: 64,
  maxQueued: 256,
  queueTimeoutMs: 10_000,
  retryAfterSeconds: 2,
};

export async function startHost(options: {
  enclaveUrl: string;
  apiKeys: ApiKeyStore;
  hostname: string;
  port: number;
  accessLog: AccessLogSink;
  limits?: Partial<HostOptions["limits"]>;
  /** Where the enclave's audit records are stored (one file per enclave boot); null: not collected. */
  auditDir: string | null;
  onError?: (message: string) => void;
  /** Origins whose pages may call the API from a browser (host/cors.ts). */
  corsOrigins?: readonly string[];
}): Promise<RunningServer> {
  const collector =
    options.auditDir === null
      ? null
      : new AuditCollector({
          enclaveUrl: options.enclaveUrl,
          dir: options.auditDir,
          intervalMs: 1000,
          ...(options.onError === undefined ? {} : { onError: options.onError }),
        });
  const app = createHostApp({
    enclaveUrl: options.enclaveUrl,
    apiKeys: options.apiKeys,
    accessLog: options.accessLog,
    limits: { ...DEFAULT_HOST_LIMITS, ...options.limits },
    ...(collector === null ? {} : { onSealedResponseEnd: () => collector.collectSoon() }),
    ...(options.corsOrigins === undefined ? {} : { corsOrigins: options.corsOrigins }),
  });
  const server = await listen(app.fetch, options.hostname, options.port);
  collector?.start();
  return {
    url: server.url,
    port: server.port,
    close: async () => {
      await server.close();
      await collector?.stop();
    },
  };
}
