/**
 * What `cloister chat` and the page of `cloister web` say when the enclave redacted PII from the
 * prompt before the model saw it (the final frame's `redacted`, sealed to this client only): the
 * answer is to the redacted prompt, which can explain an answer that seems wrong. Kinds and counts
 * only, as the enclave sent them. Platform-neutral (the page imports it).
 */
import type { VerifiedEnclave } from "../attestation/document.ts";
import { MAX_REDACTION_COUNT, REDACTION_KINDS, type RedactionKind, type Redactions } from "../sealed/frames.ts";
import { attestedPii } from "./summary.ts";

const NOUNS: Readonly<Record<RedactionKind, readonly [string, string]>> = {
  email: ["email address", "email addresses"],
  phone: ["phone number", "phone numbers"],
  credit_card: ["credit card number", "credit card numbers"],
  iban: ["IBAN", "IBANs"],
  us_ssn: ["US social security number", "US social security numbers"],
  ip_address: ["IP address", "IP addresses"],
  secret_key: ["secret key", "secret keys"],
};

/**
 * The note for `redacted` (`the enclave redacted 1 email address … from your prompt …`), or null when
 * nothing was. Undefined is an enclave that did not say (built before the final frame's `redacted`):
 * never read as nothing redacted, it is said when the PII mode of the manifest `enclave` attested
 * (null: none verified; or a verified manifest that shows none) is "redact", else it could not have
 * redacted: null.
 */
export function redactionNote(redacted: Redactions | undefined, enclave: VerifiedEnclave | null): string | null {
  if (redacted === undefined) {
    return enclave !== null && attestedPii(enclave)?.mode === "redact"
      ? 'the enclave does not say whether it redacted PII from your prompt before the model saw it (manifest PII mode "redact"; an enclave built before it said so)'
      : null;
  }
  if (redacted === null) return null;
  const parts = REDACTION_KINDS.flatMap((kind) => {
    const count = redacted[kind];
    if (count === undefined) return [];
    // The most a frame says, for a count that passed it (sealed/frames.ts redactionsOf).
    const atLeast = count === MAX_REDACTION_COUNT ? "at least " : "";
    return [`${atLeast}${count} ${NOUNS[kind][count === 1 ? 0 : 1]}`];
  });
  if (parts.length === 0) return null;
  const listed = parts.length === 1 ? parts[0] : `${parts.slice(0, -1).join(", ")} and ${parts.at(-1)}`;
  return `the enclave redacted ${listed} from your prompt before the model saw it (manifest PII mode "redact")`;
}
