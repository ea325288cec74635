/**
 * What the browser page (`cloister web`, client/web/page.ts) shows in five places a user meets:
 *
 * - The API key's field is a password field (the accessibility tree holds dots, not the key: a text
 *   field masked by its style gave it the key as typed), not spell-checked, and the key goes to the
 *   host only by the page's script (the form is never submitted: the page stays where it is).
 * - After a verification the client policy refuses, the status line says what can pass it: an
 *   enclave the policy accepts (the typed key still in its field), or the policy changed, which takes
 *   a restart of `cloister web` and a reload (the key then entered again); not "fix what the error
 *   says, then verify again: the API key is still in its field".
 * - When its configuration (config.json: the policy, the host URL) cannot be used, the page is
 *   "failed", its error line names the code, and the status line says that only `cloister web`
 *   restarted with it fixed, and the page loaded again, can help (it said "loading…" for a policy that
 *   does not parse, and "fix what the error says, then verify again" for a bad URL).
 * - "New conversation" after an answer that failed leaves the page "verified", its error line
 *   hidden and emptied.
 * - An earlier turn keeps the usage line and redaction note shown under its answer.
 *
 * The page is served in-process (createWebApp with the page's bundle, as `cloister web` builds it),
 * on a port the host lists as a CORS origin: test/e2e/helpers/browser-page.ts.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import {
  askAndWait as ask,
  openPage,
  tamperSealedAnswers,
  useBrowserPage,
  verifiedPage,
  waitForState,
} from "./helpers/browser-page.ts";

const web = useBrowserPage();

describe("the browser page's API key field", () => {
  it("is a password field, not spell-checked, and the key is sent by the page's script only", async () => {
    const page = await openPage(web);
    const field = await page.evaluate(() => {
      const input = document.querySelector("#api-key") as HTMLInputElement;
      return {
        passwordFields: document.querySelectorAll('input[type="password"]').length,
        type: input.type,
        spellcheck: input.spellcheck,
        autocomplete: input.autocomplete,
        autocapitalize: input.getAttribute("autocapitalize"),
        name: input.name,
      };
    });
    expect(field).toEqual({
      passwordFields: 1,
      type: "password",
      spellcheck: false,
      autocomplete: "off",
      autocapitalize: "off",
      name: "",
    });
    // Submitted with Enter: the page verifies, and stays where it is (no form submission, no navigation).
    let navigations = 0;
    page.on("framenavigated", () => navigations++);
    await page.fill("#api-key", web.deployment.files.apiKey);
    await page.press("#api-key", "Enter");
    expect(await waitForState(page, ["verified", "failed"])).toBe("verified");
    expect(navigations).toBe(0);
    expect(page.url()).toBe(`${web.pageUrl}/`);
    await page.close();
  });

  it("gives the accessibility tree dots, not the typed key (screen readers, programs reading the page)", async () => {
    const page = await openPage(web);
    const key = web.deployment.files.apiKey;
    await page.fill("#api-key", key);
    const session = await page.context().newCDPSession(page);
    const { nodes } = (await session.send("Accessibility.getFullAXTree")) as {
      nodes: { name?: { value?: unknown }; value?: { value?: unknown } }[];
    };
    const values = nodes.filter((node) => node.name?.value === "API key").map((node) => node.value?.value);
    expect(values).toHaveLength(1);
    expect(values[0]).not.toContain(key);
    expect(values[0]).toBe("•".repeat(key.length));
    await session.detach();
    await page.close();
  });
});

describe("the browser page's status line after the client policy refused the enclave", () => {
  /** The page opened with a client policy that accepts no measurement of this enclave (as `cloister web --policy` would give it). */
  async function pageUnderWrongPolicy(link: string): Promise<Page> {
    const page = await web.browser.newPage();
    await page.route(`${web.pageUrl}/config.json`, async (route) => {
      const response = await route.fetch();
      const config = (await response.json()) as { policy: { attestation: { snp: { measurements: string[] } } } };
      config.policy.attestation.snp.measurements = ["cd".repeat(48)];
      await route.fulfill({ response, json: config });
    });
    await page.goto(`${web.pageUrl}/${link}`);
    expect(await waitForState(page, ["needs-key", "failed"])).toBe("needs-key");
    return page;
  }

  it("says what passes it: a typed key stays for an enclave the policy accepts, a changed policy takes a reload", async () => {
    const page = await pageUnderWrongPolicy("");
    await page.fill("#api-key", web.deployment.files.apiKey);
    await page.click("#key-submit");
    expect(await waitForState(page, ["verified", "failed"])).toBe("failed");
    expect(await page.getAttribute("#error", "data-kind")).toBe("attestation");
    expect(await page.getAttribute("#error", "data-code")).toBe("SNP_MEASUREMENT_NOT_ALLOWED");
    expect(await page.textContent("#status")).toBe(
      "not verified: the enclave failed verification under this page's client policy, so no question can be sealed " +
        "to it (verify again once the host runs an enclave the policy accepts: the API key is still in its field; a " +
        "policy that accepts this enclave needs cloister web restarted with it and this page reloaded, which clears " +
        "the API key field)",
    );
    expect(await page.inputValue("#api-key")).toBe(web.deployment.files.apiKey);
    await page.close();
  });

  it("says the same for a link's key, which a reload does not bring back", async () => {
    const page = await pageUnderWrongPolicy(`#apiKey=${encodeURIComponent(web.deployment.files.apiKey)}`);
    await page.click("#key-submit");
    expect(await waitForState(page, ["verified", "failed"])).toBe("failed");
    expect(await page.getAttribute("#error", "data-code")).toBe("SNP_MEASUREMENT_NOT_ALLOWED");
    expect(await page.textContent("#status")).toBe(
      "not verified: the enclave failed verification under this page's client policy, so no question can be sealed " +
        "to it (verify again once the host runs an enclave the policy accepts; a policy that accepts this enclave " +
        "needs cloister web restarted with it and this page opened again from the link)",
    );
    await page.close();
  });
});

describe("the browser page's status line when its configuration cannot be used", () => {
  /** A new tab on the page (its address's fragment `link`), its config.json changed by `change`. */
  async function pageWithConfig(link: string, change: (config: Record<string, unknown>) => void): Promise<Page> {
    const page = await web.browser.newPage();
    await page.route(`${web.pageUrl}/config.json`, async (route) => {
      const response = await route.fetch();
      const config = (await response.json()) as Record<string, unknown>;
      change(config);
      await route.fulfill({ response, json: config });
    });
    await page.goto(`${web.pageUrl}/${link}`);
    return page;
  }

  /** What the page shows: its state, the error's code, the status line, and whether the key form is offered. */
  async function shown(page: Page) {
    return page.evaluate(() => ({
      state: document.body.dataset.state,
      code: (document.querySelector("#error") as HTMLElement).dataset.code,
      status: document.querySelector("#status")?.textContent,
      form: !(document.querySelector("#key-form") as HTMLElement).hidden,
    }));
  }

  it("says a policy that does not parse takes a restart of cloister web (it said loading… forever)", async () => {
    const page = await pageWithConfig("", (config) => {
      (config.policy as Record<string, unknown>).attestation = "any";
    });
    expect(await waitForState(page, ["needs-key", "failed"])).toBe("failed");
    expect(await shown(page)).toEqual({
      state: "failed",
      code: "POLICY_INVALID",
      status:
        "not verified: nothing was sent to the enclave (this page's client policy cannot be used, and verifying again " +
        "cannot help: cloister web must be restarted with a fixed policy (--policy), then this page reloaded)",
      form: false,
    });
    expect(await page.textContent("#error")).toMatch(/^configuration: POLICY_INVALID: client policy: /);
    await page.close();
  });

  it("says a host URL that cannot be used takes a restart, and offers no verification again", async () => {
    const page = await pageWithConfig(`#apiKey=${encodeURIComponent(web.deployment.files.apiKey)}`, (config) => {
      config.hostUrl = "localhost:1";
    });
    expect(await waitForState(page, ["needs-key", "failed"])).toBe("needs-key");
    await page.click("#key-submit");
    expect(await waitForState(page, ["verified", "failed"])).toBe("failed");
    expect(await shown(page)).toEqual({
      state: "failed",
      code: "BAD_URL",
      status:
        "not verified: nothing was sent to the enclave (this page's host URL cannot be used, and verifying again " +
        "cannot help: cloister web must be restarted with a fixed URL (--url), then this page opened again from the link)",
      form: false,
    });
    await page.close();
  });

  it("takes a host's answer carrying one of those codes for the host's word: no restart asked, the key form offered again", async () => {
    const page = await openPage(web);
    // The host's answer to the document request, with the real answer's headers (CORS), says BAD_URL.
    await page.route("**/v1/attestation**", async (route) => {
      const response = await route.fetch();
      await route.fulfill({ response, status: 400, json: { error: { code: "BAD_URL", message: "no" } } });
    });
    await page.fill("#api-key", web.deployment.files.apiKey);
    await page.click("#key-submit");
    expect(await waitForState(page, ["verified", "failed"])).toBe("failed");
    const now = await shown(page);
    expect(now.code).toBe("BAD_URL");
    expect(now.status).not.toMatch(/cloister web must be restarted/);
    expect(now.form).toBe(true);
    await page.close();
  });
});

describe("the browser page's conversation", () => {
  it('is "verified" again, its error line hidden and emptied, after "New conversation" follows a failed answer', async () => {
    const page = await verifiedPage(web);
    expect(await ask(page, "Would ocelots barter turnips?")).toBe("answered");
    const route = await tamperSealedAnswers(web, page);
    expect(await ask(page, "And under lighthouses?")).toBe("answer-failed");
    await page.unroute(route);
    expect(await page.isVisible("#error")).toBe(true);
    await page.click("#new-conversation");
    expect(
      await page.evaluate(() => {
        const error = document.querySelector("#error") as HTMLElement;
        return {
          state: document.body.dataset.state,
          hidden: error.hidden,
          text: error.textContent,
          kind: error.dataset.kind,
          code: error.dataset.code,
        };
      }),
    ).toEqual({ state: "verified", hidden: true, text: "", kind: undefined, code: undefined });
    await page.close();
  });

  it("keeps, under each earlier answer, the usage line and redaction note shown under it", async () => {
    const page = await verifiedPage(web);
    expect(await ask(page, "Please write to bob@example.org about ocelots.")).toBe("answered");
    const first = await page.evaluate(() => ({
      usage: document.querySelector("#usage")?.textContent ?? "",
      note: (document.querySelector("#redaction-note") as HTMLElement).hidden
        ? null
        : document.querySelector("#redaction-note")?.textContent,
    }));
    expect(first.usage).toMatch(/^\d+ tokens, finish: /);
    expect(first.note).toBe(
      'the enclave redacted 1 email address from your prompt before the model saw it (manifest PII mode "redact")',
    );
    expect(await ask(page, "And under lighthouses?")).toBe("answered");
    const earlier = await page.evaluate(() =>
      Array.from(document.querySelectorAll("#turns > li"), (item) =>
        Array.from(item.children, (block) => block.className),
      ),
    );
    expect(earlier).toEqual([["question", "answer", "usage", "redaction-note"]]);
    expect(await page.textContent("#turns > li > .usage")).toBe(first.usage);
    expect(await page.textContent("#turns > li > .redaction-note")).toBe(first.note);
    await page.close();
  });
});
