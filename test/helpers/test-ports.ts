/**
 * The tests' ports: 47000–47999 on 127.0.0.1 (the project's rule: tests share the machine with
 * other helpers and services). A server is bound in the range directly, not probed and then bound,
 * so no other process takes the port in between.
 */
import type { Server } from "node:net";

export const TEST_PORTS = { first: 47_000, count: 1_000 } as const;

/**
 * Listens `server` on a free port of the range on `host` (127.0.0.1 unless given), trying each port
 * once from a random start (`start`, an offset in the range, when given), and returns the port.
 * Fails when every port is taken, or on any error other than a port in use.
 */
export async function listenOnTestPort(
  server: Server,
  host = "127.0.0.1",
  start = Math.floor(Math.random() * TEST_PORTS.count),
): Promise<number> {
  for (let i = 0; i < TEST_PORTS.count; i++) {
    const port = TEST_PORTS.first + ((start + i) % TEST_PORTS.count);
    const bound = await new Promise<boolean>((resolve, reject) => {
      // Each attempt's listeners go with it: a failed attempt's `listening` one, left behind, would
      // pile up (node warns MaxListenersExceeded after 10 taken ports in a row).
      const listening = () => {
        server.off("error", failed);
        resolve(true);
      };
      const failed = (error: NodeJS.ErrnoException) => {
        server.off("listening", listening);
        if (error.code === "EADDRINUSE") resolve(false);
        else reject(error);
      };
      server.once("error", failed);
      server.once("listening", listening);
      server.listen(port, host);
    });
    if (bound) return port;
  }
  throw new Error(`no free port in ${TEST_PORTS.first}..${TEST_PORTS.first + TEST_PORTS.count - 1} on ${host}`);
}
