/**
 * docs/deploy.md's "Verifying the audit log" tells an operator behind a pool how to name the boot
 * whose log they check: by the key id the host's log gives each member (`pool: enclave N is ready
 * (key id …) at "…"`, with its URL), with `attest` and `audit checkpoint --enclave`. The line the
 * page quotes is checked here against the lines a host with a pool of two writes; the commands'
 * options and values are checked with every other command of the docs (command-lines.test.ts),
 * what they do end to end by test/e2e/pool.test.ts.
 */

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { base64url } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { documentKeyId } from "../../host/pool.ts";
import { pageSection } from "../helpers/doc-pages.ts";
import { startPoolHost } from "../helpers/pool-host.ts";

const API_KEY = "ck_docs_test_0123456789abcdef";

/** The page's paragraph on verifying the audit log, white space runs as one space. */
const auditParagraph = () => pageSection("docs/deploy.md", "**Verifying the audit log.**", "\n## 6. ");

function documentFor(key: Uint8Array): string {
  const payload = base64url.encode(
    JSON.stringify({ cnf: { jwk: { kty: "OKP", crv: "X25519", x: base64url.encode(key) } } }),
  );
  return `e30.${payload}.c2ln`;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

describe("docs/deploy.md: naming a pool member to check its boot's audit log", () => {
  it("quotes the line a pool host logs for each member's key id, and the commands that take it", async () => {
    const paragraph = auditParagraph();
    const quoted = /`(pool: enclave N is ready \(key id …\) at "…")`/.exec(paragraph)?.[1];
    expect(quoted, "the host's log line for a member's key id").toBeDefined();
    const logged: string[] = [];
    const documents: string[] = [];
    for (const n of [1, 2]) {
      const document = documentFor(new Uint8Array(32).fill(n));
      documents.push(document);
      const server = createServer((_req, res) => {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ document }));
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      servers.push(server);
    }
    const urls = servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`);
    const host = await startPoolHost(urls, API_KEY, (line) => logged.push(line));
    // The page's /healthz command, as pasted (its API key file read), lists the members' fields it names.
    const curl = /\bcurl -H "([^:]+): Bearer \$\(cat ([^)]+)\)" https:\/\/cloister\.example(\/healthz) /.exec(
      paragraph,
    );
    expect(curl, "the page's /healthz command").not.toBeNull();
    const [, header, keyFile, path] = curl as RegExpExecArray;
    expect(keyFile).toBe("keys/alice.api-key");
    const authorization = { [header as string]: `Bearer ${API_KEY}` };
    const health = (await (await fetch(`${host.url}${path}`, { headers: authorization })).json()) as {
      enclaves?: Record<string, unknown>[];
    };
    const fields = /lists them to an API key that may attest \(`enclaves`: ((?:`\w+`(?:, )?)+)\)/.exec(paragraph)?.[1];
    expect(fields, "the /healthz fields the page names").toBeDefined();
    for (const member of health.enclaves ?? []) {
      for (const field of (fields as string).match(/\w+/g) ?? []) expect(member).toHaveProperty(field);
    }
    expect(health.enclaves?.map((member) => member.keyId)).toEqual(documents.map(documentKeyId));
    // The host's refusal of a key id no member has, in the words the page quotes.
    const quotedUnknown = /`(no enclave of this host has it now)` for/.exec(paragraph)?.[1];
    expect(quotedUnknown, "the page's words for a key id no member has").toBeDefined();
    const refused = await fetch(`${host.url}/v1/attestation?enclave=${"0".repeat(32)}`, { headers: authorization });
    const body = (await refused.json()) as { error: { code: string; message: string } };
    expect({ status: refused.status, code: body.error.code }).toEqual({ status: 409, code: "WRONG_ENCLAVE_KEY" });
    expect(body.error.message).toContain(quotedUnknown as string);
    await host.close();
    // The page's line, with N for the member's index, … for its key id, then … for its URL.
    const shape = new RegExp(
      `^${(quoted as string)
        .replace(/[()]/g, "\\$&")
        .replace("N", "(\\d+)")
        .replace("…", "([0-9a-f]{32})")
        .replace("…", '([^"]+)')}$`,
    );
    const ready = logged.map((line) => shape.exec(line)).filter((match) => match !== null);
    // One line each, in the order the members answered: compared by index.
    expect(ready.map((match) => [match[1], match[2], match[3]]).sort()).toEqual(
      documents.map((document, index) => [String(index), documentKeyId(document), urls[index]]),
    );
    // The commands that take that key id, in the page's shell block.
    expect(paragraph).toMatch(/npx cloister attest [^`]*--enclave [0-9a-f]{32}/);
    expect(paragraph).toMatch(/npx cloister audit checkpoint [^`]*--enclave [0-9a-f]{32}/);
  });
});
