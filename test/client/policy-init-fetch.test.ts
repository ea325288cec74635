/**
 * `cloister policy init` fetches the deployment's document as connect() does: no redirect
 * followed (the API key would go wherever the host points), the SDK's errors.
 */

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCloister } from "../helpers/cli.ts";

function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`)),
  );
}

describe("cloister policy init", () => {
  let dir: string;
  const reached: string[] = [];
  const target = createServer((req, res) => {
    reached.push(`${req.method} ${req.url} ${req.headers.authorization ?? ""}`);
    res.end("{}");
  });
  let targetUrl: string;
  const host = createServer((req, res) => {
    res.writeHead(307, { location: `${targetUrl}${req.url}` }).end();
  });
  let hostUrl: string;
  /** A host answering a document of its choice (a malformed one). */
  let documentAnswer = "";
  const malformed = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ document: documentAnswer }));
  });
  let malformedUrl: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "cloister-policy-init-"));
    await writeFile(join(dir, "api-key"), "ck_policy_init_secret_0123\n", { mode: 0o600 });
    await writeFile(join(dir, "operator.jwk"), JSON.stringify({ kty: "OKP", crv: "Ed25519", x: "AAAA" }));
    targetUrl = await listen(target);
    hostUrl = await listen(host);
    malformedUrl = await listen(malformed);
  });
  afterAll(async () => {
    await Promise.all([target, host, malformed].map((s) => new Promise((resolve) => s.close(resolve))));
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses a host that redirects (HOST_REDIRECT, exit 1) and sends nothing, the API key included, to its target", async () => {
    const run = await runCloister(
      ["policy", "init", "--url", hostUrl, "--operator-key", "operator.jwk", "--api-key-file", "api-key"],
      { cwd: dir, timeoutMs: 30_000 },
    );
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain(
      `HOST_REDIRECT: ${hostUrl}/v1/attestation: the server at that URL answered with a redirect (HTTP 307), which the SDK does not follow`,
    );
    expect(run.stderr).not.toContain("ck_policy_init_secret_0123");
    expect(reached).toEqual([]);
  });

  it("says what is wrong with a malformed document's payload: its parts, its JSON, or a payload that is no object", async () => {
    for (const [document, expected] of [
      ["eyJ9.e30.c2ln.eA", "DOCUMENT_MALFORMED: attestation document: expected 3 JWS parts, found more than 3"],
      ["eyJ9.e30=.c2ln", "DOCUMENT_MALFORMED: attestation document payload: expected base64url"],
      ["eyJ9.bnVsbA.c2ln", "DOCUMENT_MALFORMED: attestation document payload: expected a JSON object, found null"],
      // {"a":1,"a":2}: JSON the reader refuses is named as its other refusals are, quoting nothing.
      [
        "eyJ9.eyJhIjoxLCJhIjoyfQ.c2ln",
        "DOCUMENT_MALFORMED: attestation document payload: a appears twice in one object (the second at position 7)",
      ],
    ]) {
      documentAnswer = document as string;
      const run = await runCloister(
        ["policy", "init", "--url", malformedUrl, "--operator-key", "operator.jwk", "--api-key-file", "api-key"],
        { cwd: dir, timeoutMs: 30_000 },
      );
      expect(run.code, run.stderr).toBe(1);
      expect(run.stderr).toContain(expected);
      expect(run.stderr).not.toContain("TypeError");
    }
  });
});
