/** Servers on the tests' port range (test-ports.ts): a fetch handler on enclave/http.ts `listen`; closing one. */
import type { Server } from "node:http";
import { ListenError, listen, type RunningServer } from "../../enclave/http.ts";
import { TEST_PORTS } from "./test-ports.ts";

/** `listen` on 127.0.0.1, trying each port of the tests' range once from a random start. */
export async function listenInRange(app: { fetch: Parameters<typeof listen>[0] }): Promise<RunningServer> {
  const start = Math.floor(Math.random() * TEST_PORTS.count);
  for (let i = 0; i < TEST_PORTS.count; i++) {
    try {
      return await listen(app.fetch, "127.0.0.1", TEST_PORTS.first + ((start + i) % TEST_PORTS.count));
    } catch (error) {
      if (!(error instanceof ListenError && error.code === "EADDRINUSE")) throw error;
    }
  }
  throw new Error("no free port in the tests' range");
}

/** Closes node's `server` and cuts its connections, kept-alive ones included; resolves once closed. */
export function closeNow(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
