/** Starts the host's HTTP server (loopback by default) and stops it cleanly. */
import { listen, type RunningServer } from "../enclave/http.ts";
import type { AccessLogSink } from "./access-log.ts";
import { createHostApp, type HostOptions } from "./app.ts";
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
}): Promise<RunningServer> {
  const app = createHostApp({
    enclaveUrl: options.enclaveUrl,
    apiKeys: options.apiKeys,
    accessLog: options.accessLog,
    limits: { ...DEFAULT_HOST_LIMITS, ...options.limits },
  });
  return listen(app.fetch, options.hostname, options.port);
}
