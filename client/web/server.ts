/**
 * The local web server of `cloister web`: it serves the page (client/web/page.ts, bundled with the
 * SDK), its stylesheet and its configuration (the host's URL and the client policy), and nothing
 * else. It never sees a prompt, an answer or the API key: the page talks to the host directly
 * (cross-origin, so the host must list this server's origin: `cloister host --cors-origin`) and
 * verifies and seals in the browser. The page's code comes from here, the trusted side, which is
 * the point: a page served by the host could read what is typed into it.
 */
import { Hono } from "hono";
import { loopbackHostOnly } from "../loopback.ts";

export interface WebAppOptions {
  /** The host's base URL, as the page will call it. */
  readonly hostUrl: string;
  /** The client policy, as parsed JSON (the page parses it again, with the SDK). */
  readonly policy: unknown;
  /** maxTokens per question. */
  readonly maxTokens: number;
  /** The page's script: buildBrowserBundle("page"). */
  readonly script: string;
}

// The API key's field is a password field (client/web/page.ts says why), not spell-checked nor
// capitalized, with no name; the form is never submitted (the page's script sends the key).
const STYLE = `body{font:15px/1.45 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.3rem}table{border-collapse:collapse;margin:.8rem 0;font-size:.85rem}
th{text-align:left;padding:.15rem .8rem .15rem 0;vertical-align:top;white-space:nowrap}
td{font-family:ui-monospace,monospace;word-break:break-all}
#status{font-weight:600}#error{color:#a40000;white-space:pre-wrap}#simulated,#policy-warnings,#max-tokens-note,#redaction-note{color:#8a5a00}
textarea{width:100%;min-height:4rem;font:inherit}#answer{white-space:pre-wrap;background:#f5f5f5;padding:.6rem;min-height:2rem}
#usage,#context-note,#turns .usage{color:#555;font-size:.85rem}#turns .redaction-note{color:#8a5a00}#turns{padding-left:1.2rem}
#question,#turns .question{white-space:pre-wrap;font-weight:600;margin:.6rem 0 .2rem}#turns .answer{white-space:pre-wrap;background:#f5f5f5;padding:.6rem}`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cloister: verified, sealed chat</title>
<link rel="stylesheet" href="/style.css">
<script type="module" src="/page.js"></script>
</head>
<body data-state="loading">
<h1>Cloister: verified, sealed chat</h1>
<p>Host: <code id="host"></code></p>
<p id="status">loading…</p>
<p id="max-tokens-note" role="note" hidden></p>
<div id="policy-warnings" role="note" hidden><p>The client policy lets through more than known images:</p><ul id="policy-warning-list"></ul></div>
<p id="simulated" hidden>This enclave is SIMULATED: its evidence chains to the insecure simulator root, accepted only because the client policy trusts the simulator.</p>
<p id="error" role="alert" hidden></p>
<form id="key-form" hidden>
<p id="key-from-link" hidden>The link that opened this page carries an API key: <code id="key-preview"></code>. Your questions will run under it. Use it only if it is yours.</p>
<label id="key-label">API key <input id="api-key" type="password" autocomplete="off" autocapitalize="off" spellcheck="false" required></label>
<button id="key-submit" type="submit">Verify the enclave</button>
</form>
<table id="enclave" hidden></table>
<ol id="turns"></ol>
<pre id="question"></pre>
<pre id="answer" aria-live="polite"></pre>
<p id="usage"></p>
<p id="redaction-note" role="note" hidden></p>
<form id="ask-form" hidden>
<label for="prompt">Question (sealed in this page to the verified enclave; the host sees only its padded size)</label>
<textarea id="prompt" required></textarea>
<p id="context-note"></p>
<button id="send" type="submit">Send sealed</button>
<button id="new-conversation" type="button" disabled>New conversation</button>
</form>
</body>
</html>
`;

export function createWebApp(options: WebAppOptions): Hono {
  const hostOrigin = new URL(options.hostUrl).origin;
  // Scripts and styles from this server only; network requests to this server and the host only.
  const securityHeaders = {
    "content-security-policy": [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      `connect-src 'self' ${hostOrigin}`,
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join("; "),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    // For browsers without frame-ancestors, and so that a site that opened this page in a window
    // keeps no handle on it.
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
  };
  const config = JSON.stringify({ hostUrl: options.hostUrl, policy: options.policy, maxTokens: options.maxTokens });
  const app = new Hono();
  app.use(
    "*",
    loopbackHostOnly((c, message) => c.json({ error: { code: "HOST_NOT_LOOPBACK", message } }, 421, securityHeaders)),
  );
  const serve = (path: string, type: string, body: string) =>
    app.get(path, (c) => c.body(body, 200, { ...securityHeaders, "content-type": type }));
  serve("/", "text/html; charset=utf-8", PAGE);
  serve("/page.js", "text/javascript; charset=utf-8", options.script);
  serve("/style.css", "text/css; charset=utf-8", STYLE);
  serve("/config.json", "application/json", config);
  app.notFound((c) => c.json({ error: { code: "NOT_FOUND", message: "no such page" } }, 404, securityHeaders));
  return app;
}
