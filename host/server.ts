/** Starts the host's HTTP server (loopback by default) and stops it cleanly. */
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { AccessLogSink } from "./access-log.ts";
import { createHostApp, type HostOptions } from "./app.ts";
import type { ApiKeyStore } from "./identity.ts";

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export const DEFAULT_HOST_LIMITS: HostOptions["limits"] = {
  maxRequestBytes: 1024 * 1024,
  upstreamHeadersTimeoutMs: 30_000,
  upstreamIdleTimeoutMs: 120_000,
  maxInFlight: 64,
  maxQueued: 256,
  queueTimeoutMs: 10_000,
  retryAfterSeconds: 2,
};

/** Serves a hono-style fetch handler on `hostname:port` (0 = any free port). */
export function listen(
  fetchHandler: (request: Request) => Response | Promise<Response>,
  hostname: string,
  port: number,
): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: fetchHandler, hostname, port }, (info: AddressInfo) => {
      const url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${info.port}`;
      resolve({
        url,
        port: info.port,
        close: () =>
          new Promise<void>((done) => {
            const s = server as unknown as { close(cb: () => void): void; closeAllConnections?: () => void };
            s.close(() => done());
            s.closeAllConnections?.();
          }),
      });
    });
    server.once("error", reject);
  });
}

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
