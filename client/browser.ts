/**
 * The client SDK for web pages: verify the enclave and seal prompts in the page itself, with
 * WebCrypto and fetch; nothing a page gives it reaches the host unsealed. Built into one ES module
 * by `cloister web` (which also serves a page using it) and `npm run build:browser`
 * (dist/cloister-browser.js, to serve from your own origin).
 *
 *   import { connect, parseClientPolicy } from "./cloister-browser.js";
 *   const session = await connect({ url, policy: parseClientPolicy(policyJson), apiKey });
 *   for await (const event of session.chat([{ role: "user", content: "Hello" }])) …
 *
 * The page's origin is part of the trusted side: whoever serves the page's code can read what is
 * typed into it. Serve it from an origin you control, never from the untrusted host.
 */
export type { VerifiedEnclave } from "../attestation/document.ts";
export { AuditReference, ClientError, type ClientErrorKind, type ClientErrorOrigin } from "./errors.ts";
export { type ClientPolicy, parseClientPolicy, policyRisks } from "./policy.ts";
export {
  type ChatEvent,
  type ChatMessage,
  type Completion,
  type ConnectOptions,
  connect,
  type GenerationOptions,
  Session,
  textHash,
  type VerifiedAuditCheckpoint,
  verifyReceipt,
} from "./sdk.ts";
