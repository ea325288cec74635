/**
 * The browser page (`cloister web`) after a re-verification that fails. The page verifies the
 * enclave again inside a question, as the SDK does: when its verification is an hour old, or when
 * the host refuses the question because the enclave's keys changed (a restart: 409
 * WRONG_ENCLAVE_KEY). client/web/page.ts says what it then shows: "What the page shows as verified
 * follows the session: a re-verification [...] may have [...] failed and left none verified": the
 * enclave table is emptied and the status line says "not verified: the enclave's last verification
 * failed; the next question verifies it first". SECURITY.md: nothing leaves the page unless the
 * enclave passed the policy.
 *
 * Here the enclave restarts between two questions and the host's new document reaches the page
 * signed again with another key (a tampering host, as test/e2e/adversarial-host.test.ts does it):
 * the second question's re-verification fails (DOCUMENT_SIGNATURE_INVALID). The page must empty the
 * table and hide the SIMULATED notice with it, say so on its status line, send no question while
 * unverified (sealed POSTs counted at the host and in the page's network), and verify the new boot
 * first once its document is whole again (the notice shown again: it is simulated).
 *
 * The same when the host refuses the re-verification's nonce question (409 WRONG_ENCLAVE_KEY, a
 * transport error): its new document reaches the page with the sealing key swapped (signature left as
 * it was), the page asks about that key's id, which no enclave of the host has, and the session
 * forgets the first boot (client/sdk.ts forgetsVerification; the SDK's side:
 * test/e2e/reattest-key-swap.test.ts), rather than go on showing it as the one questions are sealed to.
 *
 * The page is served in-process (createWebApp with the page's bundle, as `cloister web` builds it),
 * on a port the host lists as a CORS origin: test/e2e/helpers/browser-page.ts.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { useBrowserPage, waitForState } from "./helpers/browser-page.ts";
import { attackerKeys, resignOnly, swapSealingKeyKeepSignature } from "./helpers/document.ts";

const QUESTION = "Would ocelots barter turnips under lighthouses?";
const UNVERIFIED_STATUS = "not verified: the enclave's last verification failed; the next question verifies it first";
/** What one verification of the enclave asks the host. */
const VERIFICATION = ["GET /v1/attestation", "POST /v1/attestation/challenge"];

const web = useBrowserPage();

/** Asks `QUESTION` (the state is "asking" once the click returns) and waits for the outcome. */
async function ask(page: Page): Promise<string> {
  await page.fill("#prompt", QUESTION);
  await page.click("#send");
  return waitForState(page, ["answered", "answer-failed"]);
}

/**
 * What the page shows as verified: the table's rows (first cell of each), the status line, and
 * whether the SIMULATED notice is in view.
 */
async function shownVerification(page: Page): Promise<{ rows: string[]; status: string; simulated: boolean }> {
  const shown = await page.evaluate(() => ({
    rows: Array.from(
      document.querySelectorAll<HTMLTableRowElement>("#enclave tr"),
      (row) => row.cells[0]?.textContent ?? "",
    ),
    status: document.querySelector("#status")?.textContent ?? "",
  }));
  return { ...shown, simulated: await page.isVisible("#simulated") };
}

/** The statuses of the sealed POSTs the host logged, in order. */
const sealedAtHost = () =>
  web.deployment
    .hostAccessLog()
    .filter((record) => record.method === "POST" && record.path === "/v1/sealed")
    .map((record) => record.status);

/**
 * A new page, given the API key and answered once: `sent` logs what it then sends to the host (method
 * and path), and once `tamper.on` the enclave restarts (new keys) and the host's document reaches the
 * page as `rewrite` makes it. `verified`: what the page showed as verified before.
 */
async function answeredPage(rewrite: (document: string) => Promise<string> | string) {
  const page = await web.browser.newPage();
  const hostOrigin = new URL(web.deployment.running.hostUrl).origin;
  const sent: string[] = [];
  let tampering = false;
  await page.route(`${hostOrigin}/**`, async (route) => {
    const request = route.request();
    if (request.method() === "OPTIONS") return route.continue();
    sent.push(`${request.method()} ${new URL(request.url()).pathname}`);
    if (!tampering || new URL(request.url()).pathname !== "/v1/attestation") return route.continue();
    const response = await route.fetch();
    const { document } = (await response.json()) as { document: string };
    return route.fulfill({ response, body: JSON.stringify({ document: await rewrite(document) }) });
  });
  await page.goto(`${web.pageUrl}/`);
  expect(await waitForState(page, ["needs-key", "failed"])).toBe("needs-key");
  await page.fill("#api-key", web.deployment.files.apiKey);
  await page.click("#key-submit");
  expect(await waitForState(page, ["verified", "failed"])).toBe("verified");
  expect(await ask(page)).toBe("answered");
  const verified = await shownVerification(page);
  expect(verified.rows).toContain("sealing key");
  expect(verified.status).toMatch(/^enclave verified/);
  // The deployment is simulated: the notice is in view with the table.
  expect(verified.simulated).toBe(true);
  const tamper = {
    /** A new boot (new keys), whose document the host now hands over rewritten. */
    async restartTampered(): Promise<void> {
      await web.deployment.running.restartEnclave();
      await web.deployment.assertSourcesUnchanged();
      tampering = true;
      sent.length = 0;
    },
    /** The document whole again. */
    off(): void {
      tampering = false;
    },
  };
  return { page, sent, verified, tamper };
}

describe("the browser page after a re-verification that fails", () => {
  const cases: {
    name: string;
    rewrite: (document: string) => Promise<string> | string;
    kind: string;
    code: string;
    /** What the error shown says, in part. */
    says: string;
  }[] = [
    {
      // The re-verification reads the forged document, challenges it and fails.
      name: "the new boot's document signed with another key",
      rewrite: (document) => resignOnly(document, attackerKeys().signing),
      kind: "attestation",
      code: "DOCUMENT_SIGNATURE_INVALID",
      says: "attestation failed at stage document",
    },
    {
      // The re-verification's nonce question names the swapped key's id, which no enclave of the
      // host has: the host refuses it (409), and the session forgets the first boot all the same.
      name: "the new boot's document with another sealing key in it (its signature left as it was)",
      rewrite: (document) => swapSealingKeyKeepSignature(document, attackerKeys().sealing.publicKey),
      kind: "transport",
      code: "WRONG_ENCLAVE_KEY",
      says: "attestation could not complete at stage nonce",
    },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.code}; empties the enclave table, says the last verification failed, and sends nothing until one passes`, async () => {
      const sealedBefore = sealedAtHost().length;
      const { page, sent, verified, tamper } = await answeredPage(c.rewrite);
      await tamper.restartTampered();
      expect(await ask(page)).toBe("answer-failed");
      // The question went once, sealed to the first boot's key (the host refused it: 409), then the
      // re-verification failed: nothing was resealed.
      expect(sent).toEqual(["POST /v1/sealed", ...VERIFICATION]);
      expect(await page.getAttribute("#error", "data-kind")).toBe(c.kind);
      expect(await page.getAttribute("#error", "data-code")).toBe(c.code);
      expect(await page.textContent("#error")).toContain(c.says);
      expect(await page.textContent("#answer")).toBe("");
      // The SIMULATED notice goes with the table: no enclave is verified, simulated or not.
      expect(await shownVerification(page)).toEqual({ rows: [], status: UNVERIFIED_STATUS, simulated: false });

      // Asked again while unverified: verified first, failed again, nothing sent to the enclave.
      sent.length = 0;
      expect(await ask(page)).toBe("answer-failed");
      expect(sent).toEqual(VERIFICATION);
      expect(await page.getAttribute("#error", "data-code")).toBe(c.code);
      expect(await shownVerification(page)).toEqual({ rows: [], status: UNVERIFIED_STATUS, simulated: false });

      // The document whole again: the next question verifies the new boot, then is sealed to it.
      tamper.off();
      sent.length = 0;
      expect(await ask(page)).toBe("answered");
      expect(sent).toEqual([...VERIFICATION, "POST /v1/sealed"]);
      // The same rows, status and SIMULATED notice as for the first boot.
      expect(await shownVerification(page)).toEqual(verified);
      // At the host, in the order logged: the first answer, the refused question, and the last answer
      // (a question sent while the page was unverified would be logged before it).
      await web.deployment.waitForLog(
        (line) => line.startsWith("[host] {") && sealedAtHost().length >= sealedBefore + 3,
        60_000,
      );
      expect(sealedAtHost().slice(sealedBefore)).toEqual([200, 409, 200]);
      await page.close();
    });
  }
});
