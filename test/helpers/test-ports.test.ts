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
    // Later in the range's order, which wraps: past 47999 it goes on at 47000.
    expect(next).not.toBe(taken);
    expect(next).toBeGreaterThanOrEqual(TEST_PORTS.first);
    expect(next).toBeLessThan(TEST_PORTS.first + TEST_PORTS.count);
    expect((next - taken + TEST_PORTS.count) % TEST_PORTS.count).toBeGreaterThan(0);
  });

  it("leaves no listener of a failed attempt behind (they piled up: MaxListenersExceeded)", async () => {
    const taken = await listenOnTestPort(server(), "127.0.0.1", 0);
    const made = server();
    // The server's listeners at each attempt: the same at every one, the taken port's included.
    const seen: string[] = [];
    const listen = made.listen.bind(made);
    made.listen = ((...args: Parameters<Server["listen"]>) => {
      seen.push(`listening ${made.listenerCount("listening")}, error ${made.listenerCount("error")}`);
      return listen(...args);
    }) as Server["listen"];
    const port = await listenOnTestPort(made, "127.0.0.1", taken - TEST_PORTS.first);
    expect(port).not.toBe(taken);
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(new Set(seen)).toEqual(new Set([seen[0]]));
    expect({ listening: made.listenerCount("listening"), error: made.listenerCount("error") }).toEqual({
      listening: 0,
      error: 0,
    });
  });
});
