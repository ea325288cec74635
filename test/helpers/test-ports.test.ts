/** listenOnTestPort: binds in 47000–47999 on 127.0.0.1, past a port already taken, never elsewhere. */
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { listenOnTestPort, TEST_PORTS } from "./test-ports.ts";

const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

function server(): Server {
  const made = createServer();
  servers.push(made);
  return made;
}

describe("listenOnTestPort", () => {
  it("binds on 127.0.0.1 at a port of the range", async () => {
    const made = server();
    const port = await listenOnTestPort(made);
    expect(port).toBeGreaterThanOrEqual(TEST_PORTS.first);
    expect(port).toBeLessThan(TEST_PORTS.first + TEST_PORTS.count);
    expect(made.address()).toEqual({ address: "127.0.0.1", family: "IPv4", port });
  });

  it("takes a later port of the range when the one it tries first is taken", async () => {
    const taken = await listenOnTestPort(server(), "127.0.0.1", 0);
    const next = await listenOnTestPort(server(), "127.0.0.1", taken - TEST_PORTS.first);
    expect(next).toBeGreaterThan(taken);
    expect(next).toBeLessThan(TEST_PORTS.first + TEST_PORTS.count);
  });
});
