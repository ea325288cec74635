/**
 * Two things the browser page (`cloister web`, client/web/page.ts) shows the user:
 *
 * - The conversation it sends: each question goes with every earlier question and answer (the
 *   model's context), so every earlier turn is shown, in order, as text, with what the next question
 *   is sent with; a failed turn is not part of it (its partial text cleared); "New conversation"
 *   clears it all, and is not offered while a question is under way (sent with the conversation).
 * - The typed API key after a failed verification: kept in its field when the key was not the problem
 *   (here the host's attestation unreachable), so that it is not pasted again, and said so; cleared,
 *   and said so, when the host refused it; cleared once a verification passes.
 *
 * The page is served in-process (createWebApp with the page's bundle, as `cloister web` builds it),
 * on a port the host lists as a CORS origin: test/e2e/helpers/browser-page.ts.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { held } from "../helpers/held.ts";
import {
  askAndWait as ask,
  openPage,
  tamperSealedAnswers,
  useBrowserPage,
  waitForState,
} from "./helpers/browser-page.ts";

// The first question is markup, to show that a turn is shown as text (no element made from it).
const QUESTIONS = ["Would <b>ocelots</b> barter turnips?", "And under lighthouses?", "What of quokkas?"];

const web = useBrowserPage();

/** What the page shows of the conversation: the earlier turns, the latest question and answer, the note. */
async function shownConversation(page: Page) {
  return page.evaluate(() => ({
    turns: Array.from(document.querySelectorAll("#turns > li"), (item) =>
      Array.from(item.children, (block) => `${block.className}: ${block.textContent}`),
    ),
    elementsInTurns: document.querySelectorAll("#turns b, #question b").length,
    question: document.querySelector("#question")?.textContent ?? "",
    answer: document.querySelector("#answer")?.textContent ?? "",
    usage: document.querySelector("#usage")?.textContent ?? "",
    note: document.querySelector("#context-note")?.textContent ?? "",
    canClear: !(document.querySelector("#new-conversation") as HTMLButtonElement).disabled,
  }));
}

describe("the browser page shows the conversation it sends", () => {
  it("shows each earlier question and answer in order, leaves a failed turn out, and clears it all on request", async () => {
    const page = await openPage(web);
    await page.fill("#api-key", web.deployment.files.apiKey);
    await page.click("#key-submit");
    expect(await waitForState(page, ["verified", "failed"])).toBe("verified");
    expect(await shownConversation(page)).toMatchObject({
      turns: [],
      question: "",
      note: "A new conversation: the next question is sent alone.",
      canClear: false,
    });

    expect(await ask(page, QUESTIONS[0] as string)).toBe("answered");
    const first = await shownConversation(page);
    expect(first.answer.length).toBeGreaterThan(0);
    expect(first.usage).toMatch(/^\d+ tokens, finish: /);
    expect(first).toMatchObject({ turns: [], question: QUESTIONS[0], elementsInTurns: 0, canClear: true });
    expect(first.note).toMatch(/^The next question is sent with the 1 question and answer above, in order/);

    expect(await ask(page, QUESTIONS[1] as string)).toBe("answered");
    const second = await shownConversation(page);
    // The first turn moved up, as text, with the usage line shown under it; the second is the latest.
    expect(second.turns).toEqual([[`question: ${QUESTIONS[0]}`, `answer: ${first.answer}`, `usage: ${first.usage}`]]);
    expect(second).toMatchObject({ question: QUESTIONS[1], elementsInTurns: 0 });
    expect(second.note).toMatch(/^The next question is sent with the 2 questions and answers above/);

    // A third question whose answer fails its integrity check (its last bytes flipped, as in
    // browser-leaks): its partial text is cleared and it is not part of the conversation.
    const tampered = await tamperSealedAnswers(web, page);
    expect(await ask(page, QUESTIONS[2] as string)).toBe("answer-failed");
    await page.unroute(tampered);
    const failed = await shownConversation(page);
    expect(failed).toMatchObject({
      turns: [
        [`question: ${QUESTIONS[0]}`, `answer: ${first.answer}`, `usage: ${first.usage}`],
        [`question: ${QUESTIONS[1]}`, `answer: ${second.answer}`, `usage: ${second.usage}`],
      ],
      question: "",
      answer: "",
      usage: "",
    });
    expect(failed.note).toMatch(/^The next question is sent with the 2 questions and answers above/);
    expect(await page.inputValue("#prompt")).toBe(QUESTIONS[2]);

    await page.click("#new-conversation");
    expect(await shownConversation(page)).toMatchObject({
      turns: [],
      question: "",
      answer: "",
      note: "A new conversation: the next question is sent alone.",
      canClear: false,
    });
    expect(await ask(page, QUESTIONS[2] as string)).toBe("answered");
    const fresh = await shownConversation(page);
    expect(fresh).toMatchObject({ turns: [], question: QUESTIONS[2] });
    expect(fresh.note).toMatch(/^The next question is sent with the 1 question and answer above/);
    await page.close();
  });

  it("offers no New conversation while a question is under way, and keeps the conversation it is sent with", async () => {
    const page = await openPage(web);
    await page.fill("#api-key", web.deployment.files.apiKey);
    await page.click("#key-submit");
    expect(await waitForState(page, ["verified", "failed"])).toBe("verified");
    expect(await ask(page, QUESTIONS[0] as string)).toBe("answered");
    const first = await shownConversation(page);
    expect(first.canClear).toBe(true);

    // The next question's sealed POST held at the page until the test lets it go.
    const hostOrigin = new URL(web.deployment.running.hostUrl).origin;
    const sealed = held();
    await page.route(`${hostOrigin}/v1/sealed`, async (route) => {
      if (route.request().method() !== "POST") return route.continue();
      sealed.enter();
      await sealed.promise;
      return route.continue();
    });
    await page.fill("#prompt", QUESTIONS[1] as string);
    await page.click("#send");
    await sealed.entered;
    // Under way: the button is disabled (a click, forced, does nothing), the earlier turn shown above.
    expect(await page.evaluate(() => document.body.dataset.state)).toBe("asking");
    expect(await shownConversation(page)).toMatchObject({
      turns: [[`question: ${QUESTIONS[0]}`, `answer: ${first.answer}`, `usage: ${first.usage}`]],
      question: QUESTIONS[1],
      canClear: false,
    });
    await page.click("#new-conversation", { force: true });
    sealed.settle();
    expect(await waitForState(page, ["answered", "answer-failed"])).toBe("answered");
    await page.unroute(`${hostOrigin}/v1/sealed`);
    const second = await shownConversation(page);
    expect(second).toMatchObject({
      turns: [[`question: ${QUESTIONS[0]}`, `answer: ${first.answer}`, `usage: ${first.usage}`]],
      question: QUESTIONS[1],
      canClear: true,
    });
    expect(second.note).toMatch(/^The next question is sent with the 2 questions and answers above/);
    await page.close();
  });
});

describe("the browser page's API key field after a failed verification", () => {
  it("keeps a typed key when the host could not be reached, and clears it once verified", async () => {
    const page = await openPage(web);
    const hostOrigin = new URL(web.deployment.running.hostUrl).origin;
    let refused = 0;
    await page.route(`${hostOrigin}/v1/attestation`, async (route) => {
      if (route.request().method() === "OPTIONS" || refused > 0) return route.continue();
      refused++;
      return route.abort("connectionrefused");
    });
    await page.fill("#api-key", web.deployment.files.apiKey);
    await page.click("#key-submit");
    expect(await waitForState(page, ["verified", "failed"])).toBe("failed");
    expect(refused).toBe(1);
    expect(await page.getAttribute("#error", "data-code")).toBe("HOST_UNREACHABLE");
    expect(await page.textContent("#status")).toContain("the API key is still in its field");
    expect(await page.inputValue("#api-key")).toBe(web.deployment.files.apiKey);
    // Verified again without pasting it.
    await page.click("#key-submit");
    expect(await waitForState(page, ["verified", "failed"])).toBe("verified");
    expect(await page.inputValue("#api-key")).toBe("");
    await page.close();
  });

  it("clears a key the host refused, and says to enter it again", async () => {
    const page = await openPage(web);
    await page.fill("#api-key", `not-${web.deployment.files.apiKey}`);
    await page.click("#key-submit");
    expect(await waitForState(page, ["verified", "failed"])).toBe("failed");
    expect(await page.getAttribute("#error", "data-code")).toBe("UNAUTHENTICATED");
    expect(await page.textContent("#status")).toContain(
      "the host refused the API key, which was cleared from the field",
    );
    expect(await page.inputValue("#api-key")).toBe("");
    await page.close();
  });
});
