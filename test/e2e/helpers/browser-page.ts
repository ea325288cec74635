/**
 * The browser page (`cloister web`) served in-process for a test file: a simulated SEV-SNP
 * deployment (test/e2e/helpers/deployment.ts), createWebApp with the page's bundle as `cloister web`
 * builds it, on a test port the host lists as a CORS origin, and a headless Chromium
 * (CLOISTER_CHROME, or /usr/bin/chromium-headless-shell) to open it. `useBrowserPage()` registers
 * the file's beforeAll and afterAll; what it returns is filled in once beforeAll has run.
 */
import { access } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { getRequestListener } from "@hono/node-server";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll } from "vitest";
import { buildBrowserBundle } from "../../../client/web/bundle.ts";
import { createWebApp } from "../../../client/web/server.ts";
import { listenOnTestPort } from "../../helpers/test-ports.ts";
import { bootDeployment, type E2eDeployment } from "./deployment.ts";

const CHROME = process.env.CLOISTER_CHROME ?? "/usr/bin/chromium-headless-shell";

export interface BrowserPage {
  deployment: E2eDeployment;
  browser: Browser;
  /** The page's origin, `http://127.0.0.1:PORT` (no trailing slash). */
  pageUrl: string;
}

/** Serves the page and launches Chromium before the file's tests, and stops both after them. */
export function useBrowserPage(): BrowserPage {
  const served = { pageUrl: "" } as BrowserPage;
  let handler: ((request: IncomingMessage, response: ServerResponse) => void) | undefined;
  const pageServer = createServer((request, response) => {
    if (handler === undefined) response.writeHead(503).end();
    else handler(request, response);
  });

  beforeAll(async () => {
    await access(CHROME);
    const port = await listenOnTestPort(pageServer);
    served.pageUrl = `http://127.0.0.1:${port}`;
    served.deployment = await bootDeployment("sim-snp", { corsOrigins: [served.pageUrl] });
    const { code } = await buildBrowserBundle("page");
    const app = createWebApp({
      hostUrl: served.deployment.running.hostUrl,
      policy: served.deployment.files.policy,
      maxTokens: 32,
      script: code,
    });
    handler = getRequestListener(app.fetch);
    served.browser = await chromium.launch({ executablePath: CHROME, args: ["--no-sandbox"] });
  }, 120_000);

  afterAll(async () => {
    await served.browser?.close();
    await new Promise((resolve) => pageServer.close(resolve));
    await served.deployment?.stop();
  });

  return served;
}

/** Waits until the page's `document.body.dataset.state` is one of `states`, and returns it. */
export async function waitForState(page: Page, states: readonly string[]): Promise<string> {
  await page.waitForFunction((wanted) => wanted.includes(document.body.dataset.state ?? ""), states, {
    timeout: 60_000,
  });
  return (await page.evaluate(() => document.body.dataset.state)) as string;
}

/**
 * A new tab on the page (its address's fragment `link`, if any), waiting for a key; what the page
 * writes to its console, from the start, goes to `consoleLines` if given.
 */
export async function openPage(served: BrowserPage, link = "", consoleLines?: string[]): Promise<Page> {
  const page = await served.browser.newPage();
  if (consoleLines !== undefined) page.on("console", (message) => consoleLines.push(message.text()));
  await page.goto(`${served.pageUrl}/${link}`);
  const state = await waitForState(page, ["needs-key", "failed"]);
  if (state !== "needs-key") throw new Error(`the page: expected state needs-key, found ${state}`);
  return page;
}

/** A new tab on the page, verified with the key typed into its field (console lines as openPage). */
export async function verifiedPage(served: BrowserPage, consoleLines?: string[]): Promise<Page> {
  const page = await openPage(served, "", consoleLines);
  await page.fill("#api-key", served.deployment.files.apiKey);
  await page.click("#key-submit");
  const state = await waitForState(page, ["verified", "failed"]);
  if (state !== "verified") throw new Error(`the page: expected state verified, found ${state}`);
  return page;
}

/** Asks `question` and waits for the outcome (a state of the test's own first, so an earlier one is not seen). */
export async function askAndWait(page: Page, question: string): Promise<string> {
  await page.evaluate(() => {
    document.body.dataset.state = "test-sent";
  });
  await page.fill("#prompt", question);
  await page.click("#send");
  return waitForState(page, ["answered", "answer-failed"]);
}

/**
 * Every sealed answer's last 16 bytes flipped on its way to the page, until `page.unroute` of the
 * route returned: the page's integrity check of the stream fails.
 */
export async function tamperSealedAnswers(served: BrowserPage, page: Page): Promise<string> {
  const route = `${new URL(served.deployment.running.hostUrl).origin}/v1/sealed`;
  await page.route(route, async (request) => {
    if (request.request().method() !== "POST") return request.continue();
    const response = await request.fetch();
    const tampered = Buffer.from(await response.body());
    for (let i = Math.max(0, tampered.length - 16); i < tampered.length; i++) tampered[i] = (tampered[i] ?? 0) ^ 0xff;
    await request.fulfill({ response, body: tampered });
  });
  return route;
}
