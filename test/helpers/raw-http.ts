/** HTTP as raw bytes on a socket, for what a client library would not send (malformed requests). */
import { connect } from "node:net";

/** Sends `bytes` on a fresh connection to `port` and resolves with all the server wrote before closing it. */
export function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within 4 s; received ${JSON.stringify(text)}`));
    }, 4000);
    socket.once("connect", () => socket.write(bytes));
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
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
