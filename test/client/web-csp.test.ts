/**
 * SECURITY.md: `cloister web` serves its page "with a Content-Security-Policy that allows scripts
 * from itself only and network requests to itself and the host only". test/client/web.test.ts checks
 * that the header contains those directives; here the whole policy is read, directive by directive,
 * so a source added to any of them (`'unsafe-inline'`, a wildcard, another origin, an `img-src` that
 * lets the page load from elsewhere) fails, and the host's URL cannot add a source or a directive.
 */
import { describe, expect, it } from "vitest";
import { createWebApp } from "../../client/web/server.ts";

/** The policy's directives, each name to its sources; a name given twice fails (the browser takes the first). */
function directives(csp: string): Map<string, string[]> {
  const parsed = new Map<string, string[]>();
  for (const part of csp.split(";")) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name === undefined || name === "") continue;
    expect(parsed.has(name.toLowerCase()), `directive ${name} given twice`).toBe(false);
    parsed.set(name.toLowerCase(), sources);
  }
  return parsed;
}

async function pagePolicy(hostUrl: string): Promise<Map<string, string[]>> {
  const app = createWebApp({ hostUrl, policy: { version: 1 }, maxTokens: 64, script: "export {};" });
  const page = await app.request("/");
  expect(page.status).toBe(200);
  return directives(page.headers.get("content-security-policy") ?? "");
}

describe("cloister web's Content-Security-Policy, whole", () => {
  it("lets the page run only its own script and reach only itself and the host, and nothing else", async () => {
    const policy = await pagePolicy("https://host.example:8443");
    expect(Object.fromEntries(policy)).toEqual({
      // Every fetch directive not named falls back to this: no image, font, frame, worker or media.
      "default-src": ["'none'"],
      "script-src": ["'self'"],
      "style-src": ["'self'"],
      "connect-src": ["'self'", "https://host.example:8443"],
      // No <base> to point /page.js elsewhere, no form posted anywhere (a prompt typed in the page).
      "base-uri": ["'none'"],
      "form-action": ["'none'"],
      "frame-ancestors": ["'none'"],
    });
  });

  it("names the host by its origin alone: a path, query or odd characters in --url add no source", async () => {
    for (const [hostUrl, origin] of [
      ["https://host.example:8443/base/path?x=1#frag", "https://host.example:8443"],
      ["http://127.0.0.1:8080/", "http://127.0.0.1:8080"],
      ["https://host.example/a;script-src%20*", "https://host.example"],
      ["https://host.example/;%20img-src%20*", "https://host.example"],
    ] as const) {
      const policy = await pagePolicy(hostUrl);
      expect(policy.get("connect-src"), hostUrl).toEqual(["'self'", origin]);
      expect(policy.get("script-src"), hostUrl).toEqual(["'self'"]);
      expect([...policy.keys()].sort(), hostUrl).toEqual([
        "base-uri",
        "connect-src",
        "default-src",
        "form-action",
        "frame-ancestors",
        "script-src",
        "style-src",
      ]);
    }
  });

  it("sends the same policy with the page's script, stylesheet, configuration and refusals", async () => {
    const app = createWebApp({
      hostUrl: "https://host.example:8443",
      policy: { version: 1 },
      maxTokens: 64,
      script: "export {};",
    });
    const csp = (await app.request("/")).headers.get("content-security-policy");
    expect(csp).not.toBeNull();
    for (const [path, status, host] of [
      ["/page.js", 200, "127.0.0.1:8788"],
      ["/style.css", 200, "127.0.0.1:8788"],
      ["/config.json", 200, "127.0.0.1:8788"],
      ["/no-such-page", 404, "127.0.0.1:8788"],
      ["/", 421, "evil.example"],
    ] as const) {
      const response = await app.request(path, { headers: { host } });
      expect(response.status, path).toBe(status);
      expect(response.headers.get("content-security-policy"), path).toBe(csp);
    }
  });
});
