/**
 * The key broker's bounds on one connection (enclave/connection-guards.ts), as `kbs serve` listens:
 * a client pipelining more requests than it may have under way loses its connection, and so does
 * one that stops taking its answers, which otherwise held its connection for ever.
 */
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { CLIENT_LIMITS, KeyBroker } from "../../attestation/kbs/broker.ts";
import { type BrokerAppOptions, createBrokerApp } from "../../attestation/kbs/server.ts";
import { type ListenOptions, listen, type RunningServer } from "../../enclave/http.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const servers: RunningServer[] = [];

afterEach(async () => {
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
    // No bound on requests under way here: the stall alone must close the connection.
    const server = await serve({ clientStallTimeoutMs: 200, maxRequestsPerConnection: 100_000 }, { maxConnections: 1 });
    // Health checks asked for in one go (about 6 MB of answers, more than the buffers between
    // broker and client hold) and never read: the broker sends until those are full, then waits.
    const stalled = connect(server.port, "127.0.0.1");
    stalled.pause();
    stalled.on("error", () => {});
    stalled.write("GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".repeat(40_000));
    // With the only connection the broker allows taken, another client is served once the stalled
    // one is closed (within 2 × 200 ms, and the time to answer 40 000 requests on this machine).
    let served: Response | null = null;
    for (let i = 0; i < 100 && served === null; i++) {
      served = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(1000) }).catch(() => null);
      if (served === null) await sleep(50);
    }
    stalled.destroy();
    expect(served?.status).toBe(200);
  });
});
