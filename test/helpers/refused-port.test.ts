/** refusedPort: a connection to the port is refused, and no server can bind it until it is closed. */
import { once } from "node:events";
import { connect, createServer } from "node:net";
import { describe, expect, it, onTestFinished } from "vitest";
import { refusedPort } from "./refused-port.ts";

/** What a bind of `port` on 127.0.0.1 gets: "listening" (then closed at once) or the error's code. */
function bindOutcome(port: number): Promise<string | undefined> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once("error", (error: NodeJS.ErrnoException) => resolve(error.code));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve("listening")));
  });
}

describe("refusedPort", () => {
  it("refuses a connection (ECONNREFUSED) while held, several times over, and no server binds it", async () => {
    const { port, close } = await refusedPort();
    onTestFinished(close);
    for (let i = 0; i < 3; i++) {
      const socket = connect(port, "127.0.0.1");
      const [error] = (await once(socket, "error")) as [NodeJS.ErrnoException];
      expect(error.code).toBe("ECONNREFUSED");
    }
    expect(await bindOutcome(port)).toBe("EADDRINUSE");
  });
});
