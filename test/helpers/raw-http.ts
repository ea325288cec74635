/** HTTP as raw bytes on a socket, for what a client library would not send (malformed requests). */
import { connect } from "node:net";

/**
 * Sends `bytes` on a fresh connection to `port` and resolves with all the server wrote before closing
 * it. `then`, given the first line the server writes, returns what to send next (e.g. a body after
 * `100 Continue`), or nothing.
 */
export function rawExchange(
  port: number,
  bytes: string,
  then: (firstLine: string) => string | undefined = () => undefined,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within 4 s; received ${JSON.stringify(text)}`));
    }, 4000);
    socket.once("connect", () => socket.write(bytes));
    let firstLine = "";
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
      if (firstLine === "" && text.includes("\r\n")) {
        firstLine = text.slice(0, text.indexOf("\r\n"));
        const next = then(firstLine);
        if (next !== undefined) socket.write(next);
      }
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}
