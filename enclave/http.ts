/**
 * A small HTTP listener for a fetch handler (hono app) on a given address, with a clean close.
 * Shared by the enclave and the host servers; it carries no protocol logic.
 */
import type { IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
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
        close: () =>
          new Promise<void>((done) => {
            const s = server as unknown as { close(cb: () => void): void; closeAllConnections?: () => void };
            s.close(() => done());
            s.closeAllConnections?.();
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
 * Runs until SIGINT or SIGTERM, then closes `server` and awaits `after` (the caller's own cleanup):
 * how `cloister enclave`, `host` and `kbs serve` shut down cleanly.
 */
export function closeOnSignal(server: RunningServer, after: () => Promise<void> = async () => {}): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      void server.close().then(after).then(resolve);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}
