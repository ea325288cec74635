/**
 * The key broker's bounds on one connection (enclave/connection-guards.ts), as `kbs serve` listens:
 * a client pipelining more requests than it may have under way loses its connection, and so does
 * one that stops taking its answers, which otherwise held its connection for ever.
 */
import { connect } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CLIENT_LIMITS, KeyBroker } from "../../attestation/kbs/broker.ts";
import { type BrokerAppOptions, createBrokerApp } from "../../attestation/kbs/server.ts";
import { type ListenOptions, listen, type RunningServer } from "../../enclave/http.ts";
import { holdTimeouts } from "../helpers/held-timers.ts";

/** The broker's stall timeout here: a time no other timer of the test is set for (held). */
const STALL_MS = 4_321;
const servers: RunningServer[] = [];

afterEach(async () => {
  vi.restoreAllMocks();
  for (const server of servers.splice(0)) await server.close();
});

async function serve(options: BrokerAppOptions, listenOptions: ListenOptions = {}): Promise<RunningServer> {
  const broker = new KeyBroker([], { clientLimits: CLIENT_LIMITS });
  const server = await listen(createBrokerApp(broker, () => {}, options).fetch, "127.0.0.1", 0, listenOptions);
  servers.push(server);
  return server;
}

describe("key broker connections", () => {
  it("closes a connection with more requests under way at once than maxRequestsPerConnection (pipelined)", async () => {
    const server = await serve({ maxRequestsPerConnection: 4 });
    const client = connect(server.port, "127.0.0.1");
    let answers = "";
    client.on("data", (chunk: Buffer) => void (answers += chunk.toString("latin1")));
    client.on("error", () => {}); // reset: the broker closes it with requests unread
    const closed = new Promise((resolve) => client.once("close", resolve));
    client.write("GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".repeat(200));
    // The bound is a count, not a time: the close is awaited as it comes (if it never does, the
    // test's timeout fails it). Without the bound every one is answered, and the connection closes
    // only when idle (keep-alive): the answers counted then are 200.
    await closed;
    expect(answers.split("HTTP/1.1 200").length - 1).toBeLessThanOrEqual(4);
  });

  it("closes the connection of a client that takes none of its answers, so it cannot hold a connection for ever", async () => {
    // The broker's stall checks are held: each runs when the test fires it, not after a time.
    const { held } = holdTimeouts(STALL_MS);
    // No bound on requests under way here: the stall alone must close the connection.
    const server = await serve(
      { clientStallTimeoutMs: STALL_MS, maxRequestsPerConnection: 100_000 },
      { maxConnections: 1 },
    );
    // Health checks asked for in one go (about 6 MB of answers, more than the buffers between
    // broker and client hold) and never read: the broker sends until those are full, then waits.
    const stalled = connect(server.port, "127.0.0.1");
    stalled.pause();
    stalled.on("error", () => {});
    const closed = new Promise((resolve) => stalled.once("close", resolve));
    stalled.write("GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".repeat(40_000));
    // A check while the broker still sends finds nothing waiting on the client; once its answer
    // waits, two checks with nothing taken between them close the connection. The client, paused,
    // sees no close: another client, asked for between two checks, is turned away at once while the
    // stalled one holds the only connection the broker allows, and served once it is closed.
    let served: Response | null = null;
    for (let check = 0; check < 1_000 && served === null; check++) {
      held.at(-1)?.fire();
      served = await fetch(`${server.url}/healthz`).catch(() => null);
    }
    expect(served?.status).toBe(200);
    // The stalled connection itself was closed: reading now, the client finds its end.
    stalled.resume();
    await closed;
  });
});
