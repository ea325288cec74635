/**
 * Two claims of the browser page (`cloister web`) that test/e2e/browser.test.ts does not break:
 *
 * - client/web/page.ts: "The key is kept in memory only" (SECURITY.md: the page's server never sees
 *   the key, prompts or answers). After a verified, answered question, neither the key, the question
 *   nor the answer is in the address, the history's entry, localStorage, sessionStorage, cookies,
 *   IndexedDB, the Cache API or anything the page wrote to its console.
 * - page.ts: "A partial answer is never shown as if it were whole" (docs/errors.md: the web page
 *   clears the text on an integrity failure). The host's sealed stream is cut after its first frames
 *   and its last bytes flipped: the page has shown text by then, and must clear it.
 *
 * The page is served in-process (createWebApp with the page's bundle, as `cloister web` builds it),
 * on a port the host lists as a CORS origin: test/e2e/helpers/browser-page.ts.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { useBrowserPage, verifiedPage, waitForState } from "./helpers/browser-page.ts";

const QUESTION = "Would ocelots barter turnips under lighthouses?";

const web = useBrowserPage();

/** Everything the page's origin keeps outside its memory, and its address and history entry, as text. */
async function keptByThePage(page: Page): Promise<string> {
  const inPage = await page.evaluate(async () => {
    const local = Object.entries(localStorage);
    const session = Object.entries(sessionStorage);
    const databases = typeof indexedDB.databases === "function" ? await indexedDB.databases() : [];
    const cacheNames = await caches.keys();
    return JSON.stringify({
      href: window.location.href,
      state: history.state,
      historyLength: history.length,
      local,
      session,
      cookie: document.cookie,
      databases,
      cacheNames,
    });
  });
  const cookies = JSON.stringify(await page.context().cookies());
  return `${inPage}\n${cookies}`;
}

describe("the browser page keeps the key, the question and the answer in memory only", () => {
  it("leaves none of them in the address, history, storage, cookies or console after an answer", async () => {
    const consoleLines: string[] = [];
    const page = await verifiedPage(web, consoleLines);
    await page.fill("#prompt", QUESTION);
    await page.click("#send");
    expect(await waitForState(page, ["answered", "answer-failed"])).toBe("answered");
    const answer = ((await page.textContent("#answer")) ?? "").trim();
    expect(answer.length).toBeGreaterThan(8);
    const kept = `${await keptByThePage(page)}\n${consoleLines.join("\n")}`;
    // Any 16 characters of the key in a row (a key cut short is still a leak).
    const key = web.deployment.files.apiKey;
    const keyRuns = Array.from({ length: Math.max(1, key.length - 15) }, (_, i) => key.slice(i, i + 16));
    const needles = [...keyRuns, QUESTION, ...QUESTION.split(" ").filter((w) => w.length >= 6), answer];
    expect(needles.filter((needle) => kept.includes(needle))).toEqual([]);
    // The address is the page's own, as opened.
    expect(page.url()).toBe(`${web.pageUrl}/`);
    await page.close();
  });
});

describe("the browser page on an answer that fails its integrity check", () => {
  it("clears the text it had shown, and says the answer failed", async () => {
    const consoleLines: string[] = [];
    const page = await verifiedPage(web, consoleLines);
    const hostOrigin = new URL(web.deployment.running.hostUrl).origin;
    let cut = 0;
    await page.route(`${hostOrigin}/v1/sealed`, async (route) => {
      if (route.request().method() !== "POST") return route.continue();
      const response = await route.fetch();
      const body = await response.body();
      // The stream whole but its last 16 bytes flipped: every frame before the last opens and shows
      // its text; the last (the final frame, or its tag) does not.
      const tampered = Buffer.from(body);
      for (let i = Math.max(0, tampered.length - 16); i < tampered.length; i++) tampered[i] = (tampered[i] ?? 0) ^ 0xff;
      cut++;
      await route.fulfill({ response, body: tampered });
    });
    // Every text the answer box was given, so the test sees that text was shown before it was cleared.
    await page.evaluate(() => {
      const shown: string[] = [];
      (window as unknown as { answerShown: string[] }).answerShown = shown;
      new MutationObserver(() => shown.push(document.querySelector("#answer")?.textContent ?? "")).observe(
        document.querySelector("#answer") as Element,
        { childList: true, characterData: true, subtree: true },
      );
    });
    await page.fill("#prompt", QUESTION);
    await page.click("#send");
    expect(await waitForState(page, ["answered", "answer-failed"])).toBe("answer-failed");
    expect(cut).toBe(1);
    const shown = await page.evaluate(() => (window as unknown as { answerShown: string[] }).answerShown);
    expect(shown.some((text) => text.length > 0)).toBe(true);
    expect(await page.textContent("#answer")).toBe("");
    expect(await page.getAttribute("#error", "data-kind")).toBe("integrity");
    await page.close();
  });
});
