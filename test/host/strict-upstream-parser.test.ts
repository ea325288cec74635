/**
 * The host reads the enclave's answers with node's strict HTTP parser, whatever node's own options
 * say (`--insecure-http-parser`, in NODE_OPTIONS or on the command line): the lenient one takes
 * header values with control characters that node's writeHead then refuses, and a sealed answer's
 * headers are passed on to the client as they came (host/app.ts pipeAnswer). Run in a node started
 * with that option, the only way to have it.
 */
import { describe, expect, it } from "vitest";
import { ROOT, underInsecureParser } from "../helpers/insecure-parser.ts";

// A raw enclave answering a sealed request with a control character (0x01) in its content type,
// a host in front of it, and one sealed request: what the client gets, and whether the host let go
// of the enclave's connection.
const SCRIPT = `
import { createServer } from "node:net";
import { hashApiKey } from "${ROOT}client/cli/api-key-hash.ts";
import { listen } from "${ROOT}enclave/http.ts";
import { createHostApp } from "${ROOT}host/app.ts";
import { ApiKeyStore } from "${ROOT}host/identity.ts";
import { DEFAULT_HOST_LIMITS } from "${ROOT}host/server.ts";
import { ENVELOPE_PREFIX_LENGTH, encodeEnvelopePrefix } from "${ROOT}sealed/envelope.ts";

const KEY = "ck_test_0123456789abcdef";
let enclaveClosed = null;
const enclave = createServer((socket) => {
  enclaveClosed = new Promise((resolve) => socket.once("close", () => resolve(true)));
  socket.on("error", () => {});
  socket.once("data", () => socket.write("HTTP/1.1 200 OK\\r\\ncontent-type: a\\x01b\\r\\ntransfer-encoding: chunked\\r\\n\\r\\n1\\r\\nx\\r\\n"));
});
await new Promise((resolve) => enclave.listen(0, "127.0.0.1", resolve));
const app = createHostApp({
  enclaveUrl: "http://127.0.0.1:" + enclave.address().port,
  apiKeys: new ApiKeyStore({ version: 1, keys: [{ id: "team-a", project: "demo", sha256: hashApiKey(KEY), permissions: ["chat"], requestsPerMinute: 100 }] }),
  limits: { ...DEFAULT_HOST_LIMITS, upstreamIdleTimeoutMs: 600_000 },
  accessLog: () => {},
});
const host = await listen(app.fetch, "127.0.0.1", 0);
const ciphertext = new Uint8Array(64);
const body = new Uint8Array(ENVELOPE_PREFIX_LENGTH + ciphertext.length);
body.set(encodeEnvelopePrefix("chat", new Uint8Array(16).fill(7), ciphertext.length, new Uint8Array(32).fill(1), new Uint8Array(24).fill(2)));
const response = await fetch(host.url + "/v1/sealed", {
  method: "POST",
  body,
  headers: { authorization: "Bearer " + KEY, "content-type": "application/octet-stream" },
});
const text = await response.text();
// Awaited as it comes, not raced against a time: a host that held the connection leaves the script
// running until the helper's own time limit, which fails the test.
console.log(JSON.stringify({ status: response.status, text, enclaveClosed: await enclaveClosed }));
process.exit(0);
`;

describe("the host's upstream parser", () => {
  it("refuses an enclave answer with a control character in a header as unreachable, under --insecure-http-parser too", async () => {
    const result = await underInsecureParser<{ status: number; text: string; enclaveClosed: boolean }>(SCRIPT);
    expect(result.status).toBe(502);
    expect(JSON.parse(result.text)).toMatchObject({ error: { code: "ENCLAVE_UNREACHABLE" } });
    expect(result.enclaveClosed).toBe(true);
  }, 90_000);
});
