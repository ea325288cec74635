/**
 * `cloister web` asks the host the browser's preflight question at start, to name a missing
 * --cors-origin. A browser follows no redirect for a preflight, so neither does the check.
 */
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_WEB_ORIGIN } from "../../client/cli/commands.ts";
import { hostAllowsOrigin, webStartLines } from "../../client/cli/run-web.ts";

const ORIGIN = "http://127.0.0.1:47999";

function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`)),
  );
}

describe("cloister web's preflight check", () => {
  const reached: string[] = [];
  // Answers every preflight as allowed: the host the redirect points at.
  const allowing = createServer((req, res) => {
    reached.push(`${req.method} ${req.url}`);
    res.writeHead(204, { "access-control-allow-origin": req.headers.origin ?? "" }).end();
  });
  let allowingUrl = "";
  const redirecting = createServer((req, res) => {
    res.writeHead(307, { location: `${allowingUrl}${req.url}` }).end();
  });
  let redirectingUrl = "";
  beforeAll(async () => {
    allowingUrl = await listen(allowing);
    redirectingUrl = await listen(redirecting);
  });
  afterAll(async () => {
    await Promise.all([allowing, redirecting].map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it("says allowed for a host that lists the origin", async () => {
    expect(await hostAllowsOrigin(allowingUrl, ORIGIN)).toBe("allowed");
    expect(reached).toEqual(["OPTIONS /v1/sealed"]);
  });

  it("says refused for a host that redirects, and does not follow it", async () => {
    reached.length = 0;
    expect(await hostAllowsOrigin(redirectingUrl, ORIGIN)).toBe("refused");
    expect(reached).toEqual([]);
  });

  it("says unreachable for a port nothing listens on", async () => {
    expect(await hostAllowsOrigin("http://127.0.0.1:9", ORIGIN)).toBe("unreachable");
  });
});

describe("cloister web's start-up lines", () => {
  const lines = (hostUrl: string) =>
    webStartLines({ origin: ORIGIN, hostUrl, policyFile: "policy.json", policyWarnings: [], access: "allowed" });

  it("warn that the page's API key would cross the network in the clear to another host over plain http", () => {
    const warning = lines("http://192.0.2.7:8080").filter((l) => l.startsWith("WARNING"));
    expect(warning).toEqual([
      "WARNING: --url http://192.0.2.7:8080 is plain http to another host: the page sends the API key across the network in the clear (prompts stay sealed); put TLS in front of the host.",
    ]);
    for (const quiet of [
      "https://cloister.example",
      "http://127.0.0.1:8080",
      "http://localhost:8080",
      "http://[::1]:8080",
    ]) {
      expect(
        lines(quiet).filter((l) => l.startsWith("WARNING")),
        quiet,
      ).toEqual([]);
    }
  });

  it("name the --cors-origin to give a host that refuses the page, true whatever origins up was given", () => {
    const refused = webStartLines({
      origin: ORIGIN,
      hostUrl: "http://127.0.0.1:8080",
      policyFile: "policy.json",
      policyWarnings: [],
      access: "refused",
    });
    expect(refused).toContain(
      `         Start it with --cors-origin ${ORIGIN} (cloister up allows ${DEFAULT_WEB_ORIGIN} only when given no --cors-origin).`,
    );
    expect(refused.join("\n")).not.toContain("by default");
  });

  it("name the policy file as a shell word: a control character in its name shown as an escape, never sent", () => {
    const started = webStartLines({
      origin: ORIGIN,
      hostUrl: "http://127.0.0.1:8080",
      policyFile: "a\x1b[31m.json",
      policyWarnings: [],
      access: "allowed",
    });
    expect(started.join("\n")).not.toContain("\x1b");
    expect(started).toContain("  policy       $'a\\033[31m.json'");
  });
});
