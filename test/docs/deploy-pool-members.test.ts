/**
 * docs/deploy.md's "A pool." paragraph (step 4) tells an operator how the host names a pool's
 * members and which commands name one. Checked here: the numbering it gives (`--enclave-url` order,
 * from 0) and the two lines it quotes against what a host with a pool of two logs when the first
 * member serves and then stops answering, and the reasons it gives while a member drains (SIGTERM, the
 * way the paragraph says to stop one); and that the commands it says name a member are the ones
 * whose command line takes `--enclave`. What a client sees when its member goes is tested end to end
 * by test/e2e/pool.test.ts.
 */

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { base64url } from "jose";
import { afterEach, describe, expect, it } from "vitest";
import { buildProgram, commandTree } from "../../client/cli/program.ts";
import { createEnclavePool } from "../../host/app.ts";
import { documentKeyId } from "../../host/pool.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";
import { pageSection } from "../helpers/doc-pages.ts";
import { startPoolHost } from "../helpers/pool-host.ts";

const API_KEY = "ck_docs_pool_0123456789abcdef";

/** The page's paragraph on a pool, white space runs as one space. */
const poolParagraph = () => pageSection("docs/deploy.md", "**A pool.**", "`--api-keys` is a JSON file");

function documentFor(fill: number): string {
  const key = new Uint8Array(32).fill(fill);
  const payload = base64url.encode(
    JSON.stringify({ cnf: { jwk: { kty: "OKP", crv: "X25519", x: base64url.encode(key) } } }),
  );
  return `e30.${payload}.c2ln`;
}

const servers: Server[] = [];
async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
afterEach(async () => {
  for (const server of servers.splice(0)) if (server.listening) await closeServer(server);
});

/**
 * A line the page quotes, `N`-free: its member 0, `…` for the key id, its example's URL (any
 * quoted URL: the host's are the test's) and, after `: `, the reason.
 */
function lineShape(quoted: string): RegExp {
  const escaped = quoted
    .replace(/[()]/g, "\\$&")
    .replace("…", "([0-9a-f]{32})")
    .replace(/ at "[^"]+"/, ' at "([^"]+)"')
    .replace(/: …$/, ": (.+)");
  return new RegExp(`^${escaped}$`);
}

describe("docs/deploy.md step 4: a pool's members", () => {
  it("numbers members in --enclave-url order from 0, in the lines the host logs when one serves and stops", async () => {
    const paragraph = poolParagraph();
    expect(paragraph).toContain("numbered from 0 in the order given");
    const readyQuoted = /`(pool: enclave 0 is ready \(key id …\) at "[^"]+")` when the first URL's enclave serves/.exec(
      paragraph,
    )?.[1];
    const downQuoted =
      /`(pool: enclave 0 is unreachable \(key id …\) at "[^"]+": …)` with the reason when it stops answering \(((?:[^()]|\([^()]*\))+)\)/.exec(
        paragraph,
      );
    expect(readyQuoted, "the page's line for a member that serves").toBeDefined();
    expect(downQuoted, "the page's line for a member that stopped, and its first reason").not.toBeNull();
    const logged: string[] = [];
    // Member 1 answers first, so a host numbering members by who answered first would log it as 0.
    const documents = [documentFor(1), documentFor(2)];
    let releaseFirst: () => void = () => {};
    const firstHeld = new Promise<void>((resolve) => {
      releaseFirst = resolve;
    });
    for (const [index, document] of documents.entries()) {
      const server = createServer((_req, res) => {
        const answer = () =>
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ document }));
        if (index === 0) void firstHeld.then(answer);
        else answer();
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      servers.push(server);
    }
    const urls = servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`);
    // The second member's ready line comes first (the host's first read of the first is held); then
    // the first member answers. Awaited as an event: a bounded wait that ran out let them race.
    let firstLine: () => void = () => {};
    const firstLogged = new Promise<void>((resolve) => {
      firstLine = resolve;
    });
    const hostStarted = startPoolHost(urls, API_KEY, (line) => {
      logged.push(line);
      if (line.startsWith("pool: enclave ")) firstLine();
    });
    await firstLogged;
    expect(logged, "the second member's line, before the first member answered").toEqual([
      expect.stringMatching(/^pool: enclave 1 is ready /),
    ]);
    releaseFirst();
    const host = await hostStarted;
    const ready = lineShape(readyQuoted as string);
    const firstReady = logged.map((line) => ready.exec(line)).find((match) => match !== null);
    expect(firstReady?.[1], "member 0 is the first --enclave-url's enclave").toBe(
      documentKeyId(documents[0] as string),
    );
    expect(firstReady?.[2], "the line names member 0's URL").toBe(urls[0]);
    // The first member stops; a document read naming it finds it gone and the host logs it.
    await closeServer(servers[0] as Server);
    const authorization = { authorization: `Bearer ${API_KEY}` };
    const named = await fetch(`${host.url}/v1/attestation?enclave=${documentKeyId(documents[0] as string)}`, {
      headers: authorization,
    });
    await named.body?.cancel();
    const health = (await (await fetch(`${host.url}/healthz`, { headers: authorization })).json()) as {
      enclaves: { index: number; keyId: string; state: string; reason: string | null }[];
    };
    await host.close();
    const down = lineShape((downQuoted as RegExpExecArray)[1] as string);
    const downLines = logged.map((line) => down.exec(line)).filter((match) => match !== null);
    expect(downLines.map((match) => [match[1], match[2]])).toEqual([[documentKeyId(documents[0] as string), urls[0]]]);
    // The reasons the page quotes, each in backquotes in its parenthesis.
    const pageReasons = [...((downQuoted as RegExpExecArray)[2] as string).matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    expect(pageReasons, "a reason the host gives is one the page quotes").toContain(downLines[0]?.[3]);
    expect(health.enclaves[0]).toMatchObject({ index: 0, state: "unreachable", reason: downLines[0]?.[3] });
    // `/healthz`'s member fields, as the paragraph lists them.
    const fields = /\(`index`, `keyId`, `state`, `reason`, `inFlight`\)/.exec(paragraph)?.[0].match(/\w+/g) ?? [];
    expect(Object.keys(health.enclaves[1] ?? {}).sort()).toEqual([...fields].sort());
  });

  it("quotes the reasons the host logs for a member that drains (SIGTERM), as the paragraph says to stop one", async () => {
    const said =
      /or while it drains \(`([^`]+)` when a client's read or sealed request found it so, `([^`]+)` when the host's own read did\)/.exec(
        poolParagraph(),
      );
    expect(said, "the page's reasons for a member that drains").not.toBeNull();
    const documents = [documentFor(4), documentFor(5)];
    let draining = false;
    for (const [index, document] of documents.entries()) {
      const server = createServer((_req, res) => {
        if (index === 0 && draining) {
          res.writeHead(503, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: { code: "ENCLAVE_DRAINING", message: "the enclave is shutting down" } }));
          return;
        }
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ document }));
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      servers.push(server);
    }
    const logged: string[] = [];
    const urls = servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`);
    const host = await startPoolHost(urls, API_KEY, (line) => logged.push(line));
    const authorization = { authorization: `Bearer ${API_KEY}` };
    draining = true;
    // A client's new session: member 0 is asked first (both ready, none in flight), then the next.
    for (let i = 0; i < 2 && !logged.some((line) => line.endsWith(": draining")); i++) {
      await (await fetch(`${host.url}/v1/attestation`, { headers: authorization })).body?.cancel();
    }
    // A key id no member has, while member 0 is not ready: the host reads its pool again.
    await (
      await fetch(`${host.url}/v1/attestation?enclave=${"0".repeat(32)}`, { headers: authorization })
    ).body?.cancel();
    await host.close();
    const keyId = documentKeyId(documents[0] as string);
    expect(logged.filter((line) => line.startsWith("pool: enclave 0 is unreachable"))).toEqual([
      `pool: enclave 0 is unreachable (key id ${keyId}) at "${urls[0]}": ${(said as RegExpExecArray)[1]}`,
      `pool: enclave 0 is unreachable (key id ${keyId}) at "${urls[0]}": ${(said as RegExpExecArray)[2]}`,
    ]);
  });

  it("quotes the reason the host's own read of a stopped member gives, the one a client's read gives", async () => {
    const reasons =
      /with the reason when it stops answering \(`([^`]+)` when a read of its document found it gone, the host's own or a client's,/.exec(
        poolParagraph(),
      );
    expect(reasons, "the page's reason for the host's own read").not.toBeNull();
    const document = documentFor(3);
    const server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ document }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push(server);
    const pool = createEnclavePool([`http://127.0.0.1:${(server.address() as AddressInfo).port}`], {
      limits: DEFAULT_HOST_LIMITS,
    });
    await pool.refresh();
    expect(pool.status()[0]).toMatchObject({ state: "ready", keyId: documentKeyId(document) });
    await closeServer(server);
    await pool.refresh();
    await pool.stop();
    expect(pool.status()[0]).toMatchObject({ state: "unreachable", reason: (reasons as RegExpExecArray)[1] });
  });

  it("says which commands name a member: those whose command line takes --enclave", () => {
    const paragraph = poolParagraph();
    const said = /Only `attest`, `audit checkpoint` and `policy init` name a member \(`--enclave` and its key id/.exec(
      paragraph,
    );
    expect(said, "the page's list of commands that name a member").not.toBeNull();
    const taking = commandTree(buildProgram())
      .filter((command) => command.options.some((option) => option.long === "--enclave"))
      .map((command) => {
        const names: string[] = [];
        for (let c: typeof command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
        return names.join(" ");
      })
      .sort();
    expect(taking).toEqual(["attest", "audit checkpoint", "policy init"]);
    // The ones it says take the member the host offers do not take --enclave.
    expect(paragraph).toContain("`chat`, `proxy` and `web` take the one the host offers");
  });
});
