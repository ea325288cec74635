/**
 * A port of 127.0.0.1 where a connection is refused (ECONNREFUSED) and that no other process can
 * take while the test holds it: the local port of a connection the test holds open to a server of
 * the tests' range. The kernel gives a connection a port no server is bound to, and binds it
 * without SO_REUSEADDR, so a server's bind of it fails until the connection closes (checked here).
 * A port picked by a server (port 0) and freed, as tests once used, could be taken and answered by
 * another process before the test connects to it.
 *
 * One way in is left: a connection to the port that the kernel gives that same port as its own
 * connects to itself (TCP's simultaneous open) and is not refused. Linux gives connections even
 * ports first (servers' port-0 picks odd ones), and the held port is a connection's: so about one
 * connection in 14,000 (the even ports of 32768-60999; tried: 1 of 30,000 connections to a held
 * port connected to itself). No port Node can hold closes both ways in: a port bound explicitly
 * (net.connect's localPort) is bound with SO_REUSEADDR, and a server can then bind and listen on it.
 */
import { once } from "node:events";
import { connect, createServer, type Socket } from "node:net";
import { listenOnTestPort } from "./test-ports.ts";

export interface RefusedPort {
  readonly port: number;
  /** Ends the held connection and its server; the port is then free for anyone. */
  close(): Promise<void>;
}

export async function refusedPort(): Promise<RefusedPort> {
  const accepted: Socket[] = [];
  const server = createServer((socket) => accepted.push(socket));
  const holder = connect(await listenOnTestPort(server), "127.0.0.1");
  const close = () =>
    new Promise<void>((resolve) => {
      holder.destroy();
      for (const socket of accepted) socket.destroy();
      server.close(() => resolve());
    });
  try {
    await once(holder, "connect");
    const port = holder.localPort as number;
    const other = createServer();
    const bound = await new Promise<string | undefined>((resolve) => {
      other.once("error", (error: NodeJS.ErrnoException) => resolve(error.code));
      other.listen(port, "127.0.0.1", () => other.close(() => resolve("listening")));
    });
    if (bound !== "EADDRINUSE") {
      throw new Error(`refusedPort: expected a bind of held port ${port} to fail with EADDRINUSE, found ${bound}`);
    }
    return { port, close };
  } catch (error) {
    await close();
    throw error;
  }
}
