/**
 * The host's default limits, in a module of their own so that the CLI's option defaults can name
 * them without loading the server (host/server.ts re-exports them).
 */
import type { HostOptions } from "./app.ts";

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
  maxInFlightPerKey: 64,
  requestBodyTimeoutMs: 30_000,
};
