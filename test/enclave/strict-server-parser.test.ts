/**
 * Every server the project starts (enclave/http.ts listenWith: the enclave's and the key broker's
 * through listenBeforeServing, the host's through listen, the local proxy's and the web page's through
 * listenLoopback, on 127.0.0.1 and [::1]) parses requests with node's strict HTTP parser, whatever
 * node's own options say (`--insecure-http-parser`, in NODE_OPTIONS or on the command line): the
 * lenient one takes a request with both Content-Length and Transfer-Encoding, and header values with
 * control characters, which a proxy in front may read otherwise (request smuggling). Run in a node
 * started with that option, the only way to have it.
 */
import { describe, expect, it } from "vitest";
import { ROOT, underInsecureParser } from "../helpers/insecure-parser.ts";

// A server from listen() and listenBeforeServing() each, and to each two raw requests on fresh
// connections: the status line each gets back (or "" when the connection closed with none).
const SCRIPT = `
import { connect } from "node:net";
import { listen, listenBeforeServing, listenLoopback } from "${ROOT}enclave/http.ts";

const REQUESTS = {
  both: "POST / HTTP/1.1\\r\\nHost: a\\r\\nContent-Length: 5\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n",
  control: "GET / HTTP/1.1\\r\\nHost: a\\r\\nX-A: a\\x01b\\r\\nConnection: close\\r\\n\\r\\n",
};
function statusLine(port, request, address = "127.0.0.1") {
  return new Promise((resolve) => {
    const socket = connect(port, address);
    let text = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk) => (text += chunk));
    socket.on("error", () => {});
    socket.on("close", () => resolve(text.split("\\r\\n")[0]));
    socket.write(request);
    setTimeout(() => socket.destroy(), 2000);
  });
}
const answer = () => new Response("ok");
const servers = {
  listen: await listen(answer, "127.0.0.1", 0),
  listenBeforeServing: await listenBeforeServing(answer, "127.0.0.1", 0),
  listenLoopback: await listenLoopback(answer, 0),
};
const result = {};
for (const [name, server] of Object.entries(servers)) {
  for (const [kind, request] of Object.entries(REQUESTS)) result[name + " " + kind] = await statusLine(server.port, request);
}
// listenLoopback's [::1] server too, where the machine has IPv6 loopback ("none" where it has not).
const v6 = await new Promise((resolve) => {
  const probe = connect(servers.listenLoopback.port, "::1");
  probe.on("connect", () => { probe.destroy(); resolve(true); });
  probe.on("error", () => resolve(false));
});
for (const [kind, request] of Object.entries(REQUESTS)) {
  result["listenLoopback [::1] " + kind] = v6 ? await statusLine(servers.listenLoopback.port, request, "::1") : "none";
}
for (const server of Object.values(servers)) await server.close();
console.log(JSON.stringify(result));
process.exit(0);
`;

describe("the project's servers' request parser", () => {
  it("refuses a smuggling-shaped request with 400, under --insecure-http-parser too", async () => {
    const result = await underInsecureParser<Record<string, string>>(SCRIPT);
    const v6 = result["listenLoopback [::1] both"] === "none" ? "none" : "HTTP/1.1 400 Bad Request";
    expect(result).toEqual({
      "listen both": "HTTP/1.1 400 Bad Request",
      "listen control": "HTTP/1.1 400 Bad Request",
      "listenBeforeServing both": "HTTP/1.1 400 Bad Request",
      "listenBeforeServing control": "HTTP/1.1 400 Bad Request",
      "listenLoopback both": "HTTP/1.1 400 Bad Request",
      "listenLoopback control": "HTTP/1.1 400 Bad Request",
      "listenLoopback [::1] both": v6,
      "listenLoopback [::1] control": v6,
    });
  }, 90_000);
});
