/**
 * The browser client end to end, in a real Chromium (headless, driven by playwright-core): the
 * page `cloister web` serves verifies the enclave in the browser and seals questions there, against
 * a real simulated deployment whose host lists the page's origin (`--cors-origin`). Also what the
 * page does when verification fails (nothing sent), when the host does not allow its origin, and
 * the `cloister bundle` module imported on its own.
 *
 * Needs a Chromium: CLOISTER_CHROME, or chromium-headless-shell / chromium on the PATH's usual
 * places (`apt-get install chromium-headless-shell`; .ci/run installs it).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { access, mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, runCloister } from "../helpers/cli.ts";
import { listenOnTestPort } from "../helpers/test-ports.ts";
import { bootDeployment, type E2eDeployment, writeWrongMeasurementPolicy } from "./helpers/deployment.ts";

const GREEDY_CHAT_ANSWER =
  " The host only forwards sealed bytes and the enclave keeps every prompt private inside a confidential virtual machine.";
// Words no log line or framing has of its own, so each can be searched for alone (the tiny model's
// answer depends on the chat template's end only).
const QUESTION = "Why would quokkas juggle marmalade beneath zeppelins?";
const CHROME_CANDIDATES = [
  "/usr/bin/chromium-headless-shell",
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
];

async function findChrome(): Promise<string> {
  const fromEnv = process.env.CLOISTER_CHROME;
  for (const candidate of fromEnv ? [fromEnv] : CHROME_CANDIDATES) {
    try {
      await access(candidate);
      return candidate;
    } catch {
      // next
    }
  }
  throw new Error(
    `no Chromium for the browser tests: set CLOISTER_CHROME or install one (apt-get install chromium-headless-shell); looked at ${(fromEnv ? [fromEnv] : CHROME_CANDIDATES).join(", ")}`,
  );
}

/**
 * `count` ports of the tests' range free right now, each bound and then freed: the web server takes one
 * a moment later (the host must list its origin first), and in between any process may take it (a
 * listen on port 0, an outgoing connection: the range lies within the kernel's ephemeral ports). So a
 * role gets several, the host lists them all, and startWeb takes the first it can listen on.
 */
async function freeTestPorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  const ports: number[] = [];
  for (const server of servers) ports.push(await listenOnTestPort(server));
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** Ports tried per role: every one taken in between is improbable. */
const PORT_CHOICES = 4;

type WebServer = { url: string; stdout: () => string; child: ChildProcess };

/** `cloister web` on the first of `ports` it can listen on (the others were taken meanwhile). */
async function startWeb(deployment: E2eDeployment, policyPath: string, ports: readonly number[]): Promise<WebServer> {
  let said = "";
  for (const port of ports) {
    const started = await startWebOn(deployment, policyPath, port);
    if ("url" in started) return started;
    said += started.stdout;
    if (!started.stdout.includes("(EADDRINUSE)")) break;
  }
  throw new Error(`cloister web did not start:\n${said}`);
}

async function startWebOn(
  deployment: E2eDeployment,
  policyPath: string,
  port: number,
): Promise<WebServer | { stdout: string }> {
  const child = spawn(
    process.execPath,
    [CLI, "web", "--url", deployment.running.hostUrl, "--policy", policyPath, "--port", String(port)],
    { cwd: deployment.dir },
  );
  let stdout = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stdout += d.toString()));
  const deadline = Date.now() + 60_000;
  while (!stdout.includes("Stop with Ctrl-C.") && Date.now() < deadline && child.exitCode === null) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = /Cloister web page on (http:\/\/127\.0\.0\.1:\d+)\//.exec(stdout)?.[1];
  if (url === undefined) {
    child.kill("SIGTERM");
    return { stdout };
  }
  webServers.push(child);
  return { url, stdout: () => stdout, child };
}

const STATES_DONE = ["verified", "failed", "answered", "answer-failed"];

async function waitForState(page: Page, states: readonly string[]): Promise<string> {
  await page.waitForFunction((wanted) => wanted.includes(document.body.dataset.state ?? ""), states, {
    timeout: 60_000,
  });
  return (await page.evaluate(() => document.body.dataset.state)) as string;
}

let deployment: E2eDeployment;
let browser: Browser;
const webServers: ChildProcess[] = [];
/** The port each role's page was served on (set once it is), and the ones it may take. */
const ports = { page: 0, wrongPolicy: 0, unlisted: 0 };
const choices = { page: [] as number[], wrongPolicy: [] as number[], unlisted: [] as number[] };

beforeAll(async () => {
  const executablePath = await findChrome();
  const free = await freeTestPorts(3 * PORT_CHOICES);
  choices.page = free.slice(0, PORT_CHOICES);
  choices.wrongPolicy = free.slice(PORT_CHOICES, 2 * PORT_CHOICES);
  choices.unlisted = free.slice(2 * PORT_CHOICES);
  deployment = await bootDeployment("sim-snp", {
    corsOrigins: [...choices.page, ...choices.wrongPolicy].map((port) => `http://127.0.0.1:${port}`),
  });
  browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  for (const child of webServers) child.kill("SIGTERM");
  await deployment?.stop();
});

/**
 * The page's own server (the host lists its origin), started by the first test that needs it: each
 * test on this origin can then also run alone (`-t`).
 */
let pageWebStarted: Promise<WebServer> | undefined;
const pageWeb = (): Promise<WebServer> =>
  (pageWebStarted ??= startWeb(deployment, deployment.files.policyPath, choices.page).then((web) => {
    ports.page = Number(new URL(web.url).port);
    return web;
  }));

/** Whether `text` is anywhere in the page's JavaScript heap (a snapshot, taken after a collection). */
async function inPageHeap(page: Page, text: string): Promise<boolean> {
  const cdp = await page.context().newCDPSession(page);
  const chunks: string[] = [];
  cdp.on("HeapProfiler.addHeapSnapshotChunk", ({ chunk }) => chunks.push(chunk));
  await cdp.send("HeapProfiler.collectGarbage");
  await cdp.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  await cdp.detach();
  return chunks.join("").includes(text);
}

/** Sealed requests the host forwarded (not the browser's CORS preflights, which are OPTIONS). */
const sealedRequests = () =>
  deployment.hostAccessLog().filter((r) => r.method === "POST" && r.path === "/v1/sealed").length;

describe("cloister web: verify and seal in the browser", () => {
  it("asks for the API key, verifies the enclave in the page, then answers a sealed question", async () => {
    const web = await pageWeb();
    // The host lists the page's origin: no warning about it; the policy's one risk is said.
    expect(web.stdout()).not.toContain("WARNING: the host");
    expect(web.stdout().match(/^WARNING: policy: .*$/gm)).toEqual([
      "WARNING: policy: trusts the INSECURE simulator: anyone can forge its evidence",
    ]);
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(`${web.url}/`);
    expect(await waitForState(page, ["needs-key", ...STATES_DONE])).toBe("needs-key");
    // The status line says what the page waits for (it said "loading…" beside the key form).
    expect(await page.textContent("#status")).toBe("not verified yet: enter the API key to verify the enclave");
    // Shown before the key is asked for, and after verification in the status line.
    expect(await page.isVisible("#policy-warnings")).toBe(true);
    expect(await page.$$eval("#policy-warning-list li", (items) => items.map((i) => i.textContent))).toEqual([
      "trusts the INSECURE simulator: anyone can forge its evidence",
    ]);
    await page.fill("#api-key", deployment.files.apiKey);
    await page.click("#key-submit");
    expect(await waitForState(page, STATES_DONE)).toBe("verified");
    expect(await page.textContent("#status")).toBe(
      "enclave verified under a policy with 1 warning (above): questions are sealed to it",
    );
    const table = (await page.textContent("#enclave")) ?? "";
    const pinned = deployment.files.policy.attestation.snp?.measurements;
    const measurement = String(Array.isArray(pinned) ? pinned[0] : undefined);
    expect(measurement).toMatch(/^[0-9a-f]{96}$/);
    expect(table).toContain(measurement);
    expect(table).toContain("SIMULATED");
    expect(await page.isVisible("#simulated")).toBe(true);

    // What the page sent to the host and the host sent back (bodies of its sealed exchanges), and
    // each piece of text the page shows as the answer streams (one per data frame).
    const hostOrigin = new URL(deployment.running.hostUrl).origin;
    const carried: Promise<Buffer>[] = [];
    page.on("response", (response) => {
      const request = response.request();
      if (request.method() !== "POST" || request.url() !== `${hostOrigin}/v1/sealed`) return;
      carried.push(Promise.resolve(request.postDataBuffer() ?? Buffer.alloc(0)), response.body());
    });
    await page.evaluate(() => {
      const shown: string[] = [];
      (window as unknown as { answerShown: string[] }).answerShown = shown;
      new MutationObserver((records) => {
        for (const record of records) {
          record.addedNodes.forEach((node) => {
            shown.push(node.textContent ?? "");
          });
        }
      }).observe(document.querySelector("#answer") as Element, { childList: true });
    });
    const before = sealedRequests();
    await page.fill("#prompt", QUESTION);
    await page.click("#send");
    expect(await waitForState(page, ["answered", "answer-failed"])).toBe("answered");
    expect(await page.textContent("#answer")).toBe(GREEDY_CHAT_ANSWER);
    expect(await page.textContent("#usage")).toMatch(/^\d+ tokens, finish: stop/);
    // Nothing in the question for the manifest's PII filter: no note under the answer.
    expect(await page.isHidden("#redaction-note")).toBe(true);
    expect(sealedRequests()).toBe(before + 1);
    // What the host carried and logged holds neither the question nor the answer, nor any word of
    // the question (4 characters or more), nor the text of any one frame (3 bytes or more: a
    // shorter run turns up by chance in a few kilobytes of ciphertext).
    await deployment.waitForLog((line) => line.includes('"path":"/v1/sealed"'));
    const hostLines = deployment.logs.filter((line) => line.startsWith("[host"));
    const bodies = await Promise.all(carried);
    expect(bodies).toHaveLength(2);
    expect(bodies[0]?.length).toBeGreaterThan(QUESTION.length);
    expect(bodies[1]?.length).toBeGreaterThan(GREEDY_CHAT_ANSWER.length);
    const shown = await page.evaluate(() => (window as unknown as { answerShown: string[] }).answerShown);
    expect(shown.at(-1)).toBe(GREEDY_CHAT_ANSWER);
    const frameTexts = shown.map((text, i) => text.slice(i === 0 ? 0 : (shown[i - 1] as string).length));
    expect(frameTexts.join("")).toBe(GREEDY_CHAT_ANSWER);
    expect(frameTexts.length).toBeGreaterThan(3);
    const needles = [
      QUESTION,
      GREEDY_CHAT_ANSWER.trim(),
      ...QUESTION.split(" ").filter((word) => word.length >= 4),
      ...frameTexts.filter((text) => Buffer.byteLength(text) >= 3),
    ];
    const haystacks = [hostLines.join("\n"), ...bodies.flatMap((b) => [b.toString("latin1"), b.toString("utf8")])];
    for (const haystack of haystacks) expect(needles.filter((needle) => haystack.includes(needle))).toEqual([]);

    // A question holding an e-mail address: the enclave redacted it before the model saw it (the dev
    // manifest's PII mode "redact"), and the page says so under the answer, from the sealed final
    // frame; the host carried neither the address nor what was redacted in the clear.
    carried.length = 0;
    // A state of the test's own, so the wait below cannot see the first answer's "answered".
    await page.evaluate(() => {
      document.body.dataset.state = "second-question";
    });
    await page.fill("#prompt", "Please write to bob@example.org about quokkas");
    await page.click("#send");
    expect(await waitForState(page, ["answered", "answer-failed"])).toBe("answered");
    expect(await page.isVisible("#redaction-note")).toBe(true);
    expect(await page.textContent("#redaction-note")).toBe(
      'the enclave redacted 1 email address from your prompt before the model saw it (manifest PII mode "redact")',
    );
    const second = await Promise.all(carried);
    expect(second).toHaveLength(2);
    for (const body of second) {
      for (const needle of ["bob@example.org", "redacted", "email"]) {
        expect(body.toString("latin1").includes(needle), needle).toBe(false);
      }
    }
    expect(pageErrors).toEqual([]);
    await page.close();
  });

  it("takes a key from the address's fragment only after a click, and removes it from the address bar first", async () => {
    await pageWeb();
    const page = await browser.newPage();
    const hostOrigin = new URL(deployment.running.hostUrl).origin;
    const toHost: string[] = [];
    page.on("request", (request) => {
      if (new URL(request.url()).origin === hostOrigin) toHost.push(`${request.method()} ${request.url()}`);
    });
    // Hold config.json: the fragment must be gone before the page has its configuration.
    let releaseConfig = () => {};
    const configHeld = new Promise<void>((resolve) => (releaseConfig = resolve));
    let configAsked = () => {};
    const configRequested = new Promise<void>((resolve) => (configAsked = resolve));
    await page.route("**/config.json", async (route) => {
      configAsked();
      await configHeld;
      await route.continue();
    });
    const accessBefore = deployment.hostAccessLog().length;
    await page.goto(`http://127.0.0.1:${ports.page}/#apiKey=${encodeURIComponent(deployment.files.apiKey)}`, {
      waitUntil: "commit",
    });
    await configRequested;
    expect(await page.evaluate(() => window.location.href)).toBe(`http://127.0.0.1:${ports.page}/`);
    releaseConfig();

    // The page waits for the user: it shows which key the link carries, and sends nothing.
    expect(await waitForState(page, ["needs-key", ...STATES_DONE])).toBe("needs-key");
    expect(await page.textContent("#key-preview")).toBe(`${deployment.files.apiKey.slice(0, 8)}…`);
    expect(await page.textContent("#status")).toBe(
      "not verified yet: confirm the link's API key below to verify the enclave",
    );
    expect(await page.isVisible("#key-from-link")).toBe(true);
    expect(await page.isVisible("#api-key")).toBe(false);
    // Ordered, not waited for: the page has set needs-key and waits for the click, so a request of
    // its own to the host, sent now, follows every request the page started before it (the browser
    // reports requests in the order the page's thread starts them); it is the only one.
    const marker = `${hostOrigin}/healthz?after-needs-key`;
    await page.evaluate((url) => fetch(url, { mode: "no-cors", cache: "no-store" }).then(() => undefined), marker);
    expect(toHost).toEqual([`GET ${marker}`]);
    await deployment.waitForLog(() => deployment.hostAccessLog().length > accessBefore);
    const reachedHost = deployment.hostAccessLog().slice(accessBefore);
    expect(reachedHost.map((r) => `${r.method} ${r.path}`)).toEqual(["GET /healthz"]);
    expect(await page.evaluate(() => document.body.dataset.state)).toBe("needs-key");

    await page.click("#key-submit");
    expect(await waitForState(page, STATES_DONE)).toBe("verified");
    expect(toHost.length).toBeGreaterThan(0);
    expect(page.url()).toBe(`http://127.0.0.1:${ports.page}/`);
    await page.close();
  });

  it("reads and removes a key from a link that changes only the fragment of the open page", async () => {
    await pageWeb();
    const page = await browser.newPage();
    const pageUrl = `http://127.0.0.1:${ports.page}/`;
    await page.goto(pageUrl);
    expect(await waitForState(page, ["needs-key", ...STATES_DONE])).toBe("needs-key");
    // Set aside first, so that the state waited for is the page's after the link.
    await page.evaluate(() => {
      document.body.dataset.state = "before-the-link";
    });
    // Same document, another fragment: the browser does not load the page again by itself.
    const secondKey = "ck_a-second-link-opened-over-the-page";
    await page.goto(`${pageUrl}#apiKey=${secondKey}`);
    expect(await waitForState(page, ["needs-key", ...STATES_DONE])).toBe("needs-key");
    expect(page.url()).toBe(pageUrl);
    expect(await page.textContent("#key-preview")).toBe(`${secondKey.slice(0, 8)}…`);
    // Nor in the history: the entry before the link, and the link's own.
    await page.goBack();
    expect(page.url()).toBe(pageUrl);
    await page.goForward();
    expect(page.url()).toBe(pageUrl);
    await page.close();
  });

  it("removes the fragment's key from the address bar even when the page cannot load its configuration", async () => {
    await pageWeb();
    const page = await browser.newPage();
    await page.route("**/config.json", (route) => route.fulfill({ status: 500, body: "down" }));
    await page.goto(`http://127.0.0.1:${ports.page}/#apiKey=ck_planted-by-a-link`);
    expect(await waitForState(page, STATES_DONE)).toBe("failed");
    expect(await page.evaluate(() => window.location.href)).toBe(`http://127.0.0.1:${ports.page}/`);
    expect(await page.textContent("body")).not.toContain("planted");
    await page.close();
  });

  it("says what was wrong with a link's key it cannot use, never showing it, and removes a key in the query", async () => {
    await pageWeb();
    const key = deployment.files.apiKey;
    const pageUrl = `http://127.0.0.1:${ports.page}/`;
    const cases: [link: string, status: string][] = [
      [
        `#apiKey=`,
        "not verified yet: the link's API key is empty (#apiKey= with no key after it); enter the API key to verify the enclave",
      ],
      [
        `#apikey=${key}`,
        "not verified yet: the link carries no API key: expected #apiKey=KEY (the name as written, case included), " +
          "found 1 other name after #; enter the API key to verify the enclave",
      ],
      [
        `#${key}`,
        "not verified yet: the link carries no API key: expected #apiKey=KEY (the name as written, case included), " +
          "found 1 other name after #; enter the API key to verify the enclave",
      ],
      [
        `?apiKey=${key}`,
        "not verified yet: the link's API key is in its query (?apiKey=), which the browser sent to the page's " +
          "server: it is not used (a link carries it after #, as #apiKey=KEY); enter the API key to verify the enclave",
      ],
      // In the query, the name in any case is a key sent by mistake: it leaves the address bar too.
      [
        `?APIKEY=${key}`,
        "not verified yet: the link's API key is in its query (?apiKey=), which the browser sent to the page's " +
          "server: it is not used (a link carries it after #, as #apiKey=KEY); enter the API key to verify the enclave",
      ],
    ];
    const before = sealedRequests();
    for (const [link, status] of cases) {
      const page = await browser.newPage();
      await page.goto(`${pageUrl}${link}`);
      expect(await waitForState(page, ["needs-key", ...STATES_DONE]), link).toBe("needs-key");
      expect(await page.textContent("#status"), link).toBe(status);
      // The typed-key form, open: nothing of the link's key is used, shown or left in the address.
      expect(await page.isVisible("#key-from-link"), link).toBe(false);
      expect(await page.isEnabled("#api-key"), link).toBe(true);
      expect(await page.textContent("body"), link).not.toContain(key.slice(0, 8));
      expect(page.url(), link).toBe(pageUrl);
      // Replaced in the history, not added after the link's address (about:blank, then the page).
      expect(await page.evaluate(() => history.length), link).toBe(2);
      expect(await inPageHeap(page, key), link).toBe(false);
      await page.close();
    }
    // The query's other parameters stay as written (not re-encoded); only the key goes, and a fragment.
    for (const [link, kept] of [
      [`?lang=en&apiKey=${key}`, "?lang=en"],
      [`?flag&apikey=${key}&q=a+b%7E`, "?flag&q=a+b%7E"],
      ["?flag&q=a+b%7E#apiKey=", "?flag&q=a+b%7E"],
    ]) {
      const page = await browser.newPage();
      await page.goto(`${pageUrl}${link}`);
      expect(await waitForState(page, ["needs-key", ...STATES_DONE]), link).toBe("needs-key");
      expect(page.url(), link).toBe(`${pageUrl}${kept}`);
      await page.close();
    }
    expect(sealedRequests()).toBe(before);
  });

  it("says a refused key came from the API key field, without repeating the key", async () => {
    await pageWeb();
    // The page's own origin, listed by the host.
    const wrongKey = "ck_not-a-key-this-host-issued-0123";
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${ports.page}/`);
    expect(await waitForState(page, ["needs-key", ...STATES_DONE])).toBe("needs-key");
    await page.fill("#api-key", wrongKey);
    await page.click("#key-submit");
    expect(await waitForState(page, STATES_DONE)).toBe("failed");
    expect(await page.getAttribute("#error", "data-code")).toBe("UNAUTHENTICATED");
    const shown = await page.textContent("#error");
    expect(shown).toContain("the key sent came from the API key field");
    expect(shown).not.toContain(wrongKey);

    // The form is offered again, emptied: the right key now verifies (the refused one is not sent
    // again), and neither key is in the page's text, its fields or its address.
    expect(await page.inputValue("#api-key")).toBe("");
    await page.fill("#api-key", deployment.files.apiKey);
    // The state set aside first, so that the state waited for is the second verification's.
    await page.evaluate(() => {
      document.body.dataset.state = "retried-by-test";
    });
    await page.click("#key-submit");
    expect(await waitForState(page, STATES_DONE)).toBe("verified");
    expect(await page.isHidden("#error")).toBe(true);
    expect(await page.isVisible("#ask-form")).toBe(true);
    expect(await page.inputValue("#api-key")).toBe("");
    const text = await page.textContent("body");
    expect(text).not.toContain(wrongKey);
    expect(text).not.toContain(deployment.files.apiKey);
    expect(page.url()).toBe(`http://127.0.0.1:${ports.page}/`);
    await page.close();
  });

  it("offers the API key field, enabled, once the host refuses the link's key, and verifies with a typed one", async () => {
    await pageWeb();
    const linkKey = "ck_a-link-key-this-host-never-issued";
    const before = sealedRequests();
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${ports.page}/#apiKey=${encodeURIComponent(linkKey)}`);
    expect(await waitForState(page, ["needs-key", ...STATES_DONE])).toBe("needs-key");
    expect(await page.isEnabled("#api-key")).toBe(false);
    await page.click("#key-submit");
    expect(await waitForState(page, STATES_DONE)).toBe("failed");
    expect(await page.getAttribute("#error", "data-code")).toBe("UNAUTHENTICATED");
    expect(await page.textContent("#error")).toContain("the key sent came from the link that opened this page");
    // Sending the link's key again cannot succeed: the status says what can, and the field is open.
    expect(await page.textContent("#status")).toBe(
      "not verified: nothing was sent to the enclave (the link's API key was refused: enter your API key below, " +
        "or open a link with another, then verify again)",
    );
    expect(await page.isVisible("#key-from-link")).toBe(false);
    expect(await page.isVisible("#api-key")).toBe(true);
    expect(await page.isEnabled("#api-key")).toBe(true);
    expect(await page.textContent("#key-submit")).toBe("Verify the enclave");
    // Nothing of the dropped key stays: not its preview (hidden, but still the page's text), not the URL.
    expect(await page.textContent("#key-preview")).toBe("");
    expect(await page.textContent("body")).not.toContain(linkKey.slice(0, 8));
    expect(page.url()).not.toContain("apiKey");
    // Nor in the page's memory (it is not sent again, nor kept for a script to find).
    expect(await inPageHeap(page, linkKey)).toBe(false);
    expect(await page.isVisible("#ask-form")).toBe(false);
    expect(sealedRequests()).toBe(before);

    await page.fill("#api-key", deployment.files.apiKey);
    await page.evaluate(() => {
      document.body.dataset.state = "retried-by-test";
    });
    await page.click("#key-submit");
    expect(await waitForState(page, STATES_DONE)).toBe("verified");
    expect(await page.isVisible("#ask-form")).toBe(true);
    expect(sealedRequests()).toBe(before);
    const text = await page.textContent("body");
    expect(text).not.toContain(linkKey);
    expect(text).not.toContain(deployment.files.apiKey);
    await page.close();
  });

  it("sends nothing when the enclave does not match the policy, and says why", async () => {
    const wrong = await writeWrongMeasurementPolicy(deployment, "browser-wrong-policy.json");
    const web = await startWeb(deployment, wrong, choices.wrongPolicy);
    ports.wrongPolicy = Number(new URL(web.url).port);
    const before = sealedRequests();
    const page = await browser.newPage();
    await page.goto(`${web.url}/#apiKey=${encodeURIComponent(deployment.files.apiKey)}`);
    expect(await waitForState(page, ["needs-key", ...STATES_DONE])).toBe("needs-key");
    await page.click("#key-submit");
    expect(await waitForState(page, STATES_DONE)).toBe("failed");
    expect(await page.getAttribute("#error", "data-kind")).toBe("attestation");
    expect(await page.getAttribute("#error", "data-code")).toBe("SNP_MEASUREMENT_NOT_ALLOWED");
    expect(await page.textContent("#error")).toContain(`MEASUREMENT: expected ${"cd".repeat(48)}, found`);
    // With what can pass it, and the key form to verify again with (it said to reload the page).
    expect(await page.textContent("#status")).toBe(
      "not verified: the enclave failed verification under this page's client policy, so no question can be sealed " +
        "to it (verify again once the host runs an enclave the policy accepts; a policy that accepts this enclave " +
        "needs cloister web restarted with it and this page opened again from the link)",
    );
    expect(await page.isVisible("#ask-form")).toBe(false);
    expect(await page.isVisible("#key-submit")).toBe(true);
    expect(sealedRequests()).toBe(before);

    // Verified again (the policy still refuses the enclave): the page asks the host for the
    // attestation anew, fails as before, and still sends nothing. The state is set aside first, so
    // the "failed" waited for is the second verification's.
    const attestations = () => deployment.hostAccessLog().filter((r) => r.path === "/v1/attestation").length;
    const attestationsBefore = attestations();
    await page.evaluate(() => {
      document.body.dataset.state = "retried-by-test";
    });
    await page.click("#key-submit");
    expect(await waitForState(page, STATES_DONE)).toBe("failed");
    await deployment.waitForLog(() => attestations() > attestationsBefore);
    expect(await page.getAttribute("#error", "data-code")).toBe("SNP_MEASUREMENT_NOT_ALLOWED");
    expect(await page.isVisible("#ask-form")).toBe(false);
    expect(await page.isVisible("#key-submit")).toBe(true);
    expect(sealedRequests()).toBe(before);
    await page.close();
  });

  it("names the host's missing --cors-origin when the host does not list the page's origin", async () => {
    // A port taken meanwhile (as another process may take any of them) is passed over for the next.
    const taken = createServer();
    const takenPort = await listenOnTestPort(taken);
    const web = await startWeb(deployment, deployment.files.policyPath, [takenPort, ...choices.unlisted]).finally(
      () => new Promise((resolve) => taken.close(resolve)),
    );
    ports.unlisted = Number(new URL(web.url).port);
    expect(choices.unlisted).toContain(ports.unlisted);
    expect(web.stdout()).toContain(`WARNING: the host does not allow this page's origin`);
    expect(web.stdout()).toContain(`--cors-origin http://127.0.0.1:${ports.unlisted}`);
    const page = await browser.newPage();
    await page.goto(`${web.url}/#apiKey=${encodeURIComponent(deployment.files.apiKey)}`);
    expect(await waitForState(page, ["needs-key", ...STATES_DONE])).toBe("needs-key");
    await page.click("#key-submit");
    expect(await waitForState(page, STATES_DONE)).toBe("failed");
    expect(await page.getAttribute("#error", "data-code")).toBe("HOST_UNREACHABLE");
    expect(await page.textContent("#error")).toContain(`--cors-origin http://127.0.0.1:${ports.unlisted}`);
    await page.close();
  });
});

describe("cloister bundle", () => {
  it("writes one ES module without Node.js modules that verifies and seals on its own (over fetch)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-bundle-"));
    try {
      const out = join(dir, "cloister-browser.js");
      const run = await runCloister(["bundle", "--out", out]);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^wrote .*cloister-browser\.js \(\d+ KiB, \d+ modules\)/);
      const sdk = (await import(pathToFileURL(out).href)) as typeof import("../../client/browser.ts");
      const session = await sdk.connect({
        url: deployment.running.hostUrl,
        policy: sdk.parseClientPolicy(deployment.files.policy),
        apiKey: deployment.files.apiKey,
      });
      expect(session.enclave.simulated).toBe(true);
      const answer = await session.complete("Hello", { maxTokens: 8 });
      expect(answer.usage.completionTokens).toBeGreaterThan(0);
      const refused = await sdk
        .connect({
          url: deployment.running.hostUrl,
          policy: sdk.parseClientPolicy(deployment.files.policy),
          apiKey: "ck_wrong",
        })
        .catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(sdk.ClientError);

      // A production build without the simulator refuses a policy that trusts it, before any request.
      const prodOut = join(dir, "cloister-browser-prod.js");
      const prodRun = await runCloister(["bundle", "--no-simulator", "--out", prodOut]);
      expect(prodRun.stdout).toMatch(/, no simulator\): /);
      const prod = (await import(pathToFileURL(prodOut).href)) as typeof import("../../client/browser.ts");
      const noSim = await prod
        .connect({
          url: "http://127.0.0.1:9", // never reached
          policy: prod.parseClientPolicy(deployment.files.policy),
          apiKey: deployment.files.apiKey,
        })
        .catch((e: unknown) => e);
      expect(noSim).toMatchObject({ kind: "configuration", code: "SIMULATOR_NOT_IN_BUILD" });
      expect(await readFile(prodOut, "utf8")).not.toContain("cloister-insecure-simulator");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
