/**
 * What the page shows about the verified enclave (client/web/page.ts): one table row per checked
 * fact, and the SIMULATED notice, which follows the enclave verified last, shown for a simulated
 * one and hidden again once a re-verification finds real hardware (the TEE row says the same) or
 * fails (the table is emptied then: nothing is verified), and
 * the note that `--max-tokens` is over that enclave's limit (as `cloister chat` says it on stderr),
 * and, under an answer, the note that the enclave redacted PII from its prompt (likewise), and,
 * under an error, what to do about it where the error does not say; and which text of the prompt box
 * is sent.
 * Values go in through textContent only. Takes its elements, so it is tested without a browser.
 */

import { toHex } from "../../attestation/bytes.ts";
import type { VerifiedEnclave } from "../../attestation/document.ts";
import type { Redactions } from "../../sealed/frames.ts";
import { maxTokensNote } from "../max-tokens-note.ts";
import { redactionNote } from "../redaction-note.ts";
import { measurementNote, modelNote, policyFacts, teeFacts } from "../summary.ts";

/** The parts of the DOM the view writes to. */
export interface EnclaveViewElements {
  readonly table: Pick<HTMLTableElement, "replaceChildren" | "insertRow" | "hidden">;
  readonly simulatedNotice: Pick<HTMLElement, "hidden">;
  readonly createHeaderCell: () => HTMLTableCellElement;
}

function enclaveRows(enclave: VerifiedEnclave): [string, string][] {
  return [
    ["TEE", enclave.simulated ? `${enclave.tee} (SIMULATED: insecure simulator root)` : enclave.tee],
    ["measurement", `${enclave.measurement}${measurementNote(enclave)}`],
    ["service", `${enclave.manifest.service.name} ${enclave.manifest.service.version}`],
    ["model", `${enclave.manifest.model.file} sha256 ${enclave.manifest.model.sha256}${modelNote(enclave)}`],
    ["manifest", `sha256 ${enclave.manifestDigest}, signed by ${enclave.manifest.signerThumbprint}`],
    // The manifest's tee constraints the evidence was held to, and what it will do to a prompt (the
    // rules, PII, audit), as `cloister attest` says them.
    ...teeFacts(enclave),
    ...policyFacts(enclave),
    ["sealing key", `X25519 ${toHex(enclave.sealingPublicKey)}`],
    ["checked", "evidence chain → policy → REPORT_DATA binding → document signature → fresh nonce → manifest"],
  ];
}

export function showEnclave(enclave: VerifiedEnclave, elements: EnclaveViewElements): void {
  const { table, simulatedNotice } = elements;
  table.replaceChildren();
  for (const [name, value] of enclaveRows(enclave)) {
    const row = table.insertRow();
    const th = elements.createHeaderCell();
    th.textContent = name;
    row.append(th);
    row.insertCell().textContent = value;
  }
  table.hidden = false;
  // Both ways: a later verification of real hardware hides it again.
  simulatedNotice.hidden = !enclave.simulated;
}

/**
 * What the page shows when no enclave is verified (its last re-verification failed): the table
 * emptied and the SIMULATED notice hidden with it; showEnclave shows both again once one passes.
 */
export function showNoEnclave(elements: Pick<EnclaveViewElements, "table" | "simulatedNotice">): void {
  elements.table.replaceChildren();
  elements.simulatedNotice.hidden = true;
}

/**
 * The note that the page's maxTokens (`cloister web --max-tokens`) is more than `enclave`'s manifest
 * allows an answer (the enclave cuts it there, silently): shown while it is so for the enclave
 * verified last, hidden when it is not, or when none is verified (null).
 */
export function showMaxTokensNote(
  asked: number,
  enclave: VerifiedEnclave | null,
  note: Pick<HTMLElement, "hidden" | "textContent">,
): void {
  const text = enclave === null ? null : maxTokensNote(asked, enclave);
  note.textContent = text ?? "";
  note.hidden = text === null;
}

/**
 * The note that the enclave redacted PII from the prompt of the answer shown (its `done.redacted`),
 * as `cloister chat` says it: shown for that answer, hidden when nothing was redacted or no answer
 * is shown (null). An enclave that did not say (undefined) is said not to say when the manifest it
 * attested (`enclave`, the session's) redacts PII.
 */
export function showRedactionNote(
  redacted: Redactions | undefined,
  enclave: VerifiedEnclave | null,
  note: Pick<HTMLElement, "hidden" | "textContent">,
): void {
  const text = redactionNote(redacted, enclave);
  note.textContent = text ?? "";
  note.hidden = text === null;
}

/**
 * The question the page sends for the prompt box's text: the text exactly as typed, its whitespace
 * part of it (an indented first line of code, a trailing newline), as `cloister chat` sends a file's
 * bytes; or null for an empty or all-whitespace one, which is not sent. (The page shows no audit
 * opening, so `cloister audit find` is not pointed at a page's question.)
 */
export function questionToSend(typed: string): string | null {
  return typed.trim() === "" ? null : typed;
}

/**
 * What to do about a failure the page shows (under its error line), or null where the error says it
 * already: `code` is the ClientError's, `pageOrigin` the page's own origin (what the host's
 * `--cors-origin` must list), `during` whether the enclave was being verified or a question answered.
 */
export function failureHint(code: string, pageOrigin: string, during: "verify" | "answer"): string | null {
  if (code === "HOST_UNREACHABLE") {
    const origin = `it may not allow this page's origin: start it with --cors-origin ${pageOrigin}.`;
    return during === "verify"
      ? `If the host is running, ${origin}`
      : "Is the host still running (cloister up or cloister host)? Your question stays in the box: send it again " +
          `once the host is back (the page verifies the enclave again if it restarted). If it is running, ${origin}`;
  }
  return null;
}
