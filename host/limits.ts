/**
 * The host's default limits, in a module of their own so that the CLI's option defaults can name
 * them without loading the server (host/server.ts re-exports them).
 */
import type { HostOptions } from "./app.ts";

/**
 * One API key's share of the forwarding slots by default: half of them (at least one), so with
 * every slot wanted, one key holds at most half and the others are served from the queue.
 */
export function defaultMaxInFlightPerKey(maxInFlight: number): number {
  return Math.max(1, Math.floor(maxInFlight / 2));
}

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
  maxInFlightPerKey: defaultMaxInFlightPerKey(64),
  requestBodyTimeoutMs: 30_000,
};
