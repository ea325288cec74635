/**
 * The page `cloister web` serves: it verifies the enclave in the browser, with the SDK, before
 * the prompt box is enabled, then seals each question and streams the answer. Nothing here
 * writes HTML from data: every value goes in through textContent.
 *
 * Its state is on `document.body.dataset.state` (needs-key, verifying, verified, failed, asking,
 * answered, answer-failed), so scripts and tests can follow it. The API key comes from the form,
 * or from the address's fragment (`#apiKey=…`; a fragment is never sent to any server). The
 * fragment is read and removed from the address bar before anything else runs, so the key does not
 * stay there when the configuration or the policy fails. Any site can link here with a key of its
 * choosing (the user's questions would then run under that key), so a key from the fragment is not
 * used until the user confirms it: the page shows its first characters and waits for a click. The
 * key is kept in memory only: a typed key stays in its field after a verification that failed for
 * another reason than the key (host down, CORS, policy), so that it is not pasted again, and is
 * cleared from the field once a verification passes or the host refuses it. The field is a
 * password field: a browser's password manager may offer to save what it held once its form is gone
 * after a request (Chromium does, whatever its autocomplete says), which the user can decline; a text
 * field masked by its style (tried by web44) would hand the key as typed to the accessibility tree
 * (screen readers, any program reading the page through it: read44f), to browsers without
 * -webkit-text-security (Firefox before 114), to keyboards that learn what is typed and to extensions
 * that read text fields, all without the user's say.
 *
 * The conversation is shown as it is sent: every earlier question and answer goes with each new
 * question (the model's context), so each is shown, in order, with the usage line and redaction note
 * shown under it, and "New conversation" clears them (and an answer's failure with them).
 */
import { type ChatMessage, ClientError, connect, parseClientPolicy, policyRisks, type Session } from "../browser.ts";
import {
  failureHint,
  questionToSend,
  showEnclave as renderEnclave,
  showMaxTokensNote,
  showNoEnclave,
  showRedactionNote,
} from "./enclave-view.ts";

interface PageConfig {
  readonly hostUrl: string;
  readonly policy: unknown;
  readonly maxTokens: number;
}

type PageState = "needs-key" | "verifying" | "verified" | "failed" | "asking" | "answered" | "answer-failed";

/** How many of a linked key's characters the page shows before the user confirms it. */
const KEY_PREVIEW_CHARS = 8;

/**
 * What was wrong with a key the link that opened the page tried to give it (the key form's status
 * says it), or null: set by takeApiKeyFromLink, never naming the link's text (it may be a key).
 */
let linkKeyProblem: string | null = null;

/**
 * Read and removed first, before the configuration is fetched (see the module comment); dropped
 * from memory once the host refuses it (only a typed key can verify then).
 */
let keyFromLink = takeApiKeyFromLink();

// A link opened over this page that differs only in its fragment (another link's key, after the host
// refused this one) would not load the page again by itself: the page reloads, so that its fragment
// is read and removed as the first one was, instead of staying in the address bar and the history.
window.addEventListener("hashchange", () => {
  if (window.location.hash !== "") window.location.reload();
});

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`page: #${id} is missing`);
  return found as T;
}

function setState(state: PageState): void {
  document.body.dataset.state = state;
}

/**
 * The fragment's key (`#apiKey=…`), the fragment removed from the address bar. A key in the query
 * (`?apiKey=…`, the name in any case) went to the page's server with the request (`cloister web` logs
 * no request, but a proxy on the way may) and stays in the browser's history: it is removed from the
 * address bar too, the query's other parameters kept as written, and not used. Either mistake, and a
 * fragment without a key, is said in linkKeyProblem.
 */
function takeApiKeyFromLink(): string | null {
  const { hash, pathname, search } = window.location;
  const parameters = search === "" ? [] : search.slice(1).split("&");
  const others = parameters.filter((parameter) => {
    const [name] = new URLSearchParams(parameter).keys();
    return name?.toLowerCase() !== "apikey";
  });
  const keyInQuery = others.length < parameters.length;
  if (hash === "" && !keyInQuery) return null;
  history.replaceState(null, "", pathname + (others.length === 0 ? "" : `?${others.join("&")}`));
  if (keyInQuery) {
    linkKeyProblem =
      "the link's API key is in its query (?apiKey=), which the browser sent to the page's server: it is not used " +
      "(a link carries it after #, as #apiKey=KEY)";
    return null;
  }
  const fragment = new URLSearchParams(hash.slice(1));
  const key = fragment.get("apiKey")?.trim() ?? "";
  if (key !== "") return key;
  const names = [...fragment.keys()].length;
  linkKeyProblem = fragment.has("apiKey")
    ? "the link's API key is empty (#apiKey= with no key after it)"
    : `the link carries no API key: expected #apiKey=KEY (the name as written, case included), found ${
        names === 0 ? "nothing" : `${names} other name${names === 1 ? "" : "s"}`
      } after #`;
  return null;
}

/** Shows what failed: the error's kind, code and message (ClientError messages carry no secrets). */
function showError(target: HTMLElement, error: unknown, hint: string | null): void {
  target.hidden = false;
  if (error instanceof ClientError) {
    target.dataset.kind = error.kind;
    target.dataset.code = error.code;
    target.textContent = `${error.kind}${error.stage === undefined ? "" : ` (${error.stage})`}: ${error.code}: ${error.message}`;
  } else {
    target.dataset.kind = "internal";
    target.dataset.code = "PAGE_ERROR";
    target.textContent = `unexpected error: ${error instanceof Error ? error.name : typeof error}`;
  }
  if (hint !== null) target.append(document.createElement("br"), hint);
}

/**
 * What of the page's configuration (its config.json, from `cloister web`) a failure's code says
 * cannot be used, and the option that sets it; verifying again cannot help, only `cloister web`
 * restarted with it fixed and the page loaded again.
 */
const NEEDS_RESTART: Readonly<Record<string, { what: string; fixed: string }>> = {
  POLICY_INVALID: { what: "client policy", fixed: "a fixed policy (--policy)" },
  SIMULATOR_NOT_IN_BUILD: {
    what: "client policy",
    fixed: "a policy without trustSimulator (this page's build has no simulator)",
  },
  BAD_URL: { what: "host URL", fixed: "a fixed URL (--url)" },
  URL_CREDENTIALS: { what: "host URL", fixed: "a fixed URL (--url)" },
};

/**
 * The status line for a failure only a restart of `cloister web` can fix (null for any other): the
 * page is then opened again, from the link if the key came from one (the fragment was removed).
 */
function restartStatus(failure: unknown, linked: boolean): string | null {
  // The client's own configuration errors only: a host answering with one of these codes says nothing
  // about this page's configuration (its codes are its word, origin "host").
  const needs =
    failure instanceof ClientError && failure.origin === "client" && failure.kind === "configuration"
      ? NEEDS_RESTART[failure.code]
      : undefined;
  if (needs === undefined) return null;
  return `not verified: nothing was sent to the enclave (this page's ${needs.what} cannot be used, and verifying again cannot help: cloister web must be restarted with ${needs.fixed}, then this page ${
    linked ? "opened again from the link" : "reloaded"
  })`;
}

/** What to do about `failure`, said under its error line (null: the error says it already). */
function hintFor(failure: unknown, during: "verify" | "answer"): string | null {
  return failure instanceof ClientError ? failureHint(failure.code, window.location.origin, during) : null;
}

function showEnclave(session: Session): void {
  renderEnclave(session.enclave, {
    table: element<HTMLTableElement>("enclave"),
    simulatedNotice: element("simulated"),
    createHeaderCell: () => document.createElement("th"),
  });
}

/** One answered turn of the conversation, as the page showed it when its answer was done. */
interface Turn {
  readonly question: string;
  readonly answer: string;
  /** Its usage line (#usage). */
  readonly usage: string;
  /** Its redaction note (#redaction-note), or null when none was shown. */
  readonly redaction: string | null;
}

/**
 * One earlier turn of the conversation, as text: its question, its answer, and under it what was
 * shown under it when it was the latest (its usage line, its redaction note), so that an answer cut
 * by --max-tokens, or to a redacted prompt, does not look otherwise once the next question is asked.
 */
function turnItem(turn: Turn): HTMLLIElement {
  const item = document.createElement("li");
  const parts: [string, string, string | null][] = [
    ["pre", "question", turn.question],
    ["pre", "answer", turn.answer],
    ["p", "usage", turn.usage],
    ["p", "redaction-note", turn.redaction],
  ];
  for (const [tag, role, text] of parts) {
    if (text === null) continue;
    const block = document.createElement(tag);
    block.className = role;
    block.textContent = text;
    item.append(block);
  }
  return item;
}

/** Hides the error line and empties it (its text, kind and code), so that nothing of an earlier failure stays. */
function clearError(target: HTMLElement): void {
  target.hidden = true;
  target.replaceChildren();
  delete target.dataset.kind;
  delete target.dataset.code;
}

/**
 * The API key: typed into the form, or the link's key (`linked`) once the user has confirmed it with
 * the form's button (the field is then disabled, and the page shows which key the link carries).
 */
async function readApiKey(retry: boolean, linked: string | null): Promise<string> {
  const form = element<HTMLFormElement>("key-form");
  const input = element<HTMLInputElement>("api-key");
  // After a failed verification the state stays "failed" and the status says what failed; the form
  // is offered again, as it was (nothing is sent to the host before a verification succeeds).
  if (!retry) {
    setState("needs-key");
    // What the page waits for: the status line said "loading…" beside the key form.
    element("status").textContent =
      linked !== null
        ? "not verified yet: confirm the link's API key below to verify the enclave"
        : linkKeyProblem === null
          ? "not verified yet: enter the API key to verify the enclave"
          : `not verified yet: ${linkKeyProblem}; enter the API key to verify the enclave`;
  }
  if (linked !== null) {
    const preview = linked.length > KEY_PREVIEW_CHARS ? `${linked.slice(0, KEY_PREVIEW_CHARS)}…` : linked;
    element("key-from-link").hidden = false;
    element("key-preview").textContent = preview;
    element("key-label").hidden = true;
    input.disabled = true;
    element("key-submit").textContent = "Use this key and verify the enclave";
  } else {
    // The form for a typed key (again, after the host refused the link's key: its preview goes too).
    element("key-from-link").hidden = true;
    element("key-preview").textContent = "";
    element("key-label").hidden = false;
    input.disabled = false;
    element("key-submit").textContent = "Verify the enclave";
  }
  form.hidden = false;
  // A linked key's button is not focused: a stray Enter must not confirm a key the user did not pick.
  if (linked === null) input.focus();
  return new Promise((resolve) => {
    form.addEventListener("submit", function onSubmit(event) {
      event.preventDefault();
      const key = linked ?? input.value.trim();
      if (key === "") return;
      // The typed key stays in its field until verifyOnce knows whether it was the problem.
      form.hidden = true;
      form.removeEventListener("submit", onSubmit);
      resolve(key);
    });
  });
}

/**
 * Reads the API key and verifies the enclave with it, until a verification succeeds: after a failure
 * the page says what failed and offers the key form again (it said to reload the page). Only
 * connect() talks to the host, and it sends nothing before the enclave is verified.
 */
async function verifyUntilAccepted(config: PageConfig, policy: ReturnType<typeof parseClientPolicy>): Promise<Session> {
  for (let retry = false; ; retry = true) {
    const session = await verifyOnce(config, policy, retry);
    if (session !== null) return session;
  }
}

/**
 * One verification: the key read, connect() with it, and on failure what failed shown (null). Its
 * own function, so that a refused key is not kept in the loop's suspended frame while the page waits
 * for another.
 */
async function verifyOnce(
  config: PageConfig,
  policy: ReturnType<typeof parseClientPolicy>,
  retry: boolean,
): Promise<Session | null> {
  const status = element("status");
  const error = element("error");
  const linked = keyFromLink;
  const apiKey = await readApiKey(retry, linked);
  error.hidden = true;
  setState("verifying");
  status.textContent = "verifying the enclave…";
  const input = element<HTMLInputElement>("api-key");
  try {
    // Named in any refusal of the key (never the key itself).
    const apiKeySource = linked !== null ? "the link that opened this page" : "the API key field";
    const session = await connect({ url: config.hostUrl, policy, apiKey, apiKeySource });
    input.value = "";
    return session;
  } catch (failure) {
    if (restartStatus(failure, linked !== null) !== null) {
      // Not offered again: main's catch says what failed (the key is of no use to this page any more).
      input.value = "";
      throw failure;
    }
    setState("failed");
    const keyRefused =
      failure instanceof ClientError && (failure.code === "UNAUTHENTICATED" || failure.code === "BAD_API_KEY");
    if (linked === null && keyRefused) {
      // A refused key is not offered again: the field is emptied, and the status line says so.
      input.value = "";
      status.textContent =
        "not verified: nothing was sent to the enclave (the host refused the API key, which was cleared from the " +
        "field: enter your API key, then verify again)";
    } else if (failure instanceof ClientError && failure.kind === "attestation") {
      // The enclave failed verification under the page's policy (its nonce question was sent to it, but no
      // question can be). Verifying again passes only once the host runs an enclave the policy accepts: a
      // policy to accept this one is cloister web's (--policy), and the page gets it only when reloaded,
      // which drops the key (the fragment was removed, the field is in memory only).
      status.textContent = `not verified: the enclave failed verification under this page's client policy, so no question can be sealed to it (verify again once the host runs an enclave the policy accepts${
        linked === null ? ": the API key is still in its field" : ""
      }; a policy that accepts this enclave needs cloister web restarted with it and this page ${
        linked === null ? "reloaded, which clears the API key field" : "opened again from the link"
      })`;
    } else if (linked === null) {
      status.textContent =
        "not verified: nothing was sent to the enclave (fix what the error says, then verify again: the API key " +
        "is still in its field)";
    } else if (keyRefused) {
      // Sending the link's key again cannot succeed: it is dropped, and the field is offered for another key.
      keyFromLink = null;
      status.textContent =
        "not verified: nothing was sent to the enclave (the link's API key was refused: enter your API key below, " +
        "or open a link with another, then verify again)";
    } else {
      status.textContent = "not verified: nothing was sent to the enclave (fix what the error says, then verify again)";
    }
    showError(error, failure, hintFor(failure, "verify"));
    return null;
  }
}

async function main(): Promise<void> {
  const status = element("status");
  const error = element("error");
  const response = await fetch("./config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
  const config = (await response.json()) as PageConfig;
  element("host").textContent = config.hostUrl;
  const policy = parseClientPolicy(config.policy);
  // What the policy lets through beyond known images (as `cloister attest` and `proxy` print it),
  // shown before the key is asked for and kept in view.
  const warnings = policyRisks(policy, "is sent your prompts");
  if (warnings.length > 0) {
    element("policy-warning-list").replaceChildren(
      ...warnings.map((warning) => {
        const item = document.createElement("li");
        item.textContent = warning;
        return item;
      }),
    );
    element("policy-warnings").hidden = false;
  }
  const underPolicy =
    warnings.length === 0
      ? ""
      : ` under a policy with ${warnings.length} warning${warnings.length === 1 ? "" : "s"} (above)`;
  const session = await verifyUntilAccepted(config, policy);
  // What the page shows as verified follows the session: a re-verification (an hour on, or after
  // the enclave restarted) may have verified another boot, or failed and left none verified.
  let shown: string | null = null;
  const showVerification = (): void => {
    // --max-tokens over the verified enclave's limit, which cuts answers there: said in view.
    showMaxTokensNote(config.maxTokens, session.attested ? session.enclave : null, element("max-tokens-note"));
    if (!session.attested) {
      shown = null;
      showNoEnclave({ table: element<HTMLTableElement>("enclave"), simulatedNotice: element("simulated") });
      status.textContent = "not verified: the enclave's last verification failed; the next question verifies it first";
      return;
    }
    if (shown !== session.enclave.documentDigest) showEnclave(session);
    shown = session.enclave.documentDigest;
    status.textContent = `enclave verified${underPolicy}: questions are sealed to it`;
  };
  showVerification();
  setState("verified");

  const form = element<HTMLFormElement>("ask-form");
  const prompt = element<HTMLTextAreaElement>("prompt");
  const send = element<HTMLButtonElement>("send");
  const answer = element("answer");
  const usage = element("usage");
  const redactionNote = element("redaction-note");
  const turns = element("turns");
  const shownQuestion = element("question");
  const contextNote = element("context-note");
  const newConversation = element<HTMLButtonElement>("new-conversation");
  // Every answered turn of the conversation, in order: all are sent with the next question.
  const conversation: Turn[] = [];
  // How many of them are shown in #turns: all but the latest while the latest is in #question and
  // #answer (once answered), all once the next question is asked or the latest failed.
  let inTurns = 0;
  /** The turns before the one shown in #question and #answer, and what the next question is sent with. */
  const showConversation = (): void => {
    turns.replaceChildren(...conversation.slice(0, inTurns).map(turnItem));
    const count = conversation.length;
    contextNote.textContent =
      count === 0
        ? "A new conversation: the next question is sent alone."
        : `The next question is sent with the ${count} question${count === 1 ? "" : "s"} and answer${
            count === 1 ? "" : "s"
          } above, in order (the model's context); "New conversation" clears them.`;
    newConversation.disabled = count === 0 || send.disabled;
  };
  showConversation();
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const question = questionToSend(prompt.value);
    if (question === null || send.disabled) return;
    void ask(question);
  });
  newConversation.addEventListener("click", () => {
    if (send.disabled) return;
    conversation.length = 0;
    inTurns = 0;
    shownQuestion.textContent = "";
    answer.textContent = "";
    usage.textContent = "";
    showRedactionNote(null, null, redactionNote);
    // An answer's failure goes with the conversation; a failed re-verification (no enclave verified,
    // the status line says so) is the page's, and stays shown until the next question verifies.
    if (session.attested) {
      clearError(error);
      setState("verified");
    }
    showConversation();
  });

  async function ask(question: string): Promise<void> {
    send.disabled = true;
    clearError(error);
    // The turn shown last (if answered, it is in the conversation) moves up with the earlier ones.
    inTurns = conversation.length;
    showConversation();
    shownQuestion.textContent = question;
    answer.textContent = "";
    usage.textContent = "";
    showRedactionNote(null, null, redactionNote);
    setState("asking");
    const messages: ChatMessage[] = [
      ...conversation.flatMap((turn): ChatMessage[] => [
        { role: "user", content: turn.question },
        { role: "assistant", content: turn.answer },
      ]),
      { role: "user", content: question },
    ];
    let text = "";
    try {
      for await (const event of session.chat(messages, { maxTokens: config.maxTokens })) {
        if (event.type === "text") {
          text += event.text;
          answer.textContent = text;
        } else {
          usage.textContent = `${event.usage.completionTokens} tokens, finish: ${event.finishReason}; every frame opened and checked in this page; receipt signed by the attested key`;
          // The answer is to the prompt as the enclave redacted it: said under it, as chat says it.
          showRedactionNote(event.redacted, session.enclave, redactionNote);
        }
      }
      conversation.push({
        question,
        answer: text,
        usage: usage.textContent ?? "",
        redaction: redactionNote.hidden ? null : redactionNote.textContent,
      });
      prompt.value = "";
      setState("answered");
    } catch (failure) {
      // A partial answer is never shown as if it were whole; the question stays in the box, and is
      // not in the conversation (it is not sent with the next one).
      answer.textContent = "";
      shownQuestion.textContent = "";
      usage.textContent = "";
      showRedactionNote(null, null, redactionNote);
      setState("answer-failed");
      showError(error, failure, hintFor(failure, "answer"));
    } finally {
      showVerification();
      send.disabled = false;
      showConversation();
    }
  }
}

main().catch((failure: unknown) => {
  setState("failed");
  // The status line said "loading…" (or "verifying the enclave…"): it says what stopped the page.
  element("status").textContent =
    restartStatus(failure, keyFromLink !== null) ??
    "the page stopped (the error below says why): reload it to start again";
  showError(element("error"), failure, null);
});
