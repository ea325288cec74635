/**
 * The browser build and the local page server of `cloister web` (the page itself runs in a real
 * browser in test/e2e/browser.test.ts).
 */
import { build } from "esbuild";
import { describe, expect, it } from "vitest";
import { browserOnly, buildBrowserBundle } from "../../client/web/bundle.ts";
import { createWebApp } from "../../client/web/server.ts";

describe("browser bundle", () => {
  it("holds the verifier and sealing code only: no Node.js module, no host or enclave runtime", async () => {
    const { code, inputs } = await buildBrowserBundle("sdk");
    const own = inputs.filter((p) => !p.startsWith("node_modules/") && !p.includes(":"));
    expect(own).toContain("attestation/snp/verify.ts");
    expect(own).toContain("sealed/request.ts");
    expect(own).toContain("client/sdk.ts");
    const outside = own.filter(
      (p) =>
        !/^(attestation|sealed|manifests|client)\//.test(p) &&
        // models/key-id.ts: the manifest schema's key id rule, a dependency-free regular expression;
        // enclave/pipeline/audit-tags.ts: the audit verifier's two domain tags, constants only.
        ![
          "enclave/pipeline/audit.ts",
          "enclave/pipeline/audit-tags.ts",
          "enclave/pipeline/errors.ts",
          "models/key-id.ts",
        ].includes(p),
    );
    expect(outside).toEqual([]);
    expect(own).not.toContain("client/node-transport.ts");
    // No import of a Node.js module, static or dynamic (audit.ts only looks node:crypto up at run
    // time through process.getBuiltinModule, which browsers do not have).
    expect(/(from\s*|import\s*\(\s*)["']node:/.test(code)).toBe(false);
  });

  it("refuses a node: import instead of shipping code that would fail in the page", async () => {
    const failure = await build({
      stdin: { contents: 'import { readFileSync } from "node:fs"; export const x = readFileSync;', loader: "ts" },
      bundle: true,
      write: false,
      platform: "browser",
      format: "esm",
      logLevel: "silent",
      plugins: [browserOnly],
    }).catch((e: { errors?: { text: string }[] }) => e);
    expect((failure as { errors?: { text: string }[] }).errors?.[0]?.text).toContain(
      "node:fs imported by <stdin>: the browser build takes no Node.js modules",
    );
  });
});

describe("cloister web's page server", () => {
  const app = createWebApp({
    hostUrl: "https://host.example:8443",
    policy: { version: 1, marker: "policy" },
    maxTokens: 64,
    script: "export {};",
  });

  it("serves the page with a CSP that lets it reach only itself and the host", async () => {
    const page = await app.request("/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = page.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("connect-src 'self' https://host.example:8443");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'none'");
    expect(page.headers.get("referrer-policy")).toBe("no-referrer");
    const html = await page.text();
    expect(html).toContain('<script type="module" src="/page.js"></script>');
    // The notice of a key that came with the link, shown only when one did (the page waits for a click).
    expect(html).toContain('<p id="key-from-link" hidden>');
    expect(html).toContain('<button id="key-submit" type="submit">');
  });

  it("serves the configuration the page reads, with no API key in it", async () => {
    const config = await (await app.request("/config.json")).json();
    expect(config).toEqual({
      hostUrl: "https://host.example:8443",
      policy: { version: 1, marker: "policy" },
      maxTokens: 64,
    });
    const script = await app.request("/page.js");
    expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(await script.text()).toBe("export {};");
    expect((await app.request("/.cloister/api-key")).status).toBe(404);
  });

  it("answers only requests that name a loopback host (a DNS-rebound page names its own)", async () => {
    // A name in brackets is no IPv6 address: refused, as any name but localhost.
    for (const host of [
      "evil.example:8788",
      "evil.example",
      "127.0.0.1.evil.example:8788",
      "10.0.0.1:8788",
      "[localhost]:8788",
      "[127.0.0.1]",
    ]) {
      const response = await app.request("/config.json", { headers: { host } });
      expect(response.status, host).toBe(421);
      expect(await response.json(), host).toEqual({
        error: {
          code: "HOST_NOT_LOOPBACK",
          message: `request Host: expected a loopback name (127.0.0.0/8, [::1] or localhost; any port), found ${JSON.stringify(host)}`,
        },
      });
    }
    // The key broker's rule too: all of 127.0.0.0/8 is this machine's.
    for (const host of [
      "127.0.0.1:8788",
      "127.0.0.2:8788",
      "127.255.255.254",
      "localhost:8788",
      "[::1]:8788",
      "LOCALHOST",
    ]) {
      expect((await app.request("/config.json", { headers: { host } })).status, host).toBe(200);
    }
  });

  it("cannot be framed, and a site that opened it keeps no handle on it", async () => {
    const page = await app.request("/");
    expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    expect(page.headers.get("cross-origin-opener-policy")).toBe("same-origin");
  });
});
