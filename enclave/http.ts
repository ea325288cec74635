/**
 * A small HTTP listener for a fetch handler (hono app) on a given address, with a clean close.
 * Shared by the enclave and the host servers; it carries no protocol logic.
 */
import type { IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";

/** How long SIGTERM/SIGINT lets answers under way finish before a server stops (closeOnSignal). */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  /**
   * Stops accepting connections and resolves when every connection is closed. Requests under way
   * get up to `graceMs` (default 0) to finish — streamed answers included — and each connection is
   * closed as soon as it is idle; whatever is still open after `graceMs` is cut.
   */
  close(graceMs?: number): Promise<void>;
}

/** Serves a hono-style fetch handler on `hostname:port` (0 = any free port). */
export function listen(
  fetchHandler: (request: Request) => Response | Promise<Response>,
  hostname: string,
  port: number,
): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: fetchHandler, hostname, port }, (info: AddressInfo) => {
      const url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${info.port}`;
      resolve({
        url,
        port: info.port,
        close: (graceMs = 0) =>
          new Promise<void>((done) => {
            const s = server as unknown as {
              close(cb: () => void): void;
              closeAllConnections(): void;
              closeIdleConnections(): void;
            };
            // Keep-alive connections would otherwise stay open until their idle timeout: each is
            // closed once its last request has ended (checked every 25 ms), the rest at the deadline.
            const sweep = setInterval(() => s.closeIdleConnections(), 25);
            const deadline = setTimeout(() => s.closeAllConnections(), graceMs);
            s.close(() => {
              clearInterval(sweep);
              clearTimeout(deadline);
              done();
            });
            if (graceMs <= 0) s.closeAllConnections();
            else s.closeIdleConnections();
          }),
      });
    });
    server.once("error", reject);
  });
}

/**
 * Reads a request body from node's request, refusing more than `limit` bytes: `tooLarge` is
 * thrown for a declared or counted excess (the rest is left unread; the caller's 413 closes the
 * connection), `gone` when the client goes away mid-body.
 */
export function readBodyWithin(
  incoming: IncomingMessage,
  limit: number,
  errors: { tooLarge: (found: string) => Error; gone: (cause: Error) => Error },
): Promise<Uint8Array> {
  const declared = incoming.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(errors.tooLarge(declared));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const stop = () => {
      incoming.off("data", onData);
      incoming.off("end", onEnd);
      incoming.off("error", onError);
      incoming.off("aborted", onAborted);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > limit) {
        stop();
        incoming.pause();
        reject(errors.tooLarge(`more than ${limit}`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      stop();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total));
    };
    const onError = (error: Error) => {
      stop();
      reject(errors.gone(error));
    };
    const onAborted = () => onError(new Error("aborted"));
    incoming.on("data", onData);
    incoming.once("end", onEnd);
    incoming.once("error", onError);
    incoming.once("aborted", onAborted);
  });
}

/**
 * Runs until SIGINT or SIGTERM, then closes `server` — letting requests under way finish for up to
 * `graceMs` (a second signal cuts them at once) — and awaits `after` (the caller's own cleanup):
 * how `cloister enclave`, `host` and `kbs serve` shut down cleanly, losing no answer in progress.
 */
export function closeOnSignal(
  server: RunningServer,
  after: () => Promise<void> = async () => {},
  graceMs = 0,
): Promise<void> {
  return new Promise<void>((resolve) => {
    let closing: Promise<void> | null = null;
    const stop = () => {
      if (closing !== null) {
        // A second signal: stop waiting for requests under way.
        void server.close(0);
        return;
      }
      closing = server.close(graceMs);
      void closing.then(after).then(() => {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        resolve();
      });
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}
