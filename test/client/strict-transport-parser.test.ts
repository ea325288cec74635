/**
 * The SDK's node transport (client/node-transport.ts) reads the host's answers with node's strict
 * HTTP parser, whatever node's own options say (`--insecure-http-parser`, in NODE_OPTIONS or on the
 * command line): the host is untrusted, and the lenient parser takes an answer with both
 * Content-Length and Transfer-Encoding (framed one way by the client, another by a proxy between).
 * Run in a node started with that option, the only way to have it.
 */
import { describe, expect, it } from "vitest";
import { ROOT, underInsecureParser } from "../helpers/insecure-parser.ts";

// A raw host answering with both framings, and one request through the transport: its outcome.
const SCRIPT = `
import { createServer } from "node:net";
import { nodeTransport } from "${ROOT}client/node-transport.ts";

const host = createServer((socket) => {
  socket.on("error", () => {});
  socket.once("data", () =>
    socket.end("HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\nTransfer-Encoding: chunked\\r\\nConnection: close\\r\\n\\r\\n0\\r\\n\\r\\n"),
  );
});
await new Promise((resolve) => host.listen(0, "127.0.0.1", resolve));
let outcome;
try {
  const response = await nodeTransport({ idleTimeoutMs: 5000 })("http://127.0.0.1:" + host.address().port + "/v1/attestation", { method: "GET", headers: {} });
  outcome = "answered " + response.status;
} catch (error) {
  outcome = "refused " + error.code;
}
console.log(JSON.stringify({ outcome }));
process.exit(0);
`;

describe("the SDK's node transport's parser", () => {
  it("refuses a host answer with two framings, under --insecure-http-parser too", async () => {
    const result = await underInsecureParser<{ outcome: string }>(SCRIPT);
    expect(result.outcome).toMatch(/^refused HPE_/); // node names it HPE_INVALID_TRANSFER_ENCODING
  }, 90_000);
});
